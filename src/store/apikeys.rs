//! API-key rows, owners switched off, and daily usage counts.

use rusqlite::{Row, params};

use super::{Store, StoreError, exec_tx};

/// An API key as stored (the key itself is never stored; `hash` is its SHA-256).
#[derive(Clone, Debug)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub user_id: Option<String>,
    pub prefix: String,
    pub hash: [u8; 32],
    pub scopes: Vec<String>,
    pub rate: Option<(i64, i64)>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub replaced_by: Option<String>,
}

/// What `apikey create` stores.
pub struct NewApiKey<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub owner: &'a str,
    pub user_id: Option<&'a str>,
    pub prefix: &'a str,
    pub hash: &'a [u8; 32],
    pub scopes: &'a [String],
    pub rate: Option<(i64, i64)>,
    pub expires_at: Option<i64>,
}

const COLUMNS: &str = "id, name, owner, user_id, prefix, hash, scopes, rate_count, rate_period, \
                       created_at, expires_at, revoked_at, last_used_at, replaced_by";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    let hash: Vec<u8> = r.get(5)?;
    let scopes: String = r.get(6)?;
    let count: Option<i64> = r.get(7)?;
    let period: Option<i64> = r.get(8)?;
    Ok(ApiKeyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        owner: r.get(2)?,
        user_id: r.get(3)?,
        prefix: r.get(4)?,
        hash: <[u8; 32]>::try_from(hash.as_slice()).unwrap_or([0u8; 32]),
        scopes: scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        rate: count.zip(period),
        created_at: r.get(9)?,
        expires_at: r.get(10)?,
        revoked_at: r.get(11)?,
        last_used_at: r.get(12)?,
        replaced_by: r.get(13)?,
    })
}

fn insert(tx: &rusqlite::Connection, k: &NewApiKey<'_>, now: i64) -> Result<(), StoreError> {
    exec_tx(
        tx,
        "INSERT INTO api_keys (id, name, owner, user_id, prefix, hash, scopes, rate_count, \
         rate_period, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            k.id,
            k.name,
            k.owner,
            k.user_id,
            k.prefix,
            k.hash.as_slice(),
            k.scopes.join(" "),
            k.rate.map(|r| r.0),
            k.rate.map(|r| r.1),
            now,
            k.expires_at
        ],
    )?;
    Ok(())
}

impl Store {
    /// Stores a new key.
    pub fn insert_api_key(&mut self, k: &NewApiKey<'_>, now: i64) -> Result<(), StoreError> {
        insert(&self.conn, k, now)
    }

    /// Issues `new` as the replacement of `old_id`; the old key keeps working until
    /// `old_expires_at` (or its own earlier expiry). One transaction.
    pub fn rotate_api_key(
        &mut self,
        old_id: &str,
        new: &NewApiKey<'_>,
        old_expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            insert(tx, new, now)?;
            let n = exec_tx(
                tx,
                "UPDATE api_keys SET replaced_by = ?2, \
                 expires_at = MIN(COALESCE(expires_at, ?3), ?3) WHERE id = ?1",
                params![old_id, new.id, old_expires_at],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    /// Every key, newest first.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM api_keys ORDER BY created_at DESC, rowid DESC"
        ))?;
        Ok(stmt.query_map([], from_row)?.collect::<Result<_, _>>()?)
    }

    /// The key with this id, or else the newest key with this name.
    pub fn api_key_by_id_or_name(&self, key: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM api_keys WHERE id = ?1 OR name = ?1 \
             ORDER BY (id = ?1) DESC, revoked_at IS NULL DESC, created_at DESC, rowid DESC LIMIT 1"
        ))?;
        let mut rows = stmt.query_map([key], from_row)?;
        Ok(rows.next().transpose()?)
    }

    /// The key whose value has this SHA-256 digest, revoked or not.
    pub fn api_key_by_hash(&self, hash: &[u8; 32]) -> Result<Option<ApiKeyRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE hash = ?1"))?;
        let mut rows = stmt.query_map([hash.as_slice()], from_row)?;
        Ok(rows.next().transpose()?)
    }

    /// Revokes a key now. `NotFound` if there is no such key.
    pub fn revoke_api_key(&mut self, id: &str, now: i64) -> Result<(), StoreError> {
        let n = self.exec(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Revokes every key of this name that still works (not revoked, not expired) in one
    /// transaction, and returns the ids it revoked (none when no such key works).
    pub fn revoke_live_api_keys_named(
        &mut self,
        name: &str,
        now: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.with_tx(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE api_keys SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > ?2) RETURNING id",
            )?;
            let ids = stmt
                .query_map(params![name, now], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(ids)
        })
    }

    /// Whether a key of this name still works (not revoked, not expired).
    pub fn live_api_key_named(&self, name: &str, now: i64) -> Result<bool, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM api_keys WHERE name = ?1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > ?2) LIMIT 1",
        )?;
        Ok(stmt.exists(params![name, now])?)
    }

    /// Switches an owner's keys off (or on again).
    pub fn set_api_owner_disabled(
        &mut self,
        owner: &str,
        disabled: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        if disabled {
            self.exec(
                "INSERT OR IGNORE INTO api_key_owners_disabled (owner, disabled_at) VALUES (?1, ?2)",
                params![owner, now],
            )?;
        } else {
            self.exec(
                "DELETE FROM api_key_owners_disabled WHERE owner = ?1",
                [owner],
            )?;
        }
        Ok(())
    }

    /// Owners whose keys are switched off.
    pub fn disabled_api_owners(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT owner FROM api_key_owners_disabled ORDER BY owner")?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// Ids of users who are disabled (their keys do not work).
    pub fn disabled_user_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM users WHERE disabled = 1")?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?)
    }

    /// Adds counted uses and last-used times, in one transaction: `(key id, unix day, count,
    /// last used)`. Keys deleted in the meantime are skipped.
    pub fn record_api_key_usage(
        &mut self,
        batch: &[(String, i64, i64, i64)],
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.with_tx(|tx| {
            for (id, day, count, last) in batch {
                let exists = exec_tx(tx,
                    "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) WHERE id = ?1",
                    params![id, last],
                )?;
                if exists == 0 {
                    continue;
                }
                exec_tx(tx,
                    "INSERT INTO api_key_usage (key_id, day, count) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key_id, day) DO UPDATE SET count = count + excluded.count",
                    params![id, day, count],
                )?;
            }
            Ok(())
        })
    }

    /// Requests per day of a key, oldest first, from `since_day` on.
    pub fn api_key_usage(&self, id: &str, since_day: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT day, count FROM api_key_usage WHERE key_id = ?1 AND day >= ?2 ORDER BY day",
        )?;
        Ok(stmt
            .query_map(params![id, since_day], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    }
}
