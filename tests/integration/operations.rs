//! Running latchkey for years: `backup` under load and a restore into a fresh data directory,
//! a clean shutdown that leaves one complete file, upgrading a database of the oldest released
//! schema (and refusing a downgrade), SIGTERM under load, `healthcheck`, and background garbage
//! collection of expired rows.
//!
//! Tokens are verified with the independent `jsonwebtoken` crate against the served JWKS; the
//! database is read and written directly with `rusqlite` where a test needs rows the HTTP API
//! cannot make (expired ones) or a database only an older latchkey could have written.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rusqlite::{Connection, params};
use serde_json::Value;

use crate::support::browser::{Browser, query_param};
use crate::support::{
    self, Response, Server, TestClient, add_user_with_password, basic_header, form_encode,
    latchkey, latchkey_ok, temp_dir,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Unix seconds.
fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The data directory's database file.
fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("latchkey.db")
}

/// How many migrations the source tree ships (`src/store/sql/*.sql`): the schema version a
/// current binary must leave a database at.
fn shipped_schema_version() -> i64 {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/sql");
    let n = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count();
    assert!(
        n >= 4,
        "expected at least 4 migrations in {}",
        dir.display()
    );
    i64::try_from(n).unwrap()
}

/// `PRAGMA user_version` of a database file.
fn user_version(db: &Path) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A connection for reading and writing rows behind the server's back (it waits for the
/// server's writers rather than failing with SQLITE_BUSY).
fn open_db(data_dir: &Path) -> Connection {
    let conn = Connection::open(db_path(data_dir)).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn
}

/// Mode bits (permissions only) of a path.
fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A fresh data directory (mode 0700) holding `db` as its latchkey.db (mode 0600): a restore
/// as a self-hoster does it, by copying one file.
fn restore_into_fresh_dir(db: &Path, name: &str) -> PathBuf {
    let dir = temp_dir(name).join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = db_path(&dir);
    std::fs::copy(db, &target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

/// The callback every relying party here registers.
const REDIRECT_URI: &str = "http://127.0.0.1/cb";

/// A confidential authorization_code + refresh_token client that skips consent.
fn add_rp(data_dir: &Path, name: &str) -> TestClient {
    let out = latchkey_ok(
        data_dir,
        &[
            "client",
            "add",
            name,
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            REDIRECT_URI,
            "--skip-consent",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    TestClient {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: v["client_secret"].as_str().unwrap().to_string(),
    }
}

/// `apikey create NAME --scope SCOPE --json`; returns the key.
fn add_api_key(data_dir: &Path, name: &str, scope: &str) -> String {
    let out = latchkey_ok(
        data_dir,
        &["apikey", "create", name, "--scope", scope, "--json"],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    v["key"].as_str().unwrap().to_string()
}

/// 32 random bytes, base64url.
fn random_token() -> String {
    use ring::rand::SecureRandom as _;
    let mut buf = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut buf).unwrap();
    URL_SAFE_NO_PAD.encode(buf)
}

/// Signs `user` in with the browser helper through the authorization code flow with PKCE and
/// redeems the code; returns the token response (access_token, refresh_token, id_token).
fn sign_in(server: &Server, rp: &TestClient, user: &str, password: &str) -> Value {
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    let state = random_token();
    let authorize = format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid+profile\
         &state={state}&nonce={}&code_challenge={challenge}&code_challenge_method=S256",
        form_encode(&rp.id),
        form_encode(REDIRECT_URI),
        random_token()
    );
    let callback = Browser::new(server).login(user, password, &authorize);
    assert!(
        callback.starts_with(REDIRECT_URI),
        "{user}: not redirected to the client: {callback}"
    );
    assert_eq!(query_param(&callback, "state").as_deref(), Some(&*state));
    let code =
        query_param(&callback, "code").unwrap_or_else(|| panic!("{user}: no code in {callback}"));
    let r = server.post_basic(
        "/token",
        rp,
        &format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={verifier}",
            form_encode(&code),
            form_encode(REDIRECT_URI)
        ),
    );
    assert_eq!(r.status, 200, "{user}: code exchange: {}", r.text());
    r.json()
}

/// Verifies a JWT with `jsonwebtoken` against the server's published JWKS, as a resource
/// server would: the `kid` must be served, the signature valid, `iss` and `aud` as given,
/// `exp` in the future. Returns the claims.
fn verify_jwt(server: &Server, token: &str, alg: Algorithm, iss: &str, aud: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    let kid = header.kid.expect("the token names its key");
    let r = server.get("/jwks.json");
    assert_eq!(r.status, 200);
    let set: JwkSet = serde_json::from_slice(&r.body).unwrap();
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS {}", r.text()));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(alg);
    v.set_issuer(&[iss]);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("token does not verify: {e}"))
        .claims
}

/// An ES256 access token, verified (with `typ: at+jwt`) against the server's JWKS.
fn verify_access_token(server: &Server, token: &str, issuer: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    verify_jwt(server, token, Algorithm::ES256, issuer, issuer)
}

/// `POST /introspect` as `client`; returns the JSON answer.
fn introspect(server: &Server, client: &TestClient, token: &str) -> Value {
    let r = server.post_basic(
        "/introspect",
        client,
        &format!("token={}", form_encode(token)),
    );
    assert_eq!(r.status, 200, "introspect: {}", r.text());
    r.json()
}

/// `GET /v1/apikeys/verify` with the key in `X-API-Key`.
fn verify_api_key(server: &Server, key: &str) -> Response {
    server.raw(
        format!(
            "GET /v1/apikeys/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: {key}\r\n\r\n"
        )
        .as_bytes(),
    )
}

/// Waits (at most 5 s) until a running server has picked up a key created with the CLI (it
/// polls the database every 250 ms).
fn await_api_key(server: &Server, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = verify_api_key(server, key);
        if r.status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never accepted the new key: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to a server without waiting.
fn send_sigterm(server: &Server) {
    let status = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits until the server's log (read by a background thread) shows `needle`, for at most
/// `limit`; returns the log.
fn wait_for_log(server: &Server, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let logs = server.logs();
        if logs.contains(needle) || Instant::now() >= deadline {
            return logs;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command that is expected to exit on its own, killing it (and failing) after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, out, err)
}

// ---------------------------------------------------------------------------------------------
// A strict HTTP/1.1 response reader that reports, instead of panicking, how an exchange ended
// ---------------------------------------------------------------------------------------------

/// A response read to its last byte.
#[derive(Debug)]
struct Complete {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Complete {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The server's `Connection: close`.
    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    fn into_response(self) -> Response {
        Response {
            status: self.status,
            headers: self
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body: self.body,
        }
    }
}

/// How reading one response ended.
#[derive(Debug)]
enum Ended {
    /// A well-formed response, read exactly to the end of its `Content-Length` body.
    Complete(Complete),
    /// The server closed (FIN) before sending a single byte of a response.
    ClosedBeforeAnyByte,
    /// The connection was reset (or the write failed) before a single byte of a response.
    ResetBeforeAnyByte(String),
    /// Cut off, reset after some bytes, malformed, or extra bytes: never acceptable.
    Broken(String),
    /// No answer within the read timeout.
    Timeout,
}

/// Parses a response head; `Err` says what is malformed.
fn parse_head(head: &str) -> Result<(u16, Vec<(String, String)>), String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let code = rest.get(..3).unwrap_or_default();
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) || rest.get(3..4) != Some(" ") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = code.parse().unwrap();
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("bad header name in {line:?}"));
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok((status, headers))
}

/// Reads one response from `s`, classifying how the exchange ended.
fn read_strict(s: &mut TcpStream) -> Ended {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let Ok(head) = std::str::from_utf8(&buf[..end]) else {
                return Ended::Broken("response head is not UTF-8".into());
            };
            let (status, headers) = match parse_head(head) {
                Ok(v) => v,
                Err(e) => return Ended::Broken(e),
            };
            let lengths: Vec<&String> = headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map(|(_, v)| v)
                .collect();
            let [length] = lengths.as_slice() else {
                return Ended::Broken(format!("{} Content-Length headers", lengths.len()));
            };
            let Ok(length) = length.parse::<usize>() else {
                return Ended::Broken(format!("bad Content-Length {length:?}"));
            };
            let total = end + 4 + length;
            if buf.len() > total {
                return Ended::Broken(format!("{} bytes after the response", buf.len() - total));
            }
            if buf.len() == total {
                return Ended::Complete(Complete {
                    status,
                    headers,
                    body: buf[end + 4..].to_vec(),
                });
            }
        }
        match s.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Ended::ClosedBeforeAnyByte,
            Ok(0) => {
                return Ended::Broken(format!(
                    "EOF after {} bytes: {:?}",
                    buf.len(),
                    String::from_utf8_lossy(&buf)
                ));
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ended::Timeout;
            }
            Err(e) if buf.is_empty() => return Ended::ResetBeforeAnyByte(e.to_string()),
            Err(e) => {
                return Ended::Broken(format!(
                    "{e} after {} bytes: {:?}",
                    buf.len(),
                    String::from_utf8_lossy(&buf)
                ));
            }
        }
    }
}

