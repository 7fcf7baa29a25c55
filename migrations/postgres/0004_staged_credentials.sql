-- Credentials an onboarding request carries, sealed and saved with the registration so that the
-- run's store_credentials step can move them into the vault even after a crash. Cleared by that
-- step, or by the run's rollback.

CREATE TABLE staged_credentials (
    customer_id     TEXT COLLATE "C" NOT NULL,
    run_id          TEXT NOT NULL,
    credential_type TEXT COLLATE "C" NOT NULL,
    fingerprint     TEXT NOT NULL,
    scopes          JSONB,
    master_version  BIGINT NOT NULL,
    wrapped_key     BYTEA NOT NULL,
    key_nonce       BYTEA NOT NULL,
    ciphertext      BYTEA NOT NULL,
    nonce           BYTEA NOT NULL,
    PRIMARY KEY (customer_id, run_id, credential_type)
);
