//! People and OpenID Connect against the real binary: the login and consent pages driven by a
//! cookie-keeping browser emulation (every 303 asserted, never auto-followed), authorization
//! codes with PKCE, the token endpoint's authorization_code and refresh_token grants, ID tokens
//! (verified with the independent `jsonwebtoken` crate against the published JWKS), UserInfo,
//! RP-initiated logout, discovery, the `user` CLI, CSRF and login throttling.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom as _, SystemRandom};
use serde_json::Value;

use crate::oauth::{assert_active, assert_inactive, b64, db, introspect, jwks, now, verify};
use crate::support::browser::{
    Browser, encode_form, hidden_input, inputs, location, page_error, query_pairs, query_param,
};
use crate::support::{
    PASSWORD, Response, Server, TestClient, add_user, basic_header, eventually, form_encode,
    latchkey_stdin,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The default registered redirect URI.
const CB: &str = "https://app.example/cb";
/// The default scopes of an authorization_code client.
const ALL_SCOPES: &str = "openid profile email groups";
/// A `state` with characters that need encoding.
const STATE: &str = "a b/é&x";
/// The generic failed-login message.
const WRONG: &str = "Wrong username or password.";

/// A relying party registered with `client add`.
#[derive(Clone, Debug)]
struct Rp {
    id: String,
    secret: Option<String>,
    redirect_uri: String,
}

/// `client add NAME --grant authorization_code --grant refresh_token --redirect-uri CB [extra…]`.
fn add_rp(server: &Server, name: &str, extra: &[&str]) -> Rp {
    add_rp_with(
        server,
        name,
        CB,
        &["authorization_code", "refresh_token"],
        extra,
    )
}

fn add_rp_with(
    server: &Server,
    name: &str,
    redirect_uri: &str,
    grants: &[&str],
    extra: &[&str],
) -> Rp {
    let mut args = vec![
        "client",
        "add",
        name,
        "--redirect-uri",
        redirect_uri,
        "--json",
    ];
    for g in grants {
        args.extend(["--grant", g]);
    }
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&server.cli_ok(&args)).unwrap();
    Rp {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: v["client_secret"].as_str().map(str::to_string),
        redirect_uri: redirect_uri.to_string(),
    }
}

impl Rp {
    /// `POST /token` as this client: `client_secret_basic` if confidential, else `client_id`.
    fn token(&self, server: &Server, fields: &[(&str, &str)]) -> Response {
        match &self.secret {
            Some(secret) => server.post_form(
                "/token",
                &encode_form(fields),
                &basic_header(&self.id, secret),
            ),
            None => {
                let mut fields = fields.to_vec();
                fields.push(("client_id", &self.id));
                server.post_form("/token", &encode_form(&fields), "")
            }
        }
    }

    /// Exchanges a code sent to this client's redirect URI.
    fn exchange(&self, server: &Server, code: &str, verifier: Option<&str>) -> Response {
        self.exchange_at(server, code, &self.redirect_uri, verifier)
    }

    fn exchange_at(
        &self,
        server: &Server,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
    ) -> Response {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(v) = verifier {
            fields.push(("code_verifier", v));
        }
        self.token(server, &fields)
    }

    /// Exchanges a code and asserts a token response.
    fn tokens(&self, server: &Server, code: &str, pkce: &Pkce) -> Tokens {
        let r = self.exchange(server, code, Some(&pkce.verifier));
        Tokens::from(&r)
    }

    /// `grant_type=refresh_token`.
    fn refresh(&self, server: &Server, refresh_token: &str, scope: Option<&str>) -> Response {
        let mut fields = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(s) = scope {
            fields.push(("scope", s));
        }
        self.token(server, &fields)
    }
}

/// A successful token response.
#[derive(Debug, Clone)]
struct Tokens {
    json: Value,
    access: String,
    refresh: Option<String>,
    id: Option<String>,
}

impl Tokens {
    fn from(r: &Response) -> Tokens {
        assert_eq!(r.status, 200, "token response: {}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
        let json = r.json();
        assert_eq!(json["token_type"], "Bearer", "{json}");
        let s = |k: &str| json[k].as_str().map(str::to_string);
        Tokens {
            access: s("access_token").expect("access_token"),
            refresh: s("refresh_token"),
            id: s("id_token"),
            json,
        }
    }

    fn refresh(&self) -> &str {
        self.refresh.as_deref().expect("a refresh_token")
    }

    fn id(&self) -> &str {
        self.id.as_deref().expect("an id_token")
    }
}

/// A PKCE verifier and its S256 challenge.
struct Pkce {
    verifier: String,
    challenge: String,
}

impl Pkce {
    fn new() -> Pkce {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).unwrap();
        let verifier = b64(&bytes);
        let challenge = b64(digest(&SHA256, verifier.as_bytes()).as_ref());
        Pkce {
            verifier,
            challenge,
        }
    }
}

/// An authorization request under construction.
#[derive(Clone, Debug)]
struct Authz {
    params: Vec<(String, String)>,
}

