//! API keys for apps and scripts: the key format, an in-memory index of every key (rebuilt when
//! the database changes, so a revocation by the CLI reaches a running server within a second),
//! per-key rate limits, and usage counted in memory and written in batches. Checking a key is a
//! SHA-256 and a hash-map lookup; it never writes to the database.

pub mod format;
pub mod ratelimit;
pub mod usage;
pub mod verify;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::crypto::sha256;
use crate::store::{Store, StoreError};

/// What a running server knows about one key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub id: String,
    pub name: String,
    pub owner: String,
    pub scopes: Vec<String>,
    pub rate: Option<(i64, i64)>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked: bool,
    /// The owning application is switched off, or the owning user is disabled.
    pub owner_disabled: bool,
}

/// Every key by the digest of its value.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    by_hash: HashMap<[u8; 32], Arc<KeyEntry>>,
}

impl KeyIndex {
    /// Loads every key with its owner's state.
    pub fn load(store: &Store) -> Result<KeyIndex, StoreError> {
        let owners: HashSet<String> = store.disabled_api_owners()?.into_iter().collect();
        let users: HashSet<String> = store.disabled_user_ids()?.into_iter().collect();
        let mut by_hash = HashMap::new();
        for k in store.api_keys()? {
            let owner_disabled =
                owners.contains(&k.owner) || k.user_id.as_ref().is_some_and(|u| users.contains(u));
            by_hash.insert(
                k.hash,
                Arc::new(KeyEntry {
                    id: k.id,
                    name: k.name,
                    owner: k.owner,
                    scopes: k.scopes,
                    rate: k.rate,
                    created_at: k.created_at,
                    expires_at: k.expires_at,
                    revoked: k.revoked_at.is_some(),
                    owner_disabled,
                }),
            );
        }
        Ok(KeyIndex { by_hash })
    }

    /// This index with the key of digest `hash` marked revoked (unchanged if it is unknown):
    /// a revocation at `/revoke` counts at once in this process, before the reload that the
    /// database change triggers.
    pub fn with_revoked(&self, hash: &[u8; 32]) -> KeyIndex {
        let mut index = self.clone();
        if let Some(entry) = index.by_hash.get_mut(hash) {
            let mut revoked = KeyEntry::clone(entry);
            revoked.revoked = true;
            *entry = Arc::new(revoked);
        }
        index
    }

    /// Number of keys known.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// True if no key is known.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// Why a presented key does not work. Each has a fixed, safe description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Malformed(format::Malformed),
    Unknown,
    Expired,
    Revoked,
    OwnerDisabled,
}

impl Rejection {
    /// The `error_description` for this rejection.
    pub fn description(self) -> &'static str {
        match self {
            Rejection::Malformed(format::Malformed::Prefix) => "not a latchkey API key",
            Rejection::Malformed(format::Malformed::Shape) => "malformed API key",
            Rejection::Malformed(format::Malformed::Checksum) => "API key checksum does not match",
            Rejection::Unknown => "unknown API key",
            Rejection::Expired => "API key expired",
            Rejection::Revoked => "API key revoked",
            Rejection::OwnerDisabled => "the API key's owner is disabled",
        }
    }
}

/// Checks a presented key: form and checksum first (no lookup for a typo), then the index.
pub fn check(index: &KeyIndex, key: &str, now: i64) -> Result<Arc<KeyEntry>, Rejection> {
    format::check(key).map_err(Rejection::Malformed)?;
    let entry = index
        .by_hash
        .get(&sha256(key.as_bytes()))
        .ok_or(Rejection::Unknown)?;
    if entry.revoked {
        return Err(Rejection::Revoked);
    }
    if entry.expires_at.is_some_and(|e| e <= now) {
        return Err(Rejection::Expired);
    }
    if entry.owner_disabled {
        return Err(Rejection::OwnerDisabled);
    }
    Ok(Arc::clone(entry))
}
