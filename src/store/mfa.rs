//! TOTP authenticators and recovery codes: the rows behind [`crate::accounts::mfa::totp`] and
//! [`crate::accounts::mfa::recovery`]. Each single-use decision (a time step, a recovery code)
//! is one conditional `UPDATE`, so two workers (or two nodes sharing the database) can never
//! both accept the same code.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, exec_tx};

/// A user's TOTP authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    /// The shared secret (20 bytes). The database is the secret store, as for the signing
    /// keys: the file is private (mode 0600).
    pub secret: Vec<u8>,
    /// The highest time step accepted so far (0: none yet).
    pub last_step: i64,
    pub created_at: i64,
}

impl Store {
    /// The user's TOTP authenticator, if any.
    pub fn totp(&self, user_id: &str) -> Result<Option<Totp>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT secret, last_step, created_at FROM totp WHERE user_id = ?1")?
            .query_row([user_id], |r| {
                Ok(Totp {
                    secret: r.get(0)?,
                    last_step: r.get(1)?,
                    created_at: r.get(2)?,
                })
            })
            .optional()?)
    }

    /// Saves the user's TOTP authenticator with `step` (the step of the code that confirmed
    /// it) as its last accepted step, so that code cannot be used again. False, and nothing
    /// changes, when the user has one already (remove it first): of two enrolments at once,
    /// the first wins.
    pub fn set_totp(
        &mut self,
        user_id: &str,
        secret: &[u8],
        step: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.exec(
            "INSERT INTO totp (user_id, secret, last_step, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (user_id) DO NOTHING",
            params![user_id, secret, step, now],
        )? == 1)
    }

    /// Removes the user's TOTP authenticator, and their recovery codes when no second factor
    /// is left for them to back up, in one transaction; false if they had none.
    pub fn delete_totp(&mut self, user_id: &str) -> Result<bool, StoreError> {
        self.with_tx(|tx| {
            if exec_tx(tx, "DELETE FROM totp WHERE user_id = ?1", [user_id])? == 0 {
                return Ok(false);
            }
            exec_tx(
                tx,
                "DELETE FROM recovery_codes WHERE user_id = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?1)",
                [user_id],
            )?;
            Ok(true)
        })
    }

    /// Accepts time step `step` for the user: true only if it is later than every step
    /// accepted before (one conditional UPDATE: of two concurrent uses, one wins).
    pub fn advance_totp_step(&mut self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE totp SET last_step = ?2 WHERE user_id = ?1 AND last_step < ?2",
            params![user_id, step],
        )? == 1)
    }

    /// Replaces all the user's recovery codes with `hashes` (SHA-256 of each normalised code).
    pub fn replace_recovery_codes(
        &mut self,
        user_id: &str,
        hashes: &[[u8; 32]],
        now: i64,
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            exec_tx(
                tx,
                "DELETE FROM recovery_codes WHERE user_id = ?1",
                [user_id],
            )?;
            for h in hashes {
                exec_tx(
                    tx,
                    "INSERT OR IGNORE INTO recovery_codes (user_id, hash, created_at) \
                     VALUES (?1, ?2, ?3)",
                    params![user_id, h.as_slice(), now],
                )?;
            }
            Ok(())
        })
    }

    /// Uses the recovery code with digest `hash`: true if it was the user's and unused (one
    /// conditional UPDATE).
    pub fn use_recovery_code(
        &mut self,
        user_id: &str,
        hash: &[u8; 32],
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.exec(
            "UPDATE recovery_codes SET used_at = ?3 \
             WHERE user_id = ?1 AND hash = ?2 AND used_at IS NULL",
            params![user_id, hash.as_slice(), now],
        )? == 1)
    }

    /// How many of the user's recovery codes are unused.
    pub fn recovery_codes_left(&self, user_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
            )?
            .query_row([user_id], |r| r.get(0))?)
    }
}
