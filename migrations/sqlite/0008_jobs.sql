-- The jobs runtime: one row per named job (its schedule, its lease and its last outcome), the
-- attempts each run made, and the durable cursors of the event log's consumers.

CREATE TABLE jobs (
    name             TEXT PRIMARY KEY,
    next_run_ms      INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_ms INTEGER NOT NULL DEFAULT 0,
    attempt_id       INTEGER,
    failures         INTEGER NOT NULL DEFAULT 0,
    runs             INTEGER NOT NULL DEFAULT 0,
    last_finished_at TEXT,
    last_outcome     TEXT,
    last_error       TEXT
) WITHOUT ROWID;

CREATE INDEX jobs_due ON jobs (next_run_ms);

CREATE TABLE job_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT NOT NULL,
    owner       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT NOT NULL,
    detail      TEXT
);

CREATE INDEX job_attempts_by_job ON job_attempts (job, id);

CREATE TABLE outbox_cursors (
    consumer      TEXT PRIMARY KEY,
    last_event_id INTEGER NOT NULL,
    updated_at    TEXT NOT NULL
) WITHOUT ROWID;

-- The event-count projection (the analytics consumer): events per UTC day and type.
CREATE TABLE event_counts (
    day        TEXT NOT NULL,
    event_type TEXT NOT NULL,
    events     INTEGER NOT NULL,
    PRIMARY KEY (day, event_type)
) WITHOUT ROWID;
