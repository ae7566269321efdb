//! `GET /account`: the signed-in user's own page — who they are, their profile (name and email,
//! as `account.edit_profile` allows), their password, their second factors, where they are
//! signed in, and the apps they allowed — and `POST /account/profile`.
//!
//! Every `/account…` page needs a complete session ([`session::current`]); without one the
//! browser is sent to `/login?return_to=/account`. Every form carries a CSRF token and POSTs;
//! after a change the browser is sent back to `/account?done=WHAT` (303, post/redirect/get),
//! which shows a short confirmation chosen from a fixed list (nothing from the URL is shown).
//! A refused change renders the page again with its status and what to fix.

use crate::accounts::csrf;
use crate::accounts::session::{self, Session};
use crate::app::Worker;
use crate::http::client_ip::client_ip;
use crate::http::form::{Form, encode_pairs};
use crate::http::router;
use crate::http::{Req, Resp};
use crate::ops::{Actor, OpError};
use crate::ui::{self, Slot, esc};

/// What the account page says above its sections.
pub enum Notice<'a> {
    None,
    /// A change went through.
    Done(&'a str),
    /// A change was refused: what to fix.
    Refused(&'a str),
}

pub(crate) fn went_wrong() -> Resp {
    ui::message(500, "Something went wrong", "Try again in a moment.")
}

/// 303 to the login page, which comes back to `return_to` (an `/account…` path).
pub(crate) fn to_login(return_to: &str) -> Resp {
    Resp::empty(303)
        .with(
            "Location",
            format!(
                "{}?{}",
                router::LOGIN,
                encode_pairs([("return_to", return_to)])
            ),
        )
        .with("Cache-Control", "no-store")
}

/// The request's complete session, or the response to answer instead (to the login page, or
/// a 500 when the database fails).
pub(crate) fn signed_in(w: &mut Worker, req: &Req, now: i64) -> Result<Session, Resp> {
    match session::current(w, req, now) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(to_login(router::ACCOUNT)),
        Err(e) => {
            log::error!("account page: {e}");
            Err(went_wrong())
        }
    }
}

/// A POST from the account page: a complete session and a form with a valid CSRF token.
pub(crate) fn signed_in_form(w: &mut Worker, req: &Req, now: i64) -> Result<(Session, Form), Resp> {
    let s = signed_in(w, req, now)?;
    let form = csrf::checked_form(&w.app, req)?;
    Ok((s, form))
}

/// The actor of a change the user makes on their own page.
pub(crate) fn actor(w: &Worker, req: &Req, s: &Session) -> Actor {
    Actor {
        name: format!("user:{}", s.user.username),
        address: client_ip(req, &w.app.config.trusted_proxies).to_string(),
    }
}

/// 303 back to the account page with a confirmation.
pub(crate) fn done(what: &str) -> Resp {
    Resp::empty(303)
        .with("Location", format!("{}?done={what}", router::ACCOUNT))
        .with("Cache-Control", "no-store")
}

/// The confirmation of `?done=WHAT`.
fn confirmation(what: &str) -> Option<&'static str> {
    Some(match what {
        "profile" => "Your profile was saved.",
        "password" => "Your password was changed. Every other device was signed out.",
        "session" => "That device was signed out.",
        "others" => "Every other device was signed out.",
        "consent" => "The app no longer has access to your account.",
        _ => return None,
    })
}

/// An `OpError` of a refused change as the page shows it: its status and message.
pub(crate) fn refusal(w: &mut Worker, req: &Req, s: &Session, e: &OpError, now: i64) -> Resp {
    let status = match e {
        OpError::Invalid(_) => 400,
        OpError::NotFound(_) => 404,
        OpError::Conflict(_) => 403,
        OpError::Store(_) | OpError::Crypto(_) | OpError::Failed(_) => {
            log::error!("account page: {e}");
            return went_wrong();
        }
    };
    let mut msg = e.to_string();
    if let Some(first) = msg.get(..1) {
        msg = format!(
            "{}{}",
            first.to_uppercase(),
            msg.get(1..).unwrap_or_default()
        );
    }
    if !msg.ends_with('.') {
        msg.push('.');
    }
    render(w, req, s, status, &Notice::Refused(&msg), now)
}

