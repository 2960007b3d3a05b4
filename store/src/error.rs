use portico_domain::events::DecodeError;
use portico_domain::streams::StreamId;
use uuid::Uuid;

use crate::types::ExpectedVersion;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stream was not at the expected version; nothing of the append was stored.
    #[error("stream {stream} was expected at {expected} but is at {}", actual.map_or("no stream".to_owned(), |v| format!("version {v}")))]
    Conflict {
        stream: StreamId,
        expected: ExpectedVersion,
        actual: Option<i64>,
    },
    /// The event id is already stored with different content (or in another append).
    #[error("event id {event_id} is already stored with different content")]
    EventIdReused { event_id: Uuid },
    /// The append itself is malformed (no events, a stream named twice, ...).
    #[error("invalid append: {0}")]
    InvalidAppend(&'static str),
    #[error("a stored event cannot be read: {0}")]
    Decode(#[from] DecodeError),
    #[error("a stored envelope is corrupt: {0}")]
    Corrupt(String),
    /// The database cannot be reached right now; the caller may retry later.
    #[error("the event store is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("event store database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("event store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Whether `e` means the database cannot be reached or is going away (a retry later may
/// succeed), as opposed to a fault in the request or the data.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // PostgreSQL: class 08 connection exceptions; 57P01-57P03 admin shutdown,
            // crash shutdown, cannot connect now (starting up or shutting down).
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}
