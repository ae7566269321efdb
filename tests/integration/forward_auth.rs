//! Forward auth against the real binary. The tests act as the reverse proxy: every
//! request to `/api/forward-auth` comes from 127.0.0.1 (a trusted proxy by default) and carries
//! the proxy headers the test chooses — Traefik/Caddy's `X-Forwarded-*` or nginx's
//! `X-Original-URL`. Covered: every answer (200 with `Remote-*`, 302/401 for people who are not
//! signed in, 401 for scripts, 403 for people not admitted, deny rules and unmatched addresses),
//! API keys and access tokens in place of a session, path normalisation, rule order and reloads,
//! untrusted and forged forwarded headers, every open-redirect trick at `/login?rd=`, the
//! forward-auth cookie's attributes with `--cookie-domain` and an https issuer, logout and
//! `user disable` ending forward-auth sessions, `client add --allow-group`, and the `rule` CLI.
//!
//! Users, rules, keys and clients a test needs from its first request are created before the
//! server starts (in the `start_with` setup), so only the tests about reloading wait for one.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::browser::{Browser, encode_form, hidden_input, location, query_param};
use crate::support::latchkey_stdin as cli_stdin;
use crate::support::{
    PASSWORD, Response, Server, add_user, basic_header, form_encode, latchkey, latchkey_cmd,
    latchkey_ok, read_response,
};

const FA: &str = "/api/forward-auth";
/// What a browser sends on a navigation.
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
/// The exact challenge for a request without credentials.
const CHALLENGE: &str = r#"Bearer realm="latchkey""#;
/// A syntactically valid S256 challenge (PKCE is required; no token is ever exchanged here).
const CHALLENGE_S256: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CB: &str = "https://app.example/cb";
/// How long a CLI change may take to reach a running server (the spec says ~1 s).
const RELOAD: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

/// `rule add ARGS…`; returns the new rule's id.
fn add_rule(data_dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["rule", "add"];
    all.extend_from_slice(args);
    let out = latchkey_ok(data_dir, &all);
    out.trim()
        .strip_prefix("added rule ")
        .unwrap_or_else(|| panic!("unexpected output of rule add: {out:?}"))
        .to_string()
}

/// `apikey create NAME --scope S --json`; returns the key.
fn create_key(data_dir: &Path, name: &str, scope: &str) -> String {
    let out = latchkey_ok(
        data_dir,
        &["apikey", "create", name, "--scope", scope, "--json"],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    v["key"].as_str().unwrap().to_string()
}

/// A client_credentials client with this audience and these scopes: (client_id, secret).
fn machine_client(data_dir: &Path, name: &str, audience: &str, scope: &str) -> (String, String) {
    let out = latchkey_ok(
        data_dir,
        &[
            "client",
            "add",
            name,
            "--grant",
            "client_credentials",
            "--audience",
            audience,
            "--scope",
            scope,
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    (
        v["client_id"].as_str().unwrap().to_string(),
        v["client_secret"].as_str().unwrap().to_string(),
    )
}

/// The users and rules most tests share:
///
/// - alice: groups admins and family, name "Alice Liddell", email alice@example.org;
///   bob: no groups, name "Bob".
/// - rules, in order:
///   1. app.test /health (exact) bypass
///   2. app.test /admin/* deny
///   3. app.test /* allow group admins; machines with scope app:read
///   4. any.test /* allow any signed-in user
///   5. user.test /* allow user bob
///   6. m.test /* GET bypass
///   7. m.test /* allow group admins
///   8. closed.test /* deny
fn standard(dir: &Path) {
    add_user(
        dir,
        "alice",
        &[
            "--group",
            "admins",
            "--group",
            "family",
            "--name",
            "Alice Liddell",
            "--email",
            "alice@example.org",
        ],
    );
    add_user(dir, "bob", &["--name", "Bob"]);
    add_rule(
        dir,
        &["--host", "app.test", "--path", "/health", "--bypass"],
    );
    add_rule(dir, &["--host", "app.test", "--path", "/admin/*", "--deny"]);
    add_rule(
        dir,
        &[
            "--host",
            "app.test",
            "--allow-group",
            "admins",
            "--scope",
            "app:read",
        ],
    );
    add_rule(dir, &["--host", "any.test", "--allow-any-user"]);
    add_rule(dir, &["--host", "user.test", "--allow-user", "bob"]);
    add_rule(dir, &["--host", "m.test", "--method", "GET", "--bypass"]);
    add_rule(dir, &["--host", "m.test", "--allow-group", "admins"]);
    add_rule(dir, &["--host", "closed.test", "--deny"]);
}

fn start() -> Server {
    Server::start_with(&[], standard)
}

// ---------------------------------------------------------------------------------------------
// Asking as the proxy
// ---------------------------------------------------------------------------------------------

/// Traefik/Caddy headers for `http://HOST URI`.
fn fwd(host: &str, uri: &str) -> String {
    format!("X-Forwarded-Proto: http\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Uri: {uri}\r\n")
}

/// Traefik/Caddy headers with a method.
fn fwd_m(host: &str, uri: &str, method: &str) -> String {
    format!("{}X-Forwarded-Method: {method}\r\n", fwd(host, uri))
}

/// nginx's header.
fn orig(url: &str) -> String {
    format!("X-Original-URL: {url}\r\n")
}

fn html() -> String {
    format!("Accept: {HTML}\r\n")
}

fn json_accept() -> String {
    "Accept: application/json\r\n".into()
}

/// `Cookie: latchkey-fa=…` for this browser's forward-auth cookie.
fn fa_cookie(b: &Browser) -> String {
    format!(
        "Cookie: latchkey-fa={}\r\n",
        b.cookie("latchkey-fa")
            .expect("the browser has a forward-auth cookie")
    )
}

/// `METHOD /api/forward-auth` with these header lines; asserts the one `Cache-Control:
/// no-store` every answer must carry.
fn ask_with(server: &Server, method: &str, headers: &str) -> Response {
    let r = server.raw(
        format!("{method} {FA} HTTP/1.1\r\nHost: auth.test\r\nConnection: close\r\n{headers}\r\n")
            .as_bytes(),
    );
    assert_eq!(
        r.headers_named("cache-control"),
        vec!["no-store"],
        "status {}, headers {:?}",
        r.status,
        r.headers
    );
    r
}

fn ask(server: &Server, headers: &str) -> Response {
    ask_with(server, "GET", headers)
}

/// Asserts a 200 admitting this user, with exactly these `Remote-*` values.
fn assert_allowed(r: &Response, user: &str, name: &str, email: &str, groups: &str) {
    assert_eq!(r.status, 200, "{:?} {}", r.headers, r.text());
    assert_eq!(
        r.headers_named("remote-user"),
        vec![user],
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.headers_named("remote-name"),
        vec![name],
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.headers_named("remote-email"),
        vec![email],
        "{:?}",
        r.headers
    );
    assert_eq!(
        r.headers_named("remote-groups"),
        vec![groups],
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("location"), None);
    assert_eq!(r.header("www-authenticate"), None);
    assert!(r.body.is_empty(), "{}", r.text());
}

fn assert_alice(r: &Response) {
    assert_allowed(
        r,
        "alice",
        "Alice Liddell",
        "alice@example.org",
        "admins,family",
    );
}

/// A bypass: 200 with every `Remote-*` header present and empty.
fn assert_bypass(r: &Response) {
    assert_allowed(r, "", "", "", "");
}

/// Asserts the 403 page.
fn assert_denied(r: &Response) {
    assert_eq!(r.status, 403, "{:?} {}", r.headers, r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{:?}",
        r.headers
    );
    assert!(r.text().contains("Access denied"), "{}", r.text());
    assert_no_identity(r);
    assert_eq!(r.header("location"), None);
}

/// Asserts a 401 with the plain Bearer challenge (no credentials were sent) and no redirect.
fn assert_challenge(r: &Response) {
    assert_eq!(r.status, 401, "{:?} {}", r.headers, r.text());
    assert_eq!(
        r.headers_named("www-authenticate"),
        vec![CHALLENGE],
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("location"), None, "{:?}", r.headers);
    // RFC 6750 §3.1: no error in the header, and none in the body either.
    assert_eq!(r.json(), serde_json::json!({}), "{}", r.text());
    assert_no_identity(r);
}

/// Asserts a 401 or 403 whose challenge carries `error="ERROR"`.
fn assert_bearer_error(r: &Response, status: u16, error: &str) {
    assert_eq!(r.status, status, "{:?} {}", r.headers, r.text());
    let challenge = r.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.starts_with(CHALLENGE) && challenge.contains(&format!("error=\"{error}\"")),
        "{challenge:?}"
    );
    assert_eq!(r.json()["error"], error, "{}", r.text());
    assert_no_identity(r);
}

fn assert_no_identity(r: &Response) {
    for h in [
        "remote-user",
        "remote-name",
        "remote-email",
        "remote-groups",
    ] {
        assert_eq!(r.header(h), None, "{h} on a refusal: {:?}", r.headers);
    }
}

/// `<issuer>/login?rd=<original, form-encoded>`.
fn login_url(issuer: &str, original: &str) -> String {
    format!("{issuer}/login?rd={}", form_encode(original))
}

/// Asserts the Traefik/Caddy answer to a browser that is not signed in.
fn assert_to_login(server: &Server, r: &Response, original: &str) {
    assert_to_login_at(&server.issuer(), r, original);
}

fn assert_to_login_at(issuer: &str, r: &Response, original: &str) {
    assert_eq!(r.status, 302, "{:?} {}", r.headers, r.text());
    assert_eq!(
        r.header("location"),
        Some(login_url(issuer, original).as_str())
    );
    assert_eq!(
        query_param(r.header("location").unwrap(), "rd").as_deref(),
        Some(original)
    );
    assert_no_identity(r);
}

/// True once `f` holds, polling for at most `limit`.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Signing in through /login?rd=
// ---------------------------------------------------------------------------------------------

/// The `Set-Cookie` line for cookie `name`, if the response sets it (exactly once).
fn set_cookie<'r>(r: &'r Response, name: &str) -> Option<&'r str> {
    let prefix = format!("{name}=");
    let lines: Vec<&str> = r
        .headers_named("set-cookie")
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    assert!(lines.len() <= 1, "{name} set twice: {lines:?}");
    lines.into_iter().next()
}

/// The names of every cookie a response sets.
fn cookie_names(r: &Response) -> Vec<String> {
    r.headers_named("set-cookie")
        .iter()
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect()
}

/// The attributes of a `Set-Cookie` line, lower-cased names with their values as sent.
fn attrs(line: &str) -> Vec<(String, String)> {
    line.split(';')
        .skip(1)
        .map(|a| {
            let (k, v) = a.split_once('=').unwrap_or((a, ""));
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect()
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Signs in at `/login?rd=RD` with the shared login step, asserting the page kept `expect_rd`
/// in its hidden field (which is what it posts back). Returns the POST's response.
fn login_with_rd(b: &mut Browser, user: &str, rd: &str, expect_rd: &str) -> Response {
    let (html, r) = b.submit_login_page(&format!("/login?rd={}", form_encode(rd)), user, PASSWORD);
    let kept = hidden_input(&html, "rd").expect("the login page has an rd field");
    assert_eq!(kept, expect_rd, "hidden rd for {rd:?}");
    r
}

/// Signs `user` in through `/login?rd=RD` with a new browser; asserts the 303 back to `rd` with
/// both cookies, and returns the browser.
fn sign_in<'a>(server: &'a Server, user: &str, rd: &str) -> Browser<'a> {
    let mut b = Browser::new(server);
    let r = login_with_rd(&mut b, user, rd, rd);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(rd));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(set_cookie(&r, "latchkey-fa").is_some(), "{:?}", r.headers);
    assert!(
        set_cookie(&r, "latchkey-session").is_some(),
        "{:?}",
        r.headers
    );
    b
}

// ---------------------------------------------------------------------------------------------
// 1. Allowed, and single sign-on
// ---------------------------------------------------------------------------------------------

