//! The route table: every path latchkey serves, with its methods and handler. Discovery
//! builds its endpoint URLs from the same constants, so the two cannot drift apart.

use crate::app::Worker;
use crate::http::{Method, Req, Resp};
use crate::oauth::error::OAuthError;
use crate::{oauth, oidc};

/// OpenID Connect discovery (OIDC Discovery 1.0 §4).
pub const DISCOVERY_OIDC: &str = "/.well-known/openid-configuration";
/// Authorization server metadata (RFC 8414 §3).
pub const DISCOVERY_OAUTH: &str = "/.well-known/oauth-authorization-server";
/// The JWK Set of the signing keys.
pub const JWKS: &str = "/jwks.json";
/// The token endpoint (RFC 6749 §3.2).
pub const TOKEN: &str = "/token";
/// Token introspection (RFC 7662).
pub const INTROSPECT: &str = "/introspect";
/// Token revocation (RFC 7009).
pub const REVOKE: &str = "/revoke";
/// Liveness and database check.
pub const HEALTHZ: &str = "/healthz";

type Endpoint = fn(&mut Worker, &Req, i64) -> Result<Resp, OAuthError>;

/// (path, allowed methods, handler). HEAD is served wherever GET is.
const ROUTES: &[(&str, &[Method], Endpoint)] = &[
    (DISCOVERY_OIDC, &[Method::Get], oidc::discovery::handle),
    (DISCOVERY_OAUTH, &[Method::Get], oidc::discovery::handle),
    (JWKS, &[Method::Get], oidc::jwks::handle),
    (TOKEN, &[Method::Post], oauth::token::handle),
    (INTROSPECT, &[Method::Post], oauth::introspect::handle),
    (REVOKE, &[Method::Post], oauth::revoke::handle),
    (HEALTHZ, &[Method::Get], healthz),
];

/// Routes a request and turns an error value into its response.
pub fn route(w: &mut Worker, req: &Req) -> Resp {
    let Some((_, methods, endpoint)) = ROUTES.iter().find(|(p, _, _)| *p == req.path) else {
        return Resp::json_error(404, "not_found", "no such endpoint");
    };
    let method = if req.method == Method::Head {
        Method::Get
    } else {
        req.method
    };
    if !methods.contains(&method) {
        let mut allow: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        if methods.contains(&Method::Get) {
            allow.push("HEAD");
        }
        return Resp::json_error(
            405,
            "method_not_allowed",
            "method not allowed on this endpoint",
        )
        .with("Allow", allow.join(", "));
    }
    let now = crate::timefmt::now();
    endpoint(w, req, now).unwrap_or_else(OAuthError::into_resp)
}

/// `GET /healthz`: 200 `{"status":"ok"}` when the database answers, 503 otherwise.
fn healthz(w: &mut Worker, _req: &Req, _now: i64) -> Result<Resp, OAuthError> {
    Ok(match w.store.ping() {
        Ok(()) => Resp::json(200, &serde_json::json!({"status": "ok", "database": "ok"})),
        Err(e) => {
            log::error!("health check: database: {e}");
            Resp::json(
                503,
                &serde_json::json!({"status": "unavailable", "database": "error"}),
            )
        }
    }
    .with("Cache-Control", "no-store"))
}
