//! Access rules: a host pattern, a path (exact, or a prefix ending in `*`), an optional method,
//! and an action. Evaluated in order; the first match decides; no match is a denial.
//!
//! A rule's host ([`HostPattern`]) is one of
//!
//! - a host name, `app.example.org` (letters, digits and `-` in labels of 1–63 characters; a
//!   last label that is a number, as in `1.2.3`, is refused: URL parsers read it as an IPv4
//!   address);
//! - a wildcard, `*.example.org`: one or more labels in front of `example.org`, never
//!   `example.org` itself. Only a whole leading `*.` label is a wildcard, and the rest must have
//!   two labels at least (`*.org`, `*.lan` would cover a whole top-level domain: refused);
//! - an IPv4 address, `192.168.1.5` (std's strict parser: no leading zeros, four parts);
//! - an IPv6 address, `[fd00::5]` (`fd00::5` is accepted and stored bracketed, in std's
//!   canonical lower-case form);
//!
//! each optionally with `:PORT` (1–65535; an IPv6 address needs the brackets then). A rule with
//! a port matches only requests whose effective port is that port — the port in the original
//! authority, or the scheme's default (80 for http, 443 for https) when it has none. A rule
//! without a port matches every port.
//!
//! ## Ambiguous paths
//!
//! Rules match the path after [`normalize_path`], which reads it as RFC 3986 does. Servers and
//! frameworks behind a proxy do not all read a path that way, so forward auth refuses, before
//! any rule is consulted, a path ([`ambiguous_path`], on the raw path as the proxy sent it)
//! that contains:
//!
//! - a control character (`%00`–`%1f`, `%7f`, raw or escaped) or a raw space;
//! - a `;` (Tomcat and Spring cut `;` path parameters: `/public/..;/admin` is `/admin` to
//!   them), raw or as `%3b`;
//! - a backslash (Windows servers, WHATWG URL parsers: a separator), raw or as `%5c`;
//! - an encoded `/` (`%2f`; some servers decode it into a separator, some do not);
//! - an encoded `%` (`%25`: double encoding, `%252e%252e` is `..` to a server that decodes
//!   twice);
//! - a `%` not followed by two hex digits (`%zz`, IIS's `%u002e`);
//! - escapes that do not decode to UTF-8: overlong forms (`%c0%af`, `%c0%ae`, `%e0%80%af`),
//!   invalid bytes (`%ff`), surrogates;
//! - a segment that is `.` or `..` only after decoding (`%2e%2e`, `.%2e`, `%2e`).
//!
//! Literal `.` and `..` segments, repeated slashes and other escapes (`%61`) are normal and are
//! resolved by [`normalize_path`], as every server does.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::store::rules::RuleRow;
use crate::store::{Store, StoreError, User};

/// What `--host` accepts, for error messages.
pub const HOST_FORMS: &str = "expected a host name (app.example.org), a wildcard (*.example.org), \
     an IPv4 address (192.168.1.5) or an IPv6 address ([fd00::5]), optionally with :PORT \
     (1-65535; an IPv6 address needs brackets then)";

/// The host part of a rule, with an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: PatternHost,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternHost {
    Name(String),
    /// `*.` and this suffix.
    Wildcard(String),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    /// A stored host this version's parser refuses (an older version accepted it): it matches
    /// exactly that string, as it did then.
    Legacy(String),
}

/// A request's host (lower case, without port, an IPv6 address in brackets), read once per
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqHost<'a> {
    Name(&'a str),
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl<'a> ReqHost<'a> {
    /// Reads `host`; anything that is not an IP literal is a name.
    pub fn parse(host: &'a str) -> ReqHost<'a> {
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            if let Ok(a) = v6.parse() {
                return ReqHost::V6(a);
            }
        } else if let Ok(a) = host.parse() {
            return ReqHost::V4(a);
        }
        ReqHost::Name(host)
    }
}

/// A port as written after `:`: 1–65535 in plain digits.
pub fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|p| *p != 0)
}