impl Authz {
    /// client_id, redirect_uri, response_type=code, all default scopes, [`STATE`], and an S256
    /// challenge.
    fn new(rp: &Rp, pkce: &Pkce) -> Authz {
        Authz {
            params: [
                ("client_id", rp.id.as_str()),
                ("redirect_uri", rp.redirect_uri.as_str()),
                ("response_type", "code"),
                ("scope", ALL_SCOPES),
                ("state", STATE),
                ("code_challenge", pkce.challenge.as_str()),
                ("code_challenge_method", "S256"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    /// Replaces (or adds) a parameter.
    fn set(self, k: &str, v: &str) -> Authz {
        self.without(k).also(k, v)
    }

    /// Drops a parameter.
    fn without(mut self, k: &str) -> Authz {
        self.params.retain(|(n, _)| n != k);
        self
    }

    /// Appends a parameter (a repeat if it is already there).
    fn also(mut self, k: &str, v: &str) -> Authz {
        self.params.push((k.to_string(), v.to_string()));
        self
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    fn query(&self) -> String {
        let pairs: Vec<(&str, &str)> = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        encode_form(&pairs)
    }

    fn url(&self) -> String {
        format!("/authorize?{}", self.query())
    }
}

/// RFC 6749 §4.1.2.1: `error_description` is limited to %x20-21 / %x23-5B / %x5D-7E.
fn valid_description(d: &str) -> bool {
    d.bytes()
        .all(|b| b == 0x20 || b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Checks a successful authorization response sent to `redirect_uri` by query: exactly `code`,
/// `state` (byte-exact) and `iss`. Returns the code.
fn code_from(server: &Server, callback: &str, redirect_uri: &str, state: Option<&str>) -> String {
    let (base, _) = callback
        .split_once('?')
        .unwrap_or_else(|| panic!("no query in {callback}"));
    assert_eq!(base, redirect_uri, "callback {callback}");
    let mut names: Vec<String> = query_pairs(callback).into_iter().map(|(k, _)| k).collect();
    names.sort();
    let mut want = vec!["code", "iss"];
    if state.is_some() {
        want.push("state");
    }
    assert_eq!(names, want, "callback {callback}");
    assert_eq!(query_param(callback, "state").as_deref(), state);
    assert_eq!(
        query_param(callback, "iss").as_deref(),
        Some(server.issuer().as_str())
    );
    let code = query_param(callback, "code").unwrap();
    // ≥ 256 bits of randomness, base64url.
    assert!(code.len() >= 43, "short code {code}");
    code
}

/// Checks an error problem found in a redirect: the target, `error`, a valid
/// `error_description`, `state` (or none), `iss`, and no `code`.
fn check_error_redirect(
    server: &Server,
    r: &Response,
    redirect_uri: &str,
    error: &str,
    state: Option<&str>,
) -> Result<(), String> {
    if r.status != 303 {
        return Err(format!("status {} (want 303): {}", r.status, r.text()));
    }
    let Some(loc) = r.header("location") else {
        return Err("no Location".into());
    };
    let Some((base, _)) = loc.split_once('?') else {
        return Err(format!("no query in {loc}"));
    };
    let mut problems = Vec::new();
    if base != redirect_uri {
        problems.push(format!("sent to {base}"));
    }
    if query_param(loc, "error").as_deref() != Some(error) {
        problems.push(format!(
            "error {:?} (want {error})",
            query_param(loc, "error")
        ));
    }
    match query_param(loc, "error_description") {
        Some(d) if valid_description(&d) => {}
        other => problems.push(format!("error_description {other:?}")),
    }
    if query_param(loc, "state").as_deref() != state {
        problems.push(format!(
            "state {:?} (want {state:?})",
            query_param(loc, "state")
        ));
    }
    if query_param(loc, "iss") != Some(server.issuer()) {
        problems.push(format!("iss {:?}", query_param(loc, "iss")));
    }
    if query_param(loc, "code").is_some() {
        problems.push("a code was issued".into());
    }
    if r.header("cache-control") != Some("no-store") {
        problems.push(format!("cache-control {:?}", r.header("cache-control")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} -> {}", problems.join("; "), loc))
    }
}

fn assert_error_redirect(
    server: &Server,
    r: &Response,
    redirect_uri: &str,
    error: &str,
    state: Option<&str>,
) {
    if let Err(e) = check_error_redirect(server, r, redirect_uri, error, state) {
        panic!("{e}");
    }
}

/// The security headers every HTML page carries, and no third-party resources.
fn check_page(r: &Response) -> Result<(), String> {
    let mut problems = Vec::new();
    match r.header("content-security-policy") {
        Some(csp) if csp.contains("frame-ancestors 'none'") => {}
        other => problems.push(format!("CSP {other:?}")),
    }
    for (name, want) in [
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        if r.header(name) != Some(want) {
            problems.push(format!("{name}: {:?} (want {want})", r.header(name)));
        }
    }
    if !r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html"))
    {
        problems.push(format!("content-type {:?}", r.header("content-type")));
    }
    let html = r.text();
    for third_party in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        if html.contains(third_party) {
            problems.push(format!("third-party resource ({third_party})"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {:?}", problems.join("; "), r.headers))
    }
}

fn assert_page(r: &Response) {
    if let Err(e) = check_page(r) {
        panic!("{e}");
    }
}

/// An HTML error page: this status, the security headers, and no redirect.
fn check_error_page(r: &Response, status: u16) -> Result<(), String> {
    if r.status != status {
        return Err(format!("status {} (want {status}): {}", r.status, r.text()));
    }
    if let Some(loc) = r.header("location") {
        return Err(format!("redirected to {loc}"));
    }
    check_page(r)
}

fn assert_error_page(r: &Response, status: u16) {
    if let Err(e) = check_error_page(r, status) {
        panic!("{e}");
    }
}

/// The `Set-Cookie` line that sets cookie `name`.
fn set_cookie<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers_named("set-cookie")
        .into_iter()
        .find(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
}

/// A `Set-Cookie` line's value and its attributes (lower-cased, trimmed).
fn cookie_parts(line: &str) -> (String, Vec<String>) {
    let mut parts = line.split(';');
    let value = parts
        .next()
        .and_then(|nv| nv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    (
        value,
        parts.map(|a| a.trim().to_ascii_lowercase()).collect(),
    )
}

/// Verifies an ID token with `jsonwebtoken` and the published JWKS: `alg`, `typ: JWT`, a `kid`
/// of the JWKS, `iss`, `aud` = the client, `exp`; returns the claims.
fn verify_id_token(server: &Server, token: &str, client_id: &str, alg: Algorithm) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg, "ID token alg");
    assert_eq!(header.typ.as_deref(), Some("JWT"), "ID token typ");
    let kid = header.kid.expect("ID token kid");
    let set = jwks(server);
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(alg);
    v.set_issuer(&[server.issuer()]);
    v.set_audience(&[client_id]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    v.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("ID token does not verify: {e}: {token}"))
        .claims
}

/// The `kty` of the published JWK with this kid.
fn jwk_kty(server: &Server, token: &str) -> String {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let raw = server.get("/jwks.json").json();
    let key = raw["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not published"))
        .clone();
    key["kty"].as_str().unwrap().to_string()
}

/// OIDC Core §3.1.3.6: base64url of the left half of SHA-256 of the access token.
fn at_hash(access_token: &str) -> String {
    let d = digest(&SHA256, access_token.as_bytes());
    b64(&d.as_ref()[..16])
}

/// `GET /userinfo` with a Bearer token.
fn userinfo(server: &Server, token: &str) -> Response {
    server.raw(
        format!(
            "GET /userinfo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        )
        .as_bytes(),
    )
}

/// Waits (up to 2 s) for UserInfo to refuse `token`, then asserts the exact challenge: a
/// revocation the CLI commits reaches a running server's in-memory list within a second.
fn assert_revoked_soon(server: &Server, token: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while userinfo(server, token).status == 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_invalid_token(&userinfo(server, token));
}

/// Asserts a 401 `invalid_token` Bearer challenge.
fn assert_invalid_token(r: &Response) {
    assert_eq!(r.status, 401, "{}", r.text());
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "WWW-Authenticate: {challenge:?}"
    );
}

/// A resource server (confidential client_credentials client) for introspection.
fn resource_server(server: &Server) -> TestClient {
    server.client("resource-server", "")
}

/// GETs an authorization URL with a signed-in browser (approving consent if asked) and
/// returns the code of the callback.
fn code_via(server: &Server, b: &mut Browser, authz: &Authz) -> String {
    let callback = b.finish_authorize(&authz.url());
    code_from(
        server,
        &callback,
        authz.get("redirect_uri").unwrap(),
        authz.get("state"),
    )
}

/// Signs in (from a fresh login) and returns the code of the callback.
fn login_code(server: &Server, b: &mut Browser, user: &str, authz: &Authz) -> String {
    let callback = b.login(user, PASSWORD, &authz.url());
    code_from(
        server,
        &callback,
        authz.get("redirect_uri").unwrap(),
        authz.get("state"),
    )
}

/// Wall-clock seconds as a float.
fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// SHA-256 of a string.
fn sha256(s: &str) -> Vec<u8> {
    digest(&SHA256, s.as_bytes()).as_ref().to_vec()
}

/// Takes the login page of a `/login?…` URL and returns its (csrf, return_to).
fn login_form(b: &mut Browser, to_login: &str) -> (String, String) {
    let page = b.get(to_login);
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    (
        hidden_input(&html, "csrf").unwrap(),
        hidden_input(&html, "return_to").unwrap(),
    )
}

/// Posts the login form.
fn post_login(b: &mut Browser, csrf: &str, return_to: &str, user: &str, pw: &str) -> Response {
    b.post(
        "/login",
        &[
            ("csrf", csrf),
            ("return_to", return_to),
            ("username", user),
            ("password", pw),
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// The full flow
// ---------------------------------------------------------------------------------------------

#[test]
fn full_flow_confidential_client_with_pkce_nonce_and_state() {
    let server = Server::start();
    let sub = add_user(
        &server.data_dir,
        "alice",
        &[
            "--email",
            "alice@example.org",
            "--name",
            "Alice Liddell",
            "--group",
            "staff",
            "--group",
            "admins",
        ],
    );
    let rp = add_rp(&server, "Photo Gallery", &[]);
    assert!(rp.secret.is_some());
    let pkce = Pkce::new();
    let nonce = "n-0S6_WzA2Mj";
    let authz = Authz::new(&rp, &pkce).set("nonce", nonce);
    let mut b = Browser::new(&server);

    // Not signed in: 303 to the login page, which carries the whole request.
    let r = b.get(&authz.url());
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let to_login = location(&r);
    assert!(to_login.starts_with("/login?return_to="), "{to_login}");
    let return_to = query_param(&to_login, "return_to").unwrap();
    assert!(return_to.starts_with("/authorize?"), "{return_to}");
    let mut carried = query_pairs(&return_to);
    carried.sort();
    let mut sent = authz.params.clone();
    sent.sort();
    assert_eq!(
        carried, sent,
        "the login page carries the request unchanged"
    );

    // The login page: labels, autocomplete for password managers, a CSRF cookie and token.
    let page = b.get(&to_login);
    assert_eq!(page.status, 200, "{}", page.text());
    assert_page(&page);
    let html = page.text();
    for needle in [
        "<form method=\"post\" action=\"/login\"",
        "<label for=\"username\">",
        "<label for=\"password\">",
        "id=\"username\" name=\"username\"",
        "id=\"password\" name=\"password\" type=\"password\"",
        "autocomplete=\"username webauthn\"",
        "autocomplete=\"current-password\"",
        "<meta name=\"viewport\"",
        "href=\"/assets/latchkey.css\"",
    ] {
        assert!(html.contains(needle), "login page lacks {needle}: {html}");
    }
    let (csrf_value, attrs) =
        cookie_parts(set_cookie(&page, "latchkey-csrf").expect("CSRF cookie"));
    assert_eq!(csrf_value.len(), 43);
    for a in ["path=/", "httponly", "samesite=lax"] {
        assert!(
            attrs.contains(&a.to_string()),
            "CSRF cookie lacks {a}: {attrs:?}"
        );
    }
    assert_eq!(
        hidden_input(&html, "return_to").as_deref(),
        Some(return_to.as_str())
    );
    let csrf = hidden_input(&html, "csrf").unwrap();
    let css = server.get("/assets/latchkey.css");
    assert_eq!(css.status, 200);
    assert!(
        css.header("content-type")
            .is_some_and(|c| c.starts_with("text/css"))
    );

    // Signing in: 303 back to /authorize with a fresh session cookie.
    let before_login = now();
    let r = post_login(&mut b, &csrf, &return_to, "alice", PASSWORD);
    let after_login = now();
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), return_to);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let line = set_cookie(&r, "latchkey-session").expect("a session cookie");
    let (session_id, attrs) = cookie_parts(line);
    assert_eq!(session_id.len(), 43, "{line}");
    for a in ["path=/", "httponly", "samesite=lax", "max-age=43200"] {
        assert!(
            attrs.contains(&a.to_string()),
            "session cookie lacks {a}: {line}"
        );
    }
    assert!(
        !attrs
            .iter()
            .any(|a| a == "secure" || a.starts_with("domain")),
        "{line}"
    );
    assert_eq!(b.cookie("latchkey-session"), Some(session_id.as_str()));

    // The consent page names the client and the scopes in plain words.
    let consent = b.get(&return_to);
    assert_eq!(consent.status, 200, "{}", consent.text());
    assert_page(&consent);
    let html = consent.text();
    for needle in [
        "Photo Gallery",
        "Sign you in with your latchkey account",
        "See your name and username",
        "See your email address",
        "See which groups you belong to",
        "alice",
        "app.example",
        "action=\"/consent\"",
        "name=\"decision\" value=\"approve\"",
        "name=\"decision\" value=\"deny\"",
    ] {
        assert!(html.contains(needle), "consent page lacks {needle}: {html}");
    }

    // Approving: 303 to the redirect URI with the code, the exact state and iss.
    let r = b.decide(&consent, "approve");
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    let callback = location(&r);
    let code = code_from(&server, &callback, CB, Some(STATE));

    // The code exchange (client_secret_basic + verifier).
    let t = rp.tokens(&server, &code, &pkce);
    assert_eq!(t.json["scope"], ALL_SCOPES);
    assert_eq!(t.json["expires_in"], 600);
    let at = verify(&server, &t.access).claims;
    assert_eq!(at["sub"], sub.as_str());
    assert_eq!(at["client_id"], rp.id.as_str());
    assert_eq!(at["scope"], ALL_SCOPES);
    let auth_time = at["auth_time"]
        .as_i64()
        .expect("auth_time in the access token");
    assert!(
        (before_login..=after_login).contains(&auth_time),
        "{auth_time} not in {before_login}..={after_login}"
    );

    // The ID token: RS256 by default, every claim.
    let id = verify_id_token(&server, t.id(), &rp.id, Algorithm::RS256);
    assert_eq!(jwk_kty(&server, t.id()), "RSA");
    assert_eq!(id["iss"], server.issuer());
    assert_eq!(id["sub"], sub.as_str());
    assert_eq!(id["aud"], rp.id.as_str());
    assert_eq!(id["azp"], rp.id.as_str());
    assert_eq!(id["nonce"], nonce);
    assert_eq!(id["auth_time"], auth_time);
    assert_eq!(id["at_hash"], at_hash(&t.access));
    let iat = id["iat"].as_i64().unwrap();
    assert!((now() - iat).abs() <= 5, "iat {iat}");
    assert!(id["exp"].as_i64().unwrap() > iat);
    assert_eq!(id["preferred_username"], "alice");
    assert_eq!(id["name"], "Alice Liddell");
    assert_eq!(id["email"], "alice@example.org");
    assert_eq!(id["email_verified"], true);
    let mut groups: Vec<&str> = id["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    groups.sort_unstable();
    assert_eq!(groups, ["admins", "staff"]);

    // UserInfo: the same claims.
    let r = userinfo(&server, &t.access);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let info = r.json();
    let mut keys: Vec<&String> = info.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "email",
            "email_verified",
            "groups",
            "name",
            "preferred_username",
            "sub"
        ]
    );
    for (k, v) in info.as_object().unwrap() {
        assert_eq!(&id[k], v, "userinfo {k}");
    }

    // Refresh: a new refresh token and a new access token.
    let r2 = Tokens::from(&rp.refresh(&server, t.refresh(), None));
    assert_ne!(r2.refresh(), t.refresh());
    assert_ne!(r2.access, t.access);
    assert_eq!(r2.json["scope"], ALL_SCOPES);
    let at2 = verify(&server, &r2.access).claims;
    assert_eq!(at2["sub"], sub.as_str());
    assert_ne!(at2["jti"], at["jti"]);
    if let Some(id2) = &r2.id {
        let id2 = verify_id_token(&server, id2, &rp.id, Algorithm::RS256);
        assert_eq!(id2["sub"], sub.as_str());
        assert_eq!(id2["auth_time"], auth_time);
        assert_eq!(id2["at_hash"], at_hash(&r2.access));
    }
    assert_eq!(userinfo(&server, &r2.access).json(), info);

    // The home page knows who is signed in.
    let home = b.get("/");
    assert_eq!(home.status, 200);
    assert_page(&home);
    assert!(home.text().contains("You are signed in as alice."));
}

#[test]
fn https_issuer_uses_host_prefixed_secure_cookies() {
    let server = Server::start_with(&["--issuer", "https://login.example"], |_| {});
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce);
    let mut b = Browser::new(&server);
    let to_login = location(&b.get(&authz.url()));
    let page = b.get(&to_login);
    let line = set_cookie(&page, "__Host-latchkey-csrf").expect("__Host- CSRF cookie");
    let (_, attrs) = cookie_parts(line);
    assert!(attrs.contains(&"secure".to_string()), "{line}");
    assert!(attrs.contains(&"path=/".to_string()), "{line}");
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{line}");
    assert!(set_cookie(&page, "latchkey-csrf").is_none());

    let html = page.text();
    let csrf = hidden_input(&html, "csrf").unwrap();
    let return_to = hidden_input(&html, "return_to").unwrap();
    let r = post_login(&mut b, &csrf, &return_to, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let line = set_cookie(&r, "__Host-latchkey").expect("__Host-latchkey session cookie");
    let (id, attrs) = cookie_parts(line);
    for a in ["secure", "httponly", "samesite=lax", "path=/"] {
        assert!(
            attrs.contains(&a.to_string()),
            "session cookie lacks {a}: {line}"
        );
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{line}");
    assert!(set_cookie(&r, "latchkey-session").is_none());

    let callback = b.finish_authorize(&location(&r));
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some("https://login.example")
    );

    // The unprefixed name is not a session under an https issuer.
    let mut other = Browser::new(&server);
    other.set_cookie("latchkey-session", &id);
    let r = other.get(&Authz::new(&rp, &Pkce::new()).url());
    assert_eq!(r.status, 303);
    assert!(location(&r).starts_with("/login?"), "{}", location(&r));
}

// ---------------------------------------------------------------------------------------------
// Client kinds, response modes, consent
// ---------------------------------------------------------------------------------------------

#[test]
fn public_client_with_es256_id_tokens() {
    let server = Server::start();
    let sub = add_user(&server.data_dir, "alice", &["--email", "alice@example.org"]);
    let rp = add_rp(
        &server,
        "Phone App",
        &["--public", "--id-token-alg", "ES256"],
    );
    assert!(rp.secret.is_none(), "a public client has no secret");
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("nonce", "n1");
    let mut b = Browser::new(&server);
    let code = login_code(&server, &mut b, "alice", &authz);

    // A public client must prove possession with the verifier.
    rp.exchange(&server, &code, None)
        .assert_oauth_error(400, "invalid_grant");
    // client_id only, no secret, plus the verifier.
    let t = rp.tokens(&server, &code, &pkce);
    let id = verify_id_token(&server, t.id(), &rp.id, Algorithm::ES256);
    assert_eq!(jwk_kty(&server, t.id()), "EC");
    assert_eq!(id["sub"], sub.as_str());
    assert_eq!(id["nonce"], "n1");
    assert_eq!(id["email"], "alice@example.org");
    assert_eq!(id["at_hash"], at_hash(&t.access));
    // Access tokens stay ES256 at+jwt.
    assert_eq!(verify(&server, &t.access).claims["sub"], sub.as_str());
    // A public client refreshes with client_id only.
    let t2 = Tokens::from(&rp.refresh(&server, t.refresh(), None));
    assert_ne!(t2.refresh(), t.refresh());

    // A public client may not skip PKCE.
    let r = server.get(
        &Authz::new(&rp, &pkce)
            .without("code_challenge")
            .without("code_challenge_method")
            .url(),
    );
    assert_error_redirect(&server, &r, CB, "invalid_request", Some(STATE));
}

#[test]
fn form_post_response_mode() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &[]);
    let mut b = Browser::new(&server);
    login_code(&server, &mut b, "alice", &Authz::new(&rp, &Pkce::new()));

    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("response_mode", "form_post");
    let r = b.get(&authz.url());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("location").is_none());
    assert_page(&r);
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let html = r.text();
    assert!(
        html.contains(&format!("<form method=\"post\" action=\"{CB}\"")),
        "{html}"
    );
    let fields: Vec<(String, String)> = inputs(&html)
        .into_iter()
        .filter(|(_, t, _)| t == "hidden")
        .map(|(n, _, v)| (n, v))
        .collect();
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["code", "state", "iss"], "{html}");
    assert_eq!(hidden_input(&html, "state").as_deref(), Some(STATE));
    assert_eq!(hidden_input(&html, "iss"), Some(server.issuer()));
    let code = hidden_input(&html, "code").unwrap();
    rp.tokens(&server, &code, &pkce);

    // Errors travel the same way.
    let mut fresh = Browser::new(&server);
    let r = fresh.get(&authz.clone().set("prompt", "none").url());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_page(&r);
    let html = r.text();
    assert_eq!(
        hidden_input(&html, "error").as_deref(),
        Some("login_required")
    );
    assert_eq!(hidden_input(&html, "state").as_deref(), Some(STATE));
    assert_eq!(hidden_input(&html, "iss"), Some(server.issuer()));
    assert_eq!(hidden_input(&html, "code"), None);
}

#[test]
fn consent_is_remembered_per_scope_set_and_prompt_consent_asks_again() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &[]);
    let mut b = Browser::new(&server);
    let authz = |scope: &str| Authz::new(&rp, &Pkce::new()).set("scope", scope);

    // First time: login, then the consent page.
    let r = b.get(&authz("openid profile").url());
    let to_login = location(&r);
    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 303);
    let consent = b.get(&location(&r));
    assert_eq!(consent.status, 200, "{}", consent.text());
    let html = consent.text();
    assert!(html.contains("See your name and username"));
    assert!(!html.contains("See your email address"));
    let r = b.decide(&consent, "approve");
    code_from(&server, &location(&r), CB, Some(STATE));

    // Remembered: the same request, and a subset, go straight back.
    for scope in ["openid profile", "openid", "profile openid"] {
        let r = b.get(&authz(scope).url());
        assert_eq!(r.status, 303, "{scope}: {}", r.text());
        code_from(&server, &location(&r), CB, Some(STATE));
    }

    // A wider set asks again; denying sends access_denied and is not remembered.
    let wider = authz("openid profile email");
    let page = b.get(&wider.url());
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("See your email address"));
    let r = b.decide(&page, "deny");
    assert_error_redirect(&server, &r, CB, "access_denied", Some(STATE));
    assert_eq!(
        b.get(&wider.url()).status,
        200,
        "a denial is not remembered"
    );

