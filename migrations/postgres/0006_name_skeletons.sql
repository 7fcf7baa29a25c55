-- Customer names are now folded to their UTS #39 confusable skeleton (case, spacing,
-- punctuation and lookalike characters folded; see src/domain/text.rs), which SQL cannot
-- compute. This marks the stored forms for Onramp to recompute once, right after migrating.
CREATE TABLE name_refold_pending (pending INTEGER NOT NULL);
INSERT INTO name_refold_pending (pending) VALUES (1);
