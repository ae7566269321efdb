//! Authorization codes, grants, refresh-token families and the access tokens issued under a
//! grant. Single use is a compare-and-swap inside a `BEGIN IMMEDIATE` transaction.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, StoreError, exec_tx};

/// A stored authorization code.
#[derive(Debug, Clone)]
pub struct CodeRow {
    pub client_id: String,
    pub user_id: String,
    pub redirect_uri: Option<String>,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub grant_id: Option<String>,
    /// How the user signed in: `amr` values as a JSON array.
    pub amr: String,
}

/// What a new code binds.
pub struct NewCode<'a> {
    pub client_id: &'a str,
    pub user_id: &'a str,
    pub redirect_uri: Option<&'a str>,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub auth_time: i64,
    pub expires_at: i64,
    /// `amr` values as a JSON array.
    pub amr: &'a str,
}

/// A grant with its state.
#[derive(Debug, Clone)]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: String,
    pub auth_time: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// How the user signed in for the code it came from: `amr` values as a JSON array.
    pub amr: String,
}

/// A stored refresh token.
#[derive(Debug, Clone)]
pub struct RefreshRow {
    pub grant_id: String,
    pub scope: String,
    pub idle_expires_at: i64,
    pub used_at: Option<i64>,
}

/// Revokes every grant of a user (refresh tokens die with the grant; issued access tokens are
/// added to the revocation list) and ends the user's sessions.
pub(super) fn revoke_user_tx(
    tx: &Transaction<'_>,
    user_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    revoke_grants_tx(tx, user_id, None, now)?;
    exec_tx(tx, "DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    Ok(())
}

/// Revokes a user's grants — only those of `client_id` when given — and their access tokens.
pub(super) fn revoke_grants_tx(
    tx: &Transaction<'_>,
    user_id: &str,
    client_id: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    exec_tx(
        tx,
        "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) \
         SELECT t.jti, t.expires_at FROM grant_tokens t JOIN grants g ON g.id = t.grant_id \
         WHERE g.user_id = ?1 AND (?3 IS NULL OR g.client_id = ?3) AND t.expires_at > ?2 \
         UNION ALL \
         SELECT r.access_jti, r.access_expires_at FROM refresh_tokens r \
         JOIN grants g ON g.id = r.grant_id \
         WHERE g.user_id = ?1 AND (?3 IS NULL OR g.client_id = ?3) \
         AND r.access_jti IS NOT NULL AND r.access_expires_at > ?2",
        params![user_id, now, client_id],
    )?;
    exec_tx(
        tx,
        "UPDATE grants SET revoked_at = ?2 \
         WHERE user_id = ?1 AND (?3 IS NULL OR client_id = ?3) AND revoked_at IS NULL",
        params![user_id, now, client_id],
    )?;
    Ok(())
}

/// Revokes one grant: its refresh tokens stop working and its access tokens are revoked by jti.
/// Returns the access tokens it newly revoked, `(jti, expires_at)`, for the running server's
/// in-memory revocation list.
pub fn revoke_grant_tx(
    tx: &Transaction<'_>,
    grant_id: &str,
    now: i64,
) -> Result<Vec<(String, i64)>, StoreError> {
    let revoked = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) \
             SELECT jti, expires_at FROM grant_tokens WHERE grant_id = ?1 AND expires_at > ?2 \
             UNION ALL \
             SELECT access_jti, access_expires_at FROM refresh_tokens \
             WHERE grant_id = ?1 AND access_jti IS NOT NULL AND access_expires_at > ?2 \
             RETURNING jti, expires_at",
        )?
        .query_map(params![grant_id, now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<(String, i64)>, _>>()?;
    exec_tx(
        tx,
        "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![grant_id, now],
    )?;
    Ok(revoked)
}

/// Reads a code inside a transaction.
pub fn code_tx(tx: &Transaction<'_>, hash: &[u8; 32]) -> Result<Option<CodeRow>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, \
             expires_at, used_at, grant_id, amr FROM auth_codes WHERE hash = ?1",
        )?
        .query_row([hash.as_slice()], |r| {
            Ok(CodeRow {
                client_id: r.get(0)?,
                user_id: r.get(1)?,
                redirect_uri: r.get(2)?,
                scope: r.get(3)?,
                nonce: r.get(4)?,
                code_challenge: r.get(5)?,
                auth_time: r.get(6)?,
                expires_at: r.get(7)?,
                used_at: r.get(8)?,
                grant_id: r.get(9)?,
                amr: r.get(10)?,
            })
        })
        .optional()?)
}

