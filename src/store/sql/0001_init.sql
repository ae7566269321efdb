-- latchkey schema version 1. Shipped migrations are append-only: never edit this file; add
-- 0002_*.sql instead. Times are unix seconds (INTEGER, UTC). Secrets are stored as SHA-256
-- digests, except signing keys (PKCS#8), which is why the database file is mode 0600.

-- Change counters, bumped by triggers, so a running server notices what the CLI (another
-- process) wrote: it polls this tiny table instead of re-reading everything.
CREATE TABLE revisions (
    name TEXT PRIMARY KEY,
    rev  INTEGER NOT NULL
) STRICT;
INSERT INTO revisions (name, rev) VALUES ('clients', 0), ('keys', 0), ('settings', 0);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE clients (
    client_id        TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    secret_hash      BLOB,                     -- SHA-256 of the secret; NULL for public clients
    redirect_uris    TEXT NOT NULL,            -- JSON array of strings
    grant_types      TEXT NOT NULL,            -- JSON array of strings
    scopes           TEXT NOT NULL,            -- space-separated allowed scopes
    audience         TEXT,                     -- access-token aud; NULL = the issuer
    access_token_ttl INTEGER,                  -- seconds; NULL = the server default
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,             -- RFC 7638 thumbprint
    alg          TEXT NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    pkcs8        BLOB NOT NULL,                -- emptied when the key is retired
    status       TEXT NOT NULL CHECK (status IN ('active', 'retiring', 'retired')),
    created_at   INTEGER NOT NULL,
    retire_after INTEGER                       -- set when the key stops signing
) STRICT;
-- Each algorithm has at most one key that signs.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE status = 'active';

-- Access tokens revoked before their expiry (RFC 7009), kept until they would have expired.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

CREATE TRIGGER clients_ins AFTER INSERT ON clients BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'clients'; END;
CREATE TRIGGER clients_upd AFTER UPDATE ON clients BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'clients'; END;
CREATE TRIGGER clients_del AFTER DELETE ON clients BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'clients'; END;
CREATE TRIGGER keys_ins AFTER INSERT ON signing_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'keys'; END;
CREATE TRIGGER keys_upd AFTER UPDATE ON signing_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'keys'; END;
CREATE TRIGGER keys_del AFTER DELETE ON signing_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'keys'; END;
CREATE TRIGGER settings_ins AFTER INSERT ON settings BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'settings'; END;
CREATE TRIGGER settings_upd AFTER UPDATE ON settings BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'settings'; END;
CREATE TRIGGER settings_del AFTER DELETE ON settings BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'settings'; END;
