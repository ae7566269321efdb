//! The authorization endpoint (RFC 6749 §4.1, RFC 7636, RFC 9207, OIDC Core §3.1.2) and the
//! consent form that continues it.
//!
//! Errors come in two kinds (RFC 6749 §4.1.2.1). Until the client and its redirect URI are
//! known to belong together, an error is a page and the browser goes nowhere: a missing,
//! unknown or repeated `client_id`, a missing or unregistered `redirect_uri`. From then on,
//! every error is sent back to the redirect URI with `error`, `error_description`, the exact
//! `state` and `iss`.

use crate::accounts::{csrf, session};
use crate::app::Worker;
use crate::crypto::{random_token, sha256};
use crate::http::form::{Form, encode_component, encode_pairs};
use crate::http::{Method, Req, Resp};
use crate::oauth::grants::authorization_code::GRANT_TYPE;
use crate::oauth::policy::{self, Refusal};
use crate::oauth::{pkce, redirect_uri, scope};
use crate::store::grants::NewCode;
use crate::store::{Client, StoreError};
use crate::ui::{self, Slot};

/// How long a code lives (RFC 9700 / OAuth 2.1 §4.1.2 recommend well under 10 minutes).
pub const CODE_TTL: i64 = 60;
/// Longest accepted `state` and `nonce`.
const MAX_PARAM: usize = 2048;

/// How the authorization response travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `response_mode=query` (the default for `code`).
    Query,
    /// `response_mode=form_post`: an auto-submitted HTML form.
    FormPost,
}

/// Where errors and codes are sent once the redirect URI is trusted.
#[derive(Clone, Debug)]
pub struct Target {
    pub redirect_uri: String,
    pub mode: Mode,
    pub state: Option<String>,
}

/// A validated authorization request.
#[derive(Clone, Debug)]
pub struct AuthRequest {
    pub client: std::sync::Arc<Client>,
    pub target: Target,
    /// The `redirect_uri` parameter as sent (None if it was omitted).
    pub redirect_uri_param: Option<String>,
    pub scope: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub prompt_consent: bool,
    pub max_age: Option<i64>,
    /// The recognised parameters as received, to rebuild the request after login or consent.
    params: Vec<(&'static str, String)>,
}

/// Why a request cannot proceed.
pub enum Failure {
    /// Shown to the user; the browser is not sent anywhere.
    Page {
        status: u16,
        error: &'static str,
        message: &'static str,
    },
    /// Sent to the client's redirect URI.
    Redirect {
        target: Target,
        error: &'static str,
        description: &'static str,
    },
    /// The server failed; shown as a page (or a `server_error` redirect once trusted).
    Server(String),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Server(e.to_string())
    }
}

impl From<crate::error::Error> for Failure {
    fn from(e: crate::error::Error) -> Self {
        Failure::Server(e.to_string())
    }
}

/// The parameters latchkey reads or carries through login and consent.
const PARAMS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "ui_locales",
    "claims_locales",
    "acr_values",
    "display",
    "id_token_hint",
];

fn page(status: u16, error: &'static str, message: &'static str) -> Failure {
    Failure::Page {
        status,
        error,
        message,
    }
}

