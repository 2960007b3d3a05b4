//! A PostgreSQL rebuild folded in memory, then written with `COPY` in primary-key order,
//! indexes last.
//!
//! Folding each event with the projector's statements costs one to three round trips per
//! event and projector: a 1M-event rebuild ran at about 5,500 events/s that way
//! (`portico-bench --postgres`). Projectors that have a [`MemoryFold`] are rebuilt here as
//! on SQLite (`sqlite_writer`): each page of the log is folded into maps on a blocking
//! thread while the next page is read and decoded, the projector's `#rebuild` row moves
//! with every page (so `portico-replay status` shows how far a rebuild is), and once the
//! log is read to its end every table's rows go into the new generation with one
//! `COPY ... FROM STDIN` each, in key order; the secondary indexes are created after, since
//! `CREATE INDEX` sorts once where filling a table through its indexes puts each row at a
//! random place in each. Two connections write generations at once: a `COPY` or an index
//! build keeps one server process busy, and with one connection part of the other core
//! idled (2.5-2.6 s of writing became 2.2-2.3 s at 1M events on a 2-core machine, where
//! the client's encoding and the server then share both cores).
//!
//! The new generation's tables are seen by nobody until the swap, so nothing waits on the
//! copies. A rebuild lost with the process leaves only an unfinished generation, which the
//! next rebuild drops (`rebuild::start`).

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use crate::memory::{write_statements, Cell, MemoryFold};
use crate::projector::{Projector, TableSet};
use crate::runner::{now_text, Decoded, ProjectionError, ProjectionResult};

/// Bytes of `COPY` text sent to the server at a time.
const COPY_CHUNK: usize = 1 << 20;

/// One projector's rebuild in memory: its fold, its `#rebuild` checkpoint row, the tables
/// to fill (logical name, `COPY` statement for the new generation) and the indexes to
/// create after.
#[derive(Debug)]
pub struct PgGeneration {
    fold: Box<dyn MemoryFold>,
    row: String,
    tables: Vec<(&'static str, String)>,
    indexes: Vec<String>,
}

impl PgGeneration {
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
            format!("COPY {physical} ({}) FROM STDIN", columns.join(", "))
        });
        Some(Self {
            fold,
            row: row.to_owned(),
            tables,
            indexes,
        })
    }
}

/// Every in-memory generation of one rebuild, and the page being folded, if one is.
#[derive(Debug)]
pub struct PgWriter {
    /// `None` while a page is being folded on a blocking thread.
    generations: Option<Vec<PgGeneration>>,
    /// The page being folded, and its last position.
    folding: Option<(Folding, i64)>,
    pool: PgPool,
}

type Folding = tokio::task::JoinHandle<(Vec<PgGeneration>, Result<(), String>)>;

/// The encoder's error when the `COPY` side stopped taking rows (its own error says why).
const COPY_STOPPED: &str = "the COPY stopped";

/// What the thread that reads a fold's rows hands to the `COPY`.
enum Piece {
    Rows(Vec<u8>),
    /// The table's rows are all sent.
    End,
}

impl PgWriter {
    /// A writer for `generations`, or `None` when there are none.
    pub fn new(pool: PgPool, generations: Vec<PgGeneration>) -> Option<Self> {
        (!generations.is_empty()).then_some(Self {
            generations: Some(generations),
            folding: None,
            pool,
        })
    }

