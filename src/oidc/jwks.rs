//! `GET /jwks.json`: every published key (next, active and retiring) as a public JWK. Cacheable,
//! unlike token responses, for the `jwks.max_age` setting (default 300 s): short, so a rotation
//! reaches resource servers quickly, and the time a rotated key waits before it signs (see
//! `jwt::keys`).

use crate::app::Worker;
use crate::http::{Req, Resp};
use crate::oauth::error::OAuthError;

/// Handles a JWKS request.
pub fn handle(w: &mut Worker, _req: &Req, _now: i64) -> Result<Resp, OAuthError> {
    let mut resp = Resp::empty(200)
        .with("Content-Type", "application/jwk-set+json")
        .with(
            "Cache-Control",
            format!(
                "public, max-age={}",
                w.app.settings().get(crate::config::Setting::JwksMaxAge)
            ),
        );
    resp.body = w.app.keys().jwks_json().to_vec();
    Ok(resp)
}
