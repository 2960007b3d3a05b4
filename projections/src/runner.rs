//! Applying events to read models exactly once, and the runner that keeps them caught up.
//!
//! Each batch runs in one transaction that (1) takes the projector's lock (SQLite: the write
//! lock, via `BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock per
//! projector), (2) reads the projector's checkpoint, (3) applies only the events after it,
//! and (4) moves the checkpoint, then commits. A crash anywhere before the commit leaves
//! tables and checkpoint as they were; a batch delivered twice finds its events at or below
//! the checkpoint and changes nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use portico_domain::events::DecodeError;
use portico_domain::Event;
use portico_store::hash::format_instant;
use portico_store::{EventStore, Metadata, RecordedEvent, StoreError, StoredPayload};
use tokio::sync::watch;

use crate::db::{Arg, Db, Tx};
use crate::projector::{plan, Envelope, Fold, Projector, TableSet};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("read-model database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("an event cannot be decoded, so projections cannot pass it: {0}")]
    Decode(#[from] DecodeError),
    #[error("projection {0} has no checkpoint row; it was never created")]
    Missing(String),
    #[error("a projection batch task failed: {0}")]
    Task(String),
}

pub type ProjectionResult<T> = Result<T, ProjectionError>;

/// An event decoded once for all projectors: what an [`Envelope`] lends them.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub position: i64,
    pub metadata: Metadata,
    pub event: Event,
    /// `recorded_at` in its stored text form (RFC 3339, microseconds, UTC).
    pub recorded_at: String,
}

impl Decoded {
    pub fn envelope(&self) -> Envelope<'_> {
        Envelope {
            position: self.position,
            recorded_at: &self.recorded_at,
            metadata: &self.metadata,
            event: &self.event,
        }
    }
}

/// Decodes a page read with [`EventStore::read_all_payloads`]: each payload straight from
/// its JSON text.
pub fn decode_payloads(page: Vec<StoredPayload>) -> ProjectionResult<Vec<Decoded>> {
    page.into_iter()
        .map(|p| {
            Ok(Decoded {
                event: portico_domain::events::decode_json(
                    &p.event_type,
                    p.schema_version,
                    &p.data,
                )?,
                position: p.global_position,
                metadata: p.metadata,
                recorded_at: p.recorded_at,
            })
        })
        .collect()
}

/// Decodes a page of whole events (as-of reads, tests). The payload is moved into the
/// decoder, not copied.
pub fn decode_page(page: Vec<RecordedEvent>) -> ProjectionResult<Vec<Decoded>> {
    page.into_iter()
        .map(|mut recorded| {
            let data = std::mem::take(&mut recorded.data);
            Ok(Decoded {
                event: portico_domain::events::decode(
                    &recorded.event_type,
                    recorded.schema_version,
                    data,
                )?,
                position: recorded.global_position,
                recorded_at: format_instant(recorded.recorded_at),
                metadata: recorded.metadata,
            })
        })
        .collect()
}

/// A projector's checkpoint row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Checkpoint {
    pub name: String,
    pub position: i64,
    pub version: i32,
    pub generation: i64,
    pub updated_at: String,
}

const CHECKPOINT: &str =
    "SELECT name, position, version, generation, updated_at FROM projections WHERE name = $1";

pub async fn checkpoint(db: &Db, name: &str) -> ProjectionResult<Option<Checkpoint>> {
    Ok(db.fetch_optional(CHECKPOINT, &[name.into()]).await?)
}

pub async fn checkpoints(db: &Db) -> ProjectionResult<Vec<Checkpoint>> {
    Ok(db
        .fetch_all(
            "SELECT name, position, version, generation, updated_at FROM projections ORDER BY name",
            &[],
        )
        .await?)
}

/// A stable 64-bit key for a PostgreSQL advisory lock (FNV-1a of the name).
fn lock_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Serializes writers of one projection: on SQLite the transaction already holds the
/// database's write lock; on PostgreSQL take the projection's advisory lock.
pub(crate) async fn lock(tx: &mut Tx, name: &str) -> ProjectionResult<()> {
    if tx.is_postgres() {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[lock_key(name).into()])
            .await?;
    }
    Ok(())
}

