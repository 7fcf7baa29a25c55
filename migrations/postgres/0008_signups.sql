-- Self-serve signups: one row per wizard session. The resume token is stored only as its
-- SHA-256; answers are kept per step as JSON; expires_at moves with every saved step.

CREATE TABLE signup_sessions (
    signup_id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    email             TEXT NOT NULL,
    company_name      TEXT NOT NULL,
    name_folded       TEXT COLLATE "C" NOT NULL,
    template          TEXT,
    status            TEXT NOT NULL,
    current_step      TEXT,
    furthest_step     TEXT NOT NULL,
    answers           JSONB NOT NULL,
    resume_token_hash TEXT NOT NULL,
    verified_at       TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL,
    version           BIGINT NOT NULL
);

CREATE INDEX signup_sessions_status ON signup_sessions (status, expires_at);
CREATE INDEX signup_sessions_name ON signup_sessions (name_folded);
