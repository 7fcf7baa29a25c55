-- The risk review and the decision of a signup: its score and reasons, who decided and when,
-- the reason given for a rejection, and the customer an approval made. Domain lists the review
-- reads (the disposable-email list an operator refreshed) are kept here so every server sharing
-- the registry reads the same. A customer's contact email is found by its lower-case form.

ALTER TABLE signup_sessions ADD COLUMN risk_score INTEGER;
ALTER TABLE signup_sessions ADD COLUMN risk_reasons TEXT;
ALTER TABLE signup_sessions ADD COLUMN decided_by TEXT;
ALTER TABLE signup_sessions ADD COLUMN decided_at TEXT;
ALTER TABLE signup_sessions ADD COLUMN decision_note TEXT;
ALTER TABLE signup_sessions ADD COLUMN customer_id TEXT;

CREATE INDEX signup_sessions_queue ON signup_sessions (status, updated_at);

CREATE TABLE domain_lists (
    name       TEXT NOT NULL PRIMARY KEY,
    source     TEXT NOT NULL,
    list_date  TEXT,
    entries    INTEGER NOT NULL,
    domains    TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX customers_contact_email ON customers (lower(contact_email));
