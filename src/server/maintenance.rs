//! The maintenance thread of a running server. Every `RELOAD_EVERY` it looks at the revisions
//! the database's triggers keep, and reloads what another process (the CLI) changed — signing
//! keys, API keys, rules, clients, revocations, settings — into the in-memory copies the workers
//! read; what fails to reload is retried each round and logged once. It also writes counted
//! API-key usage and queued audit events in batches (every `FLUSH_EVERY`), records the switch
//! to a rotated signing key when its time has come, and every `gc.interval` deletes expired
//! rows and retires keys whose time has come.
//!
//! It also watches that the database can be written: a write that failed because the file
//! cannot be written (disk full, read-only, corrupt) is recorded by the shared writer and makes
//! `/healthz` answer 503; this thread logs it once a minute while it lasts, and writes a probe
//! (every `PROBE_EVERY`, every round while writes fail) whose success clears it once no write
//! has failed for `store::WRITES_QUIET`. With
//! `backup.interval` set it writes, checks and prunes the scheduled backups (on this thread:
//! reloads wait while a backup runs).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::StopHandle;
use crate::app::App;
use crate::config::{Setting, Settings, TextSetting};
use crate::error::Error;
use crate::ops::Actor;
use crate::ops::keys::load_ring;
use crate::store::{Revision, SharedWriter, Store};
use crate::timefmt::now;

/// How often the server looks for changes made by another process (the CLI).
const RELOAD_EVERY: Duration = Duration::from_millis(250);
/// How often counted API-key usage is written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often a probe write tests the database while writes work.
const PROBE_EVERY: Duration = Duration::from_secs(10);
/// How often a lasting write failure is logged again.
const LOG_FAILURE_EVERY: Duration = Duration::from_secs(60);

/// The background thread: reloads keys and settings when another process changed them, records
/// the switch to a rotated signing key when its time has come, and periodically deletes expired
/// rows and retires keys whose time has come.
pub(super) fn spawn(
    app: Arc<App>,
    db_path: &Path,
    writer: SharedWriter,
    stop: StopHandle,
) -> Result<std::thread::JoinHandle<()>, Error> {
    let mut store = Store::open_file(db_path)?;
    // Usage counts, audit batches and garbage collection: as the workers' writes.
    store.write_through(writer);
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || {
            let mut seen = store.revisions().unwrap_or_default();
            let mut retrying: Vec<Revision> = Vec::new();
            let mut last_gc = std::time::Instant::now();
            let mut last_flush = std::time::Instant::now();
            let mut last_probe = std::time::Instant::now();
            let mut last_backup = std::time::Instant::now();
            let mut failure_logged = None;
            while !stop.is_stopping() {
                std::thread::sleep(RELOAD_EVERY);
                report_write_health(&store, &mut failure_logged);
                if store.write_failure().is_some() || last_probe.elapsed() >= PROBE_EVERY {
                    last_probe = std::time::Instant::now();
                    if let Err(e) = store.probe_write() {
                        log::debug!("probe write failed: {e}");
                    }
                }
                let backup_every = app.settings().duration(Setting::BackupInterval);
                if !backup_every.is_zero() && last_backup.elapsed() >= backup_every {
                    last_backup = std::time::Instant::now();
                    scheduled_backup(&app, &mut store);
                }
                if last_flush.elapsed() >= FLUSH_EVERY {
                    last_flush = std::time::Instant::now();
                    flush_usage(&app, &mut store);
                    flush_audit(&app, &mut store);
                }
                let gc_every = app.settings().duration(Setting::GcInterval);
                if last_gc.elapsed() >= gc_every {
                    last_gc = std::time::Instant::now();
                    gc(
                        &mut store,
                        app.settings().get(Setting::SessionIdleTtl),
                        app.settings().get(Setting::AuditRetentionDays),
                    );
                    app.revocations().prune(now());
                    // After an overflow, try again now that expired rows are gone.
                    if !app.revocations().is_complete()
                        && let Err(e) = load_revocations(&app, &store)
                    {
                        log::debug!("cannot read revocations, will retry: {e}");
                    }
                }
                // A rotated key's time has come: every worker already signs with it (the key
                // ring picks by time); record the switch so the database says so too. The
                // write bumps the keys revision, so the ring is reloaded below.
                if app.keys().next_due(now()) {
                    match crate::ops::keys::promote_due(&mut store, now()) {
                        Ok(n) if n > 0 => log::info!("{n} rotated signing keys now sign"),
                        Ok(_) => {}
                        Err(e) => log::error!("cannot record the signing-key switch: {e}"),
                    }
                }
                match store.revisions() {
                    Ok(now_revs) if now_revs != seen => {
                        // What failed to reload keeps its old revision, so the next round tries
                        // it again (quietly: the error was logged once).
                        let failed = reload(&app, &store, &seen, &now_revs, &retrying);
                        seen = now_revs
                            .into_iter()
                            .map(|(name, rev)| {
                                let old = seen.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
                                match old {
                                    Some(old) if failed.contains(&name) => (name, old),
                                    _ => (name, rev),
                                }
                            })
                            .collect();
                        retrying = failed;
                    }
                    Ok(_) => {}
                    Err(e) => log::error!("cannot read revisions: {e}"),
                }
            }
        })
        .map_err(|e| Error::io("cannot start the maintenance thread", e))
}

