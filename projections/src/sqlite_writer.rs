//! A SQLite rebuild folded in a private scratch database, then copied into the read-model
//! file in key order.
//!
//! sqlx runs every SQLite statement on the connection's own thread and wakes the caller
//! with its result: a pair of thread switches per statement, which on this 2-core machine
//! cost more than SQLite's work (perf on a rebuild: about 45% of the time in
//! `try_to_wake_up`/`futex_wait`, `sqlite3VdbeExec` under 4%). This writer owns a
//! connection of its own, on a thread of its own, and applies a whole page for every
//! projector in one hand-off.
//!
//! It applies them to a scratch database, not to the read-model file: a temporary file
//! beside it with no journal and no syncs, holding the new generation's tables without
//! their secondary indexes. Folding into the file itself wrote every touched B-tree page
//! to the WAL again at each page's commit, and checkpointed it, while holding the file's
//! write lock (so appends waited); perf on the old writer showed it waiting on the disk
//! for a third of the rebuild. The scratch is private, so none of that is needed: a page
//! lost with the process takes the whole rebuild with it, and the next one starts again
//! from nothing (see `rebuild::start`).
//!
//! When the log is read to its end, [`SqliteWriter::finish`] runs the projectors'
//! `recompute_all` statements in the scratch and copies each table into the file's new
//! generation in primary-key order, in transactions of [`COPY_CHUNK`] rows so that appends
//! wait at most one chunk for the write lock. The scratch file is deleted when the writer
//! ends, whatever way it ends; one left by a killed process is deleted by the next
//! rebuild of the same database.
//!
//! Each page also moves the projector's `#rebuild` row in the file, so `portico-replay
//! status` shows how far a rebuild is.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::oneshot;

use crate::db::Arg;
use crate::projector::{plan, Fold, Projector, TableSet};
use crate::runner::{now_text, Decoded, ProjectionError, ProjectionResult};

/// Rows per transaction when copying a table from the scratch into the file: each holds
/// the file's write lock while it runs (0.14 to 0.19 s for this many rows with 1M events,
/// timed while profiling).
const COPY_CHUNK: usize = 20_000;

/// A statement rendered for its tables, and its arguments.
type Rendered = (Arc<str>, Vec<Arg>);

/// One projector's share of a page: its statements in log order, and the checkpoint row
/// they advance.
#[derive(Debug)]
pub struct Planned {
    row: String,
    last: i64,
    stmts: Vec<Rendered>,
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
        .flat_map(|(_, stmts)| stmts)
        .map(|s| (tables.render(s.sql), s.args))
        .collect();
        Some(Self {
            row: row.to_owned(),
            last,
            stmts: planned,
        })
    }
}

/// What the scratch holds for one projector, and how to finish it: the tables it gets
/// (rendered for the new generation) and the statements that end its rebuild.
#[derive(Debug, Clone)]
pub struct Generation {
    /// `CREATE TABLE` statements of the generation. Secondary indexes are left out of the
    /// scratch: folding reaches rows by primary key only, and the file's tables have them.
    create: Vec<Arc<str>>,
    /// Physical table names with their primary-key columns, in the order to copy them.
    tables: Vec<(String, &'static [&'static str])>,
    /// The projector's `recompute_all`, rendered.
    recompute: Vec<Arc<str>>,
}

impl Generation {
    pub fn new(projector: &dyn Projector, tables: &mut TableSet) -> Self {
        let create = projector
            .ddl()
            .iter()
            .filter(|ddl| ddl.trim_start().starts_with("CREATE TABLE"))
            .map(|ddl| tables.render(ddl))
            .collect();
        let recompute = projector
            .recompute_all()
            .iter()
            .map(|sql| tables.render(sql))
            .collect();
        let tables = projector
            .tables()
            .iter()
            .filter_map(|t| Some((tables.physical(t.name)?.to_owned(), t.key)))
            .collect();
        Self {
            create,
            tables,
            recompute,
        }
    }
}

type Reply = oneshot::Sender<Result<(), String>>;

#[derive(Debug)]
enum Job {
    Page(Vec<Planned>),
    Finish,
}

/// The writer thread's handle. Dropping it ends the thread once its queue is empty, and
/// the thread deletes the scratch.
#[derive(Debug)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<(Job, Reply)>,
}

