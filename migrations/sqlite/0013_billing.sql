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

-- Subscriptions: at most one live (not canceled) per customer. Its periods are counted from
-- `anchor` in `cycle_months`; `next_at` is when its current period ends (its renewal, or what
-- was scheduled for then).
CREATE TABLE subscriptions (
    subscription_id  TEXT NOT NULL PRIMARY KEY,
    customer_id      TEXT NOT NULL,
    plan             TEXT NOT NULL,
    cycle            TEXT NOT NULL,
    cycle_months     INTEGER NOT NULL,
    status           TEXT NOT NULL,
    anchor           TEXT NOT NULL,
    currency         TEXT NOT NULL,
    scheduled_kind   TEXT,
    scheduled_plan   TEXT,
    scheduled_cycle  TEXT,
    trial_id         TEXT,
    canceled_at      TEXT,
    next_at          TEXT,
    test_clock_id    TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    version          INTEGER NOT NULL
) WITHOUT ROWID;

CREATE UNIQUE INDEX subscriptions_live ON subscriptions (customer_id) WHERE status <> 'canceled';
CREATE INDEX subscriptions_customer ON subscriptions (customer_id, created_at);
CREATE INDEX subscriptions_due ON subscriptions (next_at) WHERE next_at IS NOT NULL;
CREATE INDEX subscriptions_clock ON subscriptions (test_clock_id, next_at) WHERE test_clock_id IS NOT NULL;

-- Usage: each event once per customer and event id (its payload's hash answers a replay), and
-- the running total per customer, metric and period (in millionths of a unit). An alert row is
-- the one soft or hard threshold crossing a period has.
CREATE TABLE usage_events (
    customer_id   TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    metric        TEXT NOT NULL,
    value         INTEGER NOT NULL,
    occurred_at   TEXT NOT NULL,
    period_start  TEXT NOT NULL,
    payload_hash  TEXT NOT NULL,
    received_at   TEXT NOT NULL,
    PRIMARY KEY (customer_id, event_id)
) WITHOUT ROWID;

CREATE TABLE usage_totals (
    customer_id   TEXT NOT NULL,
    metric        TEXT NOT NULL,
    period_start  TEXT NOT NULL,
    total         INTEGER NOT NULL,
    events        INTEGER NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (customer_id, metric, period_start)
) WITHOUT ROWID;

CREATE TABLE usage_alerts (
    customer_id   TEXT NOT NULL,
    metric        TEXT NOT NULL,
    period_start  TEXT NOT NULL,
    kind          TEXT NOT NULL,
    reached_at    TEXT NOT NULL,
    PRIMARY KEY (customer_id, metric, period_start, kind)
) WITHOUT ROWID;
