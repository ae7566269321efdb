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
use crate::oauth::error::bearer_challenge;
use crate::oidc::id_token::user_claims;

fn challenge(
    status: u16,
    error: Option<(&'static str, &'static str)>,
    scope: Option<&'static str>,
) -> Resp {
    bearer_challenge(status, error, scope)
}

/// Extracts the one bearer token of the request, or the error response.
fn bearer(req: &Req) -> Result<String, Resp> {
    let header = authorization(req).map_err(|_| {
        challenge(
            400,
            Some(("invalid_request", "malformed Authorization header")),
            None,
        )
    })?;
    let body_token = if req.method == Method::Post
        && req.content_type().as_deref() == Some("application/x-www-form-urlencoded")
    {
        let form = Form::parse(&req.body)
            .map_err(|_| challenge(400, Some(("invalid_request", "malformed body")), None))?;
        form.get("access_token")
            .map_err(|_| {
                challenge(
                    400,
                    Some(("invalid_request", "access_token is repeated")),
                    None,
                )
            })?
            .map(str::to_string)
    } else {
        None
    };
    match (header, body_token) {
        (Authorization::Bearer(_), Some(_)) => Err(challenge(
            400,
            Some(("invalid_request", "the token was sent in more than one way")),
            None,
        )),
        (Authorization::Bearer(t), None) => Ok(t),
        (Authorization::None, Some(t)) => Ok(t),
        (Authorization::None, None) => Err(challenge(401, None, None)),
        (Authorization::Basic { .. } | Authorization::Other, _) => Err(challenge(
            400,
            Some(("invalid_request", "use the Bearer scheme")),
            None,
        )),
    }
}

/// Handles a UserInfo request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let token = match bearer(req) {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    let invalid = || {
        challenge(
            401,
            Some(("invalid_token", "the access token is not valid")),
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
        return challenge(
            403,
            Some((
                "insufficient_scope",
                "the token does not carry the openid scope",
            )),
            Some("openid"),
        );
    }
    let user = match w.store.user(&claims.sub) {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => return invalid(),
        Err(e) => {
            log::error!("userinfo: {e}");
            return Resp::json_error(500, "server_error", "internal error").no_store();
        }
    };
    Resp::json(200, &Value::Object(user_claims(&user, &scope))).no_store()
}
