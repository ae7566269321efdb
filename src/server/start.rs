//! The start-up sequence of `latchkey serve`: take the data directory's lock (one server per
//! directory), open the database (creating it, and the first signing keys, on first start),
//! settle the issuer against the stored one, load what the workers read into memory, bind,
//! start the workers, the maintenance thread, the signal watcher and the optional metrics
//! listener, announce the address (the caller prints it), serve until SIGTERM or SIGINT, then
//! write what is queued, checkpoint and return. The CLI only turns its flags into a
//! [`StartConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Server, ServerConfig, StopHandle, maintenance};
use crate::app::{App, Worker};
use crate::config::{Config, Setting, Settings, default_workers, validate_issuer};
use crate::error::Error;
use crate::http::client_ip::Cidr;
use crate::http::conn::Limits;
use crate::http::rejection::NoEndpoint;
use crate::http::router;
use crate::http::tls::Tls;
use crate::ops::installation::IssuerOutcome;
use crate::ops::keys::{ensure_keys, load_ring};
use crate::store::{Checkpointer, SharedWriter, Store};
use crate::timefmt::now;

/// The PEM certificate chain and private key latchkey serves HTTPS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything `latchkey serve` is started with (the rest is in the database's settings).
#[derive(Debug, Clone)]
pub struct StartConfig {
    /// Holds latchkey.db; created on first start.
    pub data_dir: PathBuf,
    /// Port 0 picks a free port, announced on standard output.
    pub listen: SocketAddr,
    /// The issuer URL clients see; `None` for the stored one, or without one
    /// `<scheme>://<bound address>` (not stored).
    pub issuer: Option<String>,
    /// `issuer` may replace a different stored issuer.
    pub change_issuer: bool,
    /// Request workers; `None` for 2 per core.
    pub workers: Option<usize>,
    /// Domain of the forward-auth session cookie; `None` (or empty) for a host-only cookie.
    pub cookie_domain: Option<String>,
    /// Address ranges whose forwarding headers are believed; empty for loopback only.
    pub trusted_proxies: Vec<Cidr>,
    /// Serve `/metrics` on this separate address.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve HTTPS; `None` for plain HTTP.
    pub tls: Option<TlsFiles>,
    /// error, warn, info, debug or trace.
    pub log_level: String,
    /// One JSON object per log line instead of text.
    pub log_json: bool,
}

