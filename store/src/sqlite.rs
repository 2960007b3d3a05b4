//! The embedded default backend: one SQLite file in WAL mode with `synchronous=FULL`
//! (an acknowledged payment survives power loss). SQLite has one writer; appends take the
//! write lock up front with `BEGIN IMMEDIATE`, and writers in this process queue on a
//! mutex first so they wait in line instead of spinning on `SQLITE_BUSY`.

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
use tokio::sync::{watch, Mutex};
use uuid::Uuid;

use crate::append::{chain, corrupt, publish, replayed_append, validate};
use crate::hash::{format_instant, truncate_to_micros};
use crate::{AppendResult, AppendStream, EventStore, RecordedEvent, StoreError, StoreResult};

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
        .connect_with(connect_options(path))
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

#[derive(Debug, Clone)]
pub struct SqliteEventStore {
    pool: SqlitePool,
    write_lock: Arc<Mutex<()>>,
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
        Ok(Self {
            pool,
            write_lock: Arc::new(Mutex::new(())),
            head: Arc::new(watch::channel(head).0),
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

fn row_to_event(row: &SqliteRow) -> StoreResult<RecordedEvent> {
    let position: i64 = row.try_get("global_position")?;
    let event_id: String = row.try_get("event_id")?;
    let data: String = row.try_get("data")?;
    let metadata: String = row.try_get("metadata")?;
    let recorded_at: String = row.try_get("recorded_at")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(RecordedEvent {
        global_position: position,
        stream_id: StreamId::from_stored(row.try_get::<String, _>("stream_id")?),
        stream_version: row.try_get("stream_version")?,
        event_id: Uuid::from_str(&event_id).map_err(|e| corrupt(position, "event_id", e))?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt(position, "data", e))?,
        metadata: serde_json::from_str(&metadata).map_err(|e| corrupt(position, "metadata", e))?,
        recorded_at: DateTime::parse_from_rfc3339(&recorded_at)
            .map_err(|e| corrupt(position, "recorded_at", e))?
            .with_timezone(&Utc),
        hash: hash
            .try_into()
            .map_err(|_| corrupt(position, "hash", "not 32 bytes"))?,
    })
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

impl SqliteEventStore {
    /// The append itself. Callers go through [`EventStore::append`], which runs this on a
    /// task of its own: if the caller is cancelled (a client hangs up), the transaction
    /// still runs to its commit or rollback instead of being dropped half-way with the
    /// write lock held.
    async fn append_now(self, streams: Vec<AppendStream>) -> StoreResult<AppendResult> {
        validate(&streams)?;
        let _writer = self.write_lock.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;

        if let Some(replayed) =
            replayed_append(&streams, &stored_with_ids(&mut tx, &streams).await?)?
        {
            return Ok(replayed);
        }

        let mut heads = Vec::with_capacity(streams.len());
        for s in &streams {
            let head: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT stream_version, hash FROM events WHERE stream_id = $1 \
                 ORDER BY stream_version DESC LIMIT 1",
            )
            .bind(s.stream_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let actual = head.as_ref().map(|(v, _)| *v);
            if !s.expected.admits(actual) {
                return Err(StoreError::Conflict {
                    stream: s.stream_id.clone(),
                    expected: s.expected,
                    actual,
                });
            }
            heads.push(head);
        }

        // recorded_at never goes backwards in position order, even if the clock does, so
        // "as of T" is always a prefix of the log.
        let last: Option<String> = sqlx::query_scalar(
            "SELECT recorded_at FROM events ORDER BY global_position DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let now = truncate_to_micros(self.clock.now());
        let recorded_at = last
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map_or(now, |t| now.max(t.with_timezone(&Utc)));
        let recorded_text = format_instant(recorded_at);

        let mut appended = Vec::new();
        for row in chain(&streams, heads, recorded_at)? {
            let position: i64 = sqlx::query_scalar(
                "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
                 schema_version, data, metadata, recorded_at, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING global_position",
            )
            .bind(row.stream_id.as_str())
            .bind(row.version)
            .bind(row.event.event_id.to_string())
            .bind(&row.event.event_type)
            .bind(row.event.schema_version)
            .bind(&row.data)
            .bind(&row.metadata)
            .bind(&recorded_text)
            .bind(row.hash.as_slice())
            .fetch_one(&mut *tx)
            .await?;
            appended.push(row.appended(position));
        }
        tx.commit().await?;

        let result = AppendResult { events: appended };
        publish(&self.head, &result);
        Ok(result)
    }
}

#[async_trait]
impl EventStore for SqliteEventStore {
    #[tracing::instrument(skip_all, fields(streams = streams.len()), err)]
    async fn append(&self, streams: Vec<AppendStream>) -> StoreResult<AppendResult> {
        let store = self.clone();
        tokio::spawn(store.append_now(streams))
            .await
            .map_err(|e| StoreError::Corrupt(format!("the append task failed: {e}")))?
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
