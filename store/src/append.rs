//! Append rules every backend shares: what a well-formed append is, when an append is a
//! retry of one already stored, how its events are chained, and telling subscribers.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use portico_domain::streams::StreamId;
use tokio::sync::{mpsc, oneshot, watch};

use crate::hash::{canonical_json, chain_hash, HashInput, GENESIS};
use crate::{
    AppendResult, AppendStream, Appended, NewEvent, RecordedEvent, StoreError, StoreResult,
};

/// One row to insert, with its place in its stream's chain worked out.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    pub stream_id: &'a StreamId,
    pub version: i64,
    pub event: &'a NewEvent,
    /// Canonical JSON, as stored.
    pub data: String,
    pub metadata: String,
    pub hash: [u8; 32],
}

/// Chains the events of an append: each stream continues from its head (last version and
/// hash, `None` for a new stream), every event stamped with `recorded_at`.
pub(crate) fn chain<'a>(
    streams: &'a [AppendStream],
    heads: Vec<Option<(i64, Vec<u8>)>>,
    recorded_at: DateTime<Utc>,
) -> StoreResult<Vec<Row<'a>>> {
    let mut rows = Vec::new();
    for (s, head) in streams.iter().zip(heads) {
        let (mut version, mut previous) = match head {
            Some((v, h)) => (
                v + 1,
                h.try_into()
                    .map_err(|_| corrupt(v, "hash", "not 32 bytes"))?,
            ),
            None => (0, GENESIS),
        };
        for e in &s.events {
            let metadata =
                serde_json::to_value(&e.metadata).map_err(|e| corrupt(0, "metadata", e))?;
            let hash = chain_hash(
                &previous,
                &HashInput {
                    stream_id: s.stream_id.as_str(),
                    stream_version: version,
                    event_id: e.event_id,
                    event_type: &e.event_type,
                    schema_version: e.schema_version,
                    data: &e.data,
                    metadata: &metadata,
                    recorded_at,
                },
            );
            rows.push(Row {
                stream_id: &s.stream_id,
                version,
                event: e,
                data: canonical_json(&e.data),
                metadata: canonical_json(&metadata),
                hash,
            });
            previous = hash;
            version += 1;
        }
    }
    Ok(rows)
}

impl Row<'_> {
    pub(crate) fn appended(&self, global_position: i64) -> Appended {
        Appended {
            event_id: self.event.event_id,
            stream_id: self.stream_id.clone(),
            stream_version: self.version,
            global_position,
        }
    }
}

/// The appended rows with the positions a multi-row insert returned, matched by event id
/// (`position_of`); an event the insert did not return is a corrupt answer.
pub(crate) fn appended_in_order(
    rows: &[Row<'_>],
    position_of: impl Fn(&uuid::Uuid) -> Option<i64>,
) -> StoreResult<Vec<Appended>> {
    rows.iter()
        .map(|row| {
            position_of(&row.event.event_id)
                .map(|position| row.appended(position))
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "the insert returned no position for event {}",
                        row.event.event_id
                    ))
                })
        })
        .collect()
}

/// Tells subscribers about a committed append; the head never moves backwards.
pub(crate) fn publish(head: &watch::Sender<i64>, result: &AppendResult) {
    let last = result.last_position();
    head.send_if_modified(|h| {
        let moved = last > *h;
        *h = (*h).max(last);
        moved
    });
}

pub(crate) fn validate(streams: &[AppendStream]) -> StoreResult<()> {
    if streams.is_empty() || streams.iter().any(|s| s.events.is_empty()) {
        return Err(StoreError::InvalidAppend(
            "every stream of an append needs at least one event",
        ));
    }
    let mut names = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for s in streams {
        if !names.insert(&s.stream_id) {
            return Err(StoreError::InvalidAppend(
                "a stream appears twice in one append",
            ));
        }
        for e in &s.events {
            if !ids.insert(e.event_id) {
                return Err(StoreError::InvalidAppend(
                    "an event id appears twice in one append",
                ));
            }
        }
    }
    Ok(())
}

/// Whether a stored event is the same as the one being appended again.
pub(crate) fn same_event(stored: &RecordedEvent, stream: &StreamId, new: &NewEvent) -> bool {
    stored.stream_id == *stream
        && stored.event_type == new.event_type
        && stored.schema_version == new.schema_version
        && canonical_json(&stored.data) == canonical_json(&new.data)
        && stored.metadata == new.metadata
}