#[test]
fn a_group_member_signs_in_through_rd_and_is_admitted_with_remote_headers() {
    let server = start();
    let rd = "http://app.test/dash?tab=1&x=%2F";
    let mut b = Browser::new(&server);
    let r = login_with_rd(&mut b, "alice", rd, rd);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(rd));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // The forward-auth cookie: a session cookie for every path, HttpOnly, Lax; http issuer and
    // no --cookie-domain, so neither Secure nor Domain.
    let fa = set_cookie(&r, "latchkey-fa").expect("a forward-auth cookie");
    let a = attrs(fa);
    assert_eq!(attr(&a, "path"), Some("/"), "{fa}");
    assert!(
        attr(&a, "max-age").unwrap().parse::<i64>().unwrap() > 0,
        "{fa}"
    );
    assert_eq!(attr(&a, "httponly"), Some(""), "{fa}");
    assert_eq!(attr(&a, "samesite"), Some("Lax"), "{fa}");
    assert_eq!(attr(&a, "secure"), None, "{fa}");
    assert_eq!(attr(&a, "domain"), None, "{fa}");
    // The login session too, and the two are different values.
    let login = set_cookie(&r, "latchkey-session").expect("a login cookie");
    assert_eq!(attr(&attrs(login), "domain"), None, "{login}");
    assert_ne!(b.cookie("latchkey-fa"), b.cookie("latchkey-session"));

    // Both dialects, any method the app is asked with.
    let cookie = fa_cookie(&b);
    assert_alice(&ask(
        &server,
        &format!("{}{cookie}{}", fwd("app.test", "/dash?tab=1"), html()),
    ));
    assert_alice(&ask(&server, &format!("{}{cookie}", fwd("app.test", "/"))));
    assert_alice(&ask(
        &server,
        &format!("{}{cookie}", fwd_m("APP.test:8080", "/x", "DELETE")),
    ));
    assert_alice(&ask(
        &server,
        &format!("{}{cookie}{}", orig("http://app.test/dash"), json_accept()),
    ));
    // The forward-auth request itself may come as another method (some proxies mirror it).
    assert_alice(&ask_with(
        &server,
        "POST",
        &format!("{}{cookie}Content-Length: 0\r\n", fwd("app.test", "/")),
    ));
    // The login cookie is not a forward-auth credential.
    let login_only = format!(
        "Cookie: latchkey-session={}\r\n",
        b.cookie("latchkey-session").unwrap()
    );
    assert_challenge(&ask(
        &server,
        &format!("{}{login_only}", fwd("app.test", "/")),
    ));
    // A garbage or unknown forward-auth cookie is no session.
    for bad in ["x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let r = ask(
            &server,
            &format!(
                "{}Cookie: latchkey-fa={bad}\r\n{}",
                fwd("app.test", "/"),
                html()
            ),
        );
        assert_to_login(&server, &r, "http://app.test/");
    }
}

#[test]
fn a_signed_in_user_gets_a_forward_cookie_at_login_rd_without_a_password() {
    let server = start();
    let mut b = Browser::new(&server);
    // A plain login (as for an OIDC app): only the login cookie.
    let r = b.submit_login("/login", "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/");
    assert_eq!(set_cookie(&r, "latchkey-fa"), None);
    assert!(b.cookie("latchkey-session").is_some());

    // Sent to /login?rd= by forward auth: straight back, with a forward-auth cookie only.
    let rd = "http://any.test/some/page?q=1";
    let r = b.get(&format!("/login?rd={}", form_encode(rd)));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(rd));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(cookie_names(&r), vec!["latchkey-fa"], "{:?}", r.headers);
    assert!(r.body.is_empty(), "no login form: {}", r.text());
    assert_alice(&ask(
        &server,
        &format!("{}{}", fwd("app.test", "/"), fa_cookie(&b)),
    ));

    // A browser with no login session gets the form instead.
    let mut stranger = Browser::new(&server);
    let page = stranger.get(&format!("/login?rd={}", form_encode(rd)));
    assert_eq!(page.status, 200);
    assert_eq!(hidden_input(&page.text(), "rd").as_deref(), Some(rd));
    assert_eq!(set_cookie(&page, "latchkey-fa"), None);
}

#[test]
fn remote_headers_cannot_be_split_by_a_name_with_control_characters() {
    let server = Server::start_with(&[], |dir| {
        add_user(dir, "eve", &["--group", "admins"]);
        // The CLI refuses such a name now; a database written before it did may hold one, so
        // the headers must stay whole whatever the stored name is.
        rusqlite::Connection::open(dir.join("latchkey.db"))
            .unwrap()
            .execute(
                "UPDATE users SET name = 'Eve' || char(13, 10) || 'X-Evil: 1' WHERE username = 'eve'",
                [],
            )
            .unwrap();
        add_rule(dir, &["--host", "app.test", "--allow-group", "admins"]);
    });
    let b = sign_in(&server, "eve", "http://app.test/");
    let r = ask(
        &server,
        &format!("{}{}", fwd("app.test", "/"), fa_cookie(&b)),
    );
    assert_allowed(&r, "eve", "EveX-Evil: 1", "", "admins");
    assert_eq!(r.header("x-evil"), None);
}

// ---------------------------------------------------------------------------------------------
// 2. Not signed in: redirect for browsers, 401 for everything else
// ---------------------------------------------------------------------------------------------

#[test]
fn a_browser_without_a_session_is_redirected_to_login_with_the_original_url() {
    let server = start();
    // Traefik/Caddy: 302 to the login page with the original URL.
    let r = ask(
        &server,
        &format!("{}{}", fwd("app.test", "/dash?x=1&y=%2F"), html()),
    );
    assert_to_login(&server, &r, "http://app.test/dash?x=1&y=%2F");
    assert!(r.body.is_empty(), "{}", r.text());
    // Scheme and authority as the proxy sent them; no proto means http, no uri means /.
    let r = ask(
        &server,
        &format!(
            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: APP.test:8443\r\nX-Forwarded-Uri: /a?b=c\r\n{}",
            html()
        ),
    );
    assert_to_login(&server, &r, "https://APP.test:8443/a?b=c");
    let r = ask(
        &server,
        &format!("X-Forwarded-Host: app.test\r\n{}", html()),
    );
    assert_to_login(&server, &r, "http://app.test/");
    // The rd in that Location is one the login page accepts.
    let rd = query_param(&location(&r), "rd").unwrap();
    let mut b = Browser::new(&server);
    let page = b.get(&format!("/login?rd={}", form_encode(&rd)));
    assert_eq!(
        hidden_input(&page.text(), "rd").as_deref(),
        Some(rd.as_str())
    );

    // nginx: 401 (error_page 401 redirects) with the challenge and the login URL.
    let r = ask(
        &server,
        &format!("{}{}", orig("http://app.test/dash?x=1"), html()),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.headers_named("www-authenticate"), vec![CHALLENGE]);
    assert_eq!(
        r.header("location"),
        Some(login_url(&server.issuer(), "http://app.test/dash?x=1").as_str())
    );
    assert_no_identity(&r);
}

#[test]
fn scripts_and_api_clients_get_401_with_a_bearer_challenge() {
    let server = start();
    let accepts = [
        json_accept(),
        String::new(),
        "Accept: */*\r\n".into(),
        "Accept: application/json, text/html\r\n".into(),
    ];
    for accept in &accepts {
        for dialect in [fwd("app.test", "/dash"), orig("http://app.test/dash")] {
            let r = ask(&server, &format!("{dialect}{accept}"));
            assert_challenge(&r);
        }
    }
    // Identity headers a client forged are not credentials, and are not echoed back.
    let r = ask(
        &server,
        &format!(
            "{}Remote-User: alice\r\nRemote-Groups: admins\r\n",
            fwd("app.test", "/dash")
        ),
    );
    assert_challenge(&r);
    // Basic credentials meant for the app are not latchkey's: still just "not signed in".
    let r = ask(
        &server,
        &format!(
            "{}{}{}",
            fwd("app.test", "/dash"),
            basic_header("someone", "secret"),
            json_accept()
        ),
    );
    assert_challenge(&r);
    let r = ask(
        &server,
        &format!(
            "{}{}{}",
            fwd("app.test", "/dash"),
            basic_header("someone", "secret"),
            html()
        ),
    );
    assert_to_login(&server, &r, "http://app.test/dash");
}

// ---------------------------------------------------------------------------------------------
// 3. Who a rule admits; methods; paths; bypass, deny, no match
// ---------------------------------------------------------------------------------------------

#[test]
fn group_user_and_any_user_rules_admit_exactly_their_people() {
    let server = start();
    let alice = sign_in(&server, "alice", "http://app.test/");
    let bob = sign_in(&server, "bob", "http://any.test/");
    let (a, b) = (fa_cookie(&alice), fa_cookie(&bob));
    let with =
        |host: &str, cookie: &str| ask(&server, &format!("{}{cookie}{}", fwd(host, "/"), html()));
    // allow-group admins
    assert_alice(&with("app.test", &a));
    assert_denied(&with("app.test", &b));
    assert!(with("app.test", &b).text().contains("not open to you"));
    // allow-user bob
    assert_allowed(&with("user.test", &b), "bob", "Bob", "", "");
    assert_denied(&with("user.test", &a));
    // allow-any-user
    assert_alice(&with("any.test", &a));
    assert_allowed(&with("any.test", &b), "bob", "Bob", "", "");
    // deny and no rule: nobody, signed in or not, and never a redirect to log in.
    for cookie in [&a, &b, &String::new()] {
        assert_denied(&with("closed.test", cookie));
        assert_denied(&with("other.test", cookie));
        assert_denied(&ask(
            &server,
            &format!("{}{cookie}", orig("http://other.test/")),
        ));
    }

    // Group membership changes reach a running server (and its session cache) quickly.
    server.cli_ok(&["user", "group", "remove", "alice", "admins"]);
    assert!(
        eventually(RELOAD, || with("app.test", &a).status == 403),
        "alice still admitted after leaving admins"
    );
    assert_denied(&with("app.test", &a));
    server.cli_ok(&["user", "group", "add", "bob", "admins"]);
    assert!(
        eventually(RELOAD, || with("app.test", &b).status == 200),
        "bob not admitted after joining admins"
    );
    assert_allowed(&with("app.test", &b), "bob", "Bob", "", "admins");
}

#[test]
fn method_specific_rules_match_the_original_method() {
    let server = start();
    let alice = sign_in(&server, "alice", "http://m.test/");
    let bob = sign_in(&server, "bob", "http://m.test/");
    // Every method of the forward-auth request is answered (proxies differ in what they send).
    for m in ["PUT", "PATCH", "OPTIONS"] {
        assert_bypass(&ask_with(&server, m, &fwd_m("m.test", "/", "GET")));
    }
    let mut s = server.connect();
    s.write_all(
        format!(
            "HEAD {FA} HTTP/1.1\r\nHost: auth.test\r\nConnection: close\r\n{}\r\n",
            fwd_m("m.test", "/", "POST")
        )
        .as_bytes(),
    )
    .unwrap();
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 401, "HEAD {:?}", r.headers);
    assert_eq!(r.headers_named("cache-control"), vec!["no-store"]);
    assert_eq!(r.headers_named("www-authenticate"), vec![CHALLENGE]);
    // m.test: GET bypass, everything else admins.
    assert_bypass(&ask(
        &server,
        &format!("{}{}", fwd_m("m.test", "/", "GET"), html()),
    ));
    assert_bypass(&ask(
        &server,
        &format!("{}{}", fwd_m("m.test", "/", "get"), html()),
    ));
    assert_bypass(&ask(&server, &fwd("m.test", "/x")));
    assert_bypass(&ask(&server, &orig("http://m.test/x")));
    // The method of the forward-auth request itself does not matter; the original one does.
    assert_bypass(&ask_with(&server, "DELETE", &fwd_m("m.test", "/", "GET")));
    let r = ask(
        &server,
        &format!("{}{}", fwd_m("m.test", "/p", "POST"), html()),
    );
    assert_to_login(&server, &r, "http://m.test/p");
    assert_challenge(&ask(&server, &fwd_m("m.test", "/p", "POST")));
    assert_challenge(&ask(
        &server,
        &format!("{}X-Original-Method: POST\r\n", orig("http://m.test/p")),
    ));
    assert_bypass(&ask(
        &server,
        &format!("{}X-Original-Method: GET\r\n", orig("http://m.test/p")),
    ));
    assert_denied(&ask(
        &server,
        &format!("{}{}", fwd_m("m.test", "/p", "POST"), fa_cookie(&bob)),
    ));
    assert_alice(&ask(
        &server,
        &format!("{}{}", fwd_m("m.test", "/p", "POST"), fa_cookie(&alice)),
    ));
    assert_alice(&ask(
        &server,
        &format!(
            "{}X-Original-Method: PUT\r\n{}",
            orig("http://m.test/p"),
            fa_cookie(&alice)
        ),
    ));
}

