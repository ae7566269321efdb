-- latchkey schema version 6: audit rows count repeats. Never edit; add 0007.
--
-- The server coalesces identical events (same actor, action, target, outcome and address)
-- that happen within one flush window (about two seconds) into one row: `time` is the first
-- of them, `count` how many there were. A client asking for thousands of tokens a second is
-- one row every two seconds instead of thousands.

ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
