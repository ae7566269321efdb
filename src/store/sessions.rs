//! Browser sessions, remembered consents and server secrets.

use rusqlite::{Connection, OptionalExtension, params};

use super::{Store, StoreError, exec_tx};

/// A browser session as stored (the id itself is only in the cookie).
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: String,
    pub auth_time: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    /// For a forward-auth session, the login session it belongs to.
    pub parent: Option<[u8; 32]>,
    /// How it was signed in: RFC 8176 `amr` values as a JSON array (`["pwd"]`).
    pub amr: String,
    /// The password was right but a second factor is still owed: not a sign-in yet.
    pub pending: bool,
}

/// A new login session as [`Store::insert_login_session`] stores it.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub hash: &'a [u8; 32],
    pub user_id: &'a str,
    pub now: i64,
    pub expires_at: i64,
    /// `amr` values as a JSON array.
    pub amr: &'a str,
    pub pending: bool,
    /// The browser's User-Agent (truncated) and the address it signed in from.
    pub user_agent: &'a str,
    pub address: &'a str,
}

/// A login session as an admin sees it: its digest, its times, and how many forward-auth
/// sessions belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    pub hash: [u8; 32],
    /// When the user typed the password.
    pub auth_time: i64,
    pub last_seen_at: i64,
    /// The absolute timeout (the idle timeout may end it sooner).
    pub expires_at: i64,
    pub forward_sessions: i64,
    /// `amr` values as a JSON array.
    pub amr: String,
    pub pending: bool,
    pub user_agent: String,
    pub address: String,
}

