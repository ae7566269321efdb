//! End-to-end sign-ins against the real binary from two independent clients:
//!
//! - A real browser: headless Chromium (Debian's `chromium` + `chromium-driver`) driven over
//!   chromedriver's W3C WebDriver HTTP API by the tiny synchronous client in
//!   `support/webdriver.rs`. It follows the authorization request to the login page, types the
//!   credentials, approves consent and lands on a callback server the test runs on 127.0.0.1.
//!   It is a second-tier test: a plain `cargo test` skips it with a message, and under
//!   `scripts/test` (`LATCHKEY_TEST_FULL=1`) a missing or failing Chromium or chromedriver fails
//!   it; it never passes silently.
//! - An independent OpenID Connect library: the `openidconnect` crate does discovery, builds the
//!   authorization URL (PKCE, state, nonce), exchanges the code, validates the ID token (its own
//!   signature, issuer, audience, nonce and `at_hash` checks) and calls UserInfo. The login and
//!   consent pages in between are driven by a cookie-keeping HTTP emulation (no browser).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom as _;
use serde_json::{Value, json};

use crate::support::browser::{hidden_input, location, query_param};
use crate::support::webdriver::{Driver, Session};
use crate::support::{self, PASSWORD, Response, Server, TestClient, add_user, form_encode};

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

/// 32 random bytes, base64url (43 characters: a valid PKCE verifier, state or nonce).
fn random_token() -> String {
    let mut buf = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut buf).unwrap();
    URL_SAFE_NO_PAD.encode(buf)
}