/// Logs a write failure when it starts, once a minute while it lasts, and when it ends.
fn report_write_health(store: &Store, logged: &mut Option<std::time::Instant>) {
    match (store.write_failure(), *logged) {
        (Some(why), None) => {
            log::error!(
                "the database cannot be written: {why}; /healthz answers 503 until a write works"
            );
            *logged = Some(std::time::Instant::now());
        }
        (Some(why), Some(at)) if at.elapsed() >= LOG_FAILURE_EVERY => {
            log::error!("the database still cannot be written: {why}");
            *logged = Some(std::time::Instant::now());
        }
        (None, Some(_)) => {
            log::info!("the database can be written again; /healthz answers 200");
            *logged = None;
        }
        _ => {}
    }
}

/// Writes one scheduled backup into `backup.dir`, checks it and prunes the old ones (all
/// audited with the actor `server`); a failure is logged.
fn scheduled_backup(app: &App, store: &mut Store) {
    let settings = app.settings();
    let dir = crate::ops::data::scheduled_backup_dir(
        &app.config.data_dir,
        settings.text(TextSetting::BackupDir),
    );
    let actor = Actor {
        name: "server".into(),
        address: String::new(),
    };
    match crate::ops::data::scheduled_backup(
        store,
        &actor,
        &dir,
        settings.count(Setting::BackupKeep),
    ) {
        Ok(file) => log::info!("scheduled backup written to {} and checked", file.display()),
        Err(e) => log::error!("scheduled backup into {} failed: {e}", dir.display()),
    }
}

fn changed(name: Revision, a: &[(Revision, i64)], b: &[(Revision, i64)]) -> bool {
    let get = |v: &[(Revision, i64)]| v.iter().find(|(n, _)| *n == name).map(|(_, r)| *r);
    get(a) != get(b)
}

