//! The login page (`GET/POST /login`) and the signed-in home page (`GET /`).
//!
//! The sign-in decision is [`authenticate`]'s (throttling, timing, audit: see
//! [`crate::accounts::signin`]); this module reads the form and renders the outcome. A failed
//! login says the same thing whether the user exists or not; a locked account or address gets
//! a 429 page with `Retry-After`. After a successful POST the browser is sent on with 303
//! (RFC 9700 §4.12).

use crate::accounts::mfa::{self, Amr};
use crate::accounts::signin::{Attempt, Outcome, authenticate};
use crate::accounts::{csrf, session};
use crate::app::Worker;
use crate::http::client_ip::client_ip;
use crate::http::form::Form;
use crate::http::{Req, Resp};
use crate::ui::{self, Slot};

/// Where a login may send the browser afterwards: only latchkey's own authorization endpoint,
/// its account pages (`/account`, `/account/…`, `/account?…`) or its home page, as a relative
/// path. Anything else becomes `/`.
pub(crate) fn safe_return_to(raw: Option<&str>) -> String {
    let Some(r) = raw.filter(|r| !r.contains(['\\', '\r', '\n'])) else {
        return "/".to_string();
    };
    let account = {
        let path = r.split(['?', '#']).next().unwrap_or_default();
        (path == "/account" || path.starts_with("/account/"))
            && !path.contains("//")
            && !path.split('/').any(|seg| seg == ".." || seg == ".")
            && !path.contains('%')
    };
    if r.starts_with("/authorize?") || account {
        r.to_string()
    } else {
        "/".to_string()
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
    let title = match app_name(w, return_to, rd) {
        Some(app) => format!("Sign in to {app}"),
        None => "Sign in".to_string(),
    };
    let mut resp = ui::page(status, &title, &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// What the user is signing in to: the client's name for an `/authorize` return, the host (and
/// port, when it has one) of a forward-auth return URL. Text: the page escapes it.
fn app_name(w: &Worker, return_to: &str, rd: &str) -> Option<String> {
    if let Some(query) = return_to.strip_prefix("/authorize?") {
        let form = Form::parse(query.as_bytes()).ok()?;
        let id = form.get("client_id").ok().flatten()?;
        return match w.store.client(id) {
            Ok(client) => client.map(|c| c.name.clone()),
            Err(e) => {
                log::error!("login page: {e}");
                None
            }
        };
    }
    let url = url::Url::parse(rd).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
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
                // nginx sends a signed-in browser here too when a rule wants a second factor
                // the session lacks: it steps up instead of going round in a circle.
                let asked = crate::forward::redirect::requires_mfa(rd, &w.app.rules());
                let needed = mfa::policy::required(&w.app.settings(), &s.user, asked);
                if needed && !s.amr.is_multi_factor() {
                    let has_factor = w.store.second_factors(&s.user.id).is_ok_and(|f| f.any());
                    return Resp::empty(303)
                        .with("Location", mfa::policy::step_up(has_factor, "/", Some(rd)))
                        .with("Cache-Control", "no-store");
                }
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

/// `POST /login`: parse the form, [`authenticate`], render the outcome.
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
    let attempt = Attempt {
        username: &username,
        password: form.get("password").ok().flatten().unwrap_or(""),
        client: client_ip(req, &w.app.config.trusted_proxies),
        now,
        purpose: crate::accounts::signin::Purpose::SignIn,
    };
    let user = match authenticate(&w.app, &mut w.store, &attempt) {
        Ok(Outcome::SignedIn(user)) => user,
        Ok(Outcome::Throttled { retry_after }) => return too_many_attempts(retry_after),
        Ok(Outcome::Refused { .. }) => {
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
        Err(e) => {
            log::error!("login: {e}");
            return ui::message(500, "Something went wrong", "Try again in a moment.");
        }
    };
    // A user with a second factor gives it next: the session starts owing it, and counts as
    // a sign-in only once it is given.
    let factors = match w.store.second_factors(&user.id) {
        Ok(f) => f,
        Err(e) => {
            log::error!("login: {e}");
            return ui::message(500, "Something went wrong", "Try again in a moment.");
        }
    };
    let how = if factors.any() {
        session::Start::SecondFactorOwed
    } else {
        session::Start::Complete
    };
    let (cookie, hash) = match session::start(w, req, &user.id, now, &Amr::password(), how) {
        Ok(c) => c,
        Err(e) => {
            log::error!("login: {e}");
            return ui::message(500, "Something went wrong", "Try again in a moment.");
        }
    };
    if how == session::Start::SecondFactorOwed {
        return Resp::empty(303)
            .with("Location", second_factor_url(&return_to, rd.as_deref()))
            .with("Set-Cookie", cookie)
            .with("Cache-Control", "no-store");
    }
    finish(
        w,
        &hash,
        &user.id,
        now,
        &return_to,
        rd.as_deref(),
        now,
        Some(cookie),
    )
}

/// The second-factor page, carrying where the sign-in goes afterwards.
pub fn second_factor_url(return_to: &str, rd: Option<&str>) -> String {
    page_url(crate::http::router::SECOND_FACTOR, return_to, rd)
}

/// The login page, carrying where the sign-in goes afterwards.
pub fn login_url(return_to: &str, rd: Option<&str>) -> String {
    page_url(crate::http::router::LOGIN, return_to, rd)
}

fn page_url(path: &str, return_to: &str, rd: Option<&str>) -> String {
    let mut pairs = vec![("return_to", return_to)];
    if let Some(rd) = rd {
        pairs.push(("rd", rd));
    }
    format!("{path}?{}", crate::http::form::encode_pairs(pairs))
}

/// Sends a signed-in browser on: to the forward-auth target `rd` with a new forward-auth
/// cookie, or to `return_to` (an `/authorize` request, or `/`). `login_cookie` is the session
/// cookie when it was just issued.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    w: &mut Worker,
    session_hash: &[u8; 32],
    user_id: &str,
    auth_time: i64,
    return_to: &str,
    rd: Option<&str>,
    now: i64,
    login_cookie: Option<String>,
) -> Resp {
    if let Some(rd) = rd {
        return to_forward_target(w, session_hash, user_id, auth_time, rd, now, login_cookie);
    }
    let mut resp = Resp::empty(303)
        .with("Location", return_to.to_string())
        .with("Cache-Control", "no-store");
    if let Some(c) = login_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// The return targets a page of the sign-in carries (the login form, the second-factor
/// form): a safe `return_to` and an allowed forward-auth `rd`.
pub fn targets(w: &Worker, form: &Form) -> (String, Option<String>) {
    (
        safe_return_to(form.get("return_to").ok().flatten()),
        forward_target(w, form),
    )
}

/// The 429 page of a locked account or address.
pub(crate) fn too_many_attempts(wait: i64) -> Resp {
    ui::message(
        429,
        "Too many attempts",
        &format!("Too many failed sign-ins. Wait {wait} seconds, then try again."),
    )
    .with("Retry-After", wait.to_string())
}

/// `GET /`: who is signed in, with a sign-out button (the form `/logout` asks for).
pub fn home(w: &mut Worker, req: &Req, now: i64) -> Resp {
    match session::current(w, req, now) {
        Ok(Some(s)) => {
            let (token, set_cookie) = match csrf::form_token(&w.app, req) {
                Ok(v) => v,
                Err(e) => {
                    log::error!("home: {e}");
                    return ui::message(500, "Something went wrong", "Try again in a moment.");
                }
            };
            let body = ui::render(
                ui::LOGOUT,
                &[
                    (
                        "message",
                        Slot::Text(&format!("You are signed in as {}.", s.user.username)),
                    ),
                    ("csrf", Slot::Text(&token)),
                    (
                        "extra",
                        Slot::Html(&ui::link(crate::http::router::ACCOUNT, "Your account")),
                    ),
                ],
            );
            let resp = ui::page(200, "Signed in", &body);
            match set_cookie {
                Some(c) => resp.with("Set-Cookie", c),
                None => resp,
            }
        }
        Ok(None) => ui::message_with(
            200,
            "Not signed in",
            "You are not signed in.",
            &ui::link("/login", "Sign in"),
        ),
        Err(e) => {
            log::error!("home: {e}");
            ui::message(500, "Something went wrong", "Try again in a moment.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{safe_return_to, unencoded_rd};

    #[test]
    fn return_targets_are_the_authorization_endpoint_or_account_pages() {
        for ok in [
            "/authorize?client_id=a",
            "/account",
            "/account/totp",
            "/account/totp?return_to=%2Fauthorize%3Fx%3D1",
            "/account?tab=1",
        ] {
            assert_eq!(safe_return_to(Some(ok)), ok);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/accounts",
            "/account//evil.example",
            "/account/../logout",
            "/account/%2e%2e/logout",
            "/account\\x",
            "/account\nx",
            "/authorize",
            "/logout",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }

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