/// A PKCE (verifier, S256 challenge) pair (RFC 7636 §4.2).
fn pkce_pair() -> (String, String) {
    let verifier = random_token();
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// A confidential authorization-code client with one redirect URI.
fn add_code_client(server: &Server, name: &str, redirect_uri: &str) -> TestClient {
    let out = server.cli_ok(&[
        "client",
        "add",
        name,
        "--grant",
        "authorization_code",
        "--redirect-uri",
        redirect_uri,
        "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    TestClient {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: v["client_secret"]
            .as_str()
            .expect("confidential client")
            .to_string(),
    }
}

/// The decoded payload of a JWT (no signature check).
fn jwt_payload(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {jwt}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The test's own callback server
// ---------------------------------------------------------------------------------------------

/// A tiny HTTP server on 127.0.0.1 standing in for the client's redirect URI: records the request
/// line of the first GET and answers every request 200 "done".
struct Callback {
    port: u16,
    first_get: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Callback {
    fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let first_get = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (first, stopping) = (Arc::clone(&first_get), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let first = Arc::clone(&first);
                        // One thread per connection: browsers open idle speculative sockets.
                        std::thread::spawn(move || serve_callback(conn, &first));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("callback accept: {e}"),
                }
            }
        });
        Callback {
            port,
            first_get,
            stop,
            thread: Some(thread),
        }
    }

    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// The request line of the first GET, waiting at most `limit` for it.
    fn wait_first_get(&self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.first_get.lock().unwrap().clone() {
                return Some(line);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_callback(mut conn: TcpStream, first_get: &Mutex<Option<String>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let line = text.lines().next().unwrap_or_default().to_string();
    if line.starts_with("GET ") {
        let mut first = first_get.lock().unwrap();
        if first.is_none() {
            *first = Some(line);
        }
    }
    let _ = conn.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\
          Connection: close\r\n\r\ndone",
    );
}

// ---------------------------------------------------------------------------------------------
// A. Headless Chromium through the real login and consent pages
// ---------------------------------------------------------------------------------------------

#[test]
fn chromium_signs_in_and_lands_on_the_callback() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start();
    let sub = add_user(
        &server.data_dir,
        "alice",
        &["--email", "alice@example.test", "--name", "Alice Liddell"],
    );
    let callback = Callback::start();
    let redirect_uri = callback.redirect_uri();
    let client = add_code_client(&server, "Photo Gallery", &redirect_uri);

    let (verifier, challenge) = pkce_pair();
    let (state, nonce) = (random_token(), random_token());
    let authorize = format!(
        "/authorize?client_id={}&redirect_uri={}&response_type=code&scope=openid+profile+email\
         &state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        form_encode(&client.id),
        form_encode(&redirect_uri),
    );

    // The security headers of the login page, fetched raw (not through the browser).
    let r = server.get(&authorize);
    assert_eq!(r.status, 303, "authorize without a session: {}", r.text());
    let login = location(&r);
    assert!(login.starts_with("/login?return_to="), "{login}");
    let page = server.get(&login);
    assert_eq!(page.status, 200, "login page: {}", page.text());
    assert_security_headers(&page);

    // The browser.
    let dir = support::temp_dir("chromium");
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let driver = Driver::start(&dir);
    let browser = driver.new_session(&profile);
    browser.cmd(
        "POST",
        "/window/rect",
        Some(&json!({"width": 800, "height": 900})),
    );
    browser.color_scheme("light");

    browser.navigate(&server.url(&authorize));
    let username = browser.wait_for("input[name=username]", Duration::from_secs(10));
    let password = browser.wait_for(
        "input[autocomplete=current-password]",
        Duration::from_secs(2),
    );
    let at = browser.current_url();
    assert!(
        at.starts_with(&server.url("/login?return_to=")),
        "the browser was not sent to the login page: {at}"
    );
    // The stylesheet loaded (same origin, allowed by the CSP) and the light palette applies.
    assert_eq!(
        browser.script("return getComputedStyle(document.body).backgroundColor"),
        "rgb(246, 247, 249)",
        "login page background in light mode (is /assets/latchkey.css applied?)"
    );
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(shots.join("login.png"), browser.screenshot()).unwrap();
    // The same page in dark mode (kept for inspection), then back to light.
    browser.color_scheme("dark");
    assert_eq!(
        browser.script("return getComputedStyle(document.body).backgroundColor"),
        "rgb(17, 20, 24)",
        "login page background in dark mode"
    );
    std::fs::write(shots.join("login-dark.png"), browser.screenshot()).unwrap();
    browser.color_scheme("light");

    browser.type_into(&username, "alice");
    browser.type_into(&password, PASSWORD);
    let submit = browser.wait_for("button[type=submit]", Duration::from_secs(2));
    browser.click(&submit);

    // The consent page names the client; the session cookie is HttpOnly and SameSite=Lax.
    let approve = browser.wait_for("button[value=approve]", Duration::from_secs(10));
    let consent = browser.source();
    assert!(
        consent.contains("Photo Gallery"),
        "consent page does not name the client:\n{consent}"
    );
    let cookie = browser.cmd("GET", "/cookie/latchkey-session", None);
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Lax", "{cookie}");
    browser.click(&approve);

    let line = callback
        .wait_first_get(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "the callback server got no request; the browser is at {}:\n{}",
                browser.current_url(),
                browser.source()
            )
        });
    let target = line
        .strip_prefix("GET ")
        .and_then(|l| l.strip_suffix(" HTTP/1.1"))
        .unwrap_or_else(|| panic!("odd request line {line:?}"));
    assert!(target.starts_with("/callback?"), "{line}");
    let code = query_param(target, "code").unwrap_or_else(|| panic!("no code in {line}"));
    assert_eq!(
        query_param(target, "state").as_deref(),
        Some(state.as_str())
    );
    assert_eq!(
        query_param(target, "iss").as_deref(),
        Some(server.issuer().as_str())
    );
    assert_eq!(query_param(target, "error"), None);
    // The browser itself ended up on the callback page.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !browser.current_url().starts_with(&redirect_uri) {
        assert!(
            Instant::now() < deadline,
            "browser is at {}",
            browser.current_url()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The code exchange.
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={verifier}",
        form_encode(&code),
        form_encode(&redirect_uri)
    );
    let r = server.post_basic("/token", &client, &body);
    assert_eq!(r.status, 200, "token: {}", r.text());
    let tokens = r.json();
    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {tokens}"));
    let claims = jwt_payload(id_token);
    assert_eq!(claims["sub"], sub.as_str(), "{claims}");
    assert_eq!(claims["aud"], client.id.as_str(), "{claims}");
    assert_eq!(claims["nonce"], nonce.as_str(), "{claims}");
    assert_eq!(claims["iss"], server.issuer().as_str(), "{claims}");
    assert_eq!(claims["preferred_username"], "alice", "{claims}");
}

