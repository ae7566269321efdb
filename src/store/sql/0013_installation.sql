-- Facts about the installation that are not settings an admin tunes: the issuer the server was
-- set up with, kept so that a later start with another one is refused instead of silently
-- breaking every app.
CREATE TABLE installation (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
