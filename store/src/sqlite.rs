//! The embedded default backend: one SQLite file in WAL mode with `synchronous=FULL`
//! (an acknowledged payment survives power loss). SQLite has one writer, so appends go
//! through one writer task per store, which commits them in groups: it takes every append
//! waiting in its queue (up to `MAX_GROUP`, 256), runs each inside its own savepoint of one
//! `BEGIN IMMEDIATE` transaction, and commits once. An append that fails (a version
//! conflict, a reused event id) is rolled back to its savepoint alone; the others commit.
//! Nobody is answered before the commit, so durability is the same as one transaction per
//! append, while concurrent writers share the cost of the commit's fsync.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_domain::clock::{Clock, SystemClock};
use portico_domain::streams::StreamId;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::append::{
    appended_in_order, chain, corrupt, replayed_append, spawn_writer, submit, GroupState, GroupTx,
    Request, Step,
};
use crate::hash::{format_instant, truncate_to_micros};
use crate::{
    AppendResult, AppendStream, EventStore, RecordedEvent, StoreError, StoreResult, StoredPayload,
    PAYLOADS_AFTER,
};

/// Every table of the SQLite database: the event log, read models and credentials.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

const COLUMNS: &str = "global_position, stream_id, stream_version, event_id, event_type, \
                       schema_version, data, metadata, recorded_at, hash";

/// Connection settings every Portico SQLite connection uses.
pub fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30))
}

/// Opens (creating if needed) the database file and brings its schema up to date.
pub async fn open_pool(path: &Path) -> StoreResult<SqlitePool> {
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(30))
        // A file on this machine does not drop connections; the ping sqlx sends before
        // handing one out is a round trip to the connection's thread for every query
        // (measured with perf: thread hand-offs dominate the 64-writer append profile).
        .test_before_acquire(false)
        .connect_with(connect_options(path))
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    pool: SqlitePool,
    /// The database file (empty for an in-memory database).
    file: std::path::PathBuf,
    writer: mpsc::UnboundedSender<Request>,
    head: Arc<watch::Sender<i64>>,
    clock: Arc<dyn Clock>,
}

impl SqliteEventStore {
    /// Opens the store in the database file at `path`.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::from_pool(open_pool(path).await?).await
    }

    /// A store on a pool whose schema is already migrated (shared with the read models).
    pub async fn from_pool(pool: SqlitePool) -> StoreResult<Self> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0) FROM events")
            .fetch_one(&pool)
            .await?;
        let head = Arc::new(watch::channel(head).0);
        let writer = {
            let pool = pool.clone();
            spawn_writer(move || begin_group(pool.clone()), head.clone())
        };
        Ok(Self {
            file: pool.connect_options().get_filename().to_owned(),
            pool,
            writer,
            head,
            clock: Arc::new(SystemClock),
        })
    }

    /// Stamps `recorded_at` from `clock` instead of the system clock (tests, as-of demos).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// One row of `SELECT {COLUMNS}`, by column index (a lookup by name per column was a
/// measurable part of reading a page).
fn row_to_event(row: &SqliteRow) -> StoreResult<RecordedEvent> {
    let position: i64 = row.try_get(0)?;
    let event_id: &str = row.try_get(3)?;
    let data: &str = row.try_get(6)?;
    let metadata: &str = row.try_get(7)?;
    let recorded_at: &str = row.try_get(8)?;
    let hash: &[u8] = row.try_get(9)?;
    Ok(RecordedEvent {
        global_position: position,
        stream_id: StreamId::from_stored(row.try_get::<String, _>(1)?),
        stream_version: row.try_get(2)?,
        event_id: Uuid::from_str(event_id).map_err(|e| corrupt(position, "event_id", e))?,
        event_type: row.try_get(4)?,
        schema_version: row.try_get(5)?,
        data: serde_json::from_str(data).map_err(|e| corrupt(position, "data", e))?,
        metadata: serde_json::from_str(metadata).map_err(|e| corrupt(position, "metadata", e))?,
        recorded_at: DateTime::parse_from_rfc3339(recorded_at)
            .map_err(|e| corrupt(position, "recorded_at", e))?
            .with_timezone(&Utc),
        hash: hash
            .try_into()
            .map_err(|_| corrupt(position, "hash", "not 32 bytes"))?,
    })
}

