//! `POST /token` (RFC 6749 §3.2): read the form once, authenticate the client, pick the grant
//! by `grant_type`, check the client may use it, and let the grant issue. Every answer, success
//! or error, carries `Cache-Control: no-store`.

use crate::app::Worker;
use crate::http::{Req, Resp};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::oauth::grants::{authorization_code, client_credentials, refresh_token};
use crate::oauth::{client_auth, read_form};

/// Grant types this server implements, in the order discovery lists them.
pub const GRANT_TYPES: &[&str] = &[
    authorization_code::GRANT_TYPE,
    refresh_token::GRANT_TYPE,
    client_credentials::GRANT_TYPE,
];

/// Handles a token request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Result<Resp, OAuthError> {
    let form = read_form(req)?;
    let grant_type = form
        .get("grant_type")?
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    let (client, _method) = client_auth::authenticate(w, req, &form)?;
    if !GRANT_TYPES.contains(&grant_type) {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "grant_type is not supported",
        ));
    }
    if !client.allows_grant(grant_type) {
        return Err(OAuthError::unauthorized_client(
            "the client is not allowed this grant type",
        ));
    }
    let address = crate::http::client_ip::client_ip(req, &w.app.config.trusted_proxies).to_string();
    let (grant, result) = match grant_type {
        client_credentials::GRANT_TYPE => (
            client_credentials::GRANT_TYPE,
            client_credentials::exchange(w, &client, &form, now),
        ),
        authorization_code::GRANT_TYPE => (
            authorization_code::GRANT_TYPE,
            authorization_code::exchange(w, &client, &form, &address, now),
        ),
        refresh_token::GRANT_TYPE => (
            refresh_token::GRANT_TYPE,
            refresh_token::exchange(w, &client, &form, &address, now),
        ),
        _ => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type is not supported",
            ));
        }
    };
    if result.is_ok() {
        crate::metrics::METRICS.token_issued(grant);
        w.app.audit().record(
            now,
            &format!("client:{}", client.client_id),
            "token_issued",
            grant,
            "ok",
            &address,
        );
    }
    result
}