    // prompt=consent shows the page even for an approved set.
    let again = authz("openid profile").set("prompt", "consent");
    let page = b.get(&again.url());
    assert_eq!(page.status, 200, "{}", page.text());
    assert_page(&page);
    let r = b.decide(&page, "approve");
    assert_eq!(r.status, 303);
    code_from(&server, &location(&r), CB, Some(STATE));
}

#[test]
fn skip_consent_client_never_shows_the_consent_page() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "First Party", &["--skip-consent"]);
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce);
    let r = b.get(&authz.url());
    let r = b.submit_login(&location(&r), "alice", PASSWORD);
    assert_eq!(r.status, 303);
    let r = b.get(&location(&r));
    assert_eq!(r.status, 303, "no consent page: {}", r.text());
    let code = code_from(&server, &location(&r), CB, Some(STATE));
    rp.tokens(&server, &code, &pkce);

    let r = b.get(&authz.clone().set("prompt", "consent").url());
    assert_eq!(r.status, 303, "not even with prompt=consent: {}", r.text());
    code_from(&server, &location(&r), CB, Some(STATE));

    // Another client of the same user still asks.
    let other = add_rp(&server, "Third Party", &[]);
    let r = b.get(&Authz::new(&other, &Pkce::new()).url());
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Third Party"));
}

// ---------------------------------------------------------------------------------------------
// prompt and max_age
// ---------------------------------------------------------------------------------------------

#[test]
fn prompt_none_needs_a_session_and_consent() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &[]);
    let other = add_rp(&server, "Other", &[]);
    let mut b = Browser::new(&server);

    let none = |rp: &Rp| Authz::new(rp, &Pkce::new()).set("prompt", "none");
    let r = b.get(&none(&rp).url());
    assert_error_redirect(&server, &r, CB, "login_required", Some(STATE));

    login_code(&server, &mut b, "alice", &Authz::new(&rp, &Pkce::new()));
    let r = b.get(&none(&rp).url());
    assert_eq!(r.status, 303, "{}", r.text());
    code_from(&server, &location(&r), CB, Some(STATE));

    let r = b.get(&none(&other).url());
    assert_error_redirect(&server, &r, CB, "consent_required", Some(STATE));
}

#[test]
fn prompt_login_and_max_age_force_a_new_login() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let mut b = Browser::new(&server);
    let auth_time = |code: &str, pkce: &Pkce| -> i64 {
        let t = rp.tokens(&server, code, pkce);
        verify_id_token(&server, t.id(), &rp.id, Algorithm::RS256)["auth_time"]
            .as_i64()
            .unwrap()
    };

    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let first = auth_time(&code, &pkce);

    // A generous max_age needs no login; auth_time is the original one.
    let pkce = Pkce::new();
    let code = code_via(
        &server,
        &mut b,
        &Authz::new(&rp, &pkce).set("max_age", "3600"),
    );
    assert_eq!(auth_time(&code, &pkce), first);

    std::thread::sleep(Duration::from_secs(2));

    // The session is now older than max_age=1: prompt=none cannot help…
    let r = b.get(
        &Authz::new(&rp, &Pkce::new())
            .set("max_age", "1")
            .set("prompt", "none")
            .url(),
    );
    assert_error_redirect(&server, &r, CB, "login_required", Some(STATE));
    // …and a plain request goes to the login page, then on to a code (no loop).
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("max_age", "1");
    let r = b.get(&authz.url());
    assert_eq!(r.status, 303);
    let to_login = location(&r);
    assert!(to_login.starts_with("/login?"), "{to_login}");
    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let r = b.get(&location(&r));
    assert_eq!(r.status, 303, "{}", r.text());
    let code = code_from(&server, &location(&r), CB, Some(STATE));
    let second = auth_time(&code, &pkce);
    assert!(second > first, "auth_time {second} after {first}");

    // prompt=login forces the login page despite the session; after it, a code.
    let old_session = b.cookie("latchkey-session").unwrap().to_string();
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("prompt", "login");
    let r = b.get(&authz.url());
    assert_eq!(r.status, 303);
    let to_login = location(&r);
    assert!(to_login.starts_with("/login?"), "{to_login}");
    let return_to = query_param(&to_login, "return_to").unwrap();
    assert_eq!(
        query_param(&return_to, "prompt"),
        None,
        "prompt=login is dropped once honoured: {return_to}"
    );
    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_ne!(
        b.cookie("latchkey-session").unwrap(),
        old_session,
        "a new session id at login"
    );
    let r = b.get(&location(&r));
    assert_eq!(r.status, 303, "{}", r.text());
    let code = code_from(&server, &location(&r), CB, Some(STATE));
    assert!(auth_time(&code, &pkce) >= second);

    // The old session id is gone.
    let mut stale = Browser::new(&server);
    stale.set_cookie("latchkey-session", &old_session);
    let r = stale.get(&Authz::new(&rp, &Pkce::new()).url());
    assert!(location(&r).starts_with("/login?"));
}

/// OIDC Core §3.1.2.1 (errata set 2): "max_age=0 is equivalent to prompt=login". A session
/// authenticated earlier in the same second must not satisfy it.
#[test]
fn max_age_zero_always_forces_a_new_login() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let mut b = Browser::new(&server);
    login_code(&server, &mut b, "alice", &Authz::new(&rp, &Pkce::new()));

    // Make the session's authentication "just now": same second as the next request. Waiting
    // for the start of a second leaves (almost) a whole second for the request.
    let frac = wall().fract();
    if frac > 0.5 {
        std::thread::sleep(Duration::from_secs_f64(1.0 - frac + 0.01));
    }
    let second = now();
    let session = b.cookie("latchkey-session").unwrap().to_string();
    let n = db(&server.data_dir)
        .execute(
            "UPDATE sessions SET auth_time = ?1 WHERE hash = ?2",
            rusqlite::params![second, sha256(&session)],
        )
        .unwrap();
    assert_eq!(n, 1);

    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("max_age", "0");
    let r = b.get(&authz.url());
    assert_eq!(r.status, 303);
    let to = location(&r);
    assert!(
        to.starts_with("/login?"),
        "max_age=0 with a session authenticated at {second} (request at {}) was not sent to login: {to}",
        now()
    );
    // …and after that login, a code (no login loop).
    let r = b.submit_login(&to, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let r = b.get(&location(&r));
    assert_eq!(r.status, 303, "{}", r.text());
    let code = code_from(&server, &location(&r), CB, Some(STATE));
    let t = rp.tokens(&server, &code, &pkce);
    let id = verify_id_token(&server, t.id(), &rp.id, Algorithm::RS256);
    assert!(id["auth_time"].as_i64().unwrap() >= second);
}

// ---------------------------------------------------------------------------------------------
// Bad authorization requests
// ---------------------------------------------------------------------------------------------

