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

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_domain::clock::{Clock, SystemClock};
use portico_domain::streams::StreamId;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgRow};
use sqlx::{PgPool, Postgres, Row};
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
        let writer = {
            let pool = pool.clone();
            let kept = Kept::default();
            // `PgPool::close` waits for every connection lent out, so the kept one is
            // handed back as soon as the pool starts closing (`end` keeps none after).
            let close = pool.close_event();
            let slot = Arc::downgrade(&kept);
            tokio::spawn(async move {
                close.await;
                if let Some(slot) = slot.upgrade() {
                    let held = slot.lock().ok().and_then(|mut s| s.take());
                    drop(held);
                }
            });
            spawn_writer(
                move || begin_group(pool.clone(), kept.clone()),
                head.clone(),
            )
        };
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

/// The writer task's connection, kept from one group to the next. Taking a connection
/// from the pool costs a round trip of its own (sqlx pings an idle connection before it
/// lends it) and another as it goes back, beside the next append's statements: with 1
/// writer, begin took 200-250 µs of an append's 1.0-1.3 ms from the pool and 150-190 µs
/// on a kept connection, and the command's own read got faster too.
type Kept = Arc<std::sync::Mutex<Option<KeptConn>>>;

/// How long the writer keeps one connection before it hands it back to the pool, whose
/// lifetime and idle rules then apply to it again.
const KEEP_FOR: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct KeptConn {
    conn: PoolConnection<Postgres>,
    since: Instant,
}

/// The PostgreSQL side of a group: one transaction holding the append lock, on the
/// writer's kept connection, begun and ended by hand (`BEGIN`, `COMMIT`, `ROLLBACK`) so the
/// connection outlives it.
struct PgGroupTx {
    /// `None` once committed or rolled back.
    conn: Option<KeptConn>,
    kept: Kept,
    pool: PgPool,
}

impl PgGroupTx {
    fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        self.conn
            .as_mut()
            .map(|k| &mut *k.conn)
            .ok_or_else(|| sqlx::Error::Protocol("the group's transaction has ended".into()))
    }

    /// Ends the transaction with `sql`. The connection is kept for the next group if that
    /// worked (or goes back to the pool once kept for [`KEEP_FOR`]), and is closed if it
    /// did not: its state is then unknown.
    async fn end(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        let Some(mut kept) = self.conn.take() else {
            return Ok(());
        };
        match sqlx::Executor::execute(&mut *kept.conn, sql).await {
            Ok(_) => {
                if let Ok(mut slot) = self.kept.lock() {
                    // Checked under the lock the close watcher takes the slot with: a
                    // connection kept after the pool began closing would hold it open.
                    if kept.since.elapsed() < KEEP_FOR && !self.pool.is_closed() {
                        *slot = Some(kept);
                    }
                }
                Ok(())
            }
            Err(e) => {
                kept.conn.close_on_drop();
                Err(e)
            }
        }
    }
}

impl Drop for PgGroupTx {
    /// A transaction dropped before its end (a panic, or the runtime shutting down) must
    /// not go back to the pool still open: its connection is closed instead, and the
    /// server rolls the transaction back.
    fn drop(&mut self) {
        if let Some(kept) = &mut self.conn {
            kept.conn.close_on_drop();
        }
    }
}

#[async_trait]
impl GroupTx for PgGroupTx {
    async fn load_state(&mut self, group: &[Request]) -> Result<GroupState, sqlx::Error> {
        load_state(self.conn()?, group).await
    }

    async fn append(
        &mut self,
        streams: &[AppendStream],
        now: DateTime<Utc>,
        state: &mut GroupState,
        savepoints: bool,
    ) -> Step {
        match self.conn() {
            Ok(conn) => append_in(conn, streams, now, state, savepoints).await,
            Err(e) => Step::Undo(e.into()),
        }
    }

