-- Secrets and request bookkeeping: never in events, never rebuilt from the log.
-- Tokens and keys are stored only as SHA-256 hashes (hex); passwords as argon2id PHC strings.

CREATE TABLE api_keys (
    key_hash   TEXT PRIMARY KEY,
    firm_id    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

-- Maps an invite link's token (hashed) to the invite it opens. The contact aggregate
-- decides whether that invite still works.
CREATE TABLE invite_tokens (
    token_hash TEXT PRIMARY KEY,
    invite_id  TEXT NOT NULL UNIQUE,
    contact_id TEXT NOT NULL,
    firm_id    TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE credentials (
    contact_id    TEXT PRIMARY KEY,
    firm_id       TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Failed logins per firm and email, whether or not an account exists, so the backoff
-- reveals nothing about which emails have accounts.
CREATE TABLE login_attempts (
    firm_id      TEXT   NOT NULL,
    email        TEXT   NOT NULL,
    failures     BIGINT NOT NULL,
    locked_until TEXT,
    PRIMARY KEY (firm_id, email)
);

CREATE TABLE sessions (
    token_hash          TEXT PRIMARY KEY,
    contact_id          TEXT NOT NULL,
    firm_id             TEXT NOT NULL,
    client_id           TEXT NOT NULL,
    csrf_token          TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    last_seen_at        TEXT NOT NULL,
    idle_expires_at     TEXT NOT NULL,
    absolute_expires_at TEXT NOT NULL
);
CREATE INDEX sessions_contact ON sessions (contact_id);

-- A contact's selection of invoices on its way to the Wallet page. Not an event: nothing
-- has happened until the checkout is submitted.
CREATE TABLE checkouts (
    checkout_id   TEXT   PRIMARY KEY,
    firm_id       TEXT   NOT NULL,
    client_id     TEXT   NOT NULL,
    contact_id    TEXT   NOT NULL,
    currency      TEXT   NOT NULL,
    total_minor   BIGINT NOT NULL,
    lines         TEXT   NOT NULL,
    created_at    TEXT   NOT NULL,
    expires_at    TEXT   NOT NULL,
    submission_id TEXT
);

-- Responses to requests made with an Idempotency-Key, replayed for the same key and body.
CREATE TABLE idempotency_keys (
    scope        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    response     TEXT,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (scope, idem_key)
);

-- The sandbox gateway's own ledger: charges it has accepted and the webhook it owes for
-- each. A real gateway keeps this on its side; the sandbox keeps it here so a restart does
-- not lose an outcome.
CREATE TABLE sandbox_charges (
    reference     TEXT PRIMARY KEY,
    payment_id    TEXT NOT NULL UNIQUE,
    invoice_id    TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    deliver_after TEXT NOT NULL,
    delivered_at  TEXT,
    attempts      BIGINT NOT NULL
);
