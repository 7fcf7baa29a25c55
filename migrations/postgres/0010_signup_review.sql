-- The risk review and the decision of a signup: its score and reasons, who decided and when,
-- the reason given for a rejection, and the customer an approval made. Domain lists the review
-- reads (the disposable-email list an operator refreshed) are kept here so every server sharing
-- the registry reads the same. A customer's contact email is found by its lower-case form.

ALTER TABLE signup_sessions ADD COLUMN risk_score BIGINT;
ALTER TABLE signup_sessions ADD COLUMN risk_reasons JSONB;
ALTER TABLE signup_sessions ADD COLUMN decided_by TEXT;
ALTER TABLE signup_sessions ADD COLUMN decided_at TIMESTAMPTZ;
ALTER TABLE signup_sessions ADD COLUMN decision_note TEXT;
ALTER TABLE signup_sessions ADD COLUMN customer_id TEXT COLLATE "C";

-- Wrong verification codes a session tried, never reset: with the codes an address was sent,
-- what the per-address limits of a day count, by the address's mailbox key (lower case, without
-- a +tag, Gmail's dots dropped: the spellings that reach one mailbox count as one).
ALTER TABLE signup_sessions ADD COLUMN failed_tries BIGINT NOT NULL DEFAULT 0;

CREATE INDEX signup_sessions_queue ON signup_sessions (status, updated_at);
ALTER TABLE signup_sessions ADD COLUMN mailbox_key TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX signup_sessions_mailbox ON signup_sessions (mailbox_key, updated_at);

CREATE TABLE domain_lists (
    name       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    source     TEXT NOT NULL,
    list_date  TEXT,
    entries    BIGINT NOT NULL,
    domains    TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX customers_contact_email ON customers (lower(contact_email));
