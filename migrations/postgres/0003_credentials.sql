-- The credentials vault: one row per customer and credential type, and its versions. A version's
-- value is stored only sealed (envelope encryption); destroying a version clears it.

CREATE TABLE credentials (
    customer_id       TEXT COLLATE "C" NOT NULL,
    credential_type   TEXT COLLATE "C" NOT NULL,
    status            TEXT NOT NULL,
    current_version   BIGINT,
    scopes            JSONB,
    last_validated_at TIMESTAMPTZ,
    validation_error  TEXT,
    expires_at        TIMESTAMPTZ,
    rotate_by         TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, credential_type)
);

CREATE INDEX credentials_rotate_by ON credentials (rotate_by);

CREATE TABLE credential_versions (
    customer_id     TEXT COLLATE "C" NOT NULL,
    credential_type TEXT COLLATE "C" NOT NULL,
    version         BIGINT NOT NULL,
    state           TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    master_version  BIGINT,
    wrapped_key     BYTEA,
    key_nonce       BYTEA,
    ciphertext      BYTEA,
    nonce           BYTEA,
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      TEXT NOT NULL,
    state_changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, credential_type, version)
);

CREATE INDEX credential_versions_master ON credential_versions (master_version);
