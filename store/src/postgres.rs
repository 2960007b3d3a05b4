//! The PostgreSQL backend, for production.
//!
//! **Subscribers never miss an event.** PostgreSQL hands out identity values when a row is
//! inserted, not when its transaction commits, so two concurrent appends can commit out of
//! position order and a reader tailing `$all` by position could pass over the one that
//! commits late. Portico serializes appends with a transaction-scoped advisory lock
//! (`pg_advisory_xact_lock`): the next append takes its positions only after the previous
//! one has committed and released the lock, so positions are visible in order. Readers need
//! no special query. The price is one append transaction at a time, the same as SQLite;
//! as on SQLite, a writer task per process commits the appends queued meanwhile as one
//! group, each in its own savepoint, so concurrent writers share the lock and the commit.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_domain::clock::{Clock, SystemClock};
use portico_domain::streams::StreamId;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row, Transaction};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::append::{
    answer_group, chain, corrupt, group_failed, next_group, replayed_append, submit, validate,
    Request,
};
use crate::hash::truncate_to_micros;
use crate::{AppendResult, AppendStream, EventStore, RecordedEvent, StoreError, StoreResult};

/// Every table of the PostgreSQL database.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// The advisory lock key that serializes appends ("portico" in ASCII, as a number).
pub const APPEND_LOCK: i64 = 0x0070_6f72_7469_636f;

const COLUMNS: &str = "global_position, stream_id, stream_version, event_id, event_type, \
                       schema_version, data, metadata, recorded_at, hash";

/// Connects to `url` and brings the schema up to date.
pub async fn open_pool(url: &str) -> StoreResult<PgPool> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        // Fail fast while the server is down: a request answers 503 within a few seconds.
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

#[derive(Debug, Clone)]
pub struct PgEventStore {
    pool: PgPool,
    writer: mpsc::UnboundedSender<Request>,
    head: Arc<watch::Sender<i64>>,
    clock: Arc<dyn Clock>,
}