/// A submitted job; await it with [`Pending::wait`].
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
    /// A writer that rebuilds `generations` of the database file at `path` through a
    /// scratch beside it, or `None` when there is no such file (an in-memory database
    /// cannot be shared with a second connection).
    pub fn open(path: &Path, generations: Vec<Generation>) -> ProjectionResult<Option<Self>> {
        if !path.is_file() {
            return Ok(None);
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let prefix = scratch_prefix(path);
        remove_stale_scratches(&dir, &prefix);
        let scratch = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(SCRATCH_SUFFIX)
            .tempfile_in(&dir)
            .map_err(|e| {
                ProjectionError::Task(format!(
                    "cannot create a rebuild scratch file in {}: {e}",
                    dir.display()
                ))
            })?;
        let conn =
            connect(scratch.path(), path, &generations).map_err(|e| sqlite_error(path, &e))?;
        let (jobs, queue) = mpsc::channel::<(Job, Reply)>();
        std::thread::Builder::new()
            .name("portico-sqlite-writer".to_owned())
            .spawn(move || {
                let mut writer = Thread { conn, generations };
                for (job, reply) in queue {
                    let (result, last) = match job {
                        Job::Page(page) => (writer.page(page), false),
                        Job::Finish => (writer.finish(), true),
                    };
                    // The scratch has no journal, so a failed statement leaves it in no
                    // known state: refuse everything after it (the rebuild fails). After
                    // the copy it has no more use. Either way the scratch is closed and
                    // deleted before the caller hears, so the rebuild leaves no file.
                    let result = result.map_err(|e| e.to_string());
                    if last || result.is_err() {
                        drop(writer);
                        drop(scratch);
                        let _ = reply.send(result);
                        return;
                    }
                    // The caller may have given up waiting; that is its business.
                    let _ = reply.send(result);
                }
                // The handle was dropped without finishing (the rebuild failed or was
                // given up): the scratch is deleted as `scratch` drops here.
            })
            .map_err(|e| ProjectionError::Task(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Some(Self { jobs }))
    }

    /// Queues a page (one [`Planned`] per projector) to be folded into the scratch.
    pub fn submit(&self, page: Vec<Planned>) -> Pending {
        self.send(Job::Page(page))
    }

    /// Queues the end of the rebuild: recomputations, then the copy into the file.
    pub fn finish(&self) -> Pending {
        self.send(Job::Finish)
    }

    fn send(&self, job: Job) -> Pending {
        let (reply, answer) = oneshot::channel();
        // A send fails only when the thread is gone; the receiver then reports it.
        let _ = self.jobs.send((job, reply));
        Pending(answer)
    }
}

const SCRATCH_SUFFIX: &str = ".scratch";

/// Scratch files of the database at `path` are named `.{file name}.rebuild-{random}.scratch`.
fn scratch_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.rebuild-")
}

/// Deletes the scratch files that rebuilds of this database killed before they could
/// clean up left in `dir` (a kill skips destructors). A scratch still in use by a rebuild
/// in another process loses only its name: on Unix its open file lives on until closed.
fn remove_stale_scratches(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(SCRATCH_SUFFIX) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::info!(file = %name, "removed a stale rebuild scratch file"),
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "cannot remove a stale rebuild scratch file")
                }
            }
        }
    }
}

fn sqlite_error(path: &Path, e: &rusqlite::Error) -> ProjectionError {
    ProjectionError::Task(format!("SQLite writer on {}: {e}", path.display()))
}

/// The scratch connection, with the read-model file attached as `live`.
///
/// The scratch needs no durability at all (see the module's doc): no journal, no syncs,
/// one connection. The file keeps the settings of every Portico SQLite connection
/// (`portico_store::sqlite::connect_options`: WAL, a 30 s busy timeout), except
/// `synchronous=NORMAL`: in WAL mode a commit is then not synced until the next
/// checkpoint, but the database stays consistent. The copy needs no more: a chunk lost to
/// a power cut leaves a generation nobody serves, and the swap that puts it in service
/// commits on a `synchronous=FULL` connection, whose sync of the log covers every chunk
/// written before it.
fn connect(
    scratch: &Path,
    live: &Path,
    generations: &[Generation],
) -> rusqlite::Result<Connection> {
    let conn = Connection::open(scratch)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "OFF")?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -65536)?;
    conn.pragma_update(None, "temp_store", "FILE")?;
    conn.set_prepared_statement_cache_capacity(64);
    for g in generations {
        for create in &g.create {
            conn.execute_batch(create)?;
        }
    }
    conn.execute(
        "ATTACH DATABASE ?1 AS live",
        [live.to_string_lossy().as_ref()],
    )?;
    conn.pragma_update(
        Some(rusqlite::DatabaseName::Attached("live")),
        "synchronous",
        "NORMAL",
    )?;
    conn.pragma_update(
        Some(rusqlite::DatabaseName::Attached("live")),
        "cache_size",
        -8192,
    )?;
    Ok(conn)
}

/// The writer thread's state.
struct Thread {
    conn: Connection,
    generations: Vec<Generation>,
}

