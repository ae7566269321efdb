//! The route table: every path latchkey serves, with its methods and handler. Discovery
//! builds its endpoint URLs from the same constants, so the two cannot drift apart.

use crate::app::Worker;
use crate::http::rejection::NoEndpoint;
use crate::http::{Method, Req, Resp};
use crate::oauth::error::OAuthError;
use crate::{account, accounts, apikeys, forward, oauth, oidc};

/// OpenID Connect discovery (OIDC Discovery 1.0 §4).
pub const DISCOVERY_OIDC: &str = "/.well-known/openid-configuration";
/// Authorization server metadata (RFC 8414 §3).
pub const DISCOVERY_OAUTH: &str = "/.well-known/oauth-authorization-server";
/// The JWK Set of the signing keys.
pub const JWKS: &str = "/jwks.json";
/// The token endpoint (RFC 6749 §3.2).
pub const TOKEN: &str = "/token";
/// Token introspection (RFC 7662).
pub const INTROSPECT: &str = "/introspect";
/// Token revocation (RFC 7009).
pub const REVOKE: &str = "/revoke";
/// Liveness and database check.
pub const HEALTHZ: &str = "/healthz";
/// The authorization endpoint (RFC 6749 §3.1).
pub const AUTHORIZE: &str = "/authorize";
/// Where the consent form posts.
pub const CONSENT: &str = "/consent";
/// The login page.
pub const LOGIN: &str = "/login";
/// Where a sign-in gives its second factor (after the password, or to step up).
pub const SECOND_FACTOR: &str = "/login/second-factor";
/// Where a user who must use a second factor but has none enrols one (TOTP).
pub const ENROL_SECOND_FACTOR: &str = "/account/totp";
/// Removes the authenticator app (with the current password).
pub const TOTP_REMOVE: &str = "/account/totp/remove";
/// How many recovery codes remain; making new ones.
pub const RECOVERY_CODES: &str = "/account/recovery";
/// Where an invite or reset link leads: set a password or register a passkey.
pub const ACCOUNT_SETUP: &str = "/account/setup";
/// RP-initiated logout (the `end_session_endpoint`).
pub const LOGOUT: &str = "/logout";
/// OpenID Connect UserInfo.
pub const USERINFO: &str = "/userinfo";
/// The signed-in user's own page.
pub const ACCOUNT: &str = "/account";
/// Where the account page's profile form posts.
pub const ACCOUNT_PROFILE: &str = "/account/profile";
/// Where the account page's password form posts.
pub const ACCOUNT_PASSWORD: &str = "/account/password";
/// The account page's sessions section.
pub const ACCOUNT_SESSIONS: &str = "/account/sessions";
/// Ends one of the user's sessions, or every other one.
pub const ACCOUNT_SESSIONS_END: &str = "/account/sessions/end";
/// The account page's apps (consents) section.
pub const ACCOUNT_CONSENTS: &str = "/account/consents";
/// Revokes a consent the user gave.
pub const ACCOUNT_CONSENTS_REVOKE: &str = "/account/consents/revoke";
/// The signed-in home page.
pub const HOME: &str = "/";
/// One's own passkeys (list, add) and removing one.
pub const ACCOUNT_PASSKEYS: &str = "/account/passkeys";
pub const ACCOUNT_PASSKEYS_REMOVE: &str = "/account/passkeys/remove";
/// WebAuthn options, fetched by the script (JSON).
pub const WEBAUTHN_REGISTER_OPTIONS: &str = "/webauthn/register/options";
pub const WEBAUTHN_AUTHENTICATE_OPTIONS: &str = "/webauthn/authenticate/options";
/// A passkey's answer at sign-in (usernameless or as the second factor).
pub const LOGIN_PASSKEY: &str = "/login/passkey";
/// latchkey's own script (passkeys).
pub const SCRIPT: &str = "/assets/latchkey.js";
/// The pages' stylesheet.
pub const STYLESHEET: &str = "/assets/latchkey.css";
/// API-key check for apps (see `apikeys::verify`).
pub const APIKEY_VERIFY: &str = "/v1/apikeys/verify";
/// Forward auth for reverse proxies (see `forward`).
pub const FORWARD_AUTH: &str = "/api/forward-auth";

