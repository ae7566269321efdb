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
];

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
