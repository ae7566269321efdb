//! `latchkey serve`: open the database (creating it, and the first signing keys, on first
//! start), bind, announce, serve until SIGTERM or SIGINT, checkpoint, exit 0.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::app::{App, Worker};
use crate::config::{Config, Setting, Settings, default_workers, validate_issuer};
use crate::error::Error;
use crate::http::conn::Limits;
use crate::http::router;
use crate::http::tls::Tls;
use crate::ops::keys::{ensure_keys, load_ring};
use crate::server::{Server, ServerConfig, StopHandle};
use crate::store::{Checkpointer, Revision, SharedWriter, Store};
use crate::timefmt::now;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port and prints it)
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The issuer URL clients see, e.g. https://auth.home.example.org [default: http://<listen>]
    #[arg(long, env = "LATCHKEY_ISSUER")]
    issuer: Option<String>,
    /// Requests executed at once, each worker with its own database connection [default: 2 per core]
    #[arg(long, env = "LATCHKEY_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    /// Domain of the forward-auth session cookie, so one sign-in covers every protected
    /// subdomain (e.g. home.example.org)
    #[arg(long, env = "LATCHKEY_COOKIE_DOMAIN", value_name = "DOMAIN")]
    cookie_domain: Option<String>,
    /// An address range whose X-Forwarded-*/X-Original-* headers are believed (repeatable)
    /// [default: 127.0.0.0/8 and ::1]
    #[arg(long = "trusted-proxy", env = "LATCHKEY_TRUSTED_PROXIES", value_delimiter = ',',
          value_name = "CIDR", value_parser = crate::http::client_ip::Cidr::parse)]
    trusted_proxies: Vec<crate::http::client_ip::Cidr>,
    /// Serve Prometheus metrics at /metrics on this separate address (off by default; keep it
    /// on loopback or a private network)
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Serve HTTPS with this PEM certificate chain (reloaded on SIGHUP)
    #[arg(long, env = "LATCHKEY_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "LATCHKEY_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Log level: error, warn, info, debug, trace
    #[arg(long, env = "LATCHKEY_LOG", default_value = "info")]
    log_level: String,
    /// Log line format
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// How often the server looks for changes made by another process (the CLI).
const RELOAD_EVERY: Duration = Duration::from_millis(250);
/// How often counted API-key usage is written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

