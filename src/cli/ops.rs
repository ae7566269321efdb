//! Operations commands: `healthcheck` (for container health checks and monitors) and `backup`
//! (a consistent copy of the database while the server runs).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
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
    let mut addr: SocketAddr = a
        .listen
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("cannot resolve {}", a.listen), e))?
        .next()
        .ok_or_else(|| Error::Usage(format!("no address for {}", a.listen)))?;
    // A server listening on every interface is reached on loopback.
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let timeout = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| Error::io(format!("cannot connect to {addr}"), e))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| Error::io("socket", e))?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| Error::io("socket", e))?;
    s.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| Error::io("cannot send the health check", e))?;
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .map_err(|e| Error::io("no answer to the health check", e))?;
    let line = String::from_utf8_lossy(head.get(..n).unwrap_or_default()).into_owned();
    if line.starts_with("HTTP/1.1 200 ") {
        println!("healthy: {addr}");
        Ok(())
    } else {
        Err(Error::Msg(format!(
            "unhealthy: {addr} answered {:?}",
            line.lines().next().unwrap_or("")
        )))
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
    store.backup_to(&a.file)?;
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
