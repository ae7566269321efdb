//! Redirect-URI matching at `/authorize` and `/token`: simple string comparison with a
//! registered URI (RFC 9700 §4.1.3, RFC 3986 §6.2.1), except that a loopback IP-literal
//! `http` URI may use any port (RFC 8252 §7.3). `localhost` is not a loopback literal and is
//! compared exactly (RFC 8252 §8.3).

/// Splits `http://127.0.0.1:PORT/rest` into (host, rest) if it is a loopback IP literal URI.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("http://")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, ""),
    };
    let host = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let host = authority.get(..=end)?;
        let port = authority.get(end + 1..)?;
        if !(port.is_empty()
            || (port.starts_with(':')
                && port.len() > 1
                && port.bytes().skip(1).all(|b| b.is_ascii_digit())))
        {
            return None;
        }
        host
    } else {
        let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
        if !port.bytes().all(|b| b.is_ascii_digit()) || (authority.contains(':') && port.is_empty())
        {
            return None;
        }
        host
    };
    matches!(host, "127.0.0.1" | "[::1]").then_some((host, path))
}

/// True if `requested` may be used with a client that registered `registered`.
pub fn matches(registered: &[String], requested: &str) -> bool {
    registered.iter().any(|r| {
        r == requested
            || match (loopback_parts(r), loopback_parts(requested)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_match_only() {
        let r = reg(&["https://app.example/cb"]);
        assert!(matches(&r, "https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://app.example/cbx",
            "https://app.example/cb?x=1",
            "https://APP.example/cb",
            "https://app.example:443/cb",
            "http://app.example/cb",
            "https://app.example/CB",
        ] {
            assert!(!matches(&r, bad), "{bad}");
        }
    }

    #[test]
    fn loopback_ip_any_port() {
        let r = reg(&["http://127.0.0.1/cb", "http://[::1]:8000/cb?x=1"]);
        assert!(matches(&r, "http://127.0.0.1:51234/cb"));
        assert!(matches(&r, "http://127.0.0.1/cb"));
        assert!(matches(&r, "http://[::1]:1/cb?x=1"));
        assert!(!matches(&r, "http://127.0.0.1:1/other"));
        assert!(!matches(&r, "http://[::1]:1/cb"));
        assert!(!matches(&r, "http://127.0.0.1:x/cb"));
        let l = reg(&["http://localhost:3000/cb"]);
        assert!(
            !matches(&l, "http://localhost:3001/cb"),
            "localhost is compared exactly"
        );
    }
}
