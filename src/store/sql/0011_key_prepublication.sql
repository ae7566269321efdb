-- latchkey schema version 11: signing keys are published before they sign. Never edit; add 0012.
--
-- `keys rotate` adds the new key as `next`: in the JWKS at once, signing from `activate_at`,
-- once every JWKS a resource server cached before the key appeared has expired. The status
-- CHECK gains 'next', which SQLite can only do by rebuilding the table (STRICT, same columns
-- plus two, every row kept in its rowid order). New columns:
--   activate_at    when the key starts (or started) signing; for the rows kept, their
--                  created_at (until now a key signed from the moment it was made)
--   deactivated_at when it stopped signing; for the rows kept that were rotated out, their
--                  retire_after less the 86,700 s (longest token lifetime 86,400 s + 300 s
--                  margin) the rotation of versions before 11 always added
-- At most one key per algorithm is active, and at most one is next (a second rotation while
-- one is pending is refused; the index makes that hold across processes).

CREATE TABLE signing_keys_new (
    kid            TEXT PRIMARY KEY,           -- RFC 7638 thumbprint
    alg            TEXT NOT NULL CHECK (alg IN ('ES256', 'RS256')),
    pkcs8          BLOB NOT NULL,              -- emptied when the key is retired
    status         TEXT NOT NULL CHECK (status IN ('next', 'active', 'retiring', 'retired')),
    created_at     INTEGER NOT NULL,
    activate_at    INTEGER NOT NULL,           -- starts (started) signing
    deactivated_at INTEGER,                    -- stopped signing
    retire_after   INTEGER                     -- leaves (left) the JWKS; set when it stops signing
) STRICT;
INSERT INTO signing_keys_new (rowid, kid, alg, pkcs8, status, created_at, activate_at,
                              deactivated_at, retire_after)
    SELECT rowid, kid, alg, pkcs8, status, created_at, created_at,
           CASE WHEN status IN ('retiring', 'retired') AND retire_after IS NOT NULL
                THEN retire_after - 86700 END,
           retire_after
    FROM signing_keys;
DROP TABLE signing_keys;
ALTER TABLE signing_keys_new RENAME TO signing_keys;
-- Each algorithm has at most one key that signs, and at most one waiting to.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (alg) WHERE status = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (alg) WHERE status = 'next';

CREATE TRIGGER keys_ins AFTER INSERT ON signing_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'keys'; END;
CREATE TRIGGER keys_upd AFTER UPDATE ON signing_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'keys'; END;
CREATE TRIGGER keys_del AFTER DELETE ON signing_keys BEGIN UPDATE revisions SET rev = rev + 1 WHERE name = 'keys'; END;
UPDATE revisions SET rev = rev + 1 WHERE name = 'keys';