#[test]
fn authorization_errors_before_the_redirect_uri_is_trusted_are_pages() {
    let server = Server::start();
    let rp = add_rp(&server, "App", &[]);
    let two = add_rp_with(
        &server,
        "Two URIs",
        CB,
        &["authorization_code"],
        &["--redirect-uri", "https://app.example/cb2"],
    );
    let pkce = Pkce::new();
    let base = Authz::new(&rp, &pkce);
    let other = add_rp(&server, "Other", &[]);

    let mut cases: Vec<(String, String)> = vec![
        (
            "unknown client".into(),
            base.clone().set("client_id", "no-such-client").url(),
        ),
        (
            "missing client_id".into(),
            base.clone().without("client_id").url(),
        ),
        (
            "client_id twice".into(),
            base.clone().also("client_id", &rp.id).url(),
        ),
        (
            "two different client_ids".into(),
            base.clone().also("client_id", &other.id).url(),
        ),
        (
            "redirect_uri twice".into(),
            base.clone().also("redirect_uri", CB).url(),
        ),
        (
            "missing redirect_uri with openid".into(),
            base.clone().without("redirect_uri").url(),
        ),
        (
            "missing redirect_uri, two registered".into(),
            Authz::new(&two, &pkce)
                .without("redirect_uri")
                .set("scope", "profile")
                .url(),
        ),
        (
            "another client's redirect_uri".into(),
            base.clone()
                .set("client_id", &two.id)
                .set("redirect_uri", "https://app.example/cb3")
                .url(),
        ),
        ("malformed query".into(), format!("{}&x=%zz", base.url())),
    ];
    for bad in [
        "https://evil.example/cb",
        "https://app.example/cb/",
        "https://app.example/cbx",
        "https://app.example/cb?x=1",
        "https://app.example/cb#f",
        "https://app.example/cb%20",
        "https://app.example/c",
        "https://APP.example/cb",
        "http://app.example/cb",
        "https://app.example:443/cb",
        "https://app.example.evil.example/cb",
        "",
    ] {
        cases.push((
            format!("redirect_uri {bad:?}"),
            base.clone().set("redirect_uri", bad).url(),
        ));
    }

    let mut failures = Vec::new();
    for (label, url) in &cases {
        let r = server.get(url);
        if let Err(e) = check_error_page(&r, 400) {
            failures.push(format!("{label}: {e}"));
        } else if r.text().contains("evil.example") {
            failures.push(format!("{label}: the page links the unregistered URI"));
        }
    }
    // POST /authorize: the same rules.
    let r = server.post_form(
        "/authorize",
        &base
            .clone()
            .set("redirect_uri", "https://evil.example/cb")
            .query(),
        "",
    );
    if let Err(e) = check_error_page(&r, 400) {
        failures.push(format!("POST with an unregistered redirect_uri: {e}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len() + 1,
        failures.join("\n")
    );
}

#[test]
fn authorization_errors_after_the_redirect_uri_is_trusted_are_redirected() {
    let server = Server::start();
    let rp = add_rp(&server, "App", &[]);
    let public = add_rp(&server, "Public", &["--public"]);
    let pkce = Pkce::new();
    let base = Authz::new(&rp, &pkce);
    let s = Some(STATE);
    let cases: Vec<(&str, Authz, &str, Option<&str>)> = vec![
        (
            "response_type=token",
            base.clone().set("response_type", "token"),
            "unsupported_response_type",
            s,
        ),
        (
            "response_type=code id_token",
            base.clone().set("response_type", "code id_token"),
            "unsupported_response_type",
            s,
        ),
        (
            "response_type missing",
            base.clone().without("response_type"),
            "invalid_request",
            s,
        ),
        (
            "response_type twice",
            base.clone().also("response_type", "code"),
            "invalid_request",
            s,
        ),
        (
            "state twice",
            base.clone().also("state", STATE),
            "invalid_request",
            None,
        ),
        (
            "scope twice",
            base.clone().also("scope", "openid"),
            "invalid_request",
            s,
        ),
        (
            "nonce twice",
            base.clone().set("nonce", "a").also("nonce", "b"),
            "invalid_request",
            s,
        ),
        (
            "code_challenge twice",
            base.clone().also("code_challenge", &pkce.challenge),
            "invalid_request",
            s,
        ),
        (
            "prompt twice",
            base.clone().set("prompt", "login").also("prompt", "login"),
            "invalid_request",
            s,
        ),
        (
            "PKCE missing (confidential)",
            base.clone()
                .without("code_challenge")
                .without("code_challenge_method"),
            "invalid_request",
            s,
        ),
        (
            "PKCE missing (public)",
            Authz::new(&public, &pkce)
                .without("code_challenge")
                .without("code_challenge_method"),
            "invalid_request",
            s,
        ),
        (
            "PKCE plain",
            base.clone().set("code_challenge_method", "plain"),
            "invalid_request",
            s,
        ),
        (
            "PKCE plain with a verifier as challenge",
            base.clone()
                .set("code_challenge", &pkce.verifier)
                .set("code_challenge_method", "plain"),
            "invalid_request",
            s,
        ),
        (
            "code_challenge_method missing",
            base.clone().without("code_challenge_method"),
            "invalid_request",
            s,
        ),
        (
            "code_challenge missing",
            base.clone().without("code_challenge"),
            "invalid_request",
            s,
        ),
        (
            "malformed challenge",
            base.clone().set("code_challenge", "short"),
            "invalid_request",
            s,
        ),
        (
            "scope beyond the client's",
            base.clone().set("scope", "openid admin"),
            "invalid_scope",
            s,
        ),
        (
            "request object",
            base.clone().also("request", "eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
            s,
        ),
        (
            "request_uri",
            base.clone().also("request_uri", "https://app.example/r"),
            "request_uri_not_supported",
            s,
        ),
        (
            "unknown prompt",
            base.clone().set("prompt", "bogus"),
            "invalid_request",
            s,
        ),
        (
            "prompt=none login",
            base.clone().set("prompt", "none login"),
            "invalid_request",
            s,
        ),
        (
            "negative max_age",
            base.clone().set("max_age", "-1"),
            "invalid_request",
            s,
        ),
        (
            "max_age not a number",
            base.clone().set("max_age", "soon"),
            "invalid_request",
            s,
        ),
        (
            "response_mode=fragment",
            base.clone().set("response_mode", "fragment"),
            "invalid_request",
            s,
        ),
        (
            "prompt=none without a session",
            base.clone().set("prompt", "none"),
            "login_required",
            s,
        ),
        (
            "no state, prompt=none",
            base.clone().without("state").set("prompt", "none"),
            "login_required",
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (label, authz, error, state) in &cases {
        let r = server.get(&authz.url());
        if let Err(e) = check_error_redirect(&server, &r, CB, error, *state) {
            failures.push(format!("{label}: {e}"));
        }
    }
    // POST /authorize answers the same way.
    let r = server.post_form(
        "/authorize",
        &base.clone().set("response_type", "token").query(),
        "",
    );
    if let Err(e) = check_error_redirect(&server, &r, CB, "unsupported_response_type", s) {
        failures.push(format!("POST response_type=token: {e}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len() + 1,
        failures.join("\n")
    );
}

#[test]
fn client_without_the_authorization_code_grant_is_unauthorized_client() {
    let server = Server::start();
    let out = server.cli(&[
        "client",
        "add",
        "machine",
        "--grant",
        "client_credentials",
        "--redirect-uri",
        CB,
        "--json",
    ]);
    if !out.status.success() {
        // Refusing the combination at registration is as good.
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        return;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rp = Rp {
        id: v["client_id"].as_str().unwrap().into(),
        secret: None,
        redirect_uri: CB.into(),
    };
    let r = server.get(&Authz::new(&rp, &Pkce::new()).url());
    assert_error_redirect(&server, &r, CB, "unauthorized_client", Some(STATE));
}

#[test]
fn loopback_redirect_uri_may_use_any_port() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let registered = "http://127.0.0.1/cb";
    let rp = add_rp_with(
        &server,
        "CLI tool",
        registered,
        &["authorization_code"],
        &["--public", "--skip-consent"],
    );
    let used = "http://127.0.0.1:54321/cb";
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("redirect_uri", used);
    let mut b = Browser::new(&server);
    let callback = b.login("alice", PASSWORD, &authz.url());
    let code = code_from(&server, &callback, used, Some(STATE));
    // The token request must repeat the URI actually used.
    rp.exchange_at(
        &server,
        &code,
        "http://127.0.0.1:9/cb",
        Some(&pkce.verifier),
    )
    .assert_oauth_error(400, "invalid_grant");
    rp.exchange_at(&server, &code, registered, Some(&pkce.verifier))
        .assert_oauth_error(400, "invalid_grant");
    let r = rp.exchange_at(&server, &code, used, Some(&pkce.verifier));
    Tokens::from(&r);

    // Only the port may vary, and only for IP literals.
    for bad in [
        "http://localhost:54321/cb",
        "http://127.0.0.1:54321/other",
        "http://[::1]:54321/cb",
        "https://127.0.0.1:54321/cb",
        "http://127.0.0.2:54321/cb",
    ] {
        let r = b.get(&Authz::new(&rp, &Pkce::new()).set("redirect_uri", bad).url());
        if let Err(e) = check_error_page(&r, 400) {
            panic!("{bad}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The token endpoint
// ---------------------------------------------------------------------------------------------

#[test]
fn token_endpoint_rejects_bad_codes_and_verifiers() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let other = add_rp(&server, "Other", &["--skip-consent"]);
    let legacy = add_rp(&server, "Legacy", &["--skip-consent", "--no-require-pkce"]);
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));

    let bad = |r: Response, error: &str, label: &str| {
        assert_eq!(r.status, 400, "{label}: {}", r.text());
        r.assert_oauth_error(400, error);
    };
    bad(
        rp.exchange(&server, &code, Some(&Pkce::new().verifier)),
        "invalid_grant",
        "wrong verifier",
    );
    bad(
        rp.exchange(&server, &code, None),
        "invalid_grant",
        "missing verifier",
    );
    bad(
        rp.exchange(&server, &code, Some("too-short")),
        "invalid_grant",
        "malformed verifier",
    );
    bad(
        other.exchange(&server, &code, Some(&pkce.verifier)),
        "invalid_grant",
        "another client",
    );
    bad(
        rp.exchange_at(
            &server,
            &code,
            "https://app.example/other",
            Some(&pkce.verifier),
        ),
        "invalid_grant",
        "another redirect_uri",
    );
    bad(
        rp.token(
            &server,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &pkce.verifier),
            ],
        ),
        "invalid_grant",
        "redirect_uri omitted",
    );
    bad(
        rp.exchange(&server, "not-a-code", Some(&pkce.verifier)),
        "invalid_grant",
        "unknown code",
    );

    // A verifier for a code issued without a challenge is a downgrade attempt.
    let authz = Authz::new(&legacy, &pkce)
        .without("code_challenge")
        .without("code_challenge_method");
    let plain_code = code_via(&server, &mut b, &authz);
    bad(
        legacy.exchange(&server, &plain_code, Some(&pkce.verifier)),
        "invalid_request",
        "verifier without challenge",
    );
    Tokens::from(&legacy.exchange(&server, &plain_code, None));

    // An expired code (60 s lifetime), made so in the database rather than by waiting.
    let pkce = Pkce::new();
    let before = now();
    let code = code_via(&server, &mut b, &Authz::new(&rp, &pkce));
    let after = now();
    let conn = db(&server.data_dir);
    let expires: i64 = conn
        .query_row(
            "SELECT expires_at FROM auth_codes WHERE hash = ?1",
            [sha256(&code)],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        (before + 60..=after + 60).contains(&expires),
        "a code lives 60 s: expires_at {expires}, issued in {before}..={after}"
    );
    let n = conn
        .execute(
            "UPDATE auth_codes SET expires_at = ?1 WHERE hash = ?2",
            rusqlite::params![now() - 1, sha256(&code)],
        )
        .unwrap();
    assert_eq!(n, 1);
    bad(
        rp.exchange(&server, &code, Some(&pkce.verifier)),
        "invalid_grant",
        "expired code",
    );
}

#[test]
fn reused_code_fails_and_revokes_the_tokens_of_its_first_use() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let rs = resource_server(&server);
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));

    let first = rp.tokens(&server, &code, &pkce);
    assert_active(&introspect(&server, &rs, &first.access));
    // A rotation under the same grant: also issued "from" the code.
    let rotated = Tokens::from(&rp.refresh(&server, first.refresh(), None));
    assert_active(&introspect(&server, &rs, &rotated.access));
    assert_eq!(userinfo(&server, &rotated.access).status, 200);

    rp.exchange(&server, &code, Some(&pkce.verifier))
        .assert_oauth_error(400, "invalid_grant");

    for (label, at) in [("first", &first.access), ("rotated", &rotated.access)] {
        let r = introspect(&server, &rs, at);
        if r.json() != serde_json::json!({"active": false}) {
            panic!(
                "{label} access token still active after the code replay: {}",
                r.text()
            );
        }
        assert_invalid_token(&userinfo(&server, at));
    }
    rp.refresh(&server, rotated.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");

    // A replay by someone without the verifier revokes nothing.
    let pkce = Pkce::new();
    let code = code_via(&server, &mut b, &Authz::new(&rp, &pkce));
    let t = rp.tokens(&server, &code, &pkce);
    rp.exchange(&server, &code, Some(&Pkce::new().verifier))
        .assert_oauth_error(400, "invalid_grant");
    assert_active(&introspect(&server, &rs, &t.access));
    Tokens::from(&rp.refresh(&server, t.refresh(), None));
}

#[test]
fn refresh_token_replay_revokes_the_whole_family() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let rs = resource_server(&server);
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));

    let t0 = rp.tokens(&server, &code, &pkce);
    let t1 = Tokens::from(&rp.refresh(&server, t0.refresh(), None));
    let t2 = Tokens::from(&rp.refresh(&server, t1.refresh(), None));
    for t in [&t0, &t1, &t2] {
        assert_active(&introspect(&server, &rs, &t.access));
    }

    // The rotated-out token comes back: refused, and the family dies.
    rp.refresh(&server, t0.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");
    rp.refresh(&server, t2.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");
    for t in [&t0, &t1, &t2] {
        assert_inactive(&introspect(&server, &rs, &t.access));
    }
    assert_invalid_token(&userinfo(&server, &t2.access));

    // Another family of the same user and client is untouched.
    let pkce = Pkce::new();
    let code = code_via(&server, &mut b, &Authz::new(&rp, &pkce));
    let other = rp.tokens(&server, &code, &pkce);
    Tokens::from(&rp.refresh(&server, other.refresh(), None));
}

/// alice signed in to App (consent skipped), and the first tokens of that grant.
fn first_grant(server: &Server) -> (Rp, Tokens) {
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(server, "App", &["--skip-consent"]);
    let mut b = Browser::new(server);
    let pkce = Pkce::new();
    let code = login_code(server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let tokens = rp.tokens(server, &code, &pkce);
    (rp, tokens)
}

#[test]
fn revoking_a_refresh_token_revokes_its_grant_and_access_tokens_at_once() {
    // RFC 7009 §2.1: revoking a refresh token also invalidates the access tokens of its grant.
    let server = Server::start();
    let (rp, t0) = first_grant(&server);
    let rs = resource_server(&server);
    let t1 = Tokens::from(&rp.refresh(&server, t0.refresh(), None));
    for t in [&t0, &t1] {
        assert_active(&introspect(&server, &rs, &t.access));
    }

    let secret = rp.secret.as_deref().unwrap();
    let r = server.post_form(
        "/revoke",
        &encode_form(&[
            ("token", t1.refresh()),
            ("token_type_hint", "refresh_token"),
        ]),
        &basic_header(&rp.id, secret),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // The very next requests see it: no reload is waited for.
    for t in [&t0, &t1] {
        assert_inactive(&introspect(&server, &rs, &t.access));
    }
    assert_invalid_token(&userinfo(&server, &t1.access));
    rp.refresh(&server, t1.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");
}

#[test]
fn refresh_token_names_its_grant_and_a_changed_one_is_refused() {
    // A refresh token is `<grant>.<secret>` (the store keeps a family's tokens together). A
    // token with the grant part changed, with the secret alone, or without a grant is
    // `invalid_grant` and revokes nothing.
    let server = Server::start();
    let (rp, t0) = first_grant(&server);
    let (grant, secret) = t0.refresh().split_once('.').expect("<grant>.<secret>");
    assert_eq!(grant.len(), 32, "{grant}");
    assert!(grant.bytes().all(|c| c.is_ascii_hexdigit()), "{grant}");
    for forged in [
        format!("{}.{secret}", "0".repeat(32)),
        secret.to_string(),
        format!(".{secret}"),
        format!("{grant}."),
        format!("{grant}.{secret}.{secret}"),
    ] {
        rp.refresh(&server, &forged, None)
            .assert_oauth_error(400, "invalid_grant");
    }
    // The genuine token still rotates, and its successor stays in the grant.
    let t1 = Tokens::from(&rp.refresh(&server, t0.refresh(), None));
    assert_eq!(t1.refresh().split_once('.').map(|(g, _)| g), Some(grant));
    Tokens::from(&rp.refresh(&server, t1.refresh(), None));
}

#[test]
fn refresh_scope_may_narrow_but_never_widen() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &["--email", "a@example.org"]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let thief = add_rp(&server, "Thief", &[]);
    let no_refresh = add_rp_with(
        &server,
        "No Refresh",
        CB,
        &["authorization_code"],
        &["--skip-consent"],
    );
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("scope", "openid profile");
    let code = login_code(&server, &mut b, "alice", &authz);
    let t = rp.tokens(&server, &code, &pkce);
    assert_eq!(t.json["scope"], "openid profile");

    rp.refresh(&server, t.refresh(), Some("openid profile email"))
        .assert_oauth_error(400, "invalid_scope");
    thief
        .refresh(&server, t.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");

    let narrow = Tokens::from(&rp.refresh(&server, t.refresh(), Some("openid")));
    assert_eq!(narrow.json["scope"], "openid");
    let claims = verify(&server, &narrow.access).claims;
    assert_eq!(claims["scope"], "openid");
    assert!(
        userinfo(&server, &narrow.access)
            .json()
            .get("preferred_username")
            .is_none()
    );

    // Refresh tokens only for clients allowed the grant.
    let pkce = Pkce::new();
    let code = code_via(&server, &mut b, &Authz::new(&no_refresh, &pkce));
    let t = no_refresh.tokens(&server, &code, &pkce);
    assert!(t.refresh.is_none(), "{}", t.json);
    assert!(t.id.is_some());
}

/// Asserts the RFC 6750 §3.1 answer to a request without credentials: 401, exactly
/// `WWW-Authenticate: Bearer realm="latchkey"`, and no error in the body either.
fn assert_credentials_required(r: &Response) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.headers_named("www-authenticate"),
        [r#"Bearer realm="latchkey""#]
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.json(), serde_json::json!({}), "{}", r.text());
}

#[test]
fn userinfo_without_credentials_names_no_error_and_bad_ones_keep_their_codes() {
    let server = Server::start();
    assert_credentials_required(&server.get("/userinfo"));
    // A form body without access_token is no credential either.
    assert_credentials_required(&server.post_form("/userinfo", "x=1", ""));

    // Malformed: 400 invalid_request, in the header and the body.
    let r = server.raw(
        b"GET /userinfo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
          Authorization: Bearer a b\r\n\r\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.headers_named("www-authenticate"),
        [
            r#"Bearer realm="latchkey", error="invalid_request", error_description="malformed Authorization header""#
        ]
    );
    assert_eq!(r.json()["error"], "invalid_request");
    // Invalid: 401 invalid_token.
    let r = userinfo(&server, "not-a-token");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.headers_named("www-authenticate"),
        [
            r#"Bearer realm="latchkey", error="invalid_token", error_description="the access token is not valid""#
        ]
    );
    assert_eq!(r.json()["error"], "invalid_token");
}

#[test]
fn userinfo_accepts_only_user_access_tokens_with_openid() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let t = rp.tokens(&server, &code, &pkce);

    let r = server.get("/userinfo");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"latchkey\"")
    );
    let r = server.get(&format!("/userinfo?access_token={}", t.access));
    assert_eq!(r.status, 401, "the query is not a place for tokens");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"latchkey\"")
    );

    assert_invalid_token(&userinfo(&server, t.id()));
    assert_invalid_token(&userinfo(&server, "not-a-token"));
    let machine = server.client("svc", "openid");
    assert_invalid_token(&userinfo(&server, &server.token(&machine, Some("openid"))));

    let r = server.post_form(
        "/userinfo",
        &encode_form(&[("access_token", &t.access)]),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server.post_form(
        "/userinfo",
        &encode_form(&[("access_token", &t.access)]),
        &format!("Authorization: Bearer {}\r\n", t.access),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_request");

    // Without openid: 403 insufficient_scope, and no ID token.
    let pkce = Pkce::new();
    let code = code_via(
        &server,
        &mut b,
        &Authz::new(&rp, &pkce).set("scope", "profile"),
    );
    let t = rp.tokens(&server, &code, &pkce);
    assert!(t.id.is_none(), "no openid, no ID token: {}", t.json);
    let r = userinfo(&server, &t.access);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"insufficient_scope\"")),
        "{:?}",
        r.headers
    );
}

