//! `POST /introspect` (RFC 7662). The caller is an authenticated confidential client (a
//! resource server). Active tokens are described; anything else — expired, revoked, malformed,
//! signed by someone else — is `{"active": false}` and nothing more (§2.2).

use serde::Serialize;
use serde_json::json;

use crate::app::Worker;
use crate::http::{Req, Resp};
use crate::oauth::access_token;
use crate::oauth::client_auth::{self, Method};
use crate::oauth::error::OAuthError;
use crate::oauth::read_form;

/// Handles an introspection request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Result<Resp, OAuthError> {
    let form = read_form(req)?;
    let (_client, method) = client_auth::authenticate(w, req, &form)?;
    if method == Method::None {
        return Err(OAuthError::invalid_client(
            "introspection requires a client secret",
        ));
    }
    let token = form
        .get("token")?
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    // token_type_hint is only a hint (§2.1); it is read to reject repeats and then ignored.
    form.get("token_type_hint")?;
    if token.starts_with(crate::apikeys::format::PREFIX) {
        return Ok(Resp::json(200, &api_key_description(w, token, now)).no_store());
    }
    match access_token::validate(w, token, now)? {
        Ok(c) => Ok(Resp::json(
            200,
            &Active {
                active: true,
                scope: c.scope.as_deref(),
                client_id: &c.client_id,
                sub: &c.sub,
                aud: &c.aud,
                iss: &c.iss,
                exp: c.exp,
                iat: c.iat,
                jti: &c.jti,
                token_type: "Bearer",
            },
        )
        .no_store()),
        Err(_) => Ok(Resp::json(200, &json!({ "active": false })).no_store()),
    }
}

/// The description of an active access token (RFC 7662 §2.2), serialised straight from the
/// claims.
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    client_id: &'a str,
    sub: &'a str,
    aud: &'a serde_json::Value,
    iss: &'a str,
    exp: i64,
    iat: i64,
    jti: &'a str,
    token_type: &'static str,
}

/// RFC 7662 for an API key: `token_type: "api_key"`, its scopes, name and owner, `exp` if it
/// expires. A use is counted; the key's rate limit is for the app that holds it, not for the
/// resource server asking here, so it is not charged.
fn api_key_description(w: &Worker, key: &str, now: i64) -> serde_json::Value {
    match crate::apikeys::check(&w.app.api_keys(), key, now) {
        Ok(k) => {
            w.app.usage().record(&k.id, now);
            let mut body = json!({
                "active": true,
                "token_type": "api_key",
                "scope": k.scopes.join(" "),
                "id": k.id,
                "name": k.name,
                "owner": k.owner,
                "iat": k.created_at,
            });
            if let (Some(exp), Some(map)) = (k.expires_at, body.as_object_mut()) {
                map.insert("exp".into(), json!(exp));
            }
            body
        }
        Err(_) => json!({ "active": false }),
    }
}
