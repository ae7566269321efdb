//! User rows and group membership (by group id; reads give the groups' current names).

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::{Store, StoreError, conflict, exec_tx};

/// A person who can sign in.
#[derive(Clone)]
pub struct User {
    /// The stable, opaque `sub`.
    pub id: String,
    pub username: String,
    pub password_hash: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub disabled: bool,
    pub groups: Vec<String>,
    pub created_at: i64,
    /// Must sign in with a second factor (`latchkey user mfa NAME --require`).
    pub mfa_required: bool,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str =
    "id, username, password_hash, email, name, disabled, created_at, mfa_required";

/// A user's groups. Sorted in Rust, not by `ORDER BY`: the bundled SQLite re-prepares this
/// query with an `ORDER BY` on every run (the test below counts it), which cost every token
/// grant a parse and a query plan, about 7% of a refresh rotation's CPU.
/// The names come from a subquery on `groups`' primary key, not a join: the bundled SQLite
/// re-prepared the join on every run as well (the test below counts it).
const GROUPS_SQL: &str = "SELECT (SELECT g.name FROM groups AS g WHERE g.id = ug.group_id) \
     FROM user_groups AS ug WHERE ug.user_id = ?1";

/// Reads a user's groups, sorted.
fn load_groups(conn: &Connection, user: &mut User) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(GROUPS_SQL)?;
    user.groups = stmt
        .query_map([&user.id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    user.groups.sort_unstable();
    Ok(())
}

/// The user with this `sub`, with groups, read on `conn`.
fn user_on(conn: &Connection, id: &str) -> Result<Option<User>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = ?1"))?;
    let Some(mut user) = stmt.query_row([id], from_row).optional()? else {
        return Ok(None);
    };
    load_groups(conn, &mut user)?;
    Ok(Some(user))
}

/// The user with this `sub`, with groups, inside a write transaction: the token grants read it
/// on the writer connection, whose page cache the grant's own writes keep warm, instead of on
/// the worker's, whose cache every commit of the server invalidates.
pub fn user_tx(tx: &Transaction<'_>, id: &str) -> Result<Option<User>, StoreError> {
    user_on(tx, id)
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        email: r.get(3)?,
        name: r.get(4)?,
        disabled: r.get::<_, i64>(5)? != 0,
        groups: Vec::new(),
        created_at: r.get(6)?,
        mfa_required: r.get::<_, i64>(7)? != 0,
    })
}

/// Adds the user to these groups, creating groups that do not exist.
fn set_groups_tx(
    tx: &Transaction<'_>,
    id: &str,
    groups: &[String],
    now: i64,
) -> Result<(), StoreError> {
    for g in groups {
        let gid = super::groups::group_id_tx(tx, g, now)?;
        exec_tx(
            tx,
            "INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?1, ?2)",
            params![id, gid],
        )?;
    }
    Ok(())
}

/// The case-insensitive key of a username.
pub fn username_key(username: &str) -> String {
    username.to_lowercase()
}

