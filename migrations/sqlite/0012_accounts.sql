-- Customer accounts: the users of each customer (email unique across Onramp, in lower case),
-- their portal sessions (token stored as SHA-256) and failed logins per address. A password is
-- an argon2id hash; an emailed link (invitation, welcome, reset) is stored as SHA-256.

CREATE TABLE users (
    user_id                  TEXT NOT NULL PRIMARY KEY,
    customer_id              TEXT NOT NULL,
    email                    TEXT NOT NULL,
    email_key                TEXT NOT NULL UNIQUE,
    name                     TEXT,
    role                     TEXT NOT NULL,
    status                   TEXT NOT NULL,
    password_hash            TEXT,
    password_change_required INTEGER NOT NULL,
    password_expires_at      TEXT,
    link_hash                TEXT UNIQUE,
    link_purpose             TEXT,
    link_expires_at          TEXT,
    resets_requested         INTEGER NOT NULL,
    resets_since             TEXT,
    signup_id                TEXT,
    invited_by               TEXT,
    created_at               TEXT NOT NULL,
    updated_at               TEXT NOT NULL,
    last_login_at            TEXT,
    version                  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX users_customer ON users (customer_id, created_at);

CREATE TABLE portal_sessions (
    token_hash  TEXT NOT NULL PRIMARY KEY,
    user_id     TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX portal_sessions_user ON portal_sessions (user_id);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);

CREATE TABLE login_throttle (
    login_key    TEXT NOT NULL PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until TEXT,
    updated_at   TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX login_throttle_updated ON login_throttle (updated_at);

-- The user a message of the accounts is for (welcome, invitation, reset).
ALTER TABLE emails ADD COLUMN user_id TEXT;