/// `GET /account`.
pub fn show(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let s = match signed_in(w, req, now) {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let form = Form::parse(req.query.as_bytes()).unwrap_or_default();
    let notice = match form.get("done").ok().flatten().and_then(confirmation) {
        Some(m) => Notice::Done(m),
        None => Notice::None,
    };
    render(w, req, &s, 200, &notice, now)
}

/// `GET /account/profile`, `/account/password`, `/account/sessions`, `/account/consents`:
/// the section of the account page (the forms there POST to these paths or below them).
pub fn section(w: &mut Worker, req: &Req, now: i64) -> Resp {
    if let Err(resp) = signed_in(w, req, now) {
        return resp;
    }
    let anchor = match req.path.as_str() {
        router::ACCOUNT_PROFILE => "#profile",
        router::ACCOUNT_PASSWORD => "#password",
        router::ACCOUNT_SESSIONS => "#sessions",
        _ => "#apps",
    };
    Resp::empty(303)
        .with("Location", format!("{}{anchor}", router::ACCOUNT))
        .with("Cache-Control", "no-store")
}

/// The account page for session `s`.
pub fn render(
    w: &mut Worker,
    req: &Req,
    s: &Session,
    status: u16,
    notice: &Notice<'_>,
    now: i64,
) -> Resp {
    let (token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => {
            log::error!("account page: {e}");
            return went_wrong();
        }
    };
    let parts = (|| -> Result<_, crate::store::StoreError> {
        Ok((
            super::factors::section(&w.store.second_factors(&s.user.id)?),
            super::sessions::section(w, s, &token, now)?,
            super::consents::section(w, s, &token)?,
        ))
    })();
    let (factors, sessions, apps) = match parts {
        Ok(p) => p,
        Err(e) => {
            log::error!("account page: {e}");
            return went_wrong();
        }
    };
    let notice = match notice {
        Notice::None => String::new(),
        Notice::Done(m) => format!("<p class=\"notice\" role=\"status\">{}</p>", esc(m)),
        Notice::Refused(m) => format!("<p class=\"notice error\" role=\"alert\">{}</p>", esc(m)),
    };
    let user = &s.user;
    let body = ui::render(
        ui::ACCOUNT,
        &[
            ("notice", Slot::Html(&notice)),
            (
                "display_name",
                Slot::Text(user.name.as_deref().unwrap_or(&user.username)),
            ),
            ("username", Slot::Text(&user.username)),
            ("email", Slot::Text(user.email.as_deref().unwrap_or("none"))),
            ("csrf", Slot::Text(&token)),
            ("profile", Slot::Html(&profile_form(w, s, &token))),
            ("password", Slot::Html(&super::password::form(s, &token))),
            ("factors", Slot::Html(&factors)),
            ("sessions", Slot::Html(&sessions)),
            ("apps", Slot::Html(&apps)),
        ],
    );
    let resp = ui::page(status, "Your account", &body);
    match set_cookie {
        Some(c) => resp.with("Set-Cookie", c),
        None => resp,
    }
}

/// The profile form: the fields `account.edit_profile` lets the user change.
fn profile_form(w: &Worker, s: &Session, token: &str) -> String {
    let allowed = w.app.settings().edit_profile();
    if allowed.nothing() {
        return "<p class=\"muted\">Your administrator manages your name and email.</p>".into();
    }
    let mut out = format!(
        "<form method=\"post\" action=\"{}\">\n{}",
        router::ACCOUNT_PROFILE,
        ui::hidden("csrf", token)
    );
    if allowed.name {
        out.push_str(&format!(
            "<label for=\"name\">Name</label>\n<input id=\"name\" name=\"name\" type=\"text\" \
             autocomplete=\"name\" maxlength=\"254\" value=\"{}\">\n",
            esc(s.user.name.as_deref().unwrap_or(""))
        ));
    }
    if allowed.email {
        out.push_str(&format!(
            "<label for=\"email\">Email</label>\n<input id=\"email\" name=\"email\" type=\"email\" \
             autocomplete=\"email\" autocapitalize=\"none\" spellcheck=\"false\" maxlength=\"254\" \
             value=\"{}\">\n",
            esc(s.user.email.as_deref().unwrap_or(""))
        ));
    } else {
        out.push_str("<p class=\"muted\">Your administrator manages your email.</p>\n");
    }
    out.push_str("<button type=\"submit\">Save profile</button>\n</form>");
    out
}

/// `POST /account/profile`: `name` and/or `email` (a field left out is kept, an empty one
/// cleared). 403 for a field `account.edit_profile` does not let the user change, 400 for a
/// value [`crate::ops::users::update_profile`] refuses.
pub fn submit(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let (s, form) = match signed_in_form(w, req, now) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let (Ok(name), Ok(email)) = (form.get("name"), form.get("email")) else {
        return render(
            w,
            req,
            &s,
            400,
            &Notice::Refused("The form has a field twice."),
            now,
        );
    };
    let allowed = w.app.settings().edit_profile();
    let actor = actor(w, req, &s);
    let result = crate::ops::users::update_profile(
        &mut w.store,
        &actor,
        &s.user.id,
        allowed,
        name.map(str::trim),
        email.map(str::trim),
    );
    match result {
        Ok(_) => {
            // Forward auth caches the user (and sends Remote-Name / Remote-Email).
            w.app.forward_sessions().clear();
            done("profile")
        }
        Err(e) => refusal(w, req, &s, &e, now),
    }
}

#[cfg(test)]
mod tests {
    use super::confirmation;

    #[test]
    fn only_known_confirmations_are_shown() {
        assert_eq!(confirmation("profile"), Some("Your profile was saved."));
        assert_eq!(confirmation("<script>"), None);
        assert_eq!(confirmation(""), None);
    }
}
