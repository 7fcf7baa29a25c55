-- Onboarding runs and their steps, customer datasets, and the manual checklist.

CREATE TABLE onboarding_runs (
    customer_id      TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    status           TEXT NOT NULL,
    errors           TEXT NOT NULL DEFAULT '[]',
    started_at       TEXT NOT NULL,
    finished_at      TEXT,
    updated_at       TEXT NOT NULL,
    lease_owner      TEXT,
    lease_expires_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, run_id)
) WITHOUT ROWID;

CREATE INDEX onboarding_runs_unfinished ON onboarding_runs (status, lease_expires_ms);

CREATE TABLE onboarding_steps (
    customer_id   TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    name          TEXT NOT NULL,
    position      INTEGER NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    started_at    TEXT,
    finished_at   TEXT,
    error         TEXT,
    completed_seq INTEGER,
    PRIMARY KEY (customer_id, run_id, name)
) WITHOUT ROWID;

CREATE TABLE datasets (
    customer_id    TEXT PRIMARY KEY NOT NULL,
    dataset_id     TEXT NOT NULL UNIQUE,
    data_store     TEXT NOT NULL,
    tier           TEXT,
    schema_version INTEGER NOT NULL,
    tables         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE checklist_items (
    customer_id TEXT NOT NULL,
    item_id     TEXT NOT NULL,
    done_by     TEXT NOT NULL,
    done_at     TEXT NOT NULL,
    PRIMARY KEY (customer_id, item_id)
) WITHOUT ROWID;
