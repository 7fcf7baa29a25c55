-- The credentials vault: one row per customer and credential type, and its versions. A version's
-- value is stored only sealed (envelope encryption); destroying a version clears it.

CREATE TABLE credentials (
    customer_id       TEXT NOT NULL,
    credential_type   TEXT NOT NULL,
    status            TEXT NOT NULL,
    current_version   INTEGER,
    scopes            TEXT,
    last_validated_at TEXT,
    validation_error  TEXT,
    expires_at        TEXT,
    rotate_by         TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (customer_id, credential_type)
) WITHOUT ROWID;

CREATE INDEX credentials_rotate_by ON credentials (rotate_by);

CREATE TABLE credential_versions (
    customer_id     TEXT NOT NULL,
    credential_type TEXT NOT NULL,
    version         INTEGER NOT NULL,
    state           TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    master_version  INTEGER,
    wrapped_key     BLOB,
    key_nonce       BLOB,
    ciphertext      BLOB,
    nonce           BLOB,
    created_at      TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    state_changed_at TEXT NOT NULL,
    PRIMARY KEY (customer_id, credential_type, version)
) WITHOUT ROWID;

CREATE INDEX credential_versions_master ON credential_versions (master_version);