/// A row of [`PAYLOADS_AFTER`] as SQLite returns it: `recorded_at` as stored.
pub fn stored_payload(
    global_position: i64,
    event_type: String,
    schema_version: i32,
    data: String,
    metadata: &str,
    recorded_at: &str,
) -> StoreResult<StoredPayload> {
    let recorded_at = canonical_instant(global_position, recorded_at)?;
    StoredPayload::new(
        global_position,
        event_type,
        schema_version,
        data,
        metadata,
        recorded_at,
    )
}

/// `recorded_at` in [`format_instant`]'s form. Portico stores exactly that text, so it is
/// kept as it is once it parses and has that shape (27 bytes: `T`, six fraction digits,
/// `Z`); anything else is formatted again from what it parses to.
fn canonical_instant(position: i64, text: &str) -> StoreResult<String> {
    let parsed =
        DateTime::parse_from_rfc3339(text).map_err(|e| corrupt(position, "recorded_at", e))?;
    let b = text.as_bytes();
    if b.len() == 27 && b[10] == b'T' && b[19] == b'.' && b[26] == b'Z' {
        Ok(text.to_owned())
    } else {
        Ok(format_instant(parsed.with_timezone(&Utc)))
    }
}

async fn stored_with_ids(
    tx: &mut Transaction<'_, Sqlite>,
    streams: &[AppendStream],
) -> StoreResult<Vec<RecordedEvent>> {
    let ids: Vec<String> = streams
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.event_id.to_string()))
        .collect();
    let mut stored = Vec::new();
    for chunk in ids.chunks(500) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS} FROM events WHERE event_id IN ("
        ));
        let mut list = q.separated(", ");
        for id in chunk {
            list.push_bind(id);
        }
        q.push(")");
        for row in q.build().fetch_all(&mut **tx).await? {
            stored.push(row_to_event(&row)?);
        }
    }
    Ok(stored)
}