    async fn run(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(sql).execute(self.conn()?).await.map(|_| ())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    async fn rollback(mut self: Box<Self>) {
        let _ = self.end("ROLLBACK").await;
    }
}

/// Opens a group's transaction and takes the append lock in one round trip (`BEGIN` and
/// the lock sent together as one simple query), on the kept connection if there is one.
/// A kept connection that fails here may have died while idle (the server restarted, or
/// an operator closed it): it is closed, and the group begins on a connection from the
/// pool, which sqlx tests before it lends it. Nothing happened on the failed one, so
/// beginning again is safe. Once the pool is closed, no append begins.
async fn begin_group(pool: PgPool, kept: Kept) -> Result<Box<dyn GroupTx>, sqlx::Error> {
    let held = kept.lock().ok().and_then(|mut slot| slot.take());
    if pool.is_closed() {
        return Err(sqlx::Error::PoolClosed);
    }
    let begin = format!("BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})");
    if let Some(mut held) = held {
        match sqlx::Executor::execute(&mut *held.conn, begin.as_str()).await {
            Ok(_) => {
                return Ok(Box::new(PgGroupTx {
                    conn: Some(held),
                    kept,
                    pool,
                }))
            }
            Err(e) => {
                tracing::debug!(error = %e, "the writer's kept connection failed; taking another");
                held.conn.close_on_drop();
            }
        }
    }
    let mut conn = pool.acquire().await?;
    if let Err(e) = sqlx::Executor::execute(&mut *conn, begin.as_str()).await {
        conn.close_on_drop();
        return Err(e);
    }
    Ok(Box::new(PgGroupTx {
        conn: Some(KeptConn {
            conn,
            since: Instant::now(),
        }),
        kept,
        pool,
    }))
}

/// A statement naming `streams` streams in one array (`stream_id = ANY($1)`), and whether
/// it may run from the plan the connection caches for it. PostgreSQL makes that generic
/// plan after five runs without knowing the array's length, estimating ten rows for any
/// array, and keeps it until the table is next analyzed: made while the table was small,
/// it scans the whole table and compares each row with every element in turn, which grows
/// with table × array (a submission of 100 invoices read its streams in 10 ms, out of 22,
/// on a log of 6,600 events that had been analyzed at 100). From nine elements on, a plan
/// made for the array itself hashes it or looks each stream up in the index, as the table
/// is now; it costs one more round trip (parse and describe) and a planning, which the
/// one- and two-stream reads of single commands would feel and a bulk read does not.
///
/// Returns the statement's text and whether to cache it. sqlx looks a statement up by its
/// text before it looks at `persistent`, so the uncached one is told apart by a comment.
fn plan_per_array(sql: &str, streams: usize) -> (Cow<'_, str>, bool) {
    if streams < 9 {
        (Cow::Borrowed(sql), true)
    } else {
        (
            Cow::Owned(format!("{sql} /* planned for its array */")),
            false,
        )
    }
}

/// The newest `recorded_at` and the heads of every stream the group names, in one query
/// (always one row at least: the floor, with no head when none of the streams exists).
async fn load_state(conn: &mut PgConnection, group: &[Request]) -> Result<GroupState, sqlx::Error> {
    let streams = GroupState::streams(group);
    let names: Vec<&str> = streams.iter().map(StreamId::as_str).collect();
    type HeadRow = (
        Option<DateTime<Utc>>,
        Option<String>,
        Option<i64>,
        Option<Vec<u8>>,
    );
    let (sql, cached) = plan_per_array(
        "SELECT (SELECT recorded_at FROM events ORDER BY global_position DESC LIMIT 1), \
                h.stream_id, h.stream_version, h.hash \
         FROM (SELECT 1) AS one LEFT JOIN ( \
             SELECT DISTINCT ON (stream_id) stream_id, stream_version, hash FROM events \
             WHERE stream_id = ANY($1) ORDER BY stream_id, stream_version DESC \
         ) AS h ON true",
        names.len(),
    );
    let rows: Vec<HeadRow> = sqlx::query_as(&sql)
        .bind(&names)
        .persistent(cached)
        .fetch_all(&mut *conn)
        .await?;
    let mut state = GroupState {
        floor: rows.first().and_then(|r| r.0),
        ..GroupState::default()
    };
    let found: std::collections::HashMap<String, (i64, Vec<u8>)> = rows
        .into_iter()
        .filter_map(|(_, s, v, h)| Some((s?, (v?, h?))))
        .collect();
    for s in streams {
        let head = found.get(s.as_str()).cloned();
        state.heads.insert(s, head);
    }
    Ok(state)
}

async fn stored_with_ids(
    conn: &mut PgConnection,
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
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(row_to_event)
    .collect()
}

/// One append inside the group's transaction (which holds the append lock); the retry
/// check runs only on a collision, as in `sqlite.rs`.
async fn append_in(
    conn: &mut PgConnection,
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
            let stored = match stored_with_ids(conn, streams).await {
                Ok(stored) => stored,
                Err(e) => return Step::Undo(e),
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
    let rows = match chain(streams, heads, recorded_at) {
        Ok(rows) => rows,
        Err(e) => return Step::Answer(Err(e)),
    };

    // Every row of the append in one statement (one round trip), positions taken in the
    // rows' order.
    let inserted: Result<Vec<(Uuid, i64)>, sqlx::Error> = sqlx::query_as(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, \
         schema_version, data, metadata, recorded_at, hash) \
         SELECT r.stream_id, r.stream_version, r.event_id, r.event_type, r.schema_version, \
                r.data, r.metadata, $8, r.hash \
         FROM UNNEST($1::text[], $2::bigint[], $3::uuid[], $4::text[], $5::int[], \
                     $6::text[], $7::text[], $9::bytea[]) WITH ORDINALITY \
              AS r(stream_id, stream_version, event_id, event_type, schema_version, \
                   data, metadata, hash, n) \
         ORDER BY r.n \
         RETURNING event_id, global_position",
    )
    .bind(
        rows.iter()
            .map(|r| r.stream_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.version).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.event.event_id).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.event.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.event.schema_version)
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.data.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.metadata.as_str()).collect::<Vec<_>>())
    .bind(recorded_at)
    .bind(rows.iter().map(|r| r.hash.to_vec()).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await;
    let appended = match inserted {
        Ok(positions) => {
            let positions: std::collections::HashMap<Uuid, i64> = positions.into_iter().collect();
            match appended_in_order(&rows, |id| positions.get(id).copied()) {
                Ok(appended) => appended,
                Err(e) => return Step::Undo(e),
            }
        }
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() && savepoints => {
            // An event id is stored already: this append again, or an id reused. The
            // failed insert aborted the transaction up to the savepoint.
            if let Err(e) = sqlx::query("ROLLBACK TO SAVEPOINT append")
                .execute(&mut *conn)
                .await
            {
                return Step::Undo(e.into());
            }
            return Step::Answer(match stored_with_ids(conn, streams).await {
                Ok(stored) => match replayed_append(streams, &stored) {
                    Ok(Some(replayed)) => Ok(replayed),
                    Ok(None) => Err(StoreError::Database(sqlx::Error::Database(db))),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            });
        }
        Err(e) => return Step::Undo(e.into()),
    };
    state.advance(&rows, recorded_at);
    Step::Answer(Ok(AppendResult { events: appended }))
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

    async fn read_streams(&self, streams: &[StreamId]) -> StoreResult<Vec<Vec<RecordedEvent>>> {
        let names: Vec<&str> = streams.iter().map(StreamId::as_str).collect();
        let mut by_stream: std::collections::HashMap<String, Vec<RecordedEvent>> =
            std::collections::HashMap::new();
        let base = format!(
            "SELECT {COLUMNS} FROM events WHERE stream_id = ANY($1) \
             ORDER BY stream_id, stream_version"
        );
        let (sql, cached) = plan_per_array(&base, names.len());
        let rows = sqlx::query(&sql)
            .bind(&names)
            .persistent(cached)
            .fetch_all(&self.pool)
            .await?;
        for row in &rows {
            let event = row_to_event(row)?;
            by_stream
                .entry(event.stream_id.as_str().to_owned())
                .or_default()
                .push(event);
        }
        Ok(streams
            .iter()
            .map(|s| by_stream.remove(s.as_str()).unwrap_or_default())
            .collect())
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

    async fn read_all_payloads(&self, after: i64, limit: u32) -> StoreResult<Vec<StoredPayload>> {
        sqlx::query(PAYLOADS_AFTER)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                StoredPayload::new(
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                    format_instant(row.try_get(5)?),
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
