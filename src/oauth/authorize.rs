//! The authorization endpoint (RFC 6749 §4.1, RFC 7636, RFC 9207, OIDC Core §3.1.2) and the
//! consent form that continues it.
//!
//! Errors come in two kinds (RFC 6749 §4.1.2.1). Until the client and its redirect URI are
//! known to belong together, an error is a page and the browser goes nowhere: a missing,
//! unknown or repeated `client_id`, a missing or unregistered `redirect_uri`. From then on,
//! every error is sent back to the redirect URI with `error`, `error_description`, the exact
//! `state` and `iss` — a failure of the server too, as `server_error`.
//!
//! [`parse`] is a list of named checks, in the order they run (as node oidc-provider names
//! its own): the client, the trusted redirect target, the response target (`state`,
//! `response_mode`), repeated parameters, the response type, unsupported request objects, the
//! scope, PKCE, the nonce, `prompt` and `max_age`. Each returns its own error.

use crate::accounts::mfa::{self, ACR_MFA};
use crate::accounts::{csrf, session};
use crate::app::Worker;
use crate::crypto::{random_token, sha256};
use crate::http::form::{Form, encode_component, encode_pairs};
use crate::http::{Method, Req, Resp};
use crate::oauth::error::ErrorCode;
use crate::oauth::grants::authorization_code::GRANT_TYPE;
use crate::oauth::policy::{self, Refusal};
use crate::oauth::{pkce, redirect_uri, scope};
use crate::store::grants::NewCode;
use crate::store::{Client, StoreError};
use crate::ui::{self, Slot};
use std::sync::Arc;

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
    pub client: Arc<Client>,
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
    /// `acr_values` names [`ACR_MFA`]: the client asks for a multi-factor sign-in (OIDC Core
    /// §3.1.2.1; other values are voluntary and ignored).
    pub acr_mfa: bool,
    /// The recognised parameters as received, to rebuild the request after login or consent.
    params: Vec<(&'static str, String)>,
}

