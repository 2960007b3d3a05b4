//! What a projector is: a name, a version, the tables it owns, and a pure function from one
//! event to the SQL statements that fold it into those tables. Projectors do not read:
//! whatever they need is in the event or reachable by a subquery on their own tables, which
//! keeps them deterministic, backend-neutral and cheap to rebuild.

use std::collections::HashMap;
use std::sync::Arc;

use portico_domain::Event;
use portico_store::Metadata;

use crate::db::Arg;
use crate::memory::MemoryFold;

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
    /// The statement recomputes derived rows wholly from the projector's own tables (and
    /// nothing reads those rows while folding): run again later, it leaves the same rows,
    /// so of several identical ones in a batch only the last need run.
    pub recompute: bool,
}

pub fn stmt(sql: &'static str, args: Vec<Arg>) -> Stmt {
    Stmt {
        sql,
        args,
        recompute: false,
    }
}

/// A [`Stmt`] that recomputes derived rows (see [`Stmt::recompute`]).
pub fn recompute(sql: &'static str, args: Vec<Arg>) -> Stmt {
    Stmt {
        sql,
        args,
        recompute: true,
    }
}

/// The statements that fold `events` into `projector`'s tables, event by event (with each
/// event's position), without the recomputations a later identical one makes redundant.
/// Dropping only earlier copies keeps a batch exactly-once: a checkpoint that skips the
/// last copy's event skips every earlier one too.
pub fn plan<'a>(
    projector: &dyn Projector,
    events: impl IntoIterator<Item = Envelope<'a>>,
    fold: Fold,
) -> Vec<(i64, Vec<Stmt>)> {
    let skip_recompute = fold == Fold::Rebuild && !projector.recompute_all().is_empty();
    let mut planned: Vec<(i64, Vec<Stmt>)> = Vec::new();
    for e in events {
        let mut stmts = Vec::new();
        projector.apply(&e, &mut stmts);
        if skip_recompute {
            stmts.retain(|s| !s.recompute);
        }
        if !stmts.is_empty() {
            planned.push((e.position, stmts));
        }
    }
    let mut later = std::collections::HashSet::new();
    for (_, stmts) in planned.iter_mut().rev() {
        let mut i = stmts.len();
        while i > 0 {
            i -= 1;
            let s = &stmts[i];
            if s.recompute && !later.insert((s.sql, s.args.clone())) {
                stmts.remove(i);
            }
        }
    }
    planned.retain(|(_, stmts)| !stmts.is_empty());
    planned
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
    /// Statements that recompute, from the projector's own tables, every row its
    /// [`recompute`] statements keep up to date. When there are some, a rebuild skips the
    /// per-event recomputations and runs these once, after the last event.
    fn recompute_all(&self) -> &'static [&'static str] {
        &[]
    }
    /// A fresh fold of the projector's tables in memory, which a rebuild on SQLite uses
    /// in place of the statements (see [`crate::memory`]); `None` folds with statements.
    fn memory(&self) -> Option<Box<dyn MemoryFold>> {
        None
    }
}

/// How a batch is folded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Every statement (the live runner, dumps, as-of replays).
    Live,
    /// A rebuild: a projector with [`Projector::recompute_all`] leaves out its per-event
    /// recomputations, and the rebuild runs `recompute_all` at the end.
    Rebuild,
}

/// Physical names for a projector's tables: the live names, or a generation being built.
#[derive(Debug, Clone)]
pub struct TableSet {
    names: Vec<(&'static str, String)>,
    rendered: HashMap<&'static str, Arc<str>>,
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

    /// The template with every `{table}` replaced; cached, since batches repeat templates
    /// (and shared, so a batch can carry it to another thread without copying it).
    pub fn render(&mut self, template: &'static str) -> Arc<str> {
        let names = &self.names;
        self.rendered
            .entry(template)
            .or_insert_with(|| {
                let mut sql = template.to_owned();
                for (logical, physical) in names {
                    sql = sql.replace(&format!("{{{logical}}}"), physical);
                }
                sql.into()
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use portico_domain::ids::InvoiceId;

    use super::*;

    /// Voiding an invoice: one plain statement and one recomputation keyed by the invoice.
    #[derive(Debug)]
    struct Voids;

    impl Projector for Voids {
        fn name(&self) -> &'static str {
            "voids"
        }
        fn version(&self) -> i32 {
            1
        }
        fn tables(&self) -> &'static [TableDef] {
            &[]
        }
        fn ddl(&self) -> &'static [&'static str] {
            &[]
        }
        fn apply(&self, e: &Envelope<'_>, out: &mut Vec<Stmt>) {
            if let Event::InvoiceVoided { invoice_id, .. } = e.event {
                out.push(stmt("void", vec![invoice_id.to_string().into()]));
                out.push(recompute("sum", vec![invoice_id.to_string().into()]));
            }
        }
        fn recompute_all(&self) -> &'static [&'static str] {
            &["sum all"]
        }
    }

    fn voided(invoice_id: InvoiceId) -> Event {
        Event::InvoiceVoided {
            invoice_id,
            reason: "duplicate".to_owned(),
        }
    }

    fn shape(planned: &[(i64, Vec<Stmt>)]) -> Vec<(i64, Vec<&'static str>)> {
        planned
            .iter()
            .map(|(at, stmts)| (*at, stmts.iter().map(|s| s.sql).collect()))
            .collect()
    }

    #[test]
    fn only_the_last_of_identical_recomputations_is_kept() {
        let (a, b) = (InvoiceId::new(), InvoiceId::new());
        let events = [voided(a), voided(b), voided(a)];
        let meta = Metadata::new(None, "test");
        let envelopes = events.iter().enumerate().map(|(i, event)| Envelope {
            position: i as i64 + 1,
            recorded_at: "2026-12-03T00:00:00.000000Z",
            metadata: &meta,
            event,
        });
        let live = plan(&Voids, envelopes.clone(), Fold::Live);
        assert_eq!(
            shape(&live),
            vec![
                (1, vec!["void"]),
                (2, vec!["void", "sum"]),
                (3, vec!["void", "sum"])
            ]
        );
        assert_eq!(live[2].1[1].args, vec![Arg::from(a.to_string())]);
        assert_eq!(live[1].1[1].args, vec![Arg::from(b.to_string())]);

        let rebuild = plan(&Voids, envelopes, Fold::Rebuild);
        assert_eq!(
            shape(&rebuild),
            vec![(1, vec!["void"]), (2, vec!["void"]), (3, vec!["void"])]
        );
    }
}
