//! The WebAuthn ceremonies of passkeys: the options a browser needs (JSON, fetched by
//! `/assets/latchkey.js`) and the answers, posted back as ordinary forms so that the server
//! renders what comes next (a sign-in's redirect with its cookies, the recovery codes of a
//! first second factor).
//!
//! | endpoint | what |
//! | --- | --- |
//! | `POST /webauthn/register/options` | creation options for the signed-in user |
//! | `POST /account/passkeys` | the new credential (form: `csrf`, `name`, `credential`) |
//! | `POST /webauthn/authenticate/options` | request options: `{"purpose": "sign-in"}` (usernameless) or `"second-factor"` |
//! | `POST /login/passkey` | the assertion (form: `csrf`, `purpose`, `credential`, `return_to`, `rd`) |
//!
//! The JSON endpoints want the page's CSRF token in `X-CSRF-Token` and answer errors as
//! `{"error": CODE, "message": TEXT}`: 400 `invalid_request`, 403 `csrf`, 401
//! `not_signed_in`, 403 `reauthenticate` (with `redirect`: where to sign in again first),
//! 503 `busy` (too many ceremonies in flight).
//!
//! # Relying party
//! The RP ID is the issuer's host, or the cookie domain when one is set (so that passkeys work
//! on every subdomain that shares the sign-in); the origin is the issuer's. Both are checked
//! exactly ([`webauthn`]).
//!
//! # Policy
//! A challenge lives five minutes and answers once ([`crate::store::Store::take_webauthn_challenge`]).
//! Registration asks for a discoverable credential and user verification where the
//! authenticator can (`preferred`), attestation `none`. A sign-in with a passkey alone requires
//! user verification (the passkey and its PIN or biometrics are two factors: `amr` `hwk`/`swk`,
//! `user`, `mfa`); as the second factor after a password it need not (`pwd` and `hwk`/`swk`).
//! A signature counter that did not grow is logged as a possible clone, not refused (§7.2
//! step 22 leaves that to the relying party; synced passkeys keep it at zero).

use serde_json::{Value, json};

use crate::accounts::mfa::webauthn::{self, RelyingParty};
use crate::accounts::session::{self, Session};
use crate::accounts::{csrf, login};
use crate::app::{App, Worker};
use crate::crypto::{b64url, b64url_decode, random_bytes, sha256};
use crate::http::client_ip::client_ip;
use crate::http::form::Form;
use crate::http::{Req, Resp};
use crate::store::passkeys::{ChallengePurpose, Passkey};
use crate::ui;

/// The error codes these endpoints share with OAuth.
const INVALID_REQUEST: &str = crate::oauth::error::ErrorCode::InvalidRequest.as_str();
const SERVER_ERROR: &str = crate::oauth::error::ErrorCode::ServerError.as_str();

/// Seconds a ceremony may take.
pub const CHALLENGE_TTL: i64 = 300;
/// The longest passkey name kept.
pub const MAX_NAME: usize = 64;
/// The largest credential a form may carry (attestation objects with certificates are a few
/// KiB; the request body limit bounds it anyway).
const MAX_CREDENTIAL: usize = 16 * 1024;

/// The RP ID and origin of this server.
pub struct Rp {
    pub id: String,
    pub origin: String,
}

impl Rp {
    pub fn of(app: &App) -> Rp {
        let url = url::Url::parse(&app.config.issuer).ok();
        let origin = url
            .as_ref()
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let id = match &app.config.cookie_domain {
            Some(d) => d.trim_start_matches('.').to_ascii_lowercase(),
            None => url
                .as_ref()
                .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
                .unwrap_or_default(),
        };
        Rp { id, origin }
    }

    pub fn party(&self) -> RelyingParty<'_> {
        RelyingParty {
            id: &self.id,
            origin: &self.origin,
        }
    }
}

/// A JSON error answer.
fn refuse(status: u16, error: &str, message: &str) -> Resp {
    Resp::json(status, &json!({"error": error, "message": message})).no_store()
}

fn json_server_error(what: &str, e: impl std::fmt::Display) -> Resp {
    log::error!("{what}: {e}");
    refuse(
        500,
        SERVER_ERROR,
        "Something went wrong. Try again in a moment.",
    )
}

/// Options requests one client address may make per [`ADDRESS_WINDOW`] seconds (a login page
/// asks once for its autofill, a button once per press).
const ADDRESS_QUOTA: i64 = 30;
const ADDRESS_WINDOW: i64 = 60;
/// Addresses remembered by the limiter at most.
const ADDRESS_ENTRIES: usize = 50_000;