impl Store {
    /// Adds a user with groups. A username taken in any letter case is `Conflict`.
    #[allow(clippy::too_many_arguments)]
    pub fn insert_user(
        &mut self,
        id: &str,
        username: &str,
        password_hash: Option<&str>,
        email: Option<&str>,
        name: Option<&str>,
        groups: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            exec_tx(
                tx,
                "INSERT INTO users (id, username, username_key, password_hash, email, name, \
                 created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![
                    id,
                    username,
                    username_key(username),
                    password_hash,
                    email,
                    name,
                    now
                ],
            )
            .map_err(|e| conflict(e, &format!("a user named {username:?}")))?;
            set_groups_tx(tx, id, groups, now)
        })
    }

    /// The user with this `sub`, with groups.
    pub fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        user_on(&self.conn, id)
    }

    /// The user with this username (any letter case), with groups.
    pub fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM users WHERE username_key = ?1"
        ))?;
        let Some(mut user) = stmt
            .query_row([username_key(username)], from_row)
            .optional()?
        else {
            return Ok(None);
        };
        load_groups(&self.conn, &mut user)?;
        Ok(Some(user))
    }

    /// Every user, by username, with groups.
    pub fn users(&self) -> Result<Vec<User>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM users ORDER BY username_key"
        ))?;
        let mut users: Vec<User> = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
        for u in &mut users {
            load_groups(&self.conn, u)?;
        }
        Ok(users)
    }

    /// Replaces a password hash (after a change, or a rehash with stronger parameters).
    pub fn set_password_hash(&mut self, id: &str, hash: &str, now: i64) -> Result<(), StoreError> {
        let n = self.exec(
            "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, hash, now],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Sets whether the user must sign in with a second factor.
    pub fn set_user_mfa_required(
        &mut self,
        id: &str,
        required: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let n = self.exec(
            "UPDATE users SET mfa_required = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, i64::from(required), now],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A user's own password change on the account page: stores the new hash, revokes the
    /// user's grants (refresh tokens stop working, their access tokens are revoked by jti, as
    /// for `user passwd`) and ends every login session but `keep` (the browser that made the
    /// change) with their forward-auth sessions, and deletes the user's setup links, in one
    /// transaction.
    pub fn change_own_password(
        &mut self,
        id: &str,
        hash: &str,
        keep: &[u8; 32],
        now: i64,
    ) -> Result<usize, StoreError> {
        self.with_tx(|tx| {
            let n = exec_tx(
                tx,
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, hash, now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            super::grants::revoke_grants_tx(tx, id, None, now)?;
            // An outstanding invite or reset link would set the password again behind the
            // user's back: it dies with the change.
            exec_tx(tx, "DELETE FROM setup_links WHERE user_id = ?1", [id])?;
            exec_tx(
                tx,
                "DELETE FROM sessions WHERE user_id = ?1 AND parent IS NOT NULL AND parent != ?2",
                params![id, keep.as_slice()],
            )?;
            exec_tx(
                tx,
                "DELETE FROM sessions WHERE user_id = ?1 AND parent IS NULL AND hash != ?2",
                params![id, keep.as_slice()],
            )
            .map_err(StoreError::from)
        })
    }

    /// Changes the username; the `sub` stays.
    pub fn rename_user(&mut self, id: &str, username: &str, now: i64) -> Result<(), StoreError> {
        let n = self
            .exec(
                "UPDATE users SET username = ?2, username_key = ?3, updated_at = ?4 WHERE id = ?1",
                params![id, username, username_key(username), now],
            )
            .map_err(|e| conflict(e, &format!("a user named {username:?}")))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Disables or enables a user. Disabling also ends the user's sessions and revokes every
    /// grant (refresh tokens and the access tokens issued under them), in one transaction.
    pub fn set_user_disabled(
        &mut self,
        id: &str,
        disabled: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            let n = exec_tx(
                tx,
                "UPDATE users SET disabled = ?2, updated_at = ?3 WHERE id = ?1",
                params![id, i64::from(disabled), now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            if disabled {
                super::grants::revoke_user_tx(tx, id, now)?;
            }
            Ok(())
        })
    }

    /// Ends every session of a user and revokes their grants (after a password change).
    pub fn end_user_sessions(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        self.with_tx(|tx| super::grants::revoke_user_tx(tx, id, now))
    }

    /// Removes a user; sessions, consents, codes and grants go with it. Access tokens issued
    /// to the user are revoked by jti first.
    pub fn remove_user(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            super::grants::revoke_user_tx(tx, id, now)?;
            let n = exec_tx(tx, "DELETE FROM users WHERE id = ?1", [id])?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    /// Adds a user to a group (no error if already a member), creating the group if there is
    /// none.
    pub fn add_user_group(&mut self, id: &str, group: &str, now: i64) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            let gid = super::groups::group_id_tx(tx, group, now)?;
            exec_tx(
                tx,
                "INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?1, ?2)",
                params![id, gid],
            )?;
            exec_tx(
                tx,
                "UPDATE users SET updated_at = updated_at WHERE id = ?1",
                [id],
            )?;
            Ok(())
        })
    }

    /// Changes a user's email, full name and groups: `None` keeps a field, `Some(None)` clears
    /// email or name, and a list of groups replaces the user's groups (creating groups that do
    /// not exist). `NotFound` if there is no such user.
    pub fn update_user(
        &mut self,
        id: &str,
        email: Option<Option<&str>>,
        name: Option<Option<&str>>,
        groups: Option<&[String]>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            let n = exec_tx(
                tx,
                "UPDATE users SET updated_at = ?2 WHERE id = ?1",
                params![id, now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            if let Some(email) = email {
                exec_tx(
                    tx,
                    "UPDATE users SET email = ?2 WHERE id = ?1",
                    params![id, email],
                )?;
            }
            if let Some(name) = name {
                exec_tx(
                    tx,
                    "UPDATE users SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )?;
            }
            if let Some(groups) = groups {
                exec_tx(tx, "DELETE FROM user_groups WHERE user_id = ?1", [id])?;
                set_groups_tx(tx, id, groups, now)?;
            }
            Ok(())
        })
    }

    /// Removes a user from a group. True if they were a member.
    pub fn remove_user_group(&mut self, id: &str, group: &str) -> Result<bool, StoreError> {
        let n = self.exec(
            "DELETE FROM user_groups WHERE user_id = ?1 \
             AND group_id = (SELECT id FROM groups WHERE name = ?2)",
            params![id, group],
        )?;
        self.exec(
            "UPDATE users SET updated_at = updated_at WHERE id = ?1",
            [id],
        )?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::GROUPS_SQL;
    use crate::store::Store;

    /// Every token grant reads the user's groups: that statement must stay prepared.
    #[test]
    fn groups_are_read_sorted_without_re_preparing() {
        let mut s = Store::open_in_memory().unwrap();
        let groups = ["zeta".to_string(), "admins".to_string(), "m".to_string()];
        s.insert_user("u1", "alice", None, None, None, &groups, 1)
            .unwrap();
        for _ in 0..3 {
            let user = s.user("u1").unwrap().unwrap();
            assert_eq!(user.groups, ["admins", "m", "zeta"]);
        }
        let stmt = s.conn.prepare_cached(GROUPS_SQL).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }

    #[test]
    fn an_own_password_change_keeps_only_the_browser_that_made_it() {
        let mut s = Store::open_in_memory().unwrap();
        s.insert_user("u1", "alice", Some("old"), None, None, &[], 1)
            .unwrap();
        s.insert_user("u2", "bob", Some("bobs"), None, None, &[], 1)
            .unwrap();
        s.insert_session(&[1; 32], "u1", 10, 900).unwrap();
        s.insert_session(&[2; 32], "u1", 20, 900).unwrap();
        s.insert_child_session(&[3; 32], &[1; 32], "u1", 10, 11, 900)
            .unwrap();
        s.insert_child_session(&[4; 32], &[2; 32], "u1", 20, 21, 900)
            .unwrap();
        s.insert_session(&[5; 32], "u2", 10, 900).unwrap();
        assert_eq!(s.change_own_password("u1", "new", &[1; 32], 30).unwrap(), 1);
        let u = s.user("u1").unwrap().unwrap();
        assert_eq!(u.password_hash.as_deref(), Some("new"));
        for (hash, alive) in [(1, true), (3, true), (2, false), (4, false), (5, true)] {
            assert_eq!(s.session(&[hash; 32]).unwrap().is_some(), alive, "{hash}");
        }
        assert!(matches!(
            s.change_own_password("nobody", "x", &[1; 32], 30),
            Err(crate::store::StoreError::NotFound)
        ));
    }
}
