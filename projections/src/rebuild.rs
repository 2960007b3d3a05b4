//! Blue/green rebuild: build projectors' tables from position 0 under new names beside the
//! live ones (which keep serving and keep being updated), then swap them in one
//! transaction. The live checkpoint becomes the new tables' position, so the runner carries
//! on from there on the new tables; nothing is applied twice or skipped.
//!
//! Several projectors are rebuilt in one pass over the log: each page is read and decoded
//! once and applied to every new generation.

use std::sync::Arc;

use portico_store::EventStore;

use crate::db::Db;
use crate::pg_writer::{PgGeneration, PgWriter};
use crate::projector::{Fold, Projector, TableSet};
use crate::runner::{checkpoint, decode_payloads, fold_batch, lock, now_text, ProjectionResult};
use crate::sqlite_writer::{Generation, Pending, SqliteReader, SqliteWriter};

/// Where a rebuild is.
#[derive(Debug, Clone, Copy)]
pub struct RebuildProgress {
    pub position: i64,
    pub head: i64,
    pub events: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct RebuildReport {
    pub generation: i64,
    pub position: i64,
    pub events: u64,
}

/// Events per page. Where a page is folded with statements (PostgreSQL), it is one
/// transaction of the new generation, and small transactions on tables keyed by random ids
/// rewrite the same B-tree pages commit after commit: at 1M events a SQLite rebuild that
/// folded this way took (one run each, with a temporary knob) 62 s with pages of 2,000,
/// 54 s with 5,000 and 44 s with 10,000. A fold in memory only needs a page big enough
/// that handing it to the writer thread costs nothing next to folding it.
const PAGE: u32 = 10_000;

fn rebuild_row(projector: &dyn Projector) -> String {
    format!("{}#rebuild", projector.name())
}

async fn drop_generation(
    db: &Db,
    projector: &dyn Projector,
    generation: i64,
) -> ProjectionResult<()> {
    let tables = TableSet::generation(projector, generation);
    for t in projector.tables() {
        if let Some(physical) = tables.physical(t.name) {
            db.execute(&format!("DROP TABLE IF EXISTS {physical}"), &[])
                .await?;
        }
    }
    Ok(())
}

/// Creates the next generation's empty tables and its checkpoint row. With `defer_indexes`,
/// the secondary indexes are left out and returned, rendered, for the caller to create
/// once the tables are filled.
async fn start(
    db: &Db,
    projector: &dyn Projector,
    defer_indexes: bool,
) -> ProjectionResult<(i64, TableSet, Vec<String>)> {
    let live = crate::runner::ensure_live(db, projector).await?;
    let row = rebuild_row(projector);
    // A rebuild that died half-way leaves its tables behind: clear them first.
    let mut generation = live.generation + 1;
    if let Some(stale) = checkpoint(db, &row).await? {
        drop_generation(db, projector, stale.generation).await?;
        db.execute(
            "DELETE FROM projections WHERE name = $1",
            &[row.as_str().into()],
        )
        .await?;
        generation = generation.max(stale.generation + 1);
    }
    let mut tables = TableSet::generation(projector, generation);
    let mut tx = db.begin().await?;
    lock(&mut tx, &row).await?;
    let mut deferred = Vec::new();
    for ddl in projector.ddl() {
        let sql = tables.render(ddl);
        if defer_indexes && !ddl.trim_start().starts_with("CREATE TABLE") {
            deferred.push(sql.to_string());
        } else {
            tx.execute(&sql, &[]).await?;
        }
    }
    tx.execute(
        "INSERT INTO projections (name, position, version, generation, updated_at) VALUES ($1, 0, $2, $3, $4)",
        &[
            row.as_str().into(),
            i64::from(projector.version()).into(),
            generation.into(),
            now_text().into(),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok((generation, tables, deferred))
}

/// Rebuilds one projector.
pub async fn rebuild<S: EventStore + ?Sized>(
    db: &Db,
    store: &S,
    projector: &dyn Projector,
    on_progress: impl FnMut(RebuildProgress),
) -> ProjectionResult<RebuildReport> {
    let reports = rebuild_many(db, store, &[Borrowed(projector)], on_progress).await?;
    Ok(reports[0])
}

/// A projector to rebuild, owned or borrowed.
pub trait AsProjector {
    fn projector(&self) -> &dyn Projector;
}

impl AsProjector for Arc<dyn Projector> {
    fn projector(&self) -> &dyn Projector {
        self.as_ref()
    }
}

/// A borrowed projector.
#[derive(Debug, Clone, Copy)]
pub struct Borrowed<'a>(pub &'a dyn Projector);

impl AsProjector for Borrowed<'_> {
    fn projector(&self) -> &dyn Projector {
        self.0
    }
}

/// Rebuilds every projector in `projectors` in one pass over the log, then swaps all of
/// them in in one transaction. Reports are in the order given.
#[tracing::instrument(skip_all, fields(projections = projectors.len()), err)]
pub async fn rebuild_many<S: EventStore + ?Sized, P: AsProjector>(
    db: &Db,
    store: &S,
    projectors: &[P],
    mut on_progress: impl FnMut(RebuildProgress),
) -> ProjectionResult<Vec<RebuildReport>> {
    // On a SQLite file, projectors that fold in memory are rebuilt on a writer thread
    // (see `sqlite_writer`), which fills their tables and then creates their indexes:
    // while it folds one page, the next is read and decoded here. On PostgreSQL they fold
    // in memory too, and their tables are filled with `COPY` (see `pg_writer`). The others
    // fold each page with their statements.
    let file = match db {
        Db::Sqlite(pool) => {
            Some(pool.connect_options().get_filename().to_owned()).filter(|f| f.is_file())
        }
        Db::Postgres(_) => None,
    };
    let folds_in_memory = file.is_some() || db.is_postgres();
    let mut builds = Vec::with_capacity(projectors.len());
    // Which of `builds` the writer folds.
    let mut in_memory = Vec::with_capacity(projectors.len());
    let mut generations = Vec::new();
    let mut pg_generations = Vec::new();
    for p in projectors {
        let p = p.projector();
        let memory = folds_in_memory && p.memory().is_some();
        let (generation, tables, indexes) = start(db, p, memory).await?;
        let row = rebuild_row(p);
        if memory {
            match db {
                Db::Sqlite(_) => generations.extend(Generation::new(p, &row, &tables, indexes)),
                Db::Postgres(_) => {
                    pg_generations.extend(PgGeneration::new(p, &row, &tables, indexes));
                }
            }
        }
        builds.push((p, row, generation, tables));
        in_memory.push(memory);
    }
    let writer = match &file {
        Some(file) => SqliteWriter::open(file, generations)?,
        None => None,
    };
    let mut pg_writer = match db {
        Db::Postgres(pool) => PgWriter::new(pool.clone(), pg_generations),
        Db::Sqlite(_) => None,
    };
    // A log in a SQLite file is read with a connection of the rebuild's own.
    let mut reader = match store.sqlite_file() {
        Some(log) if writer.is_some() => Some(SqliteReader::open(log)?),
        _ => None,
    };
    let mut in_flight: Option<Pending> = None;
    let started = std::time::Instant::now();
    let mut position = 0;
    let mut events = 0u64;
    loop {
        let page = match &mut reader {
            Some(reader) => reader.page(position, PAGE).await?,
            None => decode_payloads(store.read_all_payloads(position, PAGE).await?)?,
        };
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        let decoded = Arc::new(page);
        events += decoded.len() as u64;
        for ((p, row, _, tables), memory) in builds.iter_mut().zip(&in_memory) {
            if !memory {
                fold_batch(db, *p, row, tables, &decoded, Fold::Rebuild).await?;
            }
        }
        if let Some(writer) = &writer {
            if let Some(pending) = in_flight.take() {
                pending.wait().await?;
            }
            in_flight = Some(writer.submit(decoded.clone()));
        }
        if let Some(pg_writer) = &mut pg_writer {
            pg_writer.submit(decoded).await?;
        }
        position = last;
        let head = store.head().await?;
        on_progress(RebuildProgress {
            position,
            head,
            events,
        });
    }

    if let Some(pending) = in_flight.take() {
        pending.wait().await?;
    }
    tracing::debug!(
        events,
        ms = started.elapsed().as_millis(),
        "rebuild: log read and folded"
    );
    if let Some(writer) = &writer {
        writer.finish().wait().await?;
    }
    if let Some(pg_writer) = pg_writer {
        pg_writer.finish().await?;
    }
    for ((p, _, _, tables), memory) in builds.iter_mut().zip(&in_memory) {
        if !memory {
            for sql in p.recompute_all() {
                db.execute(&tables.render(sql), &[]).await?;
            }
        }
    }
    drop(writer);

    // The swap: one transaction, holding each live projection's lock so no live batch is
    // half-applied across it.
    let mut tx = db.begin().await?;
    for (p, row, generation, tables) in &builds {
        lock(&mut tx, p.name()).await?;
        lock(&mut tx, row).await?;
        let live_tables = TableSet::live(*p);
        for t in p.tables() {
            let (Some(old), Some(new)) = (live_tables.physical(t.name), tables.physical(t.name))
            else {
                continue;
            };
            tx.execute(&format!("DROP TABLE IF EXISTS {old}"), &[])
                .await?;
            tx.execute(&format!("ALTER TABLE {new} RENAME TO {old}"), &[])
                .await?;
        }
        tx.execute(
            "UPDATE projections SET position = $2, version = $3, generation = $4, updated_at = $5 WHERE name = $1",
            &[
                p.name().into(),
                position.into(),
                i64::from(p.version()).into(),
                (*generation).into(),
                now_text().into(),
            ],
        )
        .await?;
        tx.execute(
            "DELETE FROM projections WHERE name = $1",
            &[row.as_str().into()],
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(position, events, "rebuilt and swapped in");
    Ok(builds
        .iter()
        .map(|(_, _, generation, _)| RebuildReport {
            generation: *generation,
            position,
            events,
        })
        .collect())
}