/// The key of a client address in the limiter: the address, or its /64 for IPv6 (one host
/// holds a whole /64).
fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The JSON body of an options request, after its CSRF header and the address's quota are
/// checked.
fn json_request(app: &App, req: &Req) -> Result<Value, Resp> {
    let client = client_ip(req, &app.config.trusted_proxies);
    let quota = app.ceremony_limiter().take_bounded(
        &address_key(client),
        ADDRESS_QUOTA,
        ADDRESS_WINDOW,
        ADDRESS_ENTRIES,
    );
    if !quota.allowed {
        return Err(refuse(
            429,
            crate::oauth::error::ErrorCode::RateLimited.as_str(),
            "Too many passkey requests from your address. Wait a minute, then try again.",
        )
        .with("Retry-After", quota.retry_after.max(1).to_string()));
    }
    if !csrf::check(
        app.csrf_key(),
        req,
        app.secure_cookies(),
        req.header_first("x-csrf-token"),
    ) {
        log::info!(target: "latchkey::security", "WebAuthn request refused: missing or wrong CSRF token from {}", req.peer.ip());
        return Err(refuse(
            403,
            "csrf",
            "This page has expired. Reload it and try again.",
        ));
    }
    if req.content_type().as_deref() != Some("application/json") {
        return Err(refuse(
            400,
            INVALID_REQUEST,
            "The request must be JSON (Content-Type: application/json).",
        ));
    }
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err(refuse(
            400,
            INVALID_REQUEST,
            "The request body is not a JSON object.",
        )),
    }
}

/// A fresh challenge, stored for `purpose` (and `user_id`); the raw bytes to send.
fn new_challenge(
    w: &mut Worker,
    purpose: ChallengePurpose,
    user_id: Option<&str>,
    now: i64,
) -> Result<[u8; 32], Resp> {
    let challenge = random_bytes::<32>().map_err(|e| json_server_error("webauthn challenge", e))?;
    match w.store.add_webauthn_challenge(
        &sha256(&challenge),
        purpose,
        user_id,
        now,
        now + CHALLENGE_TTL,
    ) {
        Ok(true) => Ok(challenge),
        Ok(false) => {
            // Once a minute at most: a flood must not flood the log too.
            static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
            let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
            if now - last >= 60
                && LAST
                    .compare_exchange(
                        last,
                        now,
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                    )
                    .is_ok()
            {
                log::warn!(target: "latchkey::security", "WebAuthn challenge refused: {} usernameless ceremonies in flight", crate::store::passkeys::MAX_CHALLENGES);
            }
            Err(refuse(
                503,
                "busy",
                "Too many passkey sign-ins are in progress. Try again in a minute.",
            )
            .with("Retry-After", "60"))
        }
        Err(e) => Err(json_server_error("webauthn challenge", e)),
    }
}

/// A stored credential as a `PublicKeyCredentialDescriptorJSON`.
fn descriptor(p: &Passkey) -> Value {
    let transports: Vec<String> = serde_json::from_str(&p.transports).unwrap_or_default();
    json!({"type": "public-key", "id": b64url(&p.id), "transports": transports})
}

/// The user handle of a user: their opaque random id, never their name or email.
fn user_handle(user_id: &str) -> &[u8] {
    user_id.as_bytes()
}

/// `POST /webauthn/register/options`: creation options for the signed-in user, excluding the
/// passkeys they have.
pub fn register_options(w: &mut Worker, req: &Req, now: i64) -> Resp {
    if let Err(r) = json_request(&w.app, req) {
        return r;
    }
    let s = match session::current(w, req, now) {
        Ok(Some(s)) => s,
        Ok(None) => return refuse(401, "not_signed_in", "Sign in first."),
        Err(e) => return json_server_error("passkey registration", e),
    };
    if let Err(r) =
        crate::account::may_change_sign_in(w, &s, now, crate::http::router::ACCOUNT_PASSKEYS)
    {
        return reauthenticate(r);
    }
    let existing = match w.store.passkeys(&s.user.id) {
        Ok(p) => p,
        Err(e) => return json_server_error("passkey registration", e),
    };
    let challenge = match new_challenge(w, ChallengePurpose::Register, Some(&s.user.id), now) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let rp = Rp::of(&w.app);
    // Without a password a passkey is the only way in: it must sign in alone, so it must be
    // discoverable and verify the user.
    let passwordless = s.user.password_hash.is_none();
    let display = s
        .user
        .name
        .clone()
        .unwrap_or_else(|| s.user.username.clone());
    let params: Vec<Value> = webauthn::ALGORITHMS
        .iter()
        .map(|alg| json!({"type": "public-key", "alg": alg}))
        .collect();
    Resp::json(
        200,
        &json!({"publicKey": {
            "rp": {"id": rp.id, "name": rp.id},
            "user": {
                "id": b64url(user_handle(&s.user.id)),
                "name": s.user.username,
                "displayName": display,
            },
            "challenge": b64url(&challenge),
            "pubKeyCredParams": params,
            "timeout": CHALLENGE_TTL * 1000,
            "excludeCredentials": existing.iter().map(descriptor).collect::<Vec<_>>(),
            "authenticatorSelection": {
                "residentKey": if passwordless { "required" } else { "preferred" },
                "requireResidentKey": passwordless,
                "userVerification": if passwordless { "required" } else { "preferred" },
            },
            "attestation": "none",
        }}),
    )
    .no_store()
}

