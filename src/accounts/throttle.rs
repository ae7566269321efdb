//! Login throttling: after a few free failures, each further failure locks the key (an
//! account, or a client address) for twice as long as the last, up to a ceiling. A locked key
//! is answered 429 without checking the password, so a password cannot be guessed at speed
//! (ASVS 4.0.3 2.2.1 caps guesses at 100 an hour; this allows far fewer), and a lockout ends by
//! itself, so an attacker cannot lock an owner out for long.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// A failure count forgets itself this long after the last failure.
const FORGET_AFTER: i64 = 3600;
/// Entries kept before expired ones are pruned.
const PRUNE_AT: usize = 10_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: i64,
    locked_until: i64,
}

/// Failure counters for one kind of key.
pub struct Throttle {
    free: u32,
    max_lock: i64,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Throttle {
    /// `free` failures pass without delay; then locks grow 1 s, 2 s, 4 s … up to `max_lock`.
    pub fn new(free: u32, max_lock: i64) -> Throttle {
        Throttle {
            free,
            max_lock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, if it is locked.
    pub fn locked(&self, key: &str, now: i64) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|e| e.locked_until > now)
            .map(|e| e.locked_until - now)
    }

    /// Records a failure; returns the lock in seconds it caused, if any.
    pub fn fail(&self, key: &str, now: i64) -> Option<i64> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= PRUNE_AT {
            entries.retain(|_, e| e.locked_until > now || e.last_failure + FORGET_AFTER > now);
        }
        let e = entries.entry(key.to_string()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: 0,
        });
        if e.last_failure + FORGET_AFTER <= now {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures > self.free {
            let exp = (e.failures - self.free - 1).min(30);
            let lock = (1i64 << exp).min(self.max_lock);
            e.locked_until = now + lock;
            Some(lock)
        } else {
            None
        }
    }

    /// Forgets a key's failures (after a successful login).
    pub fn reset(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_free_failures_and_doubles() {
        let t = Throttle::new(3, 60);
        for _ in 0..3 {
            assert_eq!(t.fail("a", 100), None);
        }
        assert_eq!(t.locked("a", 100), None);
        assert_eq!(t.fail("a", 100), Some(1));
        assert_eq!(t.locked("a", 100), Some(1));
        assert_eq!(t.locked("a", 101), None);
        assert_eq!(t.fail("a", 101), Some(2));
        assert_eq!(t.fail("a", 103), Some(4));
        assert_eq!(t.locked("b", 103), None, "keys are independent");
        for _ in 0..20 {
            t.fail("a", 200);
        }
        assert_eq!(t.locked("a", 200), Some(60), "capped");
        t.reset("a");
        assert_eq!(t.locked("a", 200), None);
    }

    #[test]
    fn failures_are_forgotten_after_an_hour() {
        let t = Throttle::new(1, 60);
        t.fail("a", 0);
        assert_eq!(t.fail("a", FORGET_AFTER + 1), None);
    }
}
