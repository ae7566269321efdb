//! Signing-key rows. The PKCS#8 document is the one secret stored whole.

use rusqlite::params;

use super::{Store, StoreError, conflict, exec_tx};

/// A signing key as stored.
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub pkcs8: Vec<u8>,
    /// `active` (signs), `retiring` (published, no longer signs), `retired` (gone).
    pub status: String,
    pub created_at: i64,
    pub retire_after: Option<i64>,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("status", &self.status)
            .field("pkcs8", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Keys that are active or retiring (those the server loads), newest first.
    pub fn live_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        self.keys_where("status IN ('active', 'retiring')")
    }

    /// Every key, including retired ones, newest first (for `keys list`).
    pub fn all_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        self.keys_where("1")
    }

    fn keys_where(&self, cond: &str) -> Result<Vec<KeyRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT kid, alg, pkcs8, status, created_at, retire_after FROM signing_keys \
             WHERE {cond} ORDER BY created_at DESC, rowid DESC"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(KeyRow {
                kid: r.get(0)?,
                alg: r.get(1)?,
                pkcs8: r.get(2)?,
                status: r.get(3)?,
                created_at: r.get(4)?,
                retire_after: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes `kid` the active key of its algorithm. The previously active key of that
    /// algorithm, if any, becomes `retiring` and stays published until `retire_after`. Both
    /// happen in one transaction, so a reader never sees zero or two active keys.
    pub fn activate_key(
        &mut self,
        kid: &str,
        alg: &str,
        pkcs8: &[u8],
        now: i64,
        retire_after: i64,
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            exec_tx(
                tx,
                "UPDATE signing_keys SET status = 'retiring', retire_after = ?2 \
                 WHERE alg = ?1 AND status = 'active'",
                params![alg, retire_after],
            )?;
            exec_tx(
                tx,
                "INSERT INTO signing_keys (kid, alg, pkcs8, status, created_at) \
                 VALUES (?1, ?2, ?3, 'active', ?4)",
                params![kid, alg, pkcs8, now],
            )
            .map_err(|e| conflict(e, &format!("key {kid}")))?;
            Ok(())
        })
    }

    /// Inserts the first key of an algorithm unless one is already active (two processes may
    /// start at once). Returns true if this call inserted it.
    pub fn insert_first_key(
        &mut self,
        kid: &str,
        alg: &str,
        pkcs8: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        self.with_tx(|tx| {
            let active: i64 = tx.query_row(
                "SELECT COUNT(*) FROM signing_keys WHERE alg = ?1 AND status = 'active'",
                [alg],
                |r| r.get(0),
            )?;
            if active > 0 {
                return Ok(false);
            }
            exec_tx(
                tx,
                "INSERT INTO signing_keys (kid, alg, pkcs8, status, created_at) \
                 VALUES (?1, ?2, ?3, 'active', ?4)",
                params![kid, alg, pkcs8, now],
            )?;
            Ok(true)
        })
    }

    /// Retires every retiring key whose time has come: it leaves the JWKS and its private key
    /// is erased. Returns how many were retired.
    pub fn retire_due_keys(&mut self, now: i64) -> Result<usize, StoreError> {
        Ok(self.exec(
            "UPDATE signing_keys SET status = 'retired', pkcs8 = X'' \
             WHERE status = 'retiring' AND retire_after <= ?1",
            [now],
        )?)
    }
}
