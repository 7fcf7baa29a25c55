-- The customer registry, admin tokens, idempotency records and the hash-chained event log.
-- Keys use the "C" collation so that ordering (and keyset pagination) matches SQLite's.

CREATE TABLE customers (
    customer_id   TEXT COLLATE "C" PRIMARY KEY,
    customer_name TEXT NOT NULL,
    name_folded   TEXT NOT NULL,
    industry      TEXT NOT NULL,
    data_store    TEXT NOT NULL,
    status        TEXT NOT NULL,
    tags          JSONB NOT NULL DEFAULT '[]',
    attributes    JSONB NOT NULL DEFAULT '{}',
    contact_email TEXT,
    contact_name  TEXT,
    created_by    TEXT,
    usage_tier    TEXT,
    version       BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX customers_by_status_industry ON customers (status, industry, customer_id);
CREATE INDEX customers_by_industry ON customers (industry, customer_id);
CREATE INDEX customers_by_tag ON customers USING GIN (tags jsonb_path_ops);

CREATE TABLE admin_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    customer_id TEXT,
    status      BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- Payloads and times are TEXT: they are stored exactly as they were hashed.
CREATE TABLE events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain       TEXT COLLATE "C" NOT NULL,
    chain_seq   BIGINT NOT NULL,
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
    chain TEXT COLLATE "C" PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);

-- The log is append-only: the database itself refuses to change or remove an event.
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END;
$$;

CREATE TRIGGER events_are_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
