//! Redirect URIs: the rules a URI must meet to be registered, and the matching at
//! `/authorize` and `/token`.
//!
//! Matching is simple string comparison with a registered URI (RFC 9700 §4.1.3, RFC 3986
//! §6.2.1), except that a loopback IP-literal `http` URI may use any port (RFC 8252 §7.3).
//! `localhost` is not a loopback literal and is compared exactly (RFC 8252 §8.3). The `url`
//! crate reads the authority; what is compared is always the text as written, so the crate's
//! normalisation (case, default ports, dot segments, IPv4 shorthands) never makes two URIs match.
//!
//! [`web_url`] is also the issuer's check: one reading of an `http(s)` authority for the whole
//! program.

use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Parses an absolute `http` or `https` URL and refuses what the `url` crate would read
/// differently from the text: a backslash (a path separator to the crate and to browsers, not
/// in RFC 3986), a missing or empty host (`https:///x`, which the crate would repair), and user
/// information (`u@host`, also an empty one). The reason is a phrase such as "needs a host and
/// no user information", for the caller's sentence.
pub fn web_url(raw: &str) -> Result<Url, &'static str> {
    const NO_HOST: &str = "needs a host and no user information";
    let rest = raw.split_once(':').map_or("", |(_, r)| r);
    let Some(rest) = rest.strip_prefix("//") else {
        return Err("must be an absolute URI");
    };
    if raw.contains('\\') {
        return Err("must not contain a backslash");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(NO_HOST);
    }
    let url = Url::parse(raw).map_err(|e| match e {
        url::ParseError::InvalidPort => "has an invalid port",
        url::ParseError::EmptyHost => NO_HOST,
        _ => "has an invalid host",
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http or https URL");
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(NO_HOST);
    }
    Ok(url)
}

/// True if `url` (parsed from `raw` by [`web_url`]) names the loopback interface: `localhost`,
/// an IPv4 address in 127.0.0.0/8 or the IPv6 loopback address. A name or IPv4 address counts
/// only written out as the crate reads it: a shorthand it would expand (`127.1`, `0x7f.0.0.1`,
/// percent-encoded letters) does not.
pub fn is_loopback(url: &Url, raw: &str) -> bool {
    let as_written = || {
        let host = url.host_str().unwrap_or("");
        raw.split_once("://")
            .and_then(|(_, rest)| {
                let written = rest.get(..host.len())?;
                let next = rest.get(host.len()..)?;
                Some(
                    written.eq_ignore_ascii_case(host)
                        && (next.is_empty() || next.starts_with([':', '/', '?'])),
                )
            })
            .unwrap_or(false)
    };
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") && as_written(),
        Some(Host::Ipv4(ip)) => ip.is_loopback() && as_written(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Registration-time checks of a redirect URI (RFC 9700 §2.6, OAuth 2.1 §2.3.1): absolute, no
/// fragment, and https — or http only on a loopback IP or `localhost` (RFC 8252 §7.3), or a
/// private-use scheme containing a dot (RFC 8252 §7.1). The message names the URI and the rule.
pub fn validate(uri: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("redirect URI {uri:?}: {why}"));
    if uri.contains('#') {
        return bad("must not contain a fragment");
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain whitespace");
    }
    let Some((scheme, _)) = uri.split_once(':') else {
        return bad("must be an absolute URI");
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "https" | "http" => {
            let url = match web_url(uri) {
                Ok(url) => url,
                Err(why) => return bad(why),
            };
            if scheme == "http" && !is_loopback(&url, uri) {
                return bad("plain http is only allowed on loopback addresses; use https");
            }
            Ok(())
        }
        s if s.contains('.')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            Ok(())
        }
        _ => {
            bad("must be https, loopback http, or a private-use scheme such as com.example.app:/cb")
        }
    }
}

