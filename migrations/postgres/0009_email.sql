-- Transactional email: one row per message, queued by the outbox's email consumer (one per
-- event and kind: event_id + kind is unique) or by an operator's test, then sent, retried or
-- given up by the delivery job. No body is kept: a message may carry a secret made as it is sent.
-- Signups gain their email verification: the current code (an HMAC under KEY_HASH_SECRET), the
-- link token (SHA-256), when they expire, wrong tries, and how many codes the session asked for.

CREATE TABLE emails (
    email_id        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    customer_id     TEXT COLLATE "C",
    signup_id       TEXT COLLATE "C",
    event_id        BIGINT,
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    subject         TEXT,
    last_error      TEXT,
    message_id      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    UNIQUE (event_id, kind)
);

CREATE INDEX emails_due ON emails (status, next_attempt_at);
CREATE INDEX emails_customer ON emails (customer_id, created_at);
CREATE INDEX emails_signup ON emails (signup_id, created_at);

ALTER TABLE signup_sessions ADD COLUMN verify_code_hash TEXT;
ALTER TABLE signup_sessions ADD COLUMN verify_link_hash TEXT;
ALTER TABLE signup_sessions ADD COLUMN verify_expires_at TIMESTAMPTZ;
ALTER TABLE signup_sessions ADD COLUMN verify_attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE signup_sessions ADD COLUMN codes_requested BIGINT NOT NULL DEFAULT 0;
