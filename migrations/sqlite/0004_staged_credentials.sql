-- Credentials an onboarding request carries, sealed and saved with the registration so that the
-- run's store_credentials step can move them into the vault even after a crash. Cleared by that
-- step, or by the run's rollback.

CREATE TABLE staged_credentials (
    customer_id     TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    credential_type TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    scopes          TEXT,
    master_version  INTEGER NOT NULL,
    wrapped_key     BLOB NOT NULL,
    key_nonce       BLOB NOT NULL,
    ciphertext      BLOB NOT NULL,
    nonce           BLOB NOT NULL,
    PRIMARY KEY (customer_id, run_id, credential_type)
) WITHOUT ROWID;
