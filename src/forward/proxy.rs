//! Which request a reverse proxy is asking about. The `X-Forwarded-*` and `X-Original-*`
//! headers are believed only from configured proxy addresses (RFC 9700 §4.13: a proxy "MUST
//! sanitize" them; from anyone else they are attacker-controlled and ignored).
//!
//! Dialects: Traefik `ForwardAuth` and Caddy `forward_auth` send `X-Forwarded-Method`, `-Proto`,
//! `-Host` and `-Uri`; nginx `auth_request` is configured to send `X-Original-URL` (and
//! `X-Original-Method`). When both are present the `X-Forwarded-*` set wins: Caddy and Traefik
//! set those themselves but pass a client's own `X-Original-URL` through untouched.
//!
//! A trusted proxy that sends neither `X-Forwarded-Host` nor `X-Original-URL` is told which
//! header is missing ([`Unreadable::Missing`]): its configuration, not the user, is at fault.
//!
//! The original request's port is the one in `X-Forwarded-Host` or `X-Original-URL`, or the
//! scheme's default; a malformed port (`app.test:`, `app.test:x`, `app.test:99999`) makes the
//! request unreadable, hence denied. The raw path is kept as the proxy sent it (before the URL
//! parser, which would resolve `%2e%2e` and turn `\` into `/`), for
//! [`crate::forward::rules::ambiguous_path`].

use std::borrow::Cow;

use crate::forward::rules::{default_port, parse_port};
use crate::http::Req;
use crate::http::client_ip::Cidr;

/// How the proxy described the original request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `X-Forwarded-*` (Traefik, Caddy): answer unauthenticated browsers with 302.
    Forwarded,
    /// `X-Original-URL` (nginx): answer 401; nginx's `error_page 401` redirects.
    OriginalUrl,
}

/// Why a forward-auth request does not say which request to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// The peer is not a trusted proxy: its headers are ignored.
    Untrusted,
    /// A trusted proxy sent none of the headers that name the request.
    Missing(Missing),
    /// A header is repeated, malformed or carries control characters.
    Malformed,
}

/// Which headers a trusted proxy left out, judged by the dialect of the ones it did send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// Other `X-Forwarded-*` headers came, `X-Forwarded-Host` did not.
    ForwardedHost,
    /// `X-Original-Method` came, `X-Original-URL` did not.
    OriginalUrl,
    /// No header of either dialect.
    Both,
}

impl Missing {
    /// The missing headers, for the answer and the log.
    pub fn headers(self) -> &'static str {
        match self {
            Missing::ForwardedHost => "X-Forwarded-Host",
            Missing::OriginalUrl => "X-Original-URL",
            Missing::Both => {
                "X-Forwarded-Host and X-Forwarded-Uri (Traefik, Caddy) or X-Original-URL (nginx)"
            }
        }
    }
}

/// The request the proxy asks about, borrowed from the headers that describe it where they
/// need no change (the usual case: no copies on the forward-auth path).
#[derive(Clone, Debug)]
pub struct Original<'a> {
    /// Upper case.
    pub method: Cow<'a, str>,
    pub scheme: &'static str,
    /// Lower case, without port.
    pub host: Cow<'a, str>,
    /// `host[:port]` as sent, for rebuilding the URL.
    pub authority: Cow<'a, str>,
    /// The effective port: the authority's, or the scheme's default.
    pub port: u16,
    /// Path and query as sent (`X-Original-URL`: as the URL parser serialises them).
    pub uri: Cow<'a, str>,
    /// The path exactly as the proxy sent it, before any parser read it.
    pub raw_path: &'a str,
    pub dialect: Dialect,
}

impl Original<'_> {
    /// The full original URL.
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.uri)
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or("/")
    }
}

/// `host[:port]` → (the host in lower case, an IPv6 address with its brackets; the port if one
/// is given). `None` when malformed: no host, `[` without `]`, anything but `:PORT` after the
/// host, or a port that is not 1–65535.
fn split_authority(authority: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    let a = authority.trim();
    let (host, port) = match a.strip_prefix('[') {
        Some(v6) => {
            let end = v6.find(']')?;
            let host = a.get(..end + 2)?;
            match a.get(end + 2..)? {
                "" => (host, None),
                rest => (host, Some(rest.strip_prefix(':')?)),
            }
        }
        None => match a.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        },
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(parse_port(p)?),
        None => None,
    };
    Some((lower(host), port))
}

/// The path of an absolute URL exactly as written: from the first `/` or `\` after the
/// authority up to `?` or `#` (empty when there is none).
pub fn raw_path_of_url(raw: &str) -> &str {
    let rest = raw.split_once("://").map(|(_, r)| r).unwrap_or(raw);
    let path = rest.find(['/', '\\', '?', '#']).and_then(|i| rest.get(i..));
    path.and_then(|p| p.split(['?', '#']).next()).unwrap_or("")
}

/// `s` in lower case, copied only if it has upper-case letters.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// `s` in upper case, copied only if it has lower-case letters.
fn upper(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_lowercase()) {
        Cow::Owned(s.to_ascii_uppercase())
    } else {
        Cow::Borrowed(s)
    }
}

fn clean(v: &str) -> Option<&str> {
    let v = v.trim();
    (!v.is_empty() && !v.bytes().any(|b| b.is_ascii_control())).then_some(v)
}

