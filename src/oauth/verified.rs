//! Access tokens whose signature this process has already checked.
//!
//! Verifying an ES256 signature costs about 70 µs of CPU, roughly seven times everything else
//! an introspection does, and a resource server asks about the same token again and again
//! during its ten-minute life. So the claims of a token that verified are kept here, keyed by
//! the SHA-256 of the whole token: a hit is only ever the exact bytes that verified before.
//!
//! What the cache does not decide: a hit is still checked against the current key ring (a
//! removed key withdraws its tokens at once), against `exp`, and — by the caller, on every
//! request — against the revocation list and the client's existence, both read from the
//! server's in-memory copies (the database only when the revocation list overflowed). The
//! cache is bounded: when it is full, expired entries go, and if that frees nothing it starts
//! over empty (a miss only costs a verification).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::oauth::access_token::Claims;

/// Most tokens remembered (about 0.5 KiB each).
const CAPACITY: usize = 8192;

/// A verified token's claims and the key that signed it.
pub struct Verified {
    pub claims: Claims,
    pub kid: String,
}

impl std::ops::Deref for Verified {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.claims
    }
}

/// The cache; shared by all workers.
#[derive(Default)]
pub struct VerifiedTokens {
    map: Mutex<HashMap<[u8; 32], Arc<Verified>>>,
}

impl VerifiedTokens {
    /// The entry for this token digest, if it is there and not expired at `now`.
    pub fn get(&self, digest: &[u8; 32], now: i64) -> Option<Arc<Verified>> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(digest)
            .filter(|v| v.claims.exp > now)
            .map(Arc::clone)
    }

    /// Remembers a token that verified.
    pub fn insert(&self, digest: [u8; 32], verified: Arc<Verified>, now: i64) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= CAPACITY {
            map.retain(|_, v| v.claims.exp > now);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(digest, verified);
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.map
            .lock()
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

    fn entry(exp: i64) -> Arc<Verified> {
        Arc::new(Verified {
            claims: Claims {
                iss: "https://i".into(),
                sub: "s".into(),
                aud: serde_json::Value::String("https://i".into()),
                client_id: "c".into(),
                scope: None,
                iat: 0,
                exp,
                jti: "j".into(),
                auth_time: None,
            },
            kid: "k".into(),
        })
    }

    #[test]
    fn hits_only_unexpired_entries() {
        let cache = VerifiedTokens::default();
        cache.insert([1; 32], entry(100), 0);
        assert!(cache.get(&[1; 32], 99).is_some());
        assert!(cache.get(&[1; 32], 100).is_none(), "expired at exp");
        assert!(cache.get(&[2; 32], 0).is_none());
    }

    #[test]
    fn stays_bounded() {
        let cache = VerifiedTokens::default();
        for i in 0..CAPACITY {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            // Half of them are expired by the time the cache fills.
            cache.insert(d, entry(if i % 2 == 0 { 10 } else { 1000 }), 0);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.insert([0xff; 32], entry(1000), 50);
        assert_eq!(cache.len(), CAPACITY / 2 + 1, "expired entries went first");
        for i in 0..CAPACITY {
            let mut d = [0xee; 32];
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.insert(d, entry(1000), 50);
        }
        assert!(cache.len() <= CAPACITY);
    }
}