impl PgEventStore {
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::from_pool(open_pool(url).await?).await
    }

    /// A store on a pool whose schema is already migrated.
    pub async fn from_pool(pool: PgPool) -> StoreResult<Self> {
        let head: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0)::BIGINT FROM events")
                .fetch_one(&pool)
                .await?;
        let head = Arc::new(watch::channel(head).0);
        let (writer, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(pool.clone(), head.clone(), queue));
        Ok(Self {
            pool,
            writer,
            head,
            clock: Arc::new(SystemClock),
        })
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn row_to_event(row: &PgRow) -> StoreResult<RecordedEvent> {
    let position: i64 = row.try_get("global_position")?;
    let data: String = row.try_get("data")?;
    let metadata: String = row.try_get("metadata")?;
    let hash: Vec<u8> = row.try_get("hash")?;
    Ok(RecordedEvent {
        global_position: position,
        stream_id: StreamId::from_stored(row.try_get::<String, _>("stream_id")?),
        stream_version: row.try_get("stream_version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt(position, "data", e))?,
        metadata: serde_json::from_str(&metadata).map_err(|e| corrupt(position, "metadata", e))?,
        recorded_at: row.try_get("recorded_at")?,
        hash: hash
            .try_into()
            .map_err(|_| corrupt(position, "hash", "not 32 bytes"))?,
    })
}

/// The writer task: commits what is queued as one group (see `sqlite.rs`), answers,
/// repeats. Several processes still take turns on the append lock, a group at a time.
async fn write_groups(
    pool: PgPool,
    head: Arc<watch::Sender<i64>>,
    mut queue: mpsc::UnboundedReceiver<Request>,
) {
    while let Some(group) = next_group(&mut queue).await {
        commit_group(&pool, &head, group).await;
    }
}

async fn commit_group(pool: &PgPool, head: &watch::Sender<i64>, group: Vec<Request>) {
    let begun = async {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok::<_, sqlx::Error>(tx)
    };
    let mut tx = match begun.await {
        Ok(tx) => tx,
        Err(e) => {
            for r in group {
                let _ = r.reply.send(Err(group_failed(&e)));
            }
            return;
        }
    };
    let mut outcomes: Vec<(Request, StoreResult<AppendResult>)> = Vec::with_capacity(group.len());
    let mut broken: Option<sqlx::Error> = None;
    // recorded_at never goes backwards in position order (see sqlite.rs): read the newest
    // once per group, under the append lock, then carry it along.
    let mut floor: Option<DateTime<Utc>> = match sqlx::query_scalar(
        "SELECT recorded_at FROM events ORDER BY global_position DESC LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    {
        Ok(last) => last,
        Err(e) => {
            broken = Some(e);
            None
        }
    };
    for r in group {
        if broken.is_some() {
            outcomes.push((r, Err(StoreError::Unavailable(sqlx::Error::PoolClosed))));
            continue;
        }
        if let Err(e) = validate(&r.streams) {
            outcomes.push((r, Err(e)));
            continue;
        }
        if let Err(e) = sqlx::query("SAVEPOINT append").execute(&mut *tx).await {
            broken = Some(e);
            outcomes.push((r, Err(StoreError::Unavailable(sqlx::Error::PoolClosed))));
            continue;
        }
        let outcome = append_in(&mut tx, &r.streams, r.now, &mut floor).await;
        if outcome.is_err() {
            if let Err(e) = sqlx::query("ROLLBACK TO SAVEPOINT append")
                .execute(&mut *tx)
                .await
            {
                broken = Some(e);
            }
        }
        if let Err(e) = sqlx::query("RELEASE SAVEPOINT append")
            .execute(&mut *tx)
            .await
        {
            broken = broken.or(Some(e));
        }
        outcomes.push((r, outcome));
    }
    let committed = match broken {
        Some(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
        None => tx.commit().await,
    };
    answer_group(head, outcomes, committed);
}

async fn stored_with_ids(
    tx: &mut Transaction<'_, Postgres>,
    streams: &[AppendStream],
) -> StoreResult<Vec<RecordedEvent>> {
    let ids: Vec<Uuid> = streams
        .iter()
        .flat_map(|s| s.events.iter().map(|e| e.event_id))
        .collect();
    sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events WHERE event_id = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(row_to_event)
    .collect()
}

/// One append inside the group's transaction (which holds the append lock), in the
/// savepoint `append`; the retry check runs only on a collision, as in `sqlite.rs`.
async fn append_in(
    tx: &mut Transaction<'_, Postgres>,
    streams: &[AppendStream],
    now: DateTime<Utc>,
    floor: &mut Option<DateTime<Utc>>,
) -> StoreResult<AppendResult> {
    let mut heads = Vec::with_capacity(streams.len());
    for s in streams {
        let head: Option<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT stream_version, hash FROM events WHERE stream_id = $1 \
             ORDER BY stream_version DESC LIMIT 1",
        )
        .bind(s.stream_id.as_str())
        .fetch_optional(&mut **tx)
        .await?;
        let actual = head.as_ref().map(|(v, _)| *v);
        if !s.expected.admits(actual) {
            if let Some(replayed) = replayed_append(streams, &stored_with_ids(tx, streams).await?)?
            {
                return Ok(replayed);
            }
            return Err(StoreError::Conflict {
                stream: s.stream_id.clone(),
                expected: s.expected,
                actual,
            });
        }
        heads.push(head);
    }

    let now = truncate_to_micros(now);
    let recorded_at = floor.map_or(now, |t| now.max(t));

    let mut appended = Vec::new();
    for row in chain(streams, heads, recorded_at)? {
        let inserted = sqlx::query_scalar(
            "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
             schema_version, data, metadata, recorded_at, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING global_position",
        )
        .bind(row.stream_id.as_str())
        .bind(row.version)
        .bind(row.event.event_id)
        .bind(&row.event.event_type)
        .bind(row.event.schema_version)
        .bind(&row.data)
        .bind(&row.metadata)
        .bind(recorded_at)
        .bind(row.hash.as_slice())
        .fetch_one(&mut **tx)
        .await;
        match inserted {
            Ok(position) => appended.push(row.appended(position)),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                // An event id is stored already: this append again, or an id reused. The
                // failed insert aborted the transaction up to the savepoint.
                sqlx::query("ROLLBACK TO SAVEPOINT append")
                    .execute(&mut **tx)
                    .await?;
                let stored = stored_with_ids(tx, streams).await?;
                return match replayed_append(streams, &stored)? {
                    Some(replayed) => Ok(replayed),
                    None => Err(StoreError::Database(sqlx::Error::Database(db))),
                };
            }
            Err(e) => return Err(e.into()),
        }
    }
    *floor = Some(recorded_at);
    Ok(AppendResult { events: appended })
}

#[async_trait]
impl EventStore for PgEventStore {
    #[tracing::instrument(skip_all, fields(streams = streams.len()), err)]
    async fn append(&self, streams: Vec<AppendStream>) -> StoreResult<AppendResult> {
        submit(&self.writer, streams, self.clock.now()).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 \
             ORDER BY stream_version LIMIT $3"
        ))
        .bind(stream.as_str())
        .bind(from_version)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_to_event)
        .collect()
    }

    async fn read_all(&self, after: i64, limit: u32) -> StoreResult<Vec<RecordedEvent>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_to_event)
        .collect()
    }

    async fn read_all_until(
        &self,
        until: DateTime<Utc>,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM events WHERE global_position > $1 AND recorded_at <= $2 \
             ORDER BY global_position LIMIT $3"
        ))
        .bind(after)
        .bind(truncate_to_micros(until))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_to_event)
        .collect()
    }

    async fn head(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0)::BIGINT FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    fn subscribe(&self) -> watch::Receiver<i64> {
        self.head.subscribe()
    }
}
