//! The login page (`GET/POST /login`) and the signed-in home page (`GET /`).
//!
//! A failed login says the same thing whether the user exists or not and takes the same time
//! (a dummy argon2 verification). Failures are throttled per account and per client address;
//! a locked key gets a 429 page without its password being checked. A username longer than any
//! account may have, or a password longer than [`password::MAX_LEN`], fails the same way
//! without a lookup or a hash, and counts against the address only. After a successful POST
//! the browser is sent on with 303 (RFC 9700 §4.12).

use crate::accounts::{MAX_USERNAME_CHARS, csrf, password, session};
use crate::app::Worker;
use crate::http::form::Form;
use crate::http::{Req, Resp};
use crate::store::users::username_key;
use crate::ui::{self, Slot};

/// Where a login may send the browser afterwards: only latchkey's own authorization endpoint
/// (or its home page), as a relative path. Anything else becomes `/`.
fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(r) if r.starts_with("/authorize?") && !r.contains(['\\', '\r', '\n']) => r.to_string(),
        _ => "/".to_string(),
    }
}

fn login_page(
    w: &Worker,
    req: &Req,
    status: u16,
    return_to: &str,
    rd: &str,
    username: &str,
    message: Option<&str>,
) -> Resp {
    let (token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => {
            log::error!("login page: {e}");
            return ui::message(500, "Something went wrong", "Try again in a moment.");
        }
    };
    let message = message
        .map(|m| format!("<p class=\"error\" role=\"alert\">{}</p>", ui::esc(m)))
        .unwrap_or_default();
    let body = ui::render(
        ui::LOGIN,
        &[
            ("message", Slot::Html(&message)),
            ("csrf", Slot::Text(&token)),
            ("return_to", Slot::Text(return_to)),
            ("rd", Slot::Text(rd)),
            ("username", Slot::Text(username)),
        ],
    );
    let mut resp = ui::page(status, "Sign in", &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// The return URL of a query that nginx built without encoding it, as in
/// `error_page 401 =302 https://auth.example.org/login?rd=$scheme://$http_host$request_uri`:
/// the query starts with `rd=` and a literal `http://` or `https://` (an encoded one starts
/// `http%3A`), so everything after `rd=` is the URL, its own `?` and `&` included, taken as it
/// came (its escapes are the URL's, not the form's). `None` for any other query.
fn unencoded_rd(query: &str) -> Option<&str> {
    let url = query.strip_prefix("rd=")?;
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

/// `GET /login`. The forward-auth return URL comes in `rd`, form-encoded (latchkey's own
/// redirects) or raw (nginx's `error_page … ?rd=$scheme://$http_host$request_uri`).
pub fn show(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let raw_rd = unencoded_rd(&req.query);
    let form = match raw_rd {
        Some(_) => Form::default(),
        None => Form::parse(req.query.as_bytes()).unwrap_or_default(),
    };
    let return_to = safe_return_to(form.get("return_to").ok().flatten());
    let rd = match raw_rd {
        Some(raw) => checked_target(w, raw),
        None => forward_target(w, &form),
    };
    // Signed in already (e.g. through an OIDC app) and sent here by forward auth: no password
    // needed, only the forward-auth cookie.
    if let Some(rd) = &rd {
        match session::current(w, req, now) {
            Ok(Some(s)) => {
                return to_forward_target(w, &s.hash, &s.user.id, s.auth_time, rd, now, None);
            }
            Ok(None) => {}
            Err(e) => log::error!("login page: {e}"),
        }
    }
    login_page(
        w,
        req,
        200,
        &return_to,
        rd.as_deref().unwrap_or(""),
        "",
        None,
    )
}

/// The forward-auth return URL of a login form, if present and allowed.
fn forward_target(w: &Worker, form: &Form) -> Option<String> {
    checked_target(w, form.get("rd").ok().flatten()?)
}

/// `raw` if it is an allowed return URL ([`crate::forward::redirect::validate`]).
fn checked_target(w: &Worker, raw: &str) -> Option<String> {
    let ok = crate::forward::redirect::validate(raw, &w.app.rules());
    if ok.is_none() {
        log::info!(target: "latchkey::security", "login: refused a return URL outside the protected hosts");
    }
    ok
}

/// 303 to a protected app with a new forward-auth cookie (and the login cookie when one was
/// just issued).
fn to_forward_target(
    w: &mut Worker,
    parent: &[u8; 32],
    user_id: &str,
    auth_time: i64,
    rd: &str,
    now: i64,
    login_cookie: Option<String>,
) -> Resp {
    let fa = match session::start_forward(w, parent, user_id, auth_time, now) {
        Ok(c) => c,
        Err(e) => {
            log::error!("forward-auth session: {e}");
            return ui::message(500, "Something went wrong", "Try again in a moment.");
        }
    };
    let mut resp = Resp::empty(303)
        .with("Location", rd.to_string())
        .with("Cache-Control", "no-store")
        .with("Set-Cookie", fa);
    if let Some(c) = login_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// `POST /login`.
pub fn submit(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let return_to = safe_return_to(form.get("return_to").ok().flatten());
    let rd = forward_target(w, &form);
    let username = form
        .get("username")
        .ok()
        .flatten()
        .unwrap_or("")
        .trim()
        .to_string();
    let password = form.get("password").ok().flatten().unwrap_or("");
    let ip_key = crate::http::client_ip::client_ip(req, &w.app.config.trusted_proxies).to_string();
    // No account has a longer name, and no password longer than MAX_LEN was ever set: such a
    // sign-in fails before any lookup or hash, and an over-long name never enters the
    // per-account throttle (whose keys an attacker could otherwise choose freely).
    let long_name =
        username.len() > 4 * MAX_USERNAME_CHARS || username.chars().count() > MAX_USERNAME_CHARS;
    let oversized = long_name || password.len() > password::MAX_LEN;
    let account_key = (!long_name).then(|| username_key(&username));
    let (accounts, addresses) = w.app.throttles();
    let account_lock = account_key.as_deref().and_then(|k| accounts.locked(k, now));
    if let Some(wait) = account_lock.max(addresses.locked(&ip_key, now)) {
        log::info!(target: "latchkey::security", "login throttled from {ip_key}");
        crate::metrics::METRICS.login_throttled();
        w.app
            .audit()
            .record(now, "anonymous", "login", "", "locked", &ip_key);
        return ui::message(
            429,
            "Too many attempts",
            &format!("Too many failed sign-ins. Wait {wait} seconds, then try again."),
        )
        .with("Retry-After", wait.to_string());
    }
    let user = if oversized {
        None
    } else {
        match w.store.user_by_name(&username) {
            Ok(u) => u,
            Err(e) => {
                log::error!("login: {e}");
                return ui::message(500, "Something went wrong", "Try again in a moment.");
            }
        }
    };
    let ok = match &user {
        Some(u) if !u.disabled => match &u.password_hash {
            Some(phc) => password::verify(password, phc),
            None => {
                password::verify_dummy(password);
                false
            }
        },
        _ if oversized => false,
        _ => {
            password::verify_dummy(password);
            false
        }
    };
    let user = match (ok, &user) {
        (true, Some(u)) => u.clone(),
        _ => {
            crate::metrics::METRICS.login_failure();
            let target = user
                .as_ref()
                .map(|u| u.username.clone())
                .unwrap_or_default();
            w.app
                .audit()
                .record(now, "anonymous", "login", &target, "failed", &ip_key);
            // An oversized sign-in counts against its address like any failure (it is one,
            // and a flood of them is abuse from there), but not against an account: it
            // cannot be a guess at one.
            let account_lock = match &account_key {
                Some(k) if !oversized => accounts.fail(k, now),
                _ => None,
            };
            let lock = account_lock.max(addresses.fail(&ip_key, now));
            // The typed name is logged only when it is a real account: people type passwords
            // into the username field.
            let who = user
                .as_ref()
                .map(|u| u.username.as_str())
                .unwrap_or("an unknown user");
            log::info!(target: "latchkey::security", "login failed for {} from {}", who.escape_debug(), ip_key);
            if let Some(wait) = lock {
                return ui::message(
                    429,
                    "Too many attempts",
                    &format!("Too many failed sign-ins. Wait {wait} seconds, then try again."),
                )
                .with("Retry-After", wait.to_string());
            }
            return login_page(
                w,
                req,
                200,
                &return_to,
                rd.as_deref().unwrap_or(""),
                &username,
                Some("Wrong username or password."),
            );
        }
    };
    if let Some(k) = &account_key {
        accounts.reset(k);
    }
    crate::metrics::METRICS.login();
    w.app.audit().record(
        now,
        &format!("user:{}", user.username),
        "login",
        &user.username,
        "ok",
        &ip_key,
    );
    if user
        .password_hash
        .as_deref()
        .is_some_and(password::needs_rehash)
    {
        match password::hash(password) {
            Ok(h) => {
                if let Err(e) = w.store.set_password_hash(&user.id, &h, now) {
                    log::error!("password rehash: {e}");
                }
            }
            Err(e) => log::error!("password rehash: {e}"),
        }
    }
    let (cookie, hash) = match session::start(w, req, &user.id, now) {
        Ok(c) => c,
        Err(e) => {
            log::error!("login: {e}");
            return ui::message(500, "Something went wrong", "Try again in a moment.");
        }
    };
    log::info!(target: "latchkey::security", "login succeeded for {} from {}", user.username.escape_debug(), ip_key);
    if let Some(rd) = &rd {
        return to_forward_target(w, &hash, &user.id, now, rd, now, Some(cookie));
    }
    Resp::empty(303)
        .with("Location", return_to)
        .with("Set-Cookie", cookie)
        .with("Cache-Control", "no-store")
}

/// `GET /`: who is signed in.
pub fn home(w: &mut Worker, req: &Req, now: i64) -> Resp {
    match session::current(w, req, now) {
        Ok(Some(s)) => {
            let extra = "<p><a href=\"/logout\">Sign out</a></p>";
            ui::page(
                200,
                "latchkey",
                &ui::render(
                    ui::MESSAGE,
                    &[
                        (
                            "message",
                            Slot::Text(&format!("You are signed in as {}.", s.user.username)),
                        ),
                        ("extra", Slot::Html(extra)),
                    ],
                ),
            )
        }
        Ok(None) => ui::page(
            200,
            "latchkey",
            &ui::render(
                ui::MESSAGE,
                &[
                    ("message", Slot::Text("You are not signed in.")),
                    ("extra", Slot::Html("<p><a href=\"/login\">Sign in</a></p>")),
                ],
            ),
        ),
        Err(e) => {
            log::error!("home: {e}");
            ui::message(500, "Something went wrong", "Try again in a moment.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::unencoded_rd;

    #[test]
    fn an_unencoded_rd_is_the_rest_of_the_query() {
        assert_eq!(
            unencoded_rd("rd=https://app.example/x?a=1&b=2"),
            Some("https://app.example/x?a=1&b=2")
        );
        assert_eq!(
            unencoded_rd("rd=http://app.example/a%20b+c"),
            Some("http://app.example/a%20b+c")
        );
        for q in [
            "",
            "rd=",
            "rd=https%3A%2F%2Fapp.example%2F",
            "return_to=/&rd=https://app.example/",
            "rd=//evil.example/",
            "rd=javascript:alert(1)",
            "xrd=https://app.example/",
        ] {
            assert_eq!(unencoded_rd(q), None, "{q:?}");
        }
    }
}
