-- latchkey schema version 5: the audit log. Never edit; add 0006.

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    time    INTEGER NOT NULL,
    actor   TEXT NOT NULL,     -- "user:alice", "client:<id>", "api_key:<id>", "cli:<login>", "anonymous"
    action  TEXT NOT NULL,     -- e.g. login, login_failed, token_issued, apikey_created
    target  TEXT NOT NULL,     -- what it was done to ("" if nothing)
    outcome TEXT NOT NULL,     -- ok, denied, locked, …
    address TEXT NOT NULL      -- client address, "" for the CLI
) STRICT;
CREATE INDEX audit_log_time ON audit_log (time);
