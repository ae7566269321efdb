//! Forward auth: a reverse proxy (Traefik `ForwardAuth`, Caddy `forward_auth`, nginx
//! `auth_request`) asks `GET /api/forward-auth` about every request to an app that has no login
//! of its own, and latchkey answers:
//!
//! - 200 with `Remote-User`, `Remote-Name`, `Remote-Email`, `Remote-Groups` and, for a person,
//!   `Remote-Amr` (how they signed in: RFC 8176 values, comma-separated, e.g. `pwd,otp,mfa`) —
//!   let it through;
//! - for a person who must give a second factor (the rule's `--require-mfa`, the user's or a
//!   group's requirement) but signed in without one: a browser is sent to give it (or to enrol
//!   one) and back; anything else gets 403;
//! - 302 to latchkey's login page (Traefik/Caddy) or 401 (nginx, whose `error_page 401` does
//!   the redirect) for a browser that is not signed in; 401 with a Bearer challenge for
//!   everything else (`Accept: application/json`, scripts);
//! - 403 for a request that does not say which request to check (an untrusted peer, or a
//!   trusted proxy that sent no `X-Forwarded-Host` or `X-Original-URL`: the page names the
//!   missing header), a signed-in user the rule does not admit (the page links to "use another
//!   account": sign out, then sign in again for the same address), a `deny` rule, no matching
//!   rule, or an ambiguous path (see [`rules`]: `..;`, backslashes, encoded separators and dots, double
//!   encoding, NUL, invalid UTF-8 escapes), refused before any rule is consulted.
//!
//! It fails closed: any error is a denial, never a 200. Every answer is `no-store`.

pub mod cache;
pub mod proxy;
pub mod redirect;
pub mod rules;

use crate::accounts::mfa::{self, Amr};
use crate::accounts::session;
use crate::apikeys;
use crate::app::Worker;
use crate::http::auth::{Authorization, authorization};
use crate::http::form::encode_component;
use crate::http::{Req, Resp};
use crate::oauth::access_token;
use crate::oauth::error::{ErrorCode, bearer_challenge, credentials_required};
use crate::store::User;
use crate::ui;
use proxy::{Dialect, Unreadable};
use rules::{Action, Rule};

fn denied(message: &str) -> Resp {
    ui::message(403, "Access denied", message)
}

fn allowed(user: &str, name: &str, email: &str, groups: &[String]) -> Resp {
    // Header values come from the database; keep them to one printable line.
    let clean = |s: &str| -> String {
        if s.chars().any(char::is_control) {
            s.chars().filter(|c| !c.is_control()).collect()
        } else {
            s.to_owned()
        }
    };
    Resp::empty(200)
        .with("Remote-User", clean(user))
        .with("Remote-Name", clean(name))
        .with("Remote-Email", clean(email))
        .with("Remote-Groups", clean(&groups.join(",")))
}

fn wants_html(req: &Req) -> bool {
    let accept = req.header_first("accept").unwrap_or("");
    accept.contains("text/html") && !accept.trim_start().starts_with("application/json")
}

/// Handles a forward-auth request.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Resp {
    decide(w, req, now).set("Cache-Control", "no-store")
}

