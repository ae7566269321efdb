//! A page of one's own: `/account` and the pages below it, where a signed-in user manages
//! their profile, password, second factors, sessions and consents, and `/account/setup`, where
//! an invited user (or one whose reset link an admin made) sets up their sign-in.
//!
//! Each page file reads a form, calls the operation, and renders; second factors themselves
//! are in [`crate::accounts::mfa`].

pub mod consents;
pub mod factors;
pub mod passkeys;
pub mod password;
pub mod profile;
pub mod sessions;
pub mod setup;
pub mod totp;

use crate::accounts::{login, session::Session};
use crate::app::Worker;
use crate::http::Resp;

/// How long after its last factor a session may change how the user signs in without signing
/// in again: adding a second factor, making new recovery codes, setting a first password,
/// registering a passkey (ASVS 5.0 7.5.1: re-authentication before changing the means of
/// authentication).
pub const RECENT_SIGN_IN: i64 = 15 * 60;

/// Whether session `s` may change how the user signs in, from the page `here` (path and
/// query): the session must carry the user's second factor when the user has one (a session
/// signed in with the password before a factor was added must give it first; otherwise it
/// could make itself recovery codes and pass as multi-factor), and its last factor must be
/// recent. Otherwise the 303 that gets it there and back: the second-factor page, or the login
/// page.
pub fn may_change_sign_in(w: &mut Worker, s: &Session, now: i64, here: &str) -> Result<(), Resp> {
    check_sign_in(w, s, now, here, true)
}

/// The first half of [`may_change_sign_in`], for a change the user confirms with their
/// password (removing a factor): the password makes the sign-in recent, but a session signed
/// in with the password alone while the user has a second factor must still give it first,
/// or someone holding only the password could strip the factor that stops them.
pub fn must_carry_factor(w: &mut Worker, s: &Session, now: i64, here: &str) -> Result<(), Resp> {
    check_sign_in(w, s, now, here, false)
}

fn check_sign_in(
    w: &mut Worker,
    s: &Session,
    now: i64,
    here: &str,
    recent: bool,
) -> Result<(), Resp> {
    let factors = w.store.second_factors(&s.user.id).map_err(|e| {
        log::error!("account: {e}");
        crate::ui::message(500, "Something went wrong", "Try again in a moment.")
    })?;
    let location = if factors.any() && !s.amr.is_multi_factor() {
        login::second_factor_url(here, None)
    } else if recent && now - s.auth_time > RECENT_SIGN_IN {
        format!(
            "{}?{}",
            crate::http::router::LOGIN,
            crate::http::form::encode_pairs([("return_to", here)])
        )
    } else {
        return Ok(());
    };
    Err(Resp::empty(303)
        .with("Location", location)
        .with("Cache-Control", "no-store"))
}

/// Checks the password the signed-in user typed to confirm a change, like a sign-in
/// (throttled, audited as `password_confirmed`): `Ok(true)` right, `Ok(false)` wrong, or the
/// answer to give instead (429 when locked, 500 when the store fails).
pub fn confirm_password(
    w: &mut Worker,
    req: &crate::http::Req,
    s: &Session,
    password: &str,
    now: i64,
) -> Result<bool, Resp> {
    use crate::accounts::signin::{Attempt, Outcome, Purpose, authenticate};
    let attempt = Attempt {
        username: &s.user.username,
        password,
        client: crate::http::client_ip::client_ip(req, &w.app.config.trusted_proxies),
        now,
        purpose: Purpose::Confirm,
    };
    match authenticate(&w.app, &mut w.store, &attempt) {
        Ok(Outcome::SignedIn(u)) => Ok(u.id == s.user.id),
        Ok(Outcome::Throttled { retry_after }) => Err(login::too_many_attempts(retry_after)),
        Ok(Outcome::Refused { .. }) => Ok(false),
        Err(e) => {
            log::error!("password confirmation: {e}");
            Err(crate::ui::message(
                500,
                "Something went wrong",
                "Try again in a moment.",
            ))
        }
    }
}
