//! Forward auth end to end through real reverse proxies: nginx (`auth_request`) and Caddy
//! (`forward_auth`) from Debian's packages, each run with the example config from
//! `packaging/examples/` — only its documented placeholders replaced (host names, addresses, and
//! TLS, which these tests do not speak) — in front of a small app that answers with the request
//! head it received, so the tests see exactly which `Remote-*` headers reached it.
//!
//! For each proxy: an anonymous browser is sent to latchkey's login page and comes back signed
//! in; the app then sees `Remote-User` and the other headers; a user outside the allowed group
//! gets 403; an API key with the rule's scope passes; forged `Remote-*`, `X-Forwarded-*`,
//! `X-Original-URL` and `Host` headers change nothing; and rules for one address on two ports,
//! a wildcard (not its apex) and an IPv6 literal with a port each decide for their own
//! listener. For nginx also: the `rd` pattern where nginx builds the login URL itself.
//!
//! These are second-tier tests: a plain `cargo test` skips them with a message; `scripts/test`
//! installs nginx and caddy with apt-get and runs them (`LATCHKEY_TEST_FULL=1`). They are run as
//! plain child processes with their own configuration in a temporary directory (never the
//! system services); a missing proxy, or one that does not start, fails the test.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::browser::{Browser, hidden_input, location, query_param};
use crate::support::latchkey_ok as cli_ok;
use crate::support::{PASSWORD, Response, Server, add_user, needs, read_response, temp_dir};

/// The first line of every answer of the test app.
const APP_MARKER: &str = "test app saw:";

// ----- the test app -----

/// A tiny HTTP app on 127.0.0.1 that answers every request with 200 and, as the body, the
/// request line and headers it received. Stops accepting when dropped.
struct EchoApp {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl EchoApp {
    fn start() -> EchoApp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    std::thread::spawn(move || echo(conn));
                }
            }
        });
        EchoApp { addr, stop }
    }
}

impl Drop for EchoApp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers one request on `s` (with `Connection: close`).
fn echo(mut s: TcpStream) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let body = format!(
        "{APP_MARKER}\r\n{}\r\n",
        String::from_utf8_lossy(&head[..end])
    );
    let _ = s.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let _ = s.shutdown(Shutdown::Write);
}

/// What the app received, if the response came from the app at all.
struct Seen {
    request_line: String,
    /// Header names lower-cased, in order.
    headers: Vec<(String, String)>,
}

impl Seen {
    fn of(r: &Response) -> Option<Seen> {
        let text = r.text();
        let rest = text.strip_prefix(APP_MARKER)?.strip_prefix("\r\n")?;
        if r.status != 200 {
            return None;
        }
        let mut lines = rest.split("\r\n").filter(|l| !l.is_empty());
        let request_line = lines.next()?.to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Some(Seen {
            request_line,
            headers,
        })
    }

    /// Every value of a header (empty values included).
    fn values(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The values of a header that are not empty (Caddy's `copy_headers` sets empty headers
    /// when latchkey's answer has empty ones, e.g. for a `--bypass` rule; nginx sends none).
    fn non_empty(&self, name: &str) -> Vec<&str> {
        self.values(name)
            .into_iter()
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// The app's view of a request that must have reached it.
fn reached(r: &Response, what: &str) -> Seen {
    Seen::of(r).unwrap_or_else(|| {
        panic!(
            "{what}: expected the app's answer, got {} {:?}\n{}",
            r.status,
            r.headers,
            r.text()
        )
    })
}

/// Asserts a request did not reach the app.
fn blocked(r: &Response, what: &str) {
    assert!(
        Seen::of(r).is_none(),
        "{what}: the request reached the app (status {}):\n{}",
        r.status,
        r.text()
    );
}

// ----- the proxies -----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Nginx,
    Caddy,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Caddy => "caddy",
        }
    }

    /// The installed binary; fails the test (never skips it) when it is missing.
    fn binary(self) -> PathBuf {
        let candidates: &[&str] = match self {
            Kind::Nginx => &["/usr/sbin/nginx", "/usr/bin/nginx"],
            Kind::Caddy => &["/usr/bin/caddy", "/usr/local/bin/caddy"],
        };
        candidates
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "{} is not installed (looked at {candidates:?}): these end-to-end tests need \
                     Debian's package; run scripts/test (it installs it) or \
                     `apt-get install {}`",
                    self.name(),
                    self.name()
                )
            })
    }
}

