//! Folds kept in memory, for rebuilds (on a SQLite file and on PostgreSQL).
//!
//! A projector's statements fold one event at a time into its tables: what the live
//! runner needs, but at 1M events a rebuild spent most of its time running one to three
//! statements per event and projector. A [`MemoryFold`] leaves the same rows in plain maps
//! instead, and hands them over once, in primary-key order, to be inserted into the new
//! generation (`sqlite_writer`, `pg_writer`). It must leave exactly the rows the
//! statements would: `rebuilt_from_zero_equals_built_incrementally` and the replay
//! proptests compare a rebuild, which folds in memory, with the runner's
//! statement-by-statement fold (on both backends).
//!
//! Where a statement would fail (a second row for a primary key), the fold fails the
//! rebuild the same way; unique secondary indexes are checked when the rows are inserted.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use uuid::Uuid;

use crate::projector::{Envelope, Projector, TableSet};

/// One column's value in a row handed over by [`MemoryFold::rows`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Text(&'a str),
    /// A UUID, written as its hyphenated lower-case text (how every id is stored).
    Id(Uuid),
    Int(i64),
    Null,
}

impl<'a> Cell<'a> {
    pub fn opt(text: Option<&'a str>) -> Self {
        text.map_or(Cell::Null, Cell::Text)
    }
}

impl From<bool> for Cell<'_> {
    fn from(v: bool) -> Self {
        Cell::Int(i64::from(v))
    }
}

/// Receives one row (columns in [`crate::projector::TableDef::columns`] order).
pub type RowSink<'s> = dyn FnMut(&[Cell<'_>]) -> Result<(), String> + 's;

pub trait MemoryFold: Send + std::fmt::Debug {
    /// Folds one event. An error is the one the projector's statements would have failed
    /// the batch with.
    fn apply(&mut self, event: &Envelope<'_>) -> Result<(), String>;

    /// Hands every row of `table` (a logical name from the projector's
    /// [`crate::projector::Projector::tables`]) to `sink`, in primary-key order.
    fn rows(&self, table: &str, sink: &mut RowSink<'_>) -> Result<(), String>;
}

/// Inserts a new row, failing as a second `INSERT` of its primary key would.
pub fn insert_new<K: Eq + Hash + Debug, R>(
    rows: &mut HashMap<K, R>,
    table: &str,
    key: K,
    row: R,
) -> Result<(), String> {
    match rows.entry(key) {
        Entry::Occupied(e) => Err(format!(
            "UNIQUE constraint failed: {table} primary key {:?}",
            e.key()
        )),
        Entry::Vacant(e) => {
            e.insert(row);
            Ok(())
        }
    }
}

/// `*to += by`, refused as SQLite refuses an integer overflow.
pub fn add(to: &mut i64, by: i64) -> Result<(), String> {
    *to = to.checked_add(by).ok_or_else(overflow)?;
    Ok(())
}

/// `*from -= by`, refused as SQLite refuses an integer overflow.
pub fn sub(from: &mut i64, by: i64) -> Result<(), String> {
    *from = from.checked_sub(by).ok_or_else(overflow)?;
    Ok(())
}

fn overflow() -> String {
    "integer overflow".to_owned()
}

/// Hands `rows` to `sink` in key order (ids are UUID v7 and `Uuid`'s order is the order
/// of their text, so keys compare as the stored columns do).
pub fn sorted<K: Ord, R>(
    rows: &HashMap<K, R>,
    sink: &mut RowSink<'_>,
    mut row: impl FnMut(&K, &R, &mut RowSink<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut keys: Vec<(&K, &R)> = rows.iter().collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (k, r) in keys {
        row(k, r, sink)?;
    }
    Ok(())
}

/// Shares one copy of strings many rows repeat (actors, methods, project names).
#[derive(Debug, Default)]
pub struct Interner(HashSet<Arc<str>>);

impl Interner {
    pub fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = s.into();
        self.0.insert(shared.clone());
        shared
    }
}

/// For each of `projector`'s tables that `tables` names: its logical name and the statement
/// `write` makes from its physical name and columns (the one a rebuild writes its rows with).
pub(crate) fn write_statements(
    projector: &dyn Projector,
    tables: &TableSet,
    write: impl Fn(&str, &[&str]) -> String,
) -> Vec<(&'static str, String)> {
    projector
        .tables()
        .iter()
        .filter_map(|t| Some((t.name, write(tables.physical(t.name)?, t.columns))))
        .collect()
}