    /// Waits for the page being folded, if any, and records it as the rebuild's progress.
    async fn settle(&mut self) -> ProjectionResult<()> {
        let Some((handle, last)) = self.folding.take() else {
            return Ok(());
        };
        let (generations, outcome) = handle
            .await
            .map_err(|e| ProjectionError::Task(format!("a rebuild fold failed: {e}")))?;
        self.generations = Some(generations);
        outcome.map_err(ProjectionError::Task)?;
        let rows: Vec<String> = self
            .generations
            .iter()
            .flatten()
            .map(|g| g.row.clone())
            .collect();
        sqlx::query("UPDATE projections SET position = $2, updated_at = $3 WHERE name = ANY($1)")
            .bind(&rows)
            .bind(last)
            .bind(now_text())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Waits for the page before, then starts folding `page` into every generation on a
    /// blocking thread and returns, so the caller reads the next page meanwhile.
    pub async fn submit(&mut self, page: Arc<Vec<Decoded>>) -> ProjectionResult<()> {
        self.settle().await?;
        let Some(last) = page.last().map(|d| d.position) else {
            return Ok(());
        };
        let mut generations = self.generations.take().unwrap_or_default();
        let handle = tokio::task::spawn_blocking(move || {
            let outcome = fold_page(&mut generations, &page);
            (generations, outcome)
        });
        self.folding = Some((handle, last));
        Ok(())
    }

    /// Waits for the last page, then fills every generation's tables and creates their
    /// indexes, freeing each fold once its rows are written.
    ///
    /// Generations are written by two connections at once, each taking the next
    /// generation from a shared queue: `COPY` and `CREATE INDEX` keep one server process
    /// busy each, so one connection left a core idle (see the README's Performance). The
    /// second connection only speeds the writing up: when the pool has none to give (its
    /// acquire timed out), the first writes every generation.
    pub async fn finish(mut self) -> ProjectionResult<()> {
        self.settle().await?;
        let queue = std::sync::Mutex::new(std::collections::VecDeque::from(
            self.generations.take().unwrap_or_default(),
        ));
        // The lock is only held to take or clear, which cannot panic; a poisoned one still
        // holds the queue.
        let locked = || {
            queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let lane = |conn: Option<PoolConnection<Postgres>>| async {
            let Some(mut conn) = conn else {
                return Ok(());
            };
            loop {
                // The guard is dropped before the next await.
                let next = locked().pop_front();
                let Some(g) = next else {
                    return Ok(());
                };
                if let Err(e) = write_generation(&mut conn, g).await {
                    // The other lane takes nothing more: the rebuild has failed.
                    locked().clear();
                    return Err(e);
                }
            }
        };
        let first = self.pool.acquire().await?;
        let second = match self.pool.acquire().await {
            Ok(conn) => Some(conn),
            Err(e) => {
                tracing::debug!(error = %e, "rebuild: writing on one connection");
                None
            }
        };
        let (first, second) = tokio::join!(lane(Some(first)), lane(second));
        first.and(second)
    }
}

/// Fills one generation's tables with `COPY`, then creates its indexes.
async fn write_generation(conn: &mut sqlx::PgConnection, g: PgGeneration) -> ProjectionResult<()> {
    let PgGeneration {
        fold,
        tables,
        indexes,
        ..
    } = g;
    let names: Vec<&'static str> = tables.iter().map(|(t, _)| *t).collect();
    // The fold's rows are encoded on a blocking thread, a chunk at a time, while the chunk
    // before goes to the server.
    let (send, mut receive) = tokio::sync::mpsc::channel::<Piece>(4);
    let encoder = tokio::task::spawn_blocking(move || {
        for table in names {
            let mut text = Vec::with_capacity(COPY_CHUNK + 4096);
            fold.rows(table, &mut |cells| {
                encode_row(&mut text, cells);
                if text.len() >= COPY_CHUNK {
                    let full = std::mem::replace(&mut text, Vec::with_capacity(COPY_CHUNK + 4096));
                    send.blocking_send(Piece::Rows(full))
                        .map_err(|_| COPY_STOPPED.to_owned())?;
                }
                Ok(())
            })
            .map_err(|e| format!("{table}: {e}"))?;
            for piece in [Piece::Rows(text), Piece::End] {
                send.blocking_send(piece)
                    .map_err(|_| COPY_STOPPED.to_owned())?;
            }
        }
        Ok::<_, String>(())
    });
    let started = std::time::Instant::now();
    let copied = copy_tables(conn, &tables, &mut receive).await;
    drop(receive);
    let encoded = encoder
        .await
        .map_err(|e| ProjectionError::Task(format!("a rebuild's rows failed: {e}")))?;
    match (copied, encoded) {
        (Ok(()), Ok(())) => {}
        // The encoder stopped because the COPY failed: the COPY's error says why.
        (Err(e), Err(stopped)) if stopped.ends_with(COPY_STOPPED) => return Err(e),
        (_, Err(e)) => return Err(ProjectionError::Task(e)),
        (Err(e), Ok(())) => return Err(e),
    }
    tracing::debug!(
        tables = ?tables.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
        ms = started.elapsed().as_millis(),
        "rebuild: rows copied"
    );
    for index in &indexes {
        let started = std::time::Instant::now();
        sqlx::query(index).execute(&mut *conn).await?;
        tracing::debug!(
            index,
            ms = started.elapsed().as_millis(),
            "rebuild: index created"
        );
    }
    Ok(())
}

/// Sends each table's pieces to its `COPY`, in the order the encoder reads the tables.
async fn copy_tables(
    conn: &mut sqlx::PgConnection,
    tables: &[(&'static str, String)],
    receive: &mut tokio::sync::mpsc::Receiver<Piece>,
) -> ProjectionResult<()> {
    for (table, copy) in tables {
        let mut copy_in = conn.copy_in_raw(copy).await?;
        loop {
            match receive.recv().await {
                Some(Piece::Rows(chunk)) => {
                    if let Err(e) = copy_in.send(chunk).await {
                        let _ = copy_in.abort(e.to_string()).await;
                        return Err(e.into());
                    }
                }
                Some(Piece::End) => break,
                None => {
                    let _ = copy_in.abort("the rebuild's rows stopped").await;
                    return Err(ProjectionError::Task(format!(
                        "{table}: the rebuild's rows stopped before the table's end"
                    )));
                }
            }
        }
        copy_in.finish().await?;
    }
    Ok(())
}

fn fold_page(generations: &mut [PgGeneration], page: &[Decoded]) -> Result<(), String> {
    for g in generations {
        for d in page {
            g.fold
                .apply(&d.envelope())
                .map_err(|e| format!("at position {}: {e}", d.position))?;
        }
    }
    Ok(())
}

/// One row in `COPY`'s text format: columns separated by tabs, `\N` for NULL, and
/// backslash, tab, newline and carriage return escaped in text.
fn encode_row(out: &mut Vec<u8>, cells: &[Cell<'_>]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match cell {
            Cell::Text(s) => {
                for &b in s.as_bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(b),
                    }
                }
            }
            Cell::Id(id) => {
                let mut buf = uuid::Uuid::encode_buffer();
                out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
            }
            Cell::Int(v) => out.extend_from_slice(v.to_string().as_bytes()),
            Cell::Null => out.extend_from_slice(b"\\N"),
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_reads_as_special() {
        let id = uuid::Uuid::nil();
        let mut out = Vec::new();
        encode_row(
            &mut out,
            &[
                Cell::Text("a\\b\tc\nd\re"),
                Cell::Id(id),
                Cell::Int(-42),
                Cell::Null,
                Cell::Text(""),
            ],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\\\b\\tc\\nd\\re\t00000000-0000-0000-0000-000000000000\t-42\t\\N\t\n"
        );
    }
}