/// The result of an append whose events are all stored already, or the reason it is not.
pub(crate) fn replayed_append(
    streams: &[AppendStream],
    stored: &[RecordedEvent],
) -> StoreResult<Option<AppendResult>> {
    if stored.is_empty() {
        return Ok(None);
    }
    let mut events = Vec::new();
    for s in streams {
        for new in &s.events {
            let Some(found) = stored.iter().find(|e| e.event_id == new.event_id) else {
                // Some ids stored, some not: this is not a retry of one append.
                let first = stored[0].event_id;
                return Err(StoreError::EventIdReused { event_id: first });
            };
            if !same_event(found, &s.stream_id, new) {
                return Err(StoreError::EventIdReused {
                    event_id: new.event_id,
                });
            }
            events.push(Appended {
                event_id: found.event_id,
                stream_id: found.stream_id.clone(),
                stream_version: found.stream_version,
                global_position: found.global_position,
            });
        }
    }
    Ok(Some(AppendResult { events }))
}

pub(crate) fn corrupt(position: i64, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("event at position {position}: {what}: {e}"))
}

/// The most appends one group commit takes.
pub const MAX_GROUP: usize = 256;

/// One append waiting for its store's writer task (group commit: see `sqlite.rs`).
#[derive(Debug)]
pub(crate) struct Request {
    pub streams: Vec<AppendStream>,
    pub now: DateTime<Utc>,
    pub reply: oneshot::Sender<StoreResult<AppendResult>>,
}

/// Queues an append for the writer task and waits for its answer. The writer runs it to
/// its commit or rollback even if this caller is cancelled (a client hangs up).
pub(crate) async fn submit(
    writer: &mpsc::UnboundedSender<Request>,
    streams: Vec<AppendStream>,
    now: DateTime<Utc>,
) -> StoreResult<AppendResult> {
    let (reply, answer) = oneshot::channel();
    let stopped = || StoreError::Unavailable(sqlx::Error::PoolClosed);
    writer
        .send(Request {
            streams,
            now,
            reply,
        })
        .map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// Starts a store's writer task: it takes what is queued, commits it as one group in a
/// transaction from `begin`, answers, and repeats until the last handle of the store is
/// dropped. Returns the queue's sending end.
pub(crate) fn spawn_writer<B, F>(
    begin: B,
    head: std::sync::Arc<watch::Sender<i64>>,
) -> mpsc::UnboundedSender<Request>
where
    B: Fn() -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Box<dyn GroupTx>, sqlx::Error>> + Send,
{
    let (writer, mut queue) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(group) = next_group(&mut queue).await {
            commit_group(&begin, &head, group).await;
        }
    });
    writer
}

