//! Revoked access tokens (by `jti`) and garbage collection of expired rows.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

impl Store {
    /// Records that the access token `jti` is revoked until it would have expired anyway.
    /// Revoking twice is not an error.
    pub fn revoke_jti(&mut self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (jti) DO NOTHING",
            params![jti, expires_at],
        )?;
        Ok(())
    }

    /// True if the access token `jti` was revoked (asked when the in-memory list has overflowed).
    pub fn is_jti_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM revoked_tokens WHERE jti = ?1")?;
        Ok(stmt.query_row([jti], |_| Ok(())).optional()?.is_some())
    }

    /// Every revocation of a token not yet expired at `now`: `(jti, expires_at)`.
    pub fn revoked_jtis(&self, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > ?1")?;
        let rows = stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes revocation records of tokens that have expired by `now`; returns how many.
    pub fn gc_revoked(&mut self, now: i64) -> Result<usize, StoreError> {
        Ok(self.exec("DELETE FROM revoked_tokens WHERE expires_at <= ?1", [now])?)
    }
}
