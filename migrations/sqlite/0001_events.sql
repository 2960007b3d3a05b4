-- The event log. Append-only: rows are never updated or deleted by Portico.
-- global_position: strictly increasing in commit order (SQLite has one writer).
-- hash: SHA-256 over the previous hash of the same stream and this event's canonical
-- bytes (see store/src/hash.rs); it lets auditors prove the log was not altered.
CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version >= 0),
    event_id        TEXT    NOT NULL UNIQUE,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 1),
    data            TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL, -- RFC 3339, UTC, microseconds: sorts as text
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_recorded_at ON events (recorded_at, global_position);
