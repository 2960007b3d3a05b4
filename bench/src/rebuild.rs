//! Rebuilding every read model from a large log, against a raw scan of the same log that
//! decodes each payload. The measured part runs in a child process so its peak memory is
//! its own, not the generator's.

use std::time::Instant;

use futures::TryStreamExt;
use portico_projections::simulate::Simulation;
use portico_projections::{projectors, Db, Runner};
use serde::{Deserialize, Serialize};
use sqlx::Row;

#[derive(Debug, Serialize, Deserialize)]
pub struct Figures {
    pub events: i64,
    pub scan_secs: f64,
    pub rebuild_secs: f64,
    pub peak_rss_mib: Option<f64>,
}

/// Fills a fresh SQLite database with at least `events` events generated through the
/// domain (or reuses it if it already holds them).
pub async fn generate(path: &std::path::Path, events: i64) -> anyhow::Result<i64> {
    let db = Db::connect(&path.to_string_lossy()).await?;
    let store = db.event_store().await?;
    // A kept log that is short is extended by a simulation of its own (seeded by where the
    // log stands), so its firms and ids never collide with the ones already there.
    let head = store.head().await?;
    if head < events {
        eprintln!(
            "rebuild: generating {} events through the domain into {} ...",
            events - head,
            path.display()
        );
    } else {
        eprintln!("rebuild: reusing the {head} events in {}", path.display());
    }
    let mut sim = Simulation::new(20_261_203_u64.wrapping_add(head.unsigned_abs()));
    while store.head().await? < events {
        sim.run(store.as_ref(), 2000).await?;
    }
    Ok(store.head().await?)
}

/// Copies the log in `from` to the new file `to` (`VACUUM INTO`: a consistent copy even
/// with a WAL beside it), so the measured rebuild never changes the kept log.
pub async fn copy_log(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let db = Db::connect(&from.to_string_lossy()).await?;
    let Db::Sqlite(pool) = &db else {
        anyhow::bail!("the rebuild log is a SQLite file")
    };
    sqlx::query("VACUUM INTO $1")
        .bind(to.to_string_lossy().as_ref())
        .execute(pool)
        .await?;
    pool.close().await;
    Ok(())
}

/// The measured part (run in the child): scan, then rebuild all read models.
pub async fn measure(path: &std::path::Path) -> anyhow::Result<Figures> {
    let db = Db::connect(&path.to_string_lossy()).await?;
    let store = db.event_store().await?;
    let Db::Sqlite(pool) = &db else {
        anyhow::bail!("the rebuild workload runs on SQLite")
    };
    let started = Instant::now();
    let mut rows = sqlx::query("SELECT data FROM events ORDER BY global_position").fetch(pool);
    let mut events = 0i64;
    while let Some(row) = rows.try_next().await? {
        let data: String = row.try_get(0)?;
        let value: serde_json::Value = serde_json::from_str(&data)?;
        std::hint::black_box(value);
        events += 1;
    }
    drop(rows);
    let scan_secs = started.elapsed().as_secs_f64();
    let runner = Runner::new(db.clone(), store.clone(), projectors::all());
    for p in runner.projectors() {
        portico_projections::runner::ensure_live(&db, p.as_ref()).await?;
    }
    let started = Instant::now();
    portico_projections::rebuild::rebuild_many(&db, store.as_ref(), runner.projectors(), |_| {})
        .await?;
    let rebuild_secs = started.elapsed().as_secs_f64();
    Ok(Figures {
        events,
        scan_secs,
        rebuild_secs,
        peak_rss_mib: crate::stats::peak_rss_mib(),
    })
}