fn example(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/examples")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Replaces every occurrence of a documented placeholder, which must be there.
fn replace(text: &str, file: &str, placeholder: &str, with: &str) -> String {
    assert!(
        text.contains(placeholder),
        "packaging/examples/{file} no longer contains {placeholder:?}; \
         tests/integration/proxies_e2e.rs fills it in"
    );
    text.replace(placeholder, with)
}

/// packaging/examples/nginx.conf for this test: plain HTTP on 127.0.0.1:`port` instead of 443
/// with certificates, app.test/wiki.test/auth.test for the example hosts, and the real addresses
/// of latchkey and the app (both example apps are the one test app); wrapped in a minimal main config whose paths all lie in `dir`.
/// `edit` may change the example (after the substitutions) for a variant.
fn nginx_config(
    dir: &Path,
    port: u16,
    latchkey: SocketAddr,
    app: SocketAddr,
    edit: &dyn Fn(String) -> String,
) -> String {
    const FILE: &str = "nginx.conf";
    let mut c = example(FILE);
    c = replace(
        &c,
        FILE,
        "listen 443 ssl;",
        &format!("listen 127.0.0.1:{port};"),
    );
    assert!(c.contains("ssl_certificate"), "{FILE} has certificates");
    c = c
        .lines()
        .filter(|l| !l.trim_start().starts_with("ssl_certificate"))
        .collect::<Vec<_>>()
        .join("\n");
    c = replace(&c, FILE, "dash.home.example.org", "app.test");
    c = replace(&c, FILE, "wiki.home.example.org", "wiki.test");
    // The second app's login URL is latchkey's issuer here.
    c = replace(
        &c,
        FILE,
        "https://auth.home.example.org/login?rd=",
        &format!("http://{latchkey}/login?rd="),
    );
    c = replace(&c, FILE, "auth.home.example.org", "auth.test");
    c = replace(&c, FILE, "127.0.0.1:8080", &latchkey.to_string());
    c = replace(&c, FILE, "127.0.0.1:3000", &app.to_string());
    c = replace(&c, FILE, "127.0.0.1:3001", &app.to_string());
    let c = edit(c);
    let d = dir.display();
    // `user root` keeps the workers able to use the temporary directories when the tests run
    // as root (nginx ignores it, with a warning, otherwise).
    format!(
        "user root;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         access_log off;\n\
         client_body_temp_path {d}/client_body;\n\
         proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n\
         {c}\n}}\n"
    )
}

/// packaging/examples/Caddyfile for this test: its two sites as http://app.test:`port` and
/// http://auth.test:`port` on 127.0.0.1, the real addresses of latchkey and the app, and global
/// options that keep Caddy away from its admin API and certificates. `edit` may change the
/// example (after the substitutions) for a variant.
fn caddy_config(
    port: u16,
    latchkey: SocketAddr,
    app: SocketAddr,
    edit: &dyn Fn(String) -> String,
) -> String {
    const FILE: &str = "Caddyfile";
    let mut c = example(FILE);
    c = replace(
        &c,
        FILE,
        "\ndash.home.example.org {",
        &format!("\nhttp://app.test:{port} {{"),
    );
    c = replace(
        &c,
        FILE,
        "\nauth.home.example.org {",
        &format!("\nhttp://auth.test:{port} {{"),
    );
    c = replace(&c, FILE, "127.0.0.1:8080", &latchkey.to_string());
    c = replace(&c, FILE, "127.0.0.1:3000", &app.to_string());
    let c = edit(c);
    format!("{{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n}}\n\n{c}")
}

/// A running nginx or Caddy on 127.0.0.1, stopped when dropped.
struct Proxy {
    kind: Kind,
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
    config: String,
}

impl Proxy {
    /// Starts `kind` in front of `app`, asking `latchkey`. `edit` changes the example config for
    /// a variant (identity otherwise).
    fn start(
        kind: Kind,
        latchkey: SocketAddr,
        app: SocketAddr,
        edit: &dyn Fn(String) -> String,
    ) -> Proxy {
        let program = kind.binary();
        let mut last_log = String::new();
        // A port picked here could be taken before the proxy binds it: try a few.
        for _ in 0..3 {
            let dir = temp_dir(kind.name());
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let log = std::fs::File::create(dir.join("proxy.log")).unwrap();
            let mut cmd = Command::new(&program);
            let config = match kind {
                Kind::Nginx => {
                    let config = nginx_config(&dir, port, latchkey, app, edit);
                    let file = dir.join("nginx.conf");
                    std::fs::write(&file, &config).unwrap();
                    cmd.arg("-e")
                        .arg("stderr")
                        .arg("-p")
                        .arg(&dir)
                        .arg("-c")
                        .arg(&file)
                        .args(["-g", "daemon off;"]);
                    config
                }
                Kind::Caddy => {
                    let config = caddy_config(port, latchkey, app, edit);
                    let file = dir.join("Caddyfile");
                    std::fs::write(&file, &config).unwrap();
                    cmd.arg("run")
                        .arg("--config")
                        .arg(&file)
                        .args(["--adapter", "caddyfile"])
                        .env("HOME", &dir)
                        .env("XDG_CONFIG_HOME", dir.join("config"))
                        .env("XDG_DATA_HOME", dir.join("data"));
                    config
                }
            };
            let mut child = cmd
                .current_dir(&dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("could not run {}: {e}", program.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            let ready = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break Err(format!("exited with {status}"));
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break Ok(());
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err("did not listen within 10 s".to_string());
                }
                std::thread::sleep(Duration::from_millis(25));
            };
            let proxy = Proxy {
                kind,
                child: Some(child),
                addr,
                dir,
                config,
            };
            match ready {
                Ok(()) => return proxy,
                Err(why) => {
                    last_log = format!(
                        "{why}; its output:\n{}\nits config:\n{}",
                        proxy.log(),
                        proxy.config
                    );
                    if !last_log.contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("{} did not start: {last_log}", kind.name());
    }

    /// What the proxy wrote to stdout and stderr.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default()
    }

    /// The `Host` the protected app is served under.
    fn app_host(&self) -> String {
        format!("app.test:{}", self.addr.port())
    }

    /// The URL a browser asked for, as latchkey should see it.
    fn app_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app_host())
    }

    /// Sends a request head (ending in an empty line) and reads the response.
    fn raw(&self, head: &str) -> Response {
        self.raw_at(self.addr, head)
    }

    /// [`Proxy::raw`] to another of the proxy's listeners.
    fn raw_at(&self, addr: SocketAddr, head: &str) -> Response {
        let mut s = TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("{} on {addr}: {e}", self.kind.name()));
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        read_response(&mut s, false).unwrap_or_else(|| {
            panic!(
                "{} closed the connection without answering {head:?}; log:\n{}",
                self.kind.name(),
                self.log()
            )
        })
    }

    /// `GET path` with `Host: host` and these extra headers.
    fn get_as(&self, host: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        self.get_at(self.addr, host, path, headers)
    }

    /// [`Proxy::get_as`] on another of the proxy's listeners.
    fn get_at(
        &self,
        addr: SocketAddr,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response {
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        self.raw_at(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra}\r\n"),
        )
    }

    /// `GET path` on the protected app (`Host: app.test:PORT`).
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.get_as(&self.app_host(), path, headers)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM first: nginx's master then stops its workers (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

// ----- latchkey -----

fn create_key(data_dir: &Path, name: &str, scope: &str) -> String {
    let out = cli_ok(
        data_dir,
        &["apikey", "create", name, "--scope", scope, "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["key"].as_str().unwrap().to_string()
}

/// latchkey, the app and one proxy: alice (in admins) and bob
/// (not) and the rules
///
/// 1. `app.test /health` bypass (a health check),
/// 2. `app.test /` (exactly) bypass (a public landing page),
/// 3. `app.test` (every path) for group admins, and API keys / tokens with scope `app:read`,
/// 4. `open.test` bypass (another host that needs no sign-in),
/// 5. `wiki.test` (nginx's second example app) for group admins,
///
/// plus the API keys `robot` (scope `app:read`) and `weak` (scope `other`).
struct World {
    server: Server,
    // Dropped after the proxy (fields drop in order): the proxy never outlives its app.
    proxy: Proxy,
    _app: EchoApp,
    robot_key: String,
    weak_key: String,
}

fn world(kind: Kind) -> World {
    world_with(kind, &|c| c)
}

fn world_with(kind: Kind, edit: &dyn Fn(String) -> String) -> World {
    let mut keys = (String::new(), String::new());
    let server = Server::start_with(&[], |dir| {
        add_user(
            dir,
            "alice",
            &[
                "--group",
                "admins",
                "--email",
                "alice@example.org",
                "--name",
                "Alice Liddell",
            ],
        );
        add_user(
            dir,
            "bob",
            &["--group", "family", "--email", "bob@example.org"],
        );
        for rule in [
            &["--host", "app.test", "--path", "/health", "--bypass"][..],
            &["--host", "app.test", "--path", "/", "--bypass"],
            &[
                "--host",
                "app.test",
                "--allow-group",
                "admins",
                "--scope",
                "app:read",
            ],
            &["--host", "open.test", "--bypass"],
            &["--host", "wiki.test", "--allow-group", "admins"],
        ] {
            let mut args = vec!["rule", "add"];
            args.extend_from_slice(rule);
            cli_ok(dir, &args);
        }
        keys = (
            create_key(dir, "robot", "app:read"),
            create_key(dir, "weak", "other"),
        );
    });
    let app = EchoApp::start();
    let proxy = Proxy::start(kind, server.addr, app.addr, edit);
    let (robot_key, weak_key) = keys;
    World {
        server,
        proxy,
        _app: app,
        robot_key,
        weak_key,
    }
}

const HTML: (&str, &str) = ("Accept", "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8");

impl World {
    /// Asserts an anonymous browser request for `path` (with extra, forged, headers) is sent to
    /// latchkey's login page with `rd` = the URL it really asked for; returns the login URL.
    fn assert_sent_to_login(&self, path: &str, forged: &[(&str, &str)], what: &str) -> String {
        let mut headers = vec![HTML];
        headers.extend_from_slice(forged);
        let r = self.proxy.get(path, &headers);
        self.assert_login_redirect(&r, &self.proxy.app_url(path), what)
    }

    /// Asserts `r` sends a browser to latchkey's login page with `rd` = `url` (encoded, as
    /// latchkey's own redirects have it); returns the login URL.
    fn assert_login_redirect(&self, r: &Response, url: &str, what: &str) -> String {
        blocked(r, what);
        assert_eq!(
            r.status,
            302,
            "{what}: {:?}\n{}\nlatchkey log:\n{}",
            r.headers,
            r.text(),
            self.server.logs()
        );
        let to = location(r);
        let login = format!("{}/login?rd=", self.server.issuer());
        assert!(to.starts_with(&login), "{what}: not sent to {login}…: {to}");
        assert_eq!(
            query_param(&to, "rd").as_deref(),
            Some(url),
            "{what}: rd names the page asked for: {to}"
        );
        assert!(
            r.header("cache-control")
                .is_some_and(|v| v.contains("no-store")),
            "{what}: the redirect is not stored: {:?}",
            r.headers
        );
        to
    }

    /// Signs in at the login page `login_url` (as a browser sent there by the proxy) and returns
    /// the browser and where latchkey sent it back to.
    fn sign_in(&self, login_url: &str, user: &str) -> (Browser<'_>, String) {
        let rd = query_param(login_url, "rd").unwrap_or_default();
        self.sign_in_for(login_url, &rd, user)
    }

    /// [`World::sign_in`] at a login page that must keep `rd` as the page to return to.
    fn sign_in_for(&self, login_url: &str, rd: &str, user: &str) -> (Browser<'_>, String) {
        let mut b = Browser::new(&self.server);
        let (html, r) = b.submit_login_page(login_url, user, PASSWORD);
        let kept = hidden_input(&html, "rd").unwrap_or_else(|| panic!("no hidden rd in {html}"));
        assert_eq!(kept, rd, "the login form keeps rd");
        assert_eq!(r.status, 303, "login as {user}: {}", r.text());
        let back = location(&r);
        assert!(
            b.cookie("latchkey-fa").is_some(),
            "signing in for an app sets the forward-auth cookie: {:?}",
            r.headers
        );
        (b, back)
    }

    /// The `Cookie` header a browser holding `b`'s forward-auth cookie sends to the app's host.
    fn fa_cookie(b: &Browser<'_>) -> (&'static str, String) {
        (
            "Cookie",
            format!("latchkey-fa={}", b.cookie("latchkey-fa").unwrap()),
        )
    }
}

/// The path of an absolute URL on the app.
fn path_of(url: &str, proxy: &Proxy) -> String {
    url.strip_prefix(&format!("http://{}", proxy.app_host()))
        .unwrap_or_else(|| panic!("{url} is not on {}", proxy.app_host()))
        .to_string()
}

// ----- the checks, once per proxy -----

/// An anonymous browser goes to the login page and comes back signed in; the app sees who it
/// is; someone outside the group gets 403; scripts get 401; the bypassed path needs nobody;
/// logging out at latchkey closes the app again.
fn sign_in_round_trip(kind: Kind) {
    let w = world(kind);
    let p = &w.proxy;
    let path = "/private/page?tab=1&q=a%2Fb";

    let login = w.assert_sent_to_login(path, &[], "anonymous browser");

    // Scripts and API clients get 401 with a challenge instead of a redirect.
    for accept in [None, Some("application/json")] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let r = p.get(path, &headers);
        blocked(&r, "anonymous script");
        assert_eq!(r.status, 401, "Accept {accept:?}: {}", r.text());
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Bearer")),
            "Accept {accept:?}: {:?}",
            r.headers
        );
        assert_eq!(r.header("location"), None, "Accept {accept:?}");
    }

    // Signing in sends the browser back to the page it wanted, with the forward-auth cookie.
    let (mut alice, back) = w.sign_in(&login, "alice");
    assert_eq!(back, p.app_url(path), "back to the page asked for");
    let cookie = World::fa_cookie(&alice);
    let r = p.get(&path_of(&back, p), &[HTML, (cookie.0, &cookie.1)]);
    let seen = reached(&r, "alice, signed in");
    // The app gets the request the browser made, unchanged.
    assert!(
        seen.request_line.starts_with(&format!("GET {path} HTTP/")),
        "{}",
        seen.request_line
    );
    assert_eq!(seen.values("remote-user"), ["alice"]);
    assert_eq!(seen.values("remote-name"), ["Alice Liddell"]);
    assert_eq!(seen.values("remote-email"), ["alice@example.org"]);
    let groups = seen.values("remote-groups");
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert!(
        groups[0].split(',').any(|g| g.trim() == "admins"),
        "{groups:?}"
    );

    // Bob is signed in but not in admins: 403, and the app never sees the request.
    let bob_login = w.assert_sent_to_login("/private/bob", &[], "bob, before signing in");
    let (bob, bob_back) = w.sign_in(&bob_login, "bob");
    let bob_cookie = World::fa_cookie(&bob);
    let r = p.get(
        &path_of(&bob_back, p),
        &[HTML, (bob_cookie.0, &bob_cookie.1)],
    );
    blocked(&r, "bob");
    assert_eq!(r.status, 403, "bob: {}", r.text());

    // The bypassed paths need no sign-in and carry no user.
    for open in ["/health", "/"] {
        let seen = reached(&p.get(open, &[HTML]), open);
        assert!(
            seen.non_empty("remote-user").is_empty(),
            "{open}: {:?}",
            seen.headers
        );
    }

    // Logging out at latchkey ends the forward-auth session too.
    let r = alice.sign_out();
    assert_eq!(r.status, 200, "logout: {}", r.text());
    let r = p.get(path, &[HTML, (cookie.0, &cookie.1)]);
    blocked(&r, "alice's cookie after logout");
    assert_eq!(r.status, 302, "after logout: {}", r.text());
}

/// API keys pass by their scopes, as `X-API-Key` or `Authorization: Bearer`.
fn api_keys(kind: Kind) {
    let w = world(kind);
    let p = &w.proxy;
    let bearer = format!("Bearer {}", w.robot_key);
    for (how, header) in [
        ("X-API-Key", ("X-API-Key", w.robot_key.as_str())),
        ("Authorization", ("Authorization", bearer.as_str())),
    ] {
        let r = p.get(
            "/api/items",
            &[
                ("Accept", "application/json"),
                header,
                ("Remote-User", "admin"),
            ],
        );
        let seen = reached(&r, how);
        assert_eq!(seen.values("remote-user"), ["robot"], "{how}");
    }

    // A key without the rule's scope: 403. A key that does not exist: 401.
    let r = p.get("/api/items", &[("X-API-Key", &w.weak_key)]);
    blocked(&r, "weak key");
    assert_eq!(r.status, 403, "weak key: {}", r.text());
    let bogus = format!("lk_{}", "A".repeat(40));
    let r = p.get("/api/items", &[("X-API-Key", &bogus)]);
    blocked(&r, "unknown key");
    assert_eq!(r.status, 401, "unknown key: {}", r.text());
}

/// Forged headers change nothing: a client's own `Remote-*` never reaches the app, and
/// `X-Forwarded-*`, `X-Original-URL` or an odd `Host` cannot make latchkey judge another URL.
fn forged_headers(kind: Kind) {
    let w = world(kind);
    let p = &w.proxy;
    let forged_remote: &[(&str, &str)] = &[
        ("Remote-User", "admin"),
        ("Remote-Name", "Mallory"),
        ("Remote-Email", "admin@example.org"),
        ("Remote-Groups", "admins,root"),
    ];

    // Anonymous requests with each forgery still go to the login page, with the real URL.
    let public_host = [
        ("X-Forwarded-Host", "open.test"),
        ("X-Forwarded-Uri", "/"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Method", "GET"),
    ];
    let bypassed_path = [
        ("X-Forwarded-Host", "app.test"),
        ("X-Forwarded-Uri", "/health"),
    ];
    let original_bypassed = [
        ("X-Original-URL", "http://app.test/health"),
        ("X-Original-Method", "GET"),
    ];
    let original_public = [("X-Original-URL", "http://open.test/")];
    let everything: Vec<(&str, &str)> = forged_remote
        .iter()
        .chain(&bypassed_path)
        .chain(&original_bypassed)
        .copied()
        .collect();
    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("forged Remote-*", forged_remote),
        ("X-Forwarded-Host of a public host", &public_host),
        ("X-Forwarded-Uri of a bypassed path", &bypassed_path),
        ("X-Original-URL of a bypassed path", &original_bypassed),
        ("X-Original-URL of a public host", &original_public),
        ("all of them", &everything),
    ];
    for (what, headers) in cases {
        w.assert_sent_to_login("/private", headers, what);
        // Nor does a script get in.
        let r = p.get("/private", headers);
        blocked(&r, what);
        assert_eq!(r.status, 401, "{what} (script): {}", r.text());
    }

    // A Host naming another (public) host, a Host that would cut the URL short, and an
    // absolute request target for another host: the app is never reached unauthenticated.
    let port = p.addr.port();
    for host in [
        format!("open.test:{port}"),
        "open.test".to_string(),
        "app.test:#".to_string(),
        "app.test:?".to_string(),
        format!("app.test:{port}#"),
    ] {
        let r = p.get_as(&host, "/private", &[HTML]);
        blocked(&r, &format!("Host: {host}"));
    }
    let r = p.raw(&format!(
        "GET http://open.test/private HTTP/1.1\r\nHost: app.test:{port}\r\nConnection: close\r\n\r\n"
    ));
    blocked(&r, "absolute-form request for open.test");

    // Signed in: the app sees alice's headers, never the forged ones, and nothing twice.
    let login = w.assert_sent_to_login("/private", &[], "before signing in");
    let (alice, _) = w.sign_in(&login, "alice");
    let cookie = World::fa_cookie(&alice);
    let mut headers = vec![HTML, (cookie.0, cookie.1.as_str())];
    headers.extend_from_slice(forged_remote);
    let seen = reached(&p.get("/private", &headers), "alice with forged Remote-*");
    assert_eq!(seen.values("remote-user"), ["alice"]);
    assert_eq!(seen.values("remote-name"), ["Alice Liddell"]);
    assert_eq!(seen.values("remote-email"), ["alice@example.org"]);
    assert_eq!(seen.values("remote-groups").len(), 1);
    assert!(!seen.values("remote-groups")[0].contains("root"));

    // Bob forging a Remote-User is still bob: 403.
    let bob_login = w.assert_sent_to_login("/private", &[], "bob, before signing in");
    let (bob, _) = w.sign_in(&bob_login, "bob");
    let bob_cookie = World::fa_cookie(&bob);
    let mut headers = vec![HTML, (bob_cookie.0, bob_cookie.1.as_str())];
    headers.extend_from_slice(forged_remote);
    let r = p.get("/private", &headers);
    blocked(&r, "bob with forged Remote-*");
    assert_eq!(r.status, 403, "{}", r.text());

    // A bypassed path lets the request through, but not the forged identity.
    let mut headers = vec![HTML];
    headers.extend_from_slice(forged_remote);
    let seen = reached(&p.get("/health", &headers), "/health with forged Remote-*");
    for name in [
        "remote-user",
        "remote-name",
        "remote-email",
        "remote-groups",
    ] {
        assert!(
            seen.non_empty(name).is_empty(),
            "{name} reached the app: {:?}",
            seen.headers
        );
    }
}

#[test]
fn nginx_sends_browsers_to_login_and_passes_the_user_to_the_app() {
    if !needs(&["nginx"]) {
        return;
    }
    sign_in_round_trip(Kind::Nginx);
}

#[test]
fn caddy_sends_browsers_to_login_and_passes_the_user_to_the_app() {
    if !needs(&["caddy"]) {
        return;
    }
    sign_in_round_trip(Kind::Caddy);
}

#[test]
fn nginx_lets_api_keys_in_by_scope() {
    if !needs(&["nginx"]) {
        return;
    }
    api_keys(Kind::Nginx);
}

#[test]
fn caddy_lets_api_keys_in_by_scope() {
    if !needs(&["caddy"]) {
        return;
    }
    api_keys(Kind::Caddy);
}

#[test]
fn nginx_ignores_forged_headers() {
    if !needs(&["nginx"]) {
        return;
    }
    forged_headers(Kind::Nginx);
}

#[test]
fn caddy_ignores_forged_headers() {
    if !needs(&["caddy"]) {
        return;
    }
    forged_headers(Kind::Caddy);
}

/// Many nginx guides build `X-Original-URL` from the client's `Host` header
/// (`$scheme://$http_host$request_uri`). nginx accepts `Host: app.test:#` (and `:?`), so that
/// URL becomes `http://app.test:#/private`: a URL parser reads the path `/` and the fragment
/// `/private`, and latchkey judges `/` (bypassed here) instead of `/private`. The example uses
/// `$server_name` and `$server_port` instead; latchkey should still refuse such a URL (a request
/// URL never has a fragment, and a `:` with no port is malformed) rather than judge another path.
#[test]
fn nginx_with_http_host_in_x_original_url_is_not_fooled_by_the_host_header() {
    if !needs(&["nginx"]) {
        return;
    }
    let w = world_with(Kind::Nginx, &|c| {
        replace(
            &c,
            "nginx.conf",
            "$scheme://$server_name:$server_port$request_uri",
            "$scheme://$http_host$request_uri",
        )
    });
    let p = &w.proxy;
    // The variant works for honest requests.
    w.assert_sent_to_login("/private", &[], "honest anonymous request");
    for host in ["app.test:#", "app.test:?"] {
        let r = p.get_as(host, "/private", &[HTML]);
        blocked(&r, &format!("Host: {host}"));
    }
}

/// nginx's other common pattern (the example's second app, wiki.test): `error_page 401 =302
/// …/login?rd=$scheme://$http_host$request_uri`, where nginx does not encode `rd`. The login page
/// still recovers the whole URL, query included, and the browser comes back to it; the first
/// pattern (latchkey's encoded `Location`) keeps working on the same nginx.
#[test]
fn nginx_sends_browsers_to_login_with_an_rd_it_builds_itself() {
    if !needs(&["nginx"]) {
        return;
    }
    let w = world(Kind::Nginx);
    let p = &w.proxy;
    let path = "/private/page?tab=1&q=a%2Fb";
    w.assert_sent_to_login(path, &[], "app.test: latchkey's Location");

    let wiki = format!("wiki.test:{}", p.addr.port());
    let url = format!("http://{wiki}{path}");
    let r = p.get_as(&wiki, path, &[HTML]);
    blocked(&r, "wiki.test, anonymous");
    assert_eq!(r.status, 302, "{:?}\n{}", r.headers, r.text());
    let to = location(&r);
    assert_eq!(
        to,
        format!("{}/login?rd={url}", w.server.issuer()),
        "nginx's own rd, not encoded"
    );
    let (alice, back) = w.sign_in_for(&to, &url, "alice");
    assert_eq!(back, url, "back to the whole URL, its query included");
    let cookie = World::fa_cookie(&alice);
    let seen = reached(
        &p.get_as(&wiki, path, &[HTML, (cookie.0, &cookie.1)]),
        "alice on wiki.test",
    );
    assert!(
        seen.request_line.starts_with(&format!("GET {path} HTTP/")),
        "{}",
        seen.request_line
    );
    assert_eq!(seen.values("remote-user"), ["alice"]);

    // Bob signs in the same way, but wiki.test is for admins only.
    let (bob, bob_back) = w.sign_in_for(&to, &url, "bob");
    assert_eq!(bob_back, url);
    let bob_cookie = World::fa_cookie(&bob);
    let r = p.get_as(&wiki, path, &[HTML, (bob_cookie.0, &bob_cookie.1)]);
    blocked(&r, "bob on wiki.test");
    assert_eq!(r.status, 403, "{}", r.text());

    // In this pattern every 401 is the redirect, scripts' too.
    let r = p.get_as(&wiki, path, &[]);
    blocked(&r, "wiki.test, script");
    assert_eq!(r.status, 302, "{}", r.text());
}

/// A free port on a loopback address (`127.0.0.1` or `[::1]`), failing the test loudly when the
/// address cannot be used: the IPv6 checks never skip.
fn free_port(ip: &str) -> u16 {
    let l = TcpListener::bind(format!("{ip}:0")).unwrap_or_else(|e| {
        panic!(
            "cannot listen on {ip} ({e}): these tests need it (for ::1, `ip -6 addr show lo` \
             must list it); they fail rather than skip"
        )
    });
    l.local_addr().unwrap().port()
}

/// The example's protected nginx server block (after [`nginx_config`]'s substitutions).
fn nginx_app_block(c: &str) -> String {
    let start = c
        .find("# The protected app.\nserver {")
        .expect("nginx.conf has its protected app block");
    let len = c[start..]
        .find("\n}\n")
        .expect("the block ends with a closing brace")
        + 3;
    c[start..start + len].to_string()
}

/// `block` with its `listen` line(s) replaced by `listen`, and its `server_name` by `name`.
fn nginx_variant(block: &str, listen: &str, name: &str) -> String {
    let mut listened = false;
    let mut out = Vec::new();
    for line in block.lines() {
        let t = line.trim_start();
        if t.starts_with("listen ") {
            if !listened {
                out.push(listen.to_string());
                listened = true;
            }
        } else if t.starts_with("server_name ") {
            out.push(format!("    server_name {name};"));
        } else {
            out.push(line.to_string());
        }
    }
    assert!(listened, "the block has a listen line");
    out.join("\n") + "\n"
}

/// One proxy in front of one app, with listeners beyond its own: 127.0.0.1:P1, 127.0.0.1:P2 and
/// [::1]:P3 for the app as an address and port, and `*.example.test` / `example.test` on the
/// proxy's own port (nginx: the example's block for a wildcard, with `$host` as the example
/// says; Caddy: more addresses for the example's site). The rules:
///
/// 1. `127.0.0.1:P1` for group admins (alice),
/// 2. `127.0.0.1:P2` for group family (bob),
/// 3. `*.example.test` for group admins,
/// 4. `[::1]:P3` for group family.
///
/// Returns the world and the listeners P1, P2, P3.
fn hosts_world(kind: Kind) -> (World, [SocketAddr; 3]) {
    let p3 = free_port("[::1]");
    let (p1, p2) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let server = Server::start_with(&[], |dir| {
        add_user(dir, "alice", &["--group", "admins"]);
        add_user(dir, "bob", &["--group", "family"]);
        for (host, group) in [
            (format!("127.0.0.1:{p1}"), "admins"),
            (format!("127.0.0.1:{p2}"), "family"),
            ("*.example.test".to_string(), "admins"),
            (format!("[::1]:{p3}"), "family"),
        ] {
            cli_ok(
                dir,
                &["rule", "add", "--host", &host, "--allow-group", group],
            );
        }
    });
    let app = EchoApp::start();
    let edit = move |c: String| -> String {
        match kind {
            Kind::Nginx => {
                let block = nginx_app_block(&c);
                let by_address = nginx_variant(
                    &block,
                    &format!("    listen 127.0.0.1:{p1};\n    listen 127.0.0.1:{p2};"),
                    "127.0.0.1",
                );
                let v6 = nginx_variant(&block, &format!("    listen [::1]:{p3};"), "[::1]");
                let own_listen = block
                    .lines()
                    .find(|l| l.trim_start().starts_with("listen "))
                    .unwrap_or_default()
                    .to_string();
                let wildcard = replace(
                    &nginx_variant(&block, &own_listen, "*.example.test example.test"),
                    "nginx.conf",
                    "$scheme://$server_name:$server_port$request_uri",
                    "$scheme://$host:$server_port$request_uri",
                );
                format!("{c}\n{by_address}\n{v6}\n{wildcard}")
            }
            Kind::Caddy => {
                let start = c
                    .find("\nhttp://app.test:")
                    .expect("the Caddyfile's protected site")
                    + 1;
                let (head, site) = c.split_at(start);
                let (address, body) = site.split_once(" {\n").expect("a site block");
                let port = address.rsplit(':').next().unwrap_or_default();
                format!(
                    "{head}{address}, http://*.example.test:{port}, http://example.test:{port}, \
                     http://127.0.0.1:{p1}, http://127.0.0.1:{p2} {{\n{body}\n\
                     http://[::1]:{p3} {{\n\tbind ::1\n{body}"
                )
            }
        }
    };
    let proxy = Proxy::start(kind, server.addr, app.addr, &edit);
    let addr = |s: String| s.parse::<SocketAddr>().unwrap();
    let listeners = [
        addr(format!("127.0.0.1:{p1}")),
        addr(format!("127.0.0.1:{p2}")),
        addr(format!("[::1]:{p3}")),
    ];
    let world = World {
        server,
        proxy,
        _app: app,
        robot_key: String::new(),
        weak_key: String::new(),
    };
    (world, listeners)
}

/// Two apps on one address with different ports and rules, a wildcard rule that does not cover
/// its apex, and an IPv6 literal with a port: each listener gets its own decision.
fn ports_wildcards_and_ipv6(kind: Kind) {
    let (w, [a1, a2, a3]) = hosts_world(kind);
    let p = &w.proxy;
    let anonymous = |a: SocketAddr, path: &str| p.get_at(a, &a.to_string(), path, &[HTML]);

    // Port 1 is for admins: alice signs in there and comes back to it.
    let url1 = format!("http://{a1}/one?x=1");
    let login = w.assert_login_redirect(&anonymous(a1, "/one?x=1"), &url1, "port 1, anonymous");
    let (alice, back) = w.sign_in(&login, "alice");
    assert_eq!(back, url1);
    // Port 2 is for family: bob signs in there.
    let url2 = format!("http://{a2}/two");
    let login = w.assert_login_redirect(&anonymous(a2, "/two"), &url2, "port 2, anonymous");
    let (bob, back) = w.sign_in(&login, "bob");
    assert_eq!(back, url2);

    let (ac, bc) = (World::fa_cookie(&alice), World::fa_cookie(&bob));
    let alice_at = |a: SocketAddr, host: &str| p.get_at(a, host, "/p", &[HTML, (ac.0, &ac.1)]);
    let bob_at = |a: SocketAddr, host: &str| p.get_at(a, host, "/p", &[HTML, (bc.0, &bc.1)]);
    let user =
        |r: &Response, what: &str| -> String { reached(r, what).values("remote-user").join(",") };
    let refused = |r: &Response, what: &str| {
        blocked(r, what);
        assert_eq!(r.status, 403, "{what}: {}", r.text());
    };
    let (h1, h2, h3) = (a1.to_string(), a2.to_string(), a3.to_string());
    assert_eq!(user(&alice_at(a1, &h1), "alice on port 1"), "alice");
    refused(&alice_at(a2, &h2), "alice on port 2");
    assert_eq!(user(&bob_at(a2, &h2), "bob on port 2"), "bob");
    refused(&bob_at(a1, &h1), "bob on port 1");

    // IPv6 literal with a port, for family.
    let url3 = format!("http://{h3}/six");
    assert!(url3.starts_with("http://[::1]:"), "{url3}");
    w.assert_login_redirect(&anonymous(a3, "/six"), &url3, "[::1], anonymous");
    assert_eq!(user(&bob_at(a3, &h3), "bob on [::1]"), "bob");
    refused(&alice_at(a3, &h3), "alice on [::1]");

    // The wildcard covers app.example.test, not example.test itself (no rule: 403 even for an
    // anonymous browser, which is not offered a sign-in).
    let own = p.addr;
    let sub = format!("app.example.test:{}", own.port());
    let apex = format!("example.test:{}", own.port());
    let r = p.get_at(own, &sub, "/w", &[HTML]);
    w.assert_login_redirect(&r, &format!("http://{sub}/w"), "subdomain, anonymous");
    assert_eq!(
        user(&alice_at(own, &sub), "alice on the subdomain"),
        "alice"
    );
    refused(&bob_at(own, &sub), "bob on the subdomain");
    refused(&alice_at(own, &apex), "alice on the apex");
    refused(&p.get_at(own, &apex, "/w", &[HTML]), "the apex, anonymous");
}

#[test]
fn nginx_decides_per_port_wildcard_and_ipv6_address() {
    if !needs(&["nginx"]) {
        return;
    }
    ports_wildcards_and_ipv6(Kind::Nginx);
}

#[test]
fn caddy_decides_per_port_wildcard_and_ipv6_address() {
    if !needs(&["caddy"]) {
        return;
    }
    ports_wildcards_and_ipv6(Kind::Caddy);
}
