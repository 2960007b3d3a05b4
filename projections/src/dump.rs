//! Whole-table dumps, to compare read models: incremental against rebuilt, live against a
//! fresh replay. Every column is cast to text and rows are ordered by primary key.

use std::collections::BTreeMap;

use crate::db::Db;
use crate::projector::{Projector, TableSet};
use crate::runner::ProjectionResult;

/// Table name → rows, each row its columns as text.
pub type Dump = BTreeMap<&'static str, Vec<Vec<Option<String>>>>;

pub async fn dump(db: &Db, projector: &dyn Projector, tables: &TableSet) -> ProjectionResult<Dump> {
    let mut out = Dump::new();
    for t in projector.tables() {
        let physical = tables.physical(t.name).unwrap_or(t.name);
        let columns: Vec<String> = t
            .columns
            .iter()
            .map(|c| format!("CAST({c} AS TEXT)"))
            .collect();
        let sql = format!(
            "SELECT {} FROM {physical} ORDER BY {}",
            columns.join(", "),
            t.key.join(", ")
        );
        let mut rows = db.fetch_text_rows(&sql, t.columns.len()).await?;
        // Collations differ between backends; compare in byte order.
        rows.sort();
        out.insert(t.name, rows);
    }
    Ok(out)
}

/// Replays the whole log into `scratch` (an empty database) and dumps the result: what the
/// live tables must equal.
pub async fn fresh_replay<S: portico_store::EventStore + ?Sized>(
    scratch: &Db,
    store: &S,
    projector: &dyn Projector,
) -> ProjectionResult<Dump> {
    fresh_replay_upto(scratch, store, projector, i64::MAX).await
}

/// Like [`fresh_replay`], only the events up to position `upto`: what a read model that
/// has applied `upto` must equal.
pub async fn fresh_replay_upto<S: portico_store::EventStore + ?Sized>(
    scratch: &Db,
    store: &S,
    projector: &dyn Projector,
    upto: i64,
) -> ProjectionResult<Dump> {
    crate::runner::ensure_live(scratch, projector).await?;
    let mut tables = TableSet::live(projector);
    let mut after = 0;
    loop {
        let mut page = crate::runner::decode_payloads(store.read_all_payloads(after, 2000).await?)?;
        page.retain(|e| e.position <= upto);
        let Some(last) = page.last() else { break };
        after = last.position;
        crate::runner::apply_batch(scratch, projector, projector.name(), &mut tables, &page)
            .await?;
    }
    dump_live(scratch, projector).await
}

pub async fn dump_live(db: &Db, projector: &dyn Projector) -> ProjectionResult<Dump> {
    dump(db, projector, &TableSet::live(projector)).await
}