/// The default port of `http` or `https`.
pub fn default_port(scheme: &str) -> u16 {
    if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    }
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// A host name as a rule may name it (lower case already).
fn valid_name(n: &str) -> Result<(), String> {
    if n.len() > 253 || !n.split('.').all(valid_label) {
        return Err(format!(
            "{n:?} is not a host name: labels of letters, digits and '-', separated by '.'"
        ));
    }
    // WHATWG's "ends in a number": such a name is an IPv4 address to a URL parser.
    let last = n.rsplit('.').next().unwrap_or("");
    let hex = last
        .strip_prefix("0x")
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    if last.bytes().all(|b| b.is_ascii_digit()) || hex {
        return Err(format!(
            "{n:?} ends in a number: write an IPv4 address as four numbers, like 192.168.1.5"
        ));
    }
    Ok(())
}

impl HostPattern {
    /// Parses what `rule add --host` accepts (see the module docs), strictly.
    pub fn parse(raw: &str) -> Result<HostPattern, String> {
        let s = raw.trim().to_ascii_lowercase();
        if s.is_empty() {
            return Err("the host is empty".into());
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: '[' without ']'"))?;
            let a: Ipv6Addr = v6
                .parse()
                .map_err(|_| format!("[{v6}] is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{s:?}: only :PORT may follow the address"))?,
                ),
            };
            (PatternHost::V6(a), port)
        } else if let Ok(a) = s.parse::<Ipv6Addr>() {
            (PatternHost::V6(a), None)
        } else {
            let (name, port) = match s.split_once(':') {
                Some((n, p)) if !p.contains(':') => (n, Some(p)),
                Some(_) => {
                    return Err(format!("{s:?} is not an IPv6 address"));
                }
                None => (s.as_str(), None),
            };
            let host = if let Ok(a) = name.parse::<Ipv4Addr>() {
                PatternHost::V4(a)
            } else if let Some(suffix) = name.strip_prefix("*.") {
                valid_name(suffix)?;
                if !suffix.contains('.') {
                    return Err(format!(
                        "{name:?} would cover a whole top-level domain: name at least two labels \
                         after '*.' (*.home.example.org)"
                    ));
                }
                PatternHost::Wildcard(suffix.to_string())
            } else if name.contains('*') {
                return Err(format!(
                    "{name:?}: only a whole first label may be a wildcard (*.example.org)"
                ));
            } else {
                valid_name(name)?;
                PatternHost::Name(name.to_string())
            };
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                parse_port(p)
                    .ok_or_else(|| format!("{p:?} is not a port: a number from 1 to 65535"))?,
            ),
        };
        Ok(HostPattern { host, port })
    }

    /// A stored host: parsed, or (refused by this version's parser) matched as the exact string.
    fn stored(raw: &str) -> HostPattern {
        HostPattern::parse(raw).unwrap_or_else(|_| HostPattern {
            host: PatternHost::Legacy(raw.to_ascii_lowercase()),
            port: None,
        })
    }

    /// True if a request for `host` on (effective) `port` is covered.
    pub fn matches(&self, host: ReqHost<'_>, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, host) {
            (PatternHost::Name(n) | PatternHost::Legacy(n), ReqHost::Name(h)) => n == h,
            (PatternHost::Wildcard(suffix), ReqHost::Name(h)) => h
                .strip_suffix(suffix.as_str())
                .and_then(|front| front.strip_suffix('.'))
                .is_some_and(|front| {
                    front.split('.').all(|l| {
                        !l.is_empty()
                            && l.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
                }),
            (PatternHost::V4(a), ReqHost::V4(b)) => *a == b,
            (PatternHost::V6(a), ReqHost::V6(b)) => *a == b,
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    /// The canonical form, as stored and listed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            PatternHost::Name(n) | PatternHost::Legacy(n) => f.write_str(n)?,
            PatternHost::Wildcard(s) => write!(f, "*.{s}")?,
            PatternHost::V4(a) => write!(f, "{a}")?,
            PatternHost::V6(a) => write!(f, "[{a}]")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// What a matching rule does. A new rule names the group or user by name; a loaded rule holds
/// what the hot path compares: the group's current name (empty if the group was removed, which
/// matches nobody) and the user's `sub` (so a renamed user stays admitted and a newcomer who
/// takes the old name is not). [`Rule::subject`] has the names to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    AllowGroup(String),
    AllowUser(String),
    AllowAnyUser,
    Bypass,
    Deny,
}

/// A loaded rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: i64,
    /// The host pattern in its canonical form (as listed).
    pub host: String,
    pub pattern: HostPattern,
    pub path: String,
    pub method: Option<String>,
    pub action: Action,
    /// Scopes an API key or access token must hold; `None` means people only.
    pub scope: Option<Vec<String>>,
    /// Who an allow-group or allow-user rule names, as shown: the current group name or
    /// username, or `removed group ID` / `removed user SUB` once it is gone.
    pub subject: Option<String>,
    /// A person must have signed in with a second factor (or a user-verified passkey).
    pub require_mfa: bool,
}

impl Rule {
    fn from_row(r: RuleRow) -> Option<Rule> {
        let shown = |kind: &str, raw: &str| {
            r.subject_name
                .clone()
                .unwrap_or_else(|| format!("removed {kind} {raw}"))
        };
        let (action, subject) = match (r.action.as_str(), r.subject) {
            ("allow_group", Some(id)) => (
                Action::AllowGroup(r.subject_name.clone().unwrap_or_default()),
                Some(shown("group", &id)),
            ),
            ("allow_user", Some(sub)) => {
                let name = shown("user", &sub);
                (Action::AllowUser(sub), Some(name))
            }
            (_, _) => (
                match r.action.as_str() {
                    "allow_any_user" => Action::AllowAnyUser,
                    "bypass" => Action::Bypass,
                    "deny" => Action::Deny,
                    _ => return None,
                },
                None,
            ),
        };
        let pattern = HostPattern::stored(&r.host);
        Some(Rule {
            id: r.id,
            host: pattern.to_string(),
            pattern,
            path: r.path,
            method: r.method.map(|m| m.to_ascii_uppercase()),
            action,
            scope: r.scope.map(|s| {
                s.split(' ')
                    .filter(|x| !x.is_empty())
                    .map(String::from)
                    .collect()
            }),
            subject,
            require_mfa: r.require_mfa,
        })
    }

    /// True if the rule applies to this request (path already normalised).
    pub fn matches(&self, host: ReqHost<'_>, port: u16, path: &str, method: &str) -> bool {
        if !self.pattern.matches(host, port) {
            return false;
        }
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.path,
        }
    }

    /// Who the rule lets in, in words (for `rule list` and `rule test`).
    pub fn describe(&self) -> String {
        let subject = self.subject.as_deref().unwrap_or("");
        let who = match &self.action {
            Action::AllowGroup(_) => format!("allow group {subject}"),
            Action::AllowUser(_) => format!("allow user {subject}"),
            Action::AllowAnyUser => "allow any signed-in user".into(),
            Action::Bypass => "bypass (no sign-in)".into(),
            Action::Deny => "deny".into(),
        };
        let mut scope = self
            .scope
            .as_ref()
            .map(|s| format!("; machines with scope {}", s.join(" ")))
            .unwrap_or_default();
        if self.require_mfa {
            scope.push_str("; second factor required");
        }
        format!(
            "#{} {} {}{} -> {who}{scope}",
            self.id,
            self.method.as_deref().unwrap_or("*"),
            self.host,
            self.path
        )
    }

    /// Whether a signed-in user passes this rule.
    pub fn admits_user(&self, user: &User) -> bool {
        match &self.action {
            Action::AllowAnyUser => true,
            Action::AllowGroup(g) => !g.is_empty() && user.groups.iter().any(|x| x == g),
            Action::AllowUser(sub) => user.id == *sub,
            Action::Bypass => true,
            Action::Deny => false,
        }
    }

    /// Whether a machine credential with these scopes passes this rule.
    pub fn admits_machine(&self, scopes: &[String]) -> bool {
        match (&self.action, &self.scope) {
            (Action::Deny, _) => false,
            (Action::Bypass, _) => true,
            (_, Some(needed)) => needed.iter().all(|s| scopes.contains(s)),
            (_, None) => false,
        }
    }
}

