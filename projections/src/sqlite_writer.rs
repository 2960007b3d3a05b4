//! A SQLite rebuild folded in memory on a thread of its own, then written into the
//! read-model file in primary-key order, indexes last.
//!
//! Folding each event with its statements, as the live runner does, cost a 1M-event
//! rebuild most of its time: one to three statements per event and projector, each
//! through sqlx's connection thread (a pair of thread switches per statement; perf showed
//! about 45% of the time in `try_to_wake_up`/`futex_wait`), and then, folded in a scratch
//! file of its own, still 9.8 s of SQLite's B-tree work plus 4.2 s to copy the tables into
//! the file. Projectors that have a [`MemoryFold`] are rebuilt here instead:
//!
//! - [`SqliteReader`] reads the log's pages with a connection of its own and decodes them
//!   (sqlx's per-row hand-off between threads was most of the reading time);
//! - each page is handed to the writer thread once and folded into maps while the next
//!   page is read and decoded;
//! - when the log is read to its end, [`SqliteWriter::finish`] inserts every table's rows
//!   into the file's new generation in key order, in transactions of [`INSERT_CHUNK`]
//!   rows, and then creates the generation's secondary indexes, one transaction each.
//!   Filling a table through its indexes inserted each row into every index at a random
//!   place: with Python's sqlite3, 221,000 invoice-like rows in chunks of 20,000 took
//!   1.1 s without the invoices-by-client index and 4.4 s with it, and building it
//!   afterwards 0.6 s; `CREATE INDEX` sorts once.
//!
//! Appends wait for the file's write lock at most one chunk or one index build: at 1M
//! events, about 0.1 s for a chunk (a table's insert time over its chunks) and 0.7 s for
//! the biggest index (invoices by client), timed while measuring. Each page also moves the
//! projector's `#rebuild` row in the file, so `portico-replay status` shows how far a
//! rebuild is. A rebuild lost with the process leaves only an unfinished generation, which
//! the next rebuild drops (`rebuild::start`).

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::memory::{write_statements, Cell, MemoryFold};
use crate::projector::{Projector, TableSet};
use crate::runner::{decode_payloads, now_text, Decoded, ProjectionError, ProjectionResult};

/// Rows per transaction when inserting the folded tables into the file: each holds the
/// file's write lock while it runs.
pub const INSERT_CHUNK: usize = 20_000;

