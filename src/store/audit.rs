//! The audit log: who did what to what, when, from where, and how it ended.

use rusqlite::{Transaction, params};

use super::{Store, StoreError};

/// One audit event, or `count` identical ones from one flush window starting at `time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub time: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub address: String,
    /// How many identical events this row stands for (at least 1).
    pub count: i64,
}

/// Appends one event inside a transaction of the store's, so it commits (or not) with the
/// change it records.
pub fn append_audit_tx(tx: &Transaction<'_>, e: &AuditEvent) -> Result<(), StoreError> {
    super::exec_tx(
        tx,
        "INSERT INTO audit_log (time, actor, action, target, outcome, address, count) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            e.time,
            e.actor,
            e.action,
            e.target,
            e.outcome,
            e.address,
            e.count.max(1)
        ],
    )?;
    Ok(())
}

impl Store {
    /// Appends events in one transaction.
    pub fn append_audit(&mut self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.with_tx(|tx| {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO audit_log (time, actor, action, target, outcome, address, count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in events {
                stmt.execute(params![
                    e.time,
                    e.actor,
                    e.action,
                    e.target,
                    e.outcome,
                    e.address,
                    e.count.max(1)
                ])?;
            }
            Ok(())
        })
    }

    /// Events at or after `since`, oldest first, at most `limit`.
    pub fn audit_since(&self, since: i64, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT time, actor, action, target, outcome, address, count FROM \
             (SELECT * FROM audit_log WHERE time >= ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        Ok(stmt
            .query_map(params![since, limit], |r| {
                Ok(AuditEvent {
                    time: r.get(0)?,
                    actor: r.get(1)?,
                    action: r.get(2)?,
                    target: r.get(3)?,
                    outcome: r.get(4)?,
                    address: r.get(5)?,
                    count: r.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()?)
    }

    /// Deletes events older than `before`; returns how many.
    pub fn prune_audit(&mut self, before: i64) -> Result<usize, StoreError> {
        Ok(self.exec("DELETE FROM audit_log WHERE time < ?1", [before])?)
    }
}

#[cfg(test)]
impl Store {
    /// Makes every later audit write fail (the table is gone), for tests of what happens then.
    pub(crate) fn break_audit_for_tests(&mut self) {
        self.conn.execute_batch("DROP TABLE audit_log").unwrap();
    }
}
