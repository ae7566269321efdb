//! Audit events. The server queues them in memory and the maintenance thread writes them in
//! batches (every few seconds and at shutdown), so recording a sign-in or a token never adds a
//! database write to the request; the CLI writes its own events directly.

use std::sync::{Mutex, PoisonError};

use crate::store::audit::AuditEvent;

/// Events not yet written.
#[derive(Default)]
pub struct AuditQueue {
    pending: Mutex<Vec<AuditEvent>>,
}

/// Most events kept waiting; beyond it the oldest are dropped (and counted in the log) rather
/// than letting memory grow when the database is unwritable.
const MAX_PENDING: usize = 100_000;

impl AuditQueue {
    /// Queues an event.
    pub fn record(
        &self,
        now: i64,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        address: &str,
    ) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if p.len() >= MAX_PENDING {
            p.remove(0);
            log::warn!("audit queue full: dropped the oldest event");
        }
        p.push(AuditEvent {
            time: now,
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            address: address.to_string(),
        });
    }

    /// Takes every pending event.
    pub fn drain(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts events back after a failed write.
    pub fn restore(&self, mut events: Vec<AuditEvent>) {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        events.append(&mut p);
        *p = events;
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