/// The SQLite side of a group: one `BEGIN IMMEDIATE` transaction.
struct SqliteGroupTx(Transaction<'static, Sqlite>);

#[async_trait]
impl GroupTx for SqliteGroupTx {
    async fn load_state(&mut self, group: &[Request]) -> Result<GroupState, sqlx::Error> {
        load_state(&mut self.0, group).await
    }

    async fn append(
        &mut self,
        streams: &[AppendStream],
        now: DateTime<Utc>,
        state: &mut GroupState,
        savepoints: bool,
    ) -> Step {
        append_in(&mut self.0, streams, now, state, savepoints).await
    }

    async fn run(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(sql).execute(&mut *self.0).await.map(|_| ())
    }

    async fn commit(self: Box<Self>) -> Result<(), sqlx::Error> {
        self.0.commit().await
    }

    async fn rollback(self: Box<Self>) {
        let _ = self.0.rollback().await;
    }
}

async fn begin_group(pool: SqlitePool) -> Result<Box<dyn GroupTx>, sqlx::Error> {
    let tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    Ok(Box::new(SqliteGroupTx(tx)))
}

/// The newest `recorded_at` and the heads of every stream the group names, in one query
/// per 500 streams (each also returns the floor, so a group of up to 500 streams is one
/// round trip; always one row at least, with no head when none of the streams exists).
async fn load_state(
    tx: &mut Transaction<'_, Sqlite>,
    group: &[Request],
) -> Result<GroupState, sqlx::Error> {
    let mut state = GroupState::default();
    let streams = GroupState::streams(group);
    for chunk in streams.chunks(500) {
        // SQLite takes the bare `hash` from the row holding the MAX.
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT (SELECT recorded_at FROM events ORDER BY global_position DESC LIMIT 1), \
                    h.stream_id, h.version, h.hash \
             FROM (SELECT 1) AS one LEFT JOIN ( \
                 SELECT stream_id, MAX(stream_version) AS version, hash FROM events \
                 WHERE stream_id IN (",
        );
        let mut list = q.separated(", ");
        for s in chunk {
            list.push_bind(s.as_str());
        }
        q.push(") GROUP BY stream_id) AS h ON true");
        type HeadRow = (Option<String>, Option<String>, Option<i64>, Option<Vec<u8>>);
        let rows: Vec<HeadRow> = q.build_query_as().fetch_all(&mut **tx).await?;
        state.floor = rows
            .first()
            .and_then(|r| r.0.as_deref())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let found: std::collections::HashMap<String, (i64, Vec<u8>)> = rows
            .into_iter()
            .filter_map(|(_, s, v, h)| Some((s?, (v?, h?))))
            .collect();
        for s in chunk {
            state
                .heads
                .insert(s.clone(), found.get(s.as_str()).cloned());
        }
    }
    Ok(state)
}

/// One append inside the group's transaction. Whether it is a retry of an append already
/// stored is only asked when something collides: a version conflict (a committed append
/// sent again fails its version check) or an event id already taken.
async fn append_in(
    tx: &mut Transaction<'_, Sqlite>,
    streams: &[AppendStream],
    now: DateTime<Utc>,
    state: &mut GroupState,
    savepoints: bool,
) -> Step {
    let mut heads = Vec::with_capacity(streams.len());
    for s in streams {
        let head = state.head(&s.stream_id);
        let actual = head.as_ref().map(|(v, _)| *v);
        if !s.expected.admits(actual) {
            let stored = match stored_with_ids(tx, streams).await {
                Ok(stored) => stored,
                Err(e) => return Step::Answer(Err(e)),
            };
            return Step::Answer(match replayed_append(streams, &stored) {
                Ok(Some(replayed)) => Ok(replayed),
                Ok(None) => Err(StoreError::Conflict {
                    stream: s.stream_id.clone(),
                    expected: s.expected,
                    actual,
                }),
                Err(e) => Err(e),
            });
        }
        heads.push(head);
    }

    let now = truncate_to_micros(now);
    let recorded_at = state.floor.map_or(now, |t| now.max(t));
    let recorded_text = format_instant(recorded_at);
    let rows = match chain(streams, heads, recorded_at) {
        Ok(rows) => rows,
        Err(e) => return Step::Answer(Err(e)),
    };

    // Every row of the append in one statement per 1,000 rows (one round trip for any
    // ordinary append; SQLite allows 32,766 parameters, nine a row).
    let mut positions = std::collections::HashMap::new();
    for chunk in rows.chunks(1000) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
             schema_version, data, metadata, recorded_at, hash) ",
        );
        q.push_values(chunk, |mut b, row| {
            b.push_bind(row.stream_id.as_str())
                .push_bind(row.version)
                .push_bind(row.event.event_id.to_string())
                .push_bind(row.event.event_type.as_str())
                .push_bind(row.event.schema_version)
                .push_bind(row.data.as_str())
                .push_bind(row.metadata.as_str())
                .push_bind(recorded_text.as_str())
                .push_bind(row.hash.as_slice());
        });
        q.push(" RETURNING event_id, global_position");
        let inserted: Result<Vec<(String, i64)>, sqlx::Error> =
            q.build_query_as().fetch_all(&mut **tx).await;
        match inserted {
            Ok(found) => positions.extend(found),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && savepoints => {
                // An event id is stored already: this append again, or an id reused.
                if let Err(e) = sqlx::query("ROLLBACK TO SAVEPOINT append")
                    .execute(&mut **tx)
                    .await
                {
                    return Step::Undo(e.into());
                }
                return Step::Answer(match stored_with_ids(tx, streams).await {
                    Ok(stored) => match replayed_append(streams, &stored) {
                        Ok(Some(replayed)) => Ok(replayed),
                        Ok(None) => Err(StoreError::Database(sqlx::Error::Database(db))),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                });
            }
            Err(e) => return Step::Undo(e.into()),
        }
    }
    let appended = match appended_in_order(&rows, |id| positions.get(&id.to_string()).copied()) {
        Ok(appended) => appended,
        Err(e) => return Step::Undo(e),
    };
    state.advance(&rows, recorded_at);
    Step::Answer(Ok(AppendResult { events: appended }))
}

