//! Scopes (RFC 6749 §3.3): space-delimited scope-tokens of
//! `%x21 / %x23-5B / %x5D-7E` (printable ASCII except space, `"` and `\`).

use crate::store::Client;

/// True for a valid scope-token.
pub fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Parses a scope parameter into distinct tokens, in order. `None` if any token is invalid.
/// Runs of spaces are tolerated (clients join lists carelessly).
pub fn parse(raw: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for t in raw.split(' ').filter(|t| !t.is_empty()) {
        if !valid_token(t) {
            return None;
        }
        if !out.iter().any(|s| s == t) {
            out.push(t.to_string());
        }
    }
    Some(out)
}

/// True if every scope in `requested` is in `allowed`.
pub fn is_subset(requested: &[String], allowed: &[String]) -> bool {
    requested.iter().all(|r| allowed.contains(r))
}

/// The OpenID Connect scope that asks for a refresh token (OIDC Core §11).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// True if a user grant (authorization code, refresh) may carry `scope` for `client`: a scope
/// the client was registered with, or `offline_access` for a client that may refresh —
/// whether or not its registered scopes name it. A client without the refresh_token grant
/// never gets `offline_access`, even when it was registered with it.
pub fn permits(client: &Client, scope: &str) -> bool {
    if scope == OFFLINE_ACCESS {
        return client.allows_grant("refresh_token");
    }
    client.scopes.iter().any(|s| s == scope)
}

/// The scope a user grant gets for `requested` (the client's registered scopes when it asks
/// for none). `offline_access` is dropped, not refused, for a client that may not refresh (it
/// asked for something it cannot have, and the token response's `scope` says what it got);
/// any other scope the client may not have is an error (`invalid_scope`).
pub fn grant_for(client: &Client, requested: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let requested = requested.unwrap_or_else(|| client.scopes.clone());
    if let Some(bad) = requested
        .iter()
        .find(|s| *s != OFFLINE_ACCESS && !permits(client, s))
    {
        return Err(bad.clone());
    }
    Ok(requested
        .into_iter()
        .filter(|s| permits(client, s))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        assert_eq!(parse("a b  a c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(parse("").unwrap(), Vec::<String>::new());
        assert!(parse("a\"b").is_none());
        assert!(parse("a\\b").is_none());
        assert!(parse("a\tb").is_none());
        assert!(parse("é").is_none());
        assert!(parse("invoices:read api/x!").is_some());
    }

    fn client(grants: &[&str], scopes: &[&str]) -> Client {
        Client {
            client_id: "c".into(),
            name: "c".into(),
            secret_hash: None,
            redirect_uris: vec![],
            grant_types: grants.iter().map(|s| s.to_string()).collect(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            audience: None,
            access_token_ttl: None,
            require_pkce: true,
            skip_consent: false,
            id_token_alg: "RS256".into(),
            post_logout_redirect_uris: vec![],
            allowed_groups: vec![],
            require_mfa: false,
            created_at: 0,
        }
    }

    fn v(s: &str) -> Vec<String> {
        parse(s).unwrap()
    }

    #[test]
    fn offline_access_follows_the_refresh_grant_not_the_registered_scopes() {
        let refreshing = client(
            &["authorization_code", "refresh_token"],
            &["openid", "email"],
        );
        assert_eq!(
            grant_for(&refreshing, Some(v("openid offline_access"))).unwrap(),
            v("openid offline_access")
        );
        assert_eq!(grant_for(&refreshing, None).unwrap(), v("openid email"));
        assert_eq!(
            grant_for(&refreshing, Some(v("openid admin"))).unwrap_err(),
            "admin"
        );
        // Registered with offline_access but no refresh grant: dropped, never granted.
        let code_only = client(&["authorization_code"], &["openid", "offline_access"]);
        assert_eq!(
            grant_for(&code_only, Some(v("openid offline_access"))).unwrap(),
            v("openid")
        );
        assert_eq!(grant_for(&code_only, None).unwrap(), v("openid"));
        assert!(!permits(&code_only, OFFLINE_ACCESS));
        assert!(permits(&refreshing, OFFLINE_ACCESS));
    }

    #[test]
    fn subset() {
        let allowed = vec!["a".to_string(), "b".to_string()];
        assert!(is_subset(&["a".into()], &allowed));
        assert!(is_subset(&[], &allowed));
        assert!(!is_subset(&["c".into()], &allowed));
    }
}
