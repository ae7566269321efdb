//! One-time setup links (invite and reset): the link carries a random 256-bit token, the
//! table only its SHA-256. A user has at most one live link: making one deletes the older ones
//! in the same transaction, and using one is decided in one transaction too (not used, not
//! expired, the user's newest), so two browsers racing with one link get one success.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError, exec_tx};

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A new user, made without a password (`latchkey user invite`).
    Invite,
    /// An existing user (`latchkey user reset`).
    Reset,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::Invite => "invite",
            LinkKind::Reset => "reset",
        }
    }

    fn parse(s: &str) -> LinkKind {
        if s == "invite" {
            LinkKind::Invite
        } else {
            LinkKind::Reset
        }
    }
}

/// A live link, as stored (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupLink {
    pub user_id: String,
    pub kind: LinkKind,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The condition of a usable link `l`: unused, unexpired (`?2` is now), and its user's newest.
const LIVE: &str = "l.used_at IS NULL AND l.expires_at > ?2 AND NOT EXISTS \
     (SELECT 1 FROM setup_links n WHERE n.user_id = l.user_id AND n.rowid > l.rowid)";

impl Store {
    /// Stores a new link for the user, deleting every older link of theirs in the same
    /// transaction.
    pub fn create_setup_link(
        &mut self,
        hash: &[u8; 32],
        user_id: &str,
        kind: LinkKind,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            exec_tx(tx, "DELETE FROM setup_links WHERE user_id = ?1", [user_id])?;
            exec_tx(
                tx,
                "INSERT INTO setup_links (hash, user_id, kind, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash.as_slice(), user_id, kind.as_str(), now, expires_at],
            )?;
            Ok(())
        })
    }

    /// The link with this digest if it can still be used at `now`; does not use it (a chat
    /// app's link preview must not burn it).
    pub fn setup_link(&self, hash: &[u8; 32], now: i64) -> Result<Option<SetupLink>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT l.user_id, l.kind, l.created_at, l.expires_at FROM setup_links l \
             WHERE l.hash = ?1 AND {LIVE}"
        ))?;
        Ok(stmt
            .query_row(params![hash.as_slice(), now], |r| {
                Ok(SetupLink {
                    user_id: r.get(0)?,
                    kind: LinkKind::parse(&r.get::<_, String>(1)?),
                    created_at: r.get(2)?,
                    expires_at: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// Uses a link, in one transaction: if it can still be used at `now`, marks it used, sets
    /// the password hash when one is given, and ends every session of the user (revoking
    /// their grants, as a password change does). `None` if the link is unknown, used, expired
    /// or replaced by a newer one; nothing changes then.
    pub fn use_setup_link(
        &mut self,
        hash: &[u8; 32],
        now: i64,
        password_hash: Option<&str>,
    ) -> Result<Option<SetupLink>, StoreError> {
        self.with_tx(|tx| {
            let link = tx
                .prepare_cached(&format!(
                    "UPDATE setup_links AS l SET used_at = ?2 WHERE l.hash = ?1 AND {LIVE} \
                     RETURNING user_id, kind, created_at, expires_at"
                ))?
                .query_row(params![hash.as_slice(), now], |r| {
                    Ok(SetupLink {
                        user_id: r.get(0)?,
                        kind: LinkKind::parse(&r.get::<_, String>(1)?),
                        created_at: r.get(2)?,
                        expires_at: r.get(3)?,
                    })
                })
                .optional()?;
            let Some(link) = link else {
                return Ok(None);
            };
            if let Some(h) = password_hash {
                exec_tx(
                    tx,
                    "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                    params![link.user_id, h, now],
                )?;
            }
            super::grants::revoke_user_tx(tx, &link.user_id, now)?;
            // Touching the row makes a running server forget cached forward-auth sessions.
            exec_tx(
                tx,
                "UPDATE users SET updated_at = updated_at WHERE id = ?1",
                [&link.user_id],
            )?;
            Ok(Some(link))
        })
    }

    /// Deletes links that expired or were used before `now`; returns how many.
    pub fn gc_setup_links(&mut self, now: i64) -> Result<usize, StoreError> {
        Ok(self.exec(
            "DELETE FROM setup_links WHERE expires_at <= ?1 OR used_at IS NOT NULL",
            [now],
        )?)
    }
}
