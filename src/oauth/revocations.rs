//! The revoked access tokens, in memory.
//!
//! Introspection, UserInfo and forward auth ask "is this `jti` revoked?" on every request. The
//! answer used to be a database read; here it is a hash lookup. The list stays exact:
//! - revocations this server makes (`POST /revoke`, a replayed code or refresh token) are added
//!   by the request that makes them, before it answers;
//! - revocations another process commits (the CLI's `user disable`, `user passwd`,
//!   `user remove`) bump the `revoked` revision, and the maintenance thread loads the table
//!   again when it sees that, within a quarter of a second.
//!
//! Revocations are only ever added or, once their token has expired, dropped; so a load adds
//! what it reads and forgets only expired entries, and can never lose one added meanwhile.
//!
//! Memory is bounded: a client may revoke every token it mints, and entries live as long as
//! their tokens. Past [`CAPACITY`] entries the list gives up — [`Revocations::contains`]
//! answers `None` and the caller asks the database — until a load from the database fits
//! again.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// Most revocations held (about 100 bytes each).
pub const CAPACITY: usize = 100_000;

/// The revoked `jti`s with the expiry of their tokens.
pub struct Revocations {
    inner: RwLock<Inner>,
    capacity: usize,
}

struct Inner {
    map: HashMap<String, i64>,
    /// False after an overflow: the map then holds only what was added since, and a miss
    /// proves nothing.
    complete: bool,
    /// Counts overflows, so that a load read from the database before one cannot declare the
    /// list complete after it.
    epoch: u64,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations::with_capacity(CAPACITY)
    }
}

impl Revocations {
    /// A list that holds at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Revocations {
        Revocations {
            inner: RwLock::new(Inner {
                map: HashMap::new(),
                complete: true,
                epoch: 0,
            }),
            capacity,
        }
    }

    /// `Some(revoked?)` while the list is complete; `None` after an overflow, when only the
    /// database can say.
    pub fn contains(&self, jti: &str) -> Option<bool> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if inner.map.contains_key(jti) {
            return Some(true);
        }
        inner.complete.then_some(false)
    }

    /// Adds revocations `(jti, expires_at)` this server just committed.
    pub fn add(&self, revoked: impl IntoIterator<Item = (String, i64)>) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.map.extend(revoked);
        self.check_size(&mut inner);
    }

    /// The current epoch: take it before reading the table for [`Revocations::load`].
    pub fn epoch(&self) -> u64 {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .epoch
    }

    /// Adds every unexpired revocation read from the database (after [`Revocations::epoch`]
    /// returned `epoch`) and forgets those expired by `now`. The list is complete again if no
    /// overflow happened since `epoch` and everything fits.
    pub fn load(&self, revoked: Vec<(String, i64)>, epoch: u64, now: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.map.retain(|_, exp| *exp > now);
        inner
            .map
            .extend(revoked.into_iter().filter(|(_, exp)| *exp > now));
        if self.check_size(&mut inner) && inner.epoch == epoch {
            inner.complete = true;
        }
    }

    /// Forgets the revocations of tokens expired by `now`.
    pub fn prune(&self, now: i64) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.map.retain(|_, exp| *exp > now);
    }

    /// True while every revocation is held.
    pub fn is_complete(&self) -> bool {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .complete
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// True if none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the map and marks the list incomplete when it has grown past the capacity;
    /// false then.
    fn check_size(&self, inner: &mut Inner) -> bool {
        if inner.map.len() <= self.capacity {
            return true;
        }
        if inner.complete {
            log::warn!(
                "more than {} revoked access tokens are live; checking revocations in the \
                 database until fewer are",
                self.capacity
            );
        }
        inner.map = HashMap::new();
        inner.complete = false;
        inner.epoch += 1;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(names: &[&str], exp: i64) -> Vec<(String, i64)> {
        names.iter().map(|n| (n.to_string(), exp)).collect()
    }

    #[test]
    fn load_keeps_what_was_added_meanwhile_and_drops_the_expired() {
        let r = Revocations::default();
        r.add([("old".to_string(), 10), ("live".to_string(), 100)]);
        let epoch = r.epoch();
        // Added by a request after the maintenance thread read the table.
        r.add([("fresh".to_string(), 100)]);
        r.load(
            vec![("live".to_string(), 100), ("cli".to_string(), 200)],
            epoch,
            50,
        );
        assert_eq!(r.contains("old"), Some(false), "expired by now");
        for jti in ["live", "fresh", "cli"] {
            assert_eq!(r.contains(jti), Some(true), "{jti}");
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.contains("other"), Some(false));
        r.prune(150);
        assert_eq!(r.contains("live"), Some(false));
        assert_eq!(r.contains("cli"), Some(true));
    }

    #[test]
    fn past_capacity_it_defers_to_the_database_until_a_load_fits() {
        let r = Revocations::with_capacity(3);
        r.add(rows(&["a", "b", "c"], 100));
        assert!(r.is_complete());
        r.add(rows(&["d"], 100));
        assert!(!r.is_complete());
        assert_eq!(
            r.len(),
            0,
            "the entries are dropped, not kept past the capacity"
        );
        // A miss proves nothing now; what is added since still answers.
        assert_eq!(r.contains("a"), None);
        r.add(rows(&["e"], 100));
        assert_eq!(r.contains("e"), Some(true));
        // A load that does not fit leaves it incomplete.
        let epoch = r.epoch();
        r.load(rows(&["a", "b", "c", "d"], 100), epoch, 0);
        assert!(!r.is_complete());
        // Once tokens expired and the table shrank, a load that fits makes it complete.
        let epoch = r.epoch();
        r.add(rows(&["f"], 300));
        r.load(rows(&["e"], 100), epoch, 200);
        assert!(r.is_complete());
        assert_eq!(r.contains("f"), Some(true), "added after the read, kept");
        assert_eq!(r.contains("e"), Some(false), "expired at 200");
        assert_eq!(r.contains("a"), Some(false));
    }

    #[test]
    fn a_load_read_before_an_overflow_cannot_complete_the_list() {
        let r = Revocations::with_capacity(2);
        r.add(rows(&["a", "b", "c"], 100));
        let epoch = r.epoch();
        // Between the read and the load, more revocations overflow the list again: "x" was
        // committed after the read and dropped by the overflow, so that read cannot vouch for
        // it.
        r.add(rows(&["x", "y", "z"], 100));
        r.load(Vec::new(), epoch, 0);
        assert!(!r.is_complete());
        assert_eq!(r.contains("x"), None);
    }
}