/// Marks a code used and records the grant it became. False if it was already used (a
/// concurrent redemption won).
pub fn use_code_tx(
    tx: &Transaction<'_>,
    hash: &[u8; 32],
    grant_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    Ok(exec_tx(
        tx,
        "UPDATE auth_codes SET used_at = ?2, grant_id = ?3 WHERE hash = ?1 AND used_at IS NULL",
        params![hash.as_slice(), now, grant_id],
    )? == 1)
}

/// Creates a grant.
#[allow(clippy::too_many_arguments)]
pub fn insert_grant_tx(
    tx: &Transaction<'_>,
    id: &str,
    client_id: &str,
    user_id: &str,
    scope: &str,
    (auth_time, amr): (i64, &str),
    now: i64,
    expires_at: i64,
) -> Result<(), StoreError> {
    exec_tx(
        tx,
        "INSERT INTO grants (id, client_id, user_id, scope, auth_time, created_at, expires_at, \
         amr) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id, client_id, user_id, scope, auth_time, now, expires_at, amr
        ],
    )?;
    Ok(())
}

/// Reads a grant inside a transaction.
pub fn grant_tx(tx: &Transaction<'_>, id: &str) -> Result<Option<GrantRow>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT id, client_id, user_id, scope, auth_time, expires_at, revoked_at, amr \
             FROM grants WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(GrantRow {
                id: r.get(0)?,
                client_id: r.get(1)?,
                user_id: r.get(2)?,
                scope: r.get(3)?,
                auth_time: r.get(4)?,
                expires_at: r.get(5)?,
                revoked_at: r.get(6)?,
                amr: r.get(7)?,
            })
        })
        .optional()?)
}

/// Records an access token issued under a grant.
pub fn insert_grant_token_tx(
    tx: &Transaction<'_>,
    jti: &str,
    grant_id: &str,
    expires_at: i64,
) -> Result<(), StoreError> {
    exec_tx(
        tx,
        "INSERT INTO grant_tokens (jti, grant_id, expires_at) VALUES (?1, ?2, ?3)",
        params![jti, grant_id, expires_at],
    )?;
    Ok(())
}

/// A refresh token to store.
pub struct NewRefresh<'a> {
    pub hash: &'a [u8; 32],
    pub grant_id: &'a str,
    pub scope: &'a str,
    pub idle_expires_at: i64,
    /// The access token issued with it, `(jti, expires_at)`: recorded in the same row so the
    /// grant can revoke it (schema 10), instead of a row of its own in `grant_tokens`.
    pub access: (&'a str, i64),
}

/// Stores a refresh token by digest, with the access token issued beside it.
pub fn insert_refresh_tx(
    tx: &Transaction<'_>,
    r: &NewRefresh<'_>,
    now: i64,
) -> Result<(), StoreError> {
    exec_tx(
        tx,
        "INSERT INTO refresh_tokens (hash, grant_id, scope, created_at, idle_expires_at, \
         access_jti, access_expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            r.hash.as_slice(),
            r.grant_id,
            r.scope,
            now,
            r.idle_expires_at,
            r.access.0,
            r.access.1
        ],
    )?;
    Ok(())
}

/// Reads a refresh token inside a transaction: by its family's key when the token names its
/// grant (`grant`), else — a token from before schema 9 — by digest among the legacy rows.
pub fn refresh_tx(
    tx: &Transaction<'_>,
    grant: Option<&str>,
    hash: &[u8; 32],
) -> Result<Option<RefreshRow>, StoreError> {
    let row = |r: &rusqlite::Row<'_>| {
        Ok(RefreshRow {
            grant_id: r.get(0)?,
            scope: r.get(1)?,
            idle_expires_at: r.get(2)?,
            used_at: r.get(3)?,
        })
    };
    Ok(match grant {
        Some(g) => tx
            .prepare_cached(
                "SELECT grant_id, scope, idle_expires_at, used_at FROM refresh_tokens \
                 WHERE grant_id = ?1 AND hash = ?2",
            )?
            .query_row(params![g, hash.as_slice()], row)
            .optional()?,
        None => tx
            .prepare_cached(
                "SELECT grant_id, scope, idle_expires_at, used_at FROM refresh_tokens \
                 WHERE hash = ?1 AND legacy = 1",
            )?
            .query_row([hash.as_slice()], row)
            .optional()?,
    })
}

