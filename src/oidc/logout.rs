//! `GET/POST /logout`: ends the browser session (RP-Initiated Logout 1.0). With a valid
//! `id_token_hint` from a client, the browser is sent on to one of that client's registered
//! `post_logout_redirect_uri`s, with `state`; otherwise it sees a "signed out" page. latchkey
//! never redirects to a URI that is not registered (RFC 9700 §4.11).

use serde_json::Value;

use crate::accounts::session;
use crate::app::Worker;
use crate::http::form::{Form, encode_pairs};
use crate::http::{Method, Req, Resp};
use crate::oidc::id_token;
use crate::ui;

/// Handles a logout request.
pub fn handle(w: &mut Worker, req: &Req, _now: i64) -> Resp {
    let raw: &[u8] = if req.method == Method::Post
        && req.content_type().as_deref() == Some("application/x-www-form-urlencoded")
    {
        &req.body
    } else {
        req.query.as_bytes()
    };
    let form = Form::parse(raw).unwrap_or_default();
    let cookies = match session::end(w, req) {
        Ok(c) => c,
        Err(e) => {
            log::error!("logout: {e}");
            return ui::message(500, "Something went wrong", "Try again in a moment.");
        }
    };
    let target = form
        .get("post_logout_redirect_uri")
        .ok()
        .flatten()
        .and_then(|uri| allowed_target(w, &form, uri));
    let resp = match target {
        Some(uri) => {
            let mut location = uri;
            if let Some(state) = form.get("state").ok().flatten() {
                location.push(if location.contains('?') { '&' } else { '?' });
                location.push_str(&encode_pairs([("state", state)]));
            }
            Resp::empty(303)
                .with("Location", location)
                .with("Cache-Control", "no-store")
        }
        None => ui::message(200, "Signed out", "You are signed out of latchkey."),
    };
    cookies
        .into_iter()
        .fold(resp, |r, c| r.with("Set-Cookie", c))
}

/// The redirect target if a valid `id_token_hint` names a client that registered `uri`
/// (and `client_id`, if sent, is that client).
fn allowed_target(w: &Worker, form: &Form, uri: &str) -> Option<String> {
    let hint = form.get("id_token_hint").ok().flatten()?;
    let claims = id_token::verify_hint(&w.app, hint)?;
    let client_id = match claims.get("aud")? {
        Value::String(a) => a.clone(),
        Value::Array(list) => list.first()?.as_str()?.to_string(),
        _ => return None,
    };
    if form
        .get("client_id")
        .ok()
        .flatten()
        .is_some_and(|sent| sent != client_id)
    {
        return None;
    }
    let client = w.store.client(&client_id).ok()??;
    client
        .post_logout_redirect_uris
        .iter()
        .any(|r| r == uri)
        .then(|| uri.to_string())
}
