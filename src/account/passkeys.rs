//! The passkeys of one's own account: `GET /account/passkeys` (the list: name, when added,
//! when last used; a remove button each; the form that adds one, run by
//! `/assets/latchkey.js`), `POST /account/passkeys` (the new credential, checked by
//! [`crate::accounts::passkey::register`]) and `POST /account/passkeys/remove`.
//!
//! Adding a passkey changes how the user signs in, so it needs a recent sign-in that carried
//! the user's second factor ([`super::may_change_sign_in`]); the first second factor comes
//! with ten recovery codes, shown once. Removing one needs the current password (checked
//! like a sign-in) or, for a user without one, a recent sign-in; the last passkey of a user
//! without a password cannot be removed (it is their only way in). A removal ends every
//! other session of the user.

use super::profile::{signed_in, went_wrong};
use crate::accounts::mfa::recovery;
use crate::accounts::passkey::{Registered, register};
use crate::accounts::second_factor::continue_page;
use crate::accounts::session::{self, Session};
use crate::accounts::{csrf, login};
use crate::app::Worker;
use crate::crypto::{b64url, b64url_decode};
use crate::http::client_ip::client_ip;
use crate::http::form::Form;
use crate::http::router;
use crate::http::{Req, Resp};
use crate::store::passkeys::Removal;
use crate::timefmt::rfc3339;
use crate::ui::{self, Slot, esc};

/// The page's own signed-in check: back to `back` (this page, with its targets) after
/// signing in.
fn session_here(w: &mut Worker, req: &Req, now: i64, back: &str) -> Result<Session, Resp> {
    match signed_in(w, req, now) {
        Err(r) if r.status == 303 => Err(super::profile::to_login(back)),
        other => other,
    }
}

/// Where the page goes after a first passkey (`return_to`/`rd`, as after a sign-in: the
/// policy sends a user who must have a second factor here from the TOTP enrolment page), and
/// its own URL with them.
fn targets_of(w: &Worker, form: &Form) -> (String, Option<String>, String) {
    let (return_to, rd) = super::totp::targets(w, form);
    let back = super::totp::here(router::ACCOUNT_PASSKEYS, &return_to, rd.as_deref());
    (return_to, rd, back)
}

