//! Groups: objects with a stable id, a unique name and a description. Memberships
//! (`user_groups`), forward-auth rules (`rules.subject` of `allow_group`, the id as text) and
//! clients (`clients.allowed_groups`, a JSON array of ids) name a group by its id, so renaming a
//! group changes nothing they mean. Ids are never reused (`AUTOINCREMENT`): a rule or client
//! still naming a removed group admits nobody, not a new group.
//!
//! Reads resolve ids to the current names: a user's `groups`, a client's `allowed_groups`, a
//! rule's subject. A removed group an id still names is shown as [`removed_group`]'s words,
//! which no group name can be (group names have no spaces), so it matches nobody.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Store, StoreError, conflict, exec_tx};

/// A group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
}

/// How an id naming a removed group reads where a name is expected.
pub fn removed_group(id: i64) -> String {
    format!("removed group {id}")
}

/// The id in [`removed_group`]'s words, if these are they.
pub fn removed_group_id(name: &str) -> Option<i64> {
    name.strip_prefix("removed group ")?.parse().ok()
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Group> {
    Ok(Group {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        created_at: r.get(3)?,
    })
}

const COLUMNS: &str = "id, name, description, created_at";

/// The id of the group with this name, creating the group if there is none (a membership or a
/// rule naming a group makes it exist, as before groups were objects). The words of
/// [`removed_group`] give back the removed id they name.
pub(super) fn group_id_tx(tx: &Connection, name: &str, now: i64) -> Result<i64, StoreError> {
    if let Some(id) = removed_group_id(name) {
        return Ok(id);
    }
    exec_tx(
        tx,
        "INSERT OR IGNORE INTO groups (name, created_at) VALUES (?1, ?2)",
        params![name, now],
    )?;
    Ok(tx
        .prepare_cached("SELECT id FROM groups WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

/// The ids of these groups as the JSON array `clients.allowed_groups` holds, creating groups
/// that do not exist.
pub(super) fn group_ids_json_tx(
    tx: &Connection,
    names: &[String],
    now: i64,
) -> Result<String, StoreError> {
    let mut ids = Vec::with_capacity(names.len());
    for n in names {
        let id = group_id_tx(tx, n, now)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(format!("group ids: {e}")))
}

impl Store {
    /// Every group, by name.
    pub fn groups(&self) -> Result<Vec<Group>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM groups ORDER BY name"))?;
        Ok(stmt.query_map([], from_row)?.collect::<Result<_, _>>()?)
    }

    /// The group with this name.
    pub fn group_by_name(&self, name: &str) -> Result<Option<Group>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM groups WHERE name = ?1"))?;
        Ok(stmt.query_row([name], from_row).optional()?)
    }

    /// The group with this id.
    pub fn group(&self, id: i64) -> Result<Option<Group>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM groups WHERE id = ?1"))?;
        Ok(stmt.query_row([id], from_row).optional()?)
    }

    /// The id of the group with this name, creating it (with no description) if there is none.
    pub fn ensure_group(&mut self, name: &str, now: i64) -> Result<i64, StoreError> {
        self.with_tx(|tx| group_id_tx(tx, name, now))
    }

    /// Adds a group; returns its id. A taken name is `Conflict`.
    pub fn insert_group(
        &mut self,
        name: &str,
        description: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.with_tx(|tx| {
            exec_tx(
                tx,
                "INSERT INTO groups (name, description, created_at) VALUES (?1, ?2, ?3)",
                params![name, description, now],
            )
            .map_err(|e| conflict(e, &format!("a group named {name:?}")))?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Changes a group's name and description; its id, and so every membership, rule and
    /// client naming it, stays. A taken name is `Conflict`.
    pub fn update_group(
        &mut self,
        id: i64,
        name: &str,
        description: &str,
    ) -> Result<(), StoreError> {
        let n = self
            .exec(
                "UPDATE groups SET name = ?2, description = ?3 WHERE id = ?1",
                params![id, name, description],
            )
            .map_err(|e| conflict(e, &format!("a group named {name:?}")))?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Removes a group and its memberships. Rules and clients naming it keep its id, which
    /// now names nobody's group.
    pub fn remove_group(&mut self, id: i64) -> Result<(), StoreError> {
        if self.exec("DELETE FROM groups WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The usernames of a group's members, sorted.
    pub fn group_members(&self, id: i64) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT u.username FROM user_groups AS ug JOIN users AS u ON u.id = ug.user_id \
             WHERE ug.group_id = ?1 ORDER BY u.username_key",
        )?;
        Ok(stmt
            .query_map([id], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{NewClient, Store};

    fn client<'a>(groups: &'a [String], empty: &'a [String]) -> NewClient<'a> {
        NewClient {
            client_id: "c1",
            name: "one",
            secret_hash: None,
            redirect_uris: empty,
            grant_types: empty,
            scopes: empty,
            audience: None,
            access_token_ttl: None,
            require_pkce: true,
            skip_consent: false,
            id_token_alg: "RS256",
            post_logout_redirect_uris: empty,
            allowed_groups: groups,
            require_mfa: false,
        }
    }

    /// Names are read afresh from the id; a removed group stays named by its id, also through
    /// an update that writes back what it read.
    #[test]
    fn clients_and_users_follow_a_group_by_id_through_rename_and_removal() {
        let mut s = Store::open_in_memory().unwrap();
        let groups = vec!["family".to_string(), "admins".to_string()];
        s.insert_user("u1", "alice", None, None, None, &groups, 1)
            .unwrap();
        s.insert_client(&client(&groups, &[]), 1).unwrap();
        let family = s.group_by_name("family").unwrap().unwrap();
        let admins = s.group_by_name("admins").unwrap().unwrap();
        s.update_group(family.id, "kin", "the family").unwrap();
        assert_eq!(s.user("u1").unwrap().unwrap().groups, ["admins", "kin"]);
        assert_eq!(
            s.client("c1").unwrap().unwrap().allowed_groups,
            ["kin", "admins"]
        );
        assert_eq!(s.group_members(family.id).unwrap(), ["alice"]);
        s.remove_group(admins.id).unwrap();
        assert_eq!(s.user("u1").unwrap().unwrap().groups, ["kin"]);
        let read = s.client("c1").unwrap().unwrap().allowed_groups.clone();
        assert_eq!(read, ["kin".to_string(), super::removed_group(admins.id)]);
        // A new group of the old name is another group.
        let again = s.insert_group("admins", "", 2).unwrap();
        assert_ne!(again, admins.id);
        s.update_client(&client(&read, &[]), 3).unwrap();
        assert_eq!(s.client("c1").unwrap().unwrap().allowed_groups, read);
        assert!(matches!(
            s.insert_group("kin", "", 2),
            Err(crate::store::StoreError::Conflict(_))
        ));
    }
}