/// One projector's rebuild in memory: its fold, its `#rebuild` checkpoint row, and the
/// tables to insert into (logical name, `INSERT` for the new generation).
#[derive(Debug)]
pub struct Generation {
    /// Freed once its rows are in the file.
    fold: Option<Box<dyn MemoryFold>>,
    row: String,
    tables: Vec<(&'static str, String)>,
    /// `CREATE INDEX` statements, run once the tables are filled.
    indexes: Vec<String>,
}

impl Generation {
    /// The in-memory rebuild of `projector` into `tables`, or `None` when the projector
    /// folds with statements only.
    pub fn new(
        projector: &dyn Projector,
        row: &str,
        tables: &TableSet,
        indexes: Vec<String>,
    ) -> Option<Self> {
        let fold = projector.memory()?;
        let tables = write_statements(projector, tables, |physical, columns| {
            let marks = (1..=columns.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "INSERT INTO {physical} ({}) VALUES ({marks})",
                columns.join(", ")
            )
        });
        Some(Self {
            fold: Some(fold),
            row: row.to_owned(),
            tables,
            indexes,
        })
    }
}

type Reply = oneshot::Sender<Result<(), String>>;

enum Job {
    Page(Arc<Vec<Decoded>>),
    Finish,
}

/// The writer thread's handle. Dropping it ends the thread once its queue is empty.
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
    /// A writer that rebuilds `generations` into the database file at `path`, or `None`
    /// when there is no such file (an in-memory database cannot be shared with a second
    /// connection) or nothing to rebuild in memory.
    pub fn open(path: &Path, generations: Vec<Generation>) -> ProjectionResult<Option<Self>> {
        if !path.is_file() || generations.is_empty() {
            return Ok(None);
        }
        let conn = connect(path).map_err(|e| sqlite_error(path, &e))?;
        let path = path.to_owned();
        let (jobs, queue) = mpsc::channel::<(Job, Reply)>();
        std::thread::Builder::new()
            .name("portico-sqlite-writer".to_owned())
            .spawn(move || {
                let mut writer = Thread {
                    conn,
                    generations,
                    folding: Duration::ZERO,
                };
                for (job, reply) in queue {
                    let (result, last) = match job {
                        Job::Page(page) => (writer.page(&page), false),
                        Job::Finish => (writer.finish(), true),
                    };
                    // A fold that failed is in no known state: refuse everything after it
                    // (the rebuild fails). The maps are freed before the caller hears.
                    let failed = result.is_err();
                    let result =
                        result.map_err(|e| format!("SQLite writer on {}: {e}", path.display()));
                    if last || failed {
                        drop(writer);
                        let _ = reply.send(result);
                        return;
                    }
                    // The caller may have given up waiting; that is its business.
                    let _ = reply.send(result);
                }
            })
            .map_err(|e| ProjectionError::Task(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Some(Self { jobs }))
    }

    /// Queues a page to be folded by every generation.
    pub fn submit(&self, page: Arc<Vec<Decoded>>) -> Pending {
        self.send(Job::Page(page))
    }

    /// Queues the end of the rebuild: every table inserted into the file.
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

/// Reads `$all` from a SQLite log with a connection of its own, on tokio's blocking pool:
/// sqlx hands every row from its connection thread to the caller, and with the writer
/// thread folding beside it that was most of a rebuild's reading time (perf: the reading
/// thread's top entry was the kernel's wake-up path).
#[derive(Debug)]
pub struct SqliteReader {
    /// The connection, lent to the blocking task while it reads a page.
    conn: Option<Connection>,
    path: std::path::PathBuf,
}

impl SqliteReader {
    pub fn open(path: &Path) -> ProjectionResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|conn| {
            conn.busy_timeout(Duration::from_secs(30))?;
            Ok(conn)
        })
        .map_err(|e| sqlite_error(path, &e))?;
        Ok(Self {
            conn: Some(conn),
            path: path.to_owned(),
        })
    }

    /// Up to `limit` events after `after`, decoded: what
    /// `decode_payloads(store.read_all_payloads(after, limit))` returns.
    pub async fn page(&mut self, after: i64, limit: u32) -> ProjectionResult<Vec<Decoded>> {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| ProjectionError::Task("the log reader was lost".to_owned()))?;
        let (conn, page) = tokio::task::spawn_blocking(move || {
            let page = read_page(&conn, after, limit);
            (conn, page)
        })
        .await
        .map_err(|e| ProjectionError::Task(e.to_string()))?;
        self.conn = Some(conn);
        page.map_err(|e| match e {
            ReadError::Sql(e) => sqlite_error(&self.path, &e),
            ReadError::Projection(e) => e,
        })
    }
}

enum ReadError {
    Sql(rusqlite::Error),
    Projection(ProjectionError),
}

impl From<rusqlite::Error> for ReadError {
    fn from(e: rusqlite::Error) -> Self {
        ReadError::Sql(e)
    }
}

fn read_page(conn: &Connection, after: i64, limit: u32) -> Result<Vec<Decoded>, ReadError> {
    let mut stmt = conn.prepare_cached(portico_store::PAYLOADS_AFTER)?;
    let mut rows = stmt.query(rusqlite::params![after, limit])?;
    let mut page = Vec::with_capacity(limit as usize);
    while let Some(row) = rows.next()? {
        let payload = portico_store::sqlite::stored_payload(
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get_ref(4)?.as_str().map_err(rusqlite::Error::from)?,
            row.get_ref(5)?.as_str().map_err(rusqlite::Error::from)?,
        )
        .map_err(|e| ReadError::Projection(e.into()))?;
        page.push(payload);
    }
    decode_payloads(page).map_err(ReadError::Projection)
}