/// The 303 of [`crate::account::may_change_sign_in`] as a JSON answer the script follows.
fn reauthenticate(r: Resp) -> Resp {
    let to = r.header("Location").unwrap_or("/login").to_string();
    Resp::json(
        403,
        &json!({
            "error": "reauthenticate",
            "message": "Confirm it is you first.",
            "redirect": to,
        }),
    )
    .no_store()
}

/// `POST /webauthn/authenticate/options`: request options. `sign-in`: usernameless, any
/// discoverable passkey of this RP, user verification required. `second-factor`: the passkeys
/// of the session's user (one owing its second factor, or stepping up).
pub fn authenticate_options(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let body = match json_request(&w.app, req) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let rp = Rp::of(&w.app);
    let (user, allow, verification) = match body.get("purpose").and_then(Value::as_str) {
        Some("sign-in") => (None, Vec::new(), "required"),
        Some("second-factor") => {
            let s = match prompted(w, req, now) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return refuse(401, "not_signed_in", "Sign in with your password first.");
                }
                Err(e) => return json_server_error("passkey options", e),
            };
            let keys = match w.store.passkeys(&s.user.id) {
                Ok(k) => k,
                Err(e) => return json_server_error("passkey options", e),
            };
            if keys.is_empty() {
                return refuse(400, INVALID_REQUEST, "You have no passkey.");
            }
            (
                Some(s.user.id),
                keys.iter().map(descriptor).collect(),
                "preferred",
            )
        }
        _ => {
            return refuse(
                400,
                INVALID_REQUEST,
                "purpose must be \"sign-in\" or \"second-factor\".",
            );
        }
    };
    let challenge = match new_challenge(w, ChallengePurpose::Login, user.as_deref(), now) {
        Ok(c) => c,
        Err(r) => return r,
    };
    Resp::json(
        200,
        &json!({"publicKey": {
            "rpId": rp.id,
            "challenge": b64url(&challenge),
            "timeout": CHALLENGE_TTL * 1000,
            "allowCredentials": allow,
            "userVerification": verification,
        }}),
    )
    .no_store()
}

/// The session that may give a second factor: one that owes it, or a complete one stepping up.
fn prompted(
    w: &mut Worker,
    req: &Req,
    now: i64,
) -> Result<Option<Session>, crate::store::StoreError> {
    match session::current_pending(w, req, now)? {
        Some(s) => Ok(Some(s)),
        None => session::current(w, req, now),
    }
}

/// A credential posted back by the script: `PublicKeyCredential` as JSON (WebAuthn §5.1's
/// `toJSON()` shape), its byte fields base64url-decoded.
pub struct Posted {
    pub raw_id: Vec<u8>,
    pub client_data_json: Vec<u8>,
    /// `attestationObject` (registration) or `authenticatorData` (assertion).
    pub data: Vec<u8>,
    pub signature: Vec<u8>,
    pub user_handle: Option<Vec<u8>>,
    pub transports: Vec<String>,
    /// The challenge clientDataJSON names (checked against the stored one by digest, then
    /// again by the verifier).
    pub challenge: Vec<u8>,
}

