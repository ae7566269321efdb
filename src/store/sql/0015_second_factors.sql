-- latchkey schema version 15: stronger sign-in. Second factors (TOTP, recovery codes,
-- passkeys), one-time setup links (invite and reset), the methods a session was signed in with
-- (its `amr`), and where a second factor is required (a user, a client, a forward-auth rule).
-- Never edit; add 0016.

-- One TOTP authenticator per user (RFC 6238: SHA-1, 6 digits, 30 s). `last_step` is the
-- highest time step accepted so far: a code is accepted once only.
CREATE TABLE totp (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret     BLOB NOT NULL,                  -- 20 random bytes
    last_step  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT;

-- Single-use recovery codes, stored as the SHA-256 of the normalised code.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, hash)
) STRICT, WITHOUT ROWID;

-- WebAuthn credentials (passkeys).
CREATE TABLE passkeys (
    id           BLOB PRIMARY KEY,             -- the credential id
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    public_key   BLOB NOT NULL,                -- the COSE_Key as registered
    alg          INTEGER NOT NULL,             -- its COSE algorithm (-7 ES256, -257 RS256, -8 EdDSA)
    sign_count   INTEGER NOT NULL DEFAULT 0,
    backup_eligible INTEGER NOT NULL DEFAULT 0 CHECK (backup_eligible IN (0, 1)),
    transports   TEXT NOT NULL DEFAULT '[]',   -- JSON array, as the browser reported them
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
) STRICT;
CREATE INDEX passkeys_user ON passkeys (user_id);

-- One-time links to set a password or register a passkey: `invite` for a new user, `reset`
-- for an existing one. The link carries a random 256-bit token; the table its SHA-256.
CREATE TABLE setup_links (
    hash       BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('invite', 'reset')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
CREATE INDEX setup_links_user ON setup_links (user_id);
CREATE INDEX setup_links_expiry ON setup_links (expires_at);

-- Where a second factor is required.
ALTER TABLE users ADD COLUMN mfa_required INTEGER NOT NULL DEFAULT 0 CHECK (mfa_required IN (0, 1));
ALTER TABLE clients ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0 CHECK (require_mfa IN (0, 1));
ALTER TABLE rules ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0 CHECK (require_mfa IN (0, 1));

-- How a session was signed in: RFC 8176 `amr` values as a JSON array, and whether a second
-- factor is still owed before it counts as a sign-in (`pending` = 1: the password was right,
-- the second factor not yet given). Codes and grants carry the `amr` into ID tokens.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '["pwd"]';
ALTER TABLE sessions ADD COLUMN pending INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1));
ALTER TABLE auth_codes ADD COLUMN amr TEXT NOT NULL DEFAULT '["pwd"]';
ALTER TABLE grants ADD COLUMN amr TEXT NOT NULL DEFAULT '["pwd"]';

-- What the account page shows of each session: the browser's User-Agent (truncated) and the
-- address it signed in from.
ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';

-- WebAuthn ceremonies in progress: the challenge (its SHA-256) latchkey sent, for whom and
-- what, until it is answered once or expires. Deciding in the database keeps a challenge
-- single-use across every worker and node.
CREATE TABLE webauthn_challenges (
    hash       BLOB PRIMARY KEY,
    purpose    TEXT NOT NULL CHECK (purpose IN ('register', 'login')),
    user_id    TEXT REFERENCES users (id) ON DELETE CASCADE,  -- NULL for a usernameless sign-in
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);