/// An endpoint: a JSON handler whose errors are OAuth error values, or a handler that builds
/// its whole response (HTML pages, redirects, Bearer challenges).
#[derive(Clone, Copy)]
enum Endpoint {
    Json(fn(&mut Worker, &Req, i64) -> Result<Resp, OAuthError>),
    Page(fn(&mut Worker, &Req, i64) -> Resp),
}

use Endpoint::{Json, Page};

/// (path, [(method, handler)]). HEAD is served wherever GET is.
const ROUTES: &[(&str, &[(Method, Endpoint)])] = &[
    (
        DISCOVERY_OIDC,
        &[(Method::Get, Json(oidc::discovery::handle))],
    ),
    (
        DISCOVERY_OAUTH,
        &[(Method::Get, Json(oidc::discovery::handle))],
    ),
    (JWKS, &[(Method::Get, Json(oidc::jwks::handle))]),
    (TOKEN, &[(Method::Post, Json(oauth::token::handle))]),
    (
        INTROSPECT,
        &[(Method::Post, Json(oauth::introspect::handle))],
    ),
    (REVOKE, &[(Method::Post, Json(oauth::revoke::handle))]),
    (HEALTHZ, &[(Method::Get, Json(healthz))]),
    (
        AUTHORIZE,
        &[
            (Method::Get, Page(oauth::authorize::handle)),
            (Method::Post, Page(oauth::authorize::handle)),
        ],
    ),
    (
        CONSENT,
        &[(Method::Post, Page(oauth::authorize::handle_consent))],
    ),
    (
        LOGIN,
        &[
            (Method::Get, Page(accounts::login::show)),
            (Method::Post, Page(accounts::login::submit)),
        ],
    ),
    (
        SECOND_FACTOR,
        &[
            (Method::Get, Page(accounts::second_factor::show)),
            (Method::Post, Page(accounts::second_factor::submit)),
        ],
    ),
    (
        ENROL_SECOND_FACTOR,
        &[
            (Method::Get, Page(account::totp::show)),
            (Method::Post, Page(account::totp::submit)),
        ],
    ),
    (TOTP_REMOVE, &[(Method::Post, Page(account::totp::remove))]),
    (
        RECOVERY_CODES,
        &[
            (Method::Get, Page(account::totp::recovery_show)),
            (Method::Post, Page(account::totp::recovery_regenerate)),
        ],
    ),
    (
        LOGOUT,
        &[
            (Method::Get, Page(oidc::logout::handle)),
            (Method::Post, Page(oidc::logout::handle)),
        ],
    ),
    (
        USERINFO,
        &[
            (Method::Get, Page(oidc::userinfo::handle)),
            (Method::Post, Page(oidc::userinfo::handle)),
        ],
    ),
    (HOME, &[(Method::Get, Page(accounts::login::home))]),
    (ACCOUNT, &[(Method::Get, Page(account::profile::show))]),
    (
        ACCOUNT_PROFILE,
        &[
            (Method::Get, Page(account::profile::section)),
            (Method::Post, Page(account::profile::submit)),
        ],
    ),
    (
        ACCOUNT_PASSWORD,
        &[
            (Method::Get, Page(account::profile::section)),
            (Method::Post, Page(account::password::submit)),
        ],
    ),
    (
        ACCOUNT_SESSIONS,
        &[(Method::Get, Page(account::profile::section))],
    ),
    (
        ACCOUNT_SESSIONS_END,
        &[(Method::Post, Page(account::sessions::end))],
    ),
    (
        ACCOUNT_CONSENTS,
        &[(Method::Get, Page(account::profile::section))],
    ),
    (
        ACCOUNT_CONSENTS_REVOKE,
        &[(Method::Post, Page(account::consents::revoke))],
    ),
    (
        ACCOUNT_SETUP,
        &[
            (Method::Get, Page(account::setup::show)),
            (Method::Post, Page(account::setup::submit)),
        ],
    ),
    (
        APIKEY_VERIFY,
        &[(Method::Get, Page(apikeys::verify::handle))],
    ),
    // Traefik repeats the original method; nginx and Caddy ask with GET.
    (
        FORWARD_AUTH,
        &[
            (Method::Get, Page(forward::handle)),
            (Method::Post, Page(forward::handle)),
            (Method::Put, Page(forward::handle)),
            (Method::Patch, Page(forward::handle)),
            (Method::Delete, Page(forward::handle)),
            (Method::Options, Page(forward::handle)),
        ],
    ),
    (STYLESHEET, &[(Method::Get, Page(stylesheet))]),
    (SCRIPT, &[(Method::Get, Page(script))]),
    (
        ACCOUNT_PASSKEYS,
        &[
            (Method::Get, Page(account::passkeys::show)),
            (Method::Post, Page(account::passkeys::add)),
        ],
    ),
    (
        ACCOUNT_PASSKEYS_REMOVE,
        &[(Method::Post, Page(account::passkeys::remove))],
    ),
    (
        WEBAUTHN_REGISTER_OPTIONS,
        &[(Method::Post, Page(accounts::passkey::register_options))],
    ),
    (
        WEBAUTHN_AUTHENTICATE_OPTIONS,
        &[(Method::Post, Page(accounts::passkey::authenticate_options))],
    ),
    (
        LOGIN_PASSKEY,
        &[(Method::Post, Page(accounts::passkey::sign_in))],
    ),
];

