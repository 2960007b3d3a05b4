//! What goes into the store and what comes out of it.

use chrono::{DateTime, Utc};
use portico_domain::events::{decode, DecodeError};
use portico_domain::ids::FirmId;
use portico_domain::streams::StreamId;
use portico_domain::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The version a writer expects a stream to be at (the version of its last event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have this version.
    Exact(i64),
    /// No check.
    Any,
}

impl ExpectedVersion {
    /// The expectation that matches a stream last seen at `version` (`None`: no stream).
    pub fn from_last_seen(version: Option<i64>) -> Self {
        version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
    }

    pub fn admits(&self, actual: Option<i64>) -> bool {
        match self {
            ExpectedVersion::NoStream => actual.is_none(),
            ExpectedVersion::Exact(v) => actual == Some(*v),
            ExpectedVersion::Any => true,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
            ExpectedVersion::Any => f.write_str("any version"),
        }
    }
}

/// Who did what, and why; stored beside every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The tenant; `None` only for events outside any firm.
    pub firm_id: Option<FirmId>,
    /// Who acted: `firm:{id}`, `contact:{id}`, `gateway:sandbox`, `system`, ...
    pub actor: String,
    /// Ties together every event caused by one request.
    pub correlation_id: Uuid,
    /// The event or command that caused this one, when there is one.
    pub causation_id: Option<Uuid>,
}

impl Metadata {
    pub fn new(firm_id: Option<FirmId>, actor: impl Into<String>) -> Self {
        Self {
            firm_id,
            actor: actor.into(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
        }
    }
}

/// An event to append. `event_id` is chosen by the writer (UUID v7), which is what makes a
/// retried append idempotent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: Metadata,
}

impl NewEvent {
    /// The stored form of a domain event at its current schema version, with a fresh id.
    pub fn from_domain(event: &Event, metadata: Metadata) -> Self {
        let encoded = event.encode();
        Self {
            event_id: Uuid::now_v7(),
            event_type: encoded.event_type.to_owned(),
            schema_version: encoded.schema_version,
            data: encoded.data,
            metadata,
        }
    }
}

/// Events for one stream within an append, with the version the writer expects.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendStream {
    pub stream_id: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// Where one appended event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub event_id: Uuid,
    pub stream_id: StreamId,
    pub stream_version: i64,
    pub global_position: i64,
}

/// The result of an append: one entry per event, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub events: Vec<Appended>,
}

impl AppendResult {
    /// The highest position written: what a reader waits for to see this write.
    pub fn last_position(&self) -> i64 {
        self.events
            .iter()
            .map(|e| e.global_position)
            .max()
            .unwrap_or(0)
    }
}

/// An event as projectors read it from `$all`: its position, type and schema version, its
/// payload as the JSON text stored (decoded with `portico_domain::events::decode_json`),
/// its metadata, and `recorded_at` in its canonical text form
/// ([`crate::hash::format_instant`]). A rebuild reads a million of these: leaving out the
/// stream, ids and hash, and not building a `serde_json::Value` of each payload, is most of
/// the cost of reading the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPayload {
    pub global_position: i64,
    pub event_type: String,
    pub schema_version: i32,
    pub data: String,
    pub metadata: Metadata,
    pub recorded_at: String,
}

/// What `read_all_payloads` selects on both SQL backends: up to `$2` events after position
/// `$1`, as the columns of a [`StoredPayload`] in its field order (`metadata` as JSON text).
pub const PAYLOADS_AFTER: &str =
    "SELECT global_position, event_type, schema_version, data, metadata, recorded_at \
     FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2";

impl StoredPayload {
    /// A row of [`PAYLOADS_AFTER`], with `recorded_at` already in its canonical text.
    pub fn new(
        global_position: i64,
        event_type: String,
        schema_version: i32,
        data: String,
        metadata: &str,
        recorded_at: String,
    ) -> crate::StoreResult<Self> {
        Ok(Self {
            global_position,
            event_type,
            schema_version,
            data,
            metadata: serde_json::from_str(metadata)
                .map_err(|e| crate::append::corrupt(global_position, "metadata", e))?,
            recorded_at,
        })
    }
}

impl From<RecordedEvent> for StoredPayload {
    fn from(e: RecordedEvent) -> Self {
        Self {
            global_position: e.global_position,
            event_type: e.event_type,
            schema_version: e.schema_version,
            data: e.data.to_string(),
            metadata: e.metadata,
            recorded_at: crate::hash::format_instant(e.recorded_at),
        }
    }
}

/// An event as stored, with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    pub global_position: i64,
    pub stream_id: StreamId,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: Metadata,
    pub recorded_at: DateTime<Utc>,
    pub hash: [u8; 32],
}

impl RecordedEvent {
    /// The current domain event, upcast from whatever schema version was stored.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        decode(&self.event_type, self.schema_version, self.data.clone())
    }
}
