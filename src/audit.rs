//! Audit events. The server queues them in memory and the maintenance thread writes them in
//! batches (every few seconds and at shutdown), so recording a sign-in or a token never adds a
//! database write to the request; the CLI writes its own events directly.
//!
//! Identical events of one batch (same actor, action, target, outcome and address) are
//! coalesced into one row with a count: a script asking for thousands of tokens a second costs
//! one row per batch, not thousands, and the queue's memory is bounded by the number of
//! distinct events rather than by the request rate.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

use crate::store::audit::AuditEvent;

/// Most distinct events kept waiting (and most kept for a retry after a failed write); beyond
/// it new ones are dropped and counted in the log, rather than letting memory grow when the
/// database is unwritable or the events are all different.
const MAX_PENDING: usize = 20_000;

/// Events not yet written.
#[derive(Default)]
pub struct AuditQueue {
    pending: Mutex<Pending>,
    hasher: RandomState,
}

#[derive(Default)]
struct Pending {
    /// Events of the current batch, in order of first occurrence.
    events: Vec<AuditEvent>,
    /// Hash of an event's fields → its position in `events`.
    index: HashMap<u64, usize>,
    /// Events of an earlier batch whose write failed, written first next time.
    retry: Vec<AuditEvent>,
    /// Events dropped since the last drain because the queue was full.
    dropped: u64,
}

impl AuditQueue {
    /// Queues an event, or counts one more of an identical event already queued.
    pub fn record(
        &self,
        now: i64,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        address: &str,
    ) {
        let key = self
            .hasher
            .hash_one((actor, action, target, outcome, address));
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&i) = p.index.get(&key)
            && let Some(e) = p.events.get_mut(i)
            && e.actor == actor
            && e.action == action
            && e.target == target
            && e.outcome == outcome
            && e.address == address
        {
            e.count += 1;
            return;
        }
        if p.events.len() >= MAX_PENDING {
            p.dropped += 1;
            return;
        }
        let i = p.events.len();
        p.events.push(AuditEvent {
            time: now,
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            address: address.to_string(),
            count: 1,
        });
        // On a (rare) hash collision the first event keeps the slot; the new one is its own row.
        p.index.entry(key).or_insert(i);
    }

    /// Takes every pending event: a failed batch first, then the current one.
    pub fn drain(&self) -> Vec<AuditEvent> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if p.dropped > 0 {
            log::warn!("audit queue full: dropped {} events", p.dropped);
            p.dropped = 0;
        }
        p.index = HashMap::new();
        let mut out = std::mem::take(&mut p.retry);
        out.append(&mut p.events);
        out
    }

    /// Keeps events whose write failed for the next attempt (the newest `MAX_PENDING`).
    pub fn restore(&self, mut events: Vec<AuditEvent>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let excess = events.len().saturating_sub(MAX_PENDING);
        if excess > 0 {
            log::warn!("audit queue full: dropped {excess} events");
            events.drain(..excess);
        }
        p.retry = events;
    }
}

/// The actor name for CLI events: `cli:<login name>` (from `$USER`, or `cli`).
pub fn cli_actor() -> String {
    match std::env::var("USER") {
        Ok(u)
            if !u.is_empty()
                && u.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            format!("cli:{u}")
        }
        _ => "cli".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_events_coalesce_and_order_is_kept() {
        let q = AuditQueue::default();
        for t in 0..1000 {
            q.record(
                100 + t,
                "client:a",
                "token_issued",
                "client_credentials",
                "ok",
                "10.0.0.1",
            );
        }
        q.record(200, "user:bob", "login", "", "failed", "10.0.0.2");
        q.record(
            300,
            "client:a",
            "token_issued",
            "client_credentials",
            "ok",
            "10.0.0.3",
        );
        q.record(400, "user:bob", "login", "", "failed", "10.0.0.2");
        let events = q.drain();
        let summary: Vec<_> = events
            .iter()
            .map(|e| (e.time, e.actor.as_str(), e.address.as_str(), e.count))
            .collect();
        assert_eq!(
            summary,
            [
                (100, "client:a", "10.0.0.1", 1000),
                (200, "user:bob", "10.0.0.2", 2),
                (300, "client:a", "10.0.0.3", 1),
            ]
        );
        assert!(q.drain().is_empty(), "drain empties the queue");
        // A new batch starts new rows.
        q.record(
            500,
            "client:a",
            "token_issued",
            "client_credentials",
            "ok",
            "10.0.0.1",
        );
        assert_eq!(q.drain()[0].count, 1);
    }

    #[test]
    fn full_queue_drops_new_events_and_retry_comes_first() {
        let q = AuditQueue::default();
        for i in 0..MAX_PENDING + 10 {
            q.record(1, &format!("user:{i}"), "login", "", "ok", "");
        }
        // Repeats of a queued event are still counted when the queue is full.
        q.record(2, "user:0", "login", "", "ok", "");
        let events = q.drain();
        assert_eq!(events.len(), MAX_PENDING);
        assert_eq!(events[0].count, 2);
        q.record(3, "user:new", "login", "", "ok", "");
        q.restore(events);
        let again = q.drain();
        assert_eq!(again.len(), MAX_PENDING + 1);
        assert_eq!(
            again[0].actor, "user:0",
            "the failed batch is written first"
        );
        assert_eq!(again[MAX_PENDING].actor, "user:new");
    }
}
