//! The second step of a sign-in (`GET/POST /login/second-factor`): after the right password,
//! a user with a second factor gives a TOTP code or a recovery code here (or uses a passkey:
//! the button runs `/assets/latchkey.js`, which talks to the WebAuthn endpoints). A session
//! that is signed in with the password alone comes here too when a client or rule wants more
//! (step-up).
//!
//! Wrong codes count in the password throttle (per account and per address,
//! [`crate::accounts::signin::second_factor_refused`]); a replayed code is refused like a
//! wrong one. A right code completes the session with `otp` in its `amr` and the browser goes
//! on as after a login ([`login::finish`]); after a recovery code a page first says how many
//! remain.

use crate::accounts::mfa::{recovery, totp};
use crate::accounts::session::{self, Session};
use crate::accounts::{csrf, login, signin};
use crate::app::Worker;
use crate::http::client_ip::client_ip;
use crate::http::form::{Form, encode_pairs};
use crate::http::{Req, Resp};
use crate::ui::{self, Slot};

/// The session that may give a second factor: one that owes it, or a complete one (stepping
/// up).
fn prompted(w: &mut Worker, req: &Req, now: i64) -> Result<Option<Session>, Resp> {
    let found = match session::current_pending(w, req, now) {
        Ok(Some(s)) => Ok(Some(s)),
        Ok(None) => session::current(w, req, now),
        Err(e) => Err(e),
    };
    found.map_err(|e| {
        log::error!("second factor: {e}");
        server_error()
    })
}

fn server_error() -> Resp {
    ui::message(500, "Something went wrong", "Try again in a moment.")
}

/// 303 to the login page, keeping where the sign-in was going.
fn to_login(return_to: &str, rd: Option<&str>) -> Resp {
    let mut pairs = vec![("return_to", return_to)];
    if let Some(rd) = rd {
        pairs.push(("rd", rd));
    }
    Resp::empty(303)
        .with(
            "Location",
            format!("{}?{}", crate::http::router::LOGIN, encode_pairs(pairs)),
        )
        .with("Cache-Control", "no-store")
}

