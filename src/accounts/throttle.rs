//! Login throttling: after a few free failures, each further failure locks the key (an
//! account, or a client address) for twice as long as the last, up to a ceiling. A locked key
//! is answered 429 without checking the password, so a password cannot be guessed at speed
//! (ASVS 4.0.3 2.2.1 caps guesses at 100 an hour; this allows far fewer), and a lockout ends by
//! itself, so an attacker cannot lock an owner out for long.
//!
//! # Bounded memory
//! A table holds at most [`MAX_ENTRIES`] keys, each stored as the first 16 bytes of its SHA-256
//! digest (so a 60,000-character username costs what a short one does). An entry is the
//! 16-byte key and a 24-byte count (40 bytes) plus one control byte of the hash table, and the
//! table never grows past 65,536 buckets: at most 65,536 × 41 bytes ≈ 2.7 MB per table,
//! 5.4 MB for the account and address tables together, plus ≤ 1.2 MB (24 bytes × 50,000) held
//! for a moment while a full table is pruned.
//!
//! # Eviction
//! When a new key finds the table full, one pass brings it down to three quarters of
//! [`MAX_ENTRIES`], so a pass (O(n)) runs at most once per `MAX_ENTRIES / 4` new keys: O(1)
//! amortised per failure, never O(n) per request. The pass drops, in this order:
//! 1. entries that are over: not locked, last failure more than [`FORGET_AFTER`] ago;
//! 2. then unlocked entries, fewest failures first, oldest last failure among equals;
//! 3. then locked entries, the locks that end soonest first.
//!
//! So a flood of new keys (each one failure) evicts only other one-failure entries: a key
//! with more failures, and above all a locked key, survives until the flood has made
//! `MAX_ENTRIES` entries that rank above it — for a lock, that many keys locked for longer,
//! each of which took more than the free failures.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use ring::digest::{SHA256, digest};

/// A failure count forgets itself this long after the last failure.
const FORGET_AFTER: i64 = 3600;
/// Most keys a table holds (see the module docs for what that costs).
pub const MAX_ENTRIES: usize = 50_000;

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: i64,
    locked_until: i64,
}

impl Entry {
    /// True when the entry no longer matters: not locked and its failures forgotten.
    fn is_over(&self, now: i64) -> bool {
        self.locked_until <= now && self.last_failure + FORGET_AFTER <= now
    }

    /// Eviction rank: lower goes first (unlocked before locked; then by failures and age, or
    /// by the end of the lock).
    fn rank(&self, now: i64) -> (u8, i64, i64) {
        if self.locked_until > now {
            (1, self.locked_until, 0)
        } else {
            (0, i64::from(self.failures), self.last_failure)
        }
    }
}

/// The stored form of a key: a fixed-size digest.
type Key = [u8; 16];

fn key_of(key: &str) -> Key {
    let d = digest(&SHA256, key.as_bytes());
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(d.as_ref()) {
        *o = *b;
    }
    out
}

