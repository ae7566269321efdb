//! Per-key token buckets, shared by every worker of the server: a key allowed N requests per
//! period holds at most N tokens and gains N per period; a request takes one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// What the bucket said.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The quota and its window (for `RateLimit-Policy`).
    pub quota: i64,
    pub window: i64,
    /// Whole tokens left after this request.
    pub remaining: i64,
    /// Seconds until the bucket is full again (`RateLimit`'s `t`).
    pub reset: i64,
    /// Seconds until the next request can pass (`Retry-After`; 0 while tokens are left).
    pub retry_after: i64,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Buckets by key id.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one token from `id`'s bucket of `quota` per `window` seconds.
    pub fn take(&self, id: &str, quota: i64, window: i64) -> Decision {
        self.take_at(id, quota, window, Instant::now())
    }

    /// [`Self::take`] for keys an outsider can make up (client addresses): at most
    /// `max_entries` buckets are kept; beyond that the full ones (idle long enough to have
    /// refilled) are forgotten, and if none is, every bucket (a flood from that many
    /// addresses is not held back by remembering them).
    pub fn take_bounded(&self, id: &str, quota: i64, window: i64, max_entries: usize) -> Decision {
        let now = Instant::now();
        {
            let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
            if buckets.len() >= max_entries && !buckets.contains_key(id) {
                let capacity = quota.max(1) as f64;
                let per_sec = capacity / window.max(1) as f64;
                buckets.retain(|_, b| {
                    b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * per_sec
                        < capacity
                });
                if buckets.len() >= max_entries {
                    buckets.clear();
                }
            }
        }
        self.take_at(id, quota, window, now)
    }

    fn take_at(&self, id: &str, quota: i64, window: i64, now: Instant) -> Decision {
        let capacity = quota.max(1) as f64;
        let per_sec = capacity / window.max(1) as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let b = buckets.entry(id.to_string()).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(capacity);
        b.last = now;
        let allowed = b.tokens >= 1.0;
        if allowed {
            b.tokens -= 1.0;
        }
        let to_next = (1.0 - b.tokens).max(0.0);
        let to_full = (capacity - b.tokens).max(0.0);
        Decision {
            allowed,
            quota,
            window,
            remaining: b.tokens.floor() as i64,
            reset: (to_full / per_sec).ceil() as i64,
            retry_after: (to_next / per_sec).ceil() as i64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_buckets_forget_the_idle_ones_first() {
        let rl = RateLimiter::default();
        for i in 0..4 {
            assert!(rl.take_bounded(&format!("a{i}"), 2, 60, 4).allowed);
        }
        // Full: nothing has refilled, so every bucket goes and the newcomer starts afresh.
        assert!(rl.take_bounded("b", 2, 60, 4).allowed);
        assert_eq!(rl.buckets.lock().unwrap().len(), 1);
        assert!(rl.take_bounded("b", 2, 60, 4).allowed);
        assert!(
            !rl.take_bounded("b", 2, 60, 4).allowed,
            "its own quota still holds"
        );
    }

    #[test]
    fn allows_quota_then_refuses_then_refills() {
        let rl = RateLimiter::default();
        let t0 = Instant::now();
        for i in 0..3 {
            let d = rl.take_at("k", 3, 60, t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 2 - i);
            // The next request can pass at once while a whole token is left.
            assert_eq!(d.retry_after, if d.remaining > 0 { 0 } else { 20 });
            assert_eq!(d.reset, 20 * (i + 1));
        }
        let d = rl.take_at("k", 3, 60, t0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 20, "one token every 20 s");
        assert_eq!(d.reset, 60, "full again after the window");
        assert!(
            rl.take_at("other", 3, 60, t0).allowed,
            "buckets are per key"
        );
        let d = rl.take_at("k", 3, 60, t0 + Duration::from_secs(21));
        assert!(d.allowed);
    }
}
