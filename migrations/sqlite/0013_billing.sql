-- Billing: test clocks (simulated time for the customers attached to one, outside production)
-- and each customer's trial. `next_at` is when the trial's clock next brings work (a reminder,
-- its expiry, the end of its grace); the due-work job takes rows whose `next_at` has come.

CREATE TABLE test_clocks (
    test_clock_id TEXT NOT NULL PRIMARY KEY,
    name          TEXT NOT NULL,
    frozen_time   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    version       INTEGER NOT NULL
) WITHOUT ROWID;

ALTER TABLE customers ADD COLUMN test_clock_id TEXT;

CREATE TABLE trials (
    customer_id    TEXT NOT NULL PRIMARY KEY,
    trial_id       TEXT NOT NULL UNIQUE,
    plan           TEXT NOT NULL,
    status         TEXT NOT NULL,
    days           INTEGER NOT NULL,
    extra_days     INTEGER NOT NULL,
    extensions     INTEGER NOT NULL,
    activate_on    TEXT NOT NULL,
    activated_at   TEXT,
    ends_at        TEXT,
    reminded_at    TEXT,
    ended_at       TEXT,
    next_at        TEXT,
    test_clock_id  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    version        INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX trials_due ON trials (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX trials_clock ON trials (test_clock_id, next_at) WHERE test_clock_id IS NOT NULL;
