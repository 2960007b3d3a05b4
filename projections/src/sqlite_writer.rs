//! A page of projector statements applied to a SQLite read-model database in one hand-off.
//!
//! sqlx runs every SQLite statement on the connection's own thread and wakes the caller
//! with its result: a pair of thread switches per statement, which on this 2-core machine
//! cost more than SQLite's work (perf on a rebuild: about 45% of the time in
//! `try_to_wake_up`/`futex_wait`, `sqlite3VdbeExec` under 4%). A rebuild issues one to
//! three statements per event and projector, so it ran at a twentieth of the rate of a
//! plain scan. This writer owns a connection of its own to the same file, on a thread of
//! its own, and runs a whole page for every projector in one transaction: one hand-off per
//! page instead of per statement.
//!
//! The exactly-once rule is the runner's: inside the transaction (`BEGIN IMMEDIATE`, so it
//! holds the database's write lock) each checkpoint row is read, only the events after it
//! are applied, and the checkpoint moves to the page's last position.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use crate::db::Arg;
use crate::projector::{plan, Fold, Projector, TableSet};
use crate::runner::{now_text, Decoded, ProjectionError, ProjectionResult};

/// A statement rendered for its tables, and its arguments.
type Rendered = (Arc<str>, Vec<Arg>);

/// One projector's share of a page: its statements, event by event, and the checkpoint
/// row they advance.
#[derive(Debug)]
pub struct Planned {
    row: String,
    last: i64,
    events: Vec<(i64, Vec<Rendered>)>,
}

impl Planned {
    /// The statements a rebuild folds `events` with (see [`Fold::Rebuild`]), rendered for
    /// `tables`.
    pub fn new(
        projector: &dyn Projector,
        row: &str,
        tables: &mut TableSet,
        events: &[Decoded],
    ) -> Option<Self> {
        let last = events.last()?.recorded.global_position;
        let planned = plan(
            projector,
            events.iter().map(Decoded::envelope),
            Fold::Rebuild,
        )
        .into_iter()
        .map(|(position, stmts)| {
            let rendered = stmts
                .into_iter()
                .map(|s| (tables.render(s.sql), s.args))
                .collect();
            (position, rendered)
        })
        .collect();
        Some(Self {
            row: row.to_owned(),
            last,
            events: planned,
        })
    }
}

type Reply = oneshot::Sender<Result<(), String>>;

/// The writer thread's handle. Dropping it ends the thread once its queue is empty.
#[derive(Debug)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<(Vec<Planned>, Reply)>,
}

/// A submitted page; await it with [`Pending::wait`].
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Result<(), String>>);

impl Pending {
    pub async fn wait(self) -> ProjectionResult<()> {
        match self.0.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ProjectionError::Task(e)),
            Err(_) => Err(ProjectionError::Task(
                "the SQLite writer thread stopped".to_owned(),
            )),
        }
    }
}

impl SqliteWriter {
    /// A writer on the database file at `path`, or `None` when there is no such file (an
    /// in-memory database cannot be shared with a second connection).
    pub fn open(path: &Path) -> ProjectionResult<Option<Self>> {
        if !path.is_file() {
            return Ok(None);
        }
        let conn = connect(path).map_err(|e| sqlite_error(path, &e))?;
        let (jobs, queue) = mpsc::channel::<(Vec<Planned>, Reply)>();
        std::thread::Builder::new()
            .name("portico-sqlite-writer".to_owned())
            .spawn(move || {
                let mut conn = conn;
                for (job, reply) in queue {
                    let result = apply(&mut conn, job).map_err(|e| e.to_string());
                    // The caller may have given up waiting; that is its business.
                    let _ = reply.send(result);
                }
            })
            .map_err(|e| ProjectionError::Task(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Some(Self { jobs }))
    }

    /// Queues a page (one [`Planned`] per projector) to be applied in one transaction.
    pub fn submit(&self, job: Vec<Planned>) -> Pending {
        let (reply, answer) = oneshot::channel();
        // A send fails only when the thread is gone; the receiver then reports it.
        let _ = self.jobs.send((job, reply));
        Pending(answer)
    }
}

fn sqlite_error(path: &Path, e: &rusqlite::Error) -> ProjectionError {
    ProjectionError::Task(format!("SQLite writer on {}: {e}", path.display()))
}

/// The settings of every Portico SQLite connection (`portico_store::sqlite::
/// connect_options`: WAL, foreign keys, a 30 s busy timeout), except `synchronous=NORMAL`:
/// in WAL mode a commit is then not synced until the next checkpoint, but the database
/// stays consistent. A rebuild needs no more: a page lost to a power cut takes its
/// checkpoint row with it, a rebuild cut short starts again from scratch, and the swap that
/// puts rebuilt tables in service commits on a `synchronous=FULL` connection, whose sync of
/// the log covers every page written before it.
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(PathBuf::from(path))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn apply(conn: &mut Connection, job: Vec<Planned>) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_text();
    for planned in job {
        let current: i64 = tx
            .query_row(
                "SELECT position FROM projections WHERE name = $1",
                [&planned.row],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
        if planned.last <= current {
            continue;
        }
        for (position, stmts) in &planned.events {
            if *position <= current {
                continue;
            }
            for (sql, args) in stmts {
                let mut stmt = tx.prepare_cached(sql)?;
                bind(&mut stmt, args)?;
                stmt.raw_execute()?;
            }
        }
        tx.execute(
            "UPDATE projections SET position = $2, updated_at = $3 WHERE name = $1",
            rusqlite::params![planned.row, planned.last, now],
        )?;
    }
    tx.commit()
}

/// Binds `args` by the number in each `$n` placeholder (as sqlx does), so a statement may
/// use a placeholder twice or out of order.
fn bind(stmt: &mut rusqlite::Statement<'_>, args: &[Arg]) -> rusqlite::Result<()> {
    for index in 1..=stmt.parameter_count() {
        let n = stmt
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index);
        let arg = args
            .get(n.wrapping_sub(1))
            .ok_or(rusqlite::Error::InvalidParameterCount(n, args.len()))?;
        match arg {
            Arg::Int(v) => stmt.raw_bind_parameter(index, v)?,
            Arg::Text(s) => stmt.raw_bind_parameter(index, s.as_str())?,
            Arg::OptText(s) => stmt.raw_bind_parameter(index, s.as_deref())?,
        }
    }
    Ok(())
}
