//! The revoked access tokens, in memory.
//!
//! Introspection, UserInfo and forward auth ask "is this `jti` revoked?" on every request. The
//! answer used to be a database read; here it is a hash lookup. The list stays exact:
//! - revocations this server makes (`POST /revoke`, a replayed code or refresh token) are added
//!   by the request that makes them, before it answers;
//! - revocations another process commits (the CLI's `user disable`, `user passwd`,
//!   `user remove`) bump the `revoked` revision, and the maintenance thread merges the table
//!   in when it sees that, within a quarter of a second.
//!
//! Revocations are only ever added or, once their token has expired, dropped; so a merge adds
//! what it reads and forgets only expired entries, and can never lose one added meanwhile.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// The revoked `jti`s with the expiry of their tokens.
#[derive(Default)]
pub struct Revocations {
    map: RwLock<HashMap<String, i64>>,
}

impl Revocations {
    /// True if the token `jti` is revoked.
    pub fn contains(&self, jti: &str) -> bool {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(jti)
    }

    /// Adds revocations `(jti, expires_at)`.
    pub fn add(&self, revoked: impl IntoIterator<Item = (String, i64)>) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.extend(revoked);
    }

    /// Adds the revocations read from the database and forgets those expired by `now`.
    pub fn merge(&self, revoked: Vec<(String, i64)>, now: i64) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, exp| *exp > now);
        map.extend(revoked);
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True if none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_was_added_meanwhile_and_drops_the_expired() {
        let r = Revocations::default();
        r.add([("old".to_string(), 10), ("live".to_string(), 100)]);
        // Added by a request after the maintenance thread read the table.
        r.add([("fresh".to_string(), 100)]);
        r.merge(
            vec![("live".to_string(), 100), ("cli".to_string(), 200)],
            50,
        );
        assert!(!r.contains("old"), "expired by now");
        for jti in ["live", "fresh", "cli"] {
            assert!(r.contains(jti), "{jti}");
        }
        assert_eq!(r.len(), 3);
        assert!(!r.contains("other"));
    }
}