/// Validates an authorization request.
pub fn parse(w: &Worker, form: &Form) -> Result<AuthRequest, Failure> {
    // 1. The client.
    let client_id = form
        .get("client_id")
        .map_err(|_| {
            page(
                400,
                "invalid_request",
                "The request names more than one client.",
            )
        })?
        .ok_or_else(|| {
            page(
                400,
                "invalid_request",
                "The request does not say which application is asking.",
            )
        })?;
    let redirect_uri_param = form
        .get("redirect_uri")
        .map_err(|_| {
            page(
                400,
                "invalid_request",
                "The request names more than one redirect URI.",
            )
        })?
        .map(str::to_string);
    // From the in-memory index; a client whose indexed copy does not list the redirect URI is
    // read again, in case the CLI has just added it.
    let client = w
        .client_where(client_id, |c| {
            redirect_uri_param
                .as_deref()
                .is_none_or(|uri| redirect_uri::matches(&c.redirect_uris, uri))
        })?
        .ok_or_else(|| {
            page(
                400,
                "invalid_client",
                "The application is not registered with latchkey.",
            )
        })?;

    // 2. The redirect URI, before anything is redirected (node oidc-provider: "ad acta").
    let wants_openid = form
        .get("scope")
        .ok()
        .flatten()
        .is_some_and(|s| s.split(' ').any(|t| t == "openid"));
    let redirect_uri = match &redirect_uri_param {
        Some(uri) if redirect_uri::matches(&client.redirect_uris, uri) => uri.clone(),
        Some(_) => {
            return Err(page(
                400,
                "invalid_request",
                "The redirect URI is not registered for this application.",
            ));
        }
        // OIDC Core §3.1.2.1 makes redirect_uri required; OAuth allows omitting it when exactly
        // one is registered.
        None => match client.redirect_uris.as_slice() {
            [only] if !wants_openid => only.clone(),
            _ => {
                return Err(page(
                    400,
                    "invalid_request",
                    "The request has no redirect URI.",
                ));
            }
        },
    };

    // From here on out, errors go back to the client.
    let mut target = Target {
        redirect_uri,
        mode: Mode::Query,
        state: None,
    };
    let fail =
        |target: &Target, error: &'static str, description: &'static str| Failure::Redirect {
            target: target.clone(),
            error,
            description,
        };
    match form.get("state") {
        Ok(s) if s.is_some_and(|s| s.len() > MAX_PARAM) => {
            return Err(fail(&target, "invalid_request", "state is too long"));
        }
        Ok(s) => target.state = s.map(str::to_string),
        Err(_) => return Err(fail(&target, "invalid_request", "state is repeated")),
    }
    match form.get("response_mode") {
        Ok(None) | Ok(Some("query")) => {}
        Ok(Some("form_post")) => target.mode = Mode::FormPost,
        Ok(Some(_)) => {
            return Err(fail(
                &target,
                "invalid_request",
                "response_mode is not supported",
            ));
        }
        Err(_) => {
            return Err(fail(
                &target,
                "invalid_request",
                "response_mode is repeated",
            ));
        }
    }
    let get = |name: &str| -> Result<Option<&str>, Failure> {
        form.get(name)
            .map_err(|_| fail(&target, "invalid_request", "a parameter is repeated"))
    };
    for name in PARAMS {
        get(name)?;
    }
    match get("response_type")? {
        None => return Err(fail(&target, "invalid_request", "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                &target,
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if !client.allows_grant(GRANT_TYPE) {
        return Err(fail(
            &target,
            "unauthorized_client",
            "the client may not use the authorization code flow",
        ));
    }
    if form.contains("request") {
        return Err(fail(
            &target,
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if form.contains("request_uri") {
        return Err(fail(
            &target,
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    if form.contains("registration") {
        return Err(fail(
            &target,
            "registration_not_supported",
            "registration is not supported",
        ));
    }
    let requested = match get("scope")? {
        None => None,
        Some(raw) => Some(
            scope::parse(raw)
                .ok_or_else(|| fail(&target, "invalid_scope", "scope is malformed"))?,
        ),
    };
    // `offline_access` needs the refresh_token grant, not a registered scope (OIDC Core §11);
    // the consent page asks for it in plain words.
    let scope = scope::grant_for(&client, requested).map_err(|_| {
        fail(
            &target,
            "invalid_scope",
            "requested scope is not allowed for this client",
        )
    })?;
    let code_challenge = match (get("code_challenge")?, get("code_challenge_method")?) {
        (Some(c), Some("S256")) if pkce::valid_challenge(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => {
            return Err(fail(
                &target,
                "invalid_request",
                "code_challenge is malformed",
            ));
        }
        (Some(_), None) => {
            return Err(fail(
                &target,
                "invalid_request",
                "code_challenge_method is required and must be S256",
            ));
        }
        (None, Some(_)) => {
            return Err(fail(
                &target,
                "invalid_request",
                "code_challenge_method without code_challenge",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(fail(
                &target,
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        (None, None) => None,
    };
    if code_challenge.is_none() && (client.is_public() || client.require_pkce) {
        return Err(fail(
            &target,
            "invalid_request",
            "code_challenge (PKCE with S256) is required",
        ));
    }
    let nonce = get("nonce")?.map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_PARAM) {
        return Err(fail(&target, "invalid_request", "nonce is too long"));
    }
    let (mut prompt_none, mut prompt_login, mut prompt_consent) = (false, false, false);
    if let Some(p) = get("prompt")? {
        for v in p.split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => prompt_none = true,
                "login" => prompt_login = true,
                "consent" => prompt_consent = true,
                "select_account" => {}
                _ => {
                    return Err(fail(
                        &target,
                        "invalid_request",
                        "prompt has an unknown value",
                    ));
                }
            }
        }
        if prompt_none && (prompt_login || prompt_consent) {
            return Err(fail(
                &target,
                "invalid_request",
                "prompt=none cannot be combined",
            ));
        }
    }
    let max_age = match get("max_age")? {
        None => None,
        Some(m) => Some(m.parse::<u32>().map(i64::from).map_err(|_| {
            fail(
                &target,
                "invalid_request",
                "max_age is not a number of seconds",
            )
        })?),
    };
    // OIDC Core §3.1.2.1: max_age=0 is prompt=login (with whole seconds, "authenticated 0
    // seconds ago" would otherwise pass).
    if max_age == Some(0) {
        prompt_login = true;
    }
    let params = PARAMS
        .iter()
        .filter_map(|n| form.get(n).ok().flatten().map(|v| (*n, v.to_string())))
        .collect();
    Ok(AuthRequest {
        client,
        target,
        redirect_uri_param,
        scope,
        nonce,
        code_challenge,
        prompt_none,
        prompt_login,
        prompt_consent,
        max_age,
        params,
    })
}

impl AuthRequest {
    /// The request as a query string. `after_login` drops `prompt=login` and `max_age=0` (they
    /// have just been honoured), so returning from the login page does not ask again.
    pub fn query(&self, after_login: bool) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (k, v) in &self.params {
            if *k == "max_age" && after_login && v == "0" {
                continue;
            }
            if *k == "prompt" && after_login {
                let rest: Vec<&str> = v
                    .split(' ')
                    .filter(|p| *p != "login" && !p.is_empty())
                    .collect();
                if !rest.is_empty() {
                    pairs.push((k, rest.join(" ")));
                }
                continue;
            }
            pairs.push((k, v.clone()));
        }
        encode_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
    }
}

/// Reads the parameters of a GET (query) or POST (form body) authorization request.
fn read_params(req: &Req) -> Option<Form> {
    match req.method {
        Method::Post => {
            if req.content_type().as_deref() != Some("application/x-www-form-urlencoded") {
                return None;
            }
            Form::parse(&req.body).ok()
        }
        _ => Form::parse(req.query.as_bytes()).ok(),
    }
}

/// `GET/POST /authorize`.
pub fn handle(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let Some(form) = read_params(req) else {
        return failure_resp(
            w,
            page(400, "invalid_request", "The request is not well-formed."),
        );
    };
    let result = parse(w, &form).and_then(|ar| decide(w, req, &ar, now));
    result.unwrap_or_else(|f| failure_resp(w, f))
}

/// Login, consent, then a code.
fn decide(w: &mut Worker, req: &Req, ar: &AuthRequest, now: i64) -> Result<Resp, Failure> {
    let current = session::current(w, req, now)?;
    let fresh_enough = |s: &session::Session| ar.max_age.is_none_or(|m| now - s.auth_time <= m);
    let session = match current {
        Some(s) if !ar.prompt_login && fresh_enough(&s) => s,
        _ if ar.prompt_none => {
            return Err(Failure::Redirect {
                target: ar.target.clone(),
                error: "login_required",
                description: "the user is not signed in",
            });
        }
        _ => return Ok(to_login(ar)),
    };
    // A reused session passes the same checks as a fresh sign-in (oauth::policy).
    let prompt_consent = ar.prompt_consent;
    let store = &w.store;
    let refusal = policy::still_allowed(
        &ar.client,
        Some(&session.user),
        &[GRANT_TYPE],
        &ar.scope,
        |u, c, s| Ok(!prompt_consent && store.has_consent(u, c, s)?),
    )?;
    match refusal {
        Ok(()) => issue_code(w, ar, &session, now),
        Err(Refusal::NoConsent) if ar.prompt_none => Err(Failure::Redirect {
            target: ar.target.clone(),
            error: "consent_required",
            description: "the user has not approved this application",
        }),
        Err(Refusal::NoConsent) => consent_page(w, req, ar, &session),
        Err(refused) => Err(refused_failure(ar, &session, refused)),
    }
}

/// The redirect for a signed-in user whom the client's rules refuse.
fn refused_failure(ar: &AuthRequest, s: &session::Session, r: Refusal) -> Failure {
    log::info!(target: "latchkey::security", "{} refused at client {}: {}", s.user.username, ar.client.client_id, r.description());
    let (error, description) = match r {
        Refusal::GrantNotAllowed => (
            "unauthorized_client",
            "the client may not use the authorization code flow",
        ),
        _ => ("access_denied", "the user may not use this application"),
    };
    Failure::Redirect {
        target: ar.target.clone(),
        error,
        description,
    }
}

fn to_login(ar: &AuthRequest) -> Resp {
    let return_to = format!("/authorize?{}", ar.query(true));
    Resp::empty(303)
        .with(
            "Location",
            format!("/login?return_to={}", encode_component(&return_to)),
        )
        .with("Cache-Control", "no-store")
}

/// Plain words for a scope.
pub fn describe_scope(s: &str) -> String {
    match s {
        "openid" => "Sign you in with your latchkey account".into(),
        "profile" => "See your name and username".into(),
        "email" => "See your email address".into(),
        "groups" => "See which groups you belong to".into(),
        "offline_access" => "Stay connected while you are away".into(),
        other => format!("Use the permission “{other}”"),
    }
}

fn consent_page(
    w: &mut Worker,
    req: &Req,
    ar: &AuthRequest,
    s: &session::Session,
) -> Result<Resp, Failure> {
    let (token, set_cookie) = csrf::form_token(&w.app, req)?;
    let scopes: String = ar
        .scope
        .iter()
        .map(|s| format!("<li>{}</li>\n", ui::esc(&describe_scope(s))))
        .collect();
    let host = ar
        .target
        .redirect_uri
        .split("://")
        .nth(1)
        .and_then(|r| r.split(['/', '?']).next())
        .unwrap_or(&ar.target.redirect_uri)
        .to_string();
    let request = ar.query(false);
    let body = ui::render(
        ui::CONSENT,
        &[
            ("client", Slot::Text(&ar.client.name)),
            ("scopes", Slot::Html(&scopes)),
            ("username", Slot::Text(&s.user.username)),
            ("redirect_host", Slot::Text(&host)),
            ("csrf", Slot::Text(&token)),
            ("request", Slot::Text(&request)),
        ],
    );
    let mut resp = ui::page(200, &format!("Allow {}?", ar.client.name), &body);
    if let Some(c) = set_cookie {
        resp = resp.with("Set-Cookie", c);
    }
    Ok(resp)
}

/// `POST /consent`: the user's decision on the consent page.
pub fn handle_consent(w: &mut Worker, req: &Req, now: i64) -> Resp {
    let form = match csrf::checked_form(&w.app, req) {
        Ok(f) => f,
        Err(page) => return page,
    };
    let Some(request) = form.get("request").ok().flatten() else {
        return ui::message(400, "Bad request", "The form is incomplete.");
    };
    let Ok(inner) = Form::parse(request.as_bytes()) else {
        return ui::message(400, "Bad request", "The form is incomplete.");
    };
    let result = parse(w, &inner).and_then(|ar| {
        let Some(s) = session::current(w, req, now)? else {
            return Ok(to_login(&ar));
        };
        match form.get("decision").ok().flatten() {
            Some("approve") => {
                // The consent form can be posted for any request: the group and grant checks
                // that led to the page are made again before anything is remembered.
                let refusal = policy::still_allowed(
                    &ar.client,
                    Some(&s.user),
                    &[GRANT_TYPE],
                    &ar.scope,
                    |_, _, _| Ok(true),
                )?;
                if let Err(refused) = refusal {
                    return Err(refused_failure(&ar, &s, refused));
                }
                w.store
                    .insert_consent(&s.user.id, &ar.client.client_id, &ar.scope, now)?;
                issue_code(w, &ar, &s, now)
            }
            Some("deny") => Err(Failure::Redirect {
                target: ar.target.clone(),
                error: "access_denied",
                description: "the user denied the request",
            }),
            _ => Err(page(400, "invalid_request", "The form is incomplete.")),
        }
    });
    result.unwrap_or_else(|f| failure_resp(w, f))
}

fn issue_code(
    w: &mut Worker,
    ar: &AuthRequest,
    s: &session::Session,
    now: i64,
) -> Result<Resp, Failure> {
    let code = random_token()?;
    let scope = ar.scope.join(" ");
    w.store.insert_code(
        &sha256(code.as_bytes()),
        &NewCode {
            client_id: &ar.client.client_id,
            user_id: &s.user.id,
            redirect_uri: ar.redirect_uri_param.as_deref(),
            scope: &scope,
            nonce: ar.nonce.as_deref(),
            code_challenge: ar.code_challenge.as_deref(),
            auth_time: s.auth_time,
            expires_at: now + CODE_TTL,
        },
    )?;
    Ok(respond(
        &ar.target,
        &w.app.config.issuer,
        &[("code", &code)],
    ))
}

/// The authorization response (success or error) to the client, with `state` and `iss`
/// (RFC 9207 §2), by 303 (RFC 9700 §4.12: never 307) or by form_post.
pub fn respond(target: &Target, issuer: &str, params: &[(&str, &str)]) -> Resp {
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    if let Some(state) = &target.state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    match target.mode {
        Mode::Query => {
            let sep = if target.redirect_uri.contains('?') {
                '&'
            } else {
                '?'
            };
            Resp::empty(303)
                .with(
                    "Location",
                    format!("{}{sep}{}", target.redirect_uri, encode_pairs(pairs)),
                )
                .with("Cache-Control", "no-store")
                .with("Referrer-Policy", "no-referrer")
        }
        Mode::FormPost => {
            let fields: String = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                        ui::esc(k),
                        ui::esc(v)
                    )
                })
                .collect();
            let body = ui::render(
                ui::FORM_POST,
                &[
                    ("action", Slot::Text(&target.redirect_uri)),
                    ("fields", Slot::Html(&fields)),
                ],
            );
            ui::page(200, "Continue", &body)
        }
    }
}

/// Turns a failure into its response.
pub fn failure_resp(w: &Worker, f: Failure) -> Resp {
    match f {
        Failure::Page {
            status,
            error,
            message,
        } => {
            log::info!(target: "latchkey::security", "authorization request refused: {error}");
            ui::message(status, "This sign-in link does not work", message)
        }
        Failure::Redirect {
            target,
            error,
            description,
        } => respond(
            &target,
            &w.app.config.issuer,
            &[("error", error), ("error_description", description)],
        ),
        Failure::Server(cause) => {
            log::error!("authorize: {cause}");
            ui::message(
                500,
                "Something went wrong",
                "latchkey could not finish this request. Try again in a moment.",
            )
        }
    }
}
