-- The customer registry, admin tokens, idempotency records and the hash-chained event log.

CREATE TABLE customers (
    customer_id   TEXT PRIMARY KEY NOT NULL,
    customer_name TEXT NOT NULL,
    name_folded   TEXT NOT NULL,
    industry      TEXT NOT NULL,
    data_store    TEXT NOT NULL,
    status        TEXT NOT NULL,
    tags          TEXT NOT NULL DEFAULT '[]',
    attributes    TEXT NOT NULL DEFAULT '{}',
    contact_email TEXT,
    contact_name  TEXT,
    created_by    TEXT,
    usage_tier    TEXT,
    version       INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX customers_by_status_industry ON customers (status, industry, customer_id);
CREATE INDEX customers_by_industry ON customers (industry, customer_id);

CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    customer_id TEXT,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chain       TEXT NOT NULL,
    chain_seq   INTEGER NOT NULL,
    event_type  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    customer_id TEXT,
    payload     TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    request_id  TEXT,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    UNIQUE (chain, chain_seq)
);

CREATE INDEX events_by_customer ON events (customer_id, id);
CREATE INDEX events_by_type ON events (event_type, id);

CREATE TABLE event_chain_heads (
    chain TEXT PRIMARY KEY NOT NULL,
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
) WITHOUT ROWID;

-- The log is append-only: the database itself refuses to change or remove an event.
CREATE TRIGGER events_are_append_only_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_are_append_only_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