#[test]
fn exact_and_prefix_paths_first_match_wins() {
    let server = start();
    let alice = sign_in(&server, "alice", "http://app.test/");
    let a = fa_cookie(&alice);
    // /health is exact: a bypass only for itself (the query does not count).
    assert_bypass(&ask(&server, &fwd("app.test", "/health")));
    assert_bypass(&ask(&server, &fwd("app.test", "/health?probe=1")));
    assert_bypass(&ask(&server, &orig("http://app.test/health?probe=1")));
    for p in ["/health/", "/health/x", "/healthz", "/"] {
        let r = ask(&server, &format!("{}{}", fwd("app.test", p), html()));
        assert_to_login(&server, &r, &format!("http://app.test{p}"));
    }
    // /admin/* comes before /*: denied even for admins; /admin and /administrator are not
    // under /admin/.
    for p in ["/admin/", "/admin/x", "/admin/x/y?z=1"] {
        assert_denied(&ask(&server, &format!("{}{a}", fwd("app.test", p))));
    }
    for p in ["/admin", "/administrator", "/x/admin/"] {
        assert_alice(&ask(&server, &format!("{}{a}", fwd("app.test", p))));
    }
    // Hosts are compared without case and port.
    assert_denied(&ask(
        &server,
        &format!("{}{a}", fwd("APP.TEST:443", "/admin/x")),
    ));
    assert_denied(&ask(
        &server,
        &format!("{}{a}", orig("http://App.Test:8080/admin/x")),
    ));
    // A host that only ends like a protected one is not it.
    assert_denied(&ask(&server, &format!("{}{a}", fwd("evil-app.test", "/"))));
    assert_denied(&ask(&server, &format!("{}{a}", fwd("app.test.evil", "/"))));
}

#[test]
fn path_tricks_are_normalised_before_matching() {
    let server = start();
    let alice = sign_in(&server, "alice", "http://app.test/");
    let a = fa_cookie(&alice);
    let tricks = [
        "/%61dmin/",
        "/%61dmin/x",
        "//admin/",
        "//admin//x",
        "/x/../admin/",
        "/x/y/../../admin/z",
        "/./admin/x",
        "/admin/./x",
        "/admin%2Fx",
        "/admin%2fx",
        "/x/%2e%2e/admin/",
        "/x/%2E%2E/admin/x",
        "/%2Fadmin/",
        "/../admin/",
        "/%2e%2e/admin/",
    ];
    for t in tricks {
        let r = ask(&server, &format!("{}{a}", fwd("app.test", t)));
        assert_eq!(r.status, 403, "X-Forwarded-Uri {t} was not denied");
        assert_denied(&r);
        let r = ask(
            &server,
            &format!("{}{a}", orig(&format!("http://app.test{t}"))),
        );
        assert_eq!(
            r.status, 403,
            "X-Original-URL http://app.test{t} was not denied"
        );
        assert_denied(&r);
    }
    // Normalisation meets bypass paths the same way.
    assert_bypass(&ask(&server, &fwd("app.test", "/x/../health")));
    assert_bypass(&ask(&server, &fwd("app.test", "/%68ealth")));
}

#[test]
fn rule_changes_reach_a_running_server_and_move_changes_the_decision() {
    let server = start();
    let alice = sign_in(&server, "alice", "http://app.test/");
    let a = fa_cookie(&alice);
    let admin = || ask(&server, &format!("{}{a}", fwd("app.test", "/admin/x")));
    assert_denied(&admin());

    // A new rule at the end is shadowed by the earlier deny.
    let id = server
        .cli_ok(&[
            "rule",
            "add",
            "--host",
            "app.test",
            "--path",
            "/admin/*",
            "--allow-user",
            "alice",
        ])
        .trim()
        .strip_prefix("added rule ")
        .unwrap()
        .to_string();
    // Make sure the server has reloaded: a rule for a new host added at the same time works.
    server.cli_ok(&["rule", "add", "--host", "new.test", "--bypass"]);
    assert!(
        eventually(RELOAD, || ask(&server, &fwd("new.test", "/")).status == 200),
        "a new rule did not reach the server"
    );
    assert_bypass(&ask(&server, &fwd("new.test", "/")));
    assert_denied(&admin());

    // Moved first, it decides.
    let out = server.cli_ok(&["rule", "move", &id, "1"]);
    assert_eq!(out.trim(), format!("rule {id} is now number 1"));
    assert!(
        eventually(RELOAD, || admin().status == 200),
        "rule move did not change the decision"
    );
    assert_alice(&admin());
    // Bob is not alice: the first matching rule decides, there is no fall-through.
    let bob = sign_in(&server, "bob", "http://app.test/");
    assert_denied(&ask(
        &server,
        &format!("{}{}", fwd("app.test", "/admin/x"), fa_cookie(&bob)),
    ));

    // Removed, the deny decides again.
    let out = server.cli_ok(&["rule", "remove", &id]);
    assert_eq!(out.trim(), format!("removed rule {id}"));
    assert!(
        eventually(RELOAD, || admin().status == 403),
        "rule remove did not change the decision"
    );
    assert_denied(&admin());
}