/// Failure counters for one kind of key.
pub struct Throttle {
    free: u32,
    max_lock: i64,
    max_entries: usize,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Throttle {
    /// `free` failures pass without delay; then locks grow 1 s, 2 s, 4 s … up to `max_lock`.
    pub fn new(free: u32, max_lock: i64) -> Throttle {
        Throttle::with_capacity(free, max_lock, MAX_ENTRIES)
    }

    /// As [`Throttle::new`], holding at most `max_entries` keys (at least 4).
    pub fn with_capacity(free: u32, max_lock: i64, max_entries: usize) -> Throttle {
        Throttle {
            free,
            max_lock,
            max_entries: max_entries.max(4),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, if it is locked.
    pub fn locked(&self, key: &str, now: i64) -> Option<i64> {
        let key = key_of(key);
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(&key)
            .filter(|e| e.locked_until > now)
            .map(|e| e.locked_until - now)
    }

    /// Records a failure; returns the lock in seconds it caused, if any.
    pub fn fail(&self, key: &str, now: i64) -> Option<i64> {
        let key = key_of(key);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(&key) {
            let keep = self.max_entries - self.max_entries / 4;
            evict(&mut entries, keep, now);
        }
        let e = entries.entry(key).or_insert(Entry {
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
        let key = key_of(key);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    /// The number of keys held.
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Brings `entries` down to `keep` by the rule of the module docs.
fn evict(entries: &mut HashMap<Key, Entry>, keep: usize, now: i64) {
    entries.retain(|_, e| !e.is_over(now));
    let Some(excess) = entries.len().checked_sub(keep).filter(|n| *n > 0) else {
        return;
    };
    // The rank of the `excess`-th entry to go: everything below it goes, and entries of
    // exactly that rank until `excess` are gone.
    let mut ranks: Vec<(u8, i64, i64)> = entries.values().map(|e| e.rank(now)).collect();
    if excess > ranks.len() {
        return;
    }
    let cutoff = *ranks.select_nth_unstable(excess - 1).1;
    drop(ranks);
    let below = entries.values().filter(|e| e.rank(now) < cutoff).count();
    let mut at_cutoff = excess.saturating_sub(below);
    entries.retain(|_, e| {
        let r = e.rank(now);
        if r < cutoff {
            false
        } else if r == cutoff && at_cutoff > 0 {
            at_cutoff -= 1;
            false
        } else {
            true
        }
    });
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

    #[test]
    fn long_keys_cost_what_short_ones_do() {
        let t = Throttle::new(1, 60);
        let long = "x".repeat(60_000);
        t.fail(&long, 0);
        assert_eq!(t.fail(&long, 0), Some(1), "the same long key is one entry");
        assert_eq!(t.len(), 1);
        let entries = t.entries.lock().unwrap();
        assert_eq!(
            std::mem::size_of_val(entries.keys().next().unwrap()),
            16,
            "a key is stored as a fixed-size digest"
        );
    }

    #[test]
    fn an_entry_is_the_size_the_module_docs_state() {
        assert_eq!(std::mem::size_of::<(Key, Entry)>(), 40);
    }

    #[test]
    fn the_table_never_holds_more_than_its_cap() {
        let t = Throttle::with_capacity(5, 900, 100);
        for i in 0..10_000 {
            t.fail(&format!("flood{i}"), 1000);
            assert!(t.len() <= 100, "{} entries after {i}", t.len());
        }
    }

    #[test]
    fn a_locked_victim_survives_a_flood_of_new_keys() {
        let t = Throttle::with_capacity(5, 900, 100);
        // The victim: locked after its free failures, for 4 s at the time of the flood.
        for _ in 0..8 {
            t.fail("victim", 1000);
        }
        let lock = t.locked("victim", 1000).unwrap();
        assert_eq!(lock, 4);
        // A flood of 10,000 new keys (each one failure) within the lock.
        for i in 0..10_000 {
            t.fail(&format!("flood{i}"), 1001);
        }
        assert_eq!(t.locked("victim", 1001), Some(3), "the lock survived");
        // And the count did too: the next failure locks for twice as long.
        assert_eq!(t.fail("victim", 1004), Some(8));
    }

    #[test]
    fn an_unlocked_account_keeps_its_failures_through_a_flood() {
        let t = Throttle::with_capacity(5, 900, 100);
        for _ in 0..4 {
            t.fail("victim", 1000);
        }
        for i in 0..10_000 {
            t.fail(&format!("flood{i}"), 1000);
        }
        // Its fifth failure is still its last free one, the sixth locks.
        assert_eq!(t.fail("victim", 1000), None);
        assert_eq!(t.fail("victim", 1000), Some(1));
    }

    #[test]
    fn eviction_drops_what_is_over_first() {
        let t = Throttle::with_capacity(1, 900, 8);
        // Over: one failure long ago, no lock.
        for i in 0..4 {
            t.fail(&format!("old{i}"), 0);
        }
        // Locked: two failures each, now.
        for i in 0..4 {
            t.fail(&format!("locked{i}"), 5000);
            t.fail(&format!("locked{i}"), 5000);
        }
        assert_eq!(t.len(), 8);
        t.fail("new", 5000);
        assert_eq!(t.len(), 5, "the four that were over went, and only they");
        for i in 0..4 {
            assert!(t.locked(&format!("locked{i}"), 5000).is_some());
        }
    }

    #[test]
    fn a_table_full_of_locks_drops_the_locks_that_end_soonest() {
        let t = Throttle::with_capacity(0, 900, 8);
        // k{i}: i + 1 failures, locked for 2^i s.
        for i in 0..8 {
            for _ in 0..=i {
                t.fail(&format!("k{i}"), 5000);
            }
        }
        assert_eq!(t.len(), 8);
        t.fail("new", 5000);
        assert_eq!(t.len(), 7);
        assert!(t.locked("k0", 5000).is_none(), "the soonest lock went");
        assert!(t.locked("k1", 5000).is_none());
        for i in 2..8 {
            assert!(t.locked(&format!("k{i}"), 5000).is_some(), "k{i}");
        }
    }
}