/// True for the requests that check or hash a password (`POST /login`, `/account/setup`,
/// `/account/password`, `/account/totp/remove`, `/account/passkeys/remove`): the server runs
/// them on their own workers, because each waits for an argon2 hash.
pub fn is_password_sign_in(req: &Req) -> bool {
    req.method == Method::Post
        && [
            LOGIN,
            ACCOUNT_SETUP,
            ACCOUNT_PASSWORD,
            TOTP_REMOVE,
            ACCOUNT_PASSKEYS_REMOVE,
        ]
        .contains(&req.path.as_str())
}

/// Routes a request and turns an error value into its response.
pub fn route(w: &mut Worker, req: &Req) -> Resp {
    let started = std::time::Instant::now();
    let route = ROUTES.iter().find(|(p, _)| *p == req.path);
    let resp = dispatch(w, req, route);
    crate::metrics::METRICS.request(
        route.map_or("other", |(p, _)| *p),
        resp.status,
        started.elapsed(),
    );
    resp
}

fn dispatch(
    w: &mut Worker,
    req: &Req,
    route: Option<&(&'static str, &[(Method, Endpoint)])>,
) -> Resp {
    let Some((_, handlers)) = route else {
        return NoEndpoint::NotFound("no such endpoint").into_resp();
    };
    let method = if req.method == Method::Head {
        Method::Get
    } else {
        req.method
    };
    let Some((_, endpoint)) = handlers.iter().find(|(m, _)| *m == method) else {
        let mut allow: Vec<&str> = handlers.iter().map(|(m, _)| m.as_str()).collect();
        if handlers.iter().any(|(m, _)| *m == Method::Get) {
            allow.push("HEAD");
        }
        return NoEndpoint::MethodNotAllowed("method not allowed on this endpoint")
            .into_resp()
            .with("Allow", allow.join(", "));
    };
    let now = crate::timefmt::now();
    match endpoint {
        Json(f) => f(w, req, now).unwrap_or_else(OAuthError::into_resp),
        Page(f) => f(w, req, now),
    }
}

fn stylesheet(_w: &mut Worker, _req: &Req, _now: i64) -> Resp {
    crate::ui::stylesheet()
}

fn script(_w: &mut Worker, _req: &Req, _now: i64) -> Resp {
    crate::ui::script()
}

/// `GET /healthz`: 200 `{"status":"ok"}` while the database answers and can be written, 503
/// with the reason otherwise. A write failure (disk full, read-only, corrupt) is recorded by
/// the writer and cleared by the maintenance thread's next write that works; it is logged
/// there, once a minute, not here per request.
fn healthz(w: &mut Worker, _req: &Req, _now: i64) -> Result<Resp, OAuthError> {
    let reason = match w.store.write_failure() {
        Some(why) => Some(why),
        None => w.store.ping().err().map(|e| e.to_string()),
    };
    Ok(match reason {
        None => Resp::json(200, &serde_json::json!({"status": "ok", "database": "ok"})),
        Some(reason) => Resp::json(
            503,
            &serde_json::json!({"status": "unavailable", "database": "error", "reason": reason}),
        ),
    }
    .with("Cache-Control", "no-store"))
}
