//! What a projector is: a name, a version, the tables it owns, and a pure function from one
//! event to the SQL statements that fold it into those tables. Projectors do not read:
//! whatever they need is in the event or reachable by a subquery on their own tables, which
//! keeps them deterministic, backend-neutral and cheap to rebuild.

use std::collections::HashMap;

use portico_domain::Event;
use portico_store::Metadata;

use crate::db::Arg;

/// A table a projector owns. In SQL templates, `{name}` stands for the table's physical
/// name, which differs while a blue/green rebuild builds a new generation beside it.
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    /// Every column, for dumps and comparisons.
    pub columns: &'static [&'static str],
    /// The primary key columns: the order rows are compared in.
    pub key: &'static [&'static str],
}

/// One event with the envelope fields projectors use.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub position: i64,
    /// `recorded_at` in its stored text form (RFC 3339, microseconds, UTC).
    pub recorded_at: &'a str,
    pub metadata: &'a Metadata,
    pub event: &'a Event,
}

/// A statement template and its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub sql: &'static str,
    pub args: Vec<Arg>,
}

pub fn stmt(sql: &'static str, args: Vec<Arg>) -> Stmt {
    Stmt { sql, args }
}

pub trait Projector: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// Bumped when the tables or the folding change: a projector whose live tables were
    /// built by another version is rebuilt (blue/green) when the runner starts.
    fn version(&self) -> i32;
    fn tables(&self) -> &'static [TableDef];
    /// `CREATE TABLE` / `CREATE INDEX` templates. Index names must start with `{table}` so
    /// each generation's indexes have names of their own.
    fn ddl(&self) -> &'static [&'static str];
    /// Appends to `out` the statements that fold `event` into the tables.
    fn apply(&self, event: &Envelope<'_>, out: &mut Vec<Stmt>);
}

/// Physical names for a projector's tables: the live names, or a generation being built.
#[derive(Debug, Clone)]
pub struct TableSet {
    names: Vec<(&'static str, String)>,
    rendered: HashMap<&'static str, String>,
}

impl TableSet {
    pub fn live(projector: &dyn Projector) -> Self {
        Self::with(projector, |t| t.to_owned())
    }

    pub fn generation(projector: &dyn Projector, generation: i64) -> Self {
        Self::with(projector, |t| format!("{t}__g{generation}"))
    }

    fn with(projector: &dyn Projector, name: impl Fn(&str) -> String) -> Self {
        let mut names: Vec<(&'static str, String)> = projector
            .tables()
            .iter()
            .map(|t| (t.name, name(t.name)))
            .collect();
        // Longest first, so `{invoices}` never eats part of `{invoices_x}`.
        names.sort_by_key(|(logical, _)| std::cmp::Reverse(logical.len()));
        Self {
            names,
            rendered: HashMap::new(),
        }
    }

    pub fn physical(&self, logical: &str) -> Option<&str> {
        self.names
            .iter()
            .find(|(l, _)| *l == logical)
            .map(|(_, p)| p.as_str())
    }

    /// The template with every `{table}` replaced; cached, since batches repeat templates.
    pub fn render(&mut self, template: &'static str) -> &str {
        let names = &self.names;
        self.rendered.entry(template).or_insert_with(|| {
            let mut sql = template.to_owned();
            for (logical, physical) in names {
                sql = sql.replace(&format!("{{{logical}}}"), physical);
            }
            sql
        })
    }
}