/// Every rule in order.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Loads the rules.
    pub fn load(store: &Store) -> Result<RuleSet, StoreError> {
        Ok(RuleSet {
            rules: store
                .rules()?
                .into_iter()
                .filter_map(Rule::from_row)
                .collect(),
        })
    }

    /// The rule deciding a request for `host` (lower case, without port) on its effective
    /// `port`: the first that matches.
    pub fn find(&self, host: &str, port: u16, path: &str, method: &str) -> Option<&Rule> {
        let host = ReqHost::parse(host);
        let path = normalize_path(path);
        self.rules
            .iter()
            .find(|r| r.matches(host, port, &path, method))
    }

    /// True if some rule's host pattern covers this host and port (only such URLs are valid
    /// return targets).
    pub fn protects(&self, host: &str, port: u16) -> bool {
        let host = ReqHost::parse(host);
        self.rules.iter().any(|r| r.pattern.matches(host, port))
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }
}

/// The path as the app behind the proxy will see it: percent-escapes decoded, repeated slashes
/// collapsed, `.` and `..` segments resolved — so `/%61dmin/`, `//admin` and `/x/../admin` all
/// meet a rule for `/admin/*`.
pub fn normalize_path(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = decoded.ends_with('/') && !out.is_empty();
    let mut p = format!("/{}", out.join("/"));
    if trailing {
        p.push('/');
    }
    p
}

