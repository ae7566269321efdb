//! Browser sessions: a cookie holding a random 256-bit id; the database keeps its SHA-256. A
//! new id at every login (no fixation), an idle and an absolute timeout, and the session ends
//! at logout, when the user is disabled, or when the password changes.

use std::sync::Arc;

use crate::accounts::mfa::Amr;
use crate::app::Worker;
use crate::crypto::{b64url_decode, random_token, sha256};
use crate::error::Error;
use crate::forward::cache::Signed;
use crate::http::{Req, cookies};
use crate::store::{StoreError, User};

/// The cookie name: `__Host-` prefixed when the issuer is https (RFC 6265bis §4.1.3.2).
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-latchkey"
    } else {
        "latchkey-session"
    }
}

/// How stale `last_seen_at` may get before a request updates it (fewer writes).
const TOUCH_AFTER: i64 = 60;
/// How long a forward-auth decision may use a cached session before checking the database
/// (and the login session it belongs to) again.
const FORWARD_CACHE_SECS: i64 = 30;

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub hash: [u8; 32],
    pub user: User,
    /// When the user last authenticated (the password, or a second factor given later).
    pub auth_time: i64,
    /// How: RFC 8176 values.
    pub amr: Amr,
}

/// How a new login session starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Signed in.
    Complete,
    /// The password was right; a second factor is owed before the session counts (see
    /// [`current_pending`] and [`complete`]).
    SecondFactorOwed,
}

fn hash_of(value: &str) -> Option<[u8; 32]> {
    // Only well-formed ids are looked up.
    (value.len() == 43 && b64url_decode(value).is_some()).then(|| sha256(value.as_bytes()))
}

/// The request's live session, if any: present, signed in (no second factor owed), not past
/// its idle or absolute timeout, and its user exists and is enabled.
pub fn current(w: &mut Worker, req: &Req, now: i64) -> Result<Option<Session>, StoreError> {
    Ok(live(w, req, now)?.and_then(|(s, pending)| (!pending).then_some(s)))
}

/// The request's session while it still owes a second factor (the password was right), with
/// the same checks as [`current`].
pub fn current_pending(w: &mut Worker, req: &Req, now: i64) -> Result<Option<Session>, StoreError> {
    Ok(live(w, req, now)?.and_then(|(s, pending)| pending.then_some(s)))
}

/// The request's login session, pending or not, and whether it is pending.
fn live(w: &mut Worker, req: &Req, now: i64) -> Result<Option<(Session, bool)>, StoreError> {
    let secure = w.app.secure_cookies();
    let Some(hash) = cookies::get(req, cookie_name(secure)).and_then(hash_of) else {
        return Ok(None);
    };
    let Some(row) = w.store.session(&hash)? else {
        return Ok(None);
    };
    // A forward-auth session (its cookie is visible to every protected app) never counts as
    // a login.
    if row.parent.is_some() {
        return Ok(None);
    }
    let idle = w.app.settings().get(crate::config::Setting::SessionIdleTtl);
    // A second factor is owed within a few minutes of the password, whatever the settings.
    let expires_at = if row.pending {
        row.expires_at.min(row.auth_time + PENDING_TTL)
    } else {
        row.expires_at
    };
    if expires_at <= now || row.last_seen_at + idle <= now {
        w.store.delete_session(&hash)?;
        return Ok(None);
    }
    let Some(user) = w.store.user(&row.user_id)? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    if now - row.last_seen_at >= TOUCH_AFTER {
        w.store.touch_session(&hash, now)?;
    }
    let session = Session {
        hash,
        user,
        auth_time: row.auth_time,
        amr: Amr::from_json(&row.amr),
    };
    Ok(Some((session, row.pending)))
}

/// How long a session may owe its second factor after the password.
pub const PENDING_TTL: i64 = 300;

/// Records a further factor on a session (completing a pending one, or stepping up): its `amr`
/// becomes `amr`, `auth_time` now, and it gets a new id (no fixation across the step: ASVS
/// 7.2.4). Returns the new cookie's `Set-Cookie` value and digest, or `None` if the session
/// ended meanwhile. Its forward-auth sessions end; the browser gets new ones.
pub fn complete(
    w: &mut Worker,
    s: &Session,
    amr: &Amr,
    now: i64,
) -> Result<Option<(String, [u8; 32])>, Error> {
    let id = random_token()?;
    let hash = sha256(id.as_bytes());
    let done = w
        .store
        .complete_session(&s.hash, &hash, &amr.to_json(), now)?;
    w.app.forward_sessions().clear();
    if !done {
        return Ok(None);
    }
    let secure = w.app.secure_cookies();
    // The cookie keeps the session's absolute expiry: the remaining lifetime.
    let ttl = w.app.settings().get(crate::config::Setting::SessionTtl);
    let left = match w.store.session(&hash)? {
        Some(row) => (row.expires_at - now).clamp(0, ttl),
        None => return Ok(None),
    };
    Ok(Some((
        cookies::set(cookie_name(secure), &id, left, secure),
        hash,
    )))
}

/// Ends every other session of the signed-in user (after a password change or a removed
/// second factor: whoever else holds a session is signed out); returns how many ended. The
/// running server's cached forward-auth decisions are dropped with them.
pub fn end_others(w: &mut Worker, s: &Session) -> Result<usize, StoreError> {
    let n = w.store.end_other_sessions(&s.user.id, &s.hash)?;
    w.app.forward_sessions().clear();
    Ok(n)
}