pub(crate) fn now_text() -> String {
    format_instant(Utc::now())
}

/// Creates the projector's live tables and checkpoint row if they do not exist.
pub async fn ensure_live(db: &Db, projector: &dyn Projector) -> ProjectionResult<Checkpoint> {
    let name = projector.name();
    let mut tx = db.begin().await?;
    lock(&mut tx, name).await?;
    if let Some(existing) = tx
        .fetch_optional::<Checkpoint>(CHECKPOINT, &[name.into()])
        .await?
    {
        return Ok(existing);
    }
    let mut tables = TableSet::live(projector);
    for ddl in projector.ddl() {
        tx.execute(&tables.render(ddl), &[]).await?;
    }
    tx.execute(
        "INSERT INTO projections (name, position, version, generation, updated_at) VALUES ($1, 0, $2, 0, $3)",
        &[name.into(), i64::from(projector.version()).into(), now_text().into()],
    )
    .await?;
    tx.commit().await?;
    checkpoint(db, name)
        .await?
        .ok_or_else(|| ProjectionError::Missing(name.to_owned()))
}

/// Applies `events` to the tables named by `tables`, exactly once, advancing the checkpoint
/// row `row`. Returns the new checkpoint, or `None` when every event was already applied.
#[tracing::instrument(skip_all, fields(projection = row, events = events.len()), err)]
pub async fn apply_batch(
    db: &Db,
    projector: &dyn Projector,
    row: &str,
    tables: &mut TableSet,
    events: &[Decoded],
) -> ProjectionResult<Option<i64>> {
    fold_batch(db, projector, row, tables, events, Fold::Live).await
}

/// [`apply_batch`], folding as `fold` says.
pub(crate) async fn fold_batch(
    db: &Db,
    projector: &dyn Projector,
    row: &str,
    tables: &mut TableSet,
    events: &[Decoded],
    fold: Fold,
) -> ProjectionResult<Option<i64>> {
    let mut tx = db.begin().await?;
    lock(&mut tx, row).await?;
    let current = tx
        .fetch_optional::<Checkpoint>(CHECKPOINT, &[row.into()])
        .await?
        .ok_or_else(|| ProjectionError::Missing(row.to_owned()))?;
    let fresh = events.iter().filter(|e| e.position > current.position);
    let Some(last) = fresh.clone().next_back().map(|e| e.position) else {
        return Ok(None);
    };
    for (_, stmts) in plan(projector, fresh.map(Decoded::envelope), fold) {
        for s in stmts {
            tx.execute(&tables.render(s.sql), &s.args).await?;
        }
    }
    tx.execute(
        "UPDATE projections SET position = $2, updated_at = $3 WHERE name = $1",
        &[row.into(), last.into(), now_text().into()],
    )
    .await?;
    tx.commit().await?;
    Ok(Some(last))
}

/// Keeps every projector caught up with the store.
#[derive(Debug)]
pub struct Runner {
    db: Db,
    store: Arc<dyn EventStore>,
    projectors: Vec<Arc<dyn Projector>>,
    page_size: u32,
    poll: Duration,
    progress: watch::Sender<i64>,
}

impl Runner {
    pub fn new(db: Db, store: Arc<dyn EventStore>, projectors: Vec<Arc<dyn Projector>>) -> Self {
        Self {
            db,
            store,
            projectors,
            page_size: 1000,
            poll: Duration::from_millis(500),
            progress: watch::channel(0).0,
        }
    }

