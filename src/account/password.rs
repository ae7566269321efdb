//! `POST /account/password`: the signed-in user changes their password.
//!
//! The current password is checked by [`crate::accounts::authenticate`], so wrong ones count
//! against the same per-account and per-address throttles as sign-in (a locked account gets
//! 429 with `Retry-After`). A user without a password (passkeys only) sets one without it.
//! The new one is typed twice and must pass [`password::validate_new`]. On success, as for
//! `latchkey user passwd`, the user's grants are revoked (apps' refresh tokens stop working)
//! and every other session ends; this browser stays signed in. The router runs this request on
//! the password workers ([`crate::http::router::is_password_sign_in`]): it waits for argon2.

use super::profile::{Notice, actor, done, render, signed_in_form, went_wrong};
use crate::accounts::signin::{Attempt, Outcome, authenticate};
use crate::accounts::{password, session::Session};
use crate::app::Worker;
use crate::http::client_ip::client_ip;
use crate::http::router;
use crate::http::{Req, Resp};
use crate::ui::{self, esc};

/// The password form of the account page.
pub fn form(s: &Session, token: &str) -> String {
    let current = if s.user.password_hash.is_some() {
        "<label for=\"current-password\">Current password</label>\n\
         <input id=\"current-password\" name=\"current_password\" type=\"password\" \
         autocomplete=\"current-password\" required>\n"
    } else {
        "<p class=\"muted\">You sign in without a password. You may set one.</p>\n"
    };
    format!(
        "<form method=\"post\" action=\"{}\">\n{}\
         <input type=\"text\" name=\"username\" value=\"{}\" autocomplete=\"username\" hidden>\n\
         {current}\
         <label for=\"new-password\">New password</label>\n\
         <input id=\"new-password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" required>\n\
         <label for=\"new-password-again\">New password again</label>\n\
         <input id=\"new-password-again\" name=\"new_password_again\" type=\"password\" autocomplete=\"new-password\" required>\n\
         <button type=\"submit\">Change password</button>\n</form>",
        router::ACCOUNT_PASSWORD,
        ui::hidden("csrf", token),
        esc(&s.user.username),
    )
}

/// `POST /account/password`.
pub fn submit(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let (s, form) = match signed_in_form(w, req, now) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let field = |name: &str| form.get(name).ok().flatten().unwrap_or("");
    let (current, new, again) = (
        field("current_password"),
        field("new_password"),
        field("new_password_again"),
    );
    let actor = actor(w, req, &s);
    let refuse = |w: &mut Worker, status: u16, msg: &str| {
        w.app.audit().write(
            &mut w.store,
            now,
            &actor.name,
            "password_changed",
            &s.user.username,
            "failed",
            &actor.address,
        );
        render(w, req, &s, status, &Notice::Refused(msg), now)
    };
    if s.user.password_hash.is_none() {
        // A first password: no current one to confirm, so the session must be recent and
        // carry the user's second factor.
        if let Err(r) = super::may_change_sign_in(w, &s, now, crate::http::router::ACCOUNT) {
            return r;
        }
    }
    if s.user.password_hash.is_some() {
        let attempt = Attempt {
            username: &s.user.username,
            password: current,
            client: client_ip(req, &w.app.config.trusted_proxies),
            now,
            purpose: crate::accounts::signin::Purpose::Confirm,
        };
        match authenticate(&w.app, &mut w.store, &attempt) {
            Ok(Outcome::SignedIn(_)) => {}
            Ok(Outcome::Refused { .. }) => {
                return refuse(w, 400, "The current password is wrong.");
            }
            Ok(Outcome::Throttled { retry_after }) => {
                let _ = refuse(w, 429, "");
                return ui::message(
                    429,
                    "Too many attempts",
                    &format!(
                        "Too many wrong passwords. Wait {retry_after} seconds, then try again."
                    ),
                )
                .with("Retry-After", retry_after.to_string());
            }
            Err(e) => {
                log::error!("password change: {e}");
                return went_wrong();
            }
        }
    }
    if new != again {
        return refuse(w, 400, "The two new passwords differ.");
    }
    if let Err(m) = password::validate_new(new) {
        let mut m = m;
        if let Some(first) = m.get(..1) {
            m = format!(
                "{}{}.",
                first.to_uppercase(),
                m.get(1..).unwrap_or_default()
            );
        }
        return refuse(w, 400, &m);
    }
    let hash = match password::hash(new) {
        Ok(h) => h,
        Err(e) => {
            log::error!("password change: {e}");
            return went_wrong();
        }
    };
    if let Err(e) = w.store.change_own_password(&s.user.id, &hash, &s.hash, now) {
        log::error!("password change: {e}");
        return went_wrong();
    }
    w.app.forward_sessions().clear();
    w.app.audit().write(
        &mut w.store,
        now,
        &actor.name,
        "password_changed",
        &s.user.username,
        "ok",
        &actor.address,
    );
    log::info!(target: "latchkey::security", "password changed by {} from {}", s.user.username.escape_debug(), actor.address);
    done("password")
}
