//! `GET /jwks.json`: every published key (active and retiring) as a public JWK. Cacheable, unlike
//! token responses; the lifetime is short so a rotation reaches resource servers quickly.

use crate::app::Worker;
use crate::http::{Req, Resp};
use crate::oauth::error::OAuthError;

/// Handles a JWKS request.
pub fn handle(w: &mut Worker, _req: &Req, _now: i64) -> Result<Resp, OAuthError> {
    Ok(Resp::json(200, &w.app.keys().jwks())
        .set("Content-Type", "application/jwk-set+json")
        .with("Cache-Control", "public, max-age=300"))
}