/// Why a request cannot proceed.
#[derive(Debug)]
pub enum Failure {
    /// Shown to the user as a 400 page; the browser is not sent anywhere, because the redirect
    /// URI is not (yet) known to be the client's.
    Page {
        code: ErrorCode,
        message: &'static str,
    },
    /// Sent to the client's redirect URI.
    Redirect {
        target: Target,
        code: ErrorCode,
        description: &'static str,
    },
    /// The server failed. Before the redirect URI is trusted it is shown as a page; after, it
    /// becomes a `server_error` redirect ([`Failure::redirected`]).
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

impl Failure {
    /// A failure of a request whose redirect URI is trusted: a server failure goes back to the
    /// client as `server_error` (RFC 6749 §4.1.2.1), its cause to the log only.
    fn redirected(self, target: &Target) -> Failure {
        match self {
            Failure::Server(cause) => {
                log::error!("authorize: {cause}");
                refuse(target, ErrorCode::ServerError, "internal error")
            }
            other => other,
        }
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

/// An error page (the redirect URI is not trusted).
fn page(code: ErrorCode, message: &'static str) -> Failure {
    Failure::Page { code, message }
}

/// An error sent back to the trusted redirect URI.
fn refuse(target: &Target, code: ErrorCode, description: &'static str) -> Failure {
    Failure::Redirect {
        target: target.clone(),
        code,
        description,
    }
}

/// What a client lookup returns.
type Found = Result<Option<Arc<Client>>, StoreError>;

/// Validates an authorization request.
pub fn parse(w: &Worker, form: &Form) -> Result<AuthRequest, Failure> {
    parse_with(form, |id, accept| w.client_where(id, accept))
}

/// [`parse`] with the client lookup given: the checks in the order they run, each refusing
/// with its own error. Until the redirect URI is trusted a refusal is a page; from then on it
/// goes back to the client.
///
/// `lookup` finds a client by id; its predicate says whether an indexed copy will do (see
/// [`Worker::client_where`]).
fn parse_with(
    form: &Form,
    lookup: impl FnOnce(&str, &dyn Fn(&Client) -> bool) -> Found,
) -> Result<AuthRequest, Failure> {
    let (client, redirect_uri_param) = check_client(form, lookup)?;
    let redirect_uri = check_redirect_uri(form, &client, redirect_uri_param.as_deref())?;
    let target = check_response_target(form, redirect_uri)?;
    check_no_repeats(form, &target)?;
    check_response_type(form, &client, &target)?;
    check_unsupported(form, &target)?;
    let scope = check_scope(form, &client, &target)?;
    let code_challenge = check_pkce(form, &client, &target)?;
    let nonce = check_nonce(form, &target)?;
    let prompt = check_prompt(form, &target)?;
    let max_age = check_max_age(form, &target)?;
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
        prompt_none: prompt.none,
        // OIDC Core §3.1.2.1: max_age=0 is prompt=login (with whole seconds, "authenticated 0
        // seconds ago" would otherwise pass).
        prompt_login: prompt.login || max_age == Some(0),
        prompt_consent: prompt.consent,
        max_age,
        acr_mfa: form
            .get("acr_values")
            .ok()
            .flatten()
            .is_some_and(|v| v.split(' ').any(|a| a == ACR_MFA)),
        params,
    })
}

/// The client: one `client_id`, at most one `redirect_uri`, and a registered client. From the
/// in-memory index; a client whose indexed copy does not list the redirect URI is read again,
/// in case the CLI has just added it.
fn check_client(
    form: &Form,
    lookup: impl FnOnce(&str, &dyn Fn(&Client) -> bool) -> Found,
) -> Result<(Arc<Client>, Option<String>), Failure> {
    let client_id = form
        .get("client_id")
        .map_err(|_| {
            page(
                ErrorCode::InvalidRequest,
                "The request names more than one client.",
            )
        })?
        .ok_or_else(|| {
            page(
                ErrorCode::InvalidRequest,
                "The request does not say which application is asking.",
            )
        })?;
    let redirect_uri_param = form
        .get("redirect_uri")
        .map_err(|_| {
            page(
                ErrorCode::InvalidRequest,
                "The request names more than one redirect URI.",
            )
        })?
        .map(str::to_string);
    let registered = |c: &Client| {
        redirect_uri_param
            .as_deref()
            .is_none_or(|uri| redirect_uri::matches(&c.redirect_uris, uri))
    };
    let client = lookup(client_id, &registered)?.ok_or_else(|| {
        page(
            ErrorCode::InvalidClient,
            "The application is not registered with latchkey.",
        )
    })?;
    Ok((client, redirect_uri_param))
}

/// The trusted redirect target, before anything is redirected (node oidc-provider: "ad
/// acta"): the `redirect_uri` as registered, or the only registered one when it is omitted.
fn check_redirect_uri(
    form: &Form,
    client: &Client,
    param: Option<&str>,
) -> Result<String, Failure> {
    match param {
        Some(uri) if redirect_uri::matches(&client.redirect_uris, uri) => Ok(uri.to_string()),
        Some(_) => Err(page(
            ErrorCode::InvalidRequest,
            "The redirect URI is not registered for this application.",
        )),
        // OIDC Core §3.1.2.1 makes redirect_uri required; OAuth allows omitting it when exactly
        // one is registered.
        None => {
            let wants_openid = form
                .get("scope")
                .ok()
                .flatten()
                .is_some_and(|s| s.split(' ').any(|t| t == "openid"));
            match client.redirect_uris.as_slice() {
                [only] if !wants_openid => Ok(only.clone()),
                _ => Err(page(
                    ErrorCode::InvalidRequest,
                    "The request has no redirect URI.",
                )),
            }
        }
    }
}

/// How errors and the code travel: `state` (returned byte for byte) and `response_mode`. From
/// here on, errors go back to the client.
fn check_response_target(form: &Form, redirect_uri: String) -> Result<Target, Failure> {
    let mut target = Target {
        redirect_uri,
        mode: Mode::Query,
        state: None,
    };
    match form.get("state") {
        Ok(s) if s.is_some_and(|s| s.len() > MAX_PARAM) => {
            return Err(refuse(
                &target,
                ErrorCode::InvalidRequest,
                "state is too long",
            ));
        }
        Ok(s) => target.state = s.map(str::to_string),
        Err(_) => {
            return Err(refuse(
                &target,
                ErrorCode::InvalidRequest,
                "state is repeated",
            ));
        }
    }
    match form.get("response_mode") {
        Ok(None) | Ok(Some("query")) => Ok(target),
        Ok(Some("form_post")) => Ok(Target {
            mode: Mode::FormPost,
            ..target
        }),
        Ok(Some(_)) => Err(refuse(
            &target,
            ErrorCode::InvalidRequest,
            "response_mode is not supported",
        )),
        Err(_) => Err(refuse(
            &target,
            ErrorCode::InvalidRequest,
            "response_mode is repeated",
        )),
    }
}

/// A parameter read after the target is trusted; a repeat is `invalid_request`
/// (RFC 6749 §3.1).
fn get<'f>(form: &'f Form, target: &Target, name: &str) -> Result<Option<&'f str>, Failure> {
    form.get(name)
        .map_err(|_| refuse(target, ErrorCode::InvalidRequest, "a parameter is repeated"))
}

