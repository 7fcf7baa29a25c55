-- Integration keys: a customer's machine credentials, exchanged for short-lived tokens. Only an
-- HMAC-SHA256 of each secret (under KEY_HASH_SECRET) is stored; during a rotation's grace
-- period the previous secret's hash is kept too.

CREATE TABLE integration_keys (
    key_id               TEXT NOT NULL PRIMARY KEY,
    customer_id          TEXT NOT NULL,
    name                 TEXT NOT NULL,
    scopes               TEXT NOT NULL,
    allowed_adapters     TEXT NOT NULL,
    expires_at           TEXT,
    secret_hash          TEXT NOT NULL,
    previous_secret_hash TEXT,
    previous_valid_until TEXT,
    created_at           TEXT NOT NULL,
    created_by           TEXT NOT NULL,
    rotated_at           TEXT,
    revoked_at           TEXT,
    last_used_at         TEXT
) WITHOUT ROWID;

CREATE INDEX integration_keys_customer ON integration_keys (customer_id);
