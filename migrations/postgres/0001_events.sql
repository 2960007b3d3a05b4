-- The event log. Append-only: rows are never updated or deleted by Portico.
-- global_position: appends are serialized by a transaction-scoped advisory lock (see
-- store/src/postgres.rs), so positions are handed out in commit order and a reader going
-- by position never skips a late commit. Rolled-back appends may leave gaps.
-- data and metadata hold canonical JSON text (cast to jsonb to query them); the hash
-- chain is defined over canonical JSON, see store/src/hash.rs.
CREATE TABLE events (
    global_position BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL CHECK (stream_version >= 0),
    event_id        UUID        NOT NULL UNIQUE,
    event_type      TEXT        NOT NULL,
    schema_version  INTEGER     NOT NULL CHECK (schema_version >= 1),
    data            TEXT        NOT NULL,
    metadata        TEXT        NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    hash            BYTEA       NOT NULL CHECK (octet_length(hash) = 32),
    UNIQUE (stream_id, stream_version)
);

CREATE INDEX events_recorded_at ON events (recorded_at, global_position);