/// No parameter latchkey reads or carries is repeated.
fn check_no_repeats(form: &Form, target: &Target) -> Result<(), Failure> {
    for name in PARAMS {
        get(form, target, name)?;
    }
    Ok(())
}

/// `response_type=code`, and a client registered for the authorization code grant.
fn check_response_type(form: &Form, client: &Client, target: &Target) -> Result<(), Failure> {
    match get(form, target, "response_type")? {
        None => {
            return Err(refuse(
                target,
                ErrorCode::InvalidRequest,
                "response_type is missing",
            ));
        }
        Some("code") => {}
        Some(_) => {
            return Err(refuse(
                target,
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if !client.allows_grant(GRANT_TYPE) {
        return Err(refuse(
            target,
            ErrorCode::UnauthorizedClient,
            "the client may not use the authorization code flow",
        ));
    }
    Ok(())
}

/// Request objects, `request_uri` and `registration` (OIDC Core §6, §7.2.1) are refused with
/// their own codes rather than ignored.
fn check_unsupported(form: &Form, target: &Target) -> Result<(), Failure> {
    let refused = [
        (
            "request",
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ),
        (
            "request_uri",
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ),
        (
            "registration",
            ErrorCode::RegistrationNotSupported,
            "registration is not supported",
        ),
    ];
    match refused.iter().find(|(name, _, _)| form.contains(name)) {
        Some((_, code, description)) => Err(refuse(target, *code, description)),
        None => Ok(()),
    }
}

/// The scope: well-formed and within the client's. `offline_access` needs the refresh_token
/// grant, not a registered scope (OIDC Core §11); the consent page asks for it in plain words.
fn check_scope(form: &Form, client: &Client, target: &Target) -> Result<Vec<String>, Failure> {
    let requested = match get(form, target, "scope")? {
        None => None,
        Some(raw) => Some(
            scope::parse(raw)
                .ok_or_else(|| refuse(target, ErrorCode::InvalidScope, "scope is malformed"))?,
        ),
    };
    scope::grant_for(client, requested).map_err(|_| {
        refuse(
            target,
            ErrorCode::InvalidScope,
            "requested scope is not allowed for this client",
        )
    })
}

/// PKCE (RFC 7636): S256 only (`plain` is refused), required for public clients and for
/// clients registered to require it.
fn check_pkce(form: &Form, client: &Client, target: &Target) -> Result<Option<String>, Failure> {
    let bad = |description| Err(refuse(target, ErrorCode::InvalidRequest, description));
    let challenge = match (
        get(form, target, "code_challenge")?,
        get(form, target, "code_challenge_method")?,
    ) {
        (Some(c), Some("S256")) if pkce::valid_challenge(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => return bad("code_challenge is malformed"),
        (Some(_), None) => return bad("code_challenge_method is required and must be S256"),
        (None, Some(_)) => return bad("code_challenge_method without code_challenge"),
        (Some(_), Some(_)) => return bad("code_challenge_method must be S256"),
        (None, None) => None,
    };
    if challenge.is_none() && (client.is_public() || client.require_pkce) {
        return bad("code_challenge (PKCE with S256) is required");
    }
    Ok(challenge)
}

/// The `nonce`, carried into the ID token.
fn check_nonce(form: &Form, target: &Target) -> Result<Option<String>, Failure> {
    let nonce = get(form, target, "nonce")?;
    if nonce.is_some_and(|n| n.len() > MAX_PARAM) {
        return Err(refuse(
            target,
            ErrorCode::InvalidRequest,
            "nonce is too long",
        ));
    }
    Ok(nonce.map(str::to_string))
}

/// The values of `prompt` (OIDC Core §3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

/// `prompt`: known values only (`select_account` is accepted: there is one account per
/// browser), and `none` alone.
fn check_prompt(form: &Form, target: &Target) -> Result<Prompt, Failure> {
    let mut p = Prompt::default();
    let Some(raw) = get(form, target, "prompt")? else {
        return Ok(p);
    };
    for v in raw.split(' ').filter(|v| !v.is_empty()) {
        match v {
            "none" => p.none = true,
            "login" => p.login = true,
            "consent" => p.consent = true,
            "select_account" => {}
            _ => {
                return Err(refuse(
                    target,
                    ErrorCode::InvalidRequest,
                    "prompt has an unknown value",
                ));
            }
        }
    }
    if p.none && (p.login || p.consent) {
        return Err(refuse(
            target,
            ErrorCode::InvalidRequest,
            "prompt=none cannot be combined",
        ));
    }
    Ok(p)
}

/// `max_age`: whole seconds.
fn check_max_age(form: &Form, target: &Target) -> Result<Option<i64>, Failure> {
    get(form, target, "max_age")?
        .map(|m| {
            m.parse::<u32>().map(i64::from).map_err(|_| {
                refuse(
                    target,
                    ErrorCode::InvalidRequest,
                    "max_age is not a number of seconds",
                )
            })
        })
        .transpose()
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
            page(ErrorCode::InvalidRequest, "The request is not well-formed."),
        );
    };
    let result = parse(w, &form)
        .and_then(|ar| decide(w, req, &ar, now).map_err(|f| f.redirected(&ar.target)));
    result.unwrap_or_else(|f| failure_resp(w, f))
}

/// Login, consent, then a code.
fn decide(w: &mut Worker, req: &Req, ar: &AuthRequest, now: i64) -> Result<Resp, Failure> {
    let current = session::current(w, req, now)?;
    let fresh_enough = |s: &session::Session| ar.max_age.is_none_or(|m| now - s.auth_time <= m);
    let session = match current {
        Some(s) if !ar.prompt_login && fresh_enough(&s) => s,
        _ if ar.prompt_none => {
            return Err(refuse(
                &ar.target,
                ErrorCode::LoginRequired,
                "the user is not signed in",
            ));
        }
        _ => return Ok(to_login(ar)),
    };
    if let Some(step_up) = step_up(w, ar, &session)? {
        return Ok(step_up);
    }
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
        Err(Refusal::NoConsent) if ar.prompt_none => Err(refuse(
            &ar.target,
            ErrorCode::ConsentRequired,
            "the user has not approved this application",
        )),
        Err(Refusal::NoConsent) => consent_page(w, req, ar, &session),
        Err(refused) => Err(refused_failure(ar, &session, refused)),
    }
}

/// A second factor the user, a group of theirs, the client or the request requires: a session
/// signed in without one steps up first (see [`mfa::policy`]) — or, under `prompt=none`, the
/// request fails with `login_required`.
fn step_up(
    w: &mut Worker,
    ar: &AuthRequest,
    session: &session::Session,
) -> Result<Option<Resp>, Failure> {
    let asked = ar.client.require_mfa || ar.acr_mfa;
    if !mfa::policy::required(&w.app.settings(), &session.user, asked)
        || session.amr.is_multi_factor()
    {
        return Ok(None);
    }
    if ar.prompt_none {
        return Err(refuse(
            &ar.target,
            ErrorCode::LoginRequired,
            "the user must sign in with a second factor",
        ));
    }
    let has_factor = w.store.second_factors(&session.user.id)?.any();
    let return_to = format!("/authorize?{}", ar.query(true));
    Ok(Some(
        Resp::empty(303)
            .with(
                "Location",
                mfa::policy::step_up(has_factor, &return_to, None),
            )
            .with("Cache-Control", "no-store"),
    ))
}

/// The redirect for a signed-in user whom the client's rules refuse.
fn refused_failure(ar: &AuthRequest, s: &session::Session, r: Refusal) -> Failure {
    log::info!(target: "latchkey::security", "{} refused at client {}: {}", s.user.username, ar.client.client_id, r.description());
    match r {
        Refusal::GrantNotAllowed => refuse(
            &ar.target,
            ErrorCode::UnauthorizedClient,
            "the client may not use the authorization code flow",
        ),
        _ => refuse(
            &ar.target,
            ErrorCode::AccessDenied,
            "the user may not use this application",
        ),
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
        decide_consent(w, req, &form, &ar, now).map_err(|f| f.redirected(&ar.target))
    });
    result.unwrap_or_else(|f| failure_resp(w, f))
}

/// The user's decision on a request that still parses.
fn decide_consent(
    w: &mut Worker,
    req: &Req,
    form: &Form,
    ar: &AuthRequest,
    now: i64,
) -> Result<Resp, Failure> {
    let Some(s) = session::current(w, req, now)? else {
        return Ok(to_login(ar));
    };
    if let Some(step_up) = step_up(w, ar, &s)? {
        return Ok(step_up);
    }
    match form.get("decision").ok().flatten() {
        Some("approve") => {
            // The consent form can be posted for any request: the group and grant checks that
            // led to the page are made again before anything is remembered.
            let refusal = policy::still_allowed(
                &ar.client,
                Some(&s.user),
                &[GRANT_TYPE],
                &ar.scope,
                |_, _, _| Ok(true),
            )?;
            if let Err(refused) = refusal {
                return Err(refused_failure(ar, &s, refused));
            }
            w.store
                .insert_consent(&s.user.id, &ar.client.client_id, &ar.scope, now)?;
            audit_consent(w, req, &s, ar, "consent_granted", now);
            issue_code(w, ar, &s, now)
        }
        Some("deny") => {
            audit_consent(w, req, &s, ar, "consent_denied", now);
            Err(refuse(
                &ar.target,
                ErrorCode::AccessDenied,
                "the user denied the request",
            ))
        }
        _ => Err(page(ErrorCode::InvalidRequest, "The form is incomplete.")),
    }
}

/// Writes the user's consent decision to the audit log before the answer leaves; the target
/// is the client and its scope.
fn audit_consent(
    w: &mut Worker,
    req: &Req,
    s: &session::Session,
    ar: &AuthRequest,
    action: &str,
    now: i64,
) {
    let address = crate::http::client_ip::client_ip(req, &w.app.config.trusted_proxies);
    let target = format!("{} {}", ar.client.client_id, ar.scope.join(" "));
    w.app.audit().write(
        &mut w.store,
        now,
        &format!("user:{}", s.user.username),
        action,
        target.trim_end(),
        "ok",
        &address.to_string(),
    );
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
            amr: &s.amr.to_json(),
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
        Failure::Page { code, message } => {
            log::info!(target: "latchkey::security", "authorization request refused: {}", code.as_str());
            ui::message(400, "This sign-in link does not work", message)
        }
        Failure::Redirect {
            target,
            code,
            description,
        } => respond(
            &target,
            &w.app.config.issuer,
            &code.redirect_params(description),
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

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "https://app.test/cb";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    /// A confidential client `app` with one redirect URI, `openid profile`, the code and
    /// refresh grants, PKCE not required.
    fn client() -> Client {
        Client {
            client_id: "app".into(),
            name: "App".into(),
            secret_hash: Some([7; 32]),
            redirect_uris: vec![CB.into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "profile".into()],
            audience: None,
            access_token_ttl: None,
            require_pkce: false,
            skip_consent: false,
            id_token_alg: "RS256".into(),
            post_logout_redirect_uris: vec![],
            allowed_groups: vec![],
            require_mfa: false,
            created_at: 0,
        }
    }

    fn public() -> Client {
        Client {
            secret_hash: None,
            ..client()
        }
    }

    /// A good request, with `changes` applied: `(name, Some(value))` sets a parameter,
    /// `(name, None)` removes it, `(name+, Some(value))` sends it once more.
    fn query(changes: &[(&'static str, Option<&'static str>)]) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("client_id", "app"),
            ("redirect_uri", CB),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        for &(name, value) in changes {
            match (name.strip_suffix('+'), value) {
                (Some(base), Some(v)) => pairs.push((base, v)),
                (None, Some(v)) => {
                    pairs.retain(|&(n, _)| n != name);
                    pairs.push((name, v));
                }
                (_, None) => pairs.retain(|&(n, _)| n != name),
            }
        }
        encode_pairs(pairs)
    }

    /// Parses `query` with `c` as the only registered client (no sockets, no database).
    fn parse_as(c: &Client, query: &str) -> Result<AuthRequest, Failure> {
        let form = Form::parse(query.as_bytes()).unwrap();
        let c = Arc::new(c.clone());
        parse_with(&form, move |id, _| Ok((id == c.client_id).then_some(c)))
    }

    /// How a refusal is rendered.
    #[derive(Debug, PartialEq, Eq)]
    enum Kind {
        Page,
        Redirect,
    }

    /// The refusal of `query` by `c`: its rendering, code and text.
    fn refusal(c: &Client, query: &str) -> (Kind, ErrorCode, &'static str) {
        match parse_as(c, query) {
            Ok(ar) => panic!("accepted: {ar:?}"),
            Err(Failure::Page { code, message }) => (Kind::Page, code, message),
            Err(Failure::Redirect {
                target,
                code,
                description,
            }) => {
                assert_eq!(target.redirect_uri, CB);
                (Kind::Redirect, code, description)
            }
            Err(Failure::Server(cause)) => panic!("server failure: {cause}"),
        }
    }

    fn redirect(code: ErrorCode, description: &'static str) -> (Kind, ErrorCode, &'static str) {
        (Kind::Redirect, code, description)
    }

    #[test]
    fn a_good_request_passes_every_check() {
        let ar = parse_as(&client(), &query(&[("response_mode", Some("form_post"))])).unwrap();
        assert_eq!(ar.target.redirect_uri, CB);
        assert_eq!(ar.target.state.as_deref(), Some("st"));
        assert_eq!(ar.target.mode, Mode::FormPost);
        assert_eq!(ar.scope, ["openid"]);
        assert_eq!(ar.code_challenge.as_deref(), Some(CHALLENGE));
        assert!(!ar.prompt_none && !ar.prompt_login && !ar.prompt_consent);
        // A confidential client not required to use PKCE may leave it out.
        let q = query(&[("code_challenge", None), ("code_challenge_method", None)]);
        assert_eq!(parse_as(&client(), &q).unwrap().code_challenge, None);
    }

    #[test]
    fn the_client_is_checked_first_and_refused_on_a_page() {
        let unknown = query(&[("client_id", Some("nobody")), ("response_type", None)]);
        assert_eq!(
            refusal(&client(), &unknown),
            (
                Kind::Page,
                ErrorCode::InvalidClient,
                "The application is not registered with latchkey."
            )
        );
        let missing = query(&[("client_id", None)]);
        assert_eq!(
            refusal(&client(), &missing),
            (
                Kind::Page,
                ErrorCode::InvalidRequest,
                "The request does not say which application is asking."
            )
        );
        let twice = query(&[("client_id+", Some("app"))]);
        assert_eq!(
            refusal(&client(), &twice),
            (
                Kind::Page,
                ErrorCode::InvalidRequest,
                "The request names more than one client."
            )
        );
    }

    #[test]
    fn an_untrusted_redirect_uri_is_a_page_not_a_redirect() {
        let evil = query(&[("redirect_uri", Some("https://evil.test/cb"))]);
        assert_eq!(
            refusal(&client(), &evil),
            (
                Kind::Page,
                ErrorCode::InvalidRequest,
                "The redirect URI is not registered for this application."
            )
        );
        // Omitted: allowed with one registered URI, but not for OpenID Connect.
        let omitted = query(&[("redirect_uri", None)]);
        assert_eq!(
            refusal(&client(), &omitted),
            (
                Kind::Page,
                ErrorCode::InvalidRequest,
                "The request has no redirect URI."
            )
        );
        let q = query(&[("redirect_uri", None), ("scope", Some("profile"))]);
        assert_eq!(parse_as(&client(), &q).unwrap().target.redirect_uri, CB);
        let twice = query(&[("redirect_uri+", Some(CB))]);
        assert_eq!(refusal(&client(), &twice).0, Kind::Page);
    }

    #[test]
    fn state_and_response_mode_are_checked_once_the_target_is_trusted() {
        let twice = query(&[("state+", Some("other"))]);
        assert_eq!(
            refusal(&client(), &twice),
            redirect(ErrorCode::InvalidRequest, "state is repeated")
        );
        let long: &'static str = Box::leak("s".repeat(MAX_PARAM + 1).into_boxed_str());
        assert_eq!(
            refusal(&client(), &query(&[("state", Some(long))])),
            redirect(ErrorCode::InvalidRequest, "state is too long")
        );
        assert_eq!(
            refusal(&client(), &query(&[("response_mode", Some("fragment"))])),
            redirect(ErrorCode::InvalidRequest, "response_mode is not supported")
        );
        assert_eq!(
            refusal(
                &client(),
                &query(&[("nonce+", Some("a")), ("nonce+", Some("b"))])
            ),
            redirect(ErrorCode::InvalidRequest, "a parameter is repeated")
        );
    }

    #[test]
    fn the_response_type_must_be_code_and_the_grant_registered() {
        assert_eq!(
            refusal(&client(), &query(&[("response_type", None)])),
            redirect(ErrorCode::InvalidRequest, "response_type is missing")
        );
        assert_eq!(
            refusal(&client(), &query(&[("response_type", Some("token"))])),
            redirect(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported"
            )
        );
        let machine = Client {
            grant_types: vec!["client_credentials".into()],
            ..client()
        };
        assert_eq!(
            refusal(&machine, &query(&[])),
            redirect(
                ErrorCode::UnauthorizedClient,
                "the client may not use the authorization code flow"
            )
        );
    }

    #[test]
    fn request_objects_and_registration_have_their_own_codes() {
        for (name, code) in [
            ("request", ErrorCode::RequestNotSupported),
            ("request_uri", ErrorCode::RequestUriNotSupported),
            ("registration", ErrorCode::RegistrationNotSupported),
        ] {
            let (kind, got, _) = refusal(&client(), &query(&[(name, Some("x"))]));
            assert_eq!((kind, got), (Kind::Redirect, code), "{name}");
        }
    }

    #[test]
    fn a_scope_must_be_well_formed_and_the_clients() {
        assert_eq!(
            refusal(&client(), &query(&[("scope", Some("openid \"x\""))])),
            redirect(ErrorCode::InvalidScope, "scope is malformed")
        );
        assert_eq!(
            refusal(&client(), &query(&[("scope", Some("openid admin"))])),
            redirect(
                ErrorCode::InvalidScope,
                "requested scope is not allowed for this client"
            )
        );
    }

    #[test]
    fn pkce_is_s256_and_required_for_public_clients() {
        let none = query(&[("code_challenge", None), ("code_challenge_method", None)]);
        let required = redirect(
            ErrorCode::InvalidRequest,
            "code_challenge (PKCE with S256) is required",
        );
        assert_eq!(refusal(&public(), &none), required);
        let strict = Client {
            require_pkce: true,
            ..client()
        };
        assert_eq!(refusal(&strict, &none), required);
        assert_eq!(
            refusal(
                &public(),
                &query(&[("code_challenge_method", Some("plain"))])
            ),
            redirect(
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256"
            )
        );
        assert_eq!(
            refusal(&public(), &query(&[("code_challenge_method", None)])),
            redirect(
                ErrorCode::InvalidRequest,
                "code_challenge_method is required and must be S256"
            )
        );
        assert_eq!(
            refusal(&public(), &query(&[("code_challenge", None)])),
            redirect(
                ErrorCode::InvalidRequest,
                "code_challenge_method without code_challenge"
            )
        );
        assert_eq!(
            refusal(&public(), &query(&[("code_challenge", Some("short"))])),
            redirect(ErrorCode::InvalidRequest, "code_challenge is malformed")
        );
    }

    #[test]
    fn prompt_none_stands_alone_and_max_age_is_seconds() {
        assert_eq!(
            refusal(&client(), &query(&[("prompt", Some("none login"))])),
            redirect(ErrorCode::InvalidRequest, "prompt=none cannot be combined")
        );
        assert_eq!(
            refusal(&client(), &query(&[("prompt", Some("none consent"))])),
            redirect(ErrorCode::InvalidRequest, "prompt=none cannot be combined")
        );
        assert_eq!(
            refusal(&client(), &query(&[("prompt", Some("sometimes"))])),
            redirect(ErrorCode::InvalidRequest, "prompt has an unknown value")
        );
        assert_eq!(
            refusal(&client(), &query(&[("max_age", Some("-1"))])),
            redirect(
                ErrorCode::InvalidRequest,
                "max_age is not a number of seconds"
            )
        );
        let long: &'static str = Box::leak("n".repeat(MAX_PARAM + 1).into_boxed_str());
        assert_eq!(
            refusal(&client(), &query(&[("nonce", Some(long))])),
            redirect(ErrorCode::InvalidRequest, "nonce is too long")
        );
        let ar = parse_as(&client(), &query(&[("max_age", Some("0"))])).unwrap();
        assert!(ar.prompt_login, "max_age=0 is prompt=login");
        let ar = parse_as(
            &client(),
            &query(&[("prompt", Some("none select_account"))]),
        )
        .unwrap();
        assert!(ar.prompt_none && !ar.prompt_login);
    }

    #[test]
    fn a_server_failure_after_the_target_is_trusted_is_a_server_error_redirect() {
        let ar = parse_as(&client(), &query(&[])).unwrap();
        match Failure::Server("disk on fire".into()).redirected(&ar.target) {
            Failure::Redirect {
                target,
                code,
                description,
            } => {
                assert_eq!(target.state.as_deref(), Some("st"));
                assert_eq!(code, ErrorCode::ServerError);
                assert_eq!(description, "internal error");
            }
            other => panic!("{other:?}"),
        }
        // Any other failure is left as it is.
        let page = page(ErrorCode::InvalidRequest, "The form is incomplete.");
        assert!(matches!(
            page.redirected(&ar.target),
            Failure::Page {
                code: ErrorCode::InvalidRequest,
                ..
            }
        ));
    }
}
