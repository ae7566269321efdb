//! Operations commands: `healthcheck` (for container health checks and monitors) and `backup`
//! (a consistent copy of the database while the server runs).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::error::Error;
use crate::ops::Actor;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// The address the server listens on
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist yet); - writes it to standard output
    file: PathBuf,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup to put in place (a file written by latchkey backup)
    file: PathBuf,
}

/// `latchkey healthcheck`: exit 0 if `GET /healthz` on the listen address answers 200 within
/// three seconds, 1 otherwise. Uses no shell, curl or wget, so it works in a minimal container.
pub fn healthcheck(a: HealthcheckArgs, json: bool) -> Result<(), Error> {
    let addr: SocketAddr = a
        .listen
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("cannot resolve {}", a.listen), e))?
        .next()
        .ok_or_else(|| Error::Usage(format!("no address for {}", a.listen)))?;
    let (addr, line) = crate::http::probe::healthz(addr, Duration::from_secs(3))
        .map_err(|f| Error::io(format!("{} {}", f.what, f.addr), f.source))?;
    if line.starts_with("HTTP/1.1 200 ") {
        if json {
            super::print_json(&serde_json::json!({"healthy": true, "address": addr.to_string()}));
        } else {
            out!("healthy: {addr}");
        }
        Ok(())
    } else {
        Err(Error::Msg(format!("unhealthy: {addr} answered {line:?}")))
    }
}

/// `latchkey backup FILE`: a consistent snapshot of the whole database, taken while the server
/// keeps running (see [`crate::ops::data::backup`]). `-` writes it to standard output, through
/// a temporary file in the data directory.
pub fn backup(store: &mut Store, data_dir: &Path, a: BackupArgs, json: bool) -> Result<(), Error> {
    if a.file.as_os_str() == "-" {
        if json {
            return Err(Error::Usage(
                "backup - writes the database itself to standard output: leave out --json".into(),
            ));
        }
        let mut file = crate::ops::data::backup_stream(store, &Actor::cli(), data_dir)?;
        let mut out = std::io::stdout().lock();
        std::io::copy(&mut file, &mut out)
            .and_then(|_| std::io::Write::flush(&mut out))
            .map_err(|e| Error::io("cannot write the backup to standard output", e))?;
        return Ok(());
    }
    crate::ops::data::backup(store, &Actor::cli(), &a.file)?;
    if json {
        let bytes = std::fs::metadata(&a.file).map(|m| m.len()).ok();
        let file = crate::ops::installation::absolute(&a.file);
        super::print_json(&serde_json::json!({"file": file, "bytes": bytes}));
        return Ok(());
    }
    out!(
        "backup written to {} (a complete database: put it back with latchkey restore {} while latchkey is stopped)",
        a.file.display(),
        a.file.display()
    );
    Ok(())
}

/// `latchkey restore FILE`: puts a backup in place of the database while the server is
/// stopped (see [`crate::ops::data::restore`]).
pub fn restore(data_dir: &Path, a: RestoreArgs, json: bool) -> Result<(), Error> {
    let done = crate::ops::data::restore(data_dir, &Actor::cli(), &a.file)?;
    if json {
        super::print_json(&serde_json::json!({
            "file": crate::ops::installation::absolute(&a.file),
            "database": done.database,
            "schema_version": done.schema_version,
            "kept": done.kept,
        }));
        return Ok(());
    }
    out!(
        "restored {} to {} (schema version {})",
        a.file.display(),
        done.database.display(),
        done.schema_version
    );
    if let Some(kept) = done.kept {
        out!("the database it replaced is kept as {}", kept.display());
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The issuer the server runs with, compared against the stored one [default: the issuer
    /// stored by the first serve --issuer]
    #[arg(long, env = "LATCHKEY_ISSUER")]
    issuer: Option<String>,
}

/// `latchkey check`: looks at the data directory, the database (read-only: nothing is migrated
/// or created), the signing keys and the issuer, prints what it found, and exits 1 if anything
/// needs fixing.
pub fn check(data_dir: &Path, a: CheckArgs, json: bool) -> Result<(), Error> {
    let lines = crate::ops::data::check(data_dir, a.issuer.as_deref());
    let problems = lines.iter().filter(|c| !c.ok).count();
    if json {
        let items: Vec<serde_json::Value> = lines
            .iter()
            .map(|c| serde_json::json!({"ok": c.ok, "message": c.message}))
            .collect();
        super::print_json(&serde_json::json!({"ok": problems == 0, "checks": items}));
    } else {
        for c in &lines {
            out!("{} {}", if c.ok { "ok     " } else { "PROBLEM" }, c.message);
        }
    }
    if problems > 0 {
        return Err(Error::Msg(format!("{problems} problem(s) found")));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only events newer than this, e.g. 24h, 7d
    #[arg(long, value_parser = super::apikey::parse_duration, default_value = "7d")]
    since: i64,
    /// At most this many events (the newest)
    #[arg(long, default_value_t = 1000)]
    limit: i64,
}

/// `latchkey audit`: sign-ins, failures, lockouts, tokens issued and administrative changes.
/// Events the server queued reach the database within a few seconds.
pub fn audit(store: &Store, a: AuditArgs, json: bool) -> Result<(), Error> {
    let since = crate::timefmt::now() - a.since;
    let events = store.audit_since(since, a.limit.clamp(1, 1_000_000))?;
    if json {
        let rows = events.iter().map(crate::ops::view::audit_event).collect();
        super::print_json(&serde_json::Value::Array(rows));
    } else {
        for e in events {
            let times = if e.count > 1 {
                format!(" (x{})", e.count)
            } else {
                String::new()
            };
            out!(
                "{} {:<24} {:<22} {:<8} {} {}{times}",
                crate::timefmt::rfc3339(e.time),
                e.actor,
                e.action,
                e.outcome,
                e.target,
                e.address
            );
        }
    }
    Ok(())
}
