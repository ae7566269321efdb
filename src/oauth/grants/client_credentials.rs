//! `grant_type=client_credentials` (RFC 6749 §4.4): a confidential client gets an access token
//! for itself. No refresh token (§4.4.3).

use serde::Serialize;

use crate::app::Worker;
use crate::http::Resp;
use crate::http::form::Form;
use crate::oauth::access_token;
use crate::oauth::error::OAuthError;
use crate::oauth::scope;
use crate::store::Client;

/// The wire value.
pub const GRANT_TYPE: &str = "client_credentials";

/// Issues the token. The client is authenticated and allowed this grant.
pub fn exchange(w: &Worker, client: &Client, form: &Form, now: i64) -> Result<Resp, OAuthError> {
    // OAuth 2.1 §4.2: "MUST only be used by confidential clients".
    if client.is_public() {
        return Err(OAuthError::unauthorized_client(
            "public clients cannot use the client_credentials grant",
        ));
    }
    let granted = match form.get("scope")? {
        None => client.scopes.clone(),
        Some(raw) => {
            let requested =
                scope::parse(raw).ok_or_else(|| OAuthError::invalid_scope("scope is malformed"))?;
            if !scope::is_subset(&requested, &client.scopes) {
                return Err(OAuthError::invalid_scope(
                    "requested scope is not allowed for this client",
                ));
            }
            requested
        }
    };
    let ttl = client
        .access_token_ttl
        .unwrap_or_else(|| w.app.settings().get(crate::config::Setting::AccessTtl));
    let aud = client.audience.as_deref().unwrap_or(&w.app.config.issuer);
    let issued = access_token::issue(
        &w.app,
        &client.client_id,
        &client.client_id,
        aud,
        &granted,
        ttl,
        now,
    )?;
    let scope = granted.join(" ");
    let body = TokenResponse {
        access_token: &issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: (!scope.is_empty()).then_some(scope.as_str()),
    };
    Ok(Resp::json(200, &body).no_store())
}

/// The token response (RFC 6749 §5.1), serialised straight from borrowed fields.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}