#[test]
fn sessions_and_refresh_tokens_expire_idle_and_absolute() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let conn = db(&server.data_dir);
    let authz = Authz::new(&rp, &Pkce::new());
    let signed_in = |b: &mut Browser| {
        let r = b.get(&authz.url());
        assert_eq!(r.status, 303);
        !location(&r).starts_with("/login?")
    };
    let session_hash = |b: &Browser| sha256(b.cookie("latchkey-session").unwrap());

    // Idle: unused for longer than session.idle_ttl (7200 s by default).
    let mut b = Browser::new(&server);
    login_code(&server, &mut b, "alice", &authz);
    assert!(signed_in(&mut b));
    let n = conn
        .execute(
            "UPDATE sessions SET last_seen_at = ?1 WHERE hash = ?2",
            rusqlite::params![now() - 7201, session_hash(&b)],
        )
        .unwrap();
    assert_eq!(n, 1);
    assert!(!signed_in(&mut b), "an idle session ends");

    // Absolute: past session.ttl, even if used a moment ago.
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let n = conn
        .execute(
            "UPDATE sessions SET expires_at = ?1, last_seen_at = ?1 WHERE hash = ?2",
            rusqlite::params![now(), session_hash(&b)],
        )
        .unwrap();
    assert_eq!(n, 1);
    assert!(!signed_in(&mut b), "an expired session ends");

    // Refresh tokens: idle expiry of one token, absolute expiry of the grant.
    let t = rp.tokens(&server, &code, &pkce);
    let t = Tokens::from(&rp.refresh(&server, t.refresh(), None));
    let n = conn
        .execute(
            "UPDATE refresh_tokens SET idle_expires_at = ?1 WHERE hash = ?2",
            rusqlite::params![now(), sha256(t.refresh())],
        )
        .unwrap();
    assert_eq!(n, 1);
    rp.refresh(&server, t.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");

    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let t = rp.tokens(&server, &code, &pkce);
    let n = conn
        .execute(
            "UPDATE grants SET expires_at = ?1 WHERE id = \
             (SELECT grant_id FROM refresh_tokens WHERE hash = ?2)",
            rusqlite::params![now(), sha256(t.refresh())],
        )
        .unwrap();
    assert_eq!(n, 1);
    rp.refresh(&server, t.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");
}

// ---------------------------------------------------------------------------------------------
// CSRF and throttling
// ---------------------------------------------------------------------------------------------

#[test]
fn login_and_consent_forms_need_the_browsers_csrf_token() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &[]);
    let authz = Authz::new(&rp, &Pkce::new());
    let mut b = Browser::new(&server);
    let to_login = location(&b.get(&authz.url()));
    let (csrf, return_to) = login_form(&mut b, &to_login);
    let mut other = Browser::new(&server);
    let (other_csrf, _) = login_form(&mut other, &to_login);
    assert_ne!(csrf, other_csrf, "tokens are bound to the browser");
    let mut flipped = csrf.clone();
    let last = if flipped.ends_with('A') { "B" } else { "A" };
    flipped.replace_range(flipped.len() - 1.., last);

    let creds = [("username", "alice"), ("password", PASSWORD)];
    let with = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut f: Vec<(&'static str, String)> =
            extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        f.push(("return_to", return_to.clone()));
        f.extend(creds.iter().map(|(k, v)| (*k, v.to_string())));
        f
    };
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("wrong token", with(&[("csrf", &flipped)])),
        ("missing token", with(&[])),
        ("empty token", with(&[("csrf", "")])),
        ("another browser's token", with(&[("csrf", &other_csrf)])),
    ];
    for (label, fields) in &cases {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = b.post("/login", &pairs);
        if let Err(e) = check_error_page(&r, 403) {
            panic!("login, {label}: {e}");
        }
        assert!(set_cookie(&r, "latchkey-session").is_none(), "{label}");
    }
    // The right token without the cookie it belongs to.
    let r = server.post_form(
        "/login",
        &encode_form(&[
            ("csrf", &csrf),
            ("return_to", &return_to),
            ("username", "alice"),
            ("password", PASSWORD),
        ]),
        "",
    );
    assert_error_page(&r, 403);

    // The right token: signed in.
    let r = post_login(&mut b, &csrf, &return_to, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let consent = b.get(&location(&r));
    assert_eq!(consent.status, 200);
    let html = consent.text();
    let consent_csrf = hidden_input(&html, "csrf").unwrap();
    assert_eq!(consent_csrf, csrf, "one token per browser");
    let request = hidden_input(&html, "request").unwrap();
    for (label, token) in [
        ("wrong token", Some(flipped.as_str())),
        ("missing token", None),
        ("another browser's token", Some(other_csrf.as_str())),
    ] {
        let mut fields = vec![("request", request.as_str()), ("decision", "approve")];
        if let Some(t) = token {
            fields.push(("csrf", t));
        }
        let r = b.post("/consent", &fields);
        if let Err(e) = check_error_page(&r, 403) {
            panic!("consent, {label}: {e}");
        }
    }
    // The refused attempts left the form usable: the right token approves.
    let r = b.decide(&consent, "approve");
    assert_eq!(r.status, 303, "{}", r.text());
    code_from(&server, &location(&r), CB, Some(STATE));
}

#[test]
fn login_throttling_locks_an_account_then_answers_429() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    add_user(&server.data_dir, "bob", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let authz = Authz::new(&rp, &Pkce::new());
    let mut b = Browser::new(&server);
    let to_login = location(&b.get(&authz.url()));
    let (csrf, return_to) = login_form(&mut b, &to_login);

    // Five failures pass with the ordinary message.
    for i in 1..=5 {
        let r = post_login(&mut b, &csrf, &return_to, "alice", "wrong password");
        assert_eq!(r.status, 200, "failure {i}: {}", r.text());
        assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG));
    }

    // Then each failure locks the account for twice as long: 1 s, 2 s, 4 s. While the lock
    // surely holds, even the right password is refused.
    let mut refused = false;
    for (round, lock) in [1u64, 2, 4].into_iter().enumerate() {
        let sent = wall();
        let r = post_login(&mut b, &csrf, &return_to, "ALICE", "wrong password");
        let answered = wall();
        assert_error_page(&r, 429);
        assert_eq!(
            r.header("retry-after"),
            Some(lock.to_string().as_str()),
            "failure {}",
            6 + round
        );
        assert!(r.text().contains("Too many"), "{}", r.text());
        // The server's clock read at least floor(sent), so the lock lasts past this:
        let held_until = sent.floor() + lock as f64;
        if wall() + 0.25 < held_until {
            let r = post_login(&mut b, &csrf, &return_to, "alice", PASSWORD);
            assert_error_page(&r, 429);
            assert!(set_cookie(&r, "latchkey-session").is_none());
            let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=lock).contains(&wait), "Retry-After {wait}");
            refused = true;
            break;
        }
        // Too slow to be sure; wait the lock out (the server's clock read at most
        // floor(answered)) and fail again for a longer one.
        let left = answered.floor() + lock as f64 + 0.05 - wall();
        if left > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(left));
        }
    }
    assert!(
        refused,
        "never got to try the right password while surely locked"
    );

    // Another account from the same address is not locked.
    let r = post_login(&mut b, &csrf, &return_to, "bob", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(set_cookie(&r, "latchkey-session").is_some());
}

#[test]
fn a_successful_login_resets_the_account_counter() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut b = Browser::new(&server);
    let (csrf, return_to) = login_form(&mut b, "/login");
    for _ in 0..4 {
        let r = post_login(&mut b, &csrf, &return_to, "alice", "wrong password");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = post_login(&mut b, &csrf, &return_to, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    // Five more failures are free again (without the reset, the fifth would be the ninth).
    for i in 1..=5 {
        let r = post_login(&mut b, &csrf, &return_to, "alice", "wrong password");
        assert_eq!(r.status, 200, "failure {i} after the reset: {}", r.text());
    }
    let r = post_login(&mut b, &csrf, &return_to, "alice", "wrong password");
    assert_error_page(&r, 429);
}

#[test]
fn login_throttling_per_address_after_20_failures() {
    let server = Server::start();
    let mut b = Browser::new(&server);
    let (csrf, return_to) = login_form(&mut b, "/login");
    // Twenty different (unknown) accounts: no account lock, but the address adds up.
    for i in 1..=20 {
        let r = post_login(&mut b, &csrf, &return_to, &format!("user{i}"), "guess");
        assert_eq!(r.status, 200, "failure {i}: {}", r.text());
        assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG));
    }
    let r = post_login(&mut b, &csrf, &return_to, "user21", "guess");
    assert_error_page(&r, 429);
    assert_eq!(r.header("retry-after"), Some("1"));
}

// ---------------------------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------------------------

