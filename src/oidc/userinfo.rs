//! `GET/POST /userinfo` (OIDC Core §5.3) as an RFC 6750 protected resource: the access token in
//! the `Authorization: Bearer` header (or, for POST, the form body — never the query); errors
//! are `WWW-Authenticate: Bearer` challenges (§3). Only latchkey access tokens (`typ: at+jwt`)
//! for a user are accepted: an ID token, an API key or a client-credentials token is not.

use serde_json::Value;

use crate::app::Worker;
use crate::http::auth::{Authorization, authorization};
use crate::http::form::Form;
use crate::http::{Method, Req, Resp};
use crate::oauth::access_token;
use crate::oauth::error::{ErrorCode, bearer_challenge, credentials_required};
use crate::oidc::id_token::user_claims;

/// A 400 `invalid_request` challenge.
fn bad(description: &'static str) -> Resp {
    bearer_challenge(ErrorCode::InvalidRequest, description, None)
}

/// Extracts the one bearer token of the request, or the error response.
fn bearer(req: &Req) -> Result<String, Resp> {
    let header = authorization(req).map_err(|_| bad("malformed Authorization header"))?;
    let body_token = if req.method == Method::Post
        && req.content_type().as_deref() == Some("application/x-www-form-urlencoded")
    {
        let form = Form::parse(&req.body).map_err(|_| bad("malformed body"))?;
        form.get("access_token")
            .map_err(|_| bad("access_token is repeated"))?
            .map(str::to_string)
    } else {
        None
    };
    match (header, body_token) {
        (Authorization::Bearer(_), Some(_)) => Err(bad("the token was sent in more than one way")),
        (Authorization::Bearer(t), None) => Ok(t),
        (Authorization::None, Some(t)) => Ok(t),
        (Authorization::None, None) => Err(credentials_required()),
        (Authorization::Basic { .. } | Authorization::Other, _) => {
            Err(bad("use the Bearer scheme"))
        }
    }
}

/// Handles a UserInfo request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let token = match bearer(req) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let invalid = || {
        bearer_challenge(
            ErrorCode::InvalidToken,
            "the access token is not valid",
            None,
        )
    };
    let claims = match access_token::validate(w, &token, now) {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => return invalid(),
        Err(e) => return e.into_resp(),
    };
    // UserInfo is latchkey's own resource: the token must be meant for the issuer.
    let issuer = &w.app.config.issuer;
    let aud_ok = claims.has_audience(issuer);
    if !aud_ok {
        return invalid();
    }
    let scope: Vec<String> = claims.scopes();
    if !scope.iter().any(|s| s == "openid") {
        return bearer_challenge(
            ErrorCode::InsufficientScope,
            "the token does not carry the openid scope",
            Some("openid"),
        );
    }
    let user = match w.store.user(&claims.sub) {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => return invalid(),
        Err(e) => {
            log::error!("userinfo: {e}");
            return ErrorCode::ServerError.json("internal error");
        }
    };
    Resp::json(200, &Value::Object(user_claims(&user, &scope))).no_store()
}