/// Reads the `credential` form field. `registration` picks `attestationObject` over
/// `authenticatorData` and `signature`. `None` for anything malformed.
pub fn read_posted(raw: &str, registration: bool) -> Option<Posted> {
    if raw.is_empty() || raw.len() > MAX_CREDENTIAL {
        return None;
    }
    let v: Value = serde_json::from_str(raw).ok()?;
    if v.get("type").and_then(Value::as_str) != Some("public-key") {
        return None;
    }
    let bytes = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).and_then(b64url_decode);
    let raw_id = bytes(&v, "rawId")?;
    // `id` is the base64url of `rawId`.
    if v.get("id").and_then(Value::as_str) != Some(b64url(&raw_id).as_str()) {
        return None;
    }
    let r = v.get("response")?;
    let client_data_json = bytes(r, "clientDataJSON")?;
    let cd: Value = serde_json::from_slice(&client_data_json).ok()?;
    let challenge = cd
        .get("challenge")
        .and_then(Value::as_str)
        .and_then(b64url_decode)?;
    let (data, signature, user_handle) = if registration {
        (bytes(r, "attestationObject")?, Vec::new(), None)
    } else {
        let handle = match r.get("userHandle") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(b64url_decode(s)?),
            Some(_) => return None,
        };
        (
            bytes(r, "authenticatorData")?,
            bytes(r, "signature")?,
            handle,
        )
    };
    let transports = r
        .get("transports")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|t| t.len() <= 16 && t.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
                .take(8)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Posted {
        raw_id,
        client_data_json,
        data,
        signature,
        user_handle,
        transports,
        challenge,
    })
}

/// The page of a refused answer, with a way back.
fn refused_page(status: u16, message: &str, back: &str) -> Resp {
    ui::message_with(
        status,
        "Passkey not accepted",
        message,
        &ui::link(back, "Try again"),
    )
}

fn server_error(what: &str, e: impl std::fmt::Display) -> Resp {
    log::error!("{what}: {e}");
    ui::message(500, "Something went wrong", "Try again in a moment.")
}

/// Takes the challenge the posted credential answers: `Some(owner)` if it was latchkey's, for
/// this purpose, unused and unexpired.
fn take_challenge(
    w: &mut Worker,
    posted: &Posted,
    purpose: ChallengePurpose,
    now: i64,
) -> Result<Option<Option<String>>, crate::store::StoreError> {
    if posted.challenge.len() != 32 {
        return Ok(None);
    }
    w.store
        .take_webauthn_challenge(&sha256(&posted.challenge), purpose, now)
}