pub fn run(data_dir: PathBuf, args: ServeArgs) -> Result<(), Error> {
    crate::logger::init(Some(&args.log_level), args.log_format == "json");
    let mut store = Store::open_data_dir(&data_dir)?;
    let db_path = store
        .path()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| data_dir.join(crate::store::DB_FILE));
    for kid in ensure_keys(&mut store, now())? {
        log::info!("generated signing key {kid}");
    }
    crate::ops::keys::promote_due(&mut store, now())?;
    let settings = Settings::load(&store)?;
    let keys = load_ring(&store)?;

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(Arc::new(Tls::new(c, k)?)),
        (None, None) => None,
        _ => return Err(Error::Usage("--tls-cert and --tls-key go together".into())),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = crate::server::bind(args.listen)
        .map_err(|e| Error::io(format!("cannot listen on {}", args.listen), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the bound address", e))?;
    let (issuer, warning) = match &args.issuer {
        Some(i) => validate_issuer(i)?,
        None => validate_issuer(&format!("{scheme}://{bound}"))?,
    };
    if let Some(w) = warning {
        log::warn!("{w}");
    }
    if bound.ip().is_unspecified() && args.issuer.is_none() {
        log::warn!(
            "listening on all interfaces with the default issuer {issuer}: set --issuer to the URL clients use"
        );
    }
    let workers = args
        .workers
        .map(usize::from)
        .unwrap_or_else(default_workers);
    let cookie_domain = match args.cookie_domain.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(d) => {
            let d = d.trim_start_matches('.').to_ascii_lowercase();
            if d.is_empty()
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(Error::Usage(format!(
                    "--cookie-domain {d:?} is not a domain name"
                )));
            }
            let host = issuer
                .split("://")
                .nth(1)
                .and_then(|r| r.split(['/', ':']).next())
                .unwrap_or("");
            if host != d && !host.ends_with(&format!(".{d}")) {
                log::warn!(
                    "the issuer host {host} is not inside --cookie-domain {d}: browsers will refuse the forward-auth cookie"
                );
            }
            Some(d)
        }
    };
    let trusted_proxies = if args.trusted_proxies.is_empty() {
        crate::http::client_ip::default_trusted()
    } else {
        args.trusted_proxies.clone()
    };
    let config = Config {
        data_dir: data_dir.clone(),
        listen: bound,
        issuer: issuer.clone(),
        workers,
        cookie_domain,
        trusted_proxies,
    };
    let csrf_key = store.secret("csrf_key", || {
        crate::crypto::random_bytes::<32>()
            .map(|b| b.to_vec())
            .unwrap_or_default()
    })?;
    if csrf_key.len() != 32 {
        return Err(Error::Crypto("cannot create the CSRF key"));
    }
    let app = Arc::new(App::new(config, keys, settings.clone(), csrf_key));
    app.set_api_keys(crate::apikeys::KeyIndex::load(&store)?);
    app.set_rules(crate::forward::rules::RuleSet::load(&store)?);
    app.set_clients(store.clients()?);
    let epoch = app.revocations().epoch();
    app.revocations()
        .load(store.revoked_jtis(now())?, epoch, now());

    let mut pool = Vec::with_capacity(workers);
    // Token and session writes: crash-safe, not power-cut-safe (README, "Durability"), all
    // through one connection.
    let writer = SharedWriter::open(&db_path)?;
    let checkpointer = Checkpointer::start(&db_path, &writer)?;
    for _ in 0..workers {
        let mut store = Store::open_file(&db_path)?;
        store.write_through(writer.clone());
        pool.push(Worker {
            app: Arc::clone(&app),
            store,
        });
    }
    let server_config = ServerConfig {
        limits: Limits {
            idle_timeout: settings.duration(Setting::HttpIdleTimeout),
            header_timeout: settings.duration(Setting::HttpHeaderTimeout),
            body_timeout: settings.duration(Setting::HttpBodyTimeout),
            ..Limits::default()
        },
        max_connections: settings.count(Setting::HttpMaxConnections),
        max_connections_per_address: settings.count(Setting::HttpMaxConnectionsPerAddress),
        // A trusted proxy carries many clients, which cannot be told apart at accept: only the
        // global cap holds it.
        uncapped: app.config.trusted_proxies.clone(),
        tls: tls.clone(),
    };
    // Password sign-ins wait for an argon2 hash: they get workers of their own, two per
    // hashing thread (one hashing, one ready with the next), so a flood of them cannot take the
    // workers every other request needs.
    let mut sign_in = Vec::new();
    for _ in 0..crate::accounts::password::hashing_threads() * 2 {
        let mut store = Store::open_file(&db_path)?;
        store.write_through(writer.clone());
        sign_in.push(Worker {
            app: Arc::clone(&app),
            store,
        });
    }
    let server = Server::new(listener, pool, Arc::new(router::route), server_config)
        .map_err(|e| Error::io("cannot start the server", e))?
        .with_side_pool(sign_in, router::is_password_sign_in);
    crate::metrics::METRICS.watch_connections(server.stats());
    let (account_throttle, address_throttle) = app.throttle_handles();
    crate::metrics::METRICS.watch_login_throttles(account_throttle, address_throttle);
    let stop = server.stop_handle();
    watch_signals(stop.clone(), tls.clone())?;
    let maintenance = spawn_maintenance(Arc::clone(&app), &db_path, writer, stop.clone())?;

    // Before the announcement, so that whoever waits for it can scrape at once.
    let metrics = match args.metrics_listen {
        Some(addr) => Some(spawn_metrics(addr)?),
        None => None,
    };
    log::info!("issuer {issuer}");
    log::info!("database {}", db_path.display());
    log::info!("{workers} workers");
    log::info!("listening on {scheme}://{bound}");
    // The machine-readable announcement scripts and tests wait for.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {scheme}://{bound}");
    let _ = out.flush();
    drop(out);

    let left = server.run();
    if let Some((handle, thread)) = metrics {
        handle.stop();
        let _ = thread.join();
    }
    if left > 0 {
        log::warn!("{left} connections still open after the drain period; closing them");
    }
    let _ = maintenance.join();
    flush_usage(&app, &mut store);
    flush_audit(&app, &mut store);
    checkpointer.stop();
    store.checkpoint()?;
    log::info!("stopped");
    Ok(())
}

