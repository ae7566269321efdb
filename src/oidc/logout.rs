//! `GET/POST /logout`: ends the browser session (RP-Initiated Logout 1.0). With a valid
//! `id_token_hint` from a client, the browser is sent on to one of that client's registered
//! `post_logout_redirect_uri`s, with `state`; otherwise it sees a "signed out" page with a link
//! to sign in again. latchkey never redirects to a URI that is not registered (RFC 9700 §4.11).
//!
//! A request alone does not sign anyone out: a link or an image on any page could send it.
//! The user is asked first (a form with a CSRF token that POSTs here), as RP-Initiated Logout
//! §2 requires when there is no `id_token_hint` or the hint is not the signed-in user's. A
//! valid hint for the signed-in user signs out at once, by GET or POST; a browser that is not
//! signed in has nothing to confirm. The confirmation form carries the request's parameters,
//! so the redirect still happens after it.
//!
//! `rd` (a forward-auth return URL, from the "use another account" link of the forward-auth
//! 403 page) sends the browser, once signed out, to the login page for that URL.

use serde_json::{Map, Value};

use crate::accounts::{csrf, session};
use crate::app::Worker;
use crate::http::form::{Form, encode_component, encode_pairs};
use crate::http::{Method, Req, Resp};
use crate::oidc::id_token;
use crate::ui::{self, Slot};

/// The request parameters the confirmation form passes on.
const CARRIED: [&str; 5] = [
    "id_token_hint",
    "post_logout_redirect_uri",
    "state",
    "client_id",
    "rd",
];

fn went_wrong() -> Resp {
    ui::message(500, "Something went wrong", "Try again in a moment.")
}

/// Handles a logout request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let is_form = req.method == Method::Post
        && req.content_type().as_deref() == Some("application/x-www-form-urlencoded");
    let raw: &[u8] = if is_form {
        &req.body
    } else {
        req.query.as_bytes()
    };
    let form = Form::parse(raw).unwrap_or_default();
    // The confirmation form: the CSRF token shows the user asked for it on latchkey's page.
    if is_form && form.get("csrf").ok().flatten().is_some() {
        return match csrf::checked_form(&w.app, req) {
            Ok(form) => sign_out(w, req, &form),
            Err(page) => page,
        };
    }
    let current = match session::current(w, req, now) {
        Ok(s) => s,
        Err(e) => {
            log::error!("logout: {e}");
            return went_wrong();
        }
    };
    let Some(current) = current else {
        // Nothing to confirm; clear whatever cookies are left.
        return sign_out(w, req, &form);
    };
    let hint_is_this_user = hint_claims(w, &form)
        .and_then(|c| c.get("sub").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|sub| sub == current.user.id);
    if hint_is_this_user {
        return sign_out(w, req, &form);
    }
    confirmation(w, req, &form, &current.user.username)
}

/// The "sign out?" page: a form that POSTs back here with the request's parameters.
fn confirmation(w: &Worker, req: &Req, form: &Form, username: &str) -> Resp {
    let (token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => {
            log::error!("logout page: {e}");
            return went_wrong();
        }
    };
    let fields: String = CARRIED
        .iter()
        .filter_map(|name| {
            let value = form.get(name).ok().flatten()?;
            Some(ui::hidden(name, value))
        })
        .collect();
    let switching = form.get("rd").ok().flatten().is_some();
    let (title, message) = if switching {
        (
            "Use another account?",
            format!(
                "You are signed in as {username}. Sign out, then sign in with another account."
            ),
        )
    } else {
        (
            "Sign out?",
            format!("You are signed in as {username}. Sign out of latchkey?"),
        )
    };
    let body = ui::render(
        ui::LOGOUT,
        &[
            ("message", Slot::Text(&message)),
            ("csrf", Slot::Text(&token)),
            ("fields", Slot::Html(&fields)),
            ("extra", Slot::Html(&ui::link("/", "Stay signed in"))),
        ],
    );
    let resp = ui::page(200, title, &body);
    match set_cookie {
        Some(c) => resp.with("Set-Cookie", c),
        None => resp,
    }
}

/// Ends the session and answers: the client's registered URI, the login page for a
/// forward-auth return URL, or the "signed out" page.
fn sign_out(w: &mut Worker, req: &Req, form: &Form) -> Resp {
    let cookies = match session::end(w, req) {
        Ok(c) => c,
        Err(e) => {
            log::error!("logout: {e}");
            return went_wrong();
        }
    };
    let target = form
        .get("post_logout_redirect_uri")
        .ok()
        .flatten()
        .and_then(|uri| allowed_target(w, form, uri));
    let rd = form
        .get("rd")
        .ok()
        .flatten()
        .and_then(|rd| crate::forward::redirect::validate(rd, &w.app.rules()));
    let resp = match (target, rd) {
        (Some(uri), _) => {
            let mut location = uri;
            if let Some(state) = form.get("state").ok().flatten() {
                location.push(if location.contains('?') { '&' } else { '?' });
                location.push_str(&encode_pairs([("state", state)]));
            }
            Resp::empty(303)
                .with("Location", location)
                .with("Cache-Control", "no-store")
        }
        (None, Some(rd)) => Resp::empty(303)
            .with("Location", format!("/login?rd={}", encode_component(&rd)))
            .with("Cache-Control", "no-store"),
        (None, None) => ui::message_with(
            200,
            "Signed out",
            "You are signed out of latchkey.",
            &ui::link("/login", "Sign in again"),
        ),
    };
    cookies
        .into_iter()
        .fold(resp, |r, c| r.with("Set-Cookie", c))
}

/// The claims of a valid `id_token_hint`, if the request has one.
fn hint_claims(w: &Worker, form: &Form) -> Option<Map<String, Value>> {
    id_token::verify_hint(&w.app, form.get("id_token_hint").ok().flatten()?)
}

/// The redirect target if a valid `id_token_hint` names a client that registered `uri`
/// (and `client_id`, if sent, is that client).
fn allowed_target(w: &Worker, form: &Form, uri: &str) -> Option<String> {
    let claims = hint_claims(w, form)?;
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