/// Starts a session for `user_id` signed in with `amr` (ending the browser's previous one, if
/// any); returns the `Set-Cookie` value and the new session's digest. The session records the
/// browser's User-Agent and address for the account page.
pub fn start(
    w: &mut Worker,
    req: &Req,
    user_id: &str,
    now: i64,
    amr: &Amr,
    how: Start,
) -> Result<(String, [u8; 32]), Error> {
    let secure = w.app.secure_cookies();
    if let Some(old) = cookies::get(req, cookie_name(secure)).and_then(hash_of) {
        w.store.delete_session(&old)?;
    }
    let id = random_token()?;
    let ttl = w.app.settings().get(crate::config::Setting::SessionTtl);
    let hash = sha256(id.as_bytes());
    let agent: String = req
        .header_first("user-agent")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let address = crate::http::client_ip::client_ip(req, &w.app.config.trusted_proxies);
    w.store
        .insert_login_session(&crate::store::sessions::NewSession {
            hash: &hash,
            user_id,
            now,
            expires_at: now + ttl,
            amr: &amr.to_json(),
            pending: how == Start::SecondFactorOwed,
            user_agent: &agent,
            address: &address.to_string(),
        })?;
    Ok((cookies::set(cookie_name(secure), &id, ttl, secure), hash))
}

/// Ends the browser's session and its forward-auth session; returns the `Set-Cookie` values
/// that delete both cookies. Ending a session that existed is written to the audit log
/// (`logout`, actor and target the user) before the answer leaves.
pub fn end(w: &mut Worker, req: &Req) -> Result<Vec<String>, StoreError> {
    let secure = w.app.secure_cookies();
    let mut user_id = None;
    if let Some(hash) = cookies::get(req, cookie_name(secure)).and_then(hash_of) {
        user_id = w.store.session(&hash)?.map(|r| r.user_id);
        w.store.delete_session(&hash)?;
    }
    if let Some(hash) = cookies::get(req, forward_cookie_name(secure)).and_then(hash_of) {
        if let Some(row) = w.store.session(&hash)? {
            if let Some(parent) = row.parent {
                w.store.delete_session(&parent)?;
            }
            user_id = user_id.or(Some(row.user_id));
        }
        w.store.delete_session(&hash)?;
    }
    w.app.forward_sessions().clear();
    let user = match user_id {
        Some(id) => w.store.user(&id)?,
        None => None,
    };
    if let Some(user) = user {
        let address = crate::http::client_ip::client_ip(req, &w.app.config.trusted_proxies);
        w.app.audit().write(
            &mut w.store,
            crate::timefmt::now(),
            &format!("user:{}", user.username),
            "logout",
            &user.username,
            "ok",
            &address.to_string(),
        );
    }
    Ok(vec![
        cookies::set(cookie_name(secure), "", 0, secure),
        forward_cookie(&w.app, "", 0),
    ])
}

/// The forward-auth cookie's name: `__Secure-` prefixed when the issuer is https. (`__Host-`
/// is impossible: this cookie carries a `Domain` so every protected subdomain receives it.)
pub fn forward_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Secure-latchkey-fa"
    } else {
        "latchkey-fa"
    }
}

fn forward_cookie(app: &crate::app::App, value: &str, max_age: i64) -> String {
    let secure = app.secure_cookies();
    let mut c = cookies::set(forward_cookie_name(secure), value, max_age, secure);
    if let Some(d) = &app.config.cookie_domain {
        c.push_str("; Domain=");
        c.push_str(d);
    }
    c
}

/// Starts a forward-auth session belonging to login session `parent` (its digest); returns its
/// `Set-Cookie` value (with `Domain` when `--cookie-domain` is set).
pub fn start_forward(
    w: &mut Worker,
    parent: &[u8; 32],
    user_id: &str,
    auth_time: i64,
    now: i64,
) -> Result<String, Error> {
    let id = random_token()?;
    let ttl = w.app.settings().get(crate::config::Setting::SessionTtl);
    w.store.insert_child_session(
        &sha256(id.as_bytes()),
        parent,
        user_id,
        auth_time,
        now,
        now + ttl,
    )?;
    Ok(forward_cookie(&w.app, &id, ttl))
}

/// The user of the request's forward-auth session, from the in-memory cache when possible
/// (cleared whenever users change and at every logout), else from the database.
pub fn current_forward(
    w: &mut Worker,
    req: &Req,
    now: i64,
) -> Result<Option<Arc<Signed>>, StoreError> {
    let secure = w.app.secure_cookies();
    let Some(hash) = cookies::get(req, forward_cookie_name(secure)).and_then(hash_of) else {
        return Ok(None);
    };
    if let Some(user) = w.app.forward_sessions().get(&hash, now) {
        return Ok(Some(user));
    }
    let Some(row) = w.store.session(&hash)? else {
        return Ok(None);
    };
    let Some(parent_hash) = row.parent else {
        return Ok(None);
    };
    // The login session it belongs to must itself be alive: a forward-auth session never
    // outlives it. Using a protected app counts as activity on the login session.
    let Some(parent) = w.store.session(&parent_hash)? else {
        return Ok(None);
    };
    let idle = w.app.settings().get(crate::config::Setting::SessionIdleTtl);
    let expires_at = row.expires_at.min(parent.expires_at);
    if expires_at <= now || parent.last_seen_at + idle <= now {
        return Ok(None);
    }
    if now - parent.last_seen_at >= TOUCH_AFTER {
        w.store.touch_session(&parent_hash, now)?;
    }
    let Some(user) = w.store.user(&row.user_id)? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    let user = Arc::new(Signed {
        user,
        amr: Amr::from_json(&row.amr),
    });
    w.app.forward_sessions().put(
        hash,
        Arc::clone(&user),
        expires_at.min(now + FORWARD_CACHE_SECS),
    );
    Ok(Some(user))
}
