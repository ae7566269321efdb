//! `GET /v1/apikeys/verify`: how an app without OAuth client credentials checks a key it
//! received. The key comes in `X-API-Key` or `Authorization: Bearer lk_…` — never in the URL
//! (URLs end up in logs and `Referer` headers), so a key in the query is refused. An optional
//! `?scope=a+b` asks latchkey to check the key holds those scopes.
//!
//! Answers: 200 with the key's id, name, owner and scopes; 401 with a bare Bearer challenge
//! and no error for a missing key (RFC 6750 §3.1); 401 `invalid_token` for a malformed,
//! bad-checksum, unknown, expired or revoked key or a disabled owner; 403 `insufficient_scope`;
//! 429 `rate_limited` with `Retry-After` when the key's rate limit is spent. Every answer
//! carries `Cache-Control: no-store`; keys with a limit get the `RateLimit` and
//! `RateLimit-Policy` headers (draft-ietf-httpapi-ratelimit-headers).

use crate::apikeys::{self, KeyEntry, format};
use crate::app::Worker;
use crate::http::auth::{Authorization, authorization};
use crate::http::form::{Form, decode_component};
use crate::http::{Req, Resp};
use crate::oauth::error::{ErrorCode, bearer_challenge, credentials_required};
use crate::oauth::scope;

/// Reads the key a request presents. `Err` is the response to send.
pub fn presented_key(req: &Req) -> Result<Option<String>, Resp> {
    let bad = |d: &'static str| bearer_challenge(ErrorCode::InvalidRequest, d, None);
    if key_in_query(&req.query) {
        log::info!(target: "latchkey::security", "API key in a URL refused from {}", req.peer.ip());
        return Err(bad(
            "API keys are not accepted in the URL; send the X-API-Key header",
        ));
    }
    let header = req
        .header("x-api-key")
        .map_err(|()| bad("send one X-API-Key header"))?
        .map(|v| v.trim().to_string());
    let bearer = match authorization(req) {
        Ok(Authorization::Bearer(t)) => Some(t),
        Ok(Authorization::None) => None,
        Ok(_) => return Err(bad("use X-API-Key or the Bearer scheme")),
        Err(_) => return Err(bad("malformed Authorization header")),
    };
    match (header, bearer) {
        (Some(_), Some(_)) => Err(bad("send the key once")),
        (Some(k), None) | (None, Some(k)) => Ok(Some(k)),
        (None, None) => Ok(None),
    }
}

/// True if the query carries a key: a parameter conventionally used for keys, or any value
/// that starts like a latchkey key.
fn key_in_query(query: &str) -> bool {
    const NAMES: &[&str] = &["api_key", "apikey", "key", "x-api-key", "access_token"];
    query.split('&').any(|piece| {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let decode = |s: &str| decode_component(s.as_bytes()).unwrap_or_else(|_| s.to_string());
        let name = decode(name).to_ascii_lowercase();
        NAMES.contains(&name.as_str()) || decode(value).trim_start().starts_with(format::PREFIX)
    })
}

/// The `RateLimit` and `RateLimit-Policy` headers for a decision.
fn rate_headers(resp: Resp, d: &apikeys::ratelimit::Decision) -> Resp {
    resp.with(
        "RateLimit-Policy",
        format!("\"key\";q={};w={}", d.quota, d.window),
    )
    .with(
        "RateLimit",
        format!("\"key\";r={};t={}", d.remaining, d.reset),
    )
}

/// Checks a key for a request: validity, then its rate limit, then counts the use. On success
/// returns the entry and the rate-limit decision, if the key has a limit.
pub fn admit(
    w: &Worker,
    key: &str,
    now: i64,
) -> Result<
    (
        std::sync::Arc<KeyEntry>,
        Option<apikeys::ratelimit::Decision>,
    ),
    Resp,
> {
    let entry = apikeys::check(&w.app.api_keys(), key, now).map_err(|r| {
        crate::metrics::METRICS.api_key(false);
        log::info!(target: "latchkey::security", "API key refused: {}", r.description());
        bearer_challenge(ErrorCode::InvalidToken, r.description(), None)
    })?;
    let decision = entry
        .rate
        .map(|(quota, window)| w.app.rate_limiter().take(&entry.id, quota, window));
    if let Some(d) = decision.filter(|d| !d.allowed) {
        crate::metrics::METRICS.rate_limited();
        let resp = ErrorCode::RateLimited
            .json("the API key's rate limit is exhausted")
            .with("Retry-After", d.retry_after.max(1).to_string());
        return Err(rate_headers(resp, &d));
    }
    w.app.usage().record(&entry.id, now);
    crate::metrics::METRICS.api_key(true);
    Ok((entry, decision))
}

/// The answer for a valid key, serialised straight from the index entry.
#[derive(serde::Serialize)]
struct Active<'a> {
    active: bool,
    id: &'a str,
    name: &'a str,
    owner: &'a str,
    scopes: &'a [String],
    scope: String,
    expires_at: Option<i64>,
}

/// Handles a verify request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let key = match presented_key(req) {
        Ok(Some(k)) => k,
        Ok(None) => return credentials_required(),
        Err(resp) => return resp,
    };
    // A scope requirement that cannot be read is refused, never treated as "none" (fail closed).
    let bad_scope = || {
        bearer_challenge(
            ErrorCode::InvalidRequest,
            "the scope parameter is malformed or repeated",
            None,
        )
    };
    let required = match Form::parse(req.query.as_bytes())
        .map(|f| f.get("scope").map(|s| s.map(str::to_string)))
    {
        Ok(Ok(None)) => None,
        Ok(Ok(Some(raw))) => match scope::parse(&raw) {
            Some(wanted) => Some(wanted),
            None => return bad_scope(),
        },
        _ => return bad_scope(),
    };
    let (entry, decision) = match admit(w, &key, now) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    if let Some(wanted) = required
        && !scope::is_subset(&wanted, &entry.scopes)
    {
        return bearer_challenge(
            ErrorCode::InsufficientScope,
            "the API key lacks a required scope",
            None,
        );
    }
    let resp = Resp::json(
        200,
        &Active {
            active: true,
            id: &entry.id,
            name: &entry.name,
            owner: &entry.owner,
            scopes: &entry.scopes,
            scope: entry.scopes.join(" "),
            expires_at: entry.expires_at,
        },
    )
    .no_store();
    match decision {
        Some(d) => rate_headers(resp, &d),
        None => resp,
    }
}