/// Marks a refresh token rotated. False if it already was (a concurrent use won).
pub fn use_refresh_tx(
    tx: &Transaction<'_>,
    grant_id: &str,
    hash: &[u8; 32],
    now: i64,
) -> Result<bool, StoreError> {
    Ok(exec_tx(
        tx,
        "UPDATE refresh_tokens SET used_at = ?3 \
         WHERE grant_id = ?1 AND hash = ?2 AND used_at IS NULL",
        params![grant_id, hash.as_slice(), now],
    )? == 1)
}

impl Store {
    /// The (grant id, client id) of a refresh token, if it exists.
    /// `grant` as in [`refresh_tx`].
    pub fn refresh_token_client(
        &self,
        grant: Option<&str>,
        hash: &[u8; 32],
    ) -> Result<Option<(String, String)>, StoreError> {
        let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
        Ok(match grant {
            Some(g) => self
                .conn
                .prepare_cached(
                    "SELECT g.id, g.client_id FROM refresh_tokens r \
                     JOIN grants g ON g.id = r.grant_id WHERE r.grant_id = ?1 AND r.hash = ?2",
                )?
                .query_row(params![g, hash.as_slice()], row)
                .optional()?,
            None => self
                .conn
                .prepare_cached(
                    "SELECT g.id, g.client_id FROM refresh_tokens r \
                     JOIN grants g ON g.id = r.grant_id WHERE r.hash = ?1 AND r.legacy = 1",
                )?
                .query_row([hash.as_slice()], row)
                .optional()?,
        })
    }

    /// Revokes a grant and everything issued under it; returns the access tokens it newly
    /// revoked, `(jti, expires_at)`.
    pub fn revoke_grant(
        &mut self,
        grant_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.with_tx(|tx| revoke_grant_tx(tx, grant_id, now))
    }

    /// Stores a new authorization code by digest.
    pub fn insert_code(&mut self, hash: &[u8; 32], c: &NewCode<'_>) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO auth_codes (hash, client_id, user_id, redirect_uri, scope, nonce, \
             code_challenge, auth_time, expires_at, amr) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                hash.as_slice(),
                c.client_id,
                c.user_id,
                c.redirect_uri,
                c.scope,
                c.nonce,
                c.code_challenge,
                c.auth_time,
                c.expires_at,
                c.amr
            ],
        )?;
        Ok(())
    }

    /// Runs `f` in a write transaction (the grant flows compose the `*_tx` functions).
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_tx(f)
    }

    /// Deletes expired codes, grants past their absolute lifetime (with their refresh tokens and
    /// token records), expired refresh tokens of live grants, and old token records.
    ///
    /// Only the codes have an expiry index. The other tables would be scanned whole, which
    /// inside one write transaction held the server's write lock for tens of milliseconds per
    /// hundred thousand rows and left the writer's page cache cold (refresh-token rotations
    /// had a p99 of 150 ms once a collection ran during them). So the expired rows are found
    /// on this store's own connection, beside the writers, and deleted by key in transactions
    /// of [`GC_BATCH`] rows, each checking the expiry again.
    pub fn gc_grants(&mut self, now: i64) -> Result<usize, StoreError> {
        // Used codes are kept ten minutes past expiry so a late replay still revokes its grant.
        let mut n = self.exec("DELETE FROM auth_codes WHERE expires_at <= ?1 - 600", [now])?;
        n += self.gc_by_key(
            "SELECT id, NULL FROM grants WHERE expires_at <= ?1 LIMIT ?2",
            "DELETE FROM grants WHERE id = ?1 AND expires_at <= ?3",
            now,
        )?;
        // A row that records an unexpired access token stays until that token expires, so
        // revoking the grant still finds it.
        n += self.gc_by_key(
            "SELECT grant_id, hash FROM refresh_tokens WHERE idle_expires_at <= ?1 \
             AND (access_expires_at IS NULL OR access_expires_at <= ?1) LIMIT ?2",
            "DELETE FROM refresh_tokens WHERE grant_id = ?1 AND hash = ?2 \
             AND idle_expires_at <= ?3 AND (access_expires_at IS NULL OR access_expires_at <= ?3)",
            now,
        )?;
        n += self.gc_by_key(
            "SELECT grant_id, jti FROM grant_tokens WHERE expires_at <= ?1 LIMIT ?2",
            "DELETE FROM grant_tokens WHERE grant_id = ?1 AND jti = ?2 AND expires_at <= ?3",
            now,
        )?;
        Ok(n)
    }

    /// Finds up to [`GC_SCAN`] keys with `select` (`?1` now, `?2` the limit; two key columns,
    /// the second may be NULL) and deletes them with `delete` (`?1`, `?2` the key, `?3` now),
    /// [`GC_BATCH`] to a transaction, until a scan finds fewer than the limit.
    fn gc_by_key(&mut self, select: &str, delete: &str, now: i64) -> Result<usize, StoreError> {
        type Key = (rusqlite::types::Value, rusqlite::types::Value);
        let limit = i64::try_from(GC_SCAN).unwrap_or(i64::MAX);
        let mut deleted = 0;
        loop {
            let keys: Vec<Key> = self
                .conn
                .prepare_cached(select)?
                .query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let mut this_round = 0;
            for batch in keys.chunks(GC_BATCH) {
                this_round += self.with_tx(|tx| {
                    let mut n = 0;
                    for (a, b) in batch {
                        n += exec_tx(tx, delete, params![a, b, now])?;
                    }
                    Ok(n)
                })?;
            }
            deleted += this_round;
            // A full scan that deleted nothing would find the same rows again.
            if keys.len() < GC_SCAN || this_round == 0 {
                return Ok(deleted);
            }
        }
    }
}

