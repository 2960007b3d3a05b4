//! The CLI as an auditor or operator runs it: a real database file, the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};

use portico_projections::simulate::Simulation;
use portico_projections::{projectors, Db, Runner};

fn replay(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portico-replay"))
        .arg("--database")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A database with a simulated history, projected.
async fn seeded(dir: &Path) -> (std::path::PathBuf, Db) {
    let path = dir.join("portico.db");
    let db = Db::connect(path.to_str().unwrap()).await.unwrap();
    let store = db.event_store().await.unwrap();
    Simulation::new(41).run(store.as_ref(), 150).await.unwrap();
    let runner = Runner::new(db.clone(), store, projectors::all());
    runner.prepare().await.unwrap();
    runner.catch_up().await.unwrap();
    (path, db)
}

#[tokio::test]
async fn export_writes_one_line_per_event_in_increasing_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = seeded(dir.path()).await;
    let head = db.event_store().await.unwrap().head().await.unwrap();
    let out = replay(&path, &["export"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as i64, head, "one line per event");
    let positions: Vec<i64> = lines
        .iter()
        .map(|l| l["global_position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    for field in [
        "stream_id",
        "stream_version",
        "event_id",
        "event_type",
        "schema_version",
        "data",
        "metadata",
        "recorded_at",
        "hash",
    ] {
        assert!(lines[0].get(field).is_some(), "export lacks {field}");
    }
    let since = replay(&path, &["export", "--since", &positions[9].to_string()]);
    assert_eq!(stdout(&since).lines().count(), lines.len() - 10);
}

#[tokio::test]
async fn verify_passes_then_names_an_altered_event_and_an_altered_read_model_row() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = seeded(dir.path()).await;
    let ok = replay(&path, &["verify"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("0 chain problem(s), 0 read-model difference(s)"));

    let Db::Sqlite(pool) = &db else {
        unreachable!()
    };
    let (stream, version): (String, i64) = sqlx::query_as(
        "SELECT stream_id, stream_version FROM events WHERE event_type = 'PaymentSubmitted' ORDER BY global_position LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("UPDATE events SET data = replace(data, '\"method\":\"card\"', '\"method\":\"cash\"') WHERE stream_id = $1 AND stream_version = $2")
        .bind(&stream)
        .bind(version)
        .execute(pool)
        .await
        .unwrap();
    let invoice: String =
        sqlx::query_scalar("SELECT invoice_id FROM invoices ORDER BY invoice_id LIMIT 1")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query("UPDATE invoices SET total_minor = total_minor + 1 WHERE invoice_id = $1")
        .bind(&invoice)
        .execute(pool)
        .await
        .unwrap();

    let broken = replay(&path, &["verify"]);
    assert_eq!(broken.status.code(), Some(1));
    let report = stdout(&broken);
    assert!(
        report.contains(&format!("BROKEN CHAIN  {stream} version {version}")),
        "{report}"
    );
    assert!(
        report.contains(&format!("READ MODEL    invoices.invoices row {invoice}")),
        "{report}"
    );
}

#[tokio::test]
async fn status_lists_every_projection_with_its_lag_and_rebuild_swaps_in_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _db) = seeded(dir.path()).await;
    let status = replay(&path, &["status", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4);
    assert!(rows.as_array().unwrap().iter().all(|r| r["lag"] == 0));
    let rebuilt = replay(&path, &["rebuild", "--projection", "invoices"]);
    assert!(
        rebuilt.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    assert!(stdout(&rebuilt).contains("rebuilt invoices: generation 1"));
    assert!(replay(&path, &["verify"]).status.success());
    let unknown = replay(&path, &["rebuild", "--projection", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("no projection `nope`; there are: directory, projects, invoices, payments"));
}

#[tokio::test]
async fn clear_errors_for_a_missing_database_an_unknown_invoice_and_a_future_instant() {
    let missing = replay(Path::new("/nonexistent/portico.db"), &["verify"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no database at /nonexistent/portico.db")
    );

    let dir = tempfile::tempdir().unwrap();
    let (path, _db) = seeded(dir.path()).await;
    let unknown = replay(&path, &["history", "--invoice", "NOPE-1"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no invoice numbered NOPE-1"));
    let future = replay(
        &path,
        &[
            "history",
            "--invoice",
            "INV-000001",
            "--as-of",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert_eq!(future.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&future.stderr).contains("is in the future"));
    let bad_url = Command::new(env!("CARGO_BIN_EXE_portico-replay"))
        .args([
            "--database",
            "postgres://nobody:secret@127.0.0.1:1/none",
            "status",
        ])
        .output()
        .unwrap();
    assert_eq!(bad_url.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad_url.stderr);
    assert!(
        err.contains("cannot open postgres://nobody:***@127.0.0.1:1/none"),
        "{err}"
    );
    assert!(!err.contains("secret"));
}
