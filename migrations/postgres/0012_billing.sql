-- Billing: test clocks (simulated time for the customers attached to one, outside production)
-- and each customer's trial. `next_at` is when the trial's clock next brings work (a reminder,
-- its expiry, the end of its grace); the due-work job takes rows whose `next_at` has come.

CREATE TABLE test_clocks (
    test_clock_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name          TEXT NOT NULL,
    frozen_time   TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    version       BIGINT NOT NULL
);

ALTER TABLE customers ADD COLUMN test_clock_id TEXT COLLATE "C";

CREATE TABLE trials (
    customer_id    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    trial_id       TEXT COLLATE "C" NOT NULL UNIQUE,
    plan           TEXT NOT NULL,
    status         TEXT NOT NULL,
    days           BIGINT NOT NULL,
    extra_days     BIGINT NOT NULL,
    extensions     BIGINT NOT NULL,
    activate_on    TEXT NOT NULL,
    activated_at   TIMESTAMPTZ,
    ends_at        TIMESTAMPTZ,
    reminded_at    TIMESTAMPTZ,
    ended_at       TIMESTAMPTZ,
    next_at        TIMESTAMPTZ,
    test_clock_id  TEXT COLLATE "C",
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    version        BIGINT NOT NULL
);

CREATE INDEX trials_due ON trials (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX trials_clock ON trials (test_clock_id, next_at) WHERE test_clock_id IS NOT NULL;
