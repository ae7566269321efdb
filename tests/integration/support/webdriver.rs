//! A minimal synchronous W3C WebDriver client for chromedriver and headless Chromium
//! (Debian's `chromium` + `chromium-driver`), shared by the real-browser tests: start
//! chromedriver ([`Driver::start`]), open a browser ([`Driver::new_session`]), navigate, find,
//! type, click, run scripts, wait; plus the WebAuthn automation extension (virtual
//! authenticators, W3C WebAuthn Level 2 §11) for the passkey tests.

use std::fs::File;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{free_port, read_response};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C element reference key.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One HTTP request to chromedriver on 127.0.0.1:`port`; returns (status, JSON body).
pub fn webdriver_http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let r = read_response(&mut s, false)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"))?;
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or_else(|e| {
            panic!("chromedriver sent non-JSON ({e}): {}", r.text());
        })
    };
    Ok((r.status, v))
}

/// A running chromedriver, killed when dropped.
pub struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a free port and waits (at most 10 s) until `/status` says ready.
    /// Panics with a clear message when Chromium or chromedriver is missing or does not start.
    pub fn start(dir: &Path) -> Driver {
        for (path, what) in [(CHROMIUM, "Chromium"), (CHROMEDRIVER, "chromedriver")] {
            assert!(
                Path::new(path).is_file(),
                "the browser test needs {what} at {path}, which is missing: install Debian's \
                 `chromium` and `chromium-driver` packages (scripts/test does this as root)"
            );
        }
        let port = free_port();
        let log = dir.join("chromedriver.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("could not run {CHROMEDRIVER}: {e}"));
        let mut driver = Driver { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = driver.child.try_wait().unwrap() {
                panic!(
                    "chromedriver exited at start-up ({status}); log:\n{}",
                    driver.log_text()
                );
            }
            if let Ok((200, v)) = webdriver_http(port, "GET", "/status", None)
                && v["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {port} within 10 s; log:\n{}",
                driver.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A new headless Chromium session with a fresh profile in `profile`.
    pub fn new_session(&self, profile: &Path) -> Session<'_> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 15000, "script": 5000, "implicit": 0},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--password-store=basic",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let (status, v) = webdriver_http(self.port, "POST", "/session", Some(&caps))
            .unwrap_or_else(|e| panic!("chromedriver did not answer POST /session: {e}"));
        assert_eq!(
            status,
            200,
            "Chromium did not start (POST /session): {v}\nchromedriver log:\n{}",
            self.log_text()
        );
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"))
            .to_string();
        Session { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session (one Chromium), deleted (browser closed) when dropped.
pub struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    /// A session command; returns (HTTP status, `value`).
    pub fn try_cmd(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let full = format!("/session/{}{path}", self.id);
        let (status, mut v) = webdriver_http(self.driver.port, method, &full, body)
            .unwrap_or_else(|e| panic!("chromedriver: {method} {full}: {e}"));
        (status, v["value"].take())
    }

    /// A session command that must succeed; returns `value`.
    pub fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.try_cmd(method, path, body);
        assert_eq!(status, 200, "WebDriver {method} {path} failed: {v}");
        v
    }

    pub fn navigate(&self, url: &str) {
        self.cmd("POST", "/url", Some(&json!({"url": url})));
    }

    pub fn current_url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The element matching a CSS selector, if there is one now.
    pub fn find(&self, css: &str) -> Option<String> {
        let body = json!({"using": "css selector", "value": css});
        match self.try_cmd("POST", "/element", Some(&body)) {
            (200, v) => Some(v[ELEMENT].as_str().unwrap().to_string()),
            _ => None,
        }
    }

    /// Waits (at most `limit`) for an element matching `css`.
    pub fn wait_for(&self, css: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(id) = self.find(css) {
                return id;
            }
            if Instant::now() > deadline {
                panic!(
                    "no element {css:?} within {limit:?}; the browser is at {} showing:\n{}",
                    self.current_url(),
                    self.source()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn type_into(&self, element: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({"text": text})),
        );
    }

    pub fn click(&self, element: &str) {
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        );
    }

    /// Runs a script in the page (WebDriver scripts are not subject to the page's CSP).
    pub fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    /// Emulates `prefers-color-scheme` through chromedriver's CDP passthrough.
    pub fn color_scheme(&self, scheme: &str) {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(&json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
            })),
        );
    }

    /// A PNG screenshot of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = STANDARD.decode(b64.as_str().unwrap()).unwrap();
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "screenshot is not a PNG"
        );
        png
    }
    /// Runs an asynchronous script (`POST /execute/async`): the script's last argument is the
    /// callback that ends it, and what it is called with comes back. Panics when the script
    /// throws or times out (the session's script timeout, [`Session::set_script_timeout`]).
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Awaits a JavaScript expression that gives a promise (e.g. `navigator.credentials.get(…)`)
    /// and returns what it resolves to, or `Err("Name: message")` when it rejects, so that a
    /// test can assert on a refusal (`NotAllowedError`, `SecurityError`, …). `args` are
    /// `arguments[0…]` in the expression.
    pub fn await_promise(&self, expression: &str, args: &[Value]) -> Result<Value, String> {
        let script = format!(
            "const done = arguments[arguments.length - 1];\n\
             Promise.resolve().then(() => ({expression})).then(\n\
               (value) => done({{ok: value === undefined ? null : value}}),\n\
               (e) => done({{error: String((e && e.name) || 'Error') + ': ' + String((e && e.message) || e)}}));"
        );
        let v = self.execute_async(&script, args);
        match v.get("error").and_then(Value::as_str) {
            Some(e) => Err(e.to_string()),
            None => Ok(v.get("ok").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Sets the script timeout (how long [`Session::execute_async`] waits for its callback).
    pub fn set_script_timeout(&self, limit: Duration) {
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        self.cmd("POST", "/timeouts", Some(&json!({"script": ms})));
    }

    /// Polls `probe` every 50 ms until it gives `Some`, at most `limit`; panics naming `what`
    /// with the browser's URL and page when it does not.
    pub fn wait_until<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut(&Self) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {limit:?}; the browser is at {} showing:\n{}",
                    self.current_url(),
                    self.source()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (at most [`WAIT`]) until the URL satisfies `ok`; returns it.
    pub fn wait_for_url(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        self.wait_until(what, WAIT, |s| {
            let url = s.current_url();
            ok(&url).then_some(url)
        })
    }

    /// The text an element shows (`GET /element/{id}/text`).
    pub fn text(&self, element: &str) -> String {
        self.cmd("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (at most [`WAIT`]) until an element matching `css` shows text containing `needle`;
    /// returns the whole text.
    pub fn wait_for_text(&self, css: &str, needle: &str) -> String {
        self.wait_until(&format!("{css:?} showing {needle:?}"), WAIT, |s| {
            let id = s.find(css)?;
            // The element may be replaced between the lookup and the read.
            let (status, v) = s.try_cmd("GET", &format!("/element/{id}/text"), None);
            let text = v.as_str().unwrap_or_default().to_string();
            (status == 200 && text.contains(needle)).then_some(text)
        })
    }

    /// Whether an element is displayed (`GET /element/{id}/displayed`).
    pub fn displayed(&self, element: &str) -> bool {
        self.cmd("GET", &format!("/element/{element}/displayed"), None) == true
    }

    /// The value of a named cookie of the current page's site, if it is set.
    pub fn cookie(&self, name: &str) -> Option<String> {
        match self.try_cmd("GET", &format!("/cookie/{name}"), None) {
            (200, v) => v["value"].as_str().map(str::to_string),
            _ => None,
        }
    }

    // --- WebAuthn automation (W3C WebAuthn Level 2 §11, chromedriver) -----------------------

    /// Adds a virtual authenticator to the browser; returns its id. Until it is removed every
    /// `navigator.credentials` call of the session goes to it (and to no other authenticator),
    /// across navigations. Chromium takes one `internal` authenticator at a time.
    pub fn add_virtual_authenticator(&self, options: &AuthenticatorOptions) -> String {
        let v = self.cmd("POST", "/webauthn/authenticator", Some(&options.to_json()));
        v.as_str()
            .unwrap_or_else(|| panic!("no authenticatorId in {v}"))
            .to_string()
    }

    pub fn remove_virtual_authenticator(&self, auth_id: &str) {
        self.cmd(
            "DELETE",
            &format!("/webauthn/authenticator/{auth_id}"),
            None,
        );
    }

    /// Plants a credential in a virtual authenticator (any rpId: a test can give it one of
    /// another site to check that the server refuses it).
    pub fn add_credential(&self, auth_id: &str, credential: &VirtualCredential) {
        self.cmd(
            "POST",
            &format!("/webauthn/authenticator/{auth_id}/credential"),
            Some(&credential.to_json()),
        );
    }

    /// The credentials a virtual authenticator holds.
    pub fn credentials(&self, auth_id: &str) -> Vec<VirtualCredential> {
        let v = self.cmd(
            "GET",
            &format!("/webauthn/authenticator/{auth_id}/credentials"),
            None,
        );
        v.as_array()
            .unwrap_or_else(|| panic!("credentials: not a list: {v}"))
            .iter()
            .map(VirtualCredential::from_json)
            .collect()
    }

    /// Removes one credential (by its base64url id) from a virtual authenticator.
    pub fn remove_credential(&self, auth_id: &str, credential_id: &str) {
        self.cmd(
            "DELETE",
            &format!("/webauthn/authenticator/{auth_id}/credentials/{credential_id}"),
            None,
        );
    }

    pub fn remove_all_credentials(&self, auth_id: &str) {
        self.cmd(
            "DELETE",
            &format!("/webauthn/authenticator/{auth_id}/credentials"),
            None,
        );
    }

    /// Removes a virtual authenticator and returns its credentials (private keys included), to
    /// be put back by [`Session::attach_authenticator`]. Chromium's quirk this is for: with a
    /// virtual authenticator that holds a matching credential, a conditional
    /// `navigator.credentials.get({mediation: 'conditional'})` resolves at once, without any
    /// interaction; with none attached it stays pending (until an authenticator is attached,
    /// when it fails with `NotAllowedError`). So a test that wants to click a button while the
    /// page's conditional request waits takes the authenticator away before loading the page.
    pub fn detach_authenticator(&self, auth_id: &str) -> Vec<VirtualCredential> {
        let credentials = self.credentials(auth_id);
        self.remove_virtual_authenticator(auth_id);
        credentials
    }

    /// Adds a virtual authenticator holding these credentials (from
    /// [`Session::detach_authenticator`] or made up); returns its id.
    pub fn attach_authenticator(
        &self,
        options: &AuthenticatorOptions,
        credentials: &[VirtualCredential],
    ) -> String {
        let auth_id = self.add_virtual_authenticator(options);
        for c in credentials {
            self.add_credential(&auth_id, c);
        }
        auth_id
    }

    /// Whether the authenticator's user verification (the "fingerprint") succeeds from now on.
    pub fn set_user_verified(&self, auth_id: &str, verified: bool) {
        self.cmd(
            "POST",
            &format!("/webauthn/authenticator/{auth_id}/uv"),
            Some(&json!({"isUserVerified": verified})),
        );
    }
}

/// How long the `wait_for_*` helpers wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// The parameters of a virtual authenticator (WebAuthn L2 §11.1.1). [`Default`] is a platform
/// passkey authenticator: CTAP2, `internal` transport, resident keys and user verification,
/// the user present and verified.
#[derive(Clone, Debug)]
pub struct AuthenticatorOptions {
    /// `ctap2`, `ctap2_1` or `ctap1/u2f`.
    pub protocol: &'static str,
    /// `internal`, `usb`, `nfc`, `ble`, `hybrid`.
    pub transport: &'static str,
    pub has_resident_key: bool,
    pub has_user_verification: bool,
    /// Whether user presence tests succeed.
    pub is_user_consenting: bool,
    /// Whether user verification succeeds (see [`Session::set_user_verified`]).
    pub is_user_verified: bool,
    /// `prf`, `largeBlob`, `credBlob`, `minPinLength` (chromedriver refuses these unless
    /// `protocol` is `ctap2_1`, and does not know `hmac-secret`).
    pub extensions: Vec<&'static str>,
    /// The BE flag of new credentials (synced passkeys have it); `None`: chromedriver's default.
    pub default_backup_eligibility: Option<bool>,
    /// The BS flag of new credentials; `None`: chromedriver's default.
    pub default_backup_state: Option<bool>,
}

impl Default for AuthenticatorOptions {
    fn default() -> Self {
        AuthenticatorOptions {
            protocol: "ctap2",
            transport: "internal",
            has_resident_key: true,
            has_user_verification: true,
            is_user_consenting: true,
            is_user_verified: true,
            extensions: Vec::new(),
            default_backup_eligibility: None,
            default_backup_state: None,
        }
    }
}

impl AuthenticatorOptions {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "protocol": self.protocol,
            "transport": self.transport,
            "hasResidentKey": self.has_resident_key,
            "hasUserVerification": self.has_user_verification,
            "isUserConsenting": self.is_user_consenting,
            "isUserVerified": self.is_user_verified,
        });
        if !self.extensions.is_empty() {
            v["extensions"] = json!(self.extensions);
        }
        if let Some(b) = self.default_backup_eligibility {
            v["defaultBackupEligibility"] = json!(b);
        }
        if let Some(b) = self.default_backup_state {
            v["defaultBackupState"] = json!(b);
        }
        v
    }
}

/// A credential of a virtual authenticator (WebAuthn L2 §11.1.2); binary fields base64url
/// without padding, as chromedriver sends and takes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualCredential {
    pub credential_id: String,
    pub is_resident_credential: bool,
    pub rp_id: String,
    /// The private key, PKCS#8 DER, base64url.
    pub private_key: String,
    /// The user handle (`user.id`) of a resident credential, base64url.
    pub user_handle: Option<String>,
    pub sign_count: u64,
    /// The BE and BS flags (`None`: the authenticator's defaults).
    pub backup_eligibility: Option<bool>,
    pub backup_state: Option<bool>,
    /// The `user.name` and `user.displayName` the credential was made with, when known.
    pub user_name: Option<String>,
    pub user_display_name: Option<String>,
}

