//! `latchkey serve`: turn the flags (and their `LATCHKEY_*` variables) into a
//! [`StartConfig`] and run the server; the start-up sequence is in [`crate::server::start`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::server::start::{StartConfig, TlsFiles};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on, as IP:PORT or HOST:PORT (port 0 picks a free port and prints it)
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8080", value_parser = resolve)]
    listen: SocketAddr,
    /// The issuer URL clients see, e.g. https://auth.home.example.org. Stored in the database on
    /// the first start with it; later starts without it use the stored one, and a different one
    /// is refused unless --change-issuer [default: the stored issuer, else http://<listen>]
    #[arg(long, env = "LATCHKEY_ISSUER")]
    issuer: Option<String>,
    /// Confirm that --issuer replaces the stored issuer: every app's discovery URL and the iss
    /// of every token change, and tokens already issued stop validating
    #[arg(long, requires = "issuer")]
    change_issuer: bool,
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
    #[arg(long, env = "LATCHKEY_METRICS_LISTEN", value_name = "ADDR", value_parser = resolve)]
    metrics_listen: Option<SocketAddr>,
    /// Serve HTTPS with this PEM certificate chain (reloaded on SIGHUP)
    #[arg(long, env = "LATCHKEY_TLS_CERT", value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "LATCHKEY_TLS_KEY", value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Log level
    #[arg(long, env = "LATCHKEY_LOG", default_value = "info",
          value_parser = ["off", "error", "warn", "info", "debug", "trace"], ignore_case = true)]
    log_level: String,
    /// Log line format
    #[arg(long, env = "LATCHKEY_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Reads a listen address: `IP:PORT`, or `HOST:PORT` resolved now (`localhost:8080`); a name
/// with several addresses listens on the first one the resolver gives.
fn resolve(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let mut addrs = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?} is not an address like 127.0.0.1:8080 ({e})"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// Runs the server. With `--json`, log lines are JSON (as `--log-format json`) and so is the
/// announcement: `{"listening_on": URL}`.
pub fn run(data_dir: PathBuf, args: ServeArgs, json: bool) -> Result<(), Error> {
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => return Err(Error::Usage("--tls-cert and --tls-key go together".into())),
    };
    let config = StartConfig {
        data_dir,
        listen: args.listen,
        issuer: args.issuer,
        change_issuer: args.change_issuer,
        workers: args.workers.map(usize::from),
        cookie_domain: args.cookie_domain,
        trusted_proxies: args.trusted_proxies,
        metrics_listen: args.metrics_listen,
        tls,
        log_level: args.log_level,
        log_json: json || args.log_format == "json",
    };
    crate::server::start::run(config, |url| {
        // The machine-readable announcement scripts and tests wait for.
        let mut out = std::io::stdout().lock();
        if json {
            let _ = writeln!(out, "{}", serde_json::json!({ "listening_on": url }));
        } else {
            let _ = writeln!(out, "listening on {url}");
        }
        let _ = out.flush();
    })
}
