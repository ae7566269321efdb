-- latchkey schema version 8: a revision for the revocation list. Never edit; add 0009.
--
-- A running server keeps the revoked access-token ids in memory, so that introspection,
-- UserInfo and forward auth read no database row per request. Its own revocations it adds at
-- once; revocations another process commits (the CLI's `user disable`, `user passwd`,
-- `user remove`) bump this revision, and the server merges the list again when it sees it.
-- Rows are only ever added here or deleted once expired, so a merge never has to forget one.

INSERT INTO revisions (name, rev) VALUES ('revoked', 0);
CREATE TRIGGER revoked_ins AFTER INSERT ON revoked_tokens BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'revoked'; END;