impl VirtualCredential {
    /// A new resident credential for `rp_id` with a fresh P-256 key and a random 16-byte id.
    pub fn new_resident(rp_id: &str, user_handle: &[u8]) -> VirtualCredential {
        use ring::rand::SecureRandom as _;
        use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let mut id = [0u8; 16];
        rng.fill(&mut id).unwrap();
        VirtualCredential {
            credential_id: URL_SAFE_NO_PAD.encode(id),
            is_resident_credential: true,
            rp_id: rp_id.to_string(),
            private_key: URL_SAFE_NO_PAD.encode(pkcs8.as_ref()),
            user_handle: Some(URL_SAFE_NO_PAD.encode(user_handle)),
            sign_count: 0,
            backup_eligibility: None,
            backup_state: None,
            user_name: None,
            user_display_name: None,
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "credentialId": self.credential_id,
            "isResidentCredential": self.is_resident_credential,
            "rpId": self.rp_id,
            "privateKey": self.private_key,
            "signCount": self.sign_count,
        });
        if let Some(h) = &self.user_handle {
            v["userHandle"] = json!(h);
        }
        if let Some(b) = self.backup_eligibility {
            v["backupEligibility"] = json!(b);
        }
        if let Some(b) = self.backup_state {
            v["backupState"] = json!(b);
        }
        if let Some(n) = &self.user_name {
            v["userName"] = json!(n);
        }
        if let Some(n) = &self.user_display_name {
            v["userDisplayName"] = json!(n);
        }
        v
    }

    pub fn from_json(v: &Value) -> VirtualCredential {
        let text = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("credential without {k}: {v}"))
                .to_string()
        };
        VirtualCredential {
            credential_id: text("credentialId"),
            is_resident_credential: v["isResidentCredential"] == true,
            rp_id: text("rpId"),
            private_key: text("privateKey"),
            user_handle: v["userHandle"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(str::to_string),
            sign_count: v["signCount"].as_u64().unwrap_or(0),
            backup_eligibility: v["backupEligibility"].as_bool(),
            backup_state: v["backupState"].as_bool(),
            user_name: v["userName"].as_str().map(str::to_string),
            user_display_name: v["userDisplayName"].as_str().map(str::to_string),
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = webdriver_http(
            self.driver.port,
            "DELETE",
            &format!("/session/{}", self.id),
            None,
        );
    }
}
