//! The authenticator app and recovery codes of one's own account: `GET/POST /account/totp`
//! (enrol), `POST /account/totp/remove` and `GET/POST /account/recovery`. Every page needs a
//! complete session; without one the browser is sent to sign in and back.
//!
//! # Where the new secret waits
//! Between showing the QR code and the first right code, the fresh secret travels in the form,
//! sealed with AES-256-GCM under a key derived (HKDF-SHA256, its own label) from the server's
//! CSRF key, with the user's id and an expiry bound in as associated data. Sealed rather than
//! kept in a table: nothing to clean up when a user abandons the page, no schema change, and
//! any worker or node can finish the enrolment. The seal makes the secret the server's choice
//! (a form cannot plant one it knows), another user's sealed secret is refused, and an old
//! page expires after [`SEAL_TTL`] seconds. Once confirmed the secret is stored as is in
//! `totp.secret`: the database is the secret store, as for the signing keys.
//!
//! The user's first second factor comes with ten recovery codes, shown once. Enrolment
//! completes the session with `otp` (the policy sends users who must have a second factor
//! here, with `return_to`/`rd`), and "Continue" goes on as after a sign-in.

use ring::{aead, hkdf};

use crate::accounts::mfa::{recovery, totp};
use crate::accounts::second_factor::{continue_page, recovery_left_message};
use crate::accounts::session::{self, Session};
use crate::accounts::{csrf, login};
use crate::app::{App, Worker};
use crate::crypto::{b64url, b64url_decode, random_bytes};
use crate::http::client_ip::client_ip;
use crate::http::form::{Form, encode_pairs};
use crate::http::{Req, Resp};
use crate::ui::{self, Slot};

/// Seconds an enrolment page stays usable.
pub const SEAL_TTL: i64 = 900;
const NONCE_LEN: usize = 12;

fn seal_key(app: &App) -> Option<aead::LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"latchkey").extract(app.csrf_key());
    let okm = prk
        .expand(&[b"totp enrolment seal v1"], &aead::AES_256_GCM)
        .ok()?;
    Some(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
}

fn seal_aad(user_id: &str, expires_at: i64) -> Vec<u8> {
    let mut aad = expires_at.to_be_bytes().to_vec();
    aad.extend_from_slice(user_id.as_bytes());
    aad
}

/// `secret` sealed for `user_id` until `expires_at`: nonce ‖ expiry ‖ ciphertext ‖ tag.
fn seal(app: &App, user_id: &str, secret: &[u8], expires_at: i64) -> Option<String> {
    let key = seal_key(app)?;
    let nonce = random_bytes::<NONCE_LEN>().ok()?;
    let mut data = secret.to_vec();
    key.seal_in_place_append_tag(
        aead::Nonce::assume_unique_for_key(nonce),
        aead::Aad::from(seal_aad(user_id, expires_at)),
        &mut data,
    )
    .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&expires_at.to_be_bytes());
    out.extend_from_slice(&data);
    Some(b64url(&out))
}

/// The secret of a sealed form value, if it is this server's, for `user_id`, and not expired.
fn unseal(app: &App, user_id: &str, sealed: &str, now: i64) -> Option<Vec<u8>> {
    if sealed.len() > 256 {
        return None;
    }
    let raw = b64url_decode(sealed)?;
    if raw.len() != NONCE_LEN + 8 + totp::SECRET_LEN + aead::AES_256_GCM.tag_len() {
        return None;
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let (expiry, ct) = rest.split_at(8);
    let expires_at = i64::from_be_bytes(expiry.try_into().ok()?);
    if expires_at <= now {
        return None;
    }
    let mut data = ct.to_vec();
    let plain = seal_key(app)?
        .open_in_place(
            aead::Nonce::try_assume_unique_for_key(nonce).ok()?,
            aead::Aad::from(seal_aad(user_id, expires_at)),
            &mut data,
        )
        .ok()?;
    Some(plain.to_vec())
}

fn server_error(what: &str, e: impl std::fmt::Display) -> Resp {
    log::error!("{what}: {e}");
    ui::message(500, "Something went wrong", "Try again in a moment.")
}

/// The signed-in (complete) session, or the 303 to sign in and come back to `back` (this
/// page's path and query).
fn signed_in(w: &mut Worker, req: &Req, now: i64, back: &str) -> Result<Session, Resp> {
    match session::current(w, req, now) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(Resp::empty(303)
            .with(
                "Location",
                format!(
                    "{}?{}",
                    crate::http::router::LOGIN,
                    encode_pairs([("return_to", back)])
                ),
            )
            .with("Cache-Control", "no-store")),
        Err(e) => Err(server_error("account", e)),
    }
}