fn sqlite_error(path: &Path, e: &rusqlite::Error) -> ProjectionError {
    ProjectionError::Task(format!("SQLite writer on {}: {e}", path.display()))
}

/// A connection to the read-model file with the settings of every Portico SQLite
/// connection (`portico_store::sqlite::connect_options`: WAL, a 30 s busy timeout),
/// except `synchronous=NORMAL`: in WAL mode a commit is then not synced until the next
/// checkpoint, but the database stays consistent. The rebuild needs no more: a chunk lost
/// to a power cut leaves a generation nobody serves, and the swap that puts it in service
/// commits on a `synchronous=FULL` connection, whose sync of the log covers every chunk
/// written before it. The WAL is checkpointed every 10,000 pages instead of 1,000: the same
/// bytes, a tenth of the syncs (the invoices' inserts went from 1.46 s to 0.96 s).
fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -16384)?;
    conn.pragma_update(None, "wal_autocheckpoint", 10000)?;
    Ok(conn)
}

/// The writer thread's state.
struct Thread {
    conn: Connection,
    generations: Vec<Generation>,
    /// Time spent folding pages, reported when the rebuild finishes.
    folding: Duration,
}

impl Thread {
    /// Folds a page into every generation, then records the progress in the file (one
    /// transaction for every projector's `#rebuild` row).
    ///
    /// No event is skipped or folded twice because the caller reads the log forward and
    /// hands each page over once (`rebuild::rebuild_many`).
    fn page(&mut self, page: &[Decoded]) -> Result<(), String> {
        let Some(last) = page.last().map(|d| d.position) else {
            return Ok(());
        };
        let started = Instant::now();
        for g in &mut self.generations {
            let Some(fold) = &mut g.fold else { continue };
            for d in page {
                fold.apply(&d.envelope())
                    .map_err(|e| format!("at position {}: {e}", d.position))?;
            }
        }
        self.folding += started.elapsed();
        let now = now_text();
        let tx = self.conn.transaction().map_err(|e| e.to_string())?;
        for g in &self.generations {
            tx.execute(
                "UPDATE projections SET position = $2, updated_at = $3 WHERE name = $1",
                rusqlite::params![g.row, last, now],
            )
            .map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())
    }

