//! API-key operations: mint, rotate (the replacement keeps the old key's lifetime), revoke,
//! switch an owner's keys off and on, find, list and count use. A key is returned once, when
//! it is minted; latchkey keeps only its SHA-256 and a short public prefix.

use crate::apikeys::format;
use crate::crypto::{hex, random_bytes, sha256};
use crate::oauth::scope;
use crate::store::apikeys::{ApiKeyRow, NewApiKey};
use crate::store::{Store, StoreError};
use crate::timefmt::now;

use super::{Actor, OpError, audited, validate_name};

/// The longest lifetime of a key and the longest grace period of a rotated one: ten years.
pub const MAX_LIFETIME: i64 = 10 * 365 * 86_400;

/// The periods a rate limit may be counted over, in seconds: a second, minute, hour or day.
pub const RATE_WINDOWS: [i64; 4] = [1, 60, 3_600, 86_400];

/// The most requests a rate limit may allow per period.
pub const MAX_RATE: i64 = 1_000_000_000;

/// The most days of usage counts one look back.
pub const MAX_USAGE_DAYS: i64 = 3_650;

/// A key's lifetime or a rotation's grace period: 1 second to 10 years.
pub fn check_lifetime(secs: i64) -> Result<(), String> {
    if (1..=MAX_LIFETIME).contains(&secs) {
        Ok(())
    } else {
        Err("out of range (1 second to 10 years)".into())
    }
}

/// A rate limit: 1 to 1000000000 requests per second, minute, hour or day.
pub fn check_rate(count: i64, window: i64) -> Result<(), String> {
    if !RATE_WINDOWS.contains(&window) {
        return Err("the period must be a second, minute, hour or day".into());
    }
    if !(1..=MAX_RATE).contains(&count) {
        return Err(format!("the count must be between 1 and {MAX_RATE}"));
    }
    Ok(())
}

/// What a new key is for and may do.
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    /// What the key is for.
    pub name: String,
    /// The application owning the key; `None`: the name.
    pub owner: Option<String>,
    /// A user whose account the key depends on (disabling the user disables the key).
    pub user: Option<String>,
    /// Scopes, each entry a space-separated list.
    pub scopes: Vec<String>,
    /// Seconds from now until the key expires; `None`: never.
    pub expires_in: Option<i64>,
    /// (requests, per seconds).
    pub rate: Option<(i64, i64)>,
    /// Mint even though a working key of this name exists (names are how keys are revoked and
    /// rotated, so a second one is refused unless asked for).
    pub allow_duplicate: bool,
}

/// A minted key. `key` is the only copy of the key there will ever be.
pub struct Minted {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub key: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<i64>,
}

// The key never reaches debug output.
impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Whether a key works: `revoked`, `expired`, `retiring` (rotated out, working until its grace
/// period ends) or `active`.
pub fn status(k: &ApiKeyRow, now: i64) -> &'static str {
    if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else if k.replaced_by.is_some() {
        "retiring"
    } else {
        "active"
    }
}

/// Mints a key (audit `apikey_created`, target the name as given; never the key).
pub fn create(store: &mut Store, actor: &Actor, new: NewKey) -> Result<Minted, OpError> {
    let target = new.name.clone();
    audited(store, actor, "apikey_created", &target, |store| {
        validate_name("name", &new.name)?;
        let owner = new.owner.clone().unwrap_or_else(|| new.name.clone());
        validate_name("owner", &owner)?;
        let scopes = scope::parse(&new.scopes.join(" ")).ok_or_else(|| {
            OpError::Invalid(
                "a scope may only hold printable ASCII without spaces, quotes or backslashes"
                    .into(),
            )
        })?;
        if let Some(d) = new.expires_in {
            check_lifetime(d).map_err(|m| OpError::Invalid(format!("the expiry is {m}")))?;
        }
        if let Some((n, w)) = new.rate {
            check_rate(n, w).map_err(|m| OpError::Invalid(format!("rate limit: {m}")))?;
        }
        if !new.allow_duplicate && store.live_api_key_named(new.name.trim(), now())? {
            return Err(OpError::Conflict(format!(
                "a working key named {:?} exists: rotate it (apikey rotate), revoke it, or pass \
                 --allow-duplicate for a second key of that name",
                new.name.trim()
            )));
        }
        let user_id = match &new.user {
            Some(u) => Some(
                store
                    .user_by_name(u)?
                    .ok_or_else(|| OpError::Invalid(format!("no user named {u:?}")))?
                    .id,
            ),
            None => None,
        };
        let now = now();
        let key = format::generate()?;
        let id = new_id()?;
        let prefix = format::display_prefix(&key);
        let expires_at = new.expires_in.map(|d| now + d);
        let (name, owner) = (new.name.trim(), owner.trim());
        store.insert_api_key(
            &NewApiKey {
                id: &id,
                name,
                owner,
                user_id: user_id.as_deref(),
                prefix: &prefix,
                hash: &sha256(key.as_bytes()),
                scopes: &scopes,
                rate: new.rate,
                expires_at,
            },
            now,
        )?;
        Ok(Minted {
            id,
            name: name.to_string(),
            owner: owner.to_string(),
            key,
            prefix,
            scopes,
            expires_at,
        })
    })
}

/// What [`rotate`] did: the replacement (minted) and until when the old key works.
#[derive(Debug)]
pub struct Rotated {
    pub new: Minted,
    pub replaces: String,
    pub old_key_expires_at: i64,
}

