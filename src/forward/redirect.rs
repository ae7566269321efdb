//! Where a browser may be sent back after signing in for a protected app: only an http(s) URL
//! whose host and (effective) port some rule's host pattern covers — the same matching as
//! forward auth itself, so a wildcard rule covers its subdomains, not the apex, and a rule with
//! a port only that port — parsed with a real URL parser. Everything oauth2-proxy had to
//! fix open redirects for is refused: `//evil`, `/\evil`, `https:evil`, user information,
//! other schemes, and whitespace or control characters anywhere.

use crate::forward::rules::RuleSet;

/// The URL to return to, if it is allowed.
pub fn validate(raw: &str, rules: &RuleSet) -> Option<String> {
    if raw.len() > 4096
        || raw
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
        || !(raw.starts_with("https://") || raw.starts_with("http://"))
    {
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
    rules.protects(&host, port).then(|| url.to_string())
}

/// Whether the rule that decides a GET of `url` (an allowed return URL) requires a second
/// factor.
pub fn requires_mfa(url: &str, rules: &RuleSet) -> bool {
    let Ok(url) = url::Url::parse(url) else {
        return false;
    };
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    rules
        .find(host, port, url.path(), "GET")
        .is_some_and(|r| r.require_mfa)
}