impl Store {
    /// Stores a new session by the digest of its id.
    pub fn insert_session(
        &mut self,
        hash: &[u8; 32],
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO sessions (hash, user_id, auth_time, last_seen_at, expires_at) \
             VALUES (?1, ?2, ?3, ?3, ?4)",
            params![hash.as_slice(), user_id, now, expires_at],
        )?;
        Ok(())
    }

    /// Stores a new login session with how it was signed in and where from.
    pub fn insert_login_session(&mut self, n: &NewSession<'_>) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO sessions (hash, user_id, auth_time, last_seen_at, expires_at, amr, \
             pending, user_agent, address) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                n.hash.as_slice(),
                n.user_id,
                n.now,
                n.expires_at,
                n.amr,
                n.pending,
                n.user_agent,
                n.address
            ],
        )?;
        Ok(())
    }

    /// Records a further sign-in on a login session (a second factor, a step-up): its `amr`
    /// becomes `amr`, it is no longer pending, `auth_time` becomes `now`, and its digest
    /// becomes `new_hash` (the browser gets a new session id at every authentication, ASVS
    /// 7.2.4). Forward-auth sessions that belong to it end (the browser gets a new one carrying
    /// the new `amr`). Returns false if the session is gone.
    pub fn complete_session(
        &mut self,
        hash: &[u8; 32],
        new_hash: &[u8; 32],
        amr: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with_tx(|tx| {
            exec_tx(
                tx,
                "DELETE FROM sessions WHERE parent = ?1",
                [hash.as_slice()],
            )?;
            let n = exec_tx(
                tx,
                "UPDATE sessions SET hash = ?4, amr = ?2, pending = 0, auth_time = ?3, \
                 last_seen_at = ?3 WHERE hash = ?1 AND parent IS NULL",
                params![hash.as_slice(), amr, now, new_hash.as_slice()],
            )?;
            Ok(n == 1)
        })
    }

    /// The session with this digest, if it exists (expiry is the caller's to check).
    pub fn session(&self, hash: &[u8; 32]) -> Result<Option<SessionRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT s.user_id, s.auth_time, s.last_seen_at, s.expires_at, s.parent, s.amr, \
             s.pending FROM sessions s WHERE s.hash = ?1 AND (s.parent IS NULL OR EXISTS \
             (SELECT 1 FROM sessions p WHERE p.hash = s.parent))",
        )?;
        Ok(stmt
            .query_row([hash.as_slice()], |r| {
                let parent: Option<Vec<u8>> = r.get(4)?;
                Ok(SessionRow {
                    user_id: r.get(0)?,
                    auth_time: r.get(1)?,
                    last_seen_at: r.get(2)?,
                    expires_at: r.get(3)?,
                    parent: parent.and_then(|p| <[u8; 32]>::try_from(p.as_slice()).ok()),
                    amr: r.get(5)?,
                    pending: r.get(6)?,
                })
            })
            .optional()?)
    }

    /// Records activity on a session (for the idle timeout).
    pub fn touch_session(&mut self, hash: &[u8; 32], now: i64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE sessions SET last_seen_at = ?2 WHERE hash = ?1",
            params![hash.as_slice(), now],
        )?;
        Ok(())
    }

    /// Stores a forward-auth session that belongs to login session `parent`.
    pub fn insert_child_session(
        &mut self,
        hash: &[u8; 32],
        parent: &[u8; 32],
        user_id: &str,
        auth_time: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO sessions (hash, user_id, auth_time, last_seen_at, expires_at, parent, amr) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, \
             COALESCE((SELECT amr FROM sessions WHERE hash = ?6), '[\"pwd\"]'))",
            params![
                hash.as_slice(),
                user_id,
                auth_time,
                now,
                expires_at,
                parent.as_slice()
            ],
        )?;
        Ok(())
    }

    /// Ends a session and the forward-auth sessions that belong to it. No error if it did not
    /// exist.
    pub fn delete_session(&mut self, hash: &[u8; 32]) -> Result<(), StoreError> {
        self.exec(
            "DELETE FROM sessions WHERE hash = ?1 OR parent = ?1",
            [hash.as_slice()],
        )?;
        Ok(())
    }

    /// A user's login sessions (not the forward-auth sessions that belong to them), oldest
    /// sign-in first. Sessions past a timeout that the collector has not deleted yet are
    /// included.
    pub fn sessions_of(&self, user_id: &str) -> Result<Vec<UserSession>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.hash, s.auth_time, s.last_seen_at, s.expires_at, \
             (SELECT count(*) FROM sessions c WHERE c.parent = s.hash), s.amr, s.pending, \
             s.user_agent, s.address FROM sessions s WHERE s.user_id = ?1 AND s.parent IS NULL \
             ORDER BY s.auth_time, s.hash",
        )?;
        let rows = stmt.query_map([user_id], |r| {
            Ok((
                (
                    r.get::<_, Vec<u8>>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                ),
                (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let ((hash, auth_time, last_seen_at, expires_at, forward_sessions), more) = row?;
            let (amr, pending, user_agent, address) = more;
            let hash = <[u8; 32]>::try_from(hash.as_slice())
                .map_err(|_| StoreError::Corrupt("a session digest is not 32 bytes".into()))?;
            out.push(UserSession {
                hash,
                auth_time,
                last_seen_at,
                expires_at,
                forward_sessions,
                amr,
                pending,
                user_agent,
                address,
            });
        }
        Ok(out)
    }

    /// Ends a user's login sessions (only the one with digest `hash` when given) and the
    /// forward-auth sessions that belong to them, and touches the user's row so that a running
    /// server forgets the forward-auth sessions it cached. Tokens already issued stay valid.
    /// Returns how many login sessions ended.
    pub fn end_sessions_of(
        &mut self,
        user_id: &str,
        hash: Option<&[u8; 32]>,
    ) -> Result<usize, StoreError> {
        let hash = hash.map(|h| h.as_slice());
        self.with_tx(|tx| {
            let n = exec_tx(
                tx,
                "DELETE FROM sessions WHERE user_id = ?1 AND parent IS NULL \
                 AND (?2 IS NULL OR hash = ?2)",
                params![user_id, hash],
            )?;
            exec_tx(
                tx,
                "DELETE FROM sessions WHERE user_id = ?1 AND parent IS NOT NULL \
                 AND (?2 IS NULL OR parent = ?2)",
                params![user_id, hash],
            )?;
            exec_tx(
                tx,
                "UPDATE users SET updated_at = updated_at WHERE id = ?1",
                [user_id],
            )?;
            Ok(n)
        })
    }

    /// Ends every login session of the user except the one with digest `keep` (the browser
    /// that made a change: a new password, a removed second factor), with the forward-auth
    /// sessions that belong to them; touches the user's row like [`Store::end_sessions_of`].
    /// Returns how many login sessions ended.
    pub fn end_other_sessions(
        &mut self,
        user_id: &str,
        keep: &[u8; 32],
    ) -> Result<usize, StoreError> {
        self.with_tx(|tx| {
            let n = exec_tx(
                tx,
                "DELETE FROM sessions WHERE user_id = ?1 AND parent IS NULL AND hash != ?2",
                params![user_id, keep.as_slice()],
            )?;
            exec_tx(
                tx,
                "DELETE FROM sessions WHERE user_id = ?1 AND parent IS NOT NULL AND parent != ?2",
                params![user_id, keep.as_slice()],
            )?;
            exec_tx(
                tx,
                "UPDATE users SET updated_at = updated_at WHERE id = ?1",
                [user_id],
            )?;
            Ok(n)
        })
    }

    /// Deletes sessions past their absolute or idle timeout, and sign-ins that still owe their
    /// second factor five minutes after the password; returns how many.
    pub fn gc_sessions(&mut self, now: i64, idle_ttl: i64) -> Result<usize, StoreError> {
        Ok(self.exec(
            "DELETE FROM sessions WHERE expires_at <= ?1 OR (parent IS NULL AND last_seen_at + ?2 <= ?1) \
             OR (pending = 1 AND auth_time + 300 <= ?1) \
             OR (parent IS NOT NULL AND parent NOT IN (SELECT hash FROM sessions WHERE parent IS NULL))",
            params![now, idle_ttl],
        )?)
    }

    /// True if the user approved `scope` (sorted, space-joined) or a superset of it for the
    /// client. Supersets count: approving more implies approving less.
    pub fn has_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &[String],
    ) -> Result<bool, StoreError> {
        consent_covers(&self.conn, user_id, client_id, scope)
    }

    /// Forgets every consent the user gave the client and revokes the grants it led to (their
    /// refresh tokens stop working, their access tokens are revoked by jti). Returns how many
    /// consents were forgotten.
    pub fn revoke_consent(
        &mut self,
        user_id: &str,
        client_id: &str,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.with_tx(|tx| {
            let n = exec_tx(
                tx,
                "DELETE FROM consents WHERE user_id = ?1 AND client_id = ?2",
                params![user_id, client_id],
            )?;
            super::grants::revoke_grants_tx(tx, user_id, Some(client_id), now)?;
            Ok(n)
        })
    }

    /// The clients a user consented to, with the scopes of each consent and when it was given.
    pub fn consents_of(&self, user_id: &str) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT client_id, scope, created_at FROM consents WHERE user_id = ?1 \
             ORDER BY client_id, created_at",
        )?;
        let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Remembers that the user approved `scope` for the client.
    pub fn insert_consent(
        &mut self,
        user_id: &str,
        client_id: &str,
        scope: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut sorted: Vec<&str> = scope.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        self.exec(
            "INSERT OR IGNORE INTO consents (user_id, client_id, scope, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![user_id, client_id, sorted.join(" "), now],
        )?;
        Ok(())
    }

    /// A named server secret, created with `make` on first use (two processes may race; the
    /// first insert wins and both read it back).
    pub fn secret(
        &mut self,
        name: &str,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let read = |s: &Store| -> Result<Option<Vec<u8>>, StoreError> {
            Ok(s.conn
                .query_row("SELECT value FROM secrets WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?)
        };
        if let Some(v) = read(self)? {
            return Ok(v);
        }
        self.exec(
            "INSERT OR IGNORE INTO secrets (name, value) VALUES (?1, ?2)",
            params![name, make()],
        )?;
        read(self)?.ok_or(StoreError::NotFound)
    }
}

/// True if the user approved `scope` or a superset of it for the client, read on `conn` (a
/// worker's connection, or the writer's inside a grant's transaction).
pub fn consent_covers(
    conn: &Connection,
    user_id: &str,
    client_id: &str,
    scope: &[String],
) -> Result<bool, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT scope FROM consents WHERE user_id = ?1 AND client_id = ?2")?;
    let rows = stmt.query_map(params![user_id, client_id], |r| r.get::<_, String>(0))?;
    for row in rows {
        let approved = row?;
        let approved: Vec<&str> = approved.split(' ').collect();
        if scope.iter().all(|s| approved.contains(&s.as_str())) {
            return Ok(true);
        }
    }
    Ok(false)
}