/// The headers every HTML page must carry.
fn assert_security_headers(r: &Response) {
    let csp = r
        .header("content-security-policy")
        .expect("Content-Security-Policy");
    assert!(
        csp.split(';').any(|d| d.trim() == "frame-ancestors 'none'"),
        "CSP without frame-ancestors 'none': {csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

// ---------------------------------------------------------------------------------------------
// B. The `openidconnect` crate as the relying party
// ---------------------------------------------------------------------------------------------

/// A cookie-keeping HTTP client for the login and consent pages (no automatic redirects).
struct Jar<'a> {
    server: &'a Server,
    cookies: Vec<(String, String)>,
}

impl<'a> Jar<'a> {
    fn new(server: &'a Server) -> Jar<'a> {
        Jar {
            server,
            cookies: Vec::new(),
        }
    }

    /// The request target for a path or an absolute URL on this server.
    fn target(&self, url: &str) -> String {
        let rest = url.strip_prefix(&self.server.issuer()).unwrap_or(url);
        assert!(rest.starts_with('/'), "not a URL of the server: {url}");
        rest.to_string()
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn send(&mut self, method: &str, url: &str, form: Option<&[(&str, &str)]>) -> Response {
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.target(url),
            self.server.addr
        );
        if !self.cookies.is_empty() {
            let pairs: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            head.push_str(&format!("Cookie: {}\r\n", pairs.join("; ")));
        }
        let body = form
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        if form.is_some() {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        let r = self.server.raw(format!("{head}\r\n{body}").as_bytes());
        for line in r.headers_named("set-cookie") {
            let nv = line.split(';').next().unwrap();
            let (name, value) = nv.split_once('=').unwrap();
            let (name, value) = (name.trim().to_string(), value.trim().to_string());
            let deleted = line
                .split(';')
                .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.cookies.retain(|(k, _)| *k != name);
            if !deleted {
                self.cookies.push((name, value));
            }
        }
        r
    }

    fn get(&mut self, url: &str) -> Response {
        self.send("GET", url, None)
    }

    fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Response {
        self.send("POST", url, Some(form))
    }
}

#[test]
fn openidconnect_library_completes_the_code_flow() {
    use openidconnect::core::{
        CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
        CoreUserInfoClaims,
    };
    use openidconnect::{
        AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };

    let server = Server::start();
    add_user(
        &server.data_dir,
        "alice",
        &["--email", "alice@example.test", "--name", "Alice Liddell"],
    );
    let shown: Value =
        serde_json::from_str(&server.cli_ok(&["user", "show", "alice", "--json"])).unwrap();
    let sub = shown["sub"].as_str().unwrap().to_string();
    // Never contacted: the emulated browser stops at the redirect to it.
    let redirect_uri = "http://127.0.0.1:9/callback";
    let registered = add_code_client(&server, "Wiki", redirect_uri);

    // ureq 2 (the crate's "ureq" feature) speaks plain http to loopback; no redirects followed.
    let http = openidconnect::ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(10))
        .build();
    let issuer = IssuerUrl::new(server.issuer()).unwrap();
    let metadata = CoreProviderMetadata::discover(&issuer, &http)
        .unwrap_or_else(|e| panic!("discovery failed: {e:?}"));
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(registered.id.clone()),
        Some(ClientSecret::new(registered.secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri.to_string()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let auth_url = auth_url.to_string();
    assert!(
        auth_url.starts_with(&server.url("/authorize?")),
        "{auth_url}"
    );

    // Login and consent, as a browser would do them.
    let mut jar = Jar::new(&server);
    let r = jar.get(&auth_url);
    assert_eq!(r.status, 303, "authorize: {}", r.text());
    let to_login = location(&r);
    assert!(to_login.starts_with("/login?return_to="), "{to_login}");
    let page = jar.get(&to_login);
    assert_eq!(page.status, 200, "login page: {}", page.text());
    let html = page.text();
    let csrf_field = hidden_input(&html, "csrf").expect("csrf input on the login page");
    let return_to = hidden_input(&html, "return_to").expect("return_to input");
    let r = jar.post(
        "/login",
        &[
            ("csrf", &csrf_field),
            ("return_to", &return_to),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "login POST: {}", r.text());
    assert!(
        jar.cookie("latchkey-session").is_some(),
        "no session cookie"
    );
    let back = location(&r);
    assert_eq!(back, return_to);
    assert!(back.starts_with("/authorize?"), "{back}");
    let consent = jar.get(&back);
    assert_eq!(consent.status, 200, "consent page: {}", consent.text());
    let html = consent.text();
    assert!(
        html.contains("Wiki"),
        "consent page names the client: {html}"
    );
    let csrf_field = hidden_input(&html, "csrf").expect("csrf input on the consent page");
    let request = hidden_input(&html, "request").expect("request input");
    let r = jar.post(
        "/consent",
        &[
            ("csrf", &csrf_field),
            ("request", &request),
            ("decision", "approve"),
        ],
    );
    assert_eq!(r.status, 303, "consent POST: {}", r.text());
    let cb = location(&r);
    assert!(cb.starts_with(&format!("{redirect_uri}?")), "{cb}");
    assert_eq!(
        query_param(&cb, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(
        query_param(&cb, "iss").as_deref(),
        Some(server.issuer().as_str())
    );
    let code = query_param(&cb, "code").unwrap_or_else(|| panic!("no code in {cb}"));

    // The library exchanges the code and validates the ID token itself.
    let token = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request(&http)
        .unwrap_or_else(|e| panic!("code exchange failed: {e:?}"));
    let id_token = token.id_token().expect("an id_token in the token response");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .unwrap_or_else(|e| panic!("the library rejected the ID token: {e:?}"));
    assert!(
        id_token
            .claims(&id_verifier, &Nonce::new("another-nonce".into()))
            .is_err(),
        "the library's nonce check did not run"
    );
    assert_eq!(claims.subject().as_str(), sub);
    assert_eq!(claims.issuer().as_str(), server.issuer());
    assert!(claims.auth_time().is_some(), "no auth_time");
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str()),
        Some("alice")
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.test")
    );
    assert_eq!(
        id_token.signing_alg().unwrap(),
        &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        "ID tokens default to RS256"
    );
    let expected = claims.access_token_hash().expect("at_hash in the ID token");
    let actual = AccessTokenHash::from_token(
        token.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected, "at_hash does not match the access token");

    // UserInfo through the library (which also checks the subject matches).
    let info: CoreUserInfoClaims = client
        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
        .unwrap()
        .request(&http)
        .unwrap_or_else(|e| panic!("userinfo failed: {e:?}"));
    assert_eq!(info.subject().as_str(), sub);
    assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("alice"));
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.test"));
}

// ---------------------------------------------------------------------------------------------
// C. The sign-in and account pages in light and dark mode, as screenshots for review
// ---------------------------------------------------------------------------------------------

/// Where the screenshots go: `$LATCHKEY_SCREENSHOTS`, or `target/screenshots/` (CI keeps that
/// folder as an artifact; it is not committed).
fn screenshot_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("LATCHKEY_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Takes `NAME-light.png` and `NAME-dark.png` of the page the browser shows, checking that the
/// stylesheet's palette follows `prefers-color-scheme` and that the page fits a phone's width
/// (nothing scrolls sideways).
fn light_and_dark(browser: &Session<'_>, dir: &Path, name: &str) {
    for (scheme, background) in [("light", "rgb(246, 247, 249)"), ("dark", "rgb(17, 20, 24)")] {
        browser.color_scheme(scheme);
        assert_eq!(
            browser.script("return getComputedStyle(document.body).backgroundColor"),
            background,
            "{name} in {scheme} mode"
        );
        assert_eq!(
            browser.script(
                "return document.documentElement.scrollWidth <= document.documentElement.clientWidth"
            ),
            true,
            "{name} scrolls sideways at phone width in {scheme} mode"
        );
        let png = browser.screenshot();
        assert!(png.len() > 2_000, "{name}: a blank screenshot?");
        std::fs::write(dir.join(format!("{name}-{scheme}.png")), png).unwrap();
    }
    browser.color_scheme("light");
}

/// The code the independent `totp-rs` computes now for a base32 key.
fn totp_now(key: &str) -> String {
    let secret = totp_rs::Secret::try_from_base32(key).expect("base32");
    totp_rs::Builder::new()
        .with_secret(secret)
        .build()
        .expect("a 160-bit SHA-1 TOTP")
        .generate_current()
        .to_string()
}

#[test]
fn the_sign_in_and_account_pages_in_light_and_dark_mode() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start();
    add_user(
        &server.data_dir,
        "alice",
        &["--email", "alice@example.test", "--name", "Alice Liddell"],
    );
    let dir = support::temp_dir("chromium-shots");
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let driver = Driver::start(&dir);
    let browser = driver.new_session(&profile);
    browser.cmd(
        "POST",
        "/window/rect",
        Some(&json!({"width": 420, "height": 900})),
    );
    let shots = screenshot_dir();
    let wait = Duration::from_secs(10);

    // The login page, then a password sign-in that lands on the account page.
    browser.navigate(&server.url("/login?return_to=%2Faccount"));
    let username = browser.wait_for("input[name=username]", wait);
    light_and_dark(&browser, &shots, "login");
    browser.type_into(&username, "alice");
    let password = browser.wait_for("input[name=password]", wait);
    browser.type_into(&password, PASSWORD);
    browser.click(&browser.wait_for("form[action='/login'] button[type=submit]", wait));
    browser.wait_for("main .account", wait);
    light_and_dark(&browser, &shots, "account");

    // TOTP enrolment with a code from totp-rs, then the recovery codes shown once.
    browser.navigate(&server.url("/account/totp"));
    browser.wait_for("svg", wait);
    light_and_dark(&browser, &shots, "totp-enrol");
    let uri = browser.script("return document.querySelector('a[href^=\"otpauth:\"]').href");
    let key = query_param(uri.as_str().unwrap(), "secret").expect("the key in the otpauth URI");
    let code = browser.wait_for("input[name=code]", wait);
    browser.type_into(&code, &totp_now(&key));
    browser.click(&browser.wait_for("form[action='/account/totp'] button[type=submit]", wait));
    browser.wait_for("#continue", wait);
    light_and_dark(&browser, &shots, "recovery-codes");

    // The passkeys page (its add form shown by latchkey's script).
    browser.navigate(&server.url("/account/passkeys"));
    let add = browser.wait_for("#passkey-add", wait);
    browser.wait_until("the add form shown by the script", wait, |s| {
        s.displayed(&add).then_some(())
    });
    light_and_dark(&browser, &shots, "passkeys");

    // Signed out and in again: the second-factor prompt.
    browser.cmd("DELETE", "/cookie", None);
    browser.navigate(&server.url("/login"));
    browser.type_into(&browser.wait_for("input[name=username]", wait), "alice");
    browser.type_into(&browser.wait_for("input[name=password]", wait), PASSWORD);
    browser.click(&browser.wait_for("form[action='/login'] button[type=submit]", wait));
    browser.wait_for("input[autocomplete=one-time-code]", wait);
    assert!(
        browser.current_url().contains("/login/second-factor"),
        "{}",
        browser.current_url()
    );
    light_and_dark(&browser, &shots, "second-factor");

    // An invite link's page.
    let out = server.cli_ok(&["user", "invite", "bob", "--issuer", &server.issuer()]);
    let link = out
        .split_whitespace()
        .find(|w| w.contains("/account/setup?token="))
        .unwrap_or_else(|| panic!("no link in {out}"))
        .to_string();
    browser.cmd("DELETE", "/cookie", None);
    browser.navigate(&link);
    browser.wait_for("input[autocomplete=new-password]", wait);
    light_and_dark(&browser, &shots, "setup");
    eprintln!("screenshots in {}", shots.display());
}