/// Where "Continue" goes after enrolling: the `return_to`/`rd` the page was given (as after a
/// sign-in), else the account page.
pub(crate) fn targets(w: &Worker, form: &Form) -> (String, Option<String>) {
    let (return_to, rd) = login::targets(w, form);
    let given = form
        .get("return_to")
        .ok()
        .flatten()
        .is_some_and(|r| !r.is_empty());
    let return_to = if given { return_to } else { "/account".into() };
    (return_to, rd)
}

/// This page's own URL with its targets, for the sign-in to come back to.
pub(crate) fn here(path: &str, return_to: &str, rd: Option<&str>) -> String {
    let mut pairs = Vec::new();
    if return_to != "/account" {
        pairs.push(("return_to", return_to));
    }
    if let Some(rd) = rd {
        pairs.push(("rd", rd));
    }
    if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", encode_pairs(pairs))
    }
}

/// The QR code of `text` as inline SVG: one path of unit squares, with a quiet zone of four
/// modules (ISO/IEC 18004). Medium error correction.
fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text, qrcode::EcLevel::M).ok()?;
    let width = code.width();
    let size = width + 8;
    let mut path = String::new();
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (x, y) = (i % width + 4, i / width + 4);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" role=\"img\" \
         aria-label=\"QR code of the setup link\" shape-rendering=\"crispEdges\">\
         <rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>"
    ))
}

/// The host of the issuer: the name an authenticator app shows for the account.
fn issuer_name(w: &Worker) -> String {
    url::Url::parse(&w.app.config.issuer)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "latchkey".into())
}

