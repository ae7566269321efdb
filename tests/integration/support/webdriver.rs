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
use base64::engine::general_purpose::STANDARD;
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
