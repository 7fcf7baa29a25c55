-- Each inserted event moves its chain's head, in the inserting statement: the store no longer
-- writes heads itself, so an append is one read and one insert.
CREATE TRIGGER events_advance_chain_head AFTER INSERT ON events
BEGIN
    INSERT INTO event_chain_heads (chain, seq, hash) VALUES (NEW.chain, NEW.chain_seq, NEW.hash)
    ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
END;
