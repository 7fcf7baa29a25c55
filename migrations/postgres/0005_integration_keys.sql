-- Integration keys: a customer's machine credentials, exchanged for short-lived tokens. Only an
-- HMAC-SHA256 of each secret (under KEY_HASH_SECRET) is stored; during a rotation's grace
-- period the previous secret's hash is kept too.

CREATE TABLE integration_keys (
    key_id               TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    customer_id          TEXT COLLATE "C" NOT NULL,
    name                 TEXT NOT NULL,
    scopes               JSONB NOT NULL,
    allowed_adapters     JSONB NOT NULL,
    expires_at           TIMESTAMPTZ,
    secret_hash          TEXT NOT NULL,
    previous_secret_hash TEXT,
    previous_valid_until TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL,
    created_by           TEXT NOT NULL,
    rotated_at           TIMESTAMPTZ,
    revoked_at           TIMESTAMPTZ,
    last_used_at         TIMESTAMPTZ
);

CREATE INDEX integration_keys_customer ON integration_keys (customer_id);
