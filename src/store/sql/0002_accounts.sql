-- latchkey schema version 2: people. Users, groups, browser sessions, remembered consents,
-- authorization codes, grants with their refresh-token families, and the access tokens issued
-- under each grant (so a replayed code or refresh token can revoke them). Never edit; add 0003.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,            -- the stable, opaque `sub`; never changes
    username      TEXT NOT NULL,
    username_key  TEXT NOT NULL UNIQUE,        -- lower-cased: names are unique case-insensitively
    password_hash TEXT,                        -- argon2id PHC string
    email         TEXT,
    name          TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE user_groups (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
) STRICT;

ALTER TABLE clients ADD COLUMN require_pkce INTEGER NOT NULL DEFAULT 1;
ALTER TABLE clients ADD COLUMN skip_consent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN id_token_alg TEXT NOT NULL DEFAULT 'RS256';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';

-- Browser sessions; the cookie holds a random id, the table its SHA-256.
CREATE TABLE sessions (
    hash       BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  INTEGER NOT NULL,               -- when the user typed the password
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL                -- absolute timeout
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Consent remembered per user, client and scope set (space-joined, sorted).
CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id, scope)
) STRICT;

-- One authorization: what a user granted a client through one code. Refresh tokens and
-- access tokens hang off it; revoking it revokes them all.
CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,               -- absolute lifetime of its refresh tokens
    revoked_at INTEGER
) STRICT;
CREATE INDEX grants_user ON grants (user_id);

CREATE TABLE auth_codes (
    hash           BLOB PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    redirect_uri   TEXT,                       -- as sent at /authorize; NULL if it was omitted
    scope          TEXT NOT NULL,
    nonce          TEXT,
    code_challenge TEXT,                       -- S256 only
    auth_time      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    grant_id       TEXT                        -- set when redeemed
) STRICT;
CREATE INDEX auth_codes_expiry ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    hash            BLOB PRIMARY KEY,
    grant_id        TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    scope           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    used_at         INTEGER                    -- rotated: presenting it again is a replay
) STRICT;
CREATE INDEX refresh_tokens_grant ON refresh_tokens (grant_id);

-- Access tokens issued under a grant, so revoking the grant can revoke them by jti.
CREATE TABLE grant_tokens (
    jti        TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX grant_tokens_grant ON grant_tokens (grant_id);

-- Server-side secrets that are state, not keys: the CSRF key.
CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

INSERT INTO revisions (name, rev) VALUES ('users', 0);
CREATE TRIGGER users_ins AFTER INSERT ON users BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'users'; END;
CREATE TRIGGER users_upd AFTER UPDATE ON users BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'users'; END;
CREATE TRIGGER users_del AFTER DELETE ON users BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'users'; END;