/// Why forward auth refuses this raw path (as the proxy sent it, without the query) as
/// ambiguous, if it does: see the module docs for the list.
pub fn ambiguous_path(raw: &str) -> Option<&'static str> {
    let bytes = raw.as_bytes();
    let mut escaped = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            0..=0x20 | 0x7f => return Some("a control character or space"),
            b'\\' => return Some("a backslash"),
            b';' => return Some("a ';' path parameter"),
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    return Some("a '%' not followed by two hex digits");
                };
                match hi * 16 + lo {
                    0..=0x1f | 0x7f => return Some("an escaped control character"),
                    0x2f => return Some("an encoded '/'"),
                    0x5c => return Some("an encoded backslash"),
                    0x3b => return Some("an encoded ';'"),
                    0x25 => return Some("double encoding (%25)"),
                    _ => {}
                }
                escaped = true;
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if !escaped {
        return None;
    }
    if std::str::from_utf8(&percent_encoding::percent_decode_str(raw).collect::<Vec<u8>>()).is_err()
    {
        return Some("escapes that are not UTF-8 (overlong or invalid)");
    }
    let encoded_dots = raw.split('/').any(|seg| {
        seg.contains('%')
            && matches!(
                percent_encoding::percent_decode_str(seg)
                    .decode_utf8_lossy()
                    .as_ref(),
                "." | ".."
            )
    });
    encoded_dots.then_some("an encoded '.' or '..' segment")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(path: &str, method: Option<&str>) -> Rule {
        rule_on("app.example", path, method)
    }

    fn rule_on(host: &str, path: &str, method: Option<&str>) -> Rule {
        let pattern = HostPattern::parse(host).unwrap();
        Rule {
            id: 1,
            host: pattern.to_string(),
            pattern,
            path: path.into(),
            method: method.map(String::from),
            action: Action::Deny,
            scope: None,
            subject: None,
            require_mfa: false,
        }
    }

    /// Whether a rule for `pattern` covers `host` on `port`.
    fn covers(pattern: &str, host: &str, port: u16) -> bool {
        HostPattern::parse(pattern)
            .unwrap()
            .matches(ReqHost::parse(host), port)
    }

    #[test]
    fn path_patterns() {
        let r = rule("/admin/*", None);
        let h = ReqHost::parse("app.example");
        assert!(r.matches(h, 443, "/admin/", "GET"));
        assert!(r.matches(h, 80, "/admin/x", "POST"));
        assert!(!r.matches(h, 80, "/admin", "GET"));
        assert!(!r.matches(ReqHost::parse("other.example"), 80, "/admin/x", "GET"));
        let exact = rule("/health", Some("GET"));
        assert!(exact.matches(h, 80, "/health", "GET"));
        assert!(!exact.matches(h, 80, "/health", "POST"));
        assert!(!exact.matches(h, 80, "/health/x", "GET"));
    }

    #[test]
    fn host_patterns_parse_to_their_canonical_form() {
        let canon = |s: &str| HostPattern::parse(s).map(|p| p.to_string());
        for (given, stored) in [
            ("App.Example", "app.example"),
            (" nas ", "nas"),
            ("app.example:8443", "app.example:8443"),
            ("app.example:08443", "app.example:8443"),
            ("192.168.1.5", "192.168.1.5"),
            ("192.168.1.5:8080", "192.168.1.5:8080"),
            ("[fd00::5]", "[fd00::5]"),
            ("fd00::5", "[fd00::5]"),
            ("FD00:0:0::5", "[fd00::5]"),
            ("[FD00::5]:9000", "[fd00::5]:9000"),
            ("[::1]:1", "[::1]:1"),
            ("[::ffff:192.168.1.5]", "[::ffff:192.168.1.5]"),
            ("*.Example.Org", "*.example.org"),
            ("*.example.org:65535", "*.example.org:65535"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("3dprinter.lan", "3dprinter.lan"),
        ] {
            assert_eq!(canon(given).as_deref(), Ok(stored), "{given:?}");
        }
        for bad in [
            "",
            "app.example:",
            "app.example:0",
            "app.example:65536",
            "app.example:+80",
            "app.example:80:80",
            "app.example:http",
            "[fd00::5]8080",
            "[fd00::5",
            "[fd00::5]:",
            "[app.example]",
            "[fd00::5%eth0]",
            "fd00::5:99999",
            "192.168.1.05",
            "192.168.1",
            "1.2.3",
            "app.0x7f",
            "256.1.1.1",
            "*",
            "*.",
            "*.org",
            "*.lan:80",
            "*example.org",
            "a.*.org",
            "*.*.example.org",
            "**.example.org",
            "app.example.",
            ".app.example",
            "app..example",
            "-app.example",
            "app-.example",
            "app_x.example",
            "app.example/x",
            "user@app.example",
            "http://app.example",
            "app example",
            "*.192.168.1.5",
            &format!("{}.example", "a".repeat(64)),
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?} was accepted");
        }
        // A host an older version stored but this parser refuses matches only itself.
        let legacy = HostPattern::stored("app..Example");
        assert_eq!(legacy.to_string(), "app..example");
        assert!(legacy.matches(ReqHost::parse("app..example"), 80));
        assert!(!legacy.matches(ReqHost::parse("app.example"), 80));
    }

    #[test]
    fn ports_and_default_ports() {
        assert!(covers("app.example", "app.example", 80));
        assert!(covers("app.example", "app.example", 8443));
        assert!(covers("app.example:443", "app.example", 443));
        assert!(!covers("app.example:443", "app.example", 80));
        assert!(!covers("app.example:8080", "app.example", 9000));
        assert!(covers("192.168.1.5:8080", "192.168.1.5", 8080));
        assert!(!covers("192.168.1.5:8080", "192.168.1.5", 9000));
        assert!(!covers("192.168.1.5:8080", "192.168.1.6", 8080));
        assert!(covers("192.168.1.5", "192.168.1.5", 1));
        // An address is not a name, nor the other family.
        assert!(!covers("192.168.1.5", "[::ffff:192.168.1.5]", 80));
        assert!(!covers("[::ffff:192.168.1.5]", "192.168.1.5", 80));
        assert_eq!(default_port("http"), 80);
        assert_eq!(default_port("https"), 443);
        assert_eq!(parse_port("443"), Some(443));
        assert_eq!(parse_port("0"), None);
        assert_eq!(parse_port(""), None);
        assert_eq!(parse_port("-1"), None);
        assert_eq!(parse_port("123456"), None);
    }

    #[test]
    fn ipv6_literals_match_by_address() {
        assert!(covers("[fd00::5]:8080", "[fd00::5]", 8080));
        assert!(covers("fd00::5", "[fd00:0::5]", 8080));
        assert!(covers(
            "[fd00::5]",
            "[FD00::5]".to_ascii_lowercase().as_str(),
            443
        ));
        assert!(!covers("[fd00::5]:8080", "[fd00::5]", 8081));
        assert!(!covers("[fd00::5]", "[fd00::6]", 80));
        assert!(!covers("[::1]", "::1", 80), "a request host has brackets");
        assert!(!covers("[::1]", "[::1", 80));
    }

    #[test]
    fn wildcards_cover_subdomains_not_the_apex() {
        for host in ["app.example.org", "a.b.example.org", "x-1.example.org"] {
            assert!(covers("*.example.org", host, 443), "{host}");
        }
        for host in [
            "example.org",
            ".example.org",
            "a..example.org",
            "evilexample.org",
            "example.org.evil",
            "app.example.org.",
            "app.other.org",
            "a/b.example.org",
        ] {
            assert!(!covers("*.example.org", host, 443), "{host}");
        }
        assert!(covers("*.example.org:8443", "app.example.org", 8443));
        assert!(!covers("*.example.org:8443", "app.example.org", 443));
        // Exact names stay exact.
        assert!(!covers("example.org", "app.example.org", 443));
        assert!(!covers("app.example.org", "example.org", 443));
    }

    #[test]
    fn first_match_decides_with_wildcards_in_order() {
        let set = RuleSet {
            rules: vec![
                Rule {
                    id: 1,
                    ..rule_on("*.example.org", "/*", None)
                },
                Rule {
                    id: 2,
                    ..rule_on("app.example.org", "/*", None)
                },
                Rule {
                    id: 3,
                    ..rule_on("app.example.org:8443", "/*", None)
                },
            ],
        };
        assert_eq!(
            set.find("app.example.org", 443, "/", "GET").map(|r| r.id),
            Some(1)
        );
        assert_eq!(set.find("example.org", 443, "/", "GET").map(|r| r.id), None);
        assert!(set.protects("app.example.org", 8443));
        assert!(set.protects("x.example.org", 1));
        assert!(!set.protects("example.org", 443));
        let ported = RuleSet {
            rules: vec![rule_on("app.example.org:8443", "/*", None)],
        };
        assert!(ported.protects("app.example.org", 8443));
        assert!(!ported.protects("app.example.org", 443));
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize_path("/%61dmin/x"), "/admin/x");
        assert_eq!(normalize_path("//admin//x"), "/admin/x");
        assert_eq!(normalize_path("/x/../admin/"), "/admin/");
        assert_eq!(normalize_path("/../../admin"), "/admin");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path(""), "/");
    }

    #[test]
    fn ambiguous_paths_are_named() {
        for p in [
            "/public/..;/admin",
            "/public;x=1/a",
            "/public/..%3b/admin",
            "/public\\..\\admin",
            "/public/%5c../admin",
            "/public/%5C../admin",
            "/public/..%2fadmin",
            "/public/..%2Fadmin",
            "/public/%2e%2e/admin",
            "/public/%2E%2E/admin",
            "/public/.%2e/admin",
            "/public/%2e./admin",
            "/public/%2e/admin",
            "/public/%252e%252e/admin",
            "/public/%00/../admin",
            "/public/%0a",
            "/public/%7f",
            "/public/\u{1}",
            "/public/a b",
            "/public/%c0%ae%c0%ae/admin",
            "/public/%c0%af",
            "/public/%e0%80%af",
            "/public/%ff",
            "/public/%ed%a0%80",
            "/public/%c3",
            "/public/%u002e%u002e/admin",
            "/public/%zz",
            "/public/%",
            "/public/%2",
        ] {
            assert!(ambiguous_path(p).is_some(), "{p:?} was not refused");
        }
        for p in [
            "",
            "/",
            "/public/x",
            "/public/../admin",
            "/public/./x",
            "//public//x",
            "/%61dmin",
            "/caf%c3%a9",
            "/café",
            "/a%2eb/",
            "/...",
            "/%2e%2e%2e",
            "/a%3fb",
            "/a+b",
            "/a%20b",
        ] {
            assert_eq!(ambiguous_path(p), None, "{p:?} was refused");
        }
    }
}
