//! `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`
//! (RFC 8414): what this server implements, and nothing it does not. Endpoint URLs come from
//! the router's path constants.

use serde_json::json;

use crate::app::Worker;
use crate::http::router;
use crate::http::{Req, Resp};
use crate::jwt::Alg;
use crate::oauth::error::OAuthError;
use crate::oauth::token::GRANT_TYPES;

/// Client authentication methods at the token endpoint.
const AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post"];

/// The metadata document.
pub fn metadata(issuer: &str) -> serde_json::Value {
    let url = |path: &str| format!("{issuer}{path}");
    json!({
        "issuer": issuer,
        "token_endpoint": url(router::TOKEN),
        "jwks_uri": url(router::JWKS),
        "introspection_endpoint": url(router::INTROSPECT),
        "revocation_endpoint": url(router::REVOKE),
        "grant_types_supported": GRANT_TYPES,
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "code_challenge_methods_supported": ["S256"],
        // RFC 9068 access tokens; there is no registered metadata name for their algorithm,
        // so this latchkey-specific member states it.
        "access_token_signing_alg_values_supported": [Alg::Es256.as_str()],
    })
}

/// Handles both discovery paths.
pub fn handle(w: &mut Worker, _req: &Req, _now: i64) -> Result<Resp, OAuthError> {
    Ok(Resp::json(200, &metadata(&w.app.config.issuer))
        .with("Cache-Control", "public, max-age=300"))
}
