//! Usage counted in memory: requests per key and UTC day, and the last time each key was used.
//! The server writes the counts in batches (every few seconds and at shutdown), so checking a
//! key never writes to the database.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Counts not yet written.
#[derive(Default)]
pub struct Usage {
    pending: Mutex<HashMap<(String, i64), (i64, i64)>>,
}

impl Usage {
    /// Counts one use of key `id` at `now`.
    pub fn record(&self, id: &str, now: i64) {
        let day = now.div_euclid(86_400);
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let e = p.entry((id.to_string(), day)).or_insert((0, now));
        e.0 += 1;
        e.1 = e.1.max(now);
    }

    /// Takes every pending count: `(key id, day, count, last used)`.
    pub fn drain(&self) -> Vec<(String, i64, i64, i64)> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.drain()
            .map(|((id, day), (n, last))| (id, day, n, last))
            .collect()
    }

    /// Puts counts back after a failed write, so they are not lost.
    pub fn restore(&self, batch: Vec<(String, i64, i64, i64)>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for (id, day, n, last) in batch {
            let e = p.entry((id, day)).or_insert((0, last));
            e.0 += n;
            e.1 = e.1.max(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_and_day() {
        let u = Usage::default();
        u.record("a", 100);
        u.record("a", 200);
        u.record("a", 86_400 + 5);
        u.record("b", 300);
        let mut batch = u.drain();
        batch.sort();
        assert_eq!(
            batch,
            vec![
                ("a".into(), 0, 2, 200),
                ("a".into(), 1, 1, 86_405),
                ("b".into(), 0, 1, 300)
            ]
        );
        assert!(u.drain().is_empty());
        u.restore(batch);
        assert_eq!(u.drain().len(), 3);
    }
}
