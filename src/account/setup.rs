//! `/account/setup`: where an invite or reset link leads. `GET ?token=T` checks the link
//! without using it (chat apps fetch links to preview them) and shows the form: choose a
//! password, or set up a passkey instead. `POST` (CSRF-checked, the token in the form) uses the
//! link in one transaction: with a password it is stored, and either way every session of the
//! user ends (as a used reset link must) and this browser gets a new one — complete, or owing
//! the second factor the user already has (a link replaces a password, not a second factor).
//! An unknown, used, expired or replaced link gets one and the same 400 page.

use crate::accounts::mfa::Amr;
use crate::accounts::{csrf, login, password, session};
use crate::app::Worker;
use crate::crypto::sha256;
use crate::http::client_ip::client_ip;
use crate::http::form::Form;
use crate::http::{Req, Resp};
use crate::store::User;
use crate::ui::{self, Slot};

const INVALID: &str = "This link is no longer valid. Ask your administrator for a new one.";

/// Where the browser goes after a password was chosen, and after "Set up a passkey instead".
const AFTER_PASSWORD: &str = "/account";
const AFTER_PASSKEY: &str = "/account/passkeys";

fn invalid() -> Resp {
    ui::message(400, "Link not valid", INVALID)
}

fn failed(e: impl std::fmt::Display) -> Resp {
    log::error!("account setup: {e}");
    ui::message(500, "Something went wrong", "Try again in a moment.")
}

/// The digest of a well-formed token (43 base64url characters), or `None`.
fn digest(token: &str) -> Option<[u8; 32]> {
    (token.len() == 43 && crate::crypto::b64url_decode(token).is_some())
        .then(|| sha256(token.as_bytes()))
}

/// The user a live link is for.
fn link_user(w: &Worker, token: &str, now: i64) -> Result<Option<User>, Resp> {
    let Some(hash) = digest(token) else {
        return Ok(None);
    };
    let link = w.store.setup_link(&hash, now).map_err(failed)?;
    let Some(link) = link else {
        return Ok(None);
    };
    let user = w.store.user(&link.user_id).map_err(failed)?;
    Ok(user.filter(|u| !u.disabled))
}

fn form_page(
    w: &Worker,
    req: &Req,
    status: u16,
    user: &User,
    token: &str,
    message: Option<&str>,
) -> Resp {
    let (csrf_token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", ui::esc(m)))
        .unwrap_or_default();
    let min = password::MIN_LEN.to_string();
    let body = ui::render(
        ui::SETUP,
        &[
            ("message", Slot::Html(&message)),
            ("csrf", Slot::Text(&csrf_token)),
            ("token", Slot::Text(token)),
            ("username", Slot::Text(&user.username)),
            ("min", Slot::Text(&min)),
        ],
    );
    let mut resp = ui::page(status, "Set up your sign-in", &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// `GET /account/setup?token=T`.
pub fn show(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = Form::parse(req.query.as_bytes()).unwrap_or_default();
    let token = form.get("token").ok().flatten().unwrap_or("");
    match link_user(w, token, now) {
        Ok(Some(user)) => form_page(w, req, 200, &user, token, None),
        Ok(None) => invalid(),
        Err(page) => page,
    }
}

/// `POST /account/setup`: `token`, `method` (`password` or `passkey`), `password`,
/// `password2`.
pub fn submit(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let token = form.get("token").ok().flatten().unwrap_or("").to_string();
    let user = match link_user(w, &token, now) {
        Ok(Some(u)) => u,
        Ok(None) => return invalid(),
        Err(page) => return page,
    };
    let method = form.get("method").ok().flatten().unwrap_or("password");
    let (hash, next) = match method {
        "passkey" => (None, AFTER_PASSKEY),
        "password" => {
            let pw = form.get("password").ok().flatten().unwrap_or("");
            let again = form.get("password2").ok().flatten().unwrap_or("");
            if let Err(m) = password::validate_new(pw) {
                let m = format!("Choose another password: {m}.");
                return form_page(w, req, 400, &user, &token, Some(&m));
            }
            if pw != again {
                let m = "The two passwords differ.";
                return form_page(w, req, 400, &user, &token, Some(m));
            }
            match password::hash(pw) {
                Ok(h) => (Some(h), AFTER_PASSWORD),
                Err(e) => return failed(e),
            }
        }
        _ => return ui::message(400, "Bad request", "Choose a password or a passkey."),
    };
    let used =
        match w
            .store
            .use_setup_link(&digest(&token).unwrap_or_default(), now, hash.as_deref())
        {
            Ok(Some(link)) => link,
            // Used by someone else between the check and now.
            Ok(None) => return invalid(),
            Err(e) => return failed(e),
        };
    w.app.forward_sessions().clear();
    let address = client_ip(req, &w.app.config.trusted_proxies).to_string();
    let actor = format!("user:{}", user.username);
    w.app.audit().write(
        &mut w.store,
        now,
        &actor,
        "setup_link_used",
        &user.username,
        "ok",
        &address,
    );
    if hash.is_some() {
        w.app.audit().write(
            &mut w.store,
            now,
            &actor,
            "password_changed",
            &user.username,
            "ok",
            &address,
        );
    }
    log::info!(target: "latchkey::security", "{} link used by {}", used.kind.as_str(), user.username);
    // A link stands in for the password: one factor. A user who already has a second factor
    // (a reset without --reset-mfa) still gives it.
    let owes = match w.store.second_factors(&user.id) {
        Ok(f) => f.any(),
        Err(e) => return failed(e),
    };
    let how = if owes {
        session::Start::SecondFactorOwed
    } else {
        session::Start::Complete
    };
    let (cookie, _) = match session::start(w, req, &user.id, now, &Amr::password(), how) {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let location = if owes {
        login::second_factor_url(next, None)
    } else {
        next.to_string()
    };
    Resp::empty(303)
        .with("Location", location)
        .with("Set-Cookie", cookie)
        .with("Cache-Control", "no-store")
}
