//! The CLI as an auditor runs it: a real database file, the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;

use portico_domain::streams::StreamId;
use portico_store::sqlite::SqliteEventStore;
use portico_store::{AppendStream, EventStore, ExpectedVersion, Metadata, NewEvent};

fn replay(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portico-replay"))
        .arg("--database")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

async fn seeded(db: &Path, streams: usize, per_stream: usize) -> SqliteEventStore {
    let store = SqliteEventStore::open(db).await.unwrap();
    for s in 0..streams {
        let stream = StreamId::from_stored(format!("invoice-{}", uuid::Uuid::now_v7()));
        let events = (0..per_stream)
            .map(|n| NewEvent {
                event_id: uuid::Uuid::now_v7(),
                event_type: "Tested".into(),
                schema_version: 1,
                data: serde_json::json!({ "n": n, "s": s }),
                metadata: Metadata::new(None, "test"),
            })
            .collect();
        store
            .append(vec![AppendStream {
                stream_id: stream,
                expected: ExpectedVersion::NoStream,
                events,
            }])
            .await
            .unwrap();
    }
    store
}

#[tokio::test]
async fn export_writes_one_line_per_event_in_increasing_positions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    seeded(&db, 3, 4).await;
    let out = replay(&db, &["export"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    let positions: Vec<i64> = lines
        .iter()
        .map(|l| l["global_position"].as_i64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let since = replay(&db, &["export", "--since", &positions[9].to_string()]);
    assert_eq!(String::from_utf8(since.stdout).unwrap().lines().count(), 2);
}

#[tokio::test]
async fn verify_passes_on_an_intact_log_and_names_an_altered_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("p.db");
    let store = seeded(&db, 2, 3).await;
    let ok = replay(&db, &["verify"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );

    let (stream, version): (String, i64) = sqlx::query_as(
        "SELECT stream_id, stream_version FROM events ORDER BY global_position LIMIT 1 OFFSET 4",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE events SET data = replace(data, '\"n\":1', '\"n\":7') WHERE stream_id = $1 AND stream_version = $2")
        .bind(&stream)
        .bind(version)
        .execute(store.pool())
        .await
        .unwrap();
    let broken = replay(&db, &["verify"]);
    assert_eq!(broken.status.code(), Some(1));
    let report = String::from_utf8(broken.stdout).unwrap();
    assert!(
        report.contains(&format!("{stream} version {version}")),
        "{report}"
    );
    assert!(report.contains("1 problem(s)"), "{report}");
}

#[test]
fn a_missing_database_is_a_clear_error() {
    let out = replay(Path::new("/nonexistent/portico.db"), &["verify"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("no database at /nonexistent/portico.db"));
}
