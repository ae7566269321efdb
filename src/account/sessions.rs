//! The "Where you are signed in" section of the account page and `POST /account/sessions/end`:
//! each login session with its device (a short summary of its User-Agent, [`device`]),
//! address, sign-in time and last activity, this browser marked; a button ends one (by its
//! public id, [`public_id`]), another ends every other session.

use super::profile::{Notice, actor, done, render, signed_in_form, went_wrong};
use crate::accounts::session::{self, Session};
use crate::app::Worker;
use crate::http::router;
use crate::http::{Req, Resp};
use crate::ops::sessions::public_id;
use crate::store::StoreError;
use crate::timefmt::rfc3339;
use crate::ui::{self, esc};

/// A short, readable summary of a User-Agent: "Firefox on Linux", "Safari on iOS", "curl".
pub fn device(ua: &str) -> String {
    let has = |s: &str| ua.contains(s);
    let browser = if has("Edg/") || has("EdgA/") || has("EdgiOS/") {
        Some("Edge")
    } else if has("OPR/") || has("Opera") {
        Some("Opera")
    } else if has("Firefox/") || has("FxiOS/") {
        Some("Firefox")
    } else if has("Chromium/") {
        Some("Chromium")
    } else if has("Chrome/") || has("CriOS/") {
        Some("Chrome")
    } else if has("Safari/") && has("Version/") {
        Some("Safari")
    } else {
        None
    };
    let os = if has("iPhone") || has("iPod") {
        Some("iOS")
    } else if has("iPad") {
        Some("iPadOS")
    } else if has("Android") {
        Some("Android")
    } else if has("Windows") {
        Some("Windows")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Mac OS X") || has("Macintosh") {
        Some("macOS")
    } else if has("Linux") || has("X11") {
        Some("Linux")
    } else {
        None
    };
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_string(),
        (None, Some(o)) => format!("A browser on {o}"),
        (None, None) => {
            // A tool's product token (`curl/8.5.0` → `curl`), if it looks like one.
            let product: String = ua
                .split(['/', ' '])
                .next()
                .unwrap_or("")
                .chars()
                .take(40)
                .collect();
            let plain = !product.is_empty()
                && product
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if plain {
                product
            } else {
                "Unknown device".to_string()
            }
        }
    }
}

/// The section's markup.
pub fn section(w: &Worker, s: &Session, token: &str, now: i64) -> Result<String, StoreError> {
    let mine = public_id(&s.hash);
    let mut rows = String::new();
    let sessions = w.store.sessions_of(&s.user.id)?;
    let others = sessions.iter().filter(|r| r.hash != s.hash).count();
    for r in &sessions {
        let id = public_id(&r.hash);
        let this = id == mine;
        let mut facts = vec![];
        if !r.address.is_empty() {
            facts.push(esc(&r.address));
        }
        facts.push(format!("signed in {}", esc(&rfc3339(r.auth_time))));
        facts.push(format!(
            "last seen {}",
            esc(&rfc3339(r.last_seen_at.min(now)))
        ));
        if r.pending {
            facts.push("second factor not given yet".into());
        }
        let action = if this {
            "<span class=\"badge\">This device</span>".to_string()
        } else {
            format!(
                "<form method=\"post\" action=\"{}\">{}{}<button type=\"submit\" class=\"secondary small\">Sign out</button></form>",
                router::ACCOUNT_SESSIONS_END,
                ui::hidden("csrf", token).trim_end(),
                ui::hidden("id", &id).trim_end(),
            )
        };
        rows.push_str(&format!(
            "<li{}><span><strong>{}</strong><br><span class=\"muted\">{}</span></span> {action}</li>\n",
            if this { " class=\"this\"" } else { "" },
            esc(&device(&r.user_agent)),
            facts.join(" · "),
        ));
    }
    let mut out = format!("<ul class=\"rows\">\n{rows}</ul>");
    if others > 0 {
        out.push_str(&format!(
            "\n<form method=\"post\" action=\"{}\">{}{}<button type=\"submit\" class=\"secondary\">Sign out everywhere else</button></form>",
            router::ACCOUNT_SESSIONS_END,
            ui::hidden("csrf", token),
            ui::hidden("id", "others"),
        ));
    }
    Ok(out)
}

/// `POST /account/sessions/end` with `id`: a session's public id ends that session (404 when
/// the user has none by that id, 400 for this browser's own: sign out instead), `others`
/// ends every other one. Audited as `session_ended`.
pub fn end(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let (s, form) = match signed_in_form(w, req, now) {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let id = form
        .get("id")
        .ok()
        .flatten()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let actor = actor(w, req, &s);
    let audit = |w: &mut Worker, target: &str, outcome: &str| {
        w.app.audit().write(
            &mut w.store,
            now,
            &actor.name,
            "session_ended",
            &format!("{} {target}", s.user.username),
            outcome,
            &actor.address,
        );
    };
    if id == "others" {
        return match session::end_others(w, &s) {
            Ok(_) => {
                audit(w, "others", "ok");
                done("others")
            }
            Err(e) => {
                log::error!("account sessions: {e}");
                went_wrong()
            }
        };
    }
    let found = match w.store.sessions_of(&s.user.id) {
        Ok(rows) => rows
            .into_iter()
            .map(|r| r.hash)
            .find(|h| public_id(h) == id),
        Err(e) => {
            log::error!("account sessions: {e}");
            return went_wrong();
        }
    };
    let (status, msg) = match found {
        Some(h) if h == s.hash => (400, "That is the device you are using: sign out instead."),
        Some(h) => {
            return match w.store.end_sessions_of(&s.user.id, Some(&h)) {
                Ok(_) => {
                    w.app.forward_sessions().clear();
                    audit(w, &id, "ok");
                    done("session")
                }
                Err(e) => {
                    log::error!("account sessions: {e}");
                    went_wrong()
                }
            };
        }
        None => (404, "You have no such session; it may have ended already."),
    };
    let shown: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    audit(w, &shown, "failed");
    render(w, req, &s, status, &Notice::Refused(msg), now)
}

#[cfg(test)]
mod tests {
    use super::device;

    #[test]
    fn user_agents_become_short_device_names() {
        for (ua, want) in [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            ("curl/8.5.0", "curl"),
            ("", "Unknown device"),
            ("<script>alert(1)</script>", "Unknown device"),
        ] {
            assert_eq!(device(ua), want, "{ua}");
        }
    }
}
