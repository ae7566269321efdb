//! Audit events, in two kinds by how often they happen and what losing one would cost.
//!
//! - *Security events* are written at once, through the request's store (in the server, the
//!   shared writer), before the answer leaves ([`AuditQueue::write`]): a crash or `kill -9`
//!   right after the answer cannot lose them. They are the rare ones an investigation needs:
//!   sign-ins that succeed or fail (`login` `ok`/`failed`), the failure that starts a lockout
//!   (`lockout`), logouts (`logout`), consents (`consent_granted`, `consent_denied`),
//!   revocations at `/revoke` (`access_token_revoked`, `grant_revoked`, `apikey_revoked`) and a
//!   replayed refresh token or code that revokes its grant (`refresh_token_reused`,
//!   `authorization_code_reused`, in the transaction that revokes). Administrative
//!   changes are written by the operations layer as they are made (`ops::audited`). A write
//!   that fails is logged and the event queued for the next batch instead.
//! - *High-rate events* are queued in memory ([`AuditQueue::record`]) and the maintenance
//!   thread writes them in batches (every two seconds and at shutdown), so they never add a
//!   database write to the request; a crash may lose the last two seconds of them. They are
//!   tokens issued (`token_issued`) and sign-in attempts refused while an account or address
//!   is locked (`login` `locked`: they cost an attacker nothing, so a write each would let a
//!   flood of them occupy the writer). Introspection and API-key use are not audited: they
//!   are counted (`last_used_at`, usage counts), in batches too.
//!
//! Identical queued events of one batch (same actor, action, target, outcome and address) are
//! coalesced into one row with a count: a script asking for thousands of tokens a second costs
//! one row per batch, not thousands, and the queue's memory is bounded by the number of
//! distinct events rather than by the request rate.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

use crate::store::Store;
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

    /// Writes a security event now through `store` (see the module documentation). When the
    /// write fails the event is logged and queued, so the next batch retries it.
    #[allow(
        clippy::too_many_arguments,
        reason = "the event's fields, as for record"
    )]
    pub fn write(
        &self,
        store: &mut Store,
        now: i64,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        address: &str,
    ) {
        let event = AuditEvent {
            time: now,
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            address: address.to_string(),
            count: 1,
        };
        if let Err(e) = store.append_audit(std::slice::from_ref(&event)) {
            log::error!("cannot write the audit log ({action}), queued for a retry: {e}");
            self.record(now, actor, action, target, outcome, address);
        }
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
    fn a_security_event_is_in_the_store_at_once_and_queued_when_the_write_fails() {
        let q = AuditQueue::default();
        let mut store = Store::open_in_memory().unwrap();
        q.write(&mut store, 7, "user:bob", "logout", "bob", "ok", "10.0.0.2");
        let stored = store.audit_since(0, 10).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!((stored[0].action.as_str(), stored[0].time), ("logout", 7));
        assert!(q.drain().is_empty(), "nothing was left for the batch");
        // A store that cannot take it: the event waits in the queue instead of being lost.
        store.break_audit_for_tests();
        q.write(&mut store, 8, "user:bob", "login", "bob", "ok", "10.0.0.2");
        let queued = q.drain();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].time, 8);
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
