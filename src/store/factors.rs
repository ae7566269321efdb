//! What second factors a user has, across TOTP, recovery codes and passkeys (each kind's own
//! rows are in its own file).

use super::{Store, StoreError, exec_tx};

/// A user's second factors, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SecondFactors {
    pub totp: bool,
    pub passkeys: i64,
    /// Recovery codes not used yet.
    pub recovery_codes: i64,
}

impl SecondFactors {
    /// A factor that can be given at sign-in after the password (recovery codes only back one
    /// up, so they do not count on their own).
    pub fn any(&self) -> bool {
        self.totp || self.passkeys > 0
    }
}

impl Store {
    /// The second factors of a user.
    pub fn second_factors(&self, user_id: &str) -> Result<SecondFactors, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM totp WHERE user_id = ?1), \
             (SELECT count(*) FROM passkeys WHERE user_id = ?1), \
             (SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL)",
        )?;
        Ok(stmt.query_row([user_id], |r| {
            Ok(SecondFactors {
                totp: r.get(0)?,
                passkeys: r.get(1)?,
                recovery_codes: r.get(2)?,
            })
        })?)
    }

    /// Removes every second factor of a user (TOTP, recovery codes, passkeys) in one
    /// transaction, after an admin checked their identity out of band; returns what they had.
    pub fn remove_second_factors(&mut self, user_id: &str) -> Result<SecondFactors, StoreError> {
        let had = self.second_factors(user_id)?;
        self.with_tx(|tx| {
            exec_tx(tx, "DELETE FROM totp WHERE user_id = ?1", [user_id])?;
            exec_tx(
                tx,
                "DELETE FROM recovery_codes WHERE user_id = ?1",
                [user_id],
            )?;
            exec_tx(tx, "DELETE FROM passkeys WHERE user_id = ?1", [user_id])?;
            Ok(())
        })?;
        Ok(had)
    }
}