/// Splits `http://127.0.0.1:PORT/rest` into (host, rest) if it is a loopback IP-literal URI,
/// the host and port exactly as the `url` crate reads them and the rest as written.
fn loopback_parts(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("http://")?;
    // Most registered URIs are not loopback ones: no need to parse those.
    if !(rest.starts_with("127.0.0.1") || rest.starts_with("[::1]")) {
        return None;
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, ""),
    };
    let url = Url::parse(uri).ok()?;
    let host = match url.host()? {
        Host::Ipv4(ip) if ip == Ipv4Addr::LOCALHOST => "127.0.0.1",
        Host::Ipv6(ip) if ip == Ipv6Addr::LOCALHOST => "[::1]",
        _ => return None,
    };
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    // The authority as written is the host and at most a port of digits (no shorthand such
    // as `127.1`, no empty port): only then is the text what the crate read.
    let port = authority.strip_prefix(host)?;
    if !(port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    Some((host, path))
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

    #[test]
    fn loopback_matching_reads_the_text_not_a_normalised_url() {
        let r = reg(&["http://127.0.0.1/cb", "http://[::1]/cb"]);
        assert!(matches(&r, "http://127.0.0.1:80/cb"));
        assert!(matches(&r, "http://[::1]:65535/cb"));
        for bad in [
            "http://127.0.0.1:1/a/../cb",
            "http://127.0.0.1:1/%63b",
            "http://127.1:1/cb",
            "http://127.0.0.2:1/cb",
            "http://[0:0::1]:1/cb",
            "http://u@127.0.0.1:1/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:1\\cb",
            "HTTP://127.0.0.1:1/cb",
            "http://127.0.0.1:99999/cb",
        ] {
            assert!(!matches(&r, bad), "{bad}");
        }
    }

    #[test]
    fn redirect_uri_rules() {
        let v = validate;
        assert!(v("https://app.example.org/cb").is_ok());
        assert!(v("http://127.0.0.1:8000/cb").is_ok());
        assert!(v("http://[::1]/cb").is_ok());
        assert!(v("http://localhost:3000/cb").is_ok());
        assert!(v("com.example.app:/oauth").is_ok());
        assert!(v("http://app.example.org/cb").is_err());
        assert!(v("https://app.example.org/cb#x").is_err());
        assert!(v("/relative").is_err());
        assert!(v("javascript:alert(1)").is_err());
        assert!(v("https://user@host/cb").is_err());
        assert!(v("https:///cb").is_err());
    }

    #[test]
    fn redirect_uri_authorities() {
        let v = validate;
        // IPv6 and ports.
        assert!(v("http://[::1]:8080/cb").is_ok());
        assert!(v("http://[0:0::1]/cb").is_ok(), "any spelling of ::1");
        assert!(v("https://[2001:db8::1]:8443/cb").is_ok());
        assert!(v("http://[2001:db8::1]/cb").is_err(), "not loopback");
        assert!(v("http://[::ffff:127.0.0.1]/cb").is_err());
        assert!(v("https://[::1/cb").is_err(), "unclosed bracket");
        assert!(v("https://app.example.org:8443/cb").is_ok());
        assert!(v("http://127.0.0.1/cb").is_ok());
        assert!(v("http://127.8.9.10:1/cb").is_ok());
        assert!(v("https://app.example.org:99999/cb").is_err());
        assert!(v("https://app.example.org:x/cb").is_err());
        assert!(v("http://LOCALHOST:3000/cb").is_ok());
        // A shorthand the parser would expand to a loopback address is not one as written.
        assert!(v("http://127.1/cb").is_err());
        assert!(v("http://0x7f.0.0.1/cb").is_err());
        assert!(v("http://%6c%6fcalhost/cb").is_err());
        assert!(v("http://localhost.evil.example/cb").is_err());
        // User information, also empty or hidden behind a backslash.
        assert!(v("https://u:p@app.example.org/cb").is_err());
        assert!(v("https://@app.example.org/cb").is_err());
        assert!(v("https://evil.example\\@app.example.org/cb").is_err());
        assert!(v("http://127.0.0.1:1@evil.example/cb").is_err());
        // Empty hosts.
        assert!(v("https://").is_err());
        assert!(v("https://:443/cb").is_err());
        assert!(v("https://?x=1").is_err());
        assert!(v("https:/app.example.org/cb").is_err());
        assert!(v("https:app.example.org/cb").is_err());
        let msg = v("https://u@app.example.org/cb").unwrap_err();
        assert!(msg.contains("no user information"), "{msg}");
    }
}
