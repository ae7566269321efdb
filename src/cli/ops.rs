//! Operations commands: `healthcheck` (for container health checks and monitors) and `backup`
//! (a consistent copy of the database while the server runs).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::error::Error;
use crate::store::Store;

#[derive(Args, Debug)]
pub struct HealthcheckArgs {
    /// The address the server listens on
    #[arg(long, env = "LATCHKEY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the copy (must not exist yet)
    file: PathBuf,
}

/// `latchkey healthcheck`: exit 0 if `GET /healthz` on the listen address answers 200 within
/// three seconds, 1 otherwise. Uses no shell, curl or wget, so it works in a minimal container.
pub fn healthcheck(a: HealthcheckArgs) -> Result<(), Error> {
    let addr: SocketAddr = a
        .listen
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("cannot resolve {}", a.listen), e))?
        .next()
        .ok_or_else(|| Error::Usage(format!("no address for {}", a.listen)))?;
    let (addr, line) = crate::http::probe::healthz(addr, Duration::from_secs(3))
        .map_err(|f| Error::io(format!("{} {}", f.what, f.addr), f.source))?;
    if line.starts_with("HTTP/1.1 200 ") {
        println!("healthy: {addr}");
        Ok(())
    } else {
        Err(Error::Msg(format!("unhealthy: {addr} answered {line:?}")))
    }
}

/// `latchkey backup FILE`: a consistent snapshot of the whole database (`VACUUM INTO`), taken
/// while the server keeps running, written with mode 0600 since it holds the signing keys.
pub fn backup(store: &Store, a: BackupArgs) -> Result<(), Error> {
    if a.file.exists() {
        return Err(Error::Usage(format!(
            "{} already exists; choose a new file",
            a.file.display()
        )));
    }
    // Created empty with mode 0600 before SQLite writes the keys into it (VACUUM INTO accepts
    // an empty file), so no other user can open it while it is being written.
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&a.file)
            .map_err(|e| Error::io(format!("cannot create {}", a.file.display()), e))?;
    }
    if let Err(e) = store.backup_to(&a.file) {
        let _ = std::fs::remove_file(&a.file);
        return Err(e.into());
    }
    restrict(&a.file)?;
    println!(
        "backup written to {} (a complete database: restore by copying it to latchkey.db while latchkey is stopped)",
        a.file.display()
    );
    Ok(())
}

fn restrict(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("cannot chmod {}", path.display()), e))
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The issuer the server runs with
    #[arg(long, env = "LATCHKEY_ISSUER")]
    issuer: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// `latchkey check`: looks at the data directory, the database (read-only: nothing is migrated
/// or created), the signing keys and the issuer, prints what it found, and exits 1 if anything
/// needs fixing.
pub fn check(data_dir: &Path, a: CheckArgs) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mut lines: Vec<(bool, String)> = Vec::new();
    let mut report = |ok: bool, msg: String| lines.push((ok, msg));
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);

    match mode(data_dir) {
        Ok(m) if m & 0o077 == 0 => report(
            true,
            format!("data directory {} (mode {m:o})", data_dir.display()),
        ),
        Ok(m) => report(
            false,
            format!(
                "data directory {} is mode {m:o}: others can enter it; chmod 700",
                data_dir.display()
            ),
        ),
        Err(e) => report(false, format!("data directory {}: {e}", data_dir.display())),
    }
    let db = data_dir.join(crate::store::DB_FILE);
    match mode(&db) {
        Ok(m) if m & 0o077 == 0 => report(true, format!("database {} (mode {m:o})", db.display())),
        Ok(m) => report(
            false,
            format!(
                "database {} is mode {m:o}: it holds private keys; chmod 600",
                db.display()
            ),
        ),
        Err(e) => report(false, format!("database {}: {e}", db.display())),
    }
    if db.exists() {
        match Store::inspect(&db) {
            Ok(info) => {
                let supported = crate::store::SCHEMA_VERSION;
                match info.schema_version {
                    v if v > supported => report(
                        false,
                        format!(
                            "schema version {v} is newer than this latchkey ({supported}): run the newer binary"
                        ),
                    ),
                    v if v < supported => report(
                        true,
                        format!(
                            "schema version {v}: {} migration(s) will be applied at the next start",
                            supported - v
                        ),
                    ),
                    v => report(true, format!("schema version {v} (current)")),
                }
                let now = crate::timefmt::now();
                for alg in ["ES256", "RS256"] {
                    match info
                        .keys
                        .iter()
                        .find(|k| k.alg == alg && k.status == "active")
                    {
                        Some(k) => report(
                            true,
                            format!(
                                "active {alg} key {} ({} days old)",
                                k.kid,
                                (now - k.created_at) / 86_400
                            ),
                        ),
                        None => report(
                            true,
                            format!("no active {alg} key yet: the next start generates one"),
                        ),
                    }
                }
                let next = info.keys.iter().filter(|k| k.status == "next").count();
                if next > 0 {
                    report(
                        true,
                        format!(
                            "{next} new key(s) published, not yet signing (a rotation is pending)"
                        ),
                    );
                }
                let retiring = info.keys.iter().filter(|k| k.status == "retiring").count();
                if retiring > 0 {
                    report(
                        true,
                        format!("{retiring} previous key(s) still published after a rotation"),
                    );
                }
            }
            Err(e) => report(false, format!("cannot read the database: {e}")),
        }
    }
    match &a.issuer {
        None => report(false, "no issuer set (LATCHKEY_ISSUER or --issuer): the default http://<listen> only suits loopback testing".into()),
        Some(i) => match crate::config::validate_issuer(i) {
            Ok((iss, None)) if iss.starts_with("https://") => report(true, format!("issuer {iss} (https)")),
            Ok((iss, None)) => report(true, format!("issuer {iss} (plain http, loopback only)")),
            Ok((iss, Some(_))) => report(false, format!("issuer {iss} is plain http on a network address: use https")),
            Err(e) => report(false, e.to_string()),
        },
    }
    let problems = lines.iter().filter(|(ok, _)| !ok).count();
    if a.json {
        let items: Vec<serde_json::Value> = lines
            .iter()
            .map(|(ok, m)| serde_json::json!({"ok": ok, "message": m}))
            .collect();
        super::print_json(&serde_json::json!({"ok": problems == 0, "checks": items}));
    } else {
        for (ok, m) in &lines {
            println!("{} {m}", if *ok { "ok     " } else { "PROBLEM" });
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
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// `latchkey audit`: sign-ins, failures, lockouts, tokens issued and administrative changes.
/// Events the server queued reach the database within a few seconds.
pub fn audit(store: &Store, a: AuditArgs) -> Result<(), Error> {
    let since = crate::timefmt::now() - a.since;
    let events = store.audit_since(since, a.limit.clamp(1, 1_000_000))?;
    if a.json {
        let rows: Vec<serde_json::Value> = events
            .iter()
            .map(|e| {
                serde_json::json!({"time": e.time, "actor": e.actor, "action": e.action,
                                   "target": e.target, "outcome": e.outcome, "address": e.address,
                                   "count": e.count})
            })
            .collect();
        super::print_json(&serde_json::Value::Array(rows));
    } else {
        for e in events {
            let times = if e.count > 1 {
                format!(" (x{})", e.count)
            } else {
                String::new()
            };
            println!(
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
