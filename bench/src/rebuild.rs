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

/// One stored event, as the SQLite log holds it.
#[derive(Debug, sqlx::FromRow)]
struct LogRow {
    global_position: i64,
    stream_id: String,
    stream_version: i64,
    event_id: String,
    event_type: String,
    schema_version: i32,
    data: String,
    metadata: String,
    recorded_at: String,
    hash: Vec<u8>,
}

/// Copies the events of the SQLite log in `from` into the fresh PostgreSQL database behind
/// `to` (in position order, so they keep their order), then analyzes the table.
pub async fn copy_to_postgres(from: &std::path::Path, to: &sqlx::PgPool) -> anyhow::Result<()> {
    const PAGE: i64 = 10_000;
    let db = Db::connect(&from.to_string_lossy()).await?;
    let Db::Sqlite(source) = &db else {
        anyhow::bail!("the rebuild log is a SQLite file")
    };
    let mut after = 0i64;
    loop {
        let page: Vec<LogRow> = sqlx::query_as(
            "SELECT global_position, stream_id, stream_version, event_id, event_type, \
             schema_version, data, metadata, recorded_at, hash FROM events \
             WHERE global_position > $1 ORDER BY global_position LIMIT $2",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(source)
        .await?;
        let Some(last) = page.last() else { break };
        after = last.global_position;
        let text = |f: fn(&LogRow) -> &str| page.iter().map(f).collect::<Vec<&str>>();
        sqlx::query(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, schema_version, \
             data, metadata, recorded_at, hash) \
             SELECT s, v, e::uuid, t, sv, d, m, r::timestamptz, h \
             FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::int[], $6::text[], \
                         $7::text[], $8::text[], $9::bytea[]) AS u(s, v, e, t, sv, d, m, r, h)",
        )
        .bind(text(|r| &r.stream_id))
        .bind(page.iter().map(|r| r.stream_version).collect::<Vec<_>>())
        .bind(text(|r| &r.event_id))
        .bind(text(|r| &r.event_type))
        .bind(page.iter().map(|r| r.schema_version).collect::<Vec<_>>())
        .bind(text(|r| &r.data))
        .bind(text(|r| &r.metadata))
        .bind(text(|r| &r.recorded_at))
        .bind(page.iter().map(|r| r.hash.as_slice()).collect::<Vec<_>>())
        .execute(to)
        .await?;
    }
    source.close().await;
    sqlx::query("ANALYZE events").execute(to).await?;
    Ok(())
}

/// The measured part (run in the child, on a SQLite file or a PostgreSQL URL): a scan that
/// decodes every payload, then a rebuild of all read models.
pub async fn measure(database: &str) -> anyhow::Result<Figures> {
    let db = Db::connect(database).await?;
    let store = db.event_store().await?;
    let started = Instant::now();
    let sql = "SELECT data FROM events ORDER BY global_position";
    let mut events = 0i64;
    macro_rules! scan {
        ($pool:expr) => {{
            let mut rows = sqlx::query(sql).fetch($pool);
            while let Some(row) = rows.try_next().await? {
                let data: String = row.try_get(0)?;
                let value: serde_json::Value = serde_json::from_str(&data)?;
                std::hint::black_box(value);
                events += 1;
            }
        }};
    }
    match &db {
        Db::Sqlite(pool) => scan!(pool),
        Db::Postgres(pool) => scan!(pool),
    }
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
