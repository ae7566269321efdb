//! The `installation` table: facts about this installation that are not tunable settings.
//! Today one: the issuer the server was set up with (see [`crate::ops::installation`]).

use rusqlite::OptionalExtension;

use super::{Store, StoreError};

/// The row holding the issuer.
const ISSUER: &str = "issuer";

impl Store {
    /// The issuer stored by an earlier start, if any.
    pub fn stored_issuer(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM installation WHERE name = ?1",
                [ISSUER],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores `issuer` as the installation's issuer (replacing an earlier one).
    pub fn set_stored_issuer(&self, issuer: &str, now: i64) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO installation (name, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            rusqlite::params![ISSUER, issuer, now],
        )?;
        Ok(())
    }
}

/// The stored issuer read on a read-only connection (for `latchkey check`); `None` when the
/// schema predates the table or nothing is stored.
pub(super) fn read_issuer(conn: &rusqlite::Connection) -> Result<Option<String>, StoreError> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'installation')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    Ok(conn
        .query_row(
            "SELECT value FROM installation WHERE name = ?1",
            [ISSUER],
            |r| r.get(0),
        )
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_stored_and_replaced() {
        let s = Store::open_in_memory().unwrap();
        assert_eq!(s.stored_issuer().unwrap(), None);
        s.set_stored_issuer("https://a.example", 1).unwrap();
        assert_eq!(
            s.stored_issuer().unwrap().as_deref(),
            Some("https://a.example")
        );
        s.set_stored_issuer("https://b.example", 2).unwrap();
        assert_eq!(
            s.stored_issuer().unwrap().as_deref(),
            Some("https://b.example")
        );
        assert_eq!(
            read_issuer(&s.conn).unwrap().as_deref(),
            Some("https://b.example")
        );
    }
}
