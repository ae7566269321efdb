//! CSRF tokens bound to the browser: the browser holds a random value in an HttpOnly cookie,
//! and every form carries HMAC-SHA256(server key, that value). A page on another site can make
//! the browser send the cookie but cannot read it, so it cannot produce the form field; a
//! planted cookie does not help either, since the field must be the server's MAC of it.

use ring::hmac;

use crate::crypto::{b64url, ct_eq, random_token};
use crate::error::Error;
use crate::http::{Req, cookies};

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

/// True if `submitted` is the token of this browser's cookie.
pub fn check(key: &[u8], req: &Req, secure: bool, submitted: Option<&str>) -> bool {
    let (Some(value), Some(submitted)) = (cookies::get(req, cookie_name(secure)), submitted) else {
        return false;
    };
    ct_eq(token(key, value).as_bytes(), submitted.as_bytes())
}
