//! Forward-auth sessions cached in memory, so the decision on a proxied request is a hash-map
//! lookup. The cache is emptied whenever users change in the database (the CLI disabled
//! someone or changed a password) and at every logout, and entries end with their session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::accounts::mfa::Amr;
use crate::store::User;

/// Entries kept before the cache is simply emptied (a bound, not an expected size).
const MAX_ENTRIES: usize = 10_000;

/// The person behind a forward-auth session, and how they signed in.
#[derive(Debug)]
pub struct Signed {
    pub user: User,
    pub amr: Amr,
}

/// A cached session: who (shared, not copied per request) and when it ends.
type Entry = (Arc<Signed>, i64);

/// Session digest → entry.
#[derive(Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl SessionCache {
    /// The cached user of a live session.
    pub fn get(&self, hash: &[u8; 32], now: i64) -> Option<Arc<Signed>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(hash)
            .filter(|(_, exp)| *exp > now)
            .map(|(u, _)| Arc::clone(u))
    }

    /// Caches a session's user until `expires_at`.
    pub fn put(&self, hash: [u8; 32], user: Arc<Signed>, expires_at: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(hash, (user, expires_at));
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