#[test]
fn usernames_are_unique_case_insensitively_and_login_ignores_case() {
    let server = Server::start();
    let sub = add_user(&server.data_dir, "alice", &[]);
    for name in ["Alice", "ALICE"] {
        let out = latchkey_stdin(
            &server.data_dir,
            &["user", "add", name, "--password-stdin"],
            &format!("{PASSWORD}\n"),
        );
        assert_eq!(out.status.code(), Some(2), "user add {name}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("already exists"),
            "{out:?}"
        );
    }
    let list: Value = serde_json::from_str(&server.cli_ok(&["user", "list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let pkce = Pkce::new();
    let mut b = Browser::new(&server);
    let code = login_code(&server, &mut b, "ALICE", &Authz::new(&rp, &pkce));
    let t = rp.tokens(&server, &code, &pkce);
    let id = verify_id_token(&server, t.id(), &rp.id, Algorithm::RS256);
    assert_eq!(id["sub"], sub.as_str());
    assert_eq!(id["preferred_username"], "alice", "the name as registered");
    let home = b.get("/");
    assert!(home.text().contains("You are signed in as alice."));
}

#[test]
fn rename_keeps_the_sub() {
    let server = Server::start();
    let sub = add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let pkce = Pkce::new();
    let code = login_code(
        &server,
        &mut Browser::new(&server),
        "alice",
        &Authz::new(&rp, &pkce),
    );
    let before = verify_id_token(
        &server,
        rp.tokens(&server, &code, &pkce).id(),
        &rp.id,
        Algorithm::RS256,
    );
    assert_eq!(before["sub"], sub.as_str());

    server.cli_ok(&["user", "rename", "alice", "alicia"]);
    let shown: Value =
        serde_json::from_str(&server.cli_ok(&["user", "show", "alicia", "--json"])).unwrap();
    assert_eq!(shown["sub"], sub.as_str());

    let pkce = Pkce::new();
    let mut b = Browser::new(&server);
    let code = login_code(&server, &mut b, "alicia", &Authz::new(&rp, &pkce));
    let after = verify_id_token(
        &server,
        rp.tokens(&server, &code, &pkce).id(),
        &rp.id,
        Algorithm::RS256,
    );
    assert_eq!(after["sub"], before["sub"]);
    assert_eq!(after["preferred_username"], "alicia");

    // The old name no longer signs in.
    let mut b = Browser::new(&server);
    let to_login = location(&b.get(&Authz::new(&rp, &Pkce::new()).url()));
    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 200);
    assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG));
}

#[test]
fn disable_ends_sessions_and_tokens_and_login_fails_generically() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let authz = Authz::new(&rp, &Pkce::new());
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let t = rp.tokens(&server, &code, &pkce);

    server.cli_ok(&["user", "disable", "alice"]);
    let r = b.get(&authz.url());
    assert_eq!(r.status, 303);
    let to_login = location(&r);
    assert!(
        to_login.starts_with("/login?"),
        "the session ended: {to_login}"
    );
    assert!(b.get("/").text().contains("You are not signed in."));
    assert_revoked_soon(&server, &t.access);
    rp.refresh(&server, t.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");

    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG));
    assert!(set_cookie(&r, "latchkey-session").is_none());

    server.cli_ok(&["user", "enable", "alice"]);
    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
}

#[test]
fn passwd_ends_sessions_and_revokes_grants() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let t = rp.tokens(&server, &code, &pkce);

    let new_password = "a brand new passphrase";
    let out = latchkey_stdin(
        &server.data_dir,
        &["user", "passwd", "alice", "--password-stdin"],
        &format!("{new_password}\n"),
    );
    assert!(out.status.success(), "{out:?}");

    let r = b.get(&Authz::new(&rp, &Pkce::new()).url());
    let to_login = location(&r);
    assert!(
        to_login.starts_with("/login?"),
        "the session ended: {to_login}"
    );
    rp.refresh(&server, t.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");
    assert_revoked_soon(&server, &t.access);

    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 200);
    assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG));
    let r = b.submit_login(&to_login, "alice", new_password);
    assert_eq!(r.status, 303, "{}", r.text());
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &[]);
    let mut b = Browser::new(&server);
    let to_login = location(&b.get(&Authz::new(&rp, &Pkce::new()).url()));
    let (csrf, return_to) = login_form(&mut b, &to_login);

    let known = post_login(&mut b, &csrf, &return_to, "alice", "not the password");
    let unknown = post_login(&mut b, &csrf, &return_to, "zed", "not the password");
    for r in [&known, &unknown] {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_page(r);
        assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG));
        assert!(set_cookie(r, "latchkey-session").is_none());
    }
    // Byte for byte the same page, but for the username typed back into the form.
    assert_eq!(
        known.text().replace("value=\"alice\"", "value=\"?\""),
        unknown.text().replace("value=\"zed\"", "value=\"?\"")
    );
    assert_eq!(
        known.headers_named("set-cookie"),
        unknown.headers_named("set-cookie")
    );

    // A login never sends the browser off-site, whatever return_to says.
    for evil in [
        "https://evil.example/",
        "//evil.example/authorize?x",
        "/\\evil.example",
    ] {
        let r = post_login(&mut b, &csrf, evil, "alice", PASSWORD);
        assert_eq!(r.status, 303, "{}", r.text());
        assert_eq!(location(&r), "/", "return_to {evil}");
    }
}

#[test]
fn pages_escape_what_they_reflect() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "<b>Evil</b> & Co", &[]);
    let xss = "\"><script>alert(1)</script>";
    let mut b = Browser::new(&server);

    // The login page's return_to and the typed-back username.
    let return_to = format!("/authorize?client_id={}&x={xss}", rp.id);
    let page = b.get(&format!(
        "/login?{}",
        encode_form(&[("return_to", &return_to)])
    ));
    assert_eq!(page.status, 200);
    assert!(!page.text().contains("<script>"), "{}", page.text());
    assert_eq!(
        hidden_input(&page.text(), "return_to"),
        Some(return_to.clone())
    );
    let csrf = hidden_input(&page.text(), "csrf").unwrap();
    let r = post_login(&mut b, &csrf, &return_to, xss, "not the password");
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("<script>"), "{}", r.text());
    let typed_back = inputs(&r.text())
        .into_iter()
        .find(|(n, _, _)| n == "username")
        .map(|(_, _, v)| v);
    assert_eq!(typed_back.as_deref(), Some(xss));

    // The consent page's client name and the request it carries.
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("state", xss).set("nonce", xss);
    let to_login = location(&b.get(&authz.url()));
    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 303);
    let consent = b.get(&location(&r));
    assert_eq!(consent.status, 200);
    let html = consent.text();
    assert!(html.contains("&lt;b&gt;Evil&lt;/b&gt; &amp; Co"), "{html}");
    assert!(
        !html.contains("<b>Evil") && !html.contains("<script>"),
        "{html}"
    );
    let r = b.decide(&consent, "approve");
    code_from(&server, &location(&r), CB, Some(xss));

    // form_post: the only script is the auto-submit one.
    let r = b.get(&authz.set("response_mode", "form_post").url());
    assert_eq!(r.status, 200);
    let html = r.text();
    assert_eq!(html.matches("<script>").count(), 1, "{html}");
    assert_eq!(hidden_input(&html, "state").as_deref(), Some(xss));
}

// ---------------------------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------------------------

#[test]
fn logout_ends_the_session() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &["--skip-consent"]);
    let authz = Authz::new(&rp, &Pkce::new());
    let mut b = Browser::new(&server);
    login_code(&server, &mut b, "alice", &authz);
    let session = b.cookie("latchkey-session").unwrap().to_string();

    // The cookie alone is the session; two cookies of its name (one planted by a sibling
    // host) are no session at all.
    let home = |cookie: &str| {
        server
            .raw(
                format!(
                    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n"
                )
                .as_bytes(),
            )
            .text()
    };
    let one = format!("latchkey-session={session}");
    assert!(home(&one).contains("You are signed in as alice."));
    let planted = format!("{one}; latchkey-session={}", "A".repeat(43));
    assert!(home(&planted).contains("You are not signed in."));

    // GET /logout only asks (a link or an image elsewhere could send it): the session lives.
    let r = b.get("/logout");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_page(&r);
    let html = r.text();
    assert!(
        html.contains("<title>Sign out? · latchkey</title>"),
        "{html}"
    );
    assert!(
        html.contains("<form method=\"post\" action=\"/logout\""),
        "{html}"
    );
    assert!(hidden_input(&html, "csrf").is_some(), "{html}");
    assert_eq!(set_cookie(&r, "latchkey-session"), None);
    assert!(b.get("/").text().contains("You are signed in as alice."));
    // A POST without the form's token does not sign out either.
    let r = b.post("/logout", &[("csrf", "forged")]);
    assert_error_page(&r, 403);
    assert!(b.get("/").text().contains("You are signed in as alice."));
    // The home page's button posts the same form.
    let home_page = b.get("/").text();
    assert!(
        home_page.contains("<title>Signed in · latchkey</title>"),
        "{home_page}"
    );
    assert!(home_page.contains("action=\"/logout\""), "{home_page}");

    let r = b.sign_out();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_page(&r);
    assert!(r.text().contains("signed out"), "{}", r.text());
    assert!(r.text().contains("<title>Signed out · latchkey</title>"));
    assert!(
        r.text().contains("<a href=\"/login\">Sign in again</a>"),
        "{}",
        r.text()
    );
    let line = set_cookie(&r, "latchkey-session").expect("the cookie is deleted");
    let (value, attrs) = cookie_parts(line);
    assert_eq!(value, "");
    assert!(attrs.contains(&"max-age=0".to_string()), "{line}");
    assert_eq!(b.cookie("latchkey-session"), None);

    let r = b.get(&authz.url());
    assert!(location(&r).starts_with("/login?"), "{}", location(&r));
    // The old id is dead on the server too.
    b.set_cookie("latchkey-session", &session);
    let r = b.get(&authz.url());
    assert!(location(&r).starts_with("/login?"), "{}", location(&r));
    assert!(b.get("/").text().contains("You are not signed in."));
}

/// RP-Initiated Logout §2: the OP must ask when the hint is not the signed-in user's. Bob's
/// browser with alice's hint gets the confirmation (bob stays signed in); confirmed, it signs
/// out and still goes to the client's registered URI with `state`.
#[test]
fn logout_with_another_users_hint_asks_first() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    add_user(&server.data_dir, "bob", &[]);
    let after = "https://app.example/logged-out";
    let rp = add_rp(
        &server,
        "App",
        &["--skip-consent", "--post-logout-redirect-uri", after],
    );
    let mut alice = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut alice, "alice", &Authz::new(&rp, &pkce));
    let hint = rp.tokens(&server, &code, &pkce).id().to_string();
    let mut bob = Browser::new(&server);
    login_code(&server, &mut bob, "bob", &Authz::new(&rp, &Pkce::new()));

    let url = format!(
        "/logout?{}",
        encode_form(&[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", after),
            ("state", STATE),
        ])
    );
    let r = bob.get(&url);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("signed in as bob"), "{}", r.text());
    assert_eq!(
        hidden_input(&r.text(), "id_token_hint").as_deref(),
        Some(hint.as_str())
    );
    assert!(bob.get("/").text().contains("You are signed in as bob."));
    let r = bob.sign_out_at(&url);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        query_pairs(&location(&r)),
        [("state".to_string(), STATE.to_string())]
    );
    assert!(location(&r).starts_with(&format!("{after}?")));
    assert!(bob.get("/").text().contains("You are not signed in."));
    // alice was never touched.
    assert!(
        alice
            .get("/")
            .text()
            .contains("You are signed in as alice.")
    );
}

/// Every page's title says what it is (never `latchkey · latchkey`), and the login page names
/// the app the user is signing in to, escaped.
#[test]
fn page_titles_say_what_the_page_is_and_the_login_names_the_app() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let hostile = "<script>alert(1)</script> & \"Co\"";
    let rp = add_rp(&server, hostile, &["--skip-consent"]);
    let title = |r: &Response| -> String {
        let html = r.text();
        let start = html.find("<title>").expect("a title") + "<title>".len();
        let end = html.find("</title>").expect("a title end");
        html[start..end].to_string()
    };
    let mut b = Browser::new(&server);
    let home = b.get("/");
    assert_eq!(title(&home), "Not signed in · latchkey");
    assert!(home.text().contains("<a href=\"/login\">Sign in</a>"));
    assert_eq!(title(&b.get("/login")), "Sign in · latchkey");

    let authz = Authz::new(&rp, &Pkce::new());
    let r = b.get(&authz.url());
    let login = b.get(&location(&r));
    assert_eq!(login.status, 200, "{}", login.text());
    let html = login.text();
    let escaped = "Sign in to &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot;";
    assert_eq!(title(&login), format!("{escaped} · latchkey"));
    assert!(html.contains(&format!("<h1>{escaped}</h1>")), "{html}");
    assert!(!html.contains("<script>"), "{html}");
    // A return to a client that does not exist: just "Sign in".
    let unknown = b.get(&format!(
        "/login?return_to={}",
        form_encode("/authorize?client_id=nobody&response_type=code")
    ));
    assert_eq!(title(&unknown), "Sign in · latchkey");

    login_code(&server, &mut b, "alice", &authz);
    let home = b.get("/");
    assert_eq!(title(&home), "Signed in · latchkey");
    for r in [&home, &login, &unknown] {
        assert!(!r.text().contains("latchkey · latchkey"), "{}", r.text());
    }
}

