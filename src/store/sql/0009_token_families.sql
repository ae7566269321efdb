-- latchkey schema version 9: refresh tokens and access-token records clustered by grant.
-- Never edit; add 0010.
--
-- A refresh-token rotation updates the used token and inserts its successor; both rows, and the
-- record of the access token issued with them, belong to one grant. Keyed by a random digest
-- they landed on three random B-tree leaves plus two index leaves (five 4 KiB pages written to
-- the WAL and later checkpointed per rotation). Keyed by (grant_id, ...) a family shares its
-- leaves: a rotation dirties one refresh-token page and one grant_tokens page, and the
-- grant_id indexes go, the primary keys serving those lookups.
--
-- New refresh tokens carry their grant: `<grant_id>.<secret>`, so they are found by the full
-- key. Tokens issued before this version are `legacy`, found by digest through a partial index
-- that new rows never enter; they rotate into the new form on their next use.

CREATE TABLE refresh_tokens_new (
    grant_id        TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    hash            BLOB NOT NULL,
    scope           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    used_at         INTEGER,
    legacy          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (grant_id, hash)
) STRICT, WITHOUT ROWID;
INSERT INTO refresh_tokens_new (grant_id, hash, scope, created_at, idle_expires_at, used_at, legacy)
    SELECT grant_id, hash, scope, created_at, idle_expires_at, used_at, 1 FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_new RENAME TO refresh_tokens;
CREATE UNIQUE INDEX refresh_tokens_legacy ON refresh_tokens (hash) WHERE legacy = 1;

CREATE TABLE grant_tokens_new (
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    jti        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (grant_id, jti)
) STRICT, WITHOUT ROWID;
INSERT INTO grant_tokens_new (grant_id, jti, expires_at)
    SELECT grant_id, jti, expires_at FROM grant_tokens;
DROP TABLE grant_tokens;
ALTER TABLE grant_tokens_new RENAME TO grant_tokens;
