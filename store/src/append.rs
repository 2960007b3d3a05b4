//! Append rules every backend shares: what a well-formed append is, and when an append
//! is a retry of one already stored.

use portico_domain::streams::StreamId;

use crate::hash::canonical_json;
use crate::{
    AppendResult, AppendStream, Appended, NewEvent, RecordedEvent, StoreError, StoreResult,
};

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
