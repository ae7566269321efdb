-- latchkey schema version 7: the token tables become WITHOUT ROWID. Never edit; add 0008.
--
-- Each of these tables is looked up only by its primary key (a digest or a jti). As ordinary
-- rowid tables every row lived twice, in the table and in the automatic index of its key, so a
-- refresh-token rotation dirtied seven pages; stored in the key's own B-tree it dirties five,
-- and every lookup reads one tree instead of two. Same columns, same constraints, same indexes.

CREATE TABLE refresh_tokens_new (
    hash            BLOB PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    used_at         INTEGER
) STRICT, WITHOUT ROWID;
INSERT INTO refresh_tokens_new (hash, grant_id, scope, created_at, idle_expires_at, used_at)
    SELECT hash, grant_id, scope, created_at, idle_expires_at, used_at FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_new RENAME TO refresh_tokens;
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

CREATE TABLE grant_tokens_new (
    jti        TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO grant_tokens_new (jti, grant_id, expires_at)
    SELECT jti, grant_id, expires_at FROM grant_tokens;
DROP TABLE grant_tokens;
ALTER TABLE grant_tokens_new RENAME TO grant_tokens;
CREATE INDEX grant_tokens_grant ON grant_tokens (grant_id);

CREATE TABLE revoked_tokens_new (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO revoked_tokens_new (jti, expires_at) SELECT jti, expires_at FROM revoked_tokens;
DROP TABLE revoked_tokens;
ALTER TABLE revoked_tokens_new RENAME TO revoked_tokens;
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TABLE auth_codes_new (
    hash           BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,
    auth_time      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    grant_id       TEXT
) STRICT, WITHOUT ROWID;
INSERT INTO auth_codes_new (hash, client_id, user_id, redirect_uri, scope, nonce,
                            code_challenge, auth_time, expires_at, used_at, grant_id)
    SELECT hash, client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time,
           expires_at, used_at, grant_id FROM auth_codes;
DROP TABLE auth_codes;
ALTER TABLE auth_codes_new RENAME TO auth_codes;
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);

CREATE TABLE sessions_new (
    hash       BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    parent     BLOB
) STRICT, WITHOUT ROWID;
INSERT INTO sessions_new (hash, user_id, auth_time, last_seen, expires_at, parent)
    SELECT hash, user_id, auth_time, last_seen, expires_at, parent FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_parent ON sessions (parent);
