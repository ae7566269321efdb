//! `GET /jwks.json`: every published key (active and retiring) as a public JWK. Cacheable, unlike
//! token responses; the lifetime is short so a rotation reaches resource servers quickly.

use crate::app::Worker;
use crate::http::{Req, Resp};
use crate::oauth::error::OAuthError;

/// Handles a JWKS request.
pub fn handle(w: &mut Worker, _req: &Req, _now: i64) -> Result<Resp, OAuthError> {
    let mut resp = Resp::empty(200)
        .with("Content-Type", "application/jwk-set+json")
        .with("Cache-Control", "public, max-age=300");
    resp.body = w.app.keys().jwks_json().to_vec();
    Ok(resp)
}
