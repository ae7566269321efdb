//! The outbound side of `latchkey healthcheck`: one `GET /healthz` to a listening server, with
//! no shell, curl or wget, so it works in a minimal container.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends `GET /healthz` to `addr` (an unspecified address such as `0.0.0.0` is reached on
/// loopback) and returns the address used and the status line of the answer, e.g.
/// `HTTP/1.1 200 OK`. Every step gives up after `timeout`.
pub fn healthz(mut addr: SocketAddr, timeout: Duration) -> Result<(SocketAddr, String), Failure> {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let step = |what: &'static str| {
        move |e| Failure {
            addr,
            what,
            source: e,
        }
    };
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(step("cannot connect to"))?;
    s.set_read_timeout(Some(timeout)).map_err(step("socket"))?;
    s.set_write_timeout(Some(timeout)).map_err(step("socket"))?;
    s.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(step("cannot send the health check to"))?;
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .map_err(step("no answer to the health check from"))?;
    let text = String::from_utf8_lossy(head.get(..n).unwrap_or_default()).into_owned();
    Ok((addr, text.lines().next().unwrap_or("").to_string()))
}

/// A probe that got no answer: what it was doing, to which address, and why.
#[derive(Debug)]
pub struct Failure {
    pub addr: SocketAddr,
    pub what: &'static str,
    pub source: std::io::Error,
}