/// Waits for an append, then takes every other one already queued, up to [`MAX_GROUP`].
async fn next_group(queue: &mut mpsc::UnboundedReceiver<Request>) -> Option<Vec<Request>> {
    let mut group = vec![queue.recv().await?];
    while group.len() < MAX_GROUP {
        match queue.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
    Some(group)
}

/// An error for every member of a group whose transaction failed as a whole.
pub(crate) fn group_failed(e: &sqlx::Error) -> StoreError {
    if crate::error::is_unavailable(e) {
        StoreError::Unavailable(sqlx::Error::Io(std::io::Error::other(e.to_string())))
    } else {
        StoreError::Database(sqlx::Error::Protocol(e.to_string()))
    }
}

/// Answers every member of a group once its transaction committed (or did not), then
/// tells subscribers.
pub(crate) fn answer_group(
    head: &watch::Sender<i64>,
    outcomes: Vec<(Request, StoreResult<AppendResult>)>,
    committed: Result<(), sqlx::Error>,
) {
    let mut last = AppendResult { events: Vec::new() };
    for (request, outcome) in outcomes {
        let answer = match (&committed, outcome) {
            (Ok(()), outcome) => outcome,
            (Err(e), Ok(_)) => Err(group_failed(e)),
            (Err(_), Err(e)) => Err(e),
        };
        if let Ok(result) = &answer {
            if result.last_position() > last.last_position() {
                last = result.clone();
            }
        }
        let _ = request.reply.send(answer);
    }
    publish(head, &last);
}

/// What a group knows while it runs: the newest `recorded_at` and the head (last version
/// and hash) of every stream its appends name, read once when the group starts and carried
/// forward as each append is written, so a fresh append costs one insert per event.
#[derive(Debug, Default)]
pub(crate) struct GroupState {
    pub floor: Option<DateTime<Utc>>,
    pub heads: HashMap<StreamId, Option<(i64, Vec<u8>)>>,
}

impl GroupState {
    /// Every stream the group's appends name, once each.
    pub(crate) fn streams(group: &[Request]) -> Vec<StreamId> {
        let mut seen = std::collections::HashSet::new();
        group
            .iter()
            .flat_map(|r| r.streams.iter().map(|s| &s.stream_id))
            .filter(|s| seen.insert(*s))
            .cloned()
            .collect()
    }

    pub(crate) fn head(&self, stream: &StreamId) -> Option<(i64, Vec<u8>)> {
        self.heads.get(stream).cloned().flatten()
    }

    /// After an append's rows are all written: the streams' new heads, the new floor.
    pub(crate) fn advance(&mut self, rows: &[Row<'_>], recorded_at: DateTime<Utc>) {
        for row in rows {
            self.heads.insert(
                row.stream_id.clone(),
                Some((row.version, row.hash.to_vec())),
            );
        }
        self.floor = Some(recorded_at);
    }
}

/// How one append inside a group went.
#[derive(Debug)]
pub(crate) enum Step {
    /// The answer, with nothing of a refused append left behind.
    Answer(StoreResult<AppendResult>),
    /// It failed after writing part of itself; only rolling back undoes that.
    Undo(StoreError),
}

/// What the group loop needs of a backend's open append transaction.
#[async_trait]
pub(crate) trait GroupTx: Send {
    /// The newest `recorded_at` and the heads of every stream the group names.
    async fn load_state(&mut self, group: &[Request]) -> Result<GroupState, sqlx::Error>;
    /// One append; with `savepoints`, inside the savepoint `append`.
    async fn append(
        &mut self,
        streams: &[AppendStream],
        now: DateTime<Utc>,
        state: &mut GroupState,
        savepoints: bool,
    ) -> Step;
    /// A statement without arguments (the savepoint statements).
    async fn run(&mut self, sql: &'static str) -> Result<(), sqlx::Error>;
    async fn commit(self: Box<Self>) -> Result<(), sqlx::Error>;
    async fn rollback(self: Box<Self>);
}

type Outcomes = (Vec<StoreResult<AppendResult>>, Result<(), sqlx::Error>);

/// Commits a group. The fast way writes the appends one after another with no savepoints:
/// a version conflict is found before anything of its append is written, so it costs
/// nothing to refuse. Only an append that fails after writing part of itself (an event id
/// already taken) needs undoing; then the whole transaction is rolled back and the group
/// runs again with a savepoint around each append.
async fn commit_group<B, F>(begin: &B, head: &watch::Sender<i64>, group: Vec<Request>)
where
    B: Fn() -> F,
    F: std::future::Future<Output = Result<Box<dyn GroupTx>, sqlx::Error>>,
{
    let (outcomes, committed) = match run_group(begin, &group, false).await {
        Some(done) => done,
        None => run_group(begin, &group, true).await.unwrap_or_else(|| {
            // With savepoints a group never asks to run again; should it, all fail.
            let e = sqlx::Error::Protocol("a group could not be committed".into());
            (
                group.iter().map(|_| Err(group_failed(&e))).collect(),
                Ok(()),
            )
        }),
    };
    answer_group(head, group.into_iter().zip(outcomes).collect(), committed);
}

/// One run of a group: `None` when the fast way has to give way to savepoints.
async fn run_group<B, F>(begin: &B, group: &[Request], savepoints: bool) -> Option<Outcomes>
where
    B: Fn() -> F,
    F: std::future::Future<Output = Result<Box<dyn GroupTx>, sqlx::Error>>,
{
    let all_failed = |e: &sqlx::Error| -> Option<Outcomes> {
        Some((group.iter().map(|_| Err(group_failed(e))).collect(), Ok(())))
    };
    let mut tx = match begin().await {
        Ok(tx) => tx,
        Err(e) => return all_failed(&e),
    };
    let mut state = match tx.load_state(group).await {
        Ok(state) => state,
        Err(e) => {
            tx.rollback().await;
            return all_failed(&e);
        }
    };
    let mut outcomes = Vec::with_capacity(group.len());
    for r in group {
        if let Err(e) = validate(&r.streams) {
            outcomes.push(Err(e));
            continue;
        }
        if savepoints {
            if let Err(e) = tx.run("SAVEPOINT append").await {
                tx.rollback().await;
                return all_failed(&e);
            }
        }
        let answer = match tx.append(&r.streams, r.now, &mut state, savepoints).await {
            Step::Answer(answer) => answer,
            Step::Undo(_) if !savepoints => {
                tx.rollback().await;
                return None;
            }
            Step::Undo(e) => {
                if let Err(db) = tx.run("ROLLBACK TO SAVEPOINT append").await {
                    tx.rollback().await;
                    return all_failed(&db);
                }
                Err(e)
            }
        };
        if savepoints {
            if let Err(e) = tx.run("RELEASE SAVEPOINT append").await {
                tx.rollback().await;
                return all_failed(&e);
            }
        }
        outcomes.push(answer);
    }
    let committed = tx.commit().await;
    Some((outcomes, committed))
}
