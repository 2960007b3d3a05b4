//! The per-stream hash chain. Defined once here and never changed: changing it would make
//! every stored chain fail verification.
//!
//! `hash(n) = SHA-256( hash(n-1) ‖ canonical(event n) )`, with `hash(-1)` = 32 zero bytes.
//!
//! `canonical(event)` is the concatenation of these fields, each string or JSON field
//! prefixed by its byte length as a big-endian `u32`:
//! 1. `stream_id` (UTF-8)
//! 2. `stream_version` as big-endian `i64` (8 bytes)
//! 3. `event_id` as its 16 raw UUID bytes
//! 4. `event_type` (UTF-8)
//! 5. `schema_version` as big-endian `i32` (4 bytes)
//! 6. `data` as canonical JSON
//! 7. `metadata` as canonical JSON
//! 8. `recorded_at` as RFC 3339 UTC with exactly six fractional digits and a `Z`
//!    (`2026-03-01T09:00:00.000000Z`)
//!
//! Canonical JSON: no whitespace; object keys sorted by their UTF-8 bytes; strings and
//! numbers written as serde_json writes them. So a backend may store JSON in any layout
//! (PostgreSQL `jsonb` reorders keys) and the chain still verifies.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use portico_domain::streams::StreamId;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::types::RecordedEvent;

pub const GENESIS: [u8; 32] = [0; 32];

/// The one text form of `recorded_at`, also what SQLite stores.
pub fn format_instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Instants are kept to the microsecond (PostgreSQL's precision), so an event hashes the
/// same in every backend.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    let micros = at.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(at)
}

pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The fields that are hashed, borrowed from wherever they live.
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    pub stream_id: &'a str,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub data: &'a Value,
    pub metadata: &'a Value,
    pub recorded_at: DateTime<Utc>,
}

fn put_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    // Fields are far below 4 GiB (request bodies are bounded long before that).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    hasher.update(len.to_be_bytes());
    hasher.update(bytes);
}

pub fn chain_hash(previous: &[u8; 32], input: &HashInput<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(previous);
    put_bytes(&mut h, input.stream_id.as_bytes());
    h.update(input.stream_version.to_be_bytes());
    h.update(input.event_id.as_bytes());
    put_bytes(&mut h, input.event_type.as_bytes());
    h.update(input.schema_version.to_be_bytes());
    put_bytes(&mut h, canonical_json(input.data).as_bytes());
    put_bytes(&mut h, canonical_json(input.metadata).as_bytes());
    put_bytes(&mut h, format_instant(input.recorded_at).as_bytes());
    h.finalize().into()
}

/// Recomputes a stored event's hash from its fields.
pub fn recompute(previous: &[u8; 32], event: &RecordedEvent) -> [u8; 32] {
    let metadata = serde_json::to_value(&event.metadata).unwrap_or(Value::Null);
    chain_hash(
        previous,
        &HashInput {
            stream_id: event.stream_id.as_str(),
            stream_version: event.stream_version,
            event_id: event.event_id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            data: &event.data,
            metadata: &metadata,
            recorded_at: event.recorded_at,
        },
    )
}

/// One thing wrong with a stored stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// The stored hash does not match the recomputed one: the event (or one before it
    /// whose hash was rewritten to hide a change) was altered.
    HashMismatch {
        stream: StreamId,
        version: i64,
        position: i64,
    },
    /// Versions are not 0, 1, 2, ... in position order.
    VersionGap {
        stream: StreamId,
        expected: i64,
        found: i64,
        position: i64,
    },
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainProblem::HashMismatch { stream, version, position } => write!(
                f,
                "{stream} version {version} (position {position}): stored hash does not match its content"
            ),
            ChainProblem::VersionGap { stream, expected, found, position } => write!(
                f,
                "{stream}: expected version {expected}, found {found} (position {position})"
            ),
        }
    }
}

/// Checks events in position order, stream by stream; feed it every event of `$all` (or
/// of one stream) and collect what it finds. Each stream continues from the stored hash
/// of its previous event, so one altered event is reported once, not for every event
/// after it.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    heads: HashMap<StreamId, (i64, [u8; 32])>,
    pub checked: u64,
}

impl ChainVerifier {
    pub fn check(&mut self, event: &RecordedEvent) -> Vec<ChainProblem> {
        let mut problems = Vec::new();
        let (expected, previous) = match self.heads.get(&event.stream_id) {
            Some((version, hash)) => (version + 1, *hash),
            None => (0, GENESIS),
        };
        if event.stream_version != expected {
            problems.push(ChainProblem::VersionGap {
                stream: event.stream_id.clone(),
                expected,
                found: event.stream_version,
                position: event.global_position,
            });
        }
        if recompute(&previous, event) != event.hash {
            problems.push(ChainProblem::HashMismatch {
                stream: event.stream_id.clone(),
                version: event.stream_version,
                position: event.global_position,
            });
        }
        self.heads
            .insert(event.stream_id.clone(), (event.stream_version, event.hash));
        self.checked += 1;
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_and_drops_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{ "b": 1, "a": {"d": [1, 2], "c": "x\"y"} }"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"c":"x\"y","d":[1,2]},"b":1}"#);
    }

    #[test]
    fn the_hash_depends_on_every_field_and_the_previous_hash() {
        let data = json!({"k": "v"});
        let meta = json!({"actor": "system"});
        let base = HashInput {
            stream_id: "invoice-1",
            stream_version: 0,
            event_id: Uuid::nil(),
            event_type: "InvoiceIssued",
            schema_version: 1,
            data: &data,
            metadata: &meta,
            recorded_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        let h = chain_hash(&GENESIS, &base);
        let other_data = json!({"k": "w"});
        let variants = [
            HashInput {
                stream_id: "invoice-2",
                ..base
            },
            HashInput {
                stream_version: 1,
                ..base
            },
            HashInput {
                event_id: Uuid::max(),
                ..base
            },
            HashInput {
                event_type: "InvoiceVoided",
                ..base
            },
            HashInput {
                schema_version: 2,
                ..base
            },
            HashInput {
                data: &other_data,
                ..base
            },
            HashInput {
                metadata: &data,
                ..base
            },
            HashInput {
                recorded_at: base.recorded_at + chrono::Duration::microseconds(1),
                ..base
            },
        ];
        for v in variants {
            assert_ne!(chain_hash(&GENESIS, &v), h);
        }
        assert_ne!(chain_hash(&[1; 32], &base), h);
        // Key order in storage does not matter.
        let reordered: Value = serde_json::from_str(r#"{"k":"v"}"#).unwrap();
        assert_eq!(
            chain_hash(
                &GENESIS,
                &HashInput {
                    data: &reordered,
                    ..base
                }
            ),
            h
        );
    }
}