#[test]
fn logout_redirects_only_to_a_registered_uri_with_a_valid_hint() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let after = "https://app.example/logged-out";
    let rp = add_rp(
        &server,
        "App",
        &["--skip-consent", "--post-logout-redirect-uri", after],
    );
    let other = add_rp(
        &server,
        "Other",
        &["--skip-consent", "--id-token-alg", "ES256"],
    );
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let hint = rp.tokens(&server, &code, &pkce).id().to_string();
    let pkce = Pkce::new();
    let code = code_via(&server, &mut b, &Authz::new(&other, &pkce));
    let other_hint = other.tokens(&server, &code, &pkce).id().to_string();

    // A valid hint and a registered URI: 303 there with state, session ended.
    let url = format!(
        "/logout?{}",
        encode_form(&[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", after),
            ("state", STATE),
        ])
    );
    let r = b.get(&url);
    assert_eq!(r.status, 303, "{}", r.text());
    let loc = location(&r);
    assert!(loc.starts_with(&format!("{after}?")), "{loc}");
    assert_eq!(
        query_pairs(&loc),
        [("state".to_string(), STATE.to_string())]
    );
    assert!(set_cookie(&r, "latchkey-session").is_some_and(|c| c.contains("Max-Age=0")));
    let r = b.get(&Authz::new(&rp, &Pkce::new()).url());
    assert!(location(&r).starts_with("/login?"));

    // The same by POST, without state.
    let r = b.post(
        "/logout",
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", after),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), after);

    // Anything less: the signed-out page, no redirect.
    let mut tampered = hint.clone();
    let last = if tampered.ends_with('A') { "B" } else { "A" };
    tampered.replace_range(tampered.len() - 1.., last);
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "unregistered URI",
            vec![
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", "https://evil.example/"),
            ],
        ),
        (
            "registered URI plus a suffix",
            vec![
                ("id_token_hint", &hint),
                (
                    "post_logout_redirect_uri",
                    "https://app.example/logged-out/x",
                ),
            ],
        ),
        ("no hint", vec![("post_logout_redirect_uri", after)]),
        (
            "tampered hint",
            vec![
                ("id_token_hint", &tampered),
                ("post_logout_redirect_uri", after),
            ],
        ),
        (
            "another client's hint",
            vec![
                ("id_token_hint", &other_hint),
                ("post_logout_redirect_uri", after),
            ],
        ),
        (
            "client_id of another client",
            vec![
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", after),
                ("client_id", &other.id),
            ],
        ),
    ];
    for (label, fields) in &cases {
        let r = b.get(&format!("/logout?{}", encode_form(fields)));
        if let Err(e) = check_error_page(&r, 200) {
            panic!("{label}: {e}");
        }
        assert!(r.text().contains("signed out"), "{label}");
        assert!(!r.text().contains("evil.example"), "{label}");
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------------------------------

#[test]
fn discovery_lists_the_openid_connect_metadata_and_the_jwks_both_keys() {
    let server = Server::start();
    let issuer = server.issuer();
    let m = server.get("/.well-known/openid-configuration").json();
    assert_eq!(m["issuer"], issuer);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks.json"),
        ("end_session_endpoint", "/logout"),
    ] {
        assert_eq!(m[field], format!("{issuer}{path}"), "{field}");
    }
    let list = |field: &str| -> Vec<String> {
        m[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} is not a list: {m}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(list("response_types_supported"), ["code"]);
    assert_eq!(list("response_modes_supported"), ["query", "form_post"]);
    assert_eq!(list("subject_types_supported"), ["public"]);
    assert_eq!(
        list("id_token_signing_alg_values_supported"),
        ["RS256", "ES256"]
    );
    assert_eq!(list("code_challenge_methods_supported"), ["S256"]);
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    for g in ["authorization_code", "refresh_token"] {
        assert!(
            list("grant_types_supported").contains(&g.to_string()),
            "{g}"
        );
    }
    for a in ["client_secret_basic", "client_secret_post", "none"] {
        assert!(
            list("token_endpoint_auth_methods_supported").contains(&a.to_string()),
            "{a}"
        );
    }
    for s in ["openid", "profile", "email", "groups"] {
        assert!(list("scopes_supported").contains(&s.to_string()), "{s}");
    }
    for c in [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "name",
        "preferred_username",
        "email",
        "email_verified",
        "groups",
    ] {
        assert!(list("claims_supported").contains(&c.to_string()), "{c}");
    }

    let set = server.get("/jwks.json").json();
    let keys = set["keys"].as_array().unwrap();
    let ec: Vec<&Value> = keys.iter().filter(|k| k["kty"] == "EC").collect();
    let rsa: Vec<&Value> = keys.iter().filter(|k| k["kty"] == "RSA").collect();
    assert_eq!(ec.len(), 1, "{set}");
    assert_eq!(rsa.len(), 1, "{set}");
    assert_eq!(ec[0]["alg"], "ES256");
    assert_eq!(ec[0]["crv"], "P-256");
    assert_eq!(rsa[0]["alg"], "RS256");
    assert_eq!(rsa[0]["e"], "AQAB");
    assert!(
        rsa[0]["n"].as_str().unwrap().len() >= 342,
        "at least 2048 bits"
    );
    assert_ne!(ec[0]["kid"], rsa[0]["kid"]);
    for k in keys {
        assert_eq!(k["use"], "sig", "{k}");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "private member {private}: {k}");
        }
    }
    for jwk in &jwks(&server).keys {
        DecodingKey::from_jwk(jwk).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// offline_access (OIDC Core §11)
// ---------------------------------------------------------------------------------------------

#[test]
fn offline_access_is_granted_to_clients_with_the_refresh_grant_whatever_their_scopes() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut b = Browser::new(&server);

    // Registered with the default scopes, which do not name offline_access.
    let rp = add_rp(&server, "Vaultwarden", &[]);
    let shown: Value =
        serde_json::from_str(&server.cli_ok(&["client", "show", "Vaultwarden", "--json"])).unwrap();
    assert!(
        !shown["scopes"].to_string().contains("offline_access"),
        "{shown}"
    );
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("scope", "openid profile email offline_access");
    let r = b.get(&authz.url());
    let r = b.submit_login(&location(&r), "alice", PASSWORD);
    let consent = b.get(&location(&r));
    assert_eq!(consent.status, 200, "{}", consent.text());
    assert!(
        consent.text().contains("Stay connected while you are away"),
        "the consent page names offline access in plain words: {}",
        consent.text()
    );
    let r = b.decide(&consent, "approve");
    let code = code_from(&server, &location(&r), CB, Some(STATE));
    let t = rp.tokens(&server, &code, &pkce);
    assert_eq!(t.json["scope"], "openid profile email offline_access");
    let t2 = Tokens::from(&rp.refresh(&server, t.refresh(), None));
    assert_eq!(
        t2.json["scope"], "openid profile email offline_access",
        "a refresh keeps offline_access"
    );
    assert!(t2.refresh.is_some());

    // Without the refresh_token grant: dropped, not an error — even when registered with it.
    for (name, extra) in [
        ("No Refresh", &[][..]),
        (
            "Registered With It",
            &["--scope", "openid profile offline_access"][..],
        ),
    ] {
        let rp = add_rp_with(&server, name, CB, &["authorization_code"], extra);
        let pkce = Pkce::new();
        let authz = Authz::new(&rp, &pkce).set("scope", "openid offline_access");
        let page = b.get(&authz.url());
        assert_eq!(page.status, 200, "{name}: {}", page.text());
        assert!(
            !page.text().contains("Stay connected"),
            "{name}: offline access is not asked for when it cannot be granted"
        );
        let r = b.decide(&page, "approve");
        let code = code_from(&server, &location(&r), CB, Some(STATE));
        let t = rp.tokens(&server, &code, &pkce);
        assert_eq!(t.json["scope"], "openid", "{name}: {}", t.json);
        assert!(t.refresh.is_none(), "{name}: no refresh token: {}", t.json);
        assert!(t.id.is_some(), "{name}");
    }

    // Any other scope the client lacks is still invalid_scope.
    let r = b.get(
        &Authz::new(&rp, &Pkce::new())
            .set("scope", "openid offline_access admin")
            .url(),
    );
    assert_error_redirect(&server, &r, CB, "invalid_scope", Some(STATE));
}

// ---------------------------------------------------------------------------------------------
// What was checked at sign-in holds later too (oauth::policy)
// ---------------------------------------------------------------------------------------------

/// A user `alice` in group `family`, and a client open to that group only (consent asked).
fn family_app(server: &Server) -> Rp {
    add_user(&server.data_dir, "alice", &["--group", "family"]);
    add_rp(server, "Family App", &["--allow-group", "family"])
}

/// Sets a client's grant types in the database (the CLI has no command for it yet).
fn set_grants(server: &Server, rp: &Rp, grants: &[&str]) {
    let grants = serde_json::to_string(grants).unwrap();
    db(&server.data_dir)
        .execute(
            "UPDATE clients SET grant_types = ?1 WHERE client_id = ?2",
            rusqlite::params![grants, rp.id],
        )
        .unwrap();
}

/// Whether `/authorize` (with the browser's session) refuses the client as `unauthorized_client`:
/// how a test sees that a change to the client's grants reached the server without spending a
/// code or a refresh token.
fn authorize_refused(b: &mut Browser, rp: &Rp) -> bool {
    let r = b.get(&Authz::new(rp, &Pkce::new()).url());
    query_param(&location(&r), "error").as_deref() == Some("unauthorized_client")
}

/// Asserts a token-endpoint error, waiting up to 2 s for a change to reach the server.
fn refused_soon(what: &str, mut request: impl FnMut() -> Response, status: u16, error: &str) {
    eventually(Duration::from_secs(2), what, || {
        let r = request();
        r.status == status && r.json()["error"] == error
    });
}

#[test]
fn a_refresh_checks_the_sign_in_again() {
    let server = Server::start();
    let rp = family_app(&server);
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    let mut t = rp.tokens(&server, &code, &pkce);
    let rotate = |t: &mut Tokens| {
        *t = Tokens::from(&rp.refresh(&server, t.refresh(), None));
    };
    rotate(&mut t);

    // Out of the allowed group: refused; the token is not spent, and works once back in.
    server.cli_ok(&["user", "group", "remove", "alice", "family"]);
    let r = rp.refresh(&server, t.refresh(), None);
    r.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        r.json()["error_description"],
        "the user may no longer use this application"
    );
    server.cli_ok(&["user", "group", "add", "alice", "family"]);
    rotate(&mut t);

    // The consent gone (as any path that removes it would leave it): refused.
    let conn = db(&server.data_dir);
    let sub: String = conn
        .query_row("SELECT id FROM users WHERE username = 'alice'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let consent: (String, i64) = conn
        .query_row(
            "SELECT scope, created_at FROM consents WHERE user_id = ?1",
            [&sub],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    conn.execute("DELETE FROM consents WHERE user_id = ?1", [&sub])
        .unwrap();
    let r = rp.refresh(&server, t.refresh(), None);
    r.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        r.json()["error_description"],
        "the user's consent for this application was revoked"
    );
    conn.execute(
        "INSERT INTO consents (user_id, client_id, scope, created_at) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![sub, rp.id, consent.0, consent.1],
    )
    .unwrap();
    rotate(&mut t);

    // The client lost the grant its tokens come from, then the refresh grant itself. Each
    // change is first seen at /authorize (which spends no refresh token), so the refresh after
    // it meets the new registration, never the old one.
    set_grants(&server, &rp, &["refresh_token"]);
    eventually(
        Duration::from_secs(5),
        "/authorize refuses the client",
        || authorize_refused(&mut b, &rp),
    );
    let r = rp.refresh(&server, t.refresh(), None);
    r.assert_oauth_error(400, "unauthorized_client");
    set_grants(&server, &rp, &["authorization_code"]);
    eventually(
        Duration::from_secs(5),
        "/authorize accepts the client",
        || !authorize_refused(&mut b, &rp),
    );
    let r = rp.refresh(&server, t.refresh(), None);
    r.assert_oauth_error(400, "unauthorized_client");
    set_grants(&server, &rp, &["authorization_code", "refresh_token"]);
    eventually(Duration::from_secs(5), "the grants are back", || {
        rp.refresh(&server, t.refresh(), None).status == 200
    });
    // (That rotated the token; a fresh grant for the last checks.)
    let pkce = Pkce::new();
    let code = code_via(&server, &mut b, &Authz::new(&rp, &pkce));
    let t = rp.tokens(&server, &code, &pkce);

    // `user consent revoke`: refused, and its access tokens are revoked too.
    let listed: Value =
        serde_json::from_str(&server.cli_ok(&["user", "consent", "list", "alice", "--json"]))
            .unwrap();
    assert_eq!(listed[0]["client_id"], rp.id.as_str(), "{listed}");
    server.cli_ok(&["user", "consent", "revoke", "alice", "Family App"]);
    rp.refresh(&server, t.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");
    assert_revoked_soon(&server, &t.access);
    assert_eq!(
        server
            .cli_ok(&["user", "consent", "list", "alice", "--json"])
            .trim(),
        "[]"
    );

    // A disabled user, and a removed client.
    let pkce = Pkce::new();
    let code = code_via(&server, &mut b, &Authz::new(&rp, &pkce));
    let t = rp.tokens(&server, &code, &pkce);
    let conn = db(&server.data_dir);
    conn.execute("UPDATE users SET disabled = 1 WHERE id = ?1", [&sub])
        .unwrap();
    let r = rp.refresh(&server, t.refresh(), None);
    r.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        r.json()["error_description"],
        "the user is no longer active"
    );
    conn.execute("UPDATE users SET disabled = 0 WHERE id = ?1", [&sub])
        .unwrap();
    Tokens::from(&rp.refresh(&server, t.refresh(), None));
    server.cli_ok(&["client", "remove", "Family App"]);
    refused_soon(
        "client removed",
        || rp.refresh(&server, "x", None),
        401,
        "invalid_client",
    );
}