/// Runs the server until it is told to stop; returns once it has stopped cleanly. `announce`
/// gets the URL the server listens on (`http://127.0.0.1:8080`) once it accepts connections.
pub fn run(args: StartConfig, announce: impl FnOnce(&str)) -> Result<(), Error> {
    crate::logger::init(Some(&args.log_level), args.log_json);
    let nofile = super::fdlimit::raise();
    let data_dir = args.data_dir.clone();
    crate::store::create_data_dir(&data_dir)?;
    // Held until this function returns; the kernel releases it if the process dies.
    let _lock = crate::store::lock::DataDirLock::acquire(&data_dir)
        .map_err(|e| Error::Msg(e.to_string()))?;
    // A damaged database is refused before anything writes to it.
    let existing = data_dir.join(crate::store::DB_FILE);
    if existing.exists() {
        Store::verify_file(&existing, crate::store::Depth::Quick)?;
    }
    let mut store = Store::open_data_dir(&data_dir)?;
    let db_path = store
        .path()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| data_dir.join(crate::store::DB_FILE));
    // Before anything is generated or listens: a changed issuer is refused (exit 2) unless
    // confirmed.
    let given_issuer = match &args.issuer {
        Some(i) => {
            let (issuer, warning) = validate_issuer(i)?;
            let actor = crate::ops::Actor::cli();
            match crate::ops::installation::settle_issuer(
                &mut store,
                &actor,
                &issuer,
                args.change_issuer,
            )? {
                IssuerOutcome::Stored => log::info!("issuer {issuer} stored in the database"),
                IssuerOutcome::Unchanged => {}
                IssuerOutcome::Changed { from } => log::warn!(
                    "issuer changed from {from} to {issuer} (--change-issuer): every app must use the new discovery URL; tokens issued under {from} no longer validate"
                ),
            }
            Some((issuer, warning))
        }
        None => match crate::ops::installation::stored_issuer(&store)? {
            Some(stored) => {
                log::info!("issuer {stored} (stored in the database)");
                Some(validate_issuer(&stored)?)
            }
            None => None,
        },
    };
    for kid in ensure_keys(&mut store, now())? {
        log::info!("generated signing key {kid}");
    }
    crate::ops::keys::promote_due(&mut store, now())?;
    let settings = Settings::load(&store)?;
    let keys = load_ring(&store)?;

    let tls = match &args.tls {
        Some(files) => Some(Arc::new(Tls::new(&files.cert, &files.key)?)),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = super::bind(args.listen)
        .map_err(|e| Error::io(format!("cannot listen on {}", args.listen), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the bound address", e))?;
    let explicit_issuer = given_issuer.is_some();
    let (issuer, warning) = match given_issuer {
        Some(chosen) => chosen,
        None => validate_issuer(&format!("{scheme}://{bound}"))?,
    };
    if let Some(w) = warning {
        log::warn!("{w}");
    }
    if bound.ip().is_unspecified() && !explicit_issuer {
        log::warn!(
            "listening on all interfaces with the default issuer {issuer}: set --issuer to the URL clients use"
        );
    }
    let workers = args.workers.unwrap_or_else(default_workers);
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
    let mut server_config = ServerConfig {
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
    // Every database connection is open now: the descriptors left must hold the connections.
    server_config.max_connections = super::fdlimit::cap(server_config.max_connections, nofile);
    let server = Server::new(listener, pool, Arc::new(router::route), server_config)
        .map_err(|e| Error::io("cannot start the server", e))?
        .with_side_pool(sign_in, router::is_password_sign_in);
    crate::metrics::METRICS.watch_connections(server.stats());
    let (account_throttle, address_throttle) = app.throttle_handles();
    crate::metrics::METRICS.watch_login_throttles(account_throttle, address_throttle);
    let stop = server.stop_handle();
    watch_signals(stop.clone(), tls.clone())?;
    let housekeeping = maintenance::spawn(Arc::clone(&app), &db_path, writer, stop.clone())?;

    // Before the announcement, so that whoever waits for it can scrape at once.
    let metrics = match args.metrics_listen {
        Some(addr) => Some(spawn_metrics(addr)?),
        None => None,
    };
    log::info!("issuer {issuer}");
    log::info!("database {}", db_path.display());
    log::info!("{workers} workers");
    log::info!("listening on {scheme}://{bound}");
    announce(&format!("{scheme}://{bound}"));

    let left = server.run();
    if let Some((handle, thread)) = metrics {
        handle.stop();
        let _ = thread.join();
    }
    if left > 0 {
        log::warn!("{left} connections still open after the drain period; closing them");
    }
    let _ = housekeeping.join();
    maintenance::flush_usage(&app, &mut store);
    maintenance::flush_audit(&app, &mut store);
    checkpointer.stop();
    store.checkpoint()?;
    log::info!("stopped");
    Ok(())
}

/// Starts the metrics listener: `GET /metrics` only, one worker, on its own thread.
fn spawn_metrics(addr: SocketAddr) -> Result<(StopHandle, std::thread::JoinHandle<usize>), Error> {
    use crate::http::{Method, Req, Resp};
    let listener = super::bind(addr)
        .map_err(|e| Error::io(format!("cannot listen on {addr} for metrics"), e))?;
    let handler = |_: &mut (), req: &Req| -> Resp {
        if req.path != "/metrics" {
            return NoEndpoint::NotFound("only /metrics is served here").into_resp();
        }
        if !matches!(req.method, Method::Get | Method::Head) {
            return NoEndpoint::MethodNotAllowed("use GET")
                .into_resp()
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
