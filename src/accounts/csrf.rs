//! CSRF tokens bound to the browser: the browser holds a random value in an HttpOnly cookie,
//! and every form carries HMAC-SHA256(server key, that value). A page on another site can make
//! the browser send the cookie but cannot read it, so it cannot produce the form field; a
//! planted cookie does not help either, since the field must be the server's MAC of it.

use ring::hmac;

use crate::crypto::{b64url, ct_eq, random_token};
use crate::error::Error;
use crate::http::form::Form;
use crate::http::{Req, Resp, cookies};
use crate::ui;

/// The cookie name: `__Host-` prefixed when the issuer is https.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-latchkey-csrf"
    } else {
        "latchkey-csrf"
    }
}

/// The CSRF cookie value of this browser, or a new one to set (returned as the `Set-Cookie`
/// value).
pub fn browser_value(req: &Req, secure: bool) -> Result<(String, Option<String>), Error> {
    if let Some(v) = cookies::get(req, cookie_name(secure)).filter(|v| v.len() == 43) {
        return Ok((v.to_string(), None));
    }
    let v = random_token()?;
    // A year: the value is no credential on its own.
    let set = cookies::set(cookie_name(secure), &v, 31_536_000, secure);
    Ok((v, Some(set)))
}

/// The form token for a browser value.
pub fn token(key: &[u8], browser_value: &str) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, key);
    b64url(hmac::sign(&k, browser_value.as_bytes()).as_ref())
}

/// Reads the form of a POST from one of latchkey's pages and checks its CSRF token. The error is
/// the page to answer: 400 for a body that is not a form, 403 for a missing or wrong token.
pub fn checked_form(app: &crate::app::App, req: &Req) -> Result<Form, Resp> {
    let form = match req.content_type().as_deref() {
        Some("application/x-www-form-urlencoded") => Form::parse(&req.body).ok(),
        _ => None,
    };
    let Some(form) = form else {
        return Err(ui::message(
            400,
            "Bad request",
            "The form could not be read.",
        ));
    };
    if !check(
        app.csrf_key(),
        req,
        app.secure_cookies(),
        form.get("csrf").ok().flatten(),
    ) {
        log::info!(target: "latchkey::security", "form refused: missing or wrong CSRF token from {}", req.peer.ip());
        return Err(ui::message(
            403,
            "Form expired",
            "This form has expired or did not come from latchkey. Go back and try again.",
        ));
    }
    Ok(form)
}

/// The form token for this browser, and the `Set-Cookie` value when the browser had no CSRF
/// cookie yet.
pub fn form_token(app: &crate::app::App, req: &Req) -> Result<(String, Option<String>), Error> {
    let (browser, set_cookie) = browser_value(req, app.secure_cookies())?;
    Ok((token(app.csrf_key(), &browser), set_cookie))
}

/// True if `submitted` is the token of this browser's cookie.
pub fn check(key: &[u8], req: &Req, secure: bool, submitted: Option<&str>) -> bool {
    let (Some(value), Some(submitted)) = (cookies::get(req, cookie_name(secure)), submitted) else {
        return false;
    };
    ct_eq(token(key, value).as_bytes(), submitted.as_bytes())
}
