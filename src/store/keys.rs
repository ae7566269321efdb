//! Signing-key rows. The PKCS#8 document is the one secret stored whole.
//!
//! A key's life (schema 11): `next` (published in the JWKS, not yet signing; from
//! `activate_at` on it is the one that signs), `active` (signs), `retiring` (published so the
//! tokens it signed still verify, signs no more), `retired` (gone from the JWKS, private key
//! erased). At most one key per algorithm is `active` and at most one is `next` (unique partial
//! indexes). A due `next` key is promoted to `active` by [`Store::promote_due_keys`]; the
//! servers do not wait for that write to sign with it (see `jwt::keys`).

use rusqlite::{OptionalExtension as _, params};

use super::{Store, StoreError, conflict, exec_tx};

/// A signing key as stored.
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub pkcs8: Vec<u8>,
    /// `next`, `active`, `retiring` or `retired` (see the module docs).
    pub status: String,
    pub created_at: i64,
    /// When it starts (`next`) or started signing.
    pub activate_at: i64,
    /// When it stopped signing (`retiring`, `retired`; unknown for keys retired by hand).
    pub deactivated_at: Option<i64>,
    /// When it leaves (or left) the JWKS: set when it stops signing.
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

/// A new key to store: kid, algorithm, PKCS#8 document.
pub type NewKey<'a> = (&'a str, &'a str, &'a [u8]);

/// What [`Store::add_next_keys`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum NextOutcome {
    /// The keys were added as `next`.
    Added,
    /// A rotation is already pending: this key (of the first algorithm found) is `next`, signing
    /// from the given time. Nothing was changed.
    Pending { kid: String, activate_at: i64 },
}

impl Store {
    /// Keys that are next, active or retiring (those the server loads and publishes), newest
    /// first.
    pub fn live_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        self.keys_where("status IN ('next', 'active', 'retiring')")
    }

    /// Every key, including retired ones, newest first (for `keys list`).
    pub fn all_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        self.keys_where("1")
    }

    fn keys_where(&self, cond: &str) -> Result<Vec<KeyRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT kid, alg, pkcs8, status, created_at, activate_at, deactivated_at, retire_after \
             FROM signing_keys WHERE {cond} ORDER BY created_at DESC, rowid DESC"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(KeyRow {
                kid: r.get(0)?,
                alg: r.get(1)?,
                pkcs8: r.get(2)?,
                status: r.get(3)?,
                created_at: r.get(4)?,
                activate_at: r.get(5)?,
                deactivated_at: r.get(6)?,
                retire_after: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Publishes `keys` as `next`, each signing from `activate_at`, in one transaction. Refused
    /// (nothing changed) if any algorithm already has a `next` key: two rotations in a row
    /// would otherwise replace a key resource servers may already have cached, or start a
    /// second clock. The check and the insert hold the write lock together, and a unique index
    /// backs them, so two processes rotating at once cannot both add one.
    pub fn add_next_keys(
        &mut self,
        keys: &[NewKey<'_>],
        now: i64,
        activate_at: i64,
    ) -> Result<NextOutcome, StoreError> {
        self.with_tx(|tx| {
            let pending: Option<(String, i64)> = tx
                .query_row(
                    "SELECT kid, activate_at FROM signing_keys WHERE status = 'next' \
                     ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((kid, activate_at)) = pending {
                return Ok(NextOutcome::Pending { kid, activate_at });
            }
            for (kid, alg, pkcs8) in keys {
                exec_tx(
                    tx,
                    "INSERT INTO signing_keys (kid, alg, pkcs8, status, created_at, activate_at) \
                     VALUES (?1, ?2, ?3, 'next', ?4, ?5)",
                    params![kid, alg, pkcs8, now, activate_at],
                )
                .map_err(|e| conflict(e, &format!("key {kid}")))?;
            }
            Ok(NextOutcome::Added)
        })
    }

    /// Makes `keys` active now, in one transaction (an emergency rotation). The previously
    /// active key of each algorithm becomes `retiring`: it stopped signing `now` and stays
    /// published until `retire_after`. A `next` key of that algorithm is withdrawn (deleted: it
    /// never signed anything). Returns the withdrawn kids. A reader never sees zero or two
    /// active keys.
    pub fn activate_keys_now(
        &mut self,
        keys: &[NewKey<'_>],
        now: i64,
        retire_after: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.with_tx(|tx| {
            let mut withdrawn = Vec::new();
            for (kid, alg, pkcs8) in keys {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM signing_keys WHERE alg = ?1 AND status = 'next' RETURNING kid",
                )?;
                for gone in stmt.query_map([alg], |r| r.get::<_, String>(0))? {
                    withdrawn.push(gone?);
                }
                exec_tx(
                    tx,
                    "UPDATE signing_keys SET status = 'retiring', deactivated_at = ?2, \
                     retire_after = ?3 WHERE alg = ?1 AND status = 'active'",
                    params![alg, now, retire_after],
                )?;
                exec_tx(
                    tx,
                    "INSERT INTO signing_keys (kid, alg, pkcs8, status, created_at, activate_at) \
                     VALUES (?1, ?2, ?3, 'active', ?4, ?4)",
                    params![kid, alg, pkcs8, now],
                )
                .map_err(|e| conflict(e, &format!("key {kid}")))?;
            }
            Ok(withdrawn)
        })
    }

    /// Promotes every `next` key whose `activate_at` has come, in one transaction: the active
    /// key of its algorithm becomes `retiring` — it stopped signing at the next key's
    /// `activate_at` (when the servers switched, whenever this write happens) and stays
    /// published `keep_for` seconds from then — and the next key becomes `active`. Returns how
    /// many keys were promoted.
    pub fn promote_due_keys(&mut self, now: i64, keep_for: i64) -> Result<usize, StoreError> {
        // Most calls find nothing: read first, so they take no write lock.
        let due: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM signing_keys WHERE status = 'next' AND activate_at <= ?1",
            [now],
            |r| r.get(0),
        )?;
        if due == 0 {
            return Ok(0);
        }
        self.with_tx(|tx| {
            let due: Vec<(String, String, i64)> = tx
                .prepare_cached(
                    "SELECT kid, alg, activate_at FROM signing_keys \
                     WHERE status = 'next' AND activate_at <= ?1",
                )?
                .query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            for (kid, alg, at) in &due {
                exec_tx(
                    tx,
                    "UPDATE signing_keys SET status = 'retiring', deactivated_at = ?2, \
                     retire_after = ?3 WHERE alg = ?1 AND status = 'active'",
                    params![alg, at, at + keep_for],
                )?;
                exec_tx(
                    tx,
                    "UPDATE signing_keys SET status = 'active' WHERE kid = ?1",
                    [kid],
                )?;
            }
            Ok(due.len())
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
                "INSERT INTO signing_keys (kid, alg, pkcs8, status, created_at, activate_at) \
                 VALUES (?1, ?2, ?3, 'active', ?4, ?4)",
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