/// The original request, if the peer is a trusted proxy that described one.
pub fn original<'a>(req: &'a Req, trusted: &[Cidr]) -> Result<Original<'a>, Unreadable> {
    if !trusted.iter().any(|c| c.contains(req.peer.ip())) {
        return Err(Unreadable::Untrusted);
    }
    // Absent or blank; a repeated header is not absent (it is malformed).
    let absent = |name: &str| match req.header(name) {
        Ok(None) => true,
        Ok(Some(v)) => v.trim().is_empty(),
        Err(()) => false,
    };
    if absent("x-forwarded-host") && absent("x-original-url") {
        let sent = |names: &[&str]| names.iter().any(|n| !absent(n));
        return Err(Unreadable::Missing(
            if sent(&["x-forwarded-proto", "x-forwarded-uri", "x-forwarded-method"]) {
                Missing::ForwardedHost
            } else if sent(&["x-original-method"]) {
                Missing::OriginalUrl
            } else {
                Missing::Both
            },
        ));
    }
    original_of(req).ok_or(Unreadable::Malformed)
}

/// The original request a trusted proxy described, if its headers can be read.
fn original_of<'a>(req: &'a Req) -> Option<Original<'a>> {
    // A header sent twice, or carrying control characters, makes the request ambiguous: deny
    // rather than fall back to a default ("/", GET) that a bypass rule might match.
    let one = |name: &str| -> Result<Option<&'a str>, ()> {
        match req.header(name)? {
            None => Ok(None),
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => clean(v).map(Some).ok_or(()),
        }
    };
    let (Ok(host), Ok(proto), Ok(uri), Ok(method), Ok(original_url), Ok(original_method)) = (
        one("x-forwarded-host"),
        one("x-forwarded-proto"),
        one("x-forwarded-uri"),
        one("x-forwarded-method"),
        one("x-original-url"),
        one("x-original-method"),
    ) else {
        return None;
    };
    if let Some(authority) = host {
        let scheme = match proto {
            Some("https") => "https",
            Some("http") | None => "http",
            Some(_) => return None,
        };
        let uri = uri.unwrap_or("/");
        if !uri.starts_with('/') {
            return None;
        }
        let (host, port) = split_authority(authority)?;
        return Some(Original {
            method: upper(method.unwrap_or("GET")),
            scheme,
            host,
            authority: Cow::Borrowed(authority),
            port: port.unwrap_or_else(|| default_port(scheme)),
            uri: Cow::Borrowed(uri),
            raw_path: uri.split('?').next().unwrap_or(""),
            dialect: Dialect::Forwarded,
        });
    }
    let raw = original_url?;
    // A request URL never has a fragment, and `host:` with no port is malformed: both appear
    // when a proxy builds the URL from a client-chosen Host (`Host: app.test:#`), and a
    // parser would then judge `/` instead of the path the app serves. Refuse them.
    let authority_raw = raw
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '\\', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    if raw.contains('#') || authority_raw.ends_with(':') || authority_raw.is_empty() {
        return None;
    }
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    let host = url.host_str()?.to_ascii_lowercase();
    let port = url.port_or_known_default()?;
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let uri = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    Some(Original {
        method: upper(original_method.unwrap_or("GET")),
        scheme: if url.scheme() == "https" {
            "https"
        } else {
            "http"
        },
        host: Cow::Owned(host),
        authority: Cow::Owned(authority),
        port,
        uri: Cow::Owned(uri),
        raw_path: raw_path_of_url(raw),
        dialect: Dialect::OriginalUrl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_authority_lower_cases_and_borrows_when_it_can() {
        assert!(matches!(
            split_authority("app.test"),
            Some((Cow::Borrowed("app.test"), None))
        ));
        let split = |a: &str| split_authority(a).map(|(h, p)| (h.into_owned(), p));
        assert_eq!(
            split(" App.Test:8443 "),
            Some(("app.test".into(), Some(8443)))
        );
        assert_eq!(split("[::1]:8080"), Some(("[::1]".into(), Some(8080))));
        assert_eq!(split("[FE80::1]"), Some(("[fe80::1]".into(), None)));
        assert_eq!(
            split("192.168.1.5:9000"),
            Some(("192.168.1.5".into(), Some(9000)))
        );
        for bad in [
            "[::1",
            "[::1]x",
            "[::1]:",
            "app.test:",
            "app.test:#",
            "app.test:?",
            "app.test:0",
            "app.test:65536",
            "app.test:80:80",
            "::1",
            ":80",
            "",
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
        assert!(matches!(upper("GET"), Cow::Borrowed("GET")));
        assert_eq!(upper("post"), "POST");
    }

    #[test]
    fn raw_paths_of_urls_are_taken_before_parsing() {
        assert_eq!(
            raw_path_of_url("http://a.test/x/%2e%2e/y?q=1"),
            "/x/%2e%2e/y"
        );
        assert_eq!(raw_path_of_url("http://a.test\\x\\..\\y"), "\\x\\..\\y");
        assert_eq!(raw_path_of_url("http://a.test:80/p;a/b#f"), "/p;a/b");
        assert_eq!(raw_path_of_url("http://a.test?x=/y"), "");
        assert_eq!(raw_path_of_url("http://a.test"), "");
    }
}
