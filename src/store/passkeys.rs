//! Passkeys (WebAuthn credentials) and the WebAuthn challenges in flight.
//!
//! A challenge is stored as its SHA-256 with what it is for and, except for a usernameless
//! sign-in, whose it is; answering takes it in one `DELETE … RETURNING`, so a challenge is
//! used once across every worker and node, however many browsers race with it.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, exec_tx};

/// A stored passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// The credential id.
    pub id: Vec<u8>,
    pub user_id: String,
    pub name: String,
    /// The COSE_Key as registered.
    pub public_key: Vec<u8>,
    pub alg: i64,
    pub sign_count: u32,
    pub backup_eligible: bool,
    /// The transports the browser reported (a JSON array), handed back in `allowCredentials`.
    pub transports: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// What removing a passkey came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// The user has no passkey with this id.
    NotFound,
    /// It is the last passkey of a user without a password: kept.
    LastWayIn,
}

/// What a challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// Registering a passkey (always for a user).
    Register,
    /// Signing in, usernameless (no user) or as the second factor of one user.
    Login,
}

impl ChallengePurpose {
    fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::Register => "register",
            ChallengePurpose::Login => "login",
        }
    }
}

/// Most usernameless challenges in flight at once; more are refused until some are answered
/// or expire. Bounds what unauthenticated `/webauthn/authenticate/options` requests can make
/// the table hold (the endpoint also limits each address).
pub const MAX_CHALLENGES: i64 = 10_000;
/// Most challenges of one user in flight: a newer one replaces the oldest. Users' own
/// ceremonies (registration, the second factor) never wait for the usernameless ones.
pub const MAX_USER_CHALLENGES: i64 = 8;

fn passkey_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Passkey> {
    Ok(Passkey {
        id: r.get(0)?,
        user_id: r.get(1)?,
        name: r.get(2)?,
        public_key: r.get(3)?,
        alg: r.get(4)?,
        sign_count: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
        backup_eligible: r.get(6)?,
        transports: r.get(7)?,
        created_at: r.get(8)?,
        last_used_at: r.get(9)?,
    })
}

const COLUMNS: &str = "id, user_id, name, public_key, alg, sign_count, backup_eligible, \
                       transports, created_at, last_used_at";

impl Store {
    /// Stores a new passkey; `false` (and nothing changes) if a credential with its id is
    /// registered already, to this user or another (WebAuthn §7.1 step 25).
    pub fn add_passkey(&mut self, p: &Passkey) -> Result<bool, StoreError> {
        Ok(self.exec(
            "INSERT INTO passkeys (id, user_id, name, public_key, alg, sign_count, \
             backup_eligible, transports, created_at, last_used_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING",
            params![
                p.id,
                p.user_id,
                p.name,
                p.public_key,
                p.alg,
                i64::from(p.sign_count),
                p.backup_eligible,
                p.transports,
                p.created_at,
                p.last_used_at
            ],
        )? == 1)
    }

