//! The `settings` table: the tunables that are state, not flags.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};

impl Store {
    /// Every stored setting, by key.
    pub fn settings(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key, value FROM settings ORDER BY key")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One stored setting.
    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Stores a setting (the caller has validated it).
    pub fn set_setting(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.exec(
            "INSERT INTO settings (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Removes a stored setting, returning it to its default. True if one was stored.
    pub fn unset_setting(&mut self, key: &str) -> Result<bool, StoreError> {
        Ok(self.exec("DELETE FROM settings WHERE key = ?1", [key])? > 0)
    }
}
