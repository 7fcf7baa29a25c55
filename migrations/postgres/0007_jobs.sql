-- The jobs runtime: one row per named job (its schedule, its lease and its last outcome), the
-- attempts each run made, and the durable cursors of the event log's consumers.

CREATE TABLE jobs (
    name             TEXT COLLATE "C" PRIMARY KEY,
    next_run_ms      BIGINT NOT NULL,
    lease_owner      TEXT,
    lease_expires_ms BIGINT NOT NULL DEFAULT 0,
    attempt_id       BIGINT,
    failures         BIGINT NOT NULL DEFAULT 0,
    runs             BIGINT NOT NULL DEFAULT 0,
    last_finished_at TIMESTAMPTZ,
    last_outcome     TEXT,
    last_error       TEXT
);

CREATE INDEX jobs_due ON jobs (next_run_ms);

CREATE TABLE job_attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job         TEXT COLLATE "C" NOT NULL,
    owner       TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    outcome     TEXT NOT NULL,
    detail      TEXT
);

CREATE INDEX job_attempts_by_job ON job_attempts (job, id);

CREATE TABLE outbox_cursors (
    consumer      TEXT COLLATE "C" PRIMARY KEY,
    last_event_id BIGINT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);

-- The event-count projection (the analytics consumer): events per UTC day and type.
CREATE TABLE event_counts (
    day        TEXT COLLATE "C" NOT NULL,
    event_type TEXT COLLATE "C" NOT NULL,
    events     BIGINT NOT NULL,
    PRIMARY KEY (day, event_type)
);
