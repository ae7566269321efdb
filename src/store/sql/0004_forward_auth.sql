-- latchkey schema version 4: forward auth for reverse proxies. Never edit; add 0005.

-- Access rules, evaluated in `position` order; the first match decides; no match denies.
CREATE TABLE rules (
    id         INTEGER PRIMARY KEY,
    position   INTEGER NOT NULL,
    host       TEXT NOT NULL,                  -- exact host, lower case
    path       TEXT NOT NULL DEFAULT '/*',     -- exact path, or a prefix ending in '*'
    method     TEXT,                           -- NULL = any
    action     TEXT NOT NULL CHECK (action IN ('allow_group', 'allow_user', 'allow_any_user', 'bypass', 'deny')),
    subject    TEXT,                           -- the group or user of allow_group / allow_user
    scope      TEXT,                           -- scopes a machine credential needs (NULL = people only)
    created_at INTEGER NOT NULL
) STRICT;

-- A forward-auth session is a child of a login session: its cookie is sent to every protected
-- subdomain, so it is valid only for forward auth, and ends with its parent.
ALTER TABLE sessions ADD COLUMN parent BLOB;
CREATE INDEX sessions_parent ON sessions (parent);

-- OIDC clients limited to members of these groups (JSON array; empty = everyone).
ALTER TABLE clients ADD COLUMN allowed_groups TEXT NOT NULL DEFAULT '[]';

INSERT INTO revisions (name, rev) VALUES ('rules', 0);
CREATE TRIGGER rules_ins AFTER INSERT ON rules BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'rules'; END;
CREATE TRIGGER rules_upd AFTER UPDATE ON rules BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'rules'; END;
CREATE TRIGGER rules_del AFTER DELETE ON rules BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'rules'; END;