/// Issues a replacement for a key, which keeps working for `grace` seconds (audit
/// `apikey_rotated`, target the key given). The replacement has the old key's name, owner,
/// user, scopes and rate limit, and the old key's lifetime length counted from now. A revoked
/// key is not rotated.
pub fn rotate(store: &mut Store, actor: &Actor, key: &str, grace: i64) -> Result<Rotated, OpError> {
    audited(store, actor, "apikey_rotated", key, |store| {
        check_lifetime(grace).map_err(|m| OpError::Invalid(format!("the grace period is {m}")))?;
        let old = find(store, key)?;
        if old.revoked_at.is_some() {
            return Err(OpError::Invalid(format!(
                "API key {} is revoked; create a new one",
                old.id
            )));
        }
        let now = now();
        let value = format::generate()?;
        let id = new_id()?;
        let prefix = format::display_prefix(&value);
        let expires_at = old.expires_at.map(|e| now + (e - old.created_at).max(1));
        store.rotate_api_key(
            &old.id,
            &NewApiKey {
                id: &id,
                name: &old.name,
                owner: &old.owner,
                user_id: old.user_id.as_deref(),
                prefix: &prefix,
                hash: &sha256(value.as_bytes()),
                scopes: &old.scopes,
                rate: old.rate,
                expires_at,
            },
            now + grace,
            now,
        )?;
        Ok(Rotated {
            new: Minted {
                id,
                name: old.name,
                owner: old.owner,
                key: value,
                prefix,
                scopes: old.scopes,
                expires_at,
            },
            replaces: old.id,
            old_key_expires_at: now + grace,
        })
    })
}

/// Revokes at once the key with this id, or every key of this name that still works (after
/// rotations there may be several). Audit `apikey_revoked`, target the key given. Returns the
/// ids revoked.
pub fn revoke(store: &mut Store, actor: &Actor, key: &str) -> Result<Vec<String>, OpError> {
    audited(store, actor, "apikey_revoked", key, |store| {
        let k = find(store, key)?;
        if k.id == key {
            store.revoke_api_key(&k.id, now()).map_err(|e| match e {
                StoreError::NotFound => {
                    OpError::Failed(format!("API key {} is already revoked", k.id))
                }
                other => OpError::Store(other),
            })?;
            return Ok(vec![k.id]);
        }
        // By name: after rotations several keys of one name may still work; all of them go.
        let ids = store.revoke_live_api_keys_named(key, now())?;
        if ids.is_empty() {
            return Err(OpError::Failed(format!(
                "no key named {key:?} still works: each is revoked or expired"
            )));
        }
        Ok(ids)
    })
}

/// Switches every key of an owner off, or on again (audit `apikey_owner_disabled` or
/// `apikey_owner_enabled`, target the owner).
pub fn set_owner_disabled(
    store: &mut Store,
    actor: &Actor,
    owner: &str,
    disabled: bool,
) -> Result<(), OpError> {
    let action = if disabled {
        "apikey_owner_disabled"
    } else {
        "apikey_owner_enabled"
    };
    audited(store, actor, action, owner, |store| {
        Ok(store.set_api_owner_disabled(owner, disabled, now())?)
    })
}

/// Requests per day (UTC) of a key over the last `days` days (1 to 3650): the key and
/// (day number since the epoch, count) rows.
pub fn usage(store: &Store, key: &str, days: i64) -> Result<(ApiKeyRow, Vec<(i64, i64)>), OpError> {
    let k = find(store, key)?;
    let since = now().div_euclid(86_400) - days.clamp(1, MAX_USAGE_DAYS) + 1;
    let rows = store.api_key_usage(&k.id, since)?;
    Ok((k, rows))
}

/// The key with this id, or else the newest key with this name.
pub fn find(store: &Store, key: &str) -> Result<ApiKeyRow, OpError> {
    store
        .api_key_by_id_or_name(key)?
        .ok_or_else(|| OpError::NotFound(format!("no API key with id or name {key:?}")))
}

/// The usernames of the users keys are tied to, by `sub`.
pub fn user_names(store: &Store) -> Result<std::collections::HashMap<String, String>, OpError> {
    Ok(store
        .users()?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect())
}

/// Every key, newest first.
pub fn list(store: &Store) -> Result<Vec<ApiKeyRow>, OpError> {
    Ok(store.api_keys()?)
}

fn new_id() -> Result<String, OpError> {
    Ok(format!("ak_{}", hex(&random_bytes::<8>()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_and_rates() {
        assert!(check_lifetime(1).is_ok());
        assert!(check_lifetime(MAX_LIFETIME).is_ok());
        assert!(check_lifetime(0).is_err());
        assert!(check_lifetime(MAX_LIFETIME + 1).is_err());
        assert!(check_rate(600, 60).is_ok());
        assert!(check_rate(0, 60).is_err());
        assert!(check_rate(MAX_RATE + 1, 1).is_err());
        assert!(check_rate(10, 7).is_err());
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        let m = Minted {
            id: "ak_1".into(),
            name: "ci".into(),
            owner: "ci".into(),
            key: "lk_s3cr3tvalue".into(),
            prefix: "lk_s3c".into(),
            scopes: Vec::new(),
            expires_at: None,
        };
        let shown = format!("{m:?}");
        assert!(
            shown.contains("ak_1") && !shown.contains("lk_s3cr3tvalue"),
            "{shown}"
        );
    }
}