    /// Inserts every generation's tables into the file, then creates their indexes, one
    /// transaction each, and frees the generation's fold.
    fn finish(&mut self) -> Result<(), String> {
        tracing::debug!(
            ms = self.folding.as_millis(),
            "rebuild: pages folded in memory"
        );
        for g in &mut self.generations {
            let Some(fold) = g.fold.take() else { continue };
            for (table, insert) in &g.tables {
                let started = Instant::now();
                let rows = insert_rows(&self.conn, fold.as_ref(), table, insert, INSERT_CHUNK)
                    .map_err(|e| format!("{table}: {e}"))?;
                tracing::debug!(table, rows, ms = millis(started), "rebuild: rows inserted");
            }
            drop(fold);
            for index in &g.indexes {
                let started = Instant::now();
                let tx = self
                    .conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| e.to_string())?;
                tx.execute_batch(index)
                    .map_err(|e| format!("{index}: {e}"))?;
                tx.commit().map_err(|e| e.to_string())?;
                tracing::debug!(index, ms = millis(started), "rebuild: index created");
            }
        }
        Ok(())
    }
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Inserts the rows `fold` has for `table` with `insert`, `chunk` rows per
/// `BEGIN IMMEDIATE` transaction, and says how many.
fn insert_rows(
    conn: &Connection,
    fold: &dyn MemoryFold,
    table: &str,
    insert: &str,
    chunk: usize,
) -> Result<u64, String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let mut stmt = conn.prepare(insert).map_err(sql)?;
    // Rows in the open transaction, if one is open.
    let mut open: Option<usize> = None;
    let mut id = uuid::Uuid::encode_buffer();
    let mut inserted = 0u64;
    fold.rows(table, &mut |cells| {
        let in_tx = match open {
            Some(n) => n,
            None => {
                conn.execute_batch("BEGIN IMMEDIATE").map_err(sql)?;
                open = Some(0);
                0
            }
        };
        for (i, cell) in cells.iter().enumerate() {
            let value = match *cell {
                Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
                Cell::Id(u) => ToSqlOutput::Borrowed(ValueRef::Text(
                    u.hyphenated().encode_lower(&mut id).as_bytes(),
                )),
                Cell::Int(v) => ToSqlOutput::Owned(Value::Integer(v)),
                Cell::Null => ToSqlOutput::Owned(Value::Null),
            };
            stmt.raw_bind_parameter(i + 1, value).map_err(sql)?;
        }
        stmt.raw_execute().map_err(sql)?;
        inserted += 1;
        open = Some(in_tx + 1);
        if in_tx + 1 == chunk {
            conn.execute_batch("COMMIT").map_err(sql)?;
            open = None;
        }
        Ok(())
    })
    .inspect_err(|_| {
        if open.is_some() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    })?;
    if open.is_some() {
        conn.execute_batch("COMMIT").map_err(sql)?;
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is the failure report

    use super::*;
    use crate::memory::RowSink;
    use crate::projector::Envelope;

    /// A fold that hands over fixed rows of `t (a TEXT, b INTEGER, v TEXT)`.
    #[derive(Debug)]
    struct Fixed(Vec<(String, i64, Option<String>)>);

    impl MemoryFold for Fixed {
        fn apply(&mut self, _: &Envelope<'_>) -> Result<(), String> {
            Ok(())
        }
        fn rows(&self, _: &str, sink: &mut RowSink<'_>) -> Result<(), String> {
            for (a, b, v) in &self.0 {
                sink(&[Cell::Text(a), Cell::Int(*b), Cell::opt(v.as_deref())])?;
            }
            Ok(())
        }
    }

    fn table(conn: &Connection) -> Vec<(String, i64, Option<String>)> {
        let mut stmt = conn.prepare("SELECT a, b, v FROM t ORDER BY a, b").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn fresh() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (a TEXT NOT NULL, b INTEGER NOT NULL, v TEXT, PRIMARY KEY (a, b));
             CREATE UNIQUE INDEX t_v ON t (v);",
        )
        .unwrap();
        conn
    }

    /// A last chunk that is full, short or absent: every row arrives once, and no
    /// transaction is left open.
    #[test]
    fn chunked_inserts_write_every_row_once_whatever_the_chunk() {
        let rows: Vec<_> = (0..25)
            .map(|i| {
                (
                    format!("k{:02}", i / 5),
                    i % 5,
                    (i % 3 == 0).then(|| format!("v{i}")),
                )
            })
            .collect();
        for chunk in [1, 2, 3, 5, 24, 25, 100] {
            let conn = fresh();
            let inserted = insert_rows(
                &conn,
                &Fixed(rows.clone()),
                "t",
                "INSERT INTO t (a, b, v) VALUES (?1, ?2, ?3)",
                chunk,
            )
            .unwrap();
            assert_eq!(inserted, 25, "chunk of {chunk}");
            assert_eq!(table(&conn), rows, "chunk of {chunk}");
            assert!(
                conn.is_autocommit(),
                "chunk of {chunk} left a transaction open"
            );
        }
    }

    /// A row a unique index refuses fails the insert and rolls back its chunk; the earlier
    /// chunks stay (the generation is dropped with the failed rebuild).
    #[test]
    fn a_refused_row_fails_and_leaves_no_transaction_open() {
        let rows = vec![
            ("a".to_owned(), 1, Some("x".to_owned())),
            ("b".to_owned(), 1, Some("y".to_owned())),
            ("c".to_owned(), 1, Some("x".to_owned())),
        ];
        let conn = fresh();
        let err = insert_rows(
            &conn,
            &Fixed(rows.clone()),
            "t",
            "INSERT INTO t (a, b, v) VALUES (?1, ?2, ?3)",
            2,
        )
        .unwrap_err();
        assert!(err.contains("UNIQUE"), "{err}");
        assert!(conn.is_autocommit());
        assert_eq!(table(&conn), rows[..2]);
    }
}