#[allow(clippy::too_many_arguments)]
fn prompt_page(
    w: &Worker,
    req: &Req,
    status: u16,
    s: &Session,
    return_to: &str,
    rd: Option<&str>,
    message: Option<&str>,
) -> Resp {
    let (token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => {
            log::error!("second factor page: {e}");
            return server_error();
        }
    };
    let passkeys = match w.store.second_factors(&s.user.id) {
        Ok(f) => f.passkeys,
        Err(e) => {
            log::error!("second factor page: {e}");
            return server_error();
        }
    };
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", ui::esc(m)))
        .unwrap_or_default();
    // The passkey button runs `/assets/latchkey.js` (hidden until the script shows it).
    let passkey = if passkeys > 0 {
        format!(
            "<div id=\"passkey-sign-in-box\" hidden>\n\
             <p class=\"or muted\"><span>or</span></p>\n\
             <button type=\"button\" class=\"secondary\" id=\"passkey-second-factor\" \
             data-webauthn=\"second-factor\">Use a passkey</button>\n\
             <p id=\"passkey-status\" class=\"error\" role=\"alert\" aria-live=\"polite\" hidden></p>\n\
             </div>\n{}",
            ui::SCRIPT_TAG
        )
    } else {
        String::new()
    };
    let body = ui::render(
        ui::SECOND_FACTOR,
        &[
            ("message", Slot::Html(&message)),
            ("csrf", Slot::Text(&token)),
            ("return_to", Slot::Text(return_to)),
            ("rd", Slot::Text(rd.unwrap_or(""))),
            ("username", Slot::Text(&s.user.username)),
            ("passkey", Slot::Html(&passkey)),
        ],
    );
    let mut resp = ui::page(status, "Second factor", &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// `GET /login/second-factor`.
pub fn show(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = Form::parse(req.query.as_bytes()).unwrap_or_default();
    let (return_to, rd) = login::targets(w, &form);
    let s = match prompted(w, req, now) {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(&return_to, rd.as_deref()),
        Err(page) => return page,
    };
    // Already signed in with more than one factor: nothing to step up to.
    if s.amr.is_multi_factor() {
        return login::finish(
            w,
            &s.hash,
            &s.user.id,
            s.auth_time,
            &return_to,
            rd.as_deref(),
            now,
            None,
        );
    }
    prompt_page(w, req, 200, &s, &return_to, rd.as_deref(), None)
}

/// `POST /login/second-factor`: check the code, then send the browser on.
pub fn submit(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let (return_to, rd) = login::targets(w, &form);
    let rd = rd.as_deref();
    let s = match prompted(w, req, now) {
        Ok(Some(s)) => s,
        Ok(None) => return to_login(&return_to, rd),
        Err(page) => return page,
    };
    let typed = form.get("code").ok().flatten().unwrap_or("").trim();
    if typed.is_empty() {
        return prompt_page(w, req, 200, &s, &return_to, rd, Some("Enter a code."));
    }
    let client = client_ip(req, &w.app.config.trusted_proxies);
    if let Some(wait) = signin::second_factor_locked(&w.app, &s.user, client, now) {
        return login::too_many_attempts(wait);
    }
    let checked = if totp::normalise(typed).is_some() {
        totp::verify(w, &s.user.id, typed, now).map(|ok| ok.then_some(None))
    } else {
        recovery::redeem(&mut w.store, &s.user.id, typed, now).map(|left| left.map(Some))
    };
    let used = match checked {
        Ok(Some(used)) => used,
        Ok(None) => {
            return match signin::second_factor_refused(&w.app, &mut w.store, &s.user, client, now) {
                Some(wait) => login::too_many_attempts(wait),
                None => prompt_page(
                    w,
                    req,
                    200,
                    &s,
                    &return_to,
                    rd,
                    Some("That code is not right."),
                ),
            };
        }
        Err(e) => {
            log::error!("second factor: {e}");
            return server_error();
        }
    };
    signin::second_factor_accepted(&w.app, &s.user);
    let amr = s.amr.with_second_factor(&["otp"]);
    let (cookie, hash) = match session::complete(w, &s, &amr, now) {
        Ok(Some(renewed)) => renewed,
        // The session ended meanwhile (signed out elsewhere).
        Ok(None) => return to_login(&return_to, rd),
        Err(e) => {
            log::error!("second factor: {e}");
            return server_error();
        }
    };
    let ip = client.to_string();
    let actor = format!("user:{}", s.user.username);
    let action = if used.is_some() {
        "recovery_code_used"
    } else {
        "second_factor"
    };
    w.app.audit().write(
        &mut w.store,
        now,
        &actor,
        action,
        &s.user.username,
        "ok",
        &ip,
    );
    log::info!(target: "latchkey::security", "second factor given by {} from {}", s.user.username.escape_debug(), ip);
    let next = login::finish(w, &hash, &s.user.id, now, &return_to, rd, now, Some(cookie));
    match used {
        Some(left) => continue_page(
            next,
            "Signed in with a recovery code",
            &recovery_left_message(left),
            "",
        ),
        None => next,
    }
}

/// "N recovery codes left" (and what to do when few are).
pub fn recovery_left_message(left: i64) -> String {
    let codes = if left == 1 { "code" } else { "codes" };
    let mut m = format!("{left} recovery {codes} left.");
    if left <= 3 {
        m.push_str(" Make new ones on your account page soon.");
    }
    m
}

/// Turns the 303 of [`login::finish`] into a page with `message`, `extra` markup and a
/// "Continue" link to where the 303 pointed, keeping its cookies: for a message that must be
/// read before the browser goes on (recovery codes left, or new ones to write down).
pub fn continue_page(next: Resp, title: &str, message: &str, extra: &str) -> Resp {
    if next.status != 303 {
        return next;
    }
    let to = next.header("Location").unwrap_or("/").to_string();
    let extra = format!(
        "{extra}<p><a class=\"button\" id=\"continue\" href=\"{}\">Continue</a></p>",
        ui::esc(&to)
    );
    let mut page = ui::message_with(200, title, message, &extra);
    for (name, value) in &next.headers {
        if name.eq_ignore_ascii_case("set-cookie") {
            page = page.with("Set-Cookie", value.clone());
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovery_message_counts_and_warns_when_few_are_left() {
        assert_eq!(recovery_left_message(9), "9 recovery codes left.");
        assert_eq!(
            recovery_left_message(1),
            "1 recovery code left. Make new ones on your account page soon."
        );
        assert!(recovery_left_message(0).starts_with("0 recovery codes left."));
    }

    #[test]
    fn a_continue_page_keeps_the_cookies_and_the_target() {
        let next = Resp::empty(303)
            .with("Location", "/authorize?a=1&b=2")
            .with("Set-Cookie", "x=1")
            .with("Set-Cookie", "y=2");
        let page = continue_page(next, "T", "m", "");
        assert_eq!(page.status, 200);
        let body = String::from_utf8(page.body.clone()).unwrap();
        assert!(body.contains("href=\"/authorize?a=1&amp;b=2\""), "{body}");
        let cookies: Vec<_> = page
            .headers
            .iter()
            .filter(|(n, _)| *n == "Set-Cookie")
            .map(|(_, v)| v.to_string())
            .collect();
        assert_eq!(cookies, ["x=1", "y=2"]);
    }
}