/// `POST /login/passkey`: a usernameless sign-in (`purpose=sign-in`) or the second factor of
/// the session's user (`purpose=second-factor`). Goes on as after a password sign-in.
pub fn sign_in(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let (return_to, rd) = login::targets(w, &form);
    let second = match form.get("purpose").ok().flatten() {
        Some("sign-in") => false,
        Some("second-factor") => true,
        _ => return ui::message(400, "Bad request", "The passkey form could not be read."),
    };
    let back = if second {
        login::second_factor_url(&return_to, rd.as_deref())
    } else {
        login::login_url(&return_to, rd.as_deref())
    };
    let Some(posted) = read_posted(form.get("credential").ok().flatten().unwrap_or(""), false)
    else {
        return refused_page(400, "The passkey's answer could not be read.", &back);
    };
    let owner = match take_challenge(w, &posted, ChallengePurpose::Login, now) {
        Ok(Some(o)) => o,
        Ok(None) => {
            return refused_page(
                400,
                "This passkey request expired or was used already. Try again.",
                &back,
            );
        }
        Err(e) => return server_error("passkey sign-in", e),
    };
    let session = if second {
        match prompted(w, req, now) {
            Ok(Some(s)) if owner.as_deref() == Some(s.user.id.as_str()) => Some(s),
            Ok(_) => {
                return refused_page(
                    401,
                    "Sign in with your password first.",
                    &login::login_url(&return_to, rd.as_deref()),
                );
            }
            Err(e) => return server_error("passkey sign-in", e),
        }
    } else {
        if owner.is_some() {
            return refused_page(400, "This passkey request was for something else.", &back);
        }
        None
    };
    let ip = client_ip(req, &w.app.config.trusted_proxies).to_string();
    let key = match w.store.passkey(&posted.raw_id) {
        Ok(k) => k,
        Err(e) => return server_error("passkey sign-in", e),
    };
    // §7.2 steps 5–6: the credential must be one of the user's (second factor), or belong to
    // the user its handle names (usernameless).
    let key = match (key, &session) {
        (Some(k), Some(s)) if k.user_id == s.user.id => k,
        (Some(k), None)
            if posted
                .user_handle
                .as_deref()
                .is_some_and(|h| h == user_handle(&k.user_id)) =>
        {
            k
        }
        _ => {
            log::info!(target: "latchkey::security", "passkey sign-in refused from {ip}: unknown credential");
            return refused_page(
                401,
                "This passkey is not registered here. Use another, or your password.",
                &back,
            );
        }
    };
    let rp = Rp::of(&w.app);
    let checked = webauthn::verify_assertion(
        &rp.party(),
        &posted.challenge,
        &posted.client_data_json,
        &posted.data,
        &posted.signature,
        &key.public_key,
        key.alg,
        key.sign_count,
        !second,
    );
    let assertion = match checked {
        Ok(a) => a,
        Err(why) => {
            log::info!(target: "latchkey::security", "passkey sign-in refused from {ip}: {why}");
            let msg = if why == webauthn::Refused::UserNotVerified {
                "Your passkey did not check it is you (a PIN, fingerprint or face). Try again, and unlock it when asked."
            } else {
                "The passkey's answer did not check out."
            };
            return refused_page(401, msg, &back);
        }
    };
    // §7.2 step 19: the backup eligibility of a credential never changes.
    if assertion.backup_eligible != key.backup_eligible {
        log::info!(target: "latchkey::security", "passkey sign-in refused from {ip}: backup eligibility changed");
        return refused_page(401, "The passkey's answer did not check out.", &back);
    }
    if assertion.counter_regressed {
        log::warn!(target: "latchkey::security", "passkey of user {} signed with a counter that did not grow ({} after {}): it may have been cloned", key.user_id, assertion.sign_count, key.sign_count);
    }
    let user = match w.store.user(&key.user_id) {
        Ok(Some(u)) if !u.disabled => u,
        Ok(_) => return refused_page(401, "This account cannot sign in.", &back),
        Err(e) => return server_error("passkey sign-in", e),
    };
    if let Err(e) = w.store.passkey_used(&key.id, assertion.sign_count, now) {
        return server_error("passkey sign-in", e);
    }
    let methods = if assertion.user_verified {
        vec![webauthn_method(assertion.backup_eligible), "user"]
    } else {
        vec![webauthn_method(assertion.backup_eligible)]
    };
    let actor = format!("user:{}", user.username);
    match session {
        Some(s) => {
            let amr = s.amr.with_second_factor(&methods);
            let (cookie, hash) = match session::complete(w, &s, &amr, now) {
                Ok(Some(renewed)) => renewed,
                Ok(None) => {
                    return refused_page(
                        401,
                        "Sign in again.",
                        &login::login_url(&return_to, rd.as_deref()),
                    );
                }
                Err(e) => return server_error("passkey sign-in", e),
            };
            w.app.audit().write(
                &mut w.store,
                now,
                &actor,
                "second_factor",
                &user.username,
                "ok",
                &ip,
            );
            log::info!(target: "latchkey::security", "passkey given as second factor by {} from {ip}", user.username.escape_debug());
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
        }
        None => {
            let amr = crate::accounts::mfa::Amr::passkey(
                assertion.backup_eligible,
                assertion.user_verified,
            );
            let (cookie, hash) =
                match session::start(w, req, &user.id, now, &amr, session::Start::Complete) {
                    Ok(c) => c,
                    Err(e) => return server_error("passkey sign-in", e),
                };
            w.app.audit().write(
                &mut w.store,
                now,
                &actor,
                "login",
                &user.username,
                "ok",
                &ip,
            );
            log::info!(target: "latchkey::security", "passkey sign-in by {} from {ip}", user.username.escape_debug());
            login::finish(
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
    }
}

/// RFC 8176's name for a passkey: `swk` when it may be synced (backup-eligible), else `hwk`.
fn webauthn_method(backup_eligible: bool) -> &'static str {
    if backup_eligible { "swk" } else { "hwk" }
}

/// What registering a passkey came to.
pub enum Registered {
    /// Stored; `first` when it is the user's first second factor; `methods` are its `amr`
    /// values (`hwk`/`swk`, and `user` when the authenticator verified the user).
    Added {
        first: bool,
        name: String,
        methods: Vec<&'static str>,
    },
    /// Refused: the status and what to tell the user.
    Refused(u16, &'static str),
}

/// §7.1 for the form of `POST /account/passkeys`: checks the answer against the user's
/// challenge and stores the passkey.
pub fn register(
    w: &mut Worker,
    s: &Session,
    form: &Form,
    now: i64,
) -> Result<Registered, crate::error::Error> {
    let Some(posted) = read_posted(form.get("credential").ok().flatten().unwrap_or(""), true)
    else {
        return Ok(Registered::Refused(
            400,
            "The passkey's answer could not be read. Adding a passkey needs JavaScript and a browser that supports passkeys.",
        ));
    };
    match take_challenge(w, &posted, ChallengePurpose::Register, now)? {
        Some(Some(owner)) if owner == s.user.id => {}
        _ => {
            return Ok(Registered::Refused(
                400,
                "This passkey request expired or was used already. Try again.",
            ));
        }
    }
    let rp = Rp::of(&w.app);
    let new = match webauthn::verify_registration(
        &rp.party(),
        &posted.challenge,
        &posted.client_data_json,
        &posted.data,
        s.user.password_hash.is_none(),
    ) {
        Ok(n) => n,
        Err(why) => {
            log::info!(target: "latchkey::security", "passkey registration refused for {}: {why}", s.user.username.escape_debug());
            return Ok(Registered::Refused(
                400,
                "The passkey's answer did not check out.",
            ));
        }
    };
    if new.id != posted.raw_id {
        return Ok(Registered::Refused(
            400,
            "The passkey's answer did not check out.",
        ));
    }
    let had_factor = w.store.second_factors(&s.user.id)?.any();
    let mut methods = vec![webauthn_method(new.backup_eligible)];
    if new.user_verified {
        methods.push("user");
    }
    let name = passkey_name(form.get("name").ok().flatten().unwrap_or(""), w, s)?;
    let stored = w.store.add_passkey(&Passkey {
        id: new.id,
        user_id: s.user.id.clone(),
        name: name.clone(),
        public_key: new.public_key,
        alg: new.alg,
        sign_count: new.sign_count,
        backup_eligible: new.backup_eligible,
        transports: serde_json::to_string(&posted.transports).unwrap_or_else(|_| "[]".into()),
        created_at: now,
        last_used_at: None,
    })?;
    if !stored {
        return Ok(Registered::Refused(
            409,
            "This passkey is registered already.",
        ));
    }
    Ok(Registered::Added {
        first: !had_factor,
        name,
        methods,
    })
}

/// The name to keep: what the user typed (trimmed, control characters out, at most
/// [`MAX_NAME`] characters), else "Passkey N".
fn passkey_name(typed: &str, w: &Worker, s: &Session) -> Result<String, crate::store::StoreError> {
    let name: String = typed
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    if !name.is_empty() {
        return Ok(name);
    }
    let n = w.store.passkeys(&s.user.id)?.len() + 1;
    Ok(format!("Passkey {n}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assertion_json(id: &[u8], challenge: &[u8]) -> String {
        let cd = format!(
            "{{\"type\":\"webauthn.get\",\"challenge\":\"{}\",\"origin\":\"https://id.example\"}}",
            b64url(challenge)
        );
        json!({
            "id": b64url(id), "rawId": b64url(id), "type": "public-key",
            "response": {
                "clientDataJSON": b64url(cd.as_bytes()),
                "authenticatorData": b64url(&[0u8; 37]),
                "signature": b64url(b"sig"),
                "userHandle": b64url(b"u1"),
            }
        })
        .to_string()
    }

    #[test]
    fn a_posted_assertion_is_read_with_its_challenge() {
        let p = read_posted(&assertion_json(b"cred", &[7; 32]), false).unwrap();
        assert_eq!(p.raw_id, b"cred");
        assert_eq!(p.challenge, [7; 32]);
        assert_eq!(p.signature, b"sig");
        assert_eq!(p.user_handle.as_deref(), Some(&b"u1"[..]));
        // A registration wants an attestation object.
        assert!(read_posted(&assertion_json(b"cred", &[7; 32]), true).is_none());
    }

    #[test]
    fn malformed_credentials_are_not_read() {
        let good = assertion_json(b"cred", &[7; 32]);
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["id"] = json!("other");
        assert!(read_posted(&v.to_string(), false).is_none(), "id not rawId");
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["type"] = json!("password");
        assert!(read_posted(&v.to_string(), false).is_none());
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["response"]["clientDataJSON"] = json!(b64url(b"not json"));
        assert!(read_posted(&v.to_string(), false).is_none());
        let mut v: Value = serde_json::from_str(&good).unwrap();
        v["response"]["signature"] = json!("!!");
        assert!(read_posted(&v.to_string(), false).is_none());
        assert!(read_posted("", false).is_none());
        assert!(read_posted("[]", false).is_none());
        assert!(read_posted(&"x".repeat(MAX_CREDENTIAL + 1), false).is_none());
    }
}