/// What the page says at the top, from `?done=` (a fixed list) or a refusal.
enum Notice<'a> {
    None,
    Done(&'static str),
    Refused(&'a str),
}

#[allow(clippy::too_many_arguments)]
fn page(
    w: &mut Worker,
    req: &Req,
    s: &Session,
    status: u16,
    notice: Notice<'_>,
    return_to: &str,
    rd: Option<&str>,
) -> Resp {
    let (token, set_cookie) = match csrf::form_token(&w.app, req) {
        Ok(v) => v,
        Err(e) => {
            log::error!("passkeys page: {e}");
            return went_wrong();
        }
    };
    let keys = match w.store.passkeys(&s.user.id) {
        Ok(k) => k,
        Err(e) => {
            log::error!("passkeys page: {e}");
            return went_wrong();
        }
    };
    let has_password = s.user.password_hash.is_some();
    let list = if keys.is_empty() {
        "<p id=\"passkey-list\" class=\"muted\">You have no passkeys yet.</p>".to_string()
    } else {
        let mut out = String::from("<ul class=\"rows\" id=\"passkey-list\">\n");
        for k in &keys {
            let used = match k.last_used_at {
                Some(t) => format!("last used {}", esc(&rfc3339(t))),
                None => "never used".to_string(),
            };
            let synced = if k.backup_eligible { "; synced" } else { "" };
            let password = if has_password {
                format!(
                    "<input type=\"text\" name=\"username\" value=\"{}\" autocomplete=\"username\" hidden>\
                     <label for=\"pw-{id}\" class=\"visually-hidden\">Current password</label>\
                     <input id=\"pw-{id}\" name=\"password\" type=\"password\" autocomplete=\"current-password\" placeholder=\"Current password\" required>",
                    esc(&s.user.username),
                    id = esc(&b64url(&k.id)),
                )
            } else {
                String::new()
            };
            out.push_str(&format!(
                "<li class=\"passkey\"><span><strong>{name}</strong><br><span class=\"muted\">added {added}; {used}{synced}</span></span>\
                 <form method=\"post\" action=\"/account/passkeys/remove\" class=\"remove\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\">{password}\
                 <button type=\"submit\" class=\"secondary danger remove-passkey\">Remove</button></form></li>\n",
                name = esc(&k.name),
                added = esc(&rfc3339(k.created_at)),
                csrf = esc(&token),
                id = esc(&b64url(&k.id)),
            ));
        }
        out.push_str("</ul>");
        out
    };
    let notice = match notice {
        Notice::None => String::new(),
        Notice::Done(m) => format!("<p class=\"notice\" role=\"status\">{}</p>", esc(m)),
        Notice::Refused(m) => format!("<p class=\"notice error\" role=\"alert\">{}</p>", esc(m)),
    };
    let body = ui::render(
        ui::PASSKEYS,
        &[
            ("notice", Slot::Html(&notice)),
            ("list", Slot::Html(&list)),
            ("csrf", Slot::Text(&token)),
            ("return_to", Slot::Text(return_to)),
            ("rd", Slot::Text(rd.unwrap_or(""))),
        ],
    );
    let mut resp = ui::page(status, "Passkeys", &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    resp
}

/// The page as a removal answers it (no targets to carry).
fn list_page(w: &mut Worker, req: &Req, s: &Session, status: u16, notice: Notice<'_>) -> Resp {
    page(w, req, s, status, notice, router::ACCOUNT, None)
}

fn done(what: &str) -> Resp {
    Resp::empty(303)
        .with(
            "Location",
            format!("{}?done={what}", router::ACCOUNT_PASSKEYS),
        )
        .with("Cache-Control", "no-store")
}

/// `GET /account/passkeys`.
pub fn show(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = Form::parse(req.query.as_bytes()).unwrap_or_default();
    let (return_to, rd, back) = targets_of(w, &form);
    let s = match session_here(w, req, now, &back) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let notice = match form.get("done").ok().flatten() {
        Some("added") => Notice::Done("Your passkey was added. Use it the next time you sign in."),
        Some("removed") => Notice::Done(
            "The passkey was removed, and every other browser signed in as you was signed out.",
        ),
        _ => Notice::None,
    };
    page(w, req, &s, 200, notice, &return_to, rd.as_deref())
}

/// `POST /account/passkeys`: the credential the browser made.
pub fn add(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let (return_to, rd, back) = targets_of(w, &form);
    let s = match session_here(w, req, now, &back) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = super::may_change_sign_in(w, &s, now, &back) {
        return r;
    }
    let (first, name, methods) = match register(w, &s, &form, now) {
        Ok(Registered::Added {
            first,
            name,
            methods,
        }) => (first, name, methods),
        Ok(Registered::Refused(status, why)) => {
            return page(
                w,
                req,
                &s,
                status,
                Notice::Refused(why),
                &return_to,
                rd.as_deref(),
            );
        }
        Err(e) => {
            log::error!("passkey registration: {e}");
            return went_wrong();
        }
    };
    let ip = client_ip(req, &w.app.config.trusted_proxies).to_string();
    let actor = format!("user:{}", s.user.username);
    w.app.audit().write(
        &mut w.store,
        now,
        &actor,
        "passkey_added",
        &s.user.username,
        "ok",
        &ip,
    );
    log::info!(target: "latchkey::security", "passkey {:?} added by {}", name, s.user.username.escape_debug());
    if !first {
        return done("added");
    }
    // The first factor beyond the password: the session, which just proved it holds the new
    // passkey, counts as signed in with it too (as after enrolling TOTP), with a new id; and
    // ten recovery codes, shown once.
    let amr = s.amr.with_second_factor(&methods);
    let renewed = match session::complete(w, &s, &amr, now) {
        Ok(renewed) => renewed,
        Err(e) => {
            log::error!("passkey registration: {e}");
            return went_wrong();
        }
    };
    // The session ended meanwhile (signed out elsewhere): sign in again (the passkey is
    // stored; recovery codes can be made on /account/recovery).
    let Some((cookie, hash)) = renewed else {
        return super::profile::to_login(&back);
    };
    // "Continue" goes on as after a sign-in when the page was given somewhere to go (the app
    // that wanted a second factor), else back to the list.
    let next = if return_to == router::ACCOUNT && rd.is_none() {
        done("added").with("Set-Cookie", cookie)
    } else {
        login::finish(
            w,
            &hash,
            &s.user.id,
            now,
            &return_to,
            rd.as_deref(),
            now,
            Some(cookie),
        )
    };
    if s.user.password_hash.is_none() {
        // Without a password the passkey is the first factor, not a second: recovery codes
        // (given after a password) could never be used. A second passkey is the backup.
        return continue_page(
            next,
            "Passkey added",
            "Your passkey is added: sign in with it from now on. Add a passkey on a second \
             device too, in case you lose this one.",
            "",
        );
    }
    let codes = match recovery::regenerate(&mut w.store, &s.user.id, now) {
        Ok(c) => c,
        Err(e) => {
            log::error!("recovery codes: {e}");
            return went_wrong();
        }
    };
    w.app.audit().write(
        &mut w.store,
        now,
        &actor,
        "recovery_codes_generated",
        &s.user.username,
        "ok",
        &ip,
    );
    let list: String = codes
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", esc(c)))
        .collect();
    continue_page(
        next,
        "Passkey added",
        "Your passkey is added. Write these recovery codes down or keep them in your password \
         manager: each signs you in once if you lose your passkeys. They are shown only now.",
        &format!("<ol class=\"codes\" id=\"recovery-codes\">{list}</ol>"),
    )
}

/// `POST /account/passkeys/remove`.
pub fn remove(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let s = match session_here(w, req, now, router::ACCOUNT_PASSKEYS) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(id) = form.get("id").ok().flatten().and_then(b64url_decode) else {
        return list_page(
            w,
            req,
            &s,
            400,
            Notice::Refused("Choose a passkey to remove."),
        );
    };
    let keys = match w.store.passkeys(&s.user.id) {
        Ok(k) => k,
        Err(e) => {
            log::error!("passkey removal: {e}");
            return went_wrong();
        }
    };
    if !keys.iter().any(|k| k.id == id) {
        return list_page(
            w,
            req,
            &s,
            404,
            Notice::Refused("You have no such passkey."),
        );
    }
    let last_way_in = || {
        Notice::Refused(
            "This passkey is your only way to sign in. Add another passkey or set a password first.",
        )
    };
    let client = client_ip(req, &w.app.config.trusted_proxies);
    if s.user.password_hash.is_some() {
        if let Err(r) = super::must_carry_factor(w, &s, now, router::ACCOUNT_PASSKEYS) {
            return r;
        }
        // The password is checked like a sign-in (throttled, audited).
        let password = form.get("password").ok().flatten().unwrap_or("");
        match super::confirm_password(w, req, &s, password, now) {
            Ok(true) => {}
            Ok(false) => return list_page(w, req, &s, 200, Notice::Refused("Wrong password.")),
            Err(r) => return r,
        }
    } else {
        if keys.len() == 1 {
            return list_page(w, req, &s, 409, last_way_in());
        }
        if let Err(r) = super::may_change_sign_in(w, &s, now, router::ACCOUNT_PASSKEYS) {
            return r;
        }
    }
    match w.store.remove_passkey(&s.user.id, &id) {
        Ok(Removal::Removed) => {}
        Ok(Removal::NotFound) => {
            return list_page(
                w,
                req,
                &s,
                404,
                Notice::Refused("You have no such passkey."),
            );
        }
        // A removal of the other passkey got there first.
        Ok(Removal::LastWayIn) => return list_page(w, req, &s, 409, last_way_in()),
        Err(e) => {
            log::error!("passkey removal: {e}");
            return went_wrong();
        }
    }
    if let Err(e) = session::end_others(w, &s) {
        log::error!("passkey removal: {e}");
        return went_wrong();
    }
    w.app.audit().write(
        &mut w.store,
        now,
        &format!("user:{}", s.user.username),
        "passkey_removed",
        &s.user.username,
        "ok",
        &client.to_string(),
    );
    log::info!(target: "latchkey::security", "passkey removed by {}", s.user.username.escape_debug());
    done("removed")
}