/// Reads `streams` on `conn`, 500 to a statement, into `by_stream`.
async fn read_streams_in(
    conn: &mut sqlx::SqliteConnection,
    streams: &[StreamId],
    by_stream: &mut std::collections::HashMap<String, Vec<RecordedEvent>>,
) -> StoreResult<()> {
    for chunk in streams.chunks(500) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id IN ("
        ));
        let mut list = q.separated(", ");
        for s in chunk {
            list.push_bind(s.as_str());
        }
        q.push(") ORDER BY stream_id, stream_version");
        for row in q.build().fetch_all(&mut *conn).await? {
            let event = row_to_event(&row)?;
            by_stream
                .entry(event.stream_id.as_str().to_owned())
                .or_default()
                .push(event);
        }
    }
    Ok(())
}

#[async_trait]
impl EventStore for SqliteEventStore {
    #[tracing::instrument(skip_all, fields(streams = streams.len()), err)]
    async fn append(&self, streams: Vec<AppendStream>) -> StoreResult<AppendResult> {
        // The writer task runs the append to its commit or rollback even if this caller is
        // cancelled (a client hangs up) half-way through waiting.
        submit(&self.writer, streams, self.clock.now()).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 \
             ORDER BY stream_version LIMIT $3"
        ))
        .bind(stream.as_str())
        .bind(from_version)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_event).collect()
    }

    async fn read_streams(&self, streams: &[StreamId]) -> StoreResult<Vec<Vec<RecordedEvent>>> {
        let mut by_stream: std::collections::HashMap<String, Vec<RecordedEvent>> =
            std::collections::HashMap::new();
        // Up to 500 streams are one statement, which reads one snapshot by itself; more
        // take one read transaction, so every stream is read as of the same commit
        // (dropping it on an error rolls it back). BEGIN and COMMIT are a thread hand-off
        // each, two thirds of a small command's read.
        if streams.len() <= 500 {
            let mut conn = self.pool.acquire().await?;
            read_streams_in(&mut conn, streams, &mut by_stream).await?;
        } else {
            let mut tx = self.pool.begin().await?;
            read_streams_in(&mut tx, streams, &mut by_stream).await?;
            tx.commit().await?;
        }
        Ok(streams
            .iter()
            .map(|s| by_stream.remove(s.as_str()).unwrap_or_default())
            .collect())
    }

    async fn read_all(&self, after: i64, limit: u32) -> StoreResult<Vec<RecordedEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_event).collect()
    }

    fn sqlite_file(&self) -> Option<&Path> {
        Some(self.file.as_path()).filter(|f| f.is_file())
    }

    async fn read_all_payloads(&self, after: i64, limit: u32) -> StoreResult<Vec<StoredPayload>> {
        let rows = sqlx::query(PAYLOADS_AFTER)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                stored_payload(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    row.try_get(5)?,
                )
            })
            .collect()
    }

    async fn read_all_until(
        &self,
        until: DateTime<Utc>,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE global_position > $1 AND recorded_at <= $2 \
             ORDER BY global_position LIMIT $3"
        ))
        .bind(after)
        .bind(format_instant(truncate_to_micros(until)))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_event).collect()
    }

    async fn head(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0) FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }
}
