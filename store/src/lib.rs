//! Portico's event store.
//!
//! - [`EventStore`]: the contract every backend keeps (see `../shared/DESIGN.md`): atomic
//!   multi-stream appends with expected versions, idempotency by event id, reads of one
//!   stream, of `$all` in pages and of `$all` as of an instant, a per-stream hash chain and
//!   notification of committed positions.
//! - [`sqlite::SqliteEventStore`]: the embedded default.
//! - [`command`]: the one place that loads streams, decides, and appends with the expected
//!   versions, retrying on conflict.
//! - [`hash`]: the chain's definition and its verifier.
//!
//! The contract suite lives in `tests/contract/` and runs unchanged against every backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_domain::streams::StreamId;
use tokio::sync::watch;

mod append;
pub mod command;
pub mod error;
pub mod hash;
pub mod postgres;
pub mod sqlite;
pub mod testing;
mod types;

pub use error::StoreError;
pub use types::*;

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends to one or more streams atomically: every event lands or none does. Each
    /// stream is checked against its expected version; a mismatch is
    /// [`StoreError::Conflict`] and nothing is written. Re-appending events whose ids are
    /// all stored with identical content succeeds and returns where they are; an id stored
    /// with other content is [`StoreError::EventIdReused`]. Returns only after commit.
    async fn append(&self, streams: Vec<AppendStream>) -> StoreResult<AppendResult>;

    /// Up to `limit` events of one stream from `from_version` on, in version order.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>>;

    /// Several whole streams, each in version order, in the order asked (an empty list for
    /// a stream that does not exist): what a command reads before it decides. Backends
    /// answer in one query, so the streams are read as of one instant.
    async fn read_streams(&self, streams: &[StreamId]) -> StoreResult<Vec<Vec<RecordedEvent>>> {
        let mut out = Vec::with_capacity(streams.len());
        for stream in streams {
            out.push(read_whole_stream(self, stream).await?);
        }
        Ok(out)
    }

    /// Up to `limit` events of `$all` with a position greater than `after`, in order.
    async fn read_all(&self, after: i64, limit: u32) -> StoreResult<Vec<RecordedEvent>>;

    /// [`EventStore::read_all`] as projectors read it: only the fields they use, and the
    /// payload as its JSON text (see [`StoredPayload`]). A backend that can read less than
    /// whole events overrides it.
    async fn read_all_payloads(&self, after: i64, limit: u32) -> StoreResult<Vec<StoredPayload>> {
        Ok(self
            .read_all(after, limit)
            .await?
            .into_iter()
            .map(StoredPayload::from)
            .collect())
    }

    /// Like [`EventStore::read_all`], only events recorded at or before `until`: the log as
    /// it stood at that instant, for as-of replays.
    async fn read_all_until(
        &self,
        until: DateTime<Utc>,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<RecordedEvent>>;

    /// The position of the last committed event (0 when empty).
    async fn head(&self) -> StoreResult<i64>;

    /// Committed head positions, published after each commit by this process. A
    /// subscriber reads `$all` after its checkpoint whenever the value changes (and polls
    /// as a fallback, for writes made by other processes).
    fn subscribe(&self) -> watch::Receiver<i64>;

    /// The SQLite file the log is in, for a reader that reads it directly (a rebuild on
    /// SQLite reads the log with a connection of its own; see
    /// [`PAYLOADS_AFTER`]). `None` for every other backend.
    fn sqlite_file(&self) -> Option<&std::path::Path> {
        None
    }
}

/// Reads a whole stream, page by page.
pub async fn read_whole_stream<S: EventStore + ?Sized>(
    store: &S,
    stream: &StreamId,
) -> StoreResult<Vec<RecordedEvent>> {
    const PAGE: u32 = 1000;
    let mut events = Vec::new();
    loop {
        let next = i64::try_from(events.len()).unwrap_or(i64::MAX);
        let page = store.read_stream(stream, next, PAGE).await?;
        let done = page.len() < PAGE as usize;
        events.extend(page);
        if done {
            return Ok(events);
        }
    }
}

/// Verifies the hash chain and version sequence of one stream.
pub async fn verify_stream<S: EventStore + ?Sized>(
    store: &S,
    stream: &StreamId,
) -> StoreResult<Vec<hash::ChainProblem>> {
    let mut verifier = hash::ChainVerifier::default();
    let mut problems = Vec::new();
    for event in read_whole_stream(store, stream).await? {
        problems.extend(verifier.check(&event));
    }
    Ok(problems)
}

/// Verifies every stream in one pass over `$all`. Returns the problems found and the number
/// of events checked.
pub async fn verify_all<S: EventStore + ?Sized>(
    store: &S,
) -> StoreResult<(Vec<hash::ChainProblem>, u64)> {
    const PAGE: u32 = 5000;
    let mut verifier = hash::ChainVerifier::default();
    let mut problems = Vec::new();
    let mut after = 0;
    loop {
        let page = store.read_all(after, PAGE).await?;
        for event in &page {
            problems.extend(verifier.check(event));
            after = event.global_position;
        }
        if page.len() < PAGE as usize {
            return Ok((problems, verifier.checked));
        }
    }
}