/// Starts the metrics listener: `GET /metrics` only, one worker, on its own thread.
fn spawn_metrics(addr: SocketAddr) -> Result<(StopHandle, std::thread::JoinHandle<usize>), Error> {
    use crate::http::{Method, Req, Resp};
    let listener = crate::server::bind(addr)
        .map_err(|e| Error::io(format!("cannot listen on {addr} for metrics"), e))?;
    let handler = |_: &mut (), req: &Req| -> Resp {
        if req.path != "/metrics" {
            return Resp::json_error(404, "not_found", "only /metrics is served here");
        }
        if !matches!(req.method, Method::Get | Method::Head) {
            return Resp::json_error(405, "method_not_allowed", "use GET")
                .with("Allow", "GET, HEAD");
        }
        Resp {
            status: 200,
            headers: vec![
                (
                    "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8".into(),
                ),
                ("Cache-Control", "no-store".into()),
            ],
            body: crate::metrics::METRICS.render().into_bytes(),
            close: false,
        }
    };
    let server = Server::new(
        listener,
        vec![()],
        Arc::new(handler),
        ServerConfig::default(),
    )
    .map_err(|e| Error::io("cannot start the metrics listener", e))?;
    let bound = server.local_addr();
    let handle = server.stop_handle();
    let thread = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || server.run())
        .map_err(|e| Error::io("cannot start the metrics thread", e))?;
    log::info!("metrics on http://{bound}/metrics");
    Ok((handle, thread))
}

/// Stops the server on SIGTERM or SIGINT.
fn watch_signals(stop: StopHandle, tls: Option<Arc<Tls>>) -> Result<(), Error> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| Error::io("cannot install signal handlers", e))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    // SIGHUP: read the TLS certificate and key again (after a renewal).
                    match &tls {
                        Some(t) => match t.reload() {
                            Ok(()) => log::info!("SIGHUP: TLS certificate reloaded"),
                            Err(e) => log::error!("SIGHUP: keeping the current certificate: {e}"),
                        },
                        None => log::info!("SIGHUP: nothing to reload (no TLS)"),
                    }
                    continue;
                }
                log::info!("signal {sig}: stopping; finishing requests in flight");
                stop.stop();
                break;
            }
        })
        .map_err(|e| Error::io("cannot start the signal thread", e))?;
    Ok(())
}

/// The background thread: reloads keys and settings when another process changed them, records
/// the switch to a rotated signing key when its time has come, and periodically deletes expired
/// rows and retires keys whose time has come.
fn spawn_maintenance(
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
            while !stop.is_stopping() {
                std::thread::sleep(RELOAD_EVERY);
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
fn flush_usage(app: &App, store: &mut Store) {
    let batch = app.usage().drain();
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.record_api_key_usage(&batch) {
        log::error!("cannot write API-key usage, will retry: {e}");
        app.usage().restore(batch);
    }
}

/// Writes queued audit events in one transaction; on failure they wait for the next attempt.
fn flush_audit(app: &App, store: &mut Store) {
    let events = app.audit().drain();
    if events.is_empty() {
        return;
    }
    if let Err(e) = store.append_audit(&events) {
        log::error!("cannot write the audit log, will retry: {e}");
        app.audit().restore(events);
    }
}

fn gc(store: &mut Store, idle_ttl: i64, audit_days: i64) {
    let now = now();
    match store.gc_sessions(now, idle_ttl) {
        Ok(n) if n > 0 => log::debug!("deleted {n} expired sessions"),
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
