//! Who the client is, behind reverse proxies: [`Cidr`], the address ranges of the trusted
//! proxies (`--trusted-proxy`), and [`client_ip`], the client's address as the nearest trusted
//! proxy reports it. Login throttling and the audit log use the address; forward auth believes
//! proxy headers, and the connection layer lifts its per-address cap, only for trusted ranges.

use std::net::IpAddr;

use crate::http::Req;

/// An address range, `10.0.0.0/8` or `::1/128` (a bare address is a /32 or /128).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR[/PREFIX]`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = s.trim().split_once('/').unwrap_or((s.trim(), ""));
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address range like 10.0.0.0/8"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: bad prefix length"))?
        };
        Ok(Cidr { net, prefix })
    }

    /// True if `ip` is in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The default trusted proxies: loopback.
pub fn default_trusted() -> Vec<Cidr> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|c| Cidr::parse(c).ok())
        .collect()
}

/// The client's address: the TCP peer, or — when the peer is a trusted proxy — the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy (entries further left are
/// whatever the client claimed). Used for login throttling and the audit log, so that everyone
/// behind one reverse proxy does not share one failure counter.
pub fn client_ip(req: &Req, trusted: &[Cidr]) -> IpAddr {
    let peer = req.peer.ip();
    if !trusted.iter().any(|c| c.contains(peer)) {
        return peer;
    }
    let Ok(Some(xff)) = req.header("x-forwarded-for") else {
        return peer;
    };
    for entry in xff.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            return peer;
        };
        if !trusted.iter().any(|c| c.contains(ip)) {
            return ip;
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ip_from_trusted_proxies_only() {
        let trusted = vec![
            Cidr::parse("127.0.0.1/32").unwrap(),
            Cidr::parse("10.0.0.0/8").unwrap(),
        ];
        let req = |peer: &str, xff: Option<&str>| {
            let mut r = Req::new(crate::http::Method::Get, "/", peer.parse().unwrap());
            if let Some(x) = xff {
                r.headers.push("x-forwarded-for", x.as_bytes());
            }
            r
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_ip(&req("127.0.0.1:1", Some("203.0.113.7")), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(
                &req("127.0.0.1:1", Some("1.1.1.1, 203.0.113.7, 10.0.0.2")),
                &trusted
            ),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_ip(&req("192.0.2.1:1", Some("203.0.113.7")), &trusted),
            ip("192.0.2.1"),
            "untrusted peer"
        );
        assert_eq!(
            client_ip(&req("127.0.0.1:1", None), &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_ip(&req("127.0.0.1:1", Some("junk")), &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.1".parse().unwrap()));
        let one = Cidr::parse("192.168.1.5").unwrap();
        assert!(one.contains("192.168.1.5".parse().unwrap()));
        assert!(!one.contains("192.168.1.6".parse().unwrap()));
        let v6 = Cidr::parse("::1/128").unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope").is_err());
    }
}
