-- Onboarding runs and their steps, customer datasets, and the manual checklist.

CREATE TABLE onboarding_runs (
    customer_id      TEXT COLLATE "C" NOT NULL,
    run_id           TEXT NOT NULL,
    status           TEXT NOT NULL,
    errors           JSONB NOT NULL DEFAULT '[]',
    started_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL,
    lease_owner      TEXT,
    lease_expires_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (customer_id, run_id)
);

CREATE INDEX onboarding_runs_unfinished ON onboarding_runs (status, lease_expires_ms);

CREATE TABLE onboarding_steps (
    customer_id   TEXT COLLATE "C" NOT NULL,
    run_id        TEXT NOT NULL,
    name          TEXT NOT NULL,
    position      BIGINT NOT NULL,
    status        TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    error         TEXT,
    completed_seq BIGINT,
    PRIMARY KEY (customer_id, run_id, name)
);

CREATE TABLE datasets (
    customer_id    TEXT COLLATE "C" PRIMARY KEY,
    dataset_id     TEXT NOT NULL UNIQUE,
    data_store     TEXT NOT NULL,
    tier           TEXT,
    schema_version BIGINT NOT NULL,
    tables         JSONB NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE checklist_items (
    customer_id TEXT COLLATE "C" NOT NULL,
    item_id     TEXT NOT NULL,
    done_by     TEXT NOT NULL,
    done_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, item_id)
);
