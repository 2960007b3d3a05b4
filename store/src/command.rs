//! Command handling, in one place: load the streams a decision reads, decide on their
//! state, append what was decided to each stream at the version it was read at, and on a
//! conflict (someone else appended in between) start over from a fresh read, a bounded
//! number of times.
//!
//! ```text
//! let committed = execute(&store, &[StreamId::invoice(id)], &meta, |loaded| {
//!     loaded.replay::<Invoice>(&StreamId::invoice(id)).settle(payment_id)
//! }).await?;
//! ```

use std::collections::HashMap;
use std::time::Duration;

use portico_domain::streams::StreamId;
use portico_domain::{Aggregate, DomainError, DomainResult, Event};

use crate::{
    AppendResult, AppendStream, EventStore, ExpectedVersion, Metadata, NewEvent, StoreError,
};

/// How many times a command is decided before a conflict is given up to the caller.
pub const MAX_ATTEMPTS: u32 = 6;

/// The streams a decision reads, as they stood when read.
#[derive(Debug, Default)]
pub struct Loaded {
    streams: HashMap<StreamId, LoadedStream>,
}

#[derive(Debug)]
struct LoadedStream {
    version: Option<i64>,
    events: Vec<Event>,
}

impl Loaded {
    pub fn events(&self, stream: &StreamId) -> &[Event] {
        self.streams
            .get(stream)
            .map_or(&[], |s| s.events.as_slice())
    }

    /// The aggregate folded from one loaded stream (empty state for a missing stream).
    pub fn replay<A: Aggregate>(&self, stream: &StreamId) -> A {
        A::replay(self.events(stream))
    }

    /// The aggregate folded from several loaded streams in turn, e.g. a firm with the
    /// reservation stream of the key a command claims.
    pub fn replay_all<A: Aggregate>(&self, streams: &[&StreamId]) -> A {
        let mut state = A::default();
        for stream in streams {
            for event in self.events(stream) {
                state.apply(event);
            }
        }
        state
    }

    fn version(&self, stream: &StreamId) -> Option<Option<i64>> {
        self.streams.get(stream).map(|s| s.version)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused the command.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Still conflicting after [`MAX_ATTEMPTS`] fresh decisions: heavy contention on
    /// `stream`. The caller may retry later.
    #[error("stream {stream} kept changing while the command was decided ({attempts} attempts)")]
    Conflict { stream: StreamId, attempts: u32 },
    #[error(transparent)]
    Store(StoreError),
}

/// What a command appended.
#[derive(Debug, Clone)]
pub struct Committed {
    pub events: Vec<Event>,
    pub appended: AppendResult,
}

impl Committed {
    /// The position a reader waits for to see this command's effects (0 if nothing was
    /// appended).
    pub fn last_position(&self) -> i64 {
        self.appended.last_position()
    }
}

/// Reads the streams in one go (a bulk payment reads one stream per invoice).
async fn load<S: EventStore + ?Sized>(
    store: &S,
    streams: &[StreamId],
) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    for (stream, recorded) in streams.iter().zip(store.read_streams(streams).await?) {
        let version = recorded.last().map(|e| e.stream_version);
        let events = recorded
            .iter()
            .map(|e| e.decode())
            .collect::<Result<Vec<_>, _>>()?;
        loaded
            .streams
            .insert(stream.clone(), LoadedStream { version, events });
    }
    Ok(loaded)
}

/// Groups decided events by stream, keeping their order, each stream expected at the
/// version it was loaded at.
fn plan(
    loaded: &Loaded,
    events: &[Event],
    metadata: &Metadata,
) -> Result<Vec<AppendStream>, StoreError> {
    let mut plan: Vec<AppendStream> = Vec::new();
    for event in events {
        let stream = event.stream_id();
        let new = NewEvent::from_domain(event, metadata.clone());
        if let Some(s) = plan.iter_mut().find(|s| s.stream_id == stream) {
            s.events.push(new);
            continue;
        }
        let version = loaded.version(&stream).ok_or(StoreError::InvalidAppend(
            "a command wrote to a stream it did not read",
        ))?;
        plan.push(AppendStream {
            stream_id: stream,
            expected: ExpectedVersion::from_last_seen(version),
            events: vec![new],
        });
    }
    Ok(plan)
}

/// Loads `streams`, decides with `decide`, appends atomically; retries on conflict.
#[tracing::instrument(skip_all, fields(streams = ?streams.iter().map(StreamId::as_str).collect::<Vec<_>>(), actor = %metadata.actor), err)]
pub async fn execute<S, F>(
    store: &S,
    streams: &[StreamId],
    metadata: &Metadata,
    decide: F,
) -> Result<Committed, CommandError>
where
    S: EventStore + ?Sized,
    F: Fn(&Loaded) -> DomainResult<Vec<Event>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let loaded = load(store, streams).await.map_err(CommandError::Store)?;
        let events = decide(&loaded)?;
        if events.is_empty() {
            return Ok(Committed {
                events,
                appended: AppendResult { events: Vec::new() },
            });
        }
        let plan = plan(&loaded, &events, metadata).map_err(CommandError::Store)?;
        match store.append(plan).await {
            Ok(appended) => return Ok(Committed { events, appended }),
            Err(StoreError::Conflict { stream, .. }) if attempt >= MAX_ATTEMPTS => {
                return Err(CommandError::Conflict {
                    stream,
                    attempts: attempt,
                });
            }
            Err(StoreError::Conflict { stream, .. }) => {
                tracing::debug!(%stream, attempt, "conflict; deciding again on fresh state");
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(CommandError::Store(e)),
        }
    }
}

/// 1, 2, 4, 8 ... ms plus up to as much again of jitter, so racing writers spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 1u64 << attempt.min(8);
    let jitter = u64::from(uuid::Uuid::now_v7().as_bytes()[15]) % base.max(1);
    Duration::from_millis(base + jitter)
}
