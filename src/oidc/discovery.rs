//! `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`
//! (RFC 8414): what this server implements, and nothing it does not. Endpoint URLs come from
//! the router's path constants.

use crate::accounts::mfa::{ACR_MFA, ACR_SINGLE};
use serde_json::json;

use crate::app::Worker;
use crate::http::router;
use crate::http::{Req, Resp};
use crate::jwt::Alg;
use crate::oauth::error::OAuthError;
use crate::oauth::token::GRANT_TYPES;

/// Client authentication methods at the token endpoint (`none`: public clients with PKCE).
const TOKEN_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "none"];
/// Client authentication at introspection and revocation.
const AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post"];
/// Scopes with a meaning to latchkey; clients may be given others.
pub const SCOPES: &[&str] = &["openid", "profile", "email", "groups", "offline_access"];

/// The metadata document.
pub fn metadata(issuer: &str) -> serde_json::Value {
    let url = |path: &str| format!("{issuer}{path}");
    json!({
        "issuer": issuer,
        "authorization_endpoint": url(router::AUTHORIZE),
        "token_endpoint": url(router::TOKEN),
        "userinfo_endpoint": url(router::USERINFO),
        "jwks_uri": url(router::JWKS),
        "end_session_endpoint": url(router::LOGOUT),
        "introspection_endpoint": url(router::INTROSPECT),
        "revocation_endpoint": url(router::REVOKE),
        "grant_types_supported": GRANT_TYPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [Alg::Rs256.as_str(), Alg::Es256.as_str()],
        "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp",
            "amr", "acr", "name", "preferred_username", "email", "email_verified", "groups"
        ],
        "acr_values_supported": [ACR_SINGLE, ACR_MFA],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        // RFC 9068 access tokens; there is no registered metadata name for their algorithm,
        // so this latchkey-specific member states it.
        "access_token_signing_alg_values_supported": [Alg::Es256.as_str()],
    })
}

/// Handles both discovery paths.
pub fn handle(w: &mut Worker, _req: &Req, _now: i64) -> Result<Resp, OAuthError> {
    // The document depends only on the issuer: serialised once per `App`, which has one.
    let app = &*w.app;
    let body = app
        .discovery_cache()
        .get_or_init(|| serde_json::to_vec(&metadata(&app.config.issuer)).unwrap_or_default());
    let mut resp = Resp::empty(200)
        .with("Content-Type", "application/json")
        .with("Cache-Control", "public, max-age=300");
    resp.body = body.clone();
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::worker_on;
    use crate::store::Store;

    #[test]
    fn each_issuer_is_served_its_own_document() {
        let mut workers: Vec<_> = ["https://a.test", "https://b.test/tenant"]
            .into_iter()
            .map(|issuer| worker_on(Store::open_in_memory().unwrap(), issuer))
            .collect();
        let req = Req::new(
            crate::http::Method::Get,
            router::DISCOVERY_OIDC,
            "127.0.0.1:1".parse().unwrap(),
        );
        // Twice each, so the second answer comes from the cache.
        for _ in 0..2 {
            for w in &mut workers {
                let resp = handle(w, &req, 0).unwrap();
                let doc: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
                let issuer = w.app.config.issuer.clone();
                assert_eq!(doc["issuer"], issuer.as_str());
                assert_eq!(doc["token_endpoint"], format!("{issuer}{}", router::TOKEN));
            }
        }
    }
}