#[test]
fn a_code_is_redeemed_only_while_the_sign_in_still_holds() {
    let server = Server::start();
    let rp = family_app(&server);
    let mut b = Browser::new(&server);
    let pkce = Pkce::new();
    let code = login_code(&server, &mut b, "alice", &Authz::new(&rp, &pkce));
    // Removed from the group between the code and its redemption.
    server.cli_ok(&["user", "group", "remove", "alice", "family"]);
    let r = rp.exchange(&server, &code, Some(&pkce.verifier));
    r.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        r.json()["error_description"],
        "the user may no longer use this application"
    );
    server.cli_ok(&["user", "group", "add", "alice", "family"]);

    // The consent revoked between the code and its redemption.
    let pkce = Pkce::new();
    let code = code_via(&server, &mut b, &Authz::new(&rp, &pkce));
    server.cli_ok(&["user", "consent", "revoke", "alice", &rp.id]);
    let r = rp.exchange(&server, &code, Some(&pkce.verifier));
    r.assert_oauth_error(400, "invalid_grant");
    assert_eq!(
        r.json()["error_description"],
        "the user's consent for this application was revoked"
    );

    // The client lost the authorization_code grant.
    let pkce = Pkce::new();
    let code = code_via(&server, &mut b, &Authz::new(&rp, &pkce));
    set_grants(&server, &rp, &["refresh_token"]);
    eventually(
        Duration::from_secs(5),
        "/authorize refuses the client",
        || authorize_refused(&mut b, &rp),
    );
    rp.exchange(&server, &code, Some(&pkce.verifier))
        .assert_oauth_error(400, "unauthorized_client");
}

#[test]
fn a_reused_session_at_authorize_checks_the_sign_in_again() {
    let server = Server::start();
    let rp = family_app(&server);
    let mut b = Browser::new(&server);
    let authz = Authz::new(&rp, &Pkce::new());
    login_code(&server, &mut b, "alice", &authz);
    // Signed in and approved: straight back with a code.
    let r = b.get(&authz.url());
    assert_eq!(r.status, 303, "{}", r.text());
    code_from(&server, &location(&r), CB, Some(STATE));

    // Out of the group: access_denied, with no code.
    server.cli_ok(&["user", "group", "remove", "alice", "family"]);
    let r = b.get(&authz.url());
    assert_error_redirect(&server, &r, CB, "access_denied", Some(STATE));
    server.cli_ok(&["user", "group", "add", "alice", "family"]);

    // Consent revoked: the consent page again (and consent_required for prompt=none).
    server.cli_ok(&["user", "consent", "revoke", "alice", "Family App"]);
    let none = authz.clone().set("prompt", "none");
    let r = b.get(&none.url());
    assert_error_redirect(&server, &r, CB, "consent_required", Some(STATE));
    let page = b.get(&authz.url());
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("action=\"/consent\""));
    let r = b.decide(&page, "approve");
    code_from(&server, &location(&r), CB, Some(STATE));

    // The client lost the authorization_code grant: unauthorized_client.
    set_grants(&server, &rp, &["refresh_token"]);
    eventually(Duration::from_secs(2), "grant removed", || {
        let r = b.get(&authz.url());
        r.status == 303
            && query_param(&location(&r), "error").as_deref() == Some("unauthorized_client")
    });
    set_grants(&server, &rp, &["authorization_code", "refresh_token"]);
    eventually(Duration::from_secs(2), "grant back", || {
        let r = b.get(&authz.url());
        r.status == 303 && query_param(&location(&r), "code").is_some()
    });

    // Disabled (even without `user disable`'s own clean-up): the session no longer counts.
    db(&server.data_dir)
        .execute("UPDATE users SET disabled = 1 WHERE username = 'alice'", [])
        .unwrap();
    let r = b.get(&authz.url());
    assert_eq!(r.status, 303);
    assert!(location(&r).starts_with("/login?"), "{}", location(&r));

    // A removed client: an error page, the browser goes nowhere.
    server.cli_ok(&["client", "remove", "Family App"]);
    eventually(Duration::from_secs(2), "client removed", || {
        check_error_page(&b.get(&authz.url()), 400).is_ok()
    });
}

#[test]
fn the_consent_form_cannot_grant_what_the_client_refuses() {
    // The consent form carries the whole authorization request. Posting it for a client the
    // user may not use must not give a code, whatever consent page the form came from.
    let server = Server::start();
    add_user(&server.data_dir, "alice", &["--group", "family"]);
    add_user(&server.data_dir, "bob", &[]);
    let family = add_rp(&server, "Family App", &["--allow-group", "family"]);
    let open = add_rp(&server, "Open App", &[]);
    let mut b = Browser::new(&server);
    let open_authz = Authz::new(&open, &Pkce::new());
    let r = b.get(&open_authz.url());
    let r = b.submit_login(&location(&r), "bob", PASSWORD);
    let page = b.get(&location(&r));
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let csrf = hidden_input(&html, "csrf").unwrap();
    let family_request = Authz::new(&family, &Pkce::new()).query();
    let r = b.post(
        "/consent",
        &[
            ("csrf", &csrf),
            ("request", &family_request),
            ("decision", "approve"),
        ],
    );
    assert_error_redirect(&server, &r, CB, "access_denied", Some(STATE));
    let sub: String = db(&server.data_dir)
        .query_row("SELECT id FROM users WHERE username = 'bob'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let consents: i64 = db(&server.data_dir)
        .query_row(
            "SELECT COUNT(*) FROM consents WHERE user_id = ?1",
            [&sub],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(consents, 0, "nothing was remembered");
    // The form of the page itself still works (control).
    let r = b.decide(&page, "approve");
    code_from(&server, &location(&r), CB, Some(STATE));
}

#[test]
fn client_credentials_follow_every_change_to_the_client() {
    let server = Server::start();
    let out: Value = serde_json::from_str(&server.cli_ok(&[
        "client",
        "add",
        "worker",
        "--grant",
        "client_credentials",
        "--scope",
        "jobs:read jobs:write",
        "--json",
    ]))
    .unwrap();
    let id = out["client_id"].as_str().unwrap().to_string();
    let secret = out["client_secret"].as_str().unwrap().to_string();
    let ask = |secret: &str, scope: &str| {
        server.post_form(
            "/token",
            &encode_form(&[("grant_type", "client_credentials"), ("scope", scope)]),
            &basic_header(&id, secret),
        )
    };
    assert_eq!(ask(&secret, "jobs:write").status, 200);
    let conn = db(&server.data_dir);
    // A scope taken away.
    conn.execute(
        "UPDATE clients SET scopes = 'jobs:read' WHERE client_id = ?1",
        [&id],
    )
    .unwrap();
    refused_soon(
        "scope removed",
        || ask(&secret, "jobs:write"),
        400,
        "invalid_scope",
    );
    assert_eq!(ask(&secret, "jobs:read").status, 200);
    // The grant taken away.
    conn.execute(
        "UPDATE clients SET grant_types = '[\"authorization_code\"]' WHERE client_id = ?1",
        [&id],
    )
    .unwrap();
    refused_soon(
        "grant removed",
        || ask(&secret, "jobs:read"),
        400,
        "unauthorized_client",
    );
    conn.execute(
        "UPDATE clients SET grant_types = '[\"client_credentials\"]' WHERE client_id = ?1",
        [&id],
    )
    .unwrap();
    eventually(Duration::from_secs(2), "grant back", || {
        ask(&secret, "jobs:read").status == 200
    });
    // The secret rotated: the old one stops working at once.
    let rotated: Value =
        serde_json::from_str(&server.cli_ok(&["client", "rotate-secret", "worker", "--json"]))
            .unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_string();
    ask(&secret, "jobs:read").assert_oauth_error(401, "invalid_client");
    assert_eq!(ask(&new_secret, "jobs:read").status, 200);
    // Removed.
    server.cli_ok(&["client", "remove", "worker"]);
    refused_soon(
        "client removed",
        || ask(&new_secret, "jobs:read"),
        401,
        "invalid_client",
    );
}

// ---------------------------------------------------------------------------------------------
// Security events survive a crash
// ---------------------------------------------------------------------------------------------

/// The issuer of the servers a test kills and starts again (each start gets a new port).
const CRASH_ISSUER: &str = "http://127.0.0.1:9";

/// Kills the server with SIGKILL (a crash: nothing queued is written) and starts a new one on
/// the same data directory.
fn crash_and_restart(server: Server) -> Server {
    let dir = server.data_dir.clone();
    drop(server);
    Server::start_in(dir, &["--issuer", CRASH_ISSUER])
}

/// The audit log as (actor, action, target, outcome), read with the CLI.
fn audit_events(server: &Server) -> Vec<(String, String, String, String)> {
    let v: Value = serde_json::from_str(&server.cli_ok(&["audit", "--json"])).unwrap();
    let s = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                s(e, "actor"),
                s(e, "action"),
                s(e, "target"),
                s(e, "outcome"),
            )
        })
        .collect()
}

#[test]
fn security_events_are_in_the_audit_log_when_the_answer_arrives() {
    let mut server = Server::start_with(&["--issuer", CRASH_ISSUER], |_| {});
    add_user(&server.data_dir, "alice", &[]);
    let rp = add_rp(&server, "App", &[]);
    let pkce = Pkce::new();
    let authz = Authz::new(&rp, &pkce).set("scope", "openid profile");

    // A failed sign-in, then the server dies the moment the answer arrived.
    let mut b = Browser::new(&server);
    let to_login = location(&b.get(&authz.url()));
    let r = b.submit_login(&to_login, "alice", "not the password");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG));
    server = crash_and_restart(server);

    // A sign-in.
    let mut b = Browser::new(&server);
    let r = b.submit_login(&to_login, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let back = location(&r);
    let session = b.cookie("latchkey-session").unwrap().to_string();
    server = crash_and_restart(server);

    // Consent.
    let mut b = Browser::new(&server);
    b.set_cookie("latchkey-session", &session);
    let page = b.get(&back);
    assert_eq!(page.status, 200, "{}", page.text());
    let r = b.decide(&page, "approve");
    assert_eq!(r.status, 303, "{}", r.text());
    let code = query_param(&location(&r), "code").unwrap();
    server = crash_and_restart(server);

    // Revocation of the grant's refresh token.
    let tokens = rp.tokens(&server, &code, &pkce);
    let r = server.post_form(
        "/revoke",
        &encode_form(&[("token", tokens.refresh())]),
        &basic_header(&rp.id, rp.secret.as_deref().unwrap()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    server = crash_and_restart(server);

    // Logout.
    let mut b = Browser::new(&server);
    b.set_cookie("latchkey-session", &session);
    let r = b.sign_out();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().to_lowercase().contains("signed out"),
        "{}",
        r.text()
    );
    let server = crash_and_restart(server);

    let events = audit_events(&server);
    let client = format!("client:{}", rp.id);
    for (actor, action, target, outcome) in [
        ("anonymous", "login", "alice", "failed"),
        ("user:alice", "login", "alice", "ok"),
        ("user:alice", "logout", "alice", "ok"),
    ] {
        let want = (actor.into(), action.into(), target.into(), outcome.into());
        assert!(events.contains(&want), "{want:?} missing from {events:?}");
    }
    assert!(
        events.iter().any(|(a, action, t, o)| a == "user:alice"
            && action == "consent_granted"
            && t.starts_with(&format!("{} ", rp.id))
            && t.contains("profile")
            && o == "ok"),
        "the consent is missing from {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(a, action, _, o)| *a == client && action == "grant_revoked" && o == "ok"),
        "the revocation is missing from {events:?}"
    );
}

#[test]
fn a_rotation_retried_after_its_answer_was_lost_is_a_replay() {
    // No grace period (docs/oidc-apps.md): the client never saw the answer to its rotation and
    // presents the same refresh token again at once. That is a replay: the family is revoked,
    // the successor it never received with it, and the replay is in the audit log already.
    let server = Server::start();
    let (rp, t0) = first_grant(&server);
    let rs = resource_server(&server);
    let lost = Tokens::from(&rp.refresh(&server, t0.refresh(), None));
    rp.refresh(&server, t0.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");
    rp.refresh(&server, lost.refresh(), None)
        .assert_oauth_error(400, "invalid_grant");
    assert_inactive(&introspect(&server, &rs, &lost.access));
    assert!(
        server
            .logs()
            .contains(&format!("refresh token reused by client {}", rp.id)),
        "{}",
        server.logs()
    );
    let replays: Vec<_> = audit_events(&server)
        .into_iter()
        .filter(|(_, action, _, _)| action == "refresh_token_reused")
        .collect();
    assert_eq!(replays.len(), 1, "{replays:?}");
    assert_eq!(replays[0].0, format!("client:{}", rp.id));
    assert_eq!(replays[0].3, "failed");
}
