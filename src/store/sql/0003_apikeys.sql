-- latchkey schema version 3: API keys for apps and scripts. Never edit; add 0004.

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,             -- public identifier, e.g. for `apikey show`
    name         TEXT NOT NULL,                -- several keys may share a name across rotations
    owner        TEXT NOT NULL,                -- the owning application's label
    user_id      TEXT REFERENCES users (id) ON DELETE CASCADE, -- optional owning user
    prefix       TEXT NOT NULL,                -- first characters of the key, not secret
    hash         BLOB NOT NULL UNIQUE,         -- SHA-256 of the key
    scopes       TEXT NOT NULL,                -- space-separated
    rate_count   INTEGER,                      -- requests allowed per rate_period (NULL = unlimited)
    rate_period  INTEGER,                      -- seconds
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    replaced_by  TEXT                          -- id of the key a rotation issued for this one
) STRICT;
CREATE INDEX api_keys_name ON api_keys (name);
CREATE INDEX api_keys_owner ON api_keys (owner);

-- Requests per key and day (UTC), flushed from memory in batches.
CREATE TABLE api_key_usage (
    key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    day    INTEGER NOT NULL,                   -- unix day number
    count  INTEGER NOT NULL,
    PRIMARY KEY (key_id, day)
) STRICT;

-- Owners (application labels) whose keys are switched off.
CREATE TABLE api_key_owners_disabled (
    owner       TEXT PRIMARY KEY,
    disabled_at INTEGER NOT NULL
) STRICT;

INSERT INTO revisions (name, rev) VALUES ('api_keys', 0);
-- last_used_at changes are usage bookkeeping, not a change a cache must reload for.
CREATE TRIGGER api_keys_ins AFTER INSERT ON api_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'api_keys'; END;
CREATE TRIGGER api_keys_upd AFTER UPDATE OF name, owner, user_id, scopes, rate_count, rate_period, expires_at, revoked_at ON api_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'api_keys'; END;
CREATE TRIGGER api_keys_del AFTER DELETE ON api_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'api_keys'; END;
CREATE TRIGGER api_owner_ins AFTER INSERT ON api_key_owners_disabled BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'api_keys'; END;
CREATE TRIGGER api_owner_del AFTER DELETE ON api_key_owners_disabled BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'api_keys'; END;