/// Rows deleted per write transaction by the collection.
const GC_BATCH: usize = 256;
/// Keys read per scan by the collection (a bound on its memory).
const GC_SCAN: usize = 4096;

#[cfg(test)]
mod tests {
    use super::GC_SCAN;
    use crate::store::Store;

    fn count(s: &Store, sql: &str) -> i64 {
        s.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// More expired rows than one scan reads, around rows that must stay.
    #[test]
    fn collection_deletes_by_key_in_batches_and_keeps_what_is_live() {
        let mut s = Store::open_in_memory().unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, grant_types, \
                   scopes, created_at, updated_at) VALUES ('c', 'c', NULL, '[]', '[]', '', 1, 1);
                 INSERT INTO users (id, username, username_key, password_hash, created_at, \
                   updated_at) VALUES ('u', 'alice', 'alice', 'x', 1, 1);
                 INSERT INTO grants (id, client_id, user_id, scope, auth_time, created_at, \
                   expires_at) VALUES ('live', 'c', 'u', '', 1, 1, 2000), \
                   ('old', 'c', 'u', '', 1, 1, 900);
                 INSERT INTO refresh_tokens (grant_id, hash, scope, created_at, \
                   idle_expires_at, access_jti, access_expires_at) \
                   VALUES ('old', X'00', '', 1, 5000, NULL, NULL);",
            )
            .unwrap();
        let expired = i64::try_from(GC_SCAN).unwrap() + 300;
        s.conn
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
                 INSERT INTO refresh_tokens (grant_id, hash, scope, created_at, idle_expires_at, \
                   access_jti, access_expires_at) \
                 SELECT 'live', CAST(i AS BLOB), '', 1, 900, NULL, NULL FROM n",
                [expired],
            )
            .unwrap();
        s.conn
            .execute_batch(
                // Idle-expired but recording an access token that is still valid: kept.
                "INSERT INTO refresh_tokens (grant_id, hash, scope, created_at, idle_expires_at, \
                   access_jti, access_expires_at) VALUES ('live', X'ff', '', 1, 900, 'j', 1500);
                 INSERT INTO refresh_tokens (grant_id, hash, scope, created_at, idle_expires_at, \
                   access_jti, access_expires_at) VALUES ('live', X'fe', '', 1, 5000, NULL, NULL);
                 INSERT INTO grant_tokens (jti, grant_id, expires_at) VALUES ('a', 'live', 900), \
                   ('b', 'live', 1500);",
            )
            .unwrap();
        // One grant, its one refresh token (by cascade), the expired refresh tokens of the
        // live grant and one token record.
        assert_eq!(s.gc_grants(1000).unwrap(), 1 + expired as usize + 1);
        assert_eq!(count(&s, "SELECT COUNT(*) FROM grants WHERE id = 'old'"), 0);
        assert_eq!(
            count(&s, "SELECT COUNT(*) FROM grants WHERE id = 'live'"),
            1
        );
        assert_eq!(count(&s, "SELECT COUNT(*) FROM refresh_tokens"), 2);
        assert_eq!(
            count(
                &s,
                "SELECT COUNT(*) FROM refresh_tokens WHERE hash IN (X'ff', X'fe')"
            ),
            2
        );
        assert_eq!(count(&s, "SELECT COUNT(*) FROM grant_tokens"), 1);
        assert_eq!(s.gc_grants(1000).unwrap(), 0, "nothing left to collect");
    }
}
