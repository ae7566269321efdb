//! Client authentication at the token, introspection and revocation endpoints:
//! `client_secret_basic` (RFC 6749 §2.3.1; id and secret form-encoded inside Basic),
//! `client_secret_post`, and `none` for public clients (which only identify themselves). One
//! mechanism per request (OAuth 2.1 §2.4). Secrets are compared as SHA-256 digests in constant
//! time.

use std::sync::Arc;

use crate::app::Worker;
use crate::crypto::{ct_eq, sha256};
use crate::http::Req;
use crate::http::auth::{Authorization, authorization};
use crate::http::form::Form;
use crate::oauth::error::OAuthError;
use crate::store::Client;

/// How the client authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `client_secret_basic`.
    Basic,
    /// `client_secret_post`.
    Post,
    /// `none`: a public client named itself with `client_id` only.
    None,
}

/// The failure every wrong credential gets: the same words whether the client is unknown or
/// its secret is wrong.
fn failed() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

/// Authenticates the client of a back-channel request.
pub fn authenticate(
    w: &Worker,
    req: &Req,
    form: &Form,
) -> Result<(Arc<Client>, Method), OAuthError> {
    let header = authorization(req)
        .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
    let form_id = form.get("client_id")?;
    let form_secret = form.get("client_secret")?;
    match header {
        Authorization::Basic { id, secret } => {
            if form_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "client authentication must use only one mechanism",
                ));
            }
            if form_id.is_some_and(|f| f != id) {
                return Err(OAuthError::invalid_request(
                    "client_id does not match the Authorization header",
                ));
            }
            Ok((check_secret(w, &id, &secret)?, Method::Basic))
        }
        Authorization::Bearer(_) | Authorization::Other => Err(OAuthError::invalid_client(
            "unsupported client authentication method",
        )),
        Authorization::None => match (form_id, form_secret) {
            (Some(id), Some(secret)) => Ok((check_secret(w, id, secret)?, Method::Post)),
            (Some(id), None) => match w.client_where(id, Client::is_public)? {
                Some(c) if c.is_public() => Ok((c, Method::None)),
                _ => Err(failed()),
            },
            (None, _) => Err(OAuthError::invalid_client("client authentication required")),
        },
    }
}

fn check_secret(w: &Worker, id: &str, secret: &str) -> Result<Arc<Client>, OAuthError> {
    let presented = sha256(secret.as_bytes());
    let matches = |c: &Client| {
        c.secret_hash
            .as_ref()
            .is_some_and(|stored| ct_eq(stored, &presented))
    };
    // Not in the index, or the secret differs from the indexed one: the database has a client
    // added or a secret rotated a moment ago.
    match w.client_where(id, matches)? {
        Some(c) if matches(&c) => Ok(c),
        Some(c) => {
            log::info!(target: "latchkey::security", "client authentication failed for client {}", c.client_id);
            Err(failed())
        }
        None => Err(failed()),
    }
}
