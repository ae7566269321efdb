//! Schema migrations by `PRAGMA user_version`: numbered, append-only SQL files. A shipped file is
//! never edited; a change is a new file.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// Every migration in order; `MIGRATIONS[n]` takes the schema from version `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("sql/0001_init.sql"),
    include_str!("sql/0002_accounts.sql"),
    include_str!("sql/0003_apikeys.sql"),
    include_str!("sql/0004_forward_auth.sql"),
    include_str!("sql/0005_audit.sql"),
    include_str!("sql/0006_audit_count.sql"),
    include_str!("sql/0007_without_rowid.sql"),
    include_str!("sql/0008_revoked_revision.sql"),
    include_str!("sql/0009_token_families.sql"),
    include_str!("sql/0010_access_in_refresh_row.sql"),
    include_str!("sql/0011_key_prepublication.sql"),
    include_str!("sql/0012_session_last_seen_at.sql"),
    include_str!("sql/0013_installation.sql"),
    GROUPS,
    include_str!("sql/0015_second_factors.sql"),
];

/// Groups as objects; rules and clients name users and groups by id.
const GROUPS: &str = include_str!("sql/0014_groups.sql");

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Refuses a database written by a newer latchkey (before anything writes to it).
pub(super) fn check_version(conn: &Connection) -> Result<(), StoreError> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Applies each pending migration in its own `BEGIN IMMEDIATE` transaction together with the
/// new `user_version`, so a crash leaves the database at a whole version and two processes
/// starting at once do not both migrate.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = user_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(sql) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
        log::info!("database migrated to schema version {}", version + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies migrations up to (not including) `MIGRATIONS[upto]`.
    fn at_version(conn: &Connection, upto: usize) {
        conn.execute_batch("PRAGMA foreign_keys = ON;").unwrap();
        for (v, sql) in MIGRATIONS.iter().take(upto).enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", v as i64 + 1)
                .unwrap();
        }
    }

    /// A client, a user and a grant `g` of theirs, for the token rows the tests add.
    const GRANT_ROWS: &str =
        "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, grant_types, \
           scopes, created_at, updated_at) VALUES ('c', 'c', NULL, '[]', '[]', '', 1, 1);
         INSERT INTO users (id, username, username_key, password_hash, created_at, updated_at) \
           VALUES ('u', 'alice', 'alice', 'x', 1, 1);
         INSERT INTO grants (id, client_id, user_id, scope, auth_time, created_at, expires_at) \
           VALUES ('g', 'c', 'u', 'openid', 1, 1, 99);";

    #[test]
    fn without_rowid_keeps_every_token_row() {
        let mut conn = Connection::open_in_memory().unwrap();
        at_version(&conn, 6);
        conn.execute_batch(GRANT_ROWS).unwrap();
        conn.execute_batch(
            "INSERT INTO refresh_tokens (hash, grant_id, scope, created_at, idle_expires_at, used_at) \
               VALUES (X'01', 'g', 'openid', 1, 50, 7);
             INSERT INTO grant_tokens (jti, grant_id, expires_at) VALUES ('j', 'g', 60);
             INSERT INTO revoked_tokens (jti, expires_at) VALUES ('r', 70);
             INSERT INTO auth_codes (hash, client_id, user_id, redirect_uri, scope, nonce, \
               code_challenge, auth_time, expires_at, used_at, grant_id) \
               VALUES (X'02', 'c', 'u', 'https://a/cb', 'openid', 'n', 'ch', 1, 80, 9, 'g');
             INSERT INTO sessions (hash, user_id, auth_time, last_seen, expires_at, parent) \
               VALUES (X'03', 'u', 1, 2, 90, NULL), (X'04', 'u', 1, 2, 90, X'03');",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let one = |sql: &str| -> String { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            one(
                "SELECT grant_id || scope || idle_expires_at || used_at FROM refresh_tokens WHERE hash = X'01'"
            ),
            "gopenid507"
        );
        assert_eq!(
            one("SELECT grant_id || expires_at FROM grant_tokens WHERE jti = 'j'"),
            "g60"
        );
        assert_eq!(
            one("SELECT expires_at || '' FROM revoked_tokens WHERE jti = 'r'"),
            "70"
        );
        assert_eq!(
            one(
                "SELECT redirect_uri || nonce || code_challenge || used_at || grant_id FROM auth_codes WHERE hash = X'02'"
            ),
            "https://a/cbnch9g"
        );
        assert_eq!(
            one("SELECT hex(parent) FROM sessions WHERE hash = X'04'"),
            "03"
        );
        for table in [
            "refresh_tokens",
            "grant_tokens",
            "revoked_tokens",
            "auth_codes",
            "sessions",
        ] {
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_schema WHERE name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(sql.contains("WITHOUT ROWID"), "{table}: {sql}");
        }
        // Foreign keys still hold: deleting the grant takes its tokens with it.
        conn.execute("DELETE FROM auth_codes", []).unwrap();
        conn.execute("DELETE FROM grants WHERE id = 'g'", [])
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT (SELECT COUNT(*) FROM refresh_tokens) + (SELECT COUNT(*) FROM grant_tokens)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        assert!(
            conn.query_row("PRAGMA foreign_key_check", [], |_| Ok(()))
                .is_err(),
            "no violations"
        );
    }

    #[test]
    fn token_families_keep_old_refresh_tokens_usable_by_digest() {
        use crate::store::grants as g;
        let mut conn = Connection::open_in_memory().unwrap();
        at_version(&conn, 8);
        let old = [1u8; 32];
        conn.execute_batch(GRANT_ROWS).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO refresh_tokens (hash, grant_id, scope, created_at, idle_expires_at) \
               VALUES (X'{}', 'g', 'openid', 1, 50);
             INSERT INTO grant_tokens (jti, grant_id, expires_at) VALUES ('j', 'g', 60);",
            "01".repeat(32)
        ))
        .unwrap();
        migrate(&mut conn).unwrap();
        let tx = conn.transaction().unwrap();
        // A token from before (no grant in it) is found by digest, and by its family's key.
        let row = g::refresh_tx(&tx, None, &old).unwrap().unwrap();
        assert_eq!((row.grant_id.as_str(), row.scope.as_str()), ("g", "openid"));
        assert_eq!((row.idle_expires_at, row.used_at), (50, None));
        assert!(g::refresh_tx(&tx, Some("g"), &old).unwrap().is_some());
        assert!(g::refresh_tx(&tx, Some("other"), &old).unwrap().is_none());
        // A new token is found by its family's key only: it never enters the legacy index.
        let new = [2u8; 32];
        g::insert_refresh_tx(
            &tx,
            &g::NewRefresh {
                hash: &new,
                grant_id: "g",
                scope: "openid",
                idle_expires_at: 60,
                access: ("j2", 70),
            },
            10,
        )
        .unwrap();
        assert!(g::refresh_tx(&tx, Some("g"), &new).unwrap().is_some());
        assert!(g::refresh_tx(&tx, None, &new).unwrap().is_none());
        // Rotation marks the old one used exactly once. Revoking the grant finds its access
        // tokens: the one recorded on its own before schema 10, and the one recorded in the new
        // refresh token's row; again, it finds nothing new.
        assert!(g::use_refresh_tx(&tx, "g", &old, 20).unwrap());
        assert!(!g::use_refresh_tx(&tx, "g", &old, 21).unwrap());
        let mut revoked = g::revoke_grant_tx(&tx, "g", 30).unwrap();
        revoked.sort();
        assert_eq!(revoked, vec![("j".to_string(), 60), ("j2".to_string(), 70)]);
        assert!(g::revoke_grant_tx(&tx, "g", 30).unwrap().is_empty());
        let indexes: Vec<String> = tx
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            indexes.contains(&"refresh_tokens_legacy".to_string()),
            "{indexes:?}"
        );
        for gone in ["refresh_tokens_grant", "grant_tokens_grant"] {
            assert!(
                !indexes.contains(&gone.to_string()),
                "{gone} is still there"
            );
        }
    }

    #[test]
    fn key_prepublication_keeps_every_key_row_and_its_guards() {
        let mut conn = Connection::open_in_memory().unwrap();
        at_version(&conn, 10);
        conn.execute_batch(
            "INSERT INTO signing_keys (kid, alg, pkcs8, status, created_at, retire_after) VALUES
               ('old', 'ES256', X'', 'retired', 100, 86900),
               ('prev', 'ES256', X'02', 'retiring', 200, 87000),
               ('cur', 'ES256', X'03', 'active', 300, NULL),
               ('rsa', 'RS256', X'04', 'active', 150, NULL),
               ('byhand', 'RS256', X'', 'retired', 120, NULL);",
        )
        .unwrap();
        let keys_rev = |c: &Connection| -> i64 {
            c.query_row("SELECT rev FROM revisions WHERE name = 'keys'", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        let before = keys_rev(&conn);
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        assert!(keys_rev(&conn) > before, "running servers reload the keys");
        type Row = (String, String, Vec<u8>, i64, i64, Option<i64>, Option<i64>);
        let rows: Vec<Row> = conn
            .prepare(
                "SELECT kid, status, pkcs8, created_at, activate_at, deactivated_at, retire_after \
                 FROM signing_keys ORDER BY rowid",
            )
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let row = |kid: &str,
                   status: &str,
                   pkcs8: &[u8],
                   t: i64,
                   stop: Option<i64>,
                   retire: Option<i64>| {
            (
                kid.to_string(),
                status.to_string(),
                pkcs8.to_vec(),
                t,
                t,
                stop,
                retire,
            )
        };
        assert_eq!(
            rows,
            vec![
                row("old", "retired", b"", 100, Some(200), Some(86_900)),
                row("prev", "retiring", &[2], 200, Some(300), Some(87_000)),
                row("cur", "active", &[3], 300, None, None),
                row("rsa", "active", &[4], 150, None, None),
                row("byhand", "retired", b"", 120, None, None),
            ]
        );
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'signing_keys'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("STRICT"), "{sql}");
        let insert = |kid: &str, alg: &str, status: &str| {
            conn.execute(
                "INSERT INTO signing_keys (kid, alg, pkcs8, status, created_at, activate_at) \
                 VALUES (?1, ?2, X'05', ?3, 400, 700)",
                [kid, alg, status],
            )
        };
        // 'next' is a status now; one per algorithm, as 'active' is; others are still refused.
        let rev = keys_rev(&conn);
        insert("n1", "ES256", "next").unwrap();
        assert!(keys_rev(&conn) > rev, "the insert trigger is back");
        insert("n2", "RS256", "next").unwrap();
        assert!(
            insert("n3", "ES256", "next").is_err(),
            "two next ES256 keys"
        );
        assert!(
            insert("a2", "ES256", "active").is_err(),
            "two active ES256 keys"
        );
        assert!(
            insert("x", "ES256", "pending").is_err(),
            "an unknown status"
        );
        let rev = keys_rev(&conn);
        conn.execute(
            "UPDATE signing_keys SET status = 'active' WHERE kid = 'nope'",
            [],
        )
        .unwrap();
        conn.execute("DELETE FROM signing_keys WHERE kid = 'n2'", [])
            .unwrap();
        assert!(keys_rev(&conn) > rev, "update and delete triggers are back");
        let rev = keys_rev(&conn);
        conn.execute(
            "UPDATE signing_keys SET status = 'retiring' WHERE kid = 'cur'",
            [],
        )
        .unwrap();
        assert!(keys_rev(&conn) > rev);
    }

    #[test]
    fn groups_become_objects_and_rules_and_clients_name_them_by_id() {
        let mut conn = Connection::open_in_memory().unwrap();
        let upto = MIGRATIONS.iter().position(|m| *m == GROUPS).unwrap();
        at_version(&conn, upto);
        conn.execute_batch(
            "INSERT INTO users (id, username, username_key, password_hash, created_at, updated_at) VALUES
               ('sub-r', 'Robert', 'robert', 'x', 1, 1), ('sub-a', 'alice', 'alice', 'x', 1, 1);
             INSERT INTO user_groups (user_id, group_name) VALUES
               ('sub-r', 'family'), ('sub-a', 'family'), ('sub-a', 'admins');
             INSERT INTO rules (position, host, action, subject, created_at) VALUES
               (1, 'a.test', 'allow_user', 'ROBERT', 1),
               (2, 'b.test', 'allow_user', 'ghost', 1),
               (3, 'c.test', 'allow_group', 'admins', 1),
               (4, 'd.test', 'allow_group', 'nobody-yet', 1),
               (5, 'e.test', 'bypass', NULL, 1);
             INSERT INTO clients (client_id, name, secret_hash, redirect_uris, grant_types,                scopes, created_at, updated_at, allowed_groups) VALUES
               ('c1', 'c1', NULL, '[]', '[]', '', 1, 1, '[\"family\",\"staff\"]'),
               ('c2', 'c2', NULL, '[]', '[]', '', 1, 1, '[]');",
        )
        .unwrap();
        let rev = |c: &Connection, name: &str| -> i64 {
            c.query_row("SELECT rev FROM revisions WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .unwrap()
        };
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let groups: Vec<(i64, String)> = conn
            .prepare("SELECT id, name FROM groups ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let names: Vec<&str> = groups.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["admins", "family", "nobody-yet", "staff"]);
        let id = |name: &str| groups.iter().find(|(_, n)| n == name).unwrap().0;
        let members: Vec<(String, i64)> = conn
            .prepare("SELECT user_id, group_id FROM user_groups ORDER BY user_id, group_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let mut want = vec![
            ("sub-a".to_string(), id("admins")),
            ("sub-a".to_string(), id("family")),
            ("sub-r".to_string(), id("family")),
        ];
        want.sort();
        assert_eq!(members, want);
        let subjects: Vec<Option<String>> = conn
            .prepare("SELECT subject FROM rules ORDER BY position")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            subjects,
            [
                Some("sub-r".to_string()),
                Some("ghost".to_string()),
                Some(id("admins").to_string()),
                Some(id("nobody-yet").to_string()),
                None
            ]
        );
        let allowed: Vec<String> = conn
            .prepare("SELECT allowed_groups FROM clients ORDER BY client_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            allowed,
            [
                format!("[{},{}]", id("family"), id("staff")),
                "[]".to_string()
            ]
        );
        // Renaming or removing a group reloads every cache that resolved its name.
        let before: Vec<i64> = ["users", "rules", "clients"]
            .iter()
            .map(|n| rev(&conn, n))
            .collect();
        conn.execute("UPDATE groups SET name = 'kin' WHERE name = 'family'", [])
            .unwrap();
        conn.execute("DELETE FROM groups WHERE name IN ('admins', 'staff')", [])
            .unwrap();
        for (n, b) in ["users", "rules", "clients"].iter().zip(before) {
            assert_eq!(rev(&conn, n), b + 3, "{n}");
        }
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM user_groups", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 2, "a removed group's memberships go with it");
        // A removed group's id is never reused, not even the highest one's.
        conn.execute(
            "INSERT INTO groups (name, created_at) VALUES ('new', 1)",
            [],
        )
        .unwrap();
        let new: i64 = conn
            .query_row("SELECT id FROM groups WHERE name = 'new'", [], |r| r.get(0))
            .unwrap();
        assert!(new > id("staff"));
    }
}