#[test]
fn bypass_answers_before_credentials_and_deny_before_everything() {
    let (server, keys) = server_with_machines(&[]);
    let robot = &keys[0];
    // Bypass: no session needed; garbage credentials change nothing.
    for extra in [
        String::new(),
        html(),
        "Cookie: latchkey-fa=garbage\r\n".into(),
        "X-API-Key: lk_nonsense\r\n".into(),
        "Authorization: Bearer not-a-token\r\n".into(),
    ] {
        assert_bypass(&ask(
            &server,
            &format!("{}{extra}", fwd("app.test", "/health")),
        ));
    }
    // Deny: not even a valid key with every scope, nor an admin.
    let alice = sign_in(&server, "alice", "http://app.test/");
    for extra in [
        String::new(),
        html(),
        format!("X-API-Key: {robot}\r\n"),
        fa_cookie(&alice),
    ] {
        assert_denied(&ask(
            &server,
            &format!("{}{extra}", fwd("closed.test", "/")),
        ));
        assert_denied(&ask(
            &server,
            &format!("{}{extra}", fwd("app.test", "/admin/")),
        ));
        // No rule at all.
        assert_denied(&ask(
            &server,
            &format!("{}{extra}", fwd("nowhere.test", "/")),
        ));
    }
    let r = ask(&server, &fwd("nowhere.test", "/"));
    assert!(r.text().contains("No access rule"), "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// 4. Machines: API keys and access tokens
// ---------------------------------------------------------------------------------------------

/// The standard server plus keys `robot` (scope app:read) and `weak` (scope other:read), and
/// these extra rules. Returns the server and the two keys.
fn server_with_machines(extra_rules: &[&[&str]]) -> (Server, Vec<String>) {
    let keys = Mutex::new(Vec::new());
    let server = Server::start_with(&[], |dir| {
        standard(dir);
        for r in extra_rules {
            add_rule(dir, r);
        }
        let mut k = keys.lock().unwrap();
        k.push(create_key(dir, "robot", "app:read"));
        k.push(create_key(dir, "weak", "other:read"));
    });
    (server, keys.into_inner().unwrap())
}

/// A well-formed but unknown key: the robot key with one body character changed (its checksum
/// no longer matches), and a random-looking one.
fn bad_keys(good: &str) -> Vec<String> {
    let mut chars: Vec<char> = good.chars().collect();
    chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
    vec![
        chars.into_iter().collect(),
        "lk_000000000000000000000000000000000000000".into(),
        "lk_short".into(),
    ]
}

#[test]
fn an_api_key_with_the_rules_scope_passes_as_its_name() {
    let (server, keys) = server_with_machines(&[]);
    let robot = &keys[0];
    for cred in [
        format!("X-API-Key: {robot}\r\n"),
        format!("Authorization: Bearer {robot}\r\n"),
    ] {
        for dialect in [fwd("app.test", "/api/x"), orig("http://app.test/api/x")] {
            let r = ask(&server, &format!("{dialect}{cred}{}", json_accept()));
            assert_allowed(&r, "robot", "robot", "", "");
        }
    }
}

#[test]
fn an_api_key_without_the_scope_or_for_a_people_only_rule_is_forbidden() {
    let (server, keys) = server_with_machines(&[]);
    let (robot, weak) = (&keys[0], &keys[1]);
    // Key without app:read.
    for cred in [
        format!("X-API-Key: {weak}\r\n"),
        format!("Authorization: Bearer {weak}\r\n"),
    ] {
        let r = ask(&server, &format!("{}{cred}", fwd("app.test", "/")));
        assert_denied(&r);
    }
    // any.test admits people only (no --scope): a valid key is refused, not challenged.
    let r = ask(
        &server,
        &format!("{}X-API-Key: {robot}\r\n", fwd("any.test", "/")),
    );
    assert_denied(&r);
    assert!(r.text().contains("API key"), "{}", r.text());
    // The same with a session works.
    let bob = sign_in(&server, "bob", "http://any.test/");
    assert_allowed(
        &ask(
            &server,
            &format!("{}{}", fwd("any.test", "/"), fa_cookie(&bob)),
        ),
        "bob",
        "Bob",
        "",
        "",
    );
}

#[test]
fn without_credentials_the_challenge_and_the_body_name_no_error() {
    let (server, _keys) = server_with_machines(&[]);
    // app.test admits tokens and keys with app:read; any.test only people. Without any
    // credentials both answer the bare challenge, in either proxy dialect.
    for dialect in [
        fwd("app.test", "/api/x"),
        orig("http://app.test/api/x"),
        fwd("any.test", "/"),
    ] {
        let r = ask(&server, &format!("{dialect}{}", json_accept()));
        assert_challenge(&r);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    // A key sent twice keeps its code: 400 invalid_request, header and body.
    let r = ask(
        &server,
        &format!(
            "{}X-API-Key: lk_a\r\nX-API-Key: lk_b\r\n",
            fwd("app.test", "/api/x")
        ),
    );
    assert_bearer_error(&r, 400, "invalid_request");
    assert_eq!(r.json()["error"], "invalid_request", "{}", r.text());
    // An unknown access token: 401 invalid_token.
    let r = ask(
        &server,
        &format!(
            "{}Authorization: Bearer abc.def.ghi\r\n",
            fwd("app.test", "/api/x")
        ),
    );
    assert_bearer_error(&r, 401, "invalid_token");
    assert_eq!(r.json()["error"], "invalid_token", "{}", r.text());
}

#[test]
fn a_bad_api_key_is_401_invalid_token() {
    let (server, keys) = server_with_machines(&[]);
    for bad in bad_keys(&keys[0]) {
        for cred in [
            format!("X-API-Key: {bad}\r\n"),
            format!("Authorization: Bearer {bad}\r\n"),
        ] {
            // Even a browser with a key is not redirected: the key decided.
            for accept in [json_accept(), html()] {
                let r = ask(&server, &format!("{}{cred}{accept}", fwd("app.test", "/")));
                assert_bearer_error(&r, 401, "invalid_token");
                assert_eq!(r.header("location"), None);
            }
        }
    }
    // Sent twice (header and Bearer), it is a bad request, never a pass.
    let robot = &keys[0];
    let r = ask(
        &server,
        &format!(
            "{}X-API-Key: {robot}\r\nAuthorization: Bearer {robot}\r\n",
            fwd("app.test", "/")
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_no_identity(&r);
}

/// A client_credentials token (asserting success).
fn cc_token(server: &Server, client: &(String, String), scope: &str) -> String {
    let r = server.post_form(
        "/token",
        &format!("grant_type=client_credentials&scope={}", form_encode(scope)),
        &basic_header(&client.0, &client.1),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["access_token"].as_str().unwrap().to_string()
}

/// The unverified claims of a JWT.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[test]
fn access_tokens_pass_with_the_apps_audience_and_the_rules_scope() {
    let server = start();
    let svc = machine_client(
        &server.data_dir,
        "svc",
        "http://app.test",
        "app:read other:read",
    );
    let foreign = machine_client(&server.data_dir, "foreign", "http://other.test", "app:read");
    let people = machine_client(&server.data_dir, "people", "http://any.test", "app:read");

    let token = cc_token(&server, &svc, "app:read");
    let c = claims(&token);
    assert_eq!(c["aud"], "http://app.test");
    let sub = c["sub"].as_str().unwrap();
    assert_eq!(sub, svc.0, "client_credentials: sub is the client");
    let bearer = format!("Authorization: Bearer {token}\r\n");
    for dialect in [fwd("app.test", "/api"), orig("http://app.test/api")] {
        let r = ask(&server, &format!("{dialect}{bearer}"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("remote-user"), Some(sub));
        assert_eq!(r.header("remote-email"), Some(""));
        assert_eq!(r.header("remote-groups"), Some(""));
    }
    // A token with both scopes is fine too.
    let both = cc_token(&server, &svc, "app:read other:read");
    assert_eq!(
        ask(
            &server,
            &format!("{}Authorization: Bearer {both}\r\n", fwd("app.test", "/"))
        )
        .status,
        200
    );

    // The audience is the origin of the original request: scheme and port count.
    for (proto, host) in [("https", "app.test"), ("http", "app.test:8080")] {
        let r = ask(
            &server,
            &format!(
                "X-Forwarded-Proto: {proto}\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Uri: /\r\n{bearer}"
            ),
        );
        assert_bearer_error(&r, 401, "invalid_token");
    }
    // Another app's token.
    let other = cc_token(&server, &foreign, "app:read");
    let r = ask(
        &server,
        &format!("{}Authorization: Bearer {other}\r\n", fwd("app.test", "/")),
    );
    assert_bearer_error(&r, 401, "invalid_token");
    // Missing the rule's scope.
    let narrow = cc_token(&server, &svc, "other:read");
    let r = ask(
        &server,
        &format!("{}Authorization: Bearer {narrow}\r\n", fwd("app.test", "/")),
    );
    assert_bearer_error(&r, 403, "insufficient_scope");
    // A rule without --scope admits people only.
    let for_any = cc_token(&server, &people, "app:read");
    let r = ask(
        &server,
        &format!(
            "{}Authorization: Bearer {for_any}\r\n",
            fwd("any.test", "/")
        ),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_no_identity(&r);
    // Not a token at all, or a tampered one.
    // One character in the middle of the signature changed.
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() - 20;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    for t in ["eyJhbGciOiJub25lIn0.e30.", "garbage", tampered.as_str()] {
        let r = ask(
            &server,
            &format!(
                "{}Authorization: Bearer {t}\r\n{}",
                fwd("app.test", "/"),
                html()
            ),
        );
        assert_bearer_error(&r, 401, "invalid_token");
    }
    // Revoked: the client is removed.
    server.cli_ok(&["client", "remove", "svc"]);
    assert!(
        eventually(RELOAD, || ask(
            &server,
            &format!("{}{bearer}", fwd("app.test", "/"))
        )
        .status
            == 401),
        "a removed client's token still passes"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Untrusted and forged forwarded headers
// ---------------------------------------------------------------------------------------------

#[test]
fn forwarded_headers_from_an_untrusted_peer_are_ignored() {
    let key = Mutex::new(String::new());
    let setup = |dir: &Path| {
        standard(dir);
        *key.lock().unwrap() = create_key(dir, "robot", "app:read");
    };
    let requests = |k: &str| {
        vec![
            fwd("app.test", "/health"),
            orig("http://app.test/health"),
            format!("{}X-API-Key: {k}\r\n", fwd("app.test", "/")),
        ]
    };

    // The default (loopback trusted): bypassed / allowed.
    let trusted = Server::start_with(&[], setup);
    let k = key.lock().unwrap().clone();
    for req in requests(&k) {
        assert_eq!(ask(&trusted, &req).status, 200, "{req}");
    }
    // Only 10.9.9.9 trusted: the same requests from 127.0.0.1 are denied, and an anonymous
    // browser is not sent to log in.
    let data_dir = trusted.data_dir.clone();
    drop(trusted);
    let untrusted = Server::start_in(data_dir, &["--trusted-proxy", "10.9.9.9/32"]);
    for req in requests(&k) {
        let r = ask(&untrusted, &req);
        assert_denied(&r);
        assert!(r.text().contains("trusted proxy"), "{}", r.text());
    }
    assert_denied(&ask(
        &untrusted,
        &format!("{}{}", fwd("app.test", "/"), html()),
    ));
    // Login pages still work for everyone (they do not read forwarded headers).
    assert_eq!(untrusted.get("/login").status, 200);
    let data_dir = untrusted.data_dir.clone();
    drop(untrusted);

    // --trusted-proxy is repeatable.
    let both = Server::start_in(
        data_dir,
        &[
            "--trusted-proxy",
            "10.9.9.9/32",
            "--trusted-proxy",
            "127.0.0.1/32",
        ],
    );
    for req in requests(&k) {
        assert_eq!(ask(&both, &req).status, 200, "{req}");
    }
}

#[test]
fn forwarded_headers_win_over_a_forged_original_url() {
    let server = start();
    let alice = sign_in(&server, "alice", "http://app.test/");
    let a = fa_cookie(&alice);
    let forged = orig("http://app.test/health");
    // Alone, the X-Original-URL would be a bypass.
    assert_bypass(&ask(&server, &forged));
    // With the X-Forwarded set pointing at a deny path, the deny decides.
    for cookie in [String::new(), a.clone()] {
        let r = ask(
            &server,
            &format!("{}{forged}{cookie}", fwd("app.test", "/admin/x")),
        );
        assert_denied(&r);
    }
    // Pointing at a protected path: not signed in is not signed in (302 — the Forwarded
    // dialect — for a browser, 401 otherwise).
    let r = ask(
        &server,
        &format!("{}{forged}{}", fwd("app.test", "/secret"), html()),
    );
    assert_to_login(&server, &r, "http://app.test/secret");
    assert_challenge(&ask(
        &server,
        &format!("{}{forged}", fwd("app.test", "/secret")),
    ));
    // Another host in X-Forwarded-Host: its rules (none) decide.
    assert_denied(&ask(
        &server,
        &format!("{}{forged}", fwd("other.test", "/health")),
    ));
    // Order of the headers does not matter.
    let r = ask(&server, &format!("{forged}{}", fwd("app.test", "/admin/x")));
    assert_denied(&r);
}

#[test]
fn malformed_proxy_headers_are_denied() {
    let server = start();
    let cases = [
        // Nothing to say what is asked about.
        String::new(),
        "X-Forwarded-Proto: http\r\nX-Forwarded-Uri: /health\r\n".into(),
        "X-Original-Method: GET\r\n".into(),
        // Unknown scheme.
        "X-Forwarded-Proto: ftp\r\nX-Forwarded-Host: app.test\r\nX-Forwarded-Uri: /health\r\n"
            .into(),
        // A URI that is not a path.
        "X-Forwarded-Host: app.test\r\nX-Forwarded-Uri: health\r\n".into(),
        "X-Forwarded-Host: app.test\r\nX-Forwarded-Uri: http://app.test/health\r\n".into(),
        // nginx URLs that are not http(s), relative, or carry user information.
        orig("ftp://app.test/health"),
        orig("/health"),
        orig("http://user:pw@app.test/health"),
        orig("not a url"),
    ];
    for c in &cases {
        let r = ask(&server, &format!("{c}{}", html()));
        assert_denied(&r);
    }
}

/// A trusted proxy that names no request is told which header it left out (403, as for any
/// request it cannot describe), in the dialect of the headers it did send.
#[test]
fn a_trusted_proxy_without_forwarding_headers_is_told_which_are_missing() {
    let server = start();
    let cases = [
        (
            String::new(),
            "it sent no X-Forwarded-Host and X-Forwarded-Uri (Traefik, Caddy) or X-Original-URL (nginx) header.",
        ),
        (
            "X-Forwarded-Proto: http\r\nX-Forwarded-Uri: /health\r\n".into(),
            "it sent no X-Forwarded-Host header.",
        ),
        (
            "X-Forwarded-Host: \r\nX-Forwarded-Method: GET\r\n".into(),
            "it sent no X-Forwarded-Host header.",
        ),
        (
            "X-Original-Method: GET\r\n".into(),
            "it sent no X-Original-URL header.",
        ),
    ];
    for (headers, want) in &cases {
        for accept in [html(), json_accept()] {
            let r = ask(&server, &format!("{headers}{accept}"));
            assert_denied(&r);
            assert!(
                r.text()
                    .contains("The proxy did not say which request to check"),
                "{headers:?}: {}",
                r.text()
            );
            assert!(r.text().contains(want), "{headers:?}: {}", r.text());
        }
    }
    // A header that came twice is no missing header.
    let r = ask(
        &server,
        "X-Forwarded-Host: app.test\r\nX-Forwarded-Host: app.test\r\n",
    );
    assert_denied(&r);
    assert!(!r.text().contains("sent no"), "{}", r.text());
}

/// The 403 for a signed-in user the rule does not admit links to "use another account": on
/// latchkey's host, /logout asks, signs out, and sends the browser to sign in for the same
/// address.
#[test]
fn the_not_admitted_page_offers_another_account() {
    let server = start();
    let mut b = sign_in(&server, "bob", "http://app.test/dash");
    let r = ask(
        &server,
        &format!("{}{}{}", fwd("app.test", "/dash"), fa_cookie(&b), html()),
    );
    assert_denied(&r);
    let text = r.text();
    assert!(text.contains("You are signed in as bob"), "{text}");
    let href = format!(
        "{}/logout?rd={}",
        server.issuer(),
        form_encode("http://app.test/dash")
    );
    assert!(
        text.contains(&format!("<a href=\"{href}\">Use another account</a>")),
        "{text}"
    );
    // Following it: a confirmation first (still signed in), then the login page for the app.
    let page = b.get(&href);
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text()
            .contains("<title>Use another account? · latchkey</title>")
    );
    assert!(b.get("/").text().contains("You are signed in as bob."));
    let r = b.sign_out_at(&href);
    assert_eq!(r.status, 303, "{}", r.text());
    let to = location(&r);
    assert_eq!(
        to,
        format!("/login?rd={}", form_encode("http://app.test/dash"))
    );
    assert!(b.get("/").text().contains("You are not signed in."));
    let login = b.get(&to);
    assert!(
        login
            .text()
            .contains("<title>Sign in to app.test · latchkey</title>"),
        "{}",
        login.text()
    );
    assert_eq!(
        hidden_input(&login.text(), "rd").as_deref(),
        Some("http://app.test/dash")
    );
    // alice signs in there and is let through.
    let alice = sign_in(&server, "alice", "http://app.test/dash");
    assert_alice(&ask(
        &server,
        &format!("{}{}", fwd("app.test", "/dash"), fa_cookie(&alice)),
    ));
    // An rd that no rule covers is dropped: the plain signed-out page.
    let mut b = sign_in(&server, "bob", "http://app.test/dash");
    let r = b.sign_out_at(&format!(
        "/logout?rd={}",
        form_encode("https://evil.example/")
    ));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("location"), None);
    assert!(r.text().contains("You are signed out"), "{}", r.text());
}

/// Repeated or unreadable proxy headers are ambiguous: a request carrying them must be denied,
/// never decided on a default (`/`, GET) or on the other dialect's header.
#[test]
fn ambiguous_proxy_headers_fail_closed() {
    let server = Server::start_with(&[], |dir| {
        standard(dir);
        // A public landing page, everything else closed.
        add_rule(dir, &["--host", "pub.test", "--path", "/", "--bypass"]);
        add_rule(dir, &["--host", "pub.test", "--deny"]);
    });
    // Controls: each request without the repetition is denied or challenged.
    assert_denied(&ask(&server, &fwd("pub.test", "/secret")));
    assert_challenge(&ask(&server, &fwd_m("m.test", "/", "POST")));
    assert_denied(&ask(&server, &fwd("app.test", "/admin/x")));

    let cases = [
        (
            "X-Forwarded-Uri twice",
            format!("{}X-Forwarded-Uri: /secret\r\n", fwd("pub.test", "/secret")),
        ),
        (
            "X-Forwarded-Method twice",
            format!(
                "{}X-Forwarded-Method: POST\r\n",
                fwd_m("m.test", "/", "POST")
            ),
        ),
        (
            "X-Forwarded-Host twice, X-Original-URL at a bypass",
            format!(
                "{}X-Forwarded-Host: app.test\r\n{}",
                fwd("app.test", "/admin/x"),
                orig("http://app.test/health")
            ),
        ),
        (
            "X-Forwarded-Uri with a control character",
            "X-Forwarded-Host: pub.test\r\nX-Forwarded-Uri: /se\tcret\r\n".to_string(),
        ),
    ];
    let mut open = Vec::new();
    for (what, headers) in &cases {
        let r = ask(&server, headers);
        if r.status == 200 {
            open.push(format!("{what}: 200 {:?}", r.headers));
        }
    }
    assert!(open.is_empty(), "answered 200: {open:#?}");
}

// ---------------------------------------------------------------------------------------------
// 6. Return URLs at /login?rd=
// ---------------------------------------------------------------------------------------------

/// A return URL the login must refuse: the page's hidden rd is empty, and a login posting the
/// URL anyway returns to "/" without a forward-auth cookie.
fn assert_rd_refused(server: &Server, trick: &str) {
    let mut b = Browser::new(server);
    let page = b.get(&format!("/login?rd={}", form_encode(trick)));
    assert_eq!(page.status, 200, "{trick:?}: {}", page.text());
    assert_eq!(
        hidden_input(&page.text(), "rd").as_deref(),
        Some(""),
        "rd {trick:?} was kept"
    );
    let html = page.text();
    let r = b.post(
        "/login",
        &[
            ("csrf", &hidden_input(&html, "csrf").unwrap()),
            ("return_to", &hidden_input(&html, "return_to").unwrap()),
            ("rd", trick),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{trick:?}: {}", r.text());
    assert_eq!(r.header("location"), Some("/"), "rd {trick:?} was followed");
    assert_eq!(
        set_cookie(&r, "latchkey-fa"),
        None,
        "rd {trick:?} got a forward-auth cookie"
    );
    assert!(set_cookie(&r, "latchkey-session").is_some());
    // Signed in now: the single sign-on shortcut refuses it too.
    let again = b.get(&format!("/login?rd={}", form_encode(trick)));
    assert_eq!(
        again.status, 200,
        "signed in, rd {trick:?}: {:?}",
        again.headers
    );
    assert_eq!(hidden_input(&again.text(), "rd").as_deref(), Some(""));
    assert_eq!(set_cookie(&again, "latchkey-fa"), None);
}

#[test]
fn open_redirect_tricks_at_login_rd_are_refused() {
    let server = start();
    let long = format!("http://app.test/{}", "a".repeat(5000));
    let tricks = [
        "//evil.example",
        "//evil.example/",
        "///evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https:evil.example",
        "http:evil.example",
        "https:/evil.example",
        "http:/app.test/",
        "https://app.test@evil.example",
        "https://app.test:443@evil.example/",
        "http://alice:pw@app.test/",
        "https://evil.example\\@app.test",
        "http://app.test\\@evil.example/",
        "http:\\\\app.test/",
        "javascript:alert(1)",
        "JavaScript:alert(1)//http://app.test/",
        "data:text/html,<script>alert(1)</script>",
        "ftp://app.test/",
        "ws://app.test/",
        "http://evil.example/",
        "https://evil.example/?http://app.test/",
        "http://evil.example#@app.test/",
        "http://app.test.evil.example/",
        "http://sub.app.test/",
        "http://xn--pp-ovb.test/",
        "/dash",
        "dash",
        "",
        " http://app.test/",
        "http://app.test/\r\nSet-Cookie: x=1",
        "http://app.test/\nLocation: http://evil.example/",
        "http://app.test/a\tb",
        "http://app\t.test/",
        "http://app.test/a b",
        "http://app.test/\x00",
        &long,
    ];
    for t in tricks {
        assert_rd_refused(&server, t);
    }
}

#[test]
fn valid_return_urls_on_protected_hosts_are_followed() {
    let server = start();
    // (rd as given, what the login page keeps and returns to)
    let cases = [
        (
            "http://app.test/dash?x=1&y=2#frag",
            "http://app.test/dash?x=1&y=2#frag",
        ),
        ("https://app.test:8443/p", "https://app.test:8443/p"),
        ("http://APP.test/", "http://app.test/"),
        ("http://app.test", "http://app.test/"),
        ("http://m.test/x", "http://m.test/x"),
        // Percent-encoded CR/LF are part of the path, and stay on app.test.
        (
            "http://app.test/%0d%0aSet-Cookie:x",
            "http://app.test/%0d%0aSet-Cookie:x",
        ),
    ];
    for (rd, kept) in cases {
        let mut b = Browser::new(&server);
        let r = login_with_rd(&mut b, "alice", rd, kept);
        assert_eq!(r.status, 303, "{rd}: {}", r.text());
        assert_eq!(r.header("location"), Some(kept), "{rd}");
        let mut names = cookie_names(&r);
        names.sort();
        assert_eq!(names, vec!["latchkey-fa", "latchkey-session"], "{rd}");
        assert_eq!(r.header("x"), None);
    }
    // Up to the length limit.
    let long = format!("http://app.test/{}", "a".repeat(4000));
    let mut b = Browser::new(&server);
    let r = login_with_rd(&mut b, "alice", &long, &long);
    assert_eq!(r.header("location"), Some(long.as_str()));
}

// ---------------------------------------------------------------------------------------------
// 7. --cookie-domain and https issuers
// ---------------------------------------------------------------------------------------------

fn cookie_domain_setup(dir: &Path) {
    add_user(dir, "alice", &["--group", "admins"]);
    add_rule(
        dir,
        &["--host", "app.test.example", "--allow-group", "admins"],
    );
}

#[test]
fn cookie_domain_widens_only_the_forward_auth_cookie() {
    let server = Server::start_with(&["--cookie-domain", ".Test.Example"], cookie_domain_setup);
    let mut b = Browser::new(&server);
    let rd = "http://app.test.example/";
    let r = login_with_rd(&mut b, "alice", rd, rd);
    assert_eq!(r.status, 303, "{}", r.text());
    let fa = set_cookie(&r, "latchkey-fa").expect("forward-auth cookie");
    let a = attrs(fa);
    assert_eq!(attr(&a, "domain"), Some("test.example"), "{fa}");
    assert_eq!(attr(&a, "httponly"), Some(""), "{fa}");
    assert_eq!(attr(&a, "samesite"), Some("Lax"), "{fa}");
    assert_eq!(attr(&a, "path"), Some("/"), "{fa}");
    assert_eq!(attr(&a, "secure"), None, "http issuer: {fa}");
    let login = set_cookie(&r, "latchkey-session").expect("login cookie");
    assert_eq!(attr(&attrs(login), "domain"), None, "{login}");
    // The CSRF cookie stays on latchkey's host too.
    let page = Browser::new(&server).get("/login");
    let csrf = set_cookie(&page, "latchkey-csrf").unwrap();
    assert_eq!(attr(&attrs(csrf), "domain"), None, "{csrf}");

    let r = ask(
        &server,
        &format!("{}{}", fwd("app.test.example", "/"), fa_cookie(&b)),
    );
    assert_allowed(&r, "alice", "", "", "admins");

    // Logout deletes the forward-auth cookie with the same Domain (else browsers keep it).
    let out = b.sign_out();
    let gone = set_cookie(&out, "latchkey-fa").expect("logout deletes the forward-auth cookie");
    let a = attrs(gone);
    assert_eq!(attr(&a, "max-age"), Some("0"), "{gone}");
    assert_eq!(attr(&a, "domain"), Some("test.example"), "{gone}");
    let gone = set_cookie(&out, "latchkey-session").unwrap();
    assert_eq!(attr(&attrs(gone), "max-age"), Some("0"), "{gone}");
    assert_eq!(attr(&attrs(gone), "domain"), None, "{gone}");
}

#[test]
fn an_https_issuer_uses_a_secure_prefixed_forward_cookie() {
    let issuer = "https://auth.test.example";
    let server = Server::start_with(
        &["--issuer", issuer, "--cookie-domain", "test.example"],
        cookie_domain_setup,
    );
    let mut b = Browser::new(&server);
    let rd = "https://app.test.example/x";
    let r = login_with_rd(&mut b, "alice", rd, rd);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(rd));
    assert_eq!(set_cookie(&r, "latchkey-fa"), None);
    let fa = set_cookie(&r, "__Secure-latchkey-fa").expect("__Secure- forward-auth cookie");
    let a = attrs(fa);
    assert_eq!(attr(&a, "secure"), Some(""), "{fa}");
    assert_eq!(attr(&a, "httponly"), Some(""), "{fa}");
    assert_eq!(attr(&a, "samesite"), Some("Lax"), "{fa}");
    assert_eq!(attr(&a, "domain"), Some("test.example"), "{fa}");
    assert_eq!(attr(&a, "path"), Some("/"), "{fa}");
    // The login cookie is __Host-: Secure, Path=/, never a Domain.
    let login = set_cookie(&r, "__Host-latchkey").expect("__Host- login cookie");
    let a = attrs(login);
    assert_eq!(attr(&a, "secure"), Some(""), "{login}");
    assert_eq!(attr(&a, "path"), Some("/"), "{login}");
    assert_eq!(attr(&a, "domain"), None, "{login}");

    let value = b.cookie("__Secure-latchkey-fa").unwrap().to_string();
    let headers = |cookie: &str| {
        format!(
            "X-Forwarded-Proto: https\r\nX-Forwarded-Host: app.test.example\r\nX-Forwarded-Uri: /x\r\n{cookie}{}",
            html()
        )
    };
    let r = ask(
        &server,
        &headers(&format!("Cookie: __Secure-latchkey-fa={value}\r\n")),
    );
    assert_allowed(&r, "alice", "", "", "admins");
    // Under the http name the cookie is not read; the redirect goes to the https issuer.
    let r = ask(
        &server,
        &headers(&format!("Cookie: latchkey-fa={value}\r\n")),
    );
    assert_to_login_at(issuer, &r, "https://app.test.example/x");
}

#[test]
fn a_bad_cookie_domain_is_a_usage_error() {
    for bad in ["exa mple.org", "example.org/x", "a;b", "."] {
        let dir = crate::support::temp_dir("cookie-domain");
        let mut child = latchkey_cmd()
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["serve", "--listen", "127.0.0.1:0", "--cookie-domain", bad])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(2),
            "--cookie-domain {bad:?} was accepted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 8. Logout, disabled users, the forward cookie is no login
// ---------------------------------------------------------------------------------------------

#[test]
fn logout_ends_both_sessions() {
    let server = start();
    let mut b = sign_in(&server, "alice", "http://app.test/");
    let old_fa = fa_cookie(&b);
    let old_login = b.cookie("latchkey-session").unwrap().to_string();
    assert_alice(&ask(&server, &format!("{}{old_fa}", fwd("app.test", "/"))));

    let r = b.sign_out();
    for name in ["latchkey-fa", "latchkey-session"] {
        let line = set_cookie(&r, name).unwrap_or_else(|| panic!("logout keeps {name}"));
        assert_eq!(attr(&attrs(line), "max-age"), Some("0"), "{line}");
    }
    assert_eq!(b.cookie("latchkey-fa"), None);

    let r = ask(
        &server,
        &format!("{}{old_fa}{}", fwd("app.test", "/"), html()),
    );
    assert_to_login(&server, &r, "http://app.test/");
    assert_challenge(&ask(&server, &format!("{}{old_fa}", fwd("app.test", "/"))));
    // The old login cookie is dead too.
    b.set_cookie("latchkey-session", &old_login);
    let home = b.get("/");
    assert!(home.text().contains("not signed in"), "{}", home.text());
}

#[test]
fn logout_with_only_the_login_cookie_ends_the_forward_session() {
    // Without --cookie-domain latchkey's host may never see the forward-auth cookie.
    let server = start();
    let mut b = sign_in(&server, "alice", "http://app.test/");
    let old_fa = fa_cookie(&b);
    assert_alice(&ask(&server, &format!("{}{old_fa}", fwd("app.test", "/"))));
    b.remove_cookie("latchkey-fa");
    let r = b.sign_out();
    assert!(set_cookie(&r, "latchkey-session").is_some());
    assert_challenge(&ask(&server, &format!("{}{old_fa}", fwd("app.test", "/"))));
}

#[test]
fn the_forward_cookie_is_not_a_login_session() {
    let server = start();
    let rp: Value = serde_json::from_str(&server.cli_ok(&[
        "client",
        "add",
        "web",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        CB,
        "--skip-consent",
        "--json",
    ]))
    .unwrap();
    let authorize = format!(
        "/authorize?{}",
        encode_form(&[
            ("client_id", rp["client_id"].as_str().unwrap()),
            ("redirect_uri", CB),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s1"),
            ("code_challenge", CHALLENGE_S256),
            ("code_challenge_method", "S256"),
        ])
    );
    let signed = sign_in(&server, "alice", "http://app.test/");
    let value = signed.cookie("latchkey-fa").unwrap().to_string();

    // The forward-auth cookie alone, under its own name and under the login cookie's name.
    for name in ["latchkey-fa", "latchkey-session"] {
        let mut b = Browser::new(&server);
        b.set_cookie(name, &value);
        let r = b.get(&authorize);
        assert_eq!(r.status, 303, "{name}: {}", r.text());
        assert!(
            location(&r).starts_with("/login?return_to="),
            "{name}: {}",
            location(&r)
        );
        let home = b.get("/");
        assert!(home.text().contains("not signed in"), "{name}");
        // Nor does it give single sign-on to another protected app.
        let page = b.get(&format!("/login?rd={}", form_encode("http://any.test/")));
        assert_eq!(page.status, 200, "{name}: {:?}", page.headers);
    }
    // The real login cookie does get a code (control).
    let mut b = Browser::new(&server);
    b.set_cookie(
        "latchkey-session",
        signed.cookie("latchkey-session").unwrap(),
    );
    let r = b.get(&authorize);
    assert_eq!(r.status, 303);
    assert!(location(&r).starts_with(CB), "{}", location(&r));
    assert!(query_param(&location(&r), "code").is_some());
}

#[test]
fn disabling_a_user_ends_forward_auth_within_a_second_or_so() {
    let server = start();
    let b = sign_in(&server, "alice", "http://app.test/");
    let cookie = fa_cookie(&b);
    let browser = || {
        ask(
            &server,
            &format!("{}{cookie}{}", fwd("app.test", "/"), html()),
        )
    };
    // Answered (and cached) before the change.
    assert_alice(&browser());
    assert_alice(&browser());
    server.cli_ok(&["user", "disable", "alice"]);
    assert!(
        eventually(RELOAD, || browser().status == 302),
        "a disabled user's forward-auth session still works"
    );
    assert_to_login(&server, &browser(), "http://app.test/");
    assert_challenge(&ask(&server, &format!("{}{cookie}", fwd("app.test", "/"))));
    // Enabling her again does not bring the ended session back.
    server.cli_ok(&["user", "enable", "alice"]);
    std::thread::sleep(RELOAD);
    assert_to_login(&server, &browser(), "http://app.test/");
}

#[test]
fn a_password_change_ends_forward_auth() {
    let server = start();
    let b = sign_in(&server, "alice", "http://app.test/");
    let cookie = fa_cookie(&b);
    let check = || ask(&server, &format!("{}{cookie}", fwd("app.test", "/")));
    assert_alice(&check());
    let out = cli_stdin(
        &server.data_dir,
        &["user", "passwd", "alice", "--password-stdin"],
        "another long password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(RELOAD, || check().status == 401),
        "the forward-auth session survived a password change"
    );
}

/// The forward-auth session belongs to a login session; when the login session reaches its
/// absolute expiry (`session.ttl`), the forward-auth session must end with it, whether or not
/// it is in the in-memory cache.
#[test]
fn a_forward_session_ends_when_its_login_session_expires() {
    let server = start();
    let cached = sign_in(&server, "alice", "http://app.test/");
    let fresh = sign_in(&server, "alice", "http://app.test/");
    let ask_for = |b: &Browser| {
        ask(
            &server,
            &format!("{}{}", fwd("app.test", "/"), fa_cookie(b)),
        )
    };
    // Both login sessions end in a moment (as if `session.ttl` were about to pass); their
    // forward-auth sessions were created for the full lifetime.
    let conn = crate::oauth::db(&server.data_dir);
    let n = conn
        .execute(
            "UPDATE sessions SET expires_at = ?1 WHERE parent IS NULL",
            [crate::oauth::now() + 1],
        )
        .unwrap();
    assert_eq!(n, 2);
    // One forward-auth session is answered (and cached) while its login is still alive.
    assert_alice(&ask_for(&cached));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    // Once the login has expired, neither the cached nor the uncached one works.
    let mut failures = Vec::new();
    for (what, b) in [("uncached", &fresh), ("cached", &cached)] {
        let r = ask_for(b);
        if r.status != 401 {
            failures.push(format!("{what}: {} {:?}", r.status, r.headers));
        }
    }
    assert!(
        failures.is_empty(),
        "forward-auth sessions outlived their login: {failures:#?}"
    );
    // (The login session itself is refused.)
    let mut login = Browser::new(&server);
    login.set_cookie(
        "latchkey-session",
        fresh.cookie("latchkey-session").unwrap(),
    );
    assert!(login.get("/").text().contains("not signed in"));
}

// ---------------------------------------------------------------------------------------------
// 9. OIDC clients limited to groups
// ---------------------------------------------------------------------------------------------

#[test]
fn client_allow_group_refuses_users_outside_the_groups_at_authorize() {
    let server = Server::start_with(&[], |dir| {
        standard(dir);
        add_user(dir, "carol", &["--group", "admins"]);
    });
    let rp: Value = serde_json::from_str(&server.cli_ok(&[
        "client",
        "add",
        "family-app",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        CB,
        "--allow-group",
        "family",
        "--allow-group",
        "admins",
        "--skip-consent",
        "--json",
    ]))
    .unwrap();
    let shown: Value =
        serde_json::from_str(&server.cli_ok(&["client", "show", "family-app", "--json"])).unwrap();
    assert_eq!(shown["allowed_groups"], json!(["family", "admins"]));
    let state = "st a/te&x";
    let authorize = format!(
        "/authorize?{}",
        encode_form(&[
            ("client_id", rp["client_id"].as_str().unwrap()),
            ("redirect_uri", CB),
            ("response_type", "code"),
            ("scope", "openid profile"),
            ("state", state),
            ("code_challenge", CHALLENGE_S256),
            ("code_challenge_method", "S256"),
        ])
    );
    // bob is in neither group: access_denied back to the client, with state and iss.
    let mut bob = Browser::new(&server);
    let cb = bob.login("bob", PASSWORD, &authorize);
    assert!(cb.starts_with(&format!("{CB}?")), "{cb}");
    assert_eq!(query_param(&cb, "error").as_deref(), Some("access_denied"));
    assert_eq!(query_param(&cb, "state").as_deref(), Some(state));
    assert_eq!(
        query_param(&cb, "iss").as_deref(),
        Some(server.issuer().as_str())
    );
    assert_eq!(query_param(&cb, "code"), None);
    // Already signed in, asking again: the same refusal, not a login loop.
    let r = bob.get(&authorize);
    assert_eq!(r.status, 303);
    assert_eq!(
        query_param(&location(&r), "error").as_deref(),
        Some("access_denied")
    );
    // Members of either group get a code.
    for user in ["alice", "carol"] {
        let cb = Browser::new(&server).login(user, PASSWORD, &authorize);
        assert!(cb.starts_with(&format!("{CB}?")), "{cb}");
        assert_eq!(query_param(&cb, "error"), None, "{user}: {cb}");
        assert!(query_param(&cb, "code").is_some(), "{user}: {cb}");
        assert_eq!(query_param(&cb, "state").as_deref(), Some(state));
    }
    // A client without --allow-group is open to everyone (control).
    let open: Value = serde_json::from_str(&server.cli_ok(&[
        "client",
        "add",
        "open-app",
        "--grant",
        "authorization_code",
        "--redirect-uri",
        CB,
        "--skip-consent",
        "--json",
    ]))
    .unwrap();
    let open_authorize = authorize.replace(
        rp["client_id"].as_str().unwrap(),
        open["client_id"].as_str().unwrap(),
    );
    let r = bob.get(&open_authorize);
    assert_eq!(r.status, 303);
    assert!(
        query_param(&location(&r), "code").is_some(),
        "{}",
        location(&r)
    );
}

// ---------------------------------------------------------------------------------------------
// 10. The rule CLI
// ---------------------------------------------------------------------------------------------

fn cli_dir() -> std::path::PathBuf {
    let dir = crate::support::temp_dir("rules").join("data");
    crate::support::init_data_dir(&dir);
    standard(&dir);
    dir
}

#[test]
fn rule_test_explains_which_rule_decides() {
    let dir = cli_dir();
    let rule3 = "rule #3 * app.test/* -> allow group admins; machines with scope app:read";
    let cases: &[(&[&str], String)] = &[
        (
            &["http://app.test/health"],
            "ALLOW (no sign-in needed): decided by rule #1 * app.test/health -> bypass (no sign-in)"
                .into(),
        ),
        (
            &["http://app.test/x"],
            format!("SIGN-IN REQUIRED: decided by {rule3}"),
        ),
        (
            &["http://app.test/x", "--user", "alice"],
            format!("ALLOW alice: decided by {rule3}"),
        ),
        (
            &["http://app.test/x", "--user", "bob"],
            format!("DENY (bob is not admitted): decided by {rule3}"),
        ),
        (
            &["http://app.test/%61dmin/", "--user", "alice"],
            "DENY: decided by rule #2 * app.test/admin/* -> deny".into(),
        ),
        (
            &["https://APP.test:8443/x", "--user", "alice"],
            format!("ALLOW alice: decided by {rule3}"),
        ),
        (
            &["http://m.test/", "--user", "bob"],
            "ALLOW (no sign-in needed): decided by rule #6 GET m.test/* -> bypass (no sign-in)"
                .into(),
        ),
        (
            &["http://m.test/", "--user", "bob", "--method", "post"],
            "DENY (bob is not admitted): decided by rule #7 * m.test/* -> allow group admins"
                .into(),
        ),
        (
            &["http://other.test/x", "--user", "alice"],
            "DENY: no rule matches GET other.test/x".into(),
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["rule", "test"];
        all.extend_from_slice(args);
        assert_eq!(latchkey_ok(&dir, &all).trim(), want, "{args:?}");
    }
    latchkey_ok(&dir, &["user", "disable", "bob"]);
    assert_eq!(
        latchkey_ok(&dir, &["rule", "test", "http://any.test/", "--user", "bob"]).trim(),
        "DENY (bob is disabled): decided by rule #4 * any.test/* -> allow any signed-in user"
    );
    // Errors: not a URL, unknown user.
    for args in [
        vec!["rule", "test", "not a url"],
        vec!["rule", "test", "http://app.test/", "--user", "nobody"],
    ] {
        let out = latchkey(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn rule_list_shows_the_rules_in_order() {
    let dir = crate::support::temp_dir("rules").join("data");
    crate::support::init_data_dir(&dir);
    assert_eq!(
        latchkey_ok(&dir, &["rule", "list"]).trim(),
        "no rules: forward auth denies everything"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&latchkey_ok(&dir, &["rule", "list", "--json"])).unwrap(),
        json!([])
    );
    standard(&dir);
    let list: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["rule", "list", "--json"])).unwrap();
    let row = |id: i64,
               host: &str,
               path: &str,
               method: Value,
               action: &str,
               subject: Value,
               scope: Value| {
        // In this list the ids are the places in the order (1 = first).
        json!({"id": id, "position": id, "host": host, "path": path, "method": method,
               "action": action, "subject": subject, "scope": scope, "require_mfa": false})
    };

    let want = json!([
        row(
            1,
            "app.test",
            "/health",
            Value::Null,
            "bypass",
            Value::Null,
            Value::Null
        ),
        row(
            2,
            "app.test",
            "/admin/*",
            Value::Null,
            "deny",
            Value::Null,
            Value::Null
        ),
        row(
            3,
            "app.test",
            "/*",
            Value::Null,
            "allow_group",
            json!("admins"),
            json!("app:read")
        ),
        row(
            4,
            "any.test",
            "/*",
            Value::Null,
            "allow_any_user",
            Value::Null,
            Value::Null
        ),
        row(
            5,
            "user.test",
            "/*",
            Value::Null,
            "allow_user",
            json!("bob"),
            Value::Null
        ),
        row(
            6,
            "m.test",
            "/*",
            json!("GET"),
            "bypass",
            Value::Null,
            Value::Null
        ),
        row(
            7,
            "m.test",
            "/*",
            Value::Null,
            "allow_group",
            json!("admins"),
            Value::Null
        ),
        row(
            8,
            "closed.test",
            "/*",
            Value::Null,
            "deny",
            Value::Null,
            Value::Null
        ),
    ]);
    assert_eq!(list, want);
    // Hosts are stored lower-case, methods upper-case, paths normalised.
    add_rule(
        &dir,
        &[
            "--host", "Up.Test", "--path", "//a/./b/", "--method", "post", "--deny",
        ],
    );
    let list: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["rule", "list", "--json"])).unwrap();
    assert_eq!(
        list[8],
        row(
            9,
            "up.test",
            "/a/b/",
            json!("POST"),
            "deny",
            Value::Null,
            Value::Null
        )
    );
    // The human list numbers rules by position; move reorders.
    latchkey_ok(&dir, &["rule", "move", "9", "1"]);
    let text = latchkey_ok(&dir, &["rule", "list"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9, "{text}");
    assert_eq!(lines[0].trim(), "1. #9 POST up.test/a/b/ -> deny");
    assert_eq!(
        lines[1].trim(),
        "2. #1 * app.test/health -> bypass (no sign-in)"
    );
    assert_eq!(
        lines[3].trim(),
        "4. #3 * app.test/* -> allow group admins; machines with scope app:read"
    );
    latchkey_ok(&dir, &["rule", "remove", "9"]);
    let list: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["rule", "list", "--json"])).unwrap();
    assert_eq!(list, want);
    // Unknown ids.
    for args in [
        vec!["rule", "remove", "99"],
        vec!["rule", "move", "99", "1"],
    ] {
        let out = latchkey(&dir, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no rule 99"),
            "{args:?}"
        );
    }
}

#[test]
fn rule_add_usage_errors_exit_2_and_add_nothing() {
    let dir = cli_dir();
    let before = latchkey_ok(&dir, &["rule", "list", "--json"]);
    let bad: &[&[&str]] = &[
        // No action.
        &["--host", "x.test"],
        &["--host", "x.test", "--path", "/a/*"],
        // Two actions.
        &["--host", "x.test", "--bypass", "--deny"],
        &[
            "--host",
            "x.test",
            "--allow-group",
            "a",
            "--allow-user",
            "b",
        ],
        &["--host", "x.test", "--allow-any-user", "--deny"],
        // Bad hosts.
        &["--host", "", "--deny"],
        &["--host", "x.test/evil", "--deny"],
        &["--host", "http://x.test", "--deny"],
        &["--host", "x test", "--deny"],
        &["--host", "user@x.test", "--deny"],
        // Bad ports, IP literals and wildcards.
        &["--host", "x.test:", "--deny"],
        &["--host", "x.test:0", "--deny"],
        &["--host", "x.test:65536", "--deny"],
        &["--host", "x.test:http", "--deny"],
        &["--host", "x.test:80:80", "--deny"],
        &["--host", "192.168.1.05", "--deny"],
        &["--host", "1.2.3", "--deny"],
        &["--host", "[fd00::5", "--deny"],
        &["--host", "[x.test]:80", "--deny"],
        &["--host", "fd00::5:99999", "--deny"],
        &["--host", "*", "--deny"],
        &["--host", "*.test", "--deny"],
        &["--host", "a.*.test", "--deny"],
        &["--host", "*x.test", "--deny"],
        &["--host", "*.*.x.test", "--deny"],
        // No host.
        &["--deny"],
        // Bad paths, methods, groups, scopes.
        &["--host", "x.test", "--path", "admin", "--deny"],
        &["--host", "x.test", "--path", "/a b", "--deny"],
        &["--host", "x.test", "--method", "G T", "--deny"],
        &["--host", "x.test", "--method", "", "--deny"],
        &["--host", "x.test", "--allow-group", "bad group"],
        &["--host", "x.test", "--allow-any-user", "--scope", ""],
        &["--host", "x.test", "--allow-any-user", "--scope", "a\"b"],
    ];
    for args in bad {
        let mut all = vec!["rule", "add"];
        all.extend_from_slice(args);
        let out = latchkey(&dir, &all);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert_eq!(latchkey_ok(&dir, &["rule", "list", "--json"]), before);
}

#[test]
fn rule_move_out_of_range_reports_the_real_position_or_refuses() {
    let dir = cli_dir();
    for to in ["0", "99"] {
        let out = latchkey(&dir, &["rule", "move", "4", to]);
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let list: Value =
                serde_json::from_str(&latchkey_ok(&dir, &["rule", "list", "--json"])).unwrap();
            let pos = list
                .as_array()
                .unwrap()
                .iter()
                .position(|r| r["id"] == 4)
                .unwrap()
                + 1;
            assert_eq!(
                text.trim(),
                format!("rule 4 is now number {pos}"),
                "move to {to}"
            );
        } else {
            assert_eq!(out.status.code(), Some(2), "move to {to}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 11. Hosts with ports, IP literals and wildcards; ambiguous paths
// ---------------------------------------------------------------------------------------------

/// The standard setup plus, after its rules (9–16; hosts given in other spellings are stored
/// canonical):
///
/// 9.  192.168.1.5:8080 /* allow group admins
/// 10. 192.168.1.5:9000 /* allow user bob
/// 11. [fd00::5]:8443 /* allow group admins
/// 12. *.wild.test /* allow group admins
/// 13. svc.test:443 /* bypass
/// 14. fd00::6 /* bypass (no port: every port)
/// 15. pub.test /public/* bypass
/// 16. pub.test /* deny
fn hosts_setup(dir: &Path) {
    standard(dir);
    for rule in [
        &["--host", "192.168.1.5:8080", "--allow-group", "admins"][..],
        &["--host", "192.168.1.5:9000", "--allow-user", "bob"],
        &["--host", "[FD00:0::5]:8443", "--allow-group", "admins"],
        &["--host", "*.Wild.test", "--allow-group", "admins"],
        &["--host", "svc.test:443", "--bypass"],
        &["--host", "fd00::6", "--bypass"],
        &["--host", "pub.test", "--path", "/public/*", "--bypass"],
        &["--host", "pub.test", "--deny"],
    ] {
        add_rule(dir, rule);
    }
}

/// `X-Forwarded-*` headers with this scheme.
fn fwd_s(scheme: &str, host: &str, uri: &str) -> String {
    format!("X-Forwarded-Proto: {scheme}\r\nX-Forwarded-Host: {host}\r\nX-Forwarded-Uri: {uri}\r\n")
}

#[test]
fn rules_with_ports_decide_per_port_and_default_ports_count() {
    let server = Server::start_with(&[], hosts_setup);
    let alice = sign_in(&server, "alice", "http://192.168.1.5:8080/x");
    let bob = sign_in(&server, "bob", "http://192.168.1.5:9000/x");
    let (a, b) = (fa_cookie(&alice), fa_cookie(&bob));
    let alice_ok = assert_alice;
    let bob_ok = |r: &Response| assert_allowed(r, "bob", "Bob", "", "");
    // One address, two ports, two decisions — in both dialects.
    alice_ok(&ask(
        &server,
        &format!("{}{a}", fwd("192.168.1.5:8080", "/x")),
    ));
    alice_ok(&ask(
        &server,
        &format!("{}{a}", orig("http://192.168.1.5:8080/x")),
    ));
    assert_denied(&ask(
        &server,
        &format!("{}{a}", fwd("192.168.1.5:9000", "/x")),
    ));
    assert_denied(&ask(
        &server,
        &format!("{}{a}", orig("http://192.168.1.5:9000/x")),
    ));
    bob_ok(&ask(
        &server,
        &format!("{}{b}", fwd("192.168.1.5:9000", "/x")),
    ));
    bob_ok(&ask(
        &server,
        &format!("{}{b}", orig("http://192.168.1.5:9000/x")),
    ));
    assert_denied(&ask(
        &server,
        &format!("{}{b}", fwd("192.168.1.5:8080", "/x")),
    ));
    // Another port, or none (80), or another address: no rule.
    for host in ["192.168.1.5", "192.168.1.5:8081", "192.168.1.6:8080"] {
        assert_denied(&ask(&server, &format!("{}{a}", fwd(host, "/x"))));
        assert_denied(&ask(
            &server,
            &format!("{}{a}", orig(&format!("http://{host}/x"))),
        ));
    }
    // An anonymous browser on a port with a rule is sent to sign in, with the port in rd.
    assert_to_login(
        &server,
        &ask(
            &server,
            &format!("{}{}", fwd("192.168.1.5:8080", "/x"), html()),
        ),
        "http://192.168.1.5:8080/x",
    );
    // The scheme's default port: https without a port is 443, http is 80.
    assert_bypass(&ask(&server, &fwd_s("https", "svc.test", "/")));
    assert_bypass(&ask(&server, &fwd_s("http", "svc.test:443", "/")));
    assert_bypass(&ask(&server, &fwd_s("https", "SVC.test:443", "/")));
    assert_bypass(&ask(&server, &orig("https://svc.test/")));
    assert_bypass(&ask(&server, &orig("https://svc.test:443/")));
    assert_denied(&ask(&server, &fwd_s("http", "svc.test", "/")));
    assert_denied(&ask(&server, &fwd_s("https", "svc.test:8443", "/")));
    assert_denied(&ask(&server, &orig("http://svc.test/")));
    // IPv6 literals arrive bracketed, with or without a port, in any spelling of the address.
    for host in ["[fd00::5]:8443", "[FD00:0:0::5]:8443"] {
        alice_ok(&ask(&server, &format!("{}{a}", fwd(host, "/x"))));
        alice_ok(&ask(
            &server,
            &format!("{}{a}", orig(&format!("http://{host}/x"))),
        ));
    }
    for host in ["[fd00::5]", "[fd00::5]:8444", "[fd00::7]:8443"] {
        assert_denied(&ask(&server, &format!("{}{a}", fwd(host, "/x"))));
    }
    for host in ["[fd00::6]", "[fd00::6]:1", "[fd00:0::6]:65535"] {
        assert_bypass(&ask(&server, &fwd(host, "/")));
    }
    // A port that is not one makes the request unreadable: denied, never matched on the host.
    for host in [
        "svc.test:",
        "svc.test:x",
        "svc.test:0",
        "svc.test:65536",
        "svc.test:443:443",
        "[fd00::6",
        "[fd00::6]x",
        "fd00::6",
    ] {
        assert_denied(&ask(&server, &fwd_s("https", host, "/")));
    }
}

#[test]
fn wildcard_rules_cover_subdomains_but_not_the_apex() {
    let server = Server::start_with(&[], hosts_setup);
    let alice = sign_in(&server, "alice", "http://app.wild.test/");
    let a = fa_cookie(&alice);
    for host in ["app.wild.test", "a.b.wild.test:8443", "APP.Wild.Test"] {
        let r = ask(&server, &format!("{}{a}", fwd(host, "/x")));
        assert_eq!(r.status, 200, "{host}: {}", r.text());
        assert_eq!(r.header("remote-user"), Some("alice"), "{host}");
        let r = ask(
            &server,
            &format!("{}{a}", orig(&format!("https://{host}/x"))),
        );
        assert_eq!(r.header("remote-user"), Some("alice"), "{host}");
    }
    // The apex, and names that only end like it, match no rule: 403 even for a browser that
    // is not signed in (there is nothing to sign in for).
    for host in [
        "wild.test",
        "evilwild.test",
        "wild.test.evil",
        ".wild.test",
        "a..wild.test",
    ] {
        assert_denied(&ask(&server, &format!("{}{a}", fwd(host, "/x"))));
        assert_denied(&ask(&server, &format!("{}{}", fwd(host, "/x"), html())));
    }
    assert_denied(&ask(&server, &format!("{}{a}", orig("http://wild.test/x"))));
    // A subdomain without a session is sent to sign in.
    assert_to_login(
        &server,
        &ask(
            &server,
            &format!("{}{}", fwd("new.wild.test", "/p"), html()),
        ),
        "http://new.wild.test/p",
    );
}

#[test]
fn return_urls_follow_the_rules_hosts_and_ports() {
    let server = Server::start_with(&[], hosts_setup);
    for rd in [
        "http://192.168.1.5:8080/x",
        "http://192.168.1.5:9000/",
        "https://[fd00::5]:8443/x",
        "http://[fd00::6]:1234/",
        "https://x.wild.test/",
        "http://a.b.wild.test:8443/p?q=1",
        "https://svc.test/",
        "http://svc.test:443/",
        // A rule without a port covers every port.
        "https://app.test:8443/p",
    ] {
        let mut b = Browser::new(&server);
        let r = login_with_rd(&mut b, "alice", rd, rd);
        assert_eq!(r.status, 303, "{rd}: {}", r.text());
        assert_eq!(r.header("location"), Some(rd), "{rd}");
        assert!(set_cookie(&r, "latchkey-fa").is_some(), "{rd}");
    }
    for rd in [
        "http://192.168.1.5/x",
        "http://192.168.1.5:8081/x",
        "http://192.168.1.6:8080/x",
        "https://[fd00::5]/x",
        "https://[fd00::7]:8443/x",
        "https://wild.test/",
        "https://evilwild.test/",
        "http://svc.test/",
        "https://svc.test:8443/",
    ] {
        assert_rd_refused(&server, rd);
    }
}

/// Paths that a backend may read differently from RFC 3986, against `pub.test /public/*
/// bypass` in front of `pub.test /* deny`: every one is refused with the 403 page, in both
/// dialects; plain paths still get the bypass and the deny.
#[test]
fn ambiguous_paths_are_refused_before_any_rule() {
    let server = Server::start_with(&[], hosts_setup);
    let alice = sign_in(&server, "alice", "http://app.test/");
    let a = fa_cookie(&alice);
    assert_bypass(&ask(&server, &fwd("pub.test", "/public/x")));
    assert_bypass(&ask(&server, &orig("http://pub.test/public/x?y=%2f")));
    assert_bypass(&ask(&server, &fwd("pub.test", "/public/a/../b/%61")));
    assert_denied(&ask(&server, &fwd("pub.test", "/admin")));
    assert_denied(&ask(&server, &orig("http://pub.test/admin")));
    let forms = [
        "/public/..;/admin",
        "/public/..;x=1/admin",
        "/public/..%3b/admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/.%2e/admin",
        "/public/..%2fadmin",
        "/public/..%2Fadmin",
        "/public\\..\\admin",
        "/public/..\\admin",
        "/public/%5c../admin",
        "/public/%5C..%5Cadmin",
        "/public/%c0%ae%c0%ae/admin",
        "/public/%c0%af../admin",
        "/public/%e0%80%af../admin",
        "/public/%ff/../admin",
        "/public/%252e%252e/admin",
        "/public/%252fadmin",
        "/public/%00/../admin",
        "/public/%0d%0a/../admin",
        "/public/%u002e%u002e/admin",
        "/public/%zz/../admin",
    ];
    for path in forms {
        for headers in [
            fwd("pub.test", path),
            fwd("pub.test", &format!("{path}?q=1")),
            orig(&format!("http://pub.test{path}")),
            orig(&format!("https://pub.test:443{path}?q=1")),
        ] {
            // Neither anonymous nor signed in: the path is refused, not judged.
            for extra in [String::new(), a.clone(), html()] {
                let r = ask(&server, &format!("{headers}{extra}"));
                assert_eq!(r.status, 403, "{headers:?} got {}: {}", r.status, r.text());
                assert_denied(&r);
            }
        }
    }
    // On an allow rule too: alice is admitted to app.test, but not by an ambiguous path.
    assert_eq!(
        ask(&server, &format!("{}{a}", fwd("app.test", "/x;y"))).status,
        403
    );
    assert_eq!(
        ask(&server, &format!("{}{a}", fwd("app.test", "/x"))).status,
        200
    );
}

/// nginx's `error_page 401 =302 …/login?rd=$scheme://$http_host$request_uri` does not encode
/// `rd`: the login page takes the rest of the query as the URL, still checked.
#[test]
fn login_recovers_an_unencoded_rd_with_its_own_query() {
    let server = start();
    let rd = "http://app.test/x/a%20b?a=1&b=2+3&rd=4";
    let mut b = Browser::new(&server);
    let page = b.get(&format!("/login?rd={rd}"));
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert_eq!(hidden_input(&html, "rd").as_deref(), Some(rd));
    let r = b.post(
        "/login",
        &[
            ("csrf", &hidden_input(&html, "csrf").unwrap()),
            ("return_to", &hidden_input(&html, "return_to").unwrap()),
            ("rd", rd),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(rd));
    assert!(set_cookie(&r, "latchkey-fa").is_some());
    // Signed in: the same unencoded link sends the browser straight back.
    let r = b.get(&format!("/login?rd={rd}"));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(rd));
    // The encoded form still works, and an unencoded URL is validated like any other.
    let mut fresh = Browser::new(&server);
    let encoded = fresh.get(&format!("/login?rd={}", form_encode(rd)));
    assert_eq!(hidden_input(&encoded.text(), "rd").as_deref(), Some(rd));
    for bad in [
        "http://evil.example/?x=http://app.test/",
        "http://app.test@evil.example/?a=1&b=2",
        "https://sub.app.test/?a=1",
    ] {
        let mut fresh = Browser::new(&server);
        let page = fresh.get(&format!("/login?rd={bad}"));
        assert_eq!(page.status, 200, "{bad}");
        assert_eq!(
            hidden_input(&page.text(), "rd").as_deref(),
            Some(""),
            "{bad}"
        );
    }
}

#[test]
fn rule_add_accepts_ports_ip_literals_and_wildcards_in_canonical_form() {
    let dir = crate::support::temp_dir("rules").join("data");
    crate::support::init_data_dir(&dir);
    for (given, stored) in [
        ("App.Test:8443", "app.test:8443"),
        ("192.168.1.5", "192.168.1.5"),
        ("192.168.1.5:9000", "192.168.1.5:9000"),
        ("[FD00:0::5]", "[fd00::5]"),
        ("fd00::5", "[fd00::5]"),
        ("[fd00::5]:8080", "[fd00::5]:8080"),
        ("*.Home.Test", "*.home.test"),
        ("*.home.test:8443", "*.home.test:8443"),
    ] {
        add_rule(&dir, &["--host", given, "--deny"]);
        let list: Value =
            serde_json::from_str(&latchkey_ok(&dir, &["rule", "list", "--json"])).unwrap();
        let last = list.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["host"], stored, "{given}");
        let mut keys: Vec<&String> = last.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "action",
                "host",
                "id",
                "method",
                "path",
                "position",
                "require_mfa",
                "scope",
                "subject"
            ],
            "rule list --json keeps its shape"
        );
    }
    let text = latchkey_ok(&dir, &["rule", "list"]);
    assert!(text.contains("#7 * *.home.test/* -> deny"), "{text}");
    assert!(text.contains("#6 * [fd00::5]:8080/* -> deny"), "{text}");
    // A refused host says what is expected.
    let out = latchkey(&dir, &["rule", "add", "--host", "x.test:0", "--deny"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 to 65535") && err.contains("*.example.org") && err.contains("[fd00::5]"),
        "{err}"
    );
}

#[test]
fn rule_test_shows_ports_wildcards_and_ambiguous_paths() {
    let dir = crate::support::temp_dir("rules").join("data");
    crate::support::init_data_dir(&dir);
    hosts_setup(&dir);
    let cases: &[(&[&str], &str)] = &[
        (
            &["http://192.168.1.5:8080/x", "--user", "alice"],
            "ALLOW alice: decided by rule #9 * 192.168.1.5:8080/* -> allow group admins",
        ),
        (
            &["http://192.168.1.5:8080/x", "--user", "bob"],
            "DENY (bob is not admitted): decided by rule #9 * 192.168.1.5:8080/* -> allow group admins",
        ),
        (
            &["http://192.168.1.5:9000/x", "--user", "bob"],
            "ALLOW bob: decided by rule #10 * 192.168.1.5:9000/* -> allow user bob",
        ),
        (
            &["http://192.168.1.5/x"],
            "DENY: no rule matches GET 192.168.1.5/x",
        ),
        (
            &["https://[fd00:0::5]:8443/"],
            "SIGN-IN REQUIRED: decided by rule #11 * [fd00::5]:8443/* -> allow group admins",
        ),
        (
            &["https://a.b.wild.test/"],
            "SIGN-IN REQUIRED: decided by rule #12 * *.wild.test/* -> allow group admins",
        ),
        (
            &["https://wild.test/"],
            "DENY: no rule matches GET wild.test/",
        ),
        (
            &["https://svc.test/"],
            "ALLOW (no sign-in needed): decided by rule #13 * svc.test:443/* -> bypass (no sign-in)",
        ),
        (
            &["http://svc.test:8443/"],
            "DENY: no rule matches GET svc.test:8443/",
        ),
        (
            &["http://pub.test/public/..;/admin"],
            "DENY: the path \"/public/..;/admin\" is ambiguous (a ';' path parameter); forward auth refuses it before any rule",
        ),
        (
            &["http://pub.test/public/%2e%2e/admin"],
            "DENY: the path \"/public/%2e%2e/admin\" is ambiguous (an encoded '.' or '..' segment); forward auth refuses it before any rule",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["rule", "test"];
        all.extend_from_slice(args);
        assert_eq!(latchkey_ok(&dir, &all).trim(), *want, "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 11. Rules and clients follow people and groups, not names
// ---------------------------------------------------------------------------------------------

/// `client add NAME … --allow-group GROUP --skip-consent --json`; returns the `/authorize` URL.
fn group_client(server: &Server, name: &str, group: &str) -> String {
    let rp: Value = serde_json::from_str(&server.cli_ok(&[
        "client",
        "add",
        name,
        "--grant",
        "authorization_code",
        "--redirect-uri",
        CB,
        "--allow-group",
        group,
        "--skip-consent",
        "--json",
    ]))
    .unwrap();
    format!(
        "/authorize?{}",
        encode_form(&[
            ("client_id", rp["client_id"].as_str().unwrap()),
            ("redirect_uri", CB),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", CHALLENGE_S256),
            ("code_challenge_method", "S256"),
        ])
    )
}

/// Whether `user` gets a code (not `access_denied`) from `/authorize`.
fn gets_code(server: &Server, user: &str, authorize: &str) -> bool {
    let cb = Browser::new(server).login(user, PASSWORD, authorize);
    assert!(cb.starts_with(&format!("{CB}?")), "{user}: {cb}");
    match query_param(&cb, "error").as_deref() {
        None => query_param(&cb, "code").is_some(),
        Some("access_denied") => false,
        Some(other) => panic!("{user}: {other}"),
    }
}

#[test]
fn a_user_rule_follows_the_person_through_a_rename_and_never_admits_a_newcomer() {
    let server = start();
    // Rule 5 admits bob. bob becomes robert, and a new person takes the name bob.
    server.cli_ok(&["user", "rename", "bob", "robert"]);
    add_user(&server.data_dir, "bob", &["--name", "Not Bob"]);
    let with =
        |host: &str, cookie: &str| ask(&server, &format!("{}{cookie}{}", fwd(host, "/"), html()));
    let robert = sign_in(&server, "robert", "http://user.test/");
    let newcomer = sign_in(&server, "bob", "http://user.test/");
    assert_allowed(
        &with("user.test", &fa_cookie(&robert)),
        "robert",
        "Bob",
        "",
        "",
    );
    assert_denied(&with("user.test", &fa_cookie(&newcomer)));
    // Listing shows the person's current name.
    let list: Value = serde_json::from_str(&server.cli_ok(&["rule", "list", "--json"])).unwrap();
    assert_eq!(list[4]["subject"], json!("robert"));
    assert!(
        server
            .cli_ok(&["rule", "list"])
            .contains("user.test/* -> allow user robert"),
    );
    assert_eq!(
        server
            .cli_ok(&["rule", "test", "http://user.test/", "--user", "bob"])
            .trim(),
        "DENY (bob is not admitted): decided by rule #5 * user.test/* -> allow user robert"
    );
    // A rule for someone who does not exist is refused: it could only name a name.
    let out = server.cli(&["rule", "add", "--host", "x.test", "--allow-user", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no user named \"nobody\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn group_rules_and_clients_follow_a_renamed_group_and_never_admit_a_new_one_of_the_old_name() {
    let server = start();
    let authorize = group_client(&server, "family-app", "family");
    let alice = sign_in(&server, "alice", "http://app.test/");
    let a = fa_cookie(&alice);
    let with = |cookie: &str| {
        ask(
            &server,
            &format!("{}{cookie}{}", fwd("app.test", "/"), html()),
        )
    };
    assert_alice(&with(&a));
    server.cli_ok(&["group", "rename", "admins", "staff"]);
    server.cli_ok(&["group", "rename", "family", "kin"]);
    // bob joins new groups that took the old names.
    server.cli_ok(&["user", "group", "add", "bob", "admins"]);
    server.cli_ok(&["user", "group", "add", "bob", "family"]);
    let list: Value = serde_json::from_str(&server.cli_ok(&["rule", "list", "--json"])).unwrap();
    assert_eq!(list[2]["subject"], json!("staff"));
    let shown: Value =
        serde_json::from_str(&server.cli_ok(&["client", "show", "family-app", "--json"])).unwrap();
    assert_eq!(shown["allowed_groups"], json!(["kin"]));
    // alice's session sees her groups' new names once the server reloads; she stays admitted.
    assert!(
        eventually(RELOAD, || {
            let r = with(&a);
            r.status == 200 && r.headers_named("remote-groups") == vec!["kin,staff"]
        }),
        "alice is not admitted under the group's new name: {:?}",
        with(&a).headers
    );
    let bob = sign_in(&server, "bob", "http://app.test/");
    assert_denied(&with(&fa_cookie(&bob)));
    // The client: alice (in kin, once family) still gets a code; bob (in the new family) not.
    assert!(gets_code(&server, "alice", &authorize));
    assert!(!gets_code(&server, "bob", &authorize));
}

#[test]
fn removing_a_user_or_group_a_rule_or_client_names_needs_yes_and_says_which() {
    let server = Server::start_with(&[], standard);
    let dir = &server.data_dir;
    let authorize = group_client(&server, "admin-app", "admins");
    let err = |args: &[&str]| {
        let out = latchkey(dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Without --yes: refused, naming the rules and clients; nothing removed.
    let e = err(&["user", "remove", "bob"]);
    assert!(
        e.contains("rule #5 (user.test/*)") && e.contains("--yes"),
        "{e}"
    );
    latchkey_ok(dir, &["user", "show", "bob"]);
    let e = err(&["group", "remove", "admins"]);
    for named in [
        "rule #3 (app.test/*)",
        "rule #7 (m.test/*)",
        "client admin-app (",
    ] {
        assert!(e.contains(named), "{named}: {e}");
    }
    latchkey_ok(dir, &["group", "show", "admins"]);
    // A group nothing names goes without asking.
    latchkey_ok(dir, &["group", "remove", "family"]);
    // With --yes: removed, with the warning; the rules stay and admit nobody.
    let bob_sub = latchkey_ok(dir, &["user", "show", "bob", "--json"]);
    let bob_sub: Value = serde_json::from_str(&bob_sub).unwrap();
    let out = latchkey(dir, &["user", "remove", "bob", "--yes"]);
    assert_eq!(out.status.code(), Some(0));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("warning") && e.contains("rule #5 (user.test/*)"),
        "{e}"
    );
    let out = latchkey(dir, &["group", "remove", "admins", "--yes"]);
    assert_eq!(out.status.code(), Some(0));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("warning") && e.contains("client admin-app ("),
        "{e}"
    );
    let list = latchkey_ok(dir, &["rule", "list"]);
    assert!(
        list.contains(&format!(
            "allow user removed user {}",
            bob_sub["sub"].as_str().unwrap()
        )),
        "{list}"
    );
    assert!(
        list.contains("app.test/* -> allow group removed group "),
        "{list}"
    );
    // A new user and group of the old names get nothing the old ones had.
    add_user(dir, "bob", &["--group", "admins"]);
    let bob = sign_in(&server, "bob", "http://user.test/");
    let b = fa_cookie(&bob);
    for host in ["user.test", "app.test"] {
        assert!(
            eventually(RELOAD, || ask(
                &server,
                &format!("{}{b}{}", fwd(host, "/"), html())
            )
            .status
                == 403),
            "{host}"
        );
    }
    assert!(!gets_code(&server, "bob", &authorize));
}