fn decide(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let orig = match proxy::original(req, &w.app.config.trusted_proxies) {
        Ok(orig) => orig,
        Err(Unreadable::Untrusted) => {
            log::info!(target: "latchkey::security", "forward auth from {} without trusted proxy headers: denied", req.peer.ip());
            return denied("This request did not come through a trusted proxy.");
        }
        Err(Unreadable::Missing(m)) => {
            log::warn!(target: "latchkey::security", "forward auth from trusted proxy {}: no {} header, so no request to check: denied", req.peer.ip(), m.headers());
            return denied(&format!(
                "The proxy did not say which request to check: it sent no {} header.",
                m.headers()
            ));
        }
        Err(Unreadable::Malformed) => {
            log::info!(target: "latchkey::security", "forward auth from {}: repeated or malformed proxy headers: denied", req.peer.ip());
            return denied(
                "The proxy's description of this request is repeated or malformed, so it is not allowed.",
            );
        }
    };
    if let Some(why) = rules::ambiguous_path(orig.raw_path) {
        log::info!(target: "latchkey::security", "forward auth for {}: ambiguous path ({why}): denied", orig.host);
        return denied("This address is ambiguous, so it is not allowed.");
    }
    let rules = w.app.rules();
    let Some(rule) = rules.find(&orig.host, orig.port, orig.path(), &orig.method) else {
        return denied("No access rule covers this address.");
    };
    match rule.action {
        Action::Bypass => return allowed("", "", "", &[]),
        Action::Deny => return denied("Access to this address is not allowed."),
        _ => {}
    }
    if let Some(resp) = machine(w, req, rule, &orig, now) {
        return resp;
    }
    let signed = match session::current_forward(w, req, now) {
        Ok(u) => u,
        Err(e) => {
            log::error!("forward auth: {e}");
            return denied("latchkey could not check your session.");
        }
    };
    match signed {
        Some(s) if rule.admits_user(&s.user) => {
            let settings = w.app.settings();
            if !mfa::policy::required(&settings, &s.user, rule.require_mfa)
                || s.amr.is_multi_factor()
            {
                return admit_user(&s.user, &s.amr);
            }
            if !wants_html(req) {
                return denied("This app requires signing in with a second factor.");
            }
            let has_factor = match w.store.second_factors(&s.user.id) {
                Ok(f) => f.any(),
                Err(e) => {
                    log::error!("forward auth: {e}");
                    return denied("latchkey could not check your session.");
                }
            };
            let url = orig.url();
            let step_up = format!(
                "{}{}",
                w.app.config.issuer,
                mfa::policy::step_up(has_factor, "/", Some(&url))
            );
            match orig.dialect {
                Dialect::Forwarded => Resp::empty(302).with("Location", step_up),
                Dialect::OriginalUrl => credentials_required().with("Location", step_up),
            }
        }
        Some(s) => {
            let u = &s.user;
            log::info!(target: "latchkey::security", "forward auth: {} not admitted to {} by rule {}", u.username, orig.host, rule.id);
            // The page is served on the app's host: the link goes to latchkey's own.
            let switch = format!(
                "{}/logout?rd={}",
                w.app.config.issuer,
                encode_component(&orig.url())
            );
            ui::message_with(
                403,
                "Access denied",
                &format!(
                    "You are signed in as {}, but this app is not open to you.",
                    u.username
                ),
                &ui::link(&switch, "Use another account"),
            )
        }
        None if wants_html(req) => {
            let login = format!(
                "{}/login?rd={}",
                w.app.config.issuer,
                encode_component(&orig.url())
            );
            match orig.dialect {
                Dialect::Forwarded => Resp::empty(302).with("Location", login),
                // nginx turns this into a redirect with `error_page 401`.
                Dialect::OriginalUrl => credentials_required().with("Location", login),
            }
        }
        None => credentials_required(),
    }
}

fn admit_user(u: &User, amr: &Amr) -> Resp {
    allowed(
        &u.username,
        u.name.as_deref().unwrap_or(""),
        u.email.as_deref().unwrap_or(""),
        &u.groups,
    )
    .with("Remote-Amr", amr.values().join(","))
}

/// An API key or access token in place of a session. `None` when the request carries neither.
fn machine(w: &Worker, req: &Req, rule: &Rule, orig: &proxy::Original, now: i64) -> Option<Resp> {
    // Basic credentials (or another scheme) meant for the app itself are not latchkey's.
    let bearer = matches!(authorization(req), Ok(Authorization::Bearer(_)));
    if !bearer && req.header_first("x-api-key").is_none() {
        return None;
    }
    let key = match apikeys::verify::presented_key(req) {
        Ok(k) => k?,
        Err(resp) => return Some(resp),
    };
    if key.starts_with(apikeys::format::PREFIX) {
        return Some(match apikeys::verify::admit(w, &key, now) {
            Ok((entry, _)) if rule.admits_machine(&entry.scopes) => {
                allowed(&entry.name, &entry.name, "", &[])
            }
            Ok(_) => denied("This API key may not use this address."),
            Err(resp) => resp,
        });
    }
    // An access token: ours, valid, meant for this app (its origin in `aud`), with the scopes.
    let Ok(Ok(claims)) = access_token::validate(w, &key, now) else {
        return Some(bearer_challenge(
            ErrorCode::InvalidToken,
            "the access token is not valid",
            None,
        ));
    };
    let origin = format!("{}://{}", orig.scheme, orig.authority);
    let aud_ok = claims.has_audience(&origin);
    if !aud_ok {
        return Some(bearer_challenge(
            ErrorCode::InvalidToken,
            "the access token is not meant for this app",
            None,
        ));
    }
    let scopes: Vec<String> = claims.scopes();
    Some(if rule.admits_machine(&scopes) {
        allowed(&claims.sub, &claims.client_id, "", &[])
    } else {
        bearer_challenge(
            ErrorCode::InsufficientScope,
            "the token lacks the scope this app requires",
            None,
        )
    })
}