/// A key in groups of four, as authenticator apps show them.
fn grouped(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

#[allow(clippy::too_many_arguments)]
fn enrol_page(
    w: &Worker,
    req: &Req,
    s: &Session,
    secret: &[u8],
    sealed: &str,
    return_to: &str,
    rd: Option<&str>,
    message: Option<&str>,
) -> Resp {
    let (token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => return server_error("totp page", e),
    };
    let uri = totp::otpauth_uri(&issuer_name(w), &s.user.username, secret);
    let Some(qr) = qr_svg(&uri) else {
        return server_error("totp page", "the QR code could not be made");
    };
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", ui::esc(m)))
        .unwrap_or_default();
    let body = ui::render(
        ui::TOTP_ENROL,
        &[
            ("qr", Slot::Html(&qr)),
            (
                "secret_text",
                Slot::Text(&grouped(&totp::base32_encode(secret))),
            ),
            ("uri", Slot::Text(&uri)),
            ("message", Slot::Html(&message)),
            ("csrf", Slot::Text(&token)),
            ("sealed", Slot::Text(sealed)),
            ("return_to", Slot::Text(return_to)),
            ("rd", Slot::Text(rd.unwrap_or(""))),
            (
                "passkey_url",
                Slot::Text(&here(crate::http::router::ACCOUNT_PASSKEYS, return_to, rd)),
            ),
        ],
    );
    let mut resp = ui::page(200, "Set up an authenticator app", &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// The page of a user who has an authenticator app: how many recovery codes remain, and the
/// form to remove it.
fn status_page(w: &Worker, req: &Req, status: u16, s: &Session, message: Option<&str>) -> Resp {
    let (token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => return server_error("totp page", e),
    };
    let left = match w.store.recovery_codes_left(&s.user.id) {
        Ok(n) => n,
        Err(e) => return server_error("totp page", e),
    };
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", ui::esc(m)))
        .unwrap_or_default();
    let body = ui::render(
        ui::TOTP_STATUS,
        &[
            ("message", Slot::Html(&message)),
            ("username", Slot::Text(&s.user.username)),
            ("recovery", Slot::Text(&recovery_left_message(left))),
            ("csrf", Slot::Text(&token)),
        ],
    );
    let mut resp = ui::page(status, "Authenticator app", &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// The recovery codes, shown once, with a "Continue" link to where `next` points.
fn codes_page(next: Resp, title: &str, codes: &[String]) -> Resp {
    let list: String = codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", ui::esc(c)))
        .collect();
    continue_page(
        next,
        title,
        "Write these recovery codes down or keep them in your password manager. Each signs you \
         in once if you lose your authenticator. They are shown only now.",
        &format!("<ol class=\"codes\" id=\"recovery-codes\">{list}</ol>"),
    )
}

/// `GET /account/totp`: a fresh secret to enrol, or the status of the one set up.
pub fn show(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = Form::parse(req.query.as_bytes()).unwrap_or_default();
    let (return_to, rd) = targets(w, &form);
    let back = here(
        crate::http::router::ENROL_SECOND_FACTOR,
        &return_to,
        rd.as_deref(),
    );
    let s = match signed_in(w, req, now, &back) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match w.store.totp(&s.user.id) {
        Ok(Some(_)) => return status_page(w, req, 200, &s, None),
        Ok(None) => {}
        Err(e) => return server_error("totp page", e),
    }
    if let Err(r) = super::may_change_sign_in(w, &s, now, &back) {
        return r;
    }
    let secret = match totp::new_secret() {
        Ok(s) => s,
        Err(e) => return server_error("totp page", e),
    };
    let Some(sealed) = seal(&w.app, &s.user.id, &secret, now + SEAL_TTL) else {
        return server_error("totp page", "sealing failed");
    };
    enrol_page(
        w,
        req,
        &s,
        &secret,
        &sealed,
        &return_to,
        rd.as_deref(),
        None,
    )
}

/// `POST /account/totp`: a right current code for the sealed secret turns it on.
pub fn submit(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let (return_to, rd) = targets(w, &form);
    let back = here(
        crate::http::router::ENROL_SECOND_FACTOR,
        &return_to,
        rd.as_deref(),
    );
    let s = match signed_in(w, req, now, &back) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let factors = match w.store.second_factors(&s.user.id) {
        Ok(f) => f,
        Err(e) => return server_error("totp enrolment", e),
    };
    if factors.totp {
        return status_page(
            w,
            req,
            409,
            &s,
            Some("An authenticator app is set up already. Remove it first to set up another."),
        );
    }
    if let Err(r) = super::may_change_sign_in(w, &s, now, &back) {
        return r;
    }
    let sealed = form.get("sealed").ok().flatten().unwrap_or("");
    let Some(secret) = unseal(&w.app, &s.user.id, sealed, now) else {
        return ui::message_with(
            400,
            "Set up an authenticator app",
            "This setup page has expired or was altered. Start again.",
            &ui::link(&back, "Start again"),
        );
    };
    let typed = form.get("code").ok().flatten().unwrap_or("");
    let Some(step) = totp::matching_step(&secret, typed, now) else {
        return enrol_page(
            w,
            req,
            &s,
            &secret,
            sealed,
            &return_to,
            rd.as_deref(),
            Some("That code is not right. Check the app's clock and try the current code."),
        );
    };
    // The confirming code's step counts as used: it cannot sign in again. Two tabs enrolling
    // at once: the first wins, the second is told so (its key was never saved).
    match w.store.set_totp(&s.user.id, &secret, step, now) {
        Ok(true) => {}
        Ok(false) => {
            return status_page(
                w,
                req,
                409,
                &s,
                Some("An authenticator app is set up already. Remove it first to set up another."),
            );
        }
        Err(e) => return server_error("totp enrolment", e),
    }
    // Other sessions signed in with the password alone stay, but count as password-only: an
    // app or rule that requires a second factor, or a change to how the user signs in
    // (`may_change_sign_in`), asks them for the code first.
    let ip = client_ip(req, &w.app.config.trusted_proxies).to_string();
    let actor = format!("user:{}", s.user.username);
    let audit = w.app.audit();
    audit.write(
        &mut w.store,
        now,
        &actor,
        "totp_enrolled",
        &s.user.username,
        "ok",
        &ip,
    );
    let codes = if factors.any() {
        None
    } else {
        match recovery::regenerate(&mut w.store, &s.user.id, now) {
            Ok(c) => {
                w.app.audit().write(
                    &mut w.store,
                    now,
                    &actor,
                    "recovery_codes_generated",
                    &s.user.username,
                    "ok",
                    &ip,
                );
                Some(c)
            }
            Err(e) => return server_error("recovery codes", e),
        }
    };
    let amr = s.amr.with_second_factor(&["otp"]);
    // A new session id with the new factor; if the session ended meanwhile the browser is
    // sent on anyway and signs in again there.
    let renewed = match session::complete(w, &s, &amr, now) {
        Ok(r) => r,
        Err(e) => return server_error("totp enrolment", e),
    };
    let (hash, cookie) = match renewed {
        Some((cookie, hash)) => (hash, Some(cookie)),
        None => (s.hash, None),
    };
    log::info!(target: "latchkey::security", "authenticator app set up by {}", s.user.username.escape_debug());
    let next = login::finish(
        w,
        &hash,
        &s.user.id,
        now,
        &return_to,
        rd.as_deref(),
        now,
        cookie,
    );
    match codes {
        Some(codes) => codes_page(next, "Authenticator app set up", &codes),
        None => continue_page(
            next,
            "Authenticator app set up",
            "Your authenticator app is set up. Sign-ins now ask for its code.",
            "",
        ),
    }
}

/// `POST /account/totp/remove`: with the current password, removes the authenticator app and
/// ends every other session of the user.
pub fn remove(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let s = match signed_in(w, req, now, crate::http::router::ENROL_SECOND_FACTOR) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match w.store.totp(&s.user.id) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return ui::message_with(
                404,
                "Authenticator app",
                "No authenticator app is set up.",
                &ui::link("/account", "Back to your account"),
            );
        }
        Err(e) => return server_error("totp removal", e),
    }
    // A session from before the factor gives it first (see `must_carry_factor`).
    if let Err(r) = super::must_carry_factor(w, &s, now, crate::http::router::ENROL_SECOND_FACTOR) {
        return r;
    }
    // The password is checked like a sign-in (throttled, audited).
    let password = form.get("password").ok().flatten().unwrap_or("");
    match super::confirm_password(w, req, &s, password, now) {
        Ok(true) => {}
        Ok(false) => return status_page(w, req, 200, &s, Some("Wrong password.")),
        Err(r) => return r,
    }
    let client = client_ip(req, &w.app.config.trusted_proxies);
    // Recovery codes back up a factor: with none left they go too (in the same transaction).
    let removed = w
        .store
        .delete_totp(&s.user.id)
        .and_then(|_| session::end_others(w, &s));
    let ended = match removed {
        Ok(n) => n,
        Err(e) => return server_error("totp removal", e),
    };
    let ip = client.to_string();
    w.app.audit().write(
        &mut w.store,
        now,
        &format!("user:{}", s.user.username),
        "totp_removed",
        &s.user.username,
        "ok",
        &ip,
    );
    log::info!(target: "latchkey::security", "authenticator app removed by {} ({ended} other sessions ended)", s.user.username.escape_debug());
    ui::message_with(
        200,
        "Authenticator app removed",
        "The authenticator app is removed, and every other browser signed in as you is signed out.",
        &ui::link("/account", "Back to your account"),
    )
}

fn recovery_page(w: &Worker, req: &Req, s: &Session) -> Resp {
    let (token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => return server_error("recovery page", e),
    };
    let left = match w.store.recovery_codes_left(&s.user.id) {
        Ok(n) => n,
        Err(e) => return server_error("recovery page", e),
    };
    let body = ui::render(
        ui::RECOVERY,
        &[
            ("message", Slot::Html("")),
            ("left", Slot::Text(&recovery_left_message(left))),
            ("csrf", Slot::Text(&token)),
        ],
    );
    let mut resp = ui::page(200, "Recovery codes", &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// Recovery codes only back up a second factor: without one there is nothing to recover.
fn no_factor() -> Resp {
    ui::message_with(
        409,
        "Recovery codes",
        "Recovery codes back up a second factor. Set up an authenticator app or a passkey first.",
        &ui::link(
            crate::http::router::ENROL_SECOND_FACTOR,
            "Set up an authenticator app",
        ),
    )
}

/// `GET /account/recovery`: how many recovery codes remain.
pub fn recovery_show(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let s = match signed_in(w, req, now, "/account/recovery") {
        Ok(s) => s,
        Err(r) => return r,
    };
    match w.store.second_factors(&s.user.id) {
        Ok(f) if f.any() => recovery_page(w, req, &s),
        Ok(_) => no_factor(),
        Err(e) => server_error("recovery page", e),
    }
}

/// `POST /account/recovery`: a new set of codes, replacing the old, shown once.
pub fn recovery_regenerate(w: &mut Worker, req: &Req, now: i64) -> Resp {
    if let Err(page) = csrf::checked_form(&w.app, req) {
        return page;
    }
    let s = match signed_in(w, req, now, "/account/recovery") {
        Ok(s) => s,
        Err(r) => return r,
    };
    match w.store.second_factors(&s.user.id) {
        Ok(f) if f.any() => {}
        Ok(_) => return no_factor(),
        Err(e) => return server_error("recovery codes", e),
    }
    if let Err(r) = super::may_change_sign_in(w, &s, now, "/account/recovery") {
        return r;
    }
    let codes = match recovery::regenerate(&mut w.store, &s.user.id, now) {
        Ok(c) => c,
        Err(e) => return server_error("recovery codes", e),
    };
    let ip = client_ip(req, &w.app.config.trusted_proxies).to_string();
    w.app.audit().write(
        &mut w.store,
        now,
        &format!("user:{}", s.user.username),
        "recovery_codes_generated",
        &s.user.username,
        "ok",
        &ip,
    );
    let next = Resp::empty(303).with("Location", "/account");
    codes_page(next, "New recovery codes", &codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_user_before_it_expires() {
        let w = crate::app::testing::worker_without_keys();
        let secret = [9u8; totp::SECRET_LEN];
        let sealed = seal(&w.app, "u1", &secret, 1000).unwrap();
        assert_eq!(unseal(&w.app, "u1", &sealed, 999).unwrap(), secret);
        assert_eq!(unseal(&w.app, "u1", &sealed, 1000), None, "expired");
        assert_eq!(unseal(&w.app, "u2", &sealed, 999), None, "another user's");
        // Any change is refused: the expiry, the ciphertext, the length.
        let mut raw = b64url_decode(&sealed).unwrap();
        raw[NONCE_LEN + 7] ^= 1;
        assert_eq!(unseal(&w.app, "u1", &b64url(&raw), 0), None);
        let mut raw = b64url_decode(&sealed).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert_eq!(unseal(&w.app, "u1", &b64url(&raw), 999), None);
        for bad in [
            "",
            "x",
            "!!!!",
            &sealed[..sealed.len() - 2],
            &"A".repeat(300),
        ] {
            assert_eq!(unseal(&w.app, "u1", bad, 999), None, "{bad:.20}");
        }
        // Two seals of one secret differ (a fresh nonce each).
        assert_ne!(seal(&w.app, "u1", &secret, 1000).unwrap(), sealed);
    }

    #[test]
    fn the_qr_code_is_inline_svg_and_the_key_is_grouped() {
        let svg = qr_svg("otpauth://totp/a:b?secret=MZXW6YTBOI").unwrap();
        assert!(
            svg.starts_with("<svg ") && svg.ends_with("</svg>"),
            "{svg:.60}"
        );
        assert!(svg.contains("<path fill=\"#000\" d=\"M"));
        assert_eq!(grouped("ABCDEFGHIJ"), "ABCD EFGH IJ");
    }
}