/// One request on a new connection (`Connection: close` in `request`); `Err` unless a whole,
/// well-formed response came back.
fn exchange(addr: SocketAddr, request: &[u8]) -> Result<Response, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    match read_strict(&mut s) {
        Ended::Complete(c) => Ok(c.into_response()),
        other => Err(format!("{other:?}")),
    }
}

/// A form POST with `client_secret_basic`, closing the connection.
fn form_request(path: &str, client: &TestClient, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        basic_header(&client.id, &client.secret),
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------------
// 1. Backup under load, restore into a fresh data directory
// ---------------------------------------------------------------------------------------------

/// Sets the flag when dropped, also while unwinding.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// What one load request did, and when.
struct Sample {
    what: &'static str,
    started: Instant,
    ended: Instant,
    /// `Err` unless a complete 200 response with the expected body came back.
    result: Result<(), String>,
}

/// A token revoked during the load: when the revocation was sent and answered.
struct Revoked {
    token: String,
    sent: Instant,
    answered: Instant,
}

#[test]
fn backup_under_load_restores_users_clients_api_keys_and_tokens() {
    let users = [
        ("alice", "alice-password-1"),
        ("bob", "bob-password-22"),
        ("carol", "carol-password-333"),
    ];
    // Quiet logs: the harness drains the server's stderr on a thread of its own; under CPU
    // contention a full pipe blocks every connection thread in its access-log write after the
    // response is sent, and with Connection: close load those threads pile up until the
    // server answers 503 "too many connections". That is about the harness, not backups.
    let server = Server::start_with(&["--log-level", "warn"], |_| {});
    let dir = server.data_dir.clone();
    for (name, password) in users {
        add_user_with_password(&dir, name, password, &[]);
    }
    let machine = server.client("billing-worker", "invoices:read invoices:write");
    let revoker = server.client("revoker", "invoices:read");
    let rp = add_rp(&dir, "dashboard");
    let key = add_api_key(&dir, "backup-job", "backup:write");
    await_api_key(&server, &key);
    let old_issuer = server.issuer();

    // Tokens obtained before the backup.
    let cc_token = server.token(&machine, Some("invoices:read"));
    let alice = sign_in(&server, &rp, "alice", "alice-password-1");
    let alice_access = alice["access_token"].as_str().unwrap().to_string();
    let alice_refresh = alice["refresh_token"].as_str().unwrap().to_string();
    let alice_id_token = alice["id_token"].as_str().unwrap().to_string();
    verify_access_token(&server, &cc_token, &old_issuer);
    verify_access_token(&server, &alice_access, &old_issuer);

    // The load: token requests, API-key checks, introspections and token revocations (which
    // write to the database while the backup reads it), ~2 s, with the backup in the middle.
    let addr = server.addr;
    let stop = AtomicBool::new(false);
    let token_req = form_request(
        "/token",
        &machine,
        "grant_type=client_credentials&scope=invoices%3Aread",
    );
    let verify_req = format!(
        "GET /v1/apikeys/verify?scope=backup%3Awrite HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: {key}\r\n\r\n"
    )
    .into_bytes();
    let introspect_req = form_request(
        "/introspect",
        &machine,
        &format!("token={}", form_encode(&cc_token)),
    );
    let (samples, revoked, backup_window, backup_file, backup_out) = std::thread::scope(|scope| {
        // However this closure ends, the load threads stop (the scope waits for them).
        let _stop_load = SetOnDrop(&stop);
        let mut handles = Vec::new();
        for (what, request) in [
            ("token", &token_req),
            ("token", &token_req),
            ("verify", &verify_req),
            ("verify", &verify_req),
            ("introspect", &introspect_req),
            ("introspect", &introspect_req),
        ] {
            let stop = &stop;
            handles.push(scope.spawn(move || {
                let mut out = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let started = Instant::now();
                    let result = exchange(addr, request).and_then(|r| {
                        if r.status != 200 {
                            return Err(format!("{} {}", r.status, r.text()));
                        }
                        let ok = match what {
                            "token" => r.json()["access_token"].is_string(),
                            _ => r.json()["active"] == true,
                        };
                        if ok {
                            Ok(())
                        } else {
                            Err(format!("200 with {}", r.text()))
                        }
                    });
                    out.push(Sample {
                        what,
                        started,
                        ended: Instant::now(),
                        result,
                    });
                }
                out
            }));
        }
        let stop_ref = &stop;
        let revoker_ref = &revoker;
        let revoking = scope.spawn(move || {
            let mut out = Vec::new();
            let token_req = form_request("/token", revoker_ref, "grant_type=client_credentials");
            while !stop_ref.load(Ordering::SeqCst) {
                let r = exchange(addr, &token_req).expect("token for revocation");
                assert_eq!(r.status, 200, "{}", r.text());
                let token = r.json()["access_token"].as_str().unwrap().to_string();
                let sent = Instant::now();
                let r = exchange(
                    addr,
                    &form_request(
                        "/revoke",
                        revoker_ref,
                        &format!("token={}", form_encode(&token)),
                    ),
                )
                .expect("revocation");
                assert_eq!(r.status, 200, "revoke: {}", r.text());
                out.push(Revoked {
                    token,
                    sent,
                    answered: Instant::now(),
                });
            }
            out
        });

        std::thread::sleep(Duration::from_millis(800));
        let backup_file = temp_dir("backup").join("latchkey-backup.db");
        let backup_start = Instant::now();
        let backup_out = latchkey(&dir, &["backup", backup_file.to_str().unwrap()]);
        let backup_end = Instant::now();
        std::thread::sleep(Duration::from_millis(1200));
        stop.store(true, Ordering::SeqCst);
        let samples: Vec<Sample> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let revoked = revoking.join().unwrap();
        (
            samples,
            revoked,
            (backup_start, backup_end),
            backup_file,
            backup_out,
        )
    });
    assert!(
        backup_out.status.success(),
        "backup under load failed: {}\n{}",
        backup_out.status,
        String::from_utf8_lossy(&backup_out.stderr)
    );

    // Every load request was answered 200, and the load was running while the backup ran.
    let failures: Vec<String> = samples
        .iter()
        .filter_map(|s| s.result.as_ref().err().map(|e| format!("{}: {e}", s.what)))
        .collect();
    assert!(failures.is_empty(), "load failures: {failures:#?}");
    for what in ["token", "verify", "introspect"] {
        let n = samples.iter().filter(|s| s.what == what).count();
        assert!(n >= 10, "only {n} {what} requests ran");
    }
    let (b_start, b_end) = backup_window;
    let during = samples
        .iter()
        .filter(|s| s.started <= b_end && s.ended >= b_start)
        .count();
    assert!(during > 0, "no load request overlapped the backup");
    let revoked_before: Vec<&Revoked> = revoked.iter().filter(|r| r.answered < b_start).collect();
    let revoked_after: Vec<&Revoked> = revoked.iter().filter(|r| r.sent > b_end).collect();
    assert!(
        !revoked_before.is_empty() && !revoked_after.is_empty(),
        "revocations before/after the backup: {}/{}",
        revoked_before.len(),
        revoked_after.len()
    );

    // The backup file: mode 0600 (it holds the signing keys), a sound database at the current
    // schema version, and `backup` refuses to overwrite it.
    assert_eq!(mode(&backup_file), 0o600, "backup file mode");
    {
        let conn =
            Connection::open_with_flags(&backup_file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, shipped_schema_version());
    }
    let before = std::fs::read(&backup_file).unwrap();
    let out = latchkey(&dir, &["backup", backup_file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "backup over an existing file: {out:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&backup_file).unwrap(),
        before,
        "the refused backup changed the existing file"
    );
    // Both attempts are in the audit log, the refused one as failed.
    let audit: Value = serde_json::from_str(&latchkey_ok(&dir, &["audit", "--json"])).unwrap();
    let backups: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "backup_written" && e["target"] == backup_file.to_str().unwrap())
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(backups.len(), 2, "{audit}");
    assert!(
        backups.contains(&"ok") && backups.contains(&"failed"),
        "{audit}"
    );

    // Stop the original server and restore into a fresh data directory, served with the old
    // issuer (the port differs; the issuer is configuration, not state).
    let mut server = server;
    let status = server.sigterm();
    assert_eq!(status.code(), Some(0), "{}", server.logs());
    let restored_dir = restore_into_fresh_dir(&backup_file, "restored");
    let restored = Server::start_in(restored_dir, &["--issuer", &old_issuer]);
    assert_ne!(restored.addr, addr);

    // Every user signs in.
    for (name, password) in users {
        let t = sign_in(&restored, &rp, name, password);
        let claims =
            verify_access_token(&restored, t["access_token"].as_str().unwrap(), &old_issuer);
        assert_eq!(claims["client_id"], rp.id.as_str());
    }
    // The clients get tokens, the API key verifies.
    let fresh = restored.token(&machine, Some("invoices:write"));
    verify_access_token(&restored, &fresh, &old_issuer);
    restored.token(&revoker, None);
    let r = verify_api_key(&restored, &key);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["name"], "backup-job");

    // Tokens signed before the backup verify against the restored JWKS and are active there.
    verify_access_token(&restored, &cc_token, &old_issuer);
    let a = verify_access_token(&restored, &alice_access, &old_issuer);
    verify_jwt(
        &restored,
        &alice_id_token,
        Algorithm::RS256,
        &old_issuer,
        &rp.id,
    );
    let i = introspect(&restored, &machine, &cc_token);
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["iss"], old_issuer.as_str());
    let i = introspect(&restored, &rp, &alice_access);
    assert_eq!(i["active"], true, "{i}");
    assert_eq!(i["sub"], a["sub"]);
    // The refresh token issued before the backup still refreshes.
    let r = restored.post_basic(
        "/token",
        &rp,
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            form_encode(&alice_refresh)
        ),
    );
    assert_eq!(r.status, 200, "refresh after restore: {}", r.text());

    // The snapshot is one point in time: revocations answered before the backup started are in
    // it, revocations sent after it ended are not.
    for r in &revoked_before {
        let i = introspect(&restored, &revoker, &r.token);
        assert_eq!(
            i["active"], false,
            "revoked before the backup, active after restore"
        );
    }
    for r in &revoked_after {
        let i = introspect(&restored, &revoker, &r.token);
        assert_eq!(
            i["active"], true,
            "revoked after the backup, yet in the snapshot: {i}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A clean shutdown leaves latchkey.db complete on its own
// ---------------------------------------------------------------------------------------------

#[test]
fn clean_shutdown_checkpoints_so_the_db_file_alone_holds_everything() {
    let mut server = Server::start();
    let dir = server.data_dir.clone();
    let issuer = server.issuer();
    let machine = server.client("machine", "a");
    let key = add_api_key(&dir, "monitor", "ping");
    await_api_key(&server, &key);
    let kept = server.token(&machine, None);
    let revoked = server.token(&machine, None);
    let r = server.post_basic("/revoke", &machine, &format!("token={revoked}"));
    assert_eq!(r.status, 200);
    // API-key uses are counted in memory and written at shutdown at the latest (the one use
    // that found the key loaded counts too).
    let uses = 8;
    for _ in 1..uses {
        assert_eq!(verify_api_key(&server, &key).status, 200);
    }
    // A client added just before the stop.
    let late = server.client("late", "b");

    let status = server.sigterm();
    assert_eq!(status.code(), Some(0), "{}", server.logs());
    let wal = dir.join("latchkey.db-wal");
    if wal.exists() {
        assert_eq!(
            std::fs::metadata(&wal).unwrap().len(),
            0,
            "the WAL still holds pages after a clean shutdown"
        );
    }

    // Only latchkey.db, no -wal or -shm, into a fresh directory.
    let copy = restore_into_fresh_dir(&db_path(&dir), "checkpointed");
    let usage: Value = serde_json::from_str(&latchkey_ok(
        &copy,
        &["apikey", "usage", "monitor", "--json"],
    ))
    .unwrap();
    let counted: i64 = usage["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, uses, "usage in the copied file: {usage}");

    let copy_server = Server::start_in(copy, &["--issuer", &issuer]);
    let t = copy_server.token(&late, Some("b"));
    verify_access_token(&copy_server, &t, &issuer);
    assert_eq!(introspect(&copy_server, &machine, &kept)["active"], true);
    assert_eq!(
        introspect(&copy_server, &machine, &revoked)["active"],
        false
    );
}

#[test]
fn sigint_stops_cleanly_too() {
    let mut server = Server::start();
    let dir = server.data_dir.clone();
    let issuer = server.issuer();
    let machine = server.client("machine", "a");
    let status = Command::new("kill")
        .args(["-INT", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = server.wait(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", server.logs());
    let logs = wait_for_log(&server, "stopped", Duration::from_secs(3));
    assert!(logs.contains("stopped"), "{logs}");
    let copy = restore_into_fresh_dir(&db_path(&dir), "sigint-copy");
    let copy_server = Server::start_in(copy, &["--issuer", &issuer]);
    copy_server.token(&machine, None);
}

/// The backup holds the private signing keys: it must not be readable by other users at any
/// moment, not only once it is complete. A large database makes the copy take long enough for
/// a watcher polling the file's mode to see it while it is written.
#[test]
fn backup_file_is_never_readable_by_others_while_it_is_written() {
    let dir = temp_dir("backup-mode").join("data");
    crate::support::init_data_dir(&dir);
    latchkey_ok(&dir, &["keys", "list"]);
    {
        let conn = open_db(&dir);
        conn.execute_batch(
            "CREATE TABLE padding (b BLOB NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
             INSERT INTO padding (b) SELECT randomblob(100000) FROM n;",
        )
        .unwrap();
    }
    let file = temp_dir("backup-mode-out").join("copy.db");
    let mut child = support::clean_env(&mut Command::new("sh"))
        .arg("-c")
        .arg("umask 022; exec \"$0\" --data-dir \"$1\" backup \"$2\"")
        .arg(support::bin())
        .arg(&dir)
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(m) = std::fs::metadata(&file) {
            seen.insert(m.permissions().mode() & 0o777);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "backup did not finish");
    };
    let final_mode = mode(&file);
    // 10 MB each: do not leave them behind.
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "backup: {status}");
    assert_eq!(final_mode, 0o600);
    let open_to_others: Vec<String> = seen
        .iter()
        .filter(|m| *m & 0o077 != 0)
        .map(|m| format!("{m:o}"))
        .collect();
    assert!(
        open_to_others.is_empty(),
        "while being written the backup had mode {open_to_others:?} (all modes seen: {:?})",
        seen.iter().map(|m| format!("{m:o}")).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Upgrades from the oldest schema; downgrades refused
// ---------------------------------------------------------------------------------------------

/// A client registered by the first release, in the fixture below.
const V1_CLIENT_ID: &str = "5f0c2a9e8d7b6a4c3e1f0d9b8a7c6e5d";
const V1_CLIENT_SECRET: &str = "v1-secret-kept-since-the-first-release-0123456789";
const V1_REVOKED_JTI: &str = "v1-revoked-jti";

/// Builds, in `data_dir`, the database the oldest released latchkey (schema version 1) wrote:
/// the first release's only migration `src/store/sql/0001_init.sql` (shipped migrations are
/// append-only, so this file is exactly what it ran), `user_version` 1, WAL mode as its store
/// set, a confidential client_credentials client as its `client add` stored it (a 32-hex-digit
/// id, the SHA-256 of the secret, JSON arrays of redirect URIs and grants), a stored setting
/// and a revocation record. No signing keys: a server starting on it creates them.
fn oldest_schema_fixture(data_dir: &Path) {
    const V1_SQL: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/store/sql/0001_init.sql"
    ));
    std::fs::create_dir_all(data_dir).unwrap();
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let path = db_path(data_dir);
    let mut conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let tx = conn.transaction().unwrap();
    tx.execute_batch(V1_SQL).unwrap();
    tx.pragma_update(None, "user_version", 1).unwrap();
    let t = now() - 86_400;
    let secret_hash = ring::digest::digest(&ring::digest::SHA256, V1_CLIENT_SECRET.as_bytes());
    tx.execute(
        "INSERT INTO clients (client_id, name, secret_hash, redirect_uris, grant_types, scopes, \
         audience, access_token_ttl, created_at, updated_at) \
         VALUES (?1, 'nightly-report', ?2, '[]', '[\"client_credentials\"]', 'reports:read reports:write', \
         NULL, NULL, ?3, ?3)",
        params![V1_CLIENT_ID, secret_hash.as_ref(), t],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO settings (key, value) VALUES ('token.access_ttl', '120')",
        [],
    )
    .unwrap();
    tx.execute(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)",
        params![V1_REVOKED_JTI, now() + 3600],
    )
    .unwrap();
    tx.commit().unwrap();
    drop(conn);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(user_version(&path), 1);
}

#[test]
fn a_database_of_the_oldest_schema_migrates_forward_and_a_newer_one_is_refused() {
    let dir = temp_dir("upgrade").join("data");
    oldest_schema_fixture(&dir);

    let mut server = Server::start_in(dir.clone(), &[]);
    let current = shipped_schema_version();
    assert_eq!(user_version(&db_path(&dir)), current);
    assert!(
        server
            .logs()
            .contains(&format!("migrated to schema version {current}")),
        "{}",
        server.logs()
    );
    // The old client gets tokens with the secret it always had; the old setting still counts.
    let old = TestClient {
        id: V1_CLIENT_ID.into(),
        secret: V1_CLIENT_SECRET.into(),
    };
    let r = server.post_basic(
        "/token",
        &old,
        "grant_type=client_credentials&scope=reports%3Aread",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["expires_in"], 120, "{}", r.text());
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let claims = verify_access_token(&server, &token, &server.issuer());
    assert_eq!(claims["client_id"], V1_CLIENT_ID);
    assert_eq!(introspect(&server, &old, &token)["active"], true);
    let wrong = TestClient {
        id: V1_CLIENT_ID.into(),
        secret: "not-the-secret".into(),
    };
    let r = server.post_basic("/token", &wrong, "grant_type=client_credentials");
    assert_eq!(r.status, 401, "{}", r.text());
    // Newer features work on the migrated file.
    add_user_with_password(&dir, "newcomer", "newcomer-password", &[]);
    add_rp(&dir, "new-app");
    {
        let conn = open_db(&dir);
        let kept: i64 = conn
            .query_row(
                "SELECT count(*) FROM revoked_tokens WHERE jti = ?1",
                [V1_REVOKED_JTI],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(kept, 1, "rows of version 1 survive the migration");
        let pkce: i64 = conn
            .query_row(
                "SELECT require_pkce FROM clients WHERE client_id = ?1",
                [V1_CLIENT_ID],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(pkce, 1);
    }
    assert_eq!(server.sigterm().code(), Some(0), "{}", server.logs());

    // Downgrade: a database written by a newer latchkey is refused and left untouched.
    {
        let conn = Connection::open(db_path(&dir)).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    assert!(
        !dir.join("latchkey.db-wal").exists(),
        "the WAL was not folded back when the connection closed"
    );
    let before = std::fs::read(db_path(&dir)).unwrap();
    let mut serve = support::latchkey_cmd();
    serve
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let (status, stdout, stderr) = run_bounded(serve, Duration::from_secs(10));
    assert_eq!(
        status.code(),
        Some(1),
        "serve on a newer database: {stdout}{stderr}"
    );
    assert!(stderr.contains("newer"), "{stderr}");
    assert!(stderr.contains("999"), "{stderr}");
    assert!(!stdout.contains("listening"), "{stdout}");
    assert_eq!(
        std::fs::read(db_path(&dir)).unwrap(),
        before,
        "serve changed a database it refused"
    );
    // An administrative command refuses it too.
    let out = latchkey(&dir, &["client", "list"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("newer"));
    assert_eq!(std::fs::read(db_path(&dir)).unwrap(), before);
    assert_eq!(user_version(&db_path(&dir)), 999);
}

// ---------------------------------------------------------------------------------------------
// 4. SIGTERM under load
// ---------------------------------------------------------------------------------------------

/// What one load connection saw over its life.
#[derive(Default, Debug)]
struct Tally {
    /// Complete responses read before SIGTERM was sent.
    before_term: usize,
    /// Complete responses read after SIGTERM was sent.
    after_term: usize,
    /// Of those, how many said `Connection: close`.
    closing: usize,
    /// A connect refused after SIGTERM (the listener is closed): the thread's last event.
    refused: usize,
    /// After SIGTERM, on a kept-alive connection: a clean close (FIN) before a single byte
    /// of a response. The server closed an idle connection as our next request crossed it
    /// (RFC 9112 §9.3.1, a client retries); the request-id accounting proves the server had
    /// not read the request.
    idle_closed: usize,
    /// After SIGTERM, on a brand-new connection: closed or reset before any byte. The
    /// connection sat in the listen backlog as the listener closed (or was accepted only to
    /// find the server stopping): never served, like a refused connect.
    not_accepted: usize,
    /// X-Request-Id of every complete response.
    rids: Vec<u64>,
    /// Everything that must not happen.
    failures: Vec<String>,
}

/// Sends `request` (keep-alive) in a loop over one connection at a time, reconnecting when
/// the server says `Connection: close`, until a connect is refused after SIGTERM.
fn keep_alive_load(
    addr: SocketAddr,
    request: &[u8],
    expect: fn(&Value) -> bool,
    term_sent: &AtomicBool,
    deadline: Instant,
) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<TcpStream> = None;
    while Instant::now() < deadline {
        let (mut s, reused) = match conn.take() {
            Some(s) => (s, true),
            None => match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => (s, false),
                Err(e) => {
                    if term_sent.load(Ordering::SeqCst) {
                        t.refused += 1;
                    } else {
                        t.failures
                            .push(format!("connect failed before SIGTERM: {e}"));
                    }
                    return t;
                }
            },
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let ended = match s.write_all(request) {
            Ok(()) => read_strict(&mut s),
            Err(e) => Ended::ResetBeforeAnyByte(format!("write: {e}")),
        };
        // Read after the exchange: an outcome observed before SIGTERM was even sent cannot
        // be blamed on the shutdown.
        let termed = term_sent.load(Ordering::SeqCst);
        let when = if termed { "after" } else { "before" };
        match ended {
            Ended::Complete(c) => {
                match c
                    .header("x-request-id")
                    .and_then(|v| u64::from_str_radix(v, 16).ok())
                {
                    Some(rid) => t.rids.push(rid),
                    None => t.failures.push(format!("no X-Request-Id: {c:?}")),
                }
                let body: Option<Value> = serde_json::from_slice(&c.body).ok();
                if c.status != 200 || !body.as_ref().is_some_and(expect) {
                    t.failures.push(format!(
                        "unexpected answer {when} SIGTERM: {} {}",
                        c.status,
                        String::from_utf8_lossy(&c.body)
                    ));
                }
                if termed {
                    t.after_term += 1;
                } else {
                    t.before_term += 1;
                }
                if c.closes() {
                    if termed {
                        t.closing += 1;
                    }
                } else {
                    conn = Some(s);
                }
            }
            Ended::ClosedBeforeAnyByte if termed && reused => t.idle_closed += 1,
            Ended::ClosedBeforeAnyByte | Ended::ResetBeforeAnyByte(_) if termed && !reused => {
                t.not_accepted += 1;
            }
            Ended::ResetBeforeAnyByte(e) if termed => t.failures.push(format!(
                "connection reset after SIGTERM on a connection the server had kept alive, \
                 before any byte of the response to the request sent on it: {e}"
            )),
            Ended::Broken(e) => t.failures.push(format!(
                "{when} SIGTERM ({} connection): response cut off or malformed: {e}",
                if reused { "kept-alive" } else { "new" }
            )),
            other => t.failures.push(format!(
                "{when} SIGTERM ({} connection): {other:?}",
                if reused { "kept-alive" } else { "new" }
            )),
        }
    }
    t
}

/// Request ids in the access log (`… rid=<hex>`).
fn logged_request_ids(logs: &str) -> BTreeSet<u64> {
    logs.lines()
        .filter_map(|l| {
            let at = l.find(" rid=")? + 5;
            let hex: String = l[at..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            u64::from_str_radix(&hex, 16).ok()
        })
        .collect()
}

/// A request is "in flight" once the server has read it: it then has a request id (the
/// `X-Request-Id` of its response and the `rid=` of its access-log line). Every such request
/// must be answered completely: the set of ids the server logged must equal the set of ids
/// the clients received in whole responses. A request the server never read may fail only in
/// the ways a client can safely retry: a refused connect, a connection closed or reset in the
/// listen backlog, or a clean close (FIN, never a reset) of a kept-alive connection before
/// any byte of a response. A reset of a kept-alive connection, a response cut off, or a
/// malformed response fails the test.
///
/// The moment SIGTERM lands relative to each connection's state is a matter of timing, so the
/// scenario runs three times on fresh servers.
#[test]
fn sigterm_under_load_finishes_requests_in_flight_and_exits_zero() {
    for round in 1..=3 {
        sigterm_under_load_round(round);
    }
}

/// One server, 12 keep-alive connections hammering it, SIGTERM after 0.6 s.
fn sigterm_under_load_round(round: u32) {
    let mut server = Server::start();
    let client = server.client("load", "x");
    let addr = server.addr;
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let body = "grant_type=client_credentials";
    let token = format!(
        "POST /token HTTP/1.1\r\nHost: x\r\n{}Content-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}",
        basic_header(&client.id, &client.secret),
        body.len()
    )
    .into_bytes();
    let term_sent = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (tallies, stopped_in) = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for i in 0..12 {
            let (request, expect): (&[u8], fn(&Value) -> bool) = if i % 2 == 0 {
                (&healthz, |v| v["status"] == "ok")
            } else {
                (&token, |v| v["access_token"].is_string())
            };
            let term_sent = &term_sent;
            handles.push(
                scope.spawn(move || keep_alive_load(addr, request, expect, term_sent, deadline)),
            );
        }
        std::thread::sleep(Duration::from_millis(600));
        term_sent.store(true, Ordering::SeqCst);
        let sent = Instant::now();
        send_sigterm(&server);
        let status = server.wait(Duration::from_secs(12));
        let stopped_in = sent.elapsed();
        assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
        let tallies: Vec<Tally> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (tallies, stopped_in)
    });
    let logs = wait_for_log(&server, "stopped", Duration::from_secs(3));
    let summary: Vec<String> = tallies
        .iter()
        .map(|t| {
            format!(
                "before {} after {} (closing {}) refused {} idle-closed {} not-accepted {}",
                t.before_term, t.after_term, t.closing, t.refused, t.idle_closed, t.not_accepted
            )
        })
        .collect();
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    assert!(
        failures.is_empty(),
        "round {round}: failures: {failures:#?}\nper connection: {summary:#?}"
    );
    assert!(
        stopped_in < Duration::from_secs(5),
        "exit took {stopped_in:?}"
    );
    let total_before: usize = tallies.iter().map(|t| t.before_term).sum();
    assert!(
        total_before >= 24,
        "too little load before SIGTERM: {summary:#?}"
    );
    for t in &tallies {
        assert!(
            t.before_term >= 1,
            "a connection never worked: {summary:#?}"
        );
        assert_eq!(
            t.refused, 1,
            "every load thread ends on a refused connect (the listener closed): {summary:#?}"
        );
    }

    // Accounting: every request the server read was answered in full.
    let received: Vec<u64> = tallies
        .iter()
        .flat_map(|t| t.rids.iter().copied())
        .collect();
    let received_set: BTreeSet<u64> = received.iter().copied().collect();
    assert_eq!(
        received.len(),
        received_set.len(),
        "a request id came twice"
    );
    let logged = logged_request_ids(&logs);
    assert!(
        !logged.is_empty(),
        "no rid= in the access log (did its format change?):\n{logs}"
    );
    let unanswered: Vec<&u64> = logged.difference(&received_set).collect();
    assert!(
        unanswered.is_empty(),
        "the server read these requests but their responses never arrived whole: {unanswered:x?}"
    );
    let unlogged: Vec<&u64> = received_set.difference(&logged).collect();
    assert!(
        unlogged.is_empty(),
        "answered but not logged: {unlogged:x?}"
    );
    // Request ids count from 1 in a new process: no gaps means nothing was read and dropped.
    let max = *received_set.last().unwrap();
    assert_eq!(
        received_set.len() as u64,
        max,
        "request ids 1..={max} have gaps: requests read by the server went unanswered"
    );
    assert!(logs.contains("stopped"), "{logs}");
}

// ---------------------------------------------------------------------------------------------
// 5. healthcheck
// ---------------------------------------------------------------------------------------------

/// `latchkey healthcheck --listen ADDR`.
fn healthcheck(listen: &str) -> (ExitStatus, String, String) {
    let mut cmd = support::latchkey_cmd();
    cmd.args(["healthcheck", "--listen", listen]);
    run_bounded(cmd, Duration::from_secs(10))
}

#[test]
fn healthcheck_exits_zero_only_when_healthz_answers_200() {
    let server = Server::start();
    let (status, out, err) = healthcheck(&server.addr.to_string());
    assert_eq!(status.code(), Some(0), "{out}{err}");
    // The listen address of a server bound to every interface is checked on loopback.
    let any = format!("0.0.0.0:{}", server.addr.port());
    let (status, out, err) = healthcheck(&any);
    assert_eq!(status.code(), Some(0), "{any}: {out}{err}");

    // A closed port.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (status, out, err) = healthcheck(&closed.to_string());
    assert_eq!(status.code(), Some(1), "closed port: {out}{err}");

    // Something that answers, but not 200: unhealthy. It must have asked for /healthz.
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap();
    let asked = std::thread::spawn(move || {
        let (mut s, _) = fake.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        s.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    let (status, out, err) = healthcheck(&fake_addr.to_string());
    assert_eq!(status.code(), Some(1), "503: {out}{err}");
    let head = asked.join().unwrap();
    assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{head:?}");
}

// ---------------------------------------------------------------------------------------------
// 6. Garbage collection
// ---------------------------------------------------------------------------------------------

/// A 32-byte blob key from a label (distinct per label).
fn blob(label: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, label.as_bytes())
        .as_ref()
        .to_vec()
}

/// How many rows of `table` have `column` = `key`.
fn rows(conn: &Connection, table: &str, column: &str, key: &dyn rusqlite::ToSql) -> i64 {
    conn.query_row(
        &format!("SELECT count(*) FROM {table} WHERE {column} = ?1"),
        [key],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn expired_codes_sessions_grants_and_revocations_are_collected_in_the_background() {
    // gc.interval has a floor of one second.
    let gc_dir = temp_dir("gc-setting");
    support::init_data_dir(&gc_dir);
    let refused = latchkey(&gc_dir, &["settings", "set", "gc.interval", "0"]);
    assert_eq!(refused.status.code(), Some(2), "gc.interval 0: {refused:?}");

    let server = Server::start_with(&[], |dir| {
        latchkey_ok(dir, &["settings", "set", "gc.interval", "1"]);
    });
    let dir = server.data_dir.clone();
    let user = add_user_with_password(&dir, "gc-user", "gc-user-password", &[]);
    let client = server.client("gc-client", "a");
    let conn = open_db(&dir);
    let n = now();

    // (table, key column, key, expected to be collected)
    type Row = (&'static str, &'static str, Box<dyn rusqlite::ToSql>, bool);
    let mut expected: Vec<Row> = Vec::new();

    let code = |label: &str, expires_at: i64| {
        conn.execute(
            "INSERT INTO auth_codes (hash, client_id, user_id, redirect_uri, scope, nonce, \
             code_challenge, auth_time, expires_at, used_at, grant_id) \
             VALUES (?1, ?2, ?3, NULL, 'openid', NULL, NULL, ?4, ?5, NULL, NULL)",
            params![blob(label), client.id, user, n - 1000, expires_at],
        )
        .unwrap();
    };
    code("code-old", n - 700);
    code("code-grace", n - 100);
    code("code-live", n + 60);
    expected.push(("auth_codes", "hash", Box::new(blob("code-old")), true));
    // Used codes are kept ten minutes past expiry so a late replay still revokes its grant.
    expected.push(("auth_codes", "hash", Box::new(blob("code-grace")), false));
    expected.push(("auth_codes", "hash", Box::new(blob("code-live")), false));

    let session = |label: &str, last_seen_at: i64, expires_at: i64| {
        conn.execute(
            "INSERT INTO sessions (hash, user_id, auth_time, last_seen_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![blob(label), user, n - 40_000, last_seen_at, expires_at],
        )
        .unwrap();
    };
    // Forward-auth sessions are children of a login session and end with it.
    let child = |label: &str, parent: &str| {
        conn.execute(
            "INSERT INTO sessions (hash, user_id, auth_time, last_seen_at, expires_at, parent) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![blob(label), user, n - 100, n, n + 3600, blob(parent)],
        )
        .unwrap();
    };
    child("child-of-live", "session-live");
    child("orphan", "session-never-existed");
    expected.push(("sessions", "hash", Box::new(blob("child-of-live")), false));
    expected.push(("sessions", "hash", Box::new(blob("orphan")), true));
    session("session-expired", n - 10, n - 5);
    session("session-idle", n - 8000, n + 3600); // idle beyond session.idle_ttl (7200 s)
    session("session-live", n, n + 3600);
    expected.push(("sessions", "hash", Box::new(blob("session-expired")), true));
    expected.push(("sessions", "hash", Box::new(blob("session-idle")), true));
    expected.push(("sessions", "hash", Box::new(blob("session-live")), false));

    for (jti, expires_at, gone) in [("jti-old", n - 5, true), ("jti-live", n + 600, false)] {
        conn.execute(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)",
            params![jti, expires_at],
        )
        .unwrap();
        expected.push(("revoked_tokens", "jti", Box::new(jti), gone));
    }

    for (id, expires_at, gone) in [("grant-old", n - 5, true), ("grant-live", n + 3600, false)] {
        conn.execute(
            "INSERT INTO grants (id, client_id, user_id, scope, auth_time, created_at, expires_at) \
             VALUES (?1, ?2, ?3, 'openid', ?4, ?4, ?5)",
            params![id, client.id, user, n - 4000, expires_at],
        )
        .unwrap();
        expected.push(("grants", "id", Box::new(id), gone));
    }
    // Refresh tokens and access-token records: of an expired grant (whatever their own
    // expiry), idle-expired, expired, and live ones.
    for (label, grant, idle_expires_at, gone) in [
        ("rt-of-old-grant", "grant-old", n + 600, true),
        ("rt-idle", "grant-live", n - 5, true),
        ("rt-live", "grant-live", n + 600, false),
    ] {
        conn.execute(
            "INSERT INTO refresh_tokens (hash, grant_id, scope, created_at, idle_expires_at) \
             VALUES (?1, ?2, 'openid', ?3, ?4)",
            params![blob(label), grant, n - 100, idle_expires_at],
        )
        .unwrap();
        expected.push(("refresh_tokens", "hash", Box::new(blob(label)), gone));
    }
    for (jti, grant, expires_at, gone) in [
        ("gt-of-old-grant", "grant-old", n + 600, true),
        ("gt-old", "grant-live", n - 5, true),
        ("gt-live", "grant-live", n + 600, false),
    ] {
        conn.execute(
            "INSERT INTO grant_tokens (jti, grant_id, expires_at) VALUES (?1, ?2, ?3)",
            params![jti, grant, expires_at],
        )
        .unwrap();
        expected.push(("grant_tokens", "jti", Box::new(jti), gone));
    }
    for (table, column, key, _) in &expected {
        assert_eq!(
            rows(&conn, table, column, key.as_ref()),
            1,
            "{table} row inserted"
        );
    }

    let collected = |expected: &[Row]| {
        expected
            .iter()
            .filter(|(_, _, _, gone)| *gone)
            .all(|(table, column, key, _)| rows(&conn, table, column, key.as_ref()) == 0)
    };
    let started = Instant::now();
    while !collected(&expected) && started.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let state: Vec<String> = expected
        .iter()
        .map(|(table, column, key, gone)| {
            format!(
                "{table}.{column} present={} expected_gone={gone}",
                rows(&conn, table, column, key.as_ref())
            )
        })
        .collect();
    for (table, column, key, gone) in &expected {
        let present = rows(&conn, table, column, key.as_ref());
        assert_eq!(
            present,
            i64::from(!*gone),
            "{table} row after {:?}: {state:#?}",
            started.elapsed()
        );
    }

    // It keeps running: revocation records that expire later are collected on a later pass,
    // including the record of a token revoked through the API.
    let t = server.token(&client, None);
    let r = server.post_basic("/revoke", &client, &format!("token={t}"));
    assert_eq!(r.status, 200);
    let claims = verify_access_token(&server, &t, &server.issuer());
    let jti = claims["jti"].as_str().unwrap().to_string();
    assert_eq!(rows(&conn, "revoked_tokens", "jti", &jti), 1);
    // Age the record as if the token had expired (the shortest access-token lifetime is 30 s).
    conn.execute(
        "UPDATE revoked_tokens SET expires_at = ?2 WHERE jti = ?1",
        params![jti, now() - 1],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO revoked_tokens (jti, expires_at) VALUES ('jti-later', ?1)",
        [now() - 1],
    )
    .unwrap();
    let started = Instant::now();
    while (rows(&conn, "revoked_tokens", "jti", &jti) > 0
        || rows(&conn, "revoked_tokens", "jti", &"jti-later") > 0)
        && started.elapsed() < Duration::from_secs(4)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rows(&conn, "revoked_tokens", "jti", &jti), 0);
    assert_eq!(rows(&conn, "revoked_tokens", "jti", &"jti-later"), 0);
    assert_eq!(rows(&conn, "revoked_tokens", "jti", &"jti-live"), 1);
}