impl Thread {
    /// Folds a page into the scratch, then records the progress in the file (one
    /// transaction for every projector's `#rebuild` row).
    ///
    /// No event is skipped or folded twice because the caller reads the log forward and
    /// hands each page over once (`rebuild::rebuild_many`); a scratch never outlives its
    /// rebuild, so nothing in it comes from an earlier attempt.
    fn page(&mut self, page: Vec<Planned>) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for (sql, args) in page.iter().flat_map(|p| &p.stmts) {
            let mut stmt = tx.prepare_cached(sql)?;
            bind(&mut stmt, args)?;
            stmt.raw_execute()?;
        }
        tx.commit()?;
        let now = now_text();
        let tx = self.conn.transaction()?;
        for planned in &page {
            tx.execute(
                "UPDATE live.projections SET position = $2, updated_at = $3 WHERE name = $1",
                rusqlite::params![planned.row, planned.last, now],
            )?;
        }
        tx.commit()
    }

    /// Runs the recomputations in the scratch and copies every table into the file.
    fn finish(&mut self) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        for g in &self.generations {
            for sql in &g.recompute {
                tx.execute_batch(sql)?;
            }
        }
        tx.commit()?;
        for g in &self.generations {
            for (table, key) in &g.tables {
                copy_table(&mut self.conn, table, key, COPY_CHUNK)?;
            }
        }
        Ok(())
    }
}

/// Copies `main.{table}` into `live.{table}` in primary-key order, `chunk` rows per
/// transaction. Chunks are bounded by key (`WHERE (key) > (last key copied)`), so each
/// starts where the previous one ended with one index seek.
fn copy_table(
    conn: &mut Connection,
    table: &str,
    key: &[&str],
    chunk: usize,
) -> rusqlite::Result<()> {
    use rusqlite::types::Value;
    let cols = key.join(", ");
    // `?{from}, ?{from + 1}, ...`: one placeholder per key column.
    let marks = |from: usize| {
        (from..from + key.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let after = |lower: bool| {
        if lower {
            format!("WHERE ({cols}) > ({})", marks(1))
        } else {
            String::new()
        }
    };
    let mut lower: Option<Vec<Value>> = None;
    loop {
        // The last key of the next chunk, or none when the rest fits in one.
        let upper: Option<Vec<Value>> = {
            let sql = format!(
                "SELECT {cols} FROM main.{table} {} ORDER BY {cols} LIMIT 1 OFFSET {}",
                after(lower.is_some()),
                chunk.saturating_sub(1)
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(lower.iter().flatten()))?;
            match rows.next()? {
                Some(row) => Some(
                    (0..key.len())
                        .map(|i| row.get::<_, Value>(i))
                        .collect::<rusqlite::Result<_>>()?,
                ),
                None => None,
            }
        };
        let mut sql = format!(
            "INSERT INTO live.{table} SELECT * FROM main.{table} {}",
            after(lower.is_some())
        );
        if upper.is_some() {
            let from = if lower.is_some() { key.len() + 1 } else { 1 };
            let joiner = if lower.is_some() { "AND" } else { "WHERE" };
            sql.push_str(&format!(" {joiner} ({cols}) <= ({})", marks(from)));
        }
        sql.push_str(&format!(" ORDER BY {cols}"));
        let args = lower.iter().flatten().chain(upper.iter().flatten());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(&sql, rusqlite::params_from_iter(args))?;
        tx.commit()?;
        match upper {
            Some(u) => lower = Some(u),
            None => return Ok(()),
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;

    fn rows(conn: &Connection, sql: &str) -> Vec<(String, i64, String)> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    /// Chunk boundaries inside and between runs of the first key column, and a last chunk
    /// that is full, short or empty: every row arrives once.
    #[test]
    fn a_chunked_copy_moves_every_row_once_whatever_the_chunk() {
        for chunk in [1, 2, 3, 5, 7, 24, 25, 100] {
            let mut conn = Connection::open_in_memory().unwrap();
            conn.execute_batch(
                "CREATE TABLE t (a TEXT NOT NULL, b INTEGER NOT NULL, v TEXT NOT NULL,
                                 PRIMARY KEY (a, b));
                 ATTACH DATABASE ':memory:' AS live;
                 CREATE TABLE live.t (a TEXT NOT NULL, b INTEGER NOT NULL, v TEXT NOT NULL,
                                      PRIMARY KEY (a, b));",
            )
            .unwrap();
            for a in ["x", "y", "z", "zz", "é"] {
                for b in [-3, 0, 1, 2, 10] {
                    conn.execute(
                        "INSERT INTO t VALUES (?1, ?2, ?3)",
                        rusqlite::params![a, b, format!("{a}{b}")],
                    )
                    .unwrap();
                }
            }
            copy_table(&mut conn, "t", &["a", "b"], chunk).unwrap();
            assert_eq!(
                rows(&conn, "SELECT * FROM live.t ORDER BY a, b"),
                rows(&conn, "SELECT * FROM main.t ORDER BY a, b"),
                "chunk of {chunk}"
            );
        }
    }

    #[test]
    fn an_empty_table_copies_to_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (a TEXT PRIMARY KEY, b INTEGER, v TEXT);
             ATTACH DATABASE ':memory:' AS live;
             CREATE TABLE live.t (a TEXT PRIMARY KEY, b INTEGER, v TEXT);",
        )
        .unwrap();
        copy_table(&mut conn, "t", &["a"], 3).unwrap();
        assert!(rows(&conn, "SELECT * FROM live.t").is_empty());
    }
}