/// Reloads what changed between two sets of revisions; returns the names that could not be
/// read. An error is logged once: not again while `retrying` still names it.
fn reload(
    app: &App,
    store: &Store,
    before: &[(Revision, i64)],
    after: &[(Revision, i64)],
    retrying: &[Revision],
) -> Vec<Revision> {
    let mut failed = Vec::new();
    let mut fail = |names: &[Revision], what: String| {
        if names.iter().all(|n| retrying.contains(n)) {
            log::debug!("{what}");
        } else {
            log::error!("{what}");
        }
        failed.extend_from_slice(names);
    };
    if changed(Revision::Keys, before, after) {
        match load_ring(store) {
            Ok(ring) => {
                log::info!(
                    "signing keys reloaded: {}",
                    ring.keys()
                        .iter()
                        .map(|k| format!("{} {} ({})", k.alg.as_str(), k.kid, k.state.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                app.set_keys(ring);
            }
            Err(e) => fail(
                &[Revision::Keys],
                format!("cannot reload signing keys, keeping the current ones: {e}"),
            ),
        }
    }
    if changed(Revision::ApiKeys, before, after) || changed(Revision::Users, before, after) {
        match crate::apikeys::KeyIndex::load(store) {
            Ok(index) => {
                log::info!("API keys reloaded: {} keys", index.len());
                app.set_api_keys(index);
            }
            // Also reloaded for `users`: both keep their old revision for the retry.
            Err(e) => fail(
                &[Revision::ApiKeys, Revision::Users],
                format!("cannot reload API keys, keeping the current ones: {e}"),
            ),
        }
    }
    if changed(Revision::Rules, before, after) {
        match crate::forward::rules::RuleSet::load(store) {
            Ok(rules) => {
                log::info!("access rules reloaded: {} rules", rules.rules().len());
                app.set_rules(rules);
            }
            Err(e) => fail(
                &[Revision::Rules],
                format!("cannot reload access rules, keeping the current ones: {e}"),
            ),
        }
    }
    if changed(Revision::Users, before, after) {
        app.forward_sessions().clear();
    }
    if changed(Revision::Clients, before, after) {
        match store.clients() {
            Ok(clients) => {
                log::info!("clients reloaded: {} clients", clients.len());
                app.set_clients(clients);
            }
            Err(e) => {
                // A stale copy would keep serving a client removed (or a redirect URI
                // withdrawn) meanwhile: without the index every request reads its client
                // from the database until a reload works.
                app.set_clients(Vec::new());
                fail(
                    &[Revision::Clients],
                    format!(
                        "cannot reload clients, reading them from the database per request \
                         until a reload works: {e}"
                    ),
                );
            }
        }
    }
    if changed(Revision::Revoked, before, after)
        && let Err(e) = load_revocations(app, store)
    {
        fail(
            &[Revision::Revoked],
            format!("cannot read revocations, will retry: {e}"),
        );
    }
    if changed(Revision::Settings, before, after) {
        match Settings::load(store) {
            Ok(s) => {
                log::info!("settings reloaded");
                app.set_settings(s);
            }
            Err(e) => fail(
                &[Revision::Settings],
                format!("cannot reload settings: {e}"),
            ),
        }
    }
    failed
}

/// Loads the revocation table into the in-memory list.
fn load_revocations(app: &App, store: &Store) -> Result<(), crate::store::StoreError> {
    let epoch = app.revocations().epoch();
    let revoked = store.revoked_jtis(now())?;
    app.revocations().load(revoked, epoch, now());
    log::debug!(
        "revocations loaded: {} held, complete: {}",
        app.revocations().len(),
        app.revocations().is_complete()
    );
    Ok(())
}

/// Writes counted API-key usage in one transaction; on failure the counts are kept for the next
/// attempt.
pub(super) fn flush_usage(app: &App, store: &mut Store) {
    let batch = app.usage().drain();
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.record_api_key_usage(&batch) {
        log_write_error(&format!("cannot write API-key usage, will retry: {e}"), &e);
        app.usage().restore(batch);
    }
}

/// Writes queued audit events in one transaction; on failure they wait for the next attempt.
pub(super) fn flush_audit(app: &App, store: &mut Store) {
    let events = app.audit().drain();
    if events.is_empty() {
        return;
    }
    if let Err(e) = store.append_audit(&events) {
        log_write_error(&format!("cannot write the audit log, will retry: {e}"), &e);
        app.audit().restore(events);
    }
}

/// Logs a failed write as an error, unless the database cannot be written at all: that is
/// logged once a minute by [`report_write_health`].
fn log_write_error(what: &str, e: &crate::store::StoreError) {
    if e.fault().is_some_and(crate::store::Fault::stops_writes) {
        log::debug!("{what}");
    } else {
        log::error!("{what}");
    }
}

fn gc(store: &mut Store, idle_ttl: i64, audit_days: i64) {
    let now = now();
    match store.gc_sessions(now, idle_ttl) {
        Ok(n) if n > 0 => log::debug!("deleted {n} expired sessions"),
        Ok(_) => {}
        Err(e) => log::error!("garbage collection: {e}"),
    }
    match store.gc_setup_links(now) {
        Ok(n) if n > 0 => log::debug!("deleted {n} expired or used setup links"),
        Ok(_) => {}
        Err(e) => log::error!("garbage collection: {e}"),
    }
    match store.gc_webauthn_challenges(now) {
        Ok(n) if n > 0 => log::debug!("deleted {n} expired WebAuthn challenges"),
        Ok(_) => {}
        Err(e) => log::error!("garbage collection: {e}"),
    }
    match store.prune_audit(now - audit_days * 86_400) {
        Ok(n) if n > 0 => log::debug!("pruned {n} audit events"),
        Ok(_) => {}
        Err(e) => log::error!("audit pruning: {e}"),
    }
    match store.gc_grants(now) {
        Ok(n) if n > 0 => log::debug!("deleted {n} expired codes, grants and tokens"),
        Ok(_) => {}
        Err(e) => log::error!("garbage collection: {e}"),
    }
    match store.gc_revoked(now) {
        Ok(n) if n > 0 => log::debug!("deleted {n} expired revocation records"),
        Ok(_) => {}
        Err(e) => log::error!("garbage collection: {e}"),
    }
    match crate::ops::keys::retire_due(store, now) {
        Ok(n) if n > 0 => log::info!("retired {n} signing keys"),
        Ok(_) => {}
        Err(e) => log::error!("key retirement: {e}"),
    }
}
