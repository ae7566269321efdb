//! Forward-auth access rules, in evaluation order. A rule names a user by `sub` and a group
//! by id (see [`super::groups`]); reads add their current names.

use rusqlite::params;

use super::{Store, StoreError, exec_tx};

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRow {
    pub id: i64,
    pub position: i64,
    pub host: String,
    pub path: String,
    pub method: Option<String>,
    pub action: String,
    /// The user's `sub` (`allow_user`) or the group's id (`allow_group`).
    pub subject: Option<String>,
    pub scope: Option<String>,
    /// The current username or group name `subject` names; `None` if that user or group is
    /// gone (or the action names nobody).
    pub subject_name: Option<String>,
    /// People must have signed in with a second factor.
    pub require_mfa: bool,
}

impl Store {
    /// Every rule, in evaluation order.
    pub fn rules(&self) -> Result<Vec<RuleRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT r.id, r.position, r.host, r.path, r.method, r.action, r.subject, r.scope, \
             CASE r.action \
               WHEN 'allow_user' THEN (SELECT u.username FROM users AS u WHERE u.id = r.subject) \
               WHEN 'allow_group' THEN \
                 (SELECT g.name FROM groups AS g WHERE CAST(g.id AS TEXT) = r.subject) \
             END, r.require_mfa \
             FROM rules AS r ORDER BY r.position, r.id",
        )?;
        Ok(stmt
            .query_map([], |r| {
                Ok(RuleRow {
                    id: r.get(0)?,
                    position: r.get(1)?,
                    host: r.get(2)?,
                    path: r.get(3)?,
                    method: r.get(4)?,
                    action: r.get(5)?,
                    subject: r.get(6)?,
                    scope: r.get(7)?,
                    subject_name: r.get(8)?,
                    require_mfa: r.get(9)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    /// Appends a rule (last in order); returns its id.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_rule(
        &mut self,
        host: &str,
        path: &str,
        method: Option<&str>,
        action: &str,
        subject: Option<&str>,
        scope: Option<&str>,
        require_mfa: bool,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.with_tx(|tx| {
            let next: i64 = tx.query_row("SELECT COALESCE(MAX(position), 0) + 1 FROM rules", [], |r| r.get(0))?;
            exec_tx(tx,
                "INSERT INTO rules (position, host, path, method, action, subject, scope, created_at, \
                 require_mfa) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![next, host, path, method, action, subject, scope, now, require_mfa],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Removes a rule.
    pub fn remove_rule(&mut self, id: i64) -> Result<(), StoreError> {
        if self.exec("DELETE FROM rules WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Moves a rule to 1-based place `to` in the order (clamped to the list), renumbering the
    /// others; returns the place it ended up in.
    pub fn move_rule(&mut self, id: i64, to: usize) -> Result<usize, StoreError> {
        self.with_tx(|tx| {
            let mut ids: Vec<i64> = tx
                .prepare("SELECT id FROM rules ORDER BY position, id")?
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let Some(from) = ids.iter().position(|r| *r == id) else {
                return Err(StoreError::NotFound);
            };
            let moved = ids.remove(from);
            let to = to.clamp(1, ids.len() + 1) - 1;
            ids.insert(to, moved);
            for (i, rid) in ids.iter().enumerate() {
                exec_tx(
                    tx,
                    "UPDATE rules SET position = ?2 WHERE id = ?1",
                    params![rid, i as i64 + 1],
                )?;
            }
            Ok(to + 1)
        })
    }
}