    /// Events read from the store per step.
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// How often to look for events written by other processes when nothing wakes us.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    pub fn projectors(&self) -> &[Arc<dyn Projector>] {
        &self.projectors
    }

    /// The lowest checkpoint of all projectors, as published after the last step.
    pub fn position(&self) -> i64 {
        *self.progress.borrow()
    }

    /// Creates missing tables, and rebuilds (blue/green) any projector whose tables were
    /// built by another version of it.
    pub async fn prepare(&self) -> ProjectionResult<()> {
        for p in &self.projectors {
            let cp = ensure_live(&self.db, p.as_ref()).await?;
            if cp.version != p.version() {
                tracing::info!(
                    projection = p.name(),
                    from = cp.version,
                    to = p.version(),
                    "rebuilding for a new version"
                );
                crate::rebuild::rebuild(&self.db, self.store.as_ref(), p.as_ref(), |_| {}).await?;
            }
        }
        self.publish().await?;
        Ok(())
    }

    async fn live_positions(&self) -> ProjectionResult<Vec<i64>> {
        let mut positions = Vec::with_capacity(self.projectors.len());
        for p in &self.projectors {
            let cp = checkpoint(&self.db, p.name())
                .await?
                .ok_or_else(|| ProjectionError::Missing(p.name().to_owned()))?;
            positions.push(cp.position);
        }
        Ok(positions)
    }

    /// Publishes the lowest checkpoint, read back from the table rather than taken from the
    /// step: a blue/green swap may have moved a checkpoint (even backwards) meanwhile, and
    /// publishing a stale, higher figure would let a read pass before its write is visible.
    async fn publish(&self) -> ProjectionResult<i64> {
        let min = self.live_positions().await?.into_iter().min().unwrap_or(0);
        self.progress.send_if_modified(|p| {
            let moved = *p != min;
            *p = min;
            moved
        });
        Ok(min)
    }

    /// Reads one page after the slowest projector and applies it to each projector that
    /// has not seen it. Returns how many events the page held (0: caught up).
    pub async fn step(&self) -> ProjectionResult<usize> {
        let positions = self.live_positions().await?;
        let from = positions.iter().copied().min().unwrap_or(0);
        let page = decode_payloads(self.store.read_all_payloads(from, self.page_size).await?)?;
        if page.is_empty() {
            self.publish().await?;
            return Ok(0);
        }
        let events = page.len();
        let page = Arc::new(page);
        for p in &self.projectors {
            // On a task of its own: a runner stopped mid-batch (shutdown, lost leadership)
            // lets the batch's transaction finish instead of dropping it with its lock.
            let (db, p, page) = (self.db.clone(), p.clone(), page.clone());
            tokio::spawn(async move {
                let mut tables = TableSet::live(p.as_ref());
                apply_batch(&db, p.as_ref(), p.name(), &mut tables, &page).await
            })
            .await
            .map_err(|e| ProjectionError::Task(e.to_string()))??;
        }
        self.publish().await?;
        Ok(events)
    }

    /// Applies everything up to the head of the store, then returns.
    pub async fn catch_up(&self) -> ProjectionResult<()> {
        while self.step().await? > 0 {}
        Ok(())
    }

    /// Runs until `shutdown` resolves: catches up, then waits for the store's commit
    /// notifications (or the poll interval, for writes by other processes). Errors are
    /// logged and retried with backoff; projections never skip an event.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut commits = self.store.subscribe();
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.step().await {
                Ok(n) if n > 0 => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::error!(error = %e, "projection step failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            }
            tokio::select! {
                () = &mut shutdown => return,
                _ = commits.changed() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }

    /// Waits until every projector has applied `position` (a command's last position), so
    /// a client reads its own write. `false` when `timeout` passes first.
    pub async fn wait_for(&self, position: i64, timeout: Duration) -> bool {
        let mut rx = self.progress.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// For processes that do not run the projectors (PostgreSQL followers): polls the
/// checkpoints until every live projection has applied `position`.
pub async fn wait_for_position(
    db: &Db,
    projectors: &[Arc<dyn Projector>],
    position: i64,
    timeout: Duration,
) -> ProjectionResult<bool> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        let mut lowest = i64::MAX;
        for p in projectors {
            let cp = checkpoint(db, p.name()).await?;
            lowest = lowest.min(cp.map_or(0, |c| c.position));
        }
        if lowest >= position {
            return Ok(true);
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Arguments are exported for the query module.
pub(crate) fn text(s: impl ToString) -> Arg {
    Arg::Text(s.to_string())
}
