//! Blue/green rebuild: build a projector's tables from position 0 under new names beside
//! the live ones (which keep serving and keep being updated), then swap them in one
//! transaction. The live checkpoint becomes the new tables' position, so the runner carries
//! on from there on the new tables; nothing is applied twice or skipped.

use portico_store::EventStore;

use crate::db::Db;
use crate::projector::{Projector, TableSet};
use crate::runner::{apply_batch, checkpoint, decode_page, lock, now_text, ProjectionResult};

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

const PAGE: u32 = 2000;

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

#[tracing::instrument(skip_all, fields(projection = projector.name()), err)]
pub async fn rebuild<S: EventStore + ?Sized>(
    db: &Db,
    store: &S,
    projector: &dyn Projector,
    mut on_progress: impl FnMut(RebuildProgress),
) -> ProjectionResult<RebuildReport> {
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
    for ddl in projector.ddl() {
        tx.execute(tables.render(ddl), &[]).await?;
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

    let mut position = 0;
    let mut events = 0u64;
    loop {
        let page = store.read_all(position, PAGE).await?;
        if page.is_empty() {
            break;
        }
        let decoded = decode_page(page)?;
        events += decoded.len() as u64;
        if let Some(p) = apply_batch(db, projector, &row, &mut tables, &decoded).await? {
            position = p;
        }
        let head = store.head().await?;
        on_progress(RebuildProgress {
            position,
            head,
            events,
        });
    }

    // The swap: one transaction, holding the live projection's lock so no live batch is
    // half-applied across it.
    let live_tables = TableSet::live(projector);
    let mut tx = db.begin().await?;
    lock(&mut tx, projector.name()).await?;
    lock(&mut tx, &row).await?;
    for t in projector.tables() {
        let (Some(old), Some(new)) = (live_tables.physical(t.name), tables.physical(t.name)) else {
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
            projector.name().into(),
            position.into(),
            i64::from(projector.version()).into(),
            generation.into(),
            now_text().into(),
        ],
    )
    .await?;
    tx.execute(
        "DELETE FROM projections WHERE name = $1",
        &[row.as_str().into()],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(generation, position, events, "rebuilt and swapped in");
    Ok(RebuildReport {
        generation,
        position,
        events,
    })
}