    /// The user's passkeys, oldest first.
    pub fn passkeys(&self, user_id: &str) -> Result<Vec<Passkey>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id"
        ))?;
        let rows = stmt.query_map([user_id], passkey_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The passkey with this credential id.
    pub fn passkey(&self, id: &[u8]) -> Result<Option<Passkey>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM passkeys WHERE id = ?1"))?;
        Ok(stmt.query_row([id], passkey_row).optional()?)
    }

    /// Records a sign-in with the passkey: its new signature counter (never lowered: a
    /// regressed counter is logged by the caller, and keeping the highest seen lets the next
    /// clone show too) and when.
    pub fn passkey_used(&mut self, id: &[u8], sign_count: u32, now: i64) -> Result<(), StoreError> {
        self.exec(
            "UPDATE passkeys SET sign_count = max(sign_count, ?2), last_used_at = ?3 \
             WHERE id = ?1",
            params![id, i64::from(sign_count), now],
        )?;
        Ok(())
    }

    /// Removes one passkey of the user, and the user's recovery codes when no second factor
    /// is left for them to back up, in one transaction. Never the last passkey of a user
    /// without a password (their only way in): decided in the same transaction, so two
    /// removals at once cannot both pass.
    pub fn remove_passkey(&mut self, user_id: &str, id: &[u8]) -> Result<Removal, StoreError> {
        self.with_tx(|tx| {
            let (owned, total, has_password): (i64, i64, bool) = tx
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM passkeys WHERE user_id = ?1 AND id = ?2), \
                     (SELECT count(*) FROM passkeys WHERE user_id = ?1), \
                     (SELECT password_hash IS NOT NULL FROM users WHERE id = ?1)",
                )?
                .query_row(params![user_id, id], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get::<_, Option<bool>>(2)?.unwrap_or(false),
                    ))
                })?;
            if owned == 0 {
                return Ok(Removal::NotFound);
            }
            if !has_password && total <= 1 {
                return Ok(Removal::LastWayIn);
            }
            exec_tx(
                tx,
                "DELETE FROM passkeys WHERE user_id = ?1 AND id = ?2",
                params![user_id, id],
            )?;
            exec_tx(
                tx,
                "DELETE FROM recovery_codes WHERE user_id = ?1 \
                 AND NOT EXISTS (SELECT 1 FROM passkeys WHERE user_id = ?1) \
                 AND NOT EXISTS (SELECT 1 FROM totp WHERE user_id = ?1)",
                [user_id],
            )?;
            Ok(Removal::Removed)
        })
    }

    /// Stores a challenge (its digest) until `expires_at`, after deleting expired ones;
    /// `false` if it is usernameless and [`MAX_CHALLENGES`] of those are in flight already. A
    /// user's challenge replaces their oldest beyond [`MAX_USER_CHALLENGES`].
    pub fn add_webauthn_challenge(
        &mut self,
        hash: &[u8; 32],
        purpose: ChallengePurpose,
        user_id: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        self.with_tx(|tx| {
            exec_tx(
                tx,
                "DELETE FROM webauthn_challenges WHERE expires_at <= ?1",
                [now],
            )?;
            match user_id {
                None => {
                    let live: i64 = tx
                        .prepare_cached(
                            "SELECT count(*) FROM webauthn_challenges WHERE user_id IS NULL",
                        )?
                        .query_row([], |r| r.get(0))?;
                    if live >= MAX_CHALLENGES {
                        return Ok(false);
                    }
                }
                Some(user) => {
                    exec_tx(
                        tx,
                        "DELETE FROM webauthn_challenges WHERE user_id = ?1 AND hash NOT IN \
                         (SELECT hash FROM webauthn_challenges WHERE user_id = ?1 \
                          ORDER BY expires_at DESC LIMIT ?2)",
                        params![user, MAX_USER_CHALLENGES - 1],
                    )?;
                }
            }
            exec_tx(
                tx,
                "INSERT INTO webauthn_challenges (hash, purpose, user_id, expires_at) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![hash.as_slice(), purpose.as_str(), user_id, expires_at],
            )?;
            Ok(true)
        })
    }

    /// Takes (deletes) the challenge with this digest if it is for `purpose` and unexpired at
    /// `now`: `Some(user id)` (`Some(None)` for a usernameless sign-in), `None` if there is no
    /// such challenge (unknown, used, expired, or for something else).
    pub fn take_webauthn_challenge(
        &mut self,
        hash: &[u8; 32],
        purpose: ChallengePurpose,
        now: i64,
    ) -> Result<Option<Option<String>>, StoreError> {
        self.with_tx(|tx| {
            Ok(tx
                .prepare_cached(
                    "DELETE FROM webauthn_challenges \
                     WHERE hash = ?1 AND purpose = ?2 AND expires_at > ?3 RETURNING user_id",
                )?
                .query_row(params![hash.as_slice(), purpose.as_str(), now], |r| {
                    r.get::<_, Option<String>>(0)
                })
                .optional()?)
        })
    }

    /// Deletes expired challenges; returns how many.
    pub fn gc_webauthn_challenges(&mut self, now: i64) -> Result<usize, StoreError> {
        Ok(self.exec(
            "DELETE FROM webauthn_challenges WHERE expires_at <= ?1",
            [now],
        )?)
    }
}
