//! Test support: start the real binary, run CLI commands, and a small HTTP/1.1 client over
//! `TcpStream` (so tests control every byte: repeated parameters, bad encodings, pipelining).

#![allow(dead_code)]

pub mod authenticator;
pub mod browser;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// The binary Cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_latchkey")
}

/// A fresh, empty directory under Cargo's per-target temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The variable that turns on the second tier: tests that need tools beyond the binary
/// (Chromium, nginx, Caddy, systemd-analyze, dpkg, cargo-deb, the musl target). `scripts/test`
/// installs those tools and sets it; a plain `cargo test` skips those tests with a message.
pub const FULL_TIER: &str = "LATCHKEY_TEST_FULL";

/// Whether a second-tier test runs. With [`FULL_TIER`] set to `1` it does, and a missing tool
/// then fails the test loudly; without it the test prints why it is skipped (on stderr, shown
/// with `--nocapture`) and returns early:
/// `if !support::needs(&["chromium"]) { return; }`.
pub fn needs(tools: &[&str]) -> bool {
    if std::env::var_os(FULL_TIER).is_some_and(|v| v == "1") {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string();
    eprintln!(
        "{test}: skipped: needs {}; scripts/test runs it ({FULL_TIER}=1)",
        tools.join(", ")
    );
    false
}

/// Removes every `LATCHKEY_*` variable of the test's environment from `cmd`, so that a spawned
/// `latchkey` sees only what the test passes (the tier switch [`FULL_TIER`] included).
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LATCHKEY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// `latchkey` with no `LATCHKEY_*` variable of the test's environment (see [`clean_env`]).
pub fn latchkey_cmd() -> Command {
    let mut cmd = Command::new(bin());
    clean_env(&mut cmd);
    cmd
}

/// Runs `latchkey --data-dir DIR ARGS…` to completion.
pub fn latchkey(data_dir: &Path, args: &[&str]) -> Output {
    latchkey_cmd()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .unwrap()
}

/// Runs `latchkey --data-dir DIR ARGS…` with `stdin` piped in (e.g. `--password-stdin`).
pub fn latchkey_stdin(data_dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = latchkey_cmd()
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails early may exit before reading its input.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

/// Creates the data directory and its database as an admin does before the first start
/// (`latchkey init`): every command but `serve` and `init` refuses to run without one.
pub fn init_data_dir(data_dir: &Path) {
    let out = latchkey(data_dir, &["init"]);
    assert!(
        out.status.success(),
        "latchkey init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The password [`add_user`] gives every test user.
pub const PASSWORD: &str = "correct horse battery staple";

/// `user add NAME [extra…] --password-stdin --json` with [`PASSWORD`] (after `latchkey init` on a
/// directory without a database); returns the `sub`.
pub fn add_user(data_dir: &Path, name: &str, extra: &[&str]) -> String {
    add_user_with_password(data_dir, name, PASSWORD, extra)
}

/// [`add_user`] with another password.
pub fn add_user_with_password(
    data_dir: &Path,
    name: &str,
    password: &str,
    extra: &[&str],
) -> String {
    // A fresh directory is set up the way an admin would before the first start.
    if !data_dir.join("latchkey.db").exists() {
        init_data_dir(data_dir);
    }
    let mut args = vec!["user", "add", name];
    args.extend_from_slice(extra);
    args.extend(["--password-stdin", "--json"]);
    let out = latchkey_stdin(data_dir, &args, &format!("{password}\n"));
    assert!(
        out.status.success(),
        "user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["username"], name);
    v["sub"].as_str().unwrap().to_string()
}

/// Runs a CLI command that must succeed and returns its stdout.
pub fn latchkey_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = latchkey(data_dir, args);
    assert!(
        out.status.success(),
        "latchkey {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A running `latchkey serve`, stopped (SIGKILL) when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    logs: Arc<Mutex<String>>,
    /// The `--issuer` it was started with, when not the default `http://<addr>`.
    issuer: Option<String>,
}

/// A confidential client registered with `client add --json`.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

impl Server {
    /// Starts a server with a new data directory (which `serve` creates).
    pub fn start() -> Server {
        Self::start_in(temp_dir("server").join("data"), &[])
    }

    /// Starts a server with extra `serve` arguments, after creating the data directory
    /// ([`init_data_dir`]) and running `setup` on it (e.g. CLI commands that change settings).
    pub fn start_with(extra: &[&str], setup: impl FnOnce(&Path)) -> Server {
        let data_dir = temp_dir("server").join("data");
        init_data_dir(&data_dir);
        setup(&data_dir);
        Self::start_in(data_dir, extra)
    }

    /// Starts a server with extra `serve` arguments after setting these settings with the CLI
    /// (the `http.*` ones apply at start).
    pub fn start_with_settings(extra: &[&str], settings: &[(&str, &str)]) -> Server {
        Self::start_with(extra, |dir| {
            for (key, value) in settings {
                latchkey_ok(dir, &["settings", "set", key, value]);
            }
        })
    }

    /// Starts a server on an existing data directory.
    pub fn start_in(data_dir: PathBuf, extra: &[&str]) -> Server {
        Self::start_under(&[], data_dir, extra)
    }

    /// [`Server::start_in`] with the binary run by `wrapper`, a program and its arguments that
    /// end by running the binary with the arguments after it (e.g. `sh -c '… exec "$0" "$@"'`);
    /// empty for none.
    pub fn start_under(wrapper: &[&str], data_dir: PathBuf, extra: &[&str]) -> Server {
        Self::try_start_under(wrapper, data_dir, extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Server::start_under`], returning why when the server does not announce its address.
    fn try_start_under(
        wrapper: &[&str],
        data_dir: PathBuf,
        extra: &[&str],
    ) -> Result<Server, String> {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                clean_env(&mut cmd).args(args).arg(bin());
                cmd
            }
            None => latchkey_cmd(),
        };
        // `extra` may name its own listen address; otherwise a free loopback port.
        let listen: &[&str] = if extra.contains(&"--listen") {
            &[]
        } else {
            &["--listen", "127.0.0.1:0"]
        };
        let mut child = cmd
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("serve")
            .args(listen)
            .args(extra)
            .env("LATCHKEY_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let Some(first) = lines.next().and_then(Result::ok) else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            return Err(format!(
                "server did not announce its address; logs:\n{}",
                logs.lock().unwrap()
            ));
        };
        let addr = first
            .strip_prefix("listening on http://")
            .or_else(|| first.strip_prefix("listening on https://"))
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .parse()
            .unwrap();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Server {
            child: Some(child),
            addr,
            data_dir,
            logs,
            issuer: None,
        })
    }

    /// Starts a server on 127.0.0.1 whose issuer is `http://localhost:<its port>`, as the
    /// passkey browser tests need (WebAuthn refuses an IP address as the RP ID, and
    /// `http://localhost` is a secure context): the RP ID is `localhost` and the origin
    /// `http://localhost:<port>`. [`Server::issuer`] and [`Server::url`] then use that origin.
    pub fn start_localhost() -> Server {
        Self::start_localhost_with(&[], |_| {})
    }

    /// [`Server::start_localhost`] with extra `serve` arguments, after creating the data
    /// directory and running `setup` on it (as [`Server::start_with`]).
    ///
    /// The issuer must name the port before the server binds it, so a port free a moment ago is
    /// chosen; should another process take it in between, the start is retried on another one
    /// (`--change-issuer`: the first try stored its issuer before it failed to listen).
    pub fn start_localhost_with(extra: &[&str], setup: impl FnOnce(&Path)) -> Server {
        let data_dir = temp_dir("server").join("data");
        init_data_dir(&data_dir);
        setup(&data_dir);
        let mut failures = Vec::new();
        for attempt in 0..5 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let issuer = format!("http://localhost:{port}");
            let mut args = vec!["--listen", &listen, "--issuer", &issuer];
            if attempt > 0 {
                args.push("--change-issuer");
            }
            args.extend_from_slice(extra);
            match Self::try_start_under(&[], data_dir.clone(), &args) {
                Ok(mut server) => {
                    assert_eq!(server.addr.port(), port);
                    server.issuer = Some(issuer);
                    return server;
                }
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "no localhost server after 5 tries:\n{}",
            failures.join("\n---\n")
        )
    }

    /// The issuer: `http://localhost:<port>` for [`Server::start_localhost`], else the default
    /// `http://<addr>`.
    pub fn issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }

    /// `<issuer><path>`: `http://<addr><path>`, or `http://localhost:<port><path>` for
    /// [`Server::start_localhost`].
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// Runs a CLI command against this server's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        latchkey(&self.data_dir, args)
    }

    /// Runs a CLI command that must succeed; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        latchkey_ok(&self.data_dir, args)
    }

    /// Registers a confidential client allowed client_credentials with these scopes.
    pub fn client(&self, name: &str, scopes: &str) -> TestClient {
        let mut args = vec![
            "client",
            "add",
            name,
            "--grant",
            "client_credentials",
            "--json",
        ];
        if !scopes.is_empty() {
            args.extend(["--scope", scopes]);
        }
        let v: serde_json::Value = serde_json::from_str(&self.cli_ok(&args)).unwrap();
        TestClient {
            id: v["client_id"].as_str().unwrap().to_string(),
            secret: v["client_secret"].as_str().unwrap().to_string(),
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit status.
    pub fn sigterm(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait(Duration::from_secs(20))
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a raw request on a new connection and reads one response.
    pub fn raw(&self, request: &[u8]) -> Response {
        let mut s = self.connect();
        s.write_all(request).unwrap();
        read_response(&mut s, false).unwrap()
    }

    /// A new connection with a 10 s read timeout.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.raw(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
    }

    /// `POST path` with a form body and optional extra header lines (each ending in `\r\n`).
    pub fn post_form(&self, path: &str, body: &str, extra_headers: &str) -> Response {
        self.raw(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n{extra_headers}\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    }

    /// `POST path` authenticated with `client_secret_basic`.
    pub fn post_basic(&self, path: &str, client: &TestClient, body: &str) -> Response {
        self.post_form(path, body, &basic_header(&client.id, &client.secret))
    }

    /// A client_credentials token for `client` (asserting success).
    pub fn token(&self, client: &TestClient, scope: Option<&str>) -> String {
        let body = match scope {
            Some(s) => format!("grant_type=client_credentials&scope={}", form_encode(s)),
            None => "grant_type=client_credentials".into(),
        };
        let r = self.post_basic("/token", client, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["access_token"].as_str().unwrap().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `Authorization: Basic …\r\n` with id and secret form-encoded first (RFC 6749 §2.3.1).
pub fn basic_header(id: &str, secret: &str) -> String {
    let creds = format!("{}:{}", form_encode(id), form_encode(secret));
    format!(
        "Authorization: Basic {}\r\n",
        base64::engine::general_purpose::STANDARD.encode(creds)
    )
}

/// application/x-www-form-urlencoded encoding of one value.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// Asserts an OAuth error response: status, `error`, and the no-store headers.
    pub fn assert_oauth_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(self.json()["error"], error, "body: {}", self.text());
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("pragma"), Some("no-cache"));
    }
}

/// Reads one response from `s`: head, then a body by `Content-Length` (none for HEAD or when
/// `head_request`), or to EOF when the length is absent. `None` on EOF before a status line.
pub fn read_response(s: &mut TcpStream, head_request: bool) -> Option<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => {
                if head.is_empty() {
                    return None;
                }
                panic!(
                    "EOF inside response head: {:?}",
                    String::from_utf8_lossy(&head)
                );
            }
            Ok(_) => head.push(byte[0]),
            // A signal (the browser test's child processes end) may interrupt a blocking read.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if head.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return None;
            }
            Err(e) => panic!("read error: {e}"),
        }
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let length = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse::<usize>().unwrap());
    let mut body = Vec::new();
    if !head_request && status >= 200 && status != 204 && status != 304 {
        match length {
            Some(n) => {
                body.resize(n, 0);
                s.read_exact(&mut body).unwrap();
            }
            None => {
                s.read_to_end(&mut body).unwrap();
            }
        }
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Polls `f` every 20 ms until it holds, failing the test with `what` if it does not within
/// `limit` (a change made by the CLI reaches a running server within a second).
pub fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if f() {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP port that was free a moment ago (for a second listener such as `--metrics-listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of `field` (e.g. "Threads", "VmRSS") in /proc/<pid>/status, as a number.
pub fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The value of the series `name{labels}` in a Prometheus text exposition, if present.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l.as_bytes().get(series.len()) == Some(&b' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `GET /metrics` from a metrics listener on 127.0.0.1:`port`; the body.
pub fn scrape_metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}
