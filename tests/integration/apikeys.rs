//! API keys against the real binary: the key format (checked with a CRC-32 and a base62
//! encoder written here, independent of latchkey's), storage (only SHA-256 digests, read back
//! with `rusqlite`), the check endpoint `GET /v1/apikeys/verify` and every bad input it
//! refuses, introspection, refusals at other endpoints, revocation (by the CLI, and by any client
//! at `/revoke`) and owner switches reaching a running server within a second, rotation, rate limits shared by workers, batched usage
//! counting, and the CLI's argument errors.
//!
//! Keys a test needs from its first request are created before the server starts (in the
//! `start_with` setup), so they are in the server's index from the start and no test depends on
//! the reload interval unless that is what it tests.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::OpenFlags;
use rusqlite::types::ValueRef;
use serde_json::{Value, json};

use crate::oauth::{assert_active, assert_error, assert_inactive, introspect};
use crate::support::{Response, Server, add_user, basic_header, form_encode, latchkey, temp_dir};

const VERIFY: &str = "/v1/apikeys/verify";

// ---------------------------------------------------------------------------------------------
// An independent implementation of the documented key format
// ---------------------------------------------------------------------------------------------

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc: u32 = !0;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `n` in base62 (alphabet 0-9A-Za-z, value order), left-padded with '0' to `width`.
fn base62(mut n: u64, width: usize) -> String {
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(ALPHABET[(n % 62) as usize]);
        n /= 62;
    }
    while digits.len() < width {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap()
}

/// The checksum the format prescribes for a 33-character body.
fn checksum(body: &str) -> String {
    base62(u64::from(crc32(body.as_bytes())), 6)
}

/// Asserts `key` has the documented shape: `lk_`, 33 base62 characters, 6 base62 characters
/// that are the CRC-32 of the body.
fn assert_well_formed(key: &str) {
    assert_eq!(key.len(), 42, "{key}");
    assert!(key.starts_with("lk_"), "{key}");
    assert!(
        key[3..].bytes().all(|b| b.is_ascii_alphanumeric()),
        "only base62 after the prefix: {key}"
    );
    let (body, check) = key[3..].split_at(33);
    assert_eq!(check, checksum(body), "checksum of {key}");
}

/// A well-formed key (valid checksum) that latchkey never issued.
fn forge_key() -> String {
    let mut raw = [0u8; 33];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw).unwrap();
    let body: String = raw
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % 62]))
        .collect();
    format!("lk_{body}{}", checksum(&body))
}

/// `key` with one body character changed: the checksum no longer matches.
fn flip_body_char(key: &str) -> String {
    let mut chars: Vec<char> = key.chars().collect();
    chars[10] = if chars[10] == 'a' { 'b' } else { 'a' };
    chars.into_iter().collect()
}

#[test]
fn independent_format_helpers_match_known_vectors() {
    // The helpers themselves must be right for the format checks to mean anything.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    assert_eq!(base62(0, 6), "000000");
    assert_eq!(base62(61, 6), "00000z");
    assert_eq!(base62(62, 6), "000010");
    assert_eq!(base62(u64::from(u32::MAX), 6), "4gfFC3");
    let k = forge_key();
    assert_well_formed(&k);
    assert_ne!(flip_body_char(&k), k);
    assert_eq!(civil_date(0), "1970-01-01");
    assert_eq!(civil_date(19_723), "2024-01-01");
    assert_eq!(civil_date(19_782), "2024-02-29");
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn now() -> i64 {
    now_f64().floor() as i64
}

/// `YYYY-MM-DD` of a unix day number (proleptic Gregorian, UTC).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Today (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    civil_date(now().div_euclid(86_400))
}

fn cli_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = latchkey(data_dir, args);
    assert!(
        out.status.success(),
        "latchkey {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn cli_json(data_dir: &Path, args: &[&str]) -> Value {
    let out = cli_ok(data_dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// A key made by `apikey create NAME --json [extra…]`.
#[derive(Clone, Debug)]
struct Key {
    id: String,
    name: String,
    key: String,
    created: Value,
}

fn create_key(data_dir: &Path, name: &str, extra: &[&str]) -> Key {
    let mut args = vec!["apikey", "create", name];
    args.extend_from_slice(extra);
    args.push("--json");
    let v = cli_json(data_dir, &args);
    Key {
        id: v["id"].as_str().unwrap().to_string(),
        name: v["name"].as_str().unwrap().to_string(),
        key: v["key"].as_str().unwrap().to_string(),
        created: v,
    }
}

/// Starts a server (with extra `serve` arguments) after creating these keys: `(name, extra
/// create arguments)`.
fn server_with_keys(serve: &[&str], keys: &[(&str, &[&str])]) -> (Server, Vec<Key>) {
    let made = Mutex::new(Vec::new());
    let server = Server::start_with(serve, |dir| {
        for (name, extra) in keys {
            made.lock().unwrap().push(create_key(dir, name, extra));
        }
    });
    (server, made.into_inner().unwrap())
}

/// `GET target` with these extra header lines (each ending in `\r\n`).
fn get_with(server: &Server, target: &str, headers: &str) -> Response {
    server.raw(
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n")
            .as_bytes(),
    )
}

/// The verify endpoint with `key` in `X-API-Key`.
fn check(server: &Server, key: &str) -> Response {
    get_with(server, VERIFY, &format!("X-API-Key: {key}\r\n"))
}

/// The verify endpoint with `key` as a Bearer token.
fn check_bearer(server: &Server, key: &str) -> Response {
    get_with(server, VERIFY, &format!("Authorization: Bearer {key}\r\n"))
}

/// Asserts a 200 from the verify endpoint and returns its body.
fn assert_ok(r: &Response) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header("www-authenticate"), None);
    let v = r.json();
    assert_eq!(v["active"], true, "{v}");
    v
}

/// Checks a Bearer challenge (RFC 6750 §3): status, exactly one `WWW-Authenticate: Bearer
/// realm="latchkey", error="…", error_description="…"`, the same error and description in the
/// JSON body, and `Cache-Control: no-store`.
fn check_challenge(
    r: &Response,
    status: u16,
    error: &str,
    description: &str,
) -> Result<(), String> {
    let mut problems = Vec::new();
    if r.status != status {
        problems.push(format!("status {} (want {status})", r.status));
    }
    let want =
        format!(r#"Bearer realm="latchkey", error="{error}", error_description="{description}""#);
    let challenges = r.headers_named("www-authenticate");
    if challenges != [want.as_str()] {
        problems.push(format!("www-authenticate {challenges:?} (want [{want:?}])"));
    }
    match serde_json::from_slice::<Value>(&r.body) {
        Ok(v) => {
            if v["error"] != error || v["error_description"] != description {
                problems.push(format!("body {v}"));
            }
        }
        Err(e) => problems.push(format!("body is not JSON ({e}): {:?}", r.text())),
    }
    if !r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        problems.push(format!("content-type {:?}", r.header("content-type")));
    }
    if r.header("cache-control") != Some("no-store") {
        problems.push(format!("cache-control {:?}", r.header("cache-control")));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn assert_challenge(r: &Response, status: u16, error: &str, description: &str) {
    if let Err(e) = check_challenge(r, status, error, description) {
        panic!("{e}");
    }
}

fn assert_invalid_token(r: &Response, description: &str) {
    assert_challenge(r, 401, "invalid_token", description);
}

/// Polls the verify endpoint with `key` every 20 ms until `done(response)`, for at most
/// `limit`. Returns the last response and how long it took.
fn poll_key(
    server: &Server,
    key: &str,
    limit: Duration,
    done: impl Fn(&Response) -> bool,
) -> (Response, Duration) {
    let start = Instant::now();
    loop {
        let r = check(server, key);
        if done(&r) || start.elapsed() >= limit {
            return (r, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that a change made with the CLI reaches the running server within one second
/// (measured from the CLI's exit; 1.5 s allowed for a loaded machine).
fn assert_within_one_second(
    server: &Server,
    key: &str,
    what: &str,
    done: impl Fn(&Response) -> bool,
) -> Response {
    let (r, took) = poll_key(server, key, Duration::from_secs(5), &done);
    assert!(
        done(&r),
        "{what}: never took effect; last answer {} {}",
        r.status,
        r.text()
    );
    assert!(
        took <= Duration::from_millis(1_500),
        "{what}: took {took:?}; a change must reach the server within 1 s"
    );
    r
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The secret part of a key: everything after the 11-character public prefix.
fn secret_tail(key: &str) -> &str {
    &key[11..]
}

/// Asserts neither the key nor its secret tail is in the server's logs.
fn assert_not_logged(server: &Server, key: &str) {
    let logs = server.logs();
    assert!(
        !logs.contains(secret_tail(key)),
        "the key (or its secret part) is in the server's logs:\n{logs}"
    );
}

/// The database, opened read-only (the server may be running).
fn db_ro(data_dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("latchkey.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn
}

/// Asserts that no value in any table of the database, and no byte of the database files,
/// contains the key or its secret tail.
fn assert_not_stored(data_dir: &Path, key: &str) {
    let conn = db_ro(data_dir);
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(tables.iter().any(|t| t == "api_keys"), "{tables:?}");
    let tail = secret_tail(key).as_bytes();
    for table in &tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            for (i, column) in columns.iter().enumerate() {
                if let ValueRef::Text(b) | ValueRef::Blob(b) = row.get_ref(i).unwrap() {
                    assert!(
                        !contains(b, tail),
                        "{table}.{column} holds the key (or its secret part)"
                    );
                }
            }
        }
    }
    drop(conn);
    for file in ["latchkey.db", "latchkey.db-wal"] {
        if let Ok(bytes) = std::fs::read(data_dir.join(file)) {
            assert!(
                !contains(&bytes, tail),
                "{file} holds the key (or its secret part)"
            );
        }
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Parses `"key";r=R;t=T` into (R, T).
fn parse_ratelimit(v: &str) -> (i64, i64) {
    let rest = v
        .strip_prefix("\"key\";r=")
        .unwrap_or_else(|| panic!("RateLimit {v:?}"));
    let (r, t) = rest
        .split_once(";t=")
        .unwrap_or_else(|| panic!("RateLimit {v:?}"));
    (r.parse().unwrap(), t.parse().unwrap())
}

// ---------------------------------------------------------------------------------------------
// 1. Creation, format, listings, storage
// ---------------------------------------------------------------------------------------------

#[test]
fn create_prints_a_well_formed_key_once_and_stores_only_its_digest() {
    let dir = temp_dir("apikeys-create").join("data");
    crate::support::init_data_dir(&dir);
    let a = create_key(&dir, "backup-job", &["--scope", "read write"]);
    let b = create_key(
        &dir,
        "monitor",
        &[
            "--owner",
            "uptime",
            "--rate",
            "600/min",
            "--expires-in",
            "90d",
        ],
    );
    let t = now();

    // The documented format, checked with this file's own CRC-32 and base62.
    for k in [&a, &b] {
        assert_well_formed(&k.key);
        let id = &k.id;
        assert!(
            id.len() == 19
                && id.starts_with("ak_")
                && id[3..]
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
            "id {id}"
        );
        assert_eq!(k.created["prefix"], k.key[..11], "{}", k.created);
    }
    assert_ne!(a.key, b.key);
    // `apikey create --json` prints the key in the shape `apikey show` does, plus the key.
    let created_at = a.created["created_at"].as_i64().unwrap();
    assert_eq!(
        a.created,
        json!({
            "id": a.id, "name": "backup-job", "owner": "backup-job", "key": a.key,
            "prefix": &a.key[..11], "scopes": ["read", "write"], "expires_at": null,
            "user": null, "rate_limit": null, "created_at": created_at, "revoked_at": null,
            "last_used_at": null, "replaced_by": null, "status": "active",
        })
    );
    assert_eq!(b.created["owner"], "uptime");
    assert_eq!(b.created["scopes"], json!([]));
    let exp = b.created["expires_at"].as_i64().unwrap();
    assert!(
        (t - 5 + 90 * 86_400..=t + 90 * 86_400).contains(&exp),
        "expires_at {exp}, now {t}"
    );

    // Without --json the key is printed too (this once), with the id.
    let text = cli_ok(&dir, &["apikey", "create", "text-key"]);
    let printed: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.starts_with("lk_"))
        .collect();
    assert_eq!(printed.len(), 1, "{text}");
    assert_well_formed(printed[0]);
    let c_key = printed[0].to_string();

    // Listings never show a key but do show its prefix.
    let list_text = cli_ok(&dir, &["apikey", "list"]);
    let list_json = cli_ok(&dir, &["apikey", "list", "--json"]);
    let mut outputs = vec![list_text.clone(), list_json.clone()];
    for k in [&a.id, &a.name, &b.id, &b.name] {
        outputs.push(cli_ok(&dir, &["apikey", "show", k]));
        outputs.push(cli_ok(&dir, &["apikey", "show", k, "--json"]));
    }
    for out in &outputs {
        for key in [&a.key, &b.key, &c_key] {
            assert!(
                !out.contains(secret_tail(key)),
                "a listing shows a key:\n{out}"
            );
        }
    }
    for key in [&a.key, &b.key, &c_key] {
        assert!(list_text.contains(&key[..11]), "{list_text}");
        assert!(list_json.contains(&key[..11]), "{list_json}");
    }
    for out in &outputs[2..] {
        assert!(
            out.contains(&a.key[..11]) || out.contains(&b.key[..11]),
            "show lacks the prefix:\n{out}"
        );
    }
    let list: Value = serde_json::from_str(&list_json).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    let shown_b = cli_json(&dir, &["apikey", "show", &b.id, "--json"]);
    assert_eq!(shown_b["id"], b.id);
    assert_eq!(shown_b["name"], "monitor");
    assert_eq!(shown_b["owner"], "uptime");
    assert_eq!(shown_b["prefix"], b.key[..11]);
    assert_eq!(
        shown_b["rate_limit"],
        json!({"requests": 600, "per_seconds": 60})
    );
    assert_eq!(shown_b["expires_at"], exp);
    assert_eq!(shown_b["revoked_at"], Value::Null);
    assert_eq!(shown_b["last_used_at"], Value::Null);
    assert_eq!(shown_b["status"], "active");
    assert!(list.contains(&shown_b), "{list:?}");

    // The database holds SHA-256(key) as the lookup digest, and the key nowhere.
    let conn = db_ro(&dir);
    for k in [&a, &b] {
        let (hash, prefix): (Vec<u8>, String) = conn
            .query_row(
                "SELECT hash, prefix FROM api_keys WHERE id = ?1",
                [&k.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(hash, sha256(k.key.as_bytes()), "api_keys.hash of {}", k.id);
        assert_eq!(prefix, k.key[..11]);
    }
    drop(conn);
    for key in [&a.key, &b.key, &c_key] {
        assert_not_stored(&dir, key);
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The verify endpoint: good keys and scopes
// ---------------------------------------------------------------------------------------------

#[test]
fn verify_accepts_x_api_key_and_bearer() {
    let (server, keys) = server_with_keys(
        &[],
        &[(
            "nightly-backup",
            &["--owner", "backup-app", "--scope", "read write"],
        )],
    );
    let k = &keys[0];
    let want = json!({
        "active": true, "id": k.id, "name": "nightly-backup", "owner": "backup-app",
        "scopes": ["read", "write"], "scope": "read write", "expires_at": null,
    });
    for (how, r) in [
        ("X-API-Key", check(&server, &k.key)),
        ("Bearer", check_bearer(&server, &k.key)),
        (
            "x-api-key in lower case",
            get_with(&server, VERIFY, &format!("x-api-key: {}\r\n", k.key)),
        ),
        (
            "bearer scheme in lower case",
            get_with(
                &server,
                VERIFY,
                &format!("Authorization: bearer {}\r\n", k.key),
            ),
        ),
    ] {
        let v = assert_ok(&r);
        assert_eq!(v, want, "{how}");
        assert_eq!(r.header("pragma"), Some("no-cache"), "{how}");
        // A key without a rate limit gets no rate-limit headers.
        assert_eq!(r.header("ratelimit"), None, "{how}");
        assert_eq!(r.header("ratelimit-policy"), None, "{how}");
    }

    // An expiring key reports its expiry.
    let e = create_key(&server.data_dir, "expiring", &["--expires-in", "12h"]);
    let (r, _) = poll_key(&server, &e.key, Duration::from_secs(5), |r| r.status == 200);
    let v = assert_ok(&r);
    assert_eq!(v["expires_at"], e.created["expires_at"]);
    assert!(v["expires_at"].as_i64().unwrap() > now() + 11 * 3600);
    assert_not_logged(&server, &k.key);
}

#[test]
fn a_key_created_while_the_server_runs_works_within_a_second() {
    let server = Server::start();
    let k = create_key(&server.data_dir, "late", &[]);
    let r = assert_within_one_second(&server, &k.key, "new key", |r| r.status == 200);
    assert_eq!(assert_ok(&r)["id"], k.id);
}

#[test]
fn verify_checks_required_scopes() {
    let (server, keys) = server_with_keys(&[], &[("scoped", &["--scope", "read write"])]);
    let key = &keys[0].key;
    let header = format!("X-API-Key: {key}\r\n");
    for ok in [
        "?scope=read",
        "?scope=write",
        "?scope=read+write",
        "?scope=write%20read",
    ] {
        let r = get_with(&server, &format!("{VERIFY}{ok}"), &header);
        assert_eq!(assert_ok(&r)["scope"], "read write", "{ok}");
    }
    let mut failures = Vec::new();
    for bad in ["?scope=admin", "?scope=read+admin", "?scope=READ"] {
        let r = get_with(&server, &format!("{VERIFY}{bad}"), &header);
        if let Err(e) = check_challenge(
            &r,
            403,
            "insufficient_scope",
            "the API key lacks a required scope",
        ) {
            failures.push(format!("[{bad}] {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_not_logged(&server, key);
}

/// A required scope the server cannot read must not be treated as "no scope required": the
/// app asked for a scope, and a key that does not hold it must not get a 200.
#[test]
fn verify_fails_closed_on_an_unreadable_scope_requirement() {
    let (server, keys) = server_with_keys(&[], &[("reader", &["--scope", "read"])]);
    let header = format!("X-API-Key: {}\r\n", keys[0].key);
    let mut failures = Vec::new();
    for query in [
        "?scope=read&scope=admin",
        "?scope=admin&scope=read",
        "?scope=%ZZadmin",
        "?scope=%22admin%22",
        "?scope=admin%5C",
    ] {
        let r = get_with(&server, &format!("{VERIFY}{query}"), &header);
        let challenge = r.header("www-authenticate").unwrap_or("");
        let refused = (r.status == 400
            && r.json()["error"] == "invalid_request"
            && challenge.starts_with(r#"Bearer realm="latchkey", error="invalid_request""#))
            || check_challenge(
                &r,
                403,
                "insufficient_scope",
                "the API key lacks a required scope",
            )
            .is_ok();
        if !refused {
            failures.push(format!("[{query}] {} {}", r.status, r.text()));
        }
    }
    assert!(
        failures.is_empty(),
        "a key without the scope was accepted:\n{}",
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Bad input: each with its exact status, error and headers
// ---------------------------------------------------------------------------------------------

#[test]
fn missing_key_gets_a_challenge_without_an_error() {
    let server = Server::start();
    for r in [
        server.get(VERIFY),
        get_with(&server, &format!("{VERIFY}?scope=read"), ""),
    ] {
        assert_eq!(r.status, 401, "{}", r.text());
        // RFC 6750 §3.1: no error code when the request carried no credentials.
        assert_eq!(
            r.headers_named("www-authenticate"),
            [r#"Bearer realm="latchkey""#]
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{:?}",
            r.headers
        );
        // Nor in the body: no `invalid_token`, no error at all.
        assert_eq!(r.json(), serde_json::json!({}), "{}", r.text());
    }
}

#[test]
fn malformed_unknown_and_foreign_keys_are_invalid_tokens() {
    let (server, keys) = server_with_keys(&[], &[("real", &[])]);
    let real = &keys[0].key;
    let forged = forge_key();
    assert_ne!(&forged, real);
    let body_and_check = &real[3..];
    let mut bad_check = real.clone();
    let last = bad_check.pop().unwrap();
    bad_check.push(if last == '0' { '1' } else { '0' });
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong prefix gh_",
            format!("gh_{body_and_check}"),
            "not a latchkey API key",
        ),
        (
            "upper-case prefix",
            format!("LK_{body_and_check}"),
            "not a latchkey API key",
        ),
        (
            "no prefix",
            body_and_check.to_string(),
            "not a latchkey API key",
        ),
        (
            "a GitHub token",
            format!("ghp_{}", &body_and_check[..36]),
            "not a latchkey API key",
        ),
        (
            "one character short",
            real[..41].to_string(),
            "malformed API key",
        ),
        (
            "one character long",
            format!("{real}a"),
            "malformed API key",
        ),
        (
            "a non-base62 character",
            format!("{}-{}", &real[..20], &real[21..]),
            "malformed API key",
        ),
        ("prefix only", "lk_".to_string(), "malformed API key"),
        (
            "one body character changed",
            flip_body_char(real),
            "API key checksum does not match",
        ),
        (
            "one checksum character changed",
            bad_check,
            "API key checksum does not match",
        ),
        (
            "right checksum, never issued",
            forged.clone(),
            "unknown API key",
        ),
    ];
    let mut failures = Vec::new();
    for (name, value, description) in &cases {
        for (how, r) in [
            ("X-API-Key", check(&server, value)),
            ("Bearer", check_bearer(&server, value)),
        ] {
            if let Err(e) = check_challenge(&r, 401, "invalid_token", description) {
                failures.push(format!("[{name} via {how}] {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The real key still works; nothing above was mistaken for it.
    assert_ok(&check(&server, real));
    assert_not_logged(&server, real);
    assert_not_logged(&server, &forged);
}

#[test]
fn wrong_authorization_schemes_and_repeated_keys_are_bad_requests() {
    let (server, keys) = server_with_keys(&[], &[("one", &[]), ("two", &[])]);
    let (a, b) = (&keys[0].key, &keys[1].key);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "X-API-Key and Bearer, same key",
            format!("X-API-Key: {a}\r\nAuthorization: Bearer {a}\r\n"),
            "send the key once",
        ),
        (
            "X-API-Key and Bearer, different keys",
            format!("X-API-Key: {a}\r\nAuthorization: Bearer {b}\r\n"),
            "send the key once",
        ),
        (
            "two X-API-Key headers",
            format!("X-API-Key: {a}\r\nX-API-Key: {b}\r\n"),
            "send one X-API-Key header",
        ),
        (
            "two X-API-Key headers, same key",
            format!("X-API-Key: {a}\r\nX-API-Key: {a}\r\n"),
            "send one X-API-Key header",
        ),
        (
            "Basic scheme",
            basic_header(a, ""),
            "use X-API-Key or the Bearer scheme",
        ),
    ];
    let mut failures = Vec::new();
    for (name, headers, description) in &cases {
        let r = get_with(&server, VERIFY, headers);
        if let Err(e) = check_challenge(&r, 400, "invalid_request", description) {
            failures.push(format!("[{name}] {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_not_logged(&server, a);
    assert_not_logged(&server, b);
}

#[test]
fn a_key_in_the_url_is_refused_even_with_a_valid_header() {
    let (server, keys) = server_with_keys(&[], &[("leaky", &["--scope", "read"])]);
    let key = &keys[0].key;
    let encoded: String = key.bytes().map(|b| format!("%{b:02X}")).collect();
    let targets = [
        format!("{VERIFY}?api_key={key}"),
        format!("{VERIFY}?key={key}"),
        format!("{VERIFY}?apikey={key}"),
        format!("{VERIFY}?x-api-key={key}"),
        format!("{VERIFY}?access_token={key}"),
        format!("{VERIFY}?API_KEY={key}"),
        format!("{VERIFY}?q={key}"),
        format!("{VERIFY}?scope=read&api_key={key}"),
        format!("{VERIFY}?api_key={key}&scope=read"),
        format!("{VERIFY}?token={encoded}"),
        format!("{VERIFY}?api_key=not-even-a-key"),
    ];
    let description = "API keys are not accepted in the URL; send the X-API-Key header";
    let mut failures = Vec::new();
    for target in &targets {
        for (how, headers) in [
            ("no header", String::new()),
            ("valid X-API-Key", format!("X-API-Key: {key}\r\n")),
            ("valid Bearer", format!("Authorization: Bearer {key}\r\n")),
        ] {
            let r = get_with(&server, target, &headers);
            if let Err(e) = check_challenge(&r, 400, "invalid_request", description) {
                failures.push(format!("[{target} with {how}] {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Refusing the URL did not disable the key.
    assert_ok(&check(&server, key));
    assert_not_logged(&server, key);
}

#[test]
fn an_oversized_header_gets_431() {
    let (server, keys) = server_with_keys(&[], &[("big", &[])]);
    let huge = format!("lk_{}", "a".repeat(20 * 1024));
    for headers in [
        format!("X-API-Key: {huge}\r\n"),
        format!("Authorization: Bearer {huge}\r\n"),
        format!(
            "X-API-Key: {}\r\nX-Padding: {}\r\n",
            keys[0].key,
            "p".repeat(17 * 1024)
        ),
    ] {
        let r = get_with(&server, VERIFY, &headers);
        assert_eq!(r.status, 431, "{}", r.text());
        // An HTTP-layer rejection, not an OAuth error (RFC 9457 problem).
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.json()["detail"], "request header fields too large");
        assert_eq!(r.json()["error"], Value::Null, "{}", r.text());
        assert_eq!(r.header("www-authenticate"), None);
    }
    // The server is fine afterwards.
    assert_ok(&check(&server, &keys[0].key));
    assert_not_logged(&server, &keys[0].key);
}

#[test]
fn revocation_reaches_the_running_server_within_one_second() {
    let (server, keys) = server_with_keys(&[], &[("to-revoke", &[]), ("bystander", &[])]);
    let (k, other) = (&keys[0], &keys[1]);
    assert_ok(&check(&server, &k.key));
    let out = cli_ok(&server.data_dir, &["apikey", "revoke", &k.name]);
    assert!(out.contains(&k.id), "{out}");
    let r = assert_within_one_second(&server, &k.key, "revocation", |r| r.status == 401);
    assert_invalid_token(&r, "API key revoked");
    assert_invalid_token(&check_bearer(&server, &k.key), "API key revoked");
    // Only that key.
    assert_ok(&check(&server, &other.key));
    let shown = cli_json(&server.data_dir, &["apikey", "show", &k.id, "--json"]);
    assert_eq!(shown["status"], "revoked");
    assert!(shown["revoked_at"].as_i64().unwrap() >= now() - 60);
    assert_not_logged(&server, &k.key);
}

/// `GET /api/forward-auth` for `http://app.test/` with `key` in `X-API-Key`.
fn forward_auth(server: &Server, key: &str) -> Response {
    get_with(
        server,
        "/api/forward-auth",
        &format!(
            "X-Forwarded-Proto: http\r\nX-Forwarded-Host: app.test\r\nX-Forwarded-Uri: /\r\n\
             Accept: application/json\r\nX-API-Key: {key}\r\n"
        ),
    )
}

/// `POST /revoke` with `token=key` and these extra header lines.
fn revoke(server: &Server, body: &str, headers: &str) -> Response {
    let r = server.post_form("/revoke", body, headers);
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    r
}

/// The audit log's `apikey_revoked` events, polled until there are `n` (the server writes its
/// events every two seconds).
fn revoked_events(data_dir: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let events: Vec<Value> = cli_json(data_dir, &["audit", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "apikey_revoked")
            .cloned()
            .collect();
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// RFC 7009 for a leaked key: any client that authenticates revokes it at `/revoke`, and it is
/// refused at once by the verify endpoint, introspection and forward auth; the audit log names
/// the client. Unknown, malformed and already revoked keys get 200 and change nothing; a wrong
/// client secret is still `invalid_client` and revokes nothing.
#[test]
fn a_leaked_key_is_revoked_through_the_revocation_endpoint_by_any_client() {
    let made = Mutex::new(Vec::new());
    let server = Server::start_with(&[], |dir| {
        for name in ["leaked", "bystander", "found-by-an-app"] {
            made.lock()
                .unwrap()
                .push(create_key(dir, name, &["--scope", "app:read"]));
        }
        let out = latchkey(
            dir,
            &[
                "rule",
                "add",
                "--host",
                "app.test",
                "--allow-any-user",
                "--scope",
                "app:read",
            ],
        );
        assert!(out.status.success(), "{out:?}");
    });
    let keys = made.into_inner().unwrap();
    let (k, other, third) = (&keys[0], &keys[1], &keys[2]);
    // The finder is not the key's owner nor any client the key has to do with.
    let finder = server.client("finder", "");
    let rs = server.client("resource-server", "");
    let public: Value = serde_json::from_str(&cli_ok(
        &server.data_dir,
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--json",
        ],
    ))
    .unwrap();
    let public_id = public["client_id"].as_str().unwrap().to_string();
    for key in [&k.key, &other.key, &third.key] {
        assert_ok(&check(&server, key));
        assert_active(&introspect(&server, &rs, key));
        assert_eq!(forward_auth(&server, key).status, 200);
    }

    // Wrong credentials revoke nothing: 401 invalid_client, as for any token.
    let wrong = revoke(
        &server,
        &format!("token={}", k.key),
        &basic_header(&finder.id, "not-the-secret"),
    );
    assert_error(&wrong, 401, "invalid_client");
    let anonymous = revoke(&server, &format!("token={}", k.key), "");
    assert_error(&anonymous, 401, "invalid_client");
    // Unknown and malformed keys: 200 (RFC 7009 §2.2), and nothing changes.
    for bad in [
        forge_key(),
        flip_body_char(&k.key),
        format!("{}x", k.key),
        k.key[..k.key.len() - 1].to_string(),
        "lk_".to_string(),
        "lk_short".to_string(),
    ] {
        let r = revoke(
            &server,
            &format!("token={}&token_type_hint=access_token", form_encode(&bad)),
            &basic_header(&finder.id, &finder.secret),
        );
        assert_eq!(r.status, 200, "{bad}: {}", r.text());
        assert!(r.body.is_empty(), "{}", r.text());
    }
    assert_ok(&check(&server, &k.key));

    // The finder revokes the leaked key.
    let r = revoke(
        &server,
        &format!("token={}", k.key),
        &basic_header(&finder.id, &finder.secret),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty(), "{}", r.text());
    // Refused at once, everywhere.
    assert_invalid_token(&check(&server, &k.key), "API key revoked");
    assert_inactive(&introspect(&server, &rs, &k.key));
    let fa = forward_auth(&server, &k.key);
    assert_eq!(fa.status, 401, "{:?} {}", fa.headers, fa.text());
    assert!(
        fa.header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"invalid_token\"")),
        "{:?}",
        fa.headers
    );
    assert_eq!(fa.json()["error"], "invalid_token", "{}", fa.text());
    // Only that key.
    assert_ok(&check(&server, &other.key));
    assert_eq!(forward_auth(&server, &other.key).status, 200);
    let shown = cli_json(&server.data_dir, &["apikey", "show", &k.id, "--json"]);
    assert_eq!(shown["status"], "revoked");
    assert!(shown["revoked_at"].as_i64().unwrap() >= now() - 60);
    // Revoking again: 200, and no second event.
    let again = revoke(
        &server,
        &format!("token={}", k.key),
        &basic_header(&rs.id, &rs.secret),
    );
    assert_eq!(again.status, 200, "{}", again.text());

    // A public client (it names itself; the key is the proof) may revoke a key it found too.
    let r = revoke(
        &server,
        &format!("token={}&client_id={}", third.key, form_encode(&public_id)),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_invalid_token(&check(&server, &third.key), "API key revoked");

    // The audit log names the client that revoked each key, and nothing secret.
    let events = revoked_events(&server.data_dir, 2);
    assert_eq!(events.len(), 2, "{events:?}");
    let by_target = |id: &str| {
        events
            .iter()
            .find(|e| e["target"] == id)
            .unwrap_or_else(|| panic!("no event for {id}: {events:?}"))
            .clone()
    };
    let e = by_target(&k.id);
    assert_eq!(e["actor"], format!("client:{}", finder.id), "{e}");
    assert_eq!(e["outcome"], "ok", "{e}");
    assert_eq!(e["address"], "127.0.0.1", "{e}");
    assert_eq!(e["count"], 1, "{e}");
    assert_eq!(by_target(&third.id)["actor"], format!("client:{public_id}"));
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains(secret_tail(&k.key)),
        "the key is in the audit log"
    );
    // Still refused after the reload the database change triggers (every 250 ms).
    std::thread::sleep(Duration::from_millis(600));
    assert_invalid_token(&check(&server, &k.key), "API key revoked");
    assert_ok(&check(&server, &other.key));
    assert_not_logged(&server, &k.key);
    assert_not_logged(&server, &third.key);
}

#[test]
fn an_expired_key_is_refused() {
    let (server, keys) = server_with_keys(&[], &[("short-lived", &["--expires-in", "1s"])]);
    let k = &keys[0];
    let exp = k.created["expires_at"].as_i64().unwrap();
    assert!((now() - 30..=now() + 1).contains(&exp), "{}", k.created);
    // Wait until the expiry second has passed on this machine's clock.
    while now_f64() < exp as f64 + 0.2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_invalid_token(&check(&server, &k.key), "API key expired");
    assert_invalid_token(&check_bearer(&server, &k.key), "API key expired");
    let listed = cli_json(&server.data_dir, &["apikey", "list", "--json"]);
    assert_eq!(listed[0]["status"], "expired", "{listed}");
    assert_not_logged(&server, &k.key);
}

#[test]
fn disabling_the_owner_disables_its_keys_within_one_second() {
    let (server, keys) = server_with_keys(
        &[],
        &[
            ("backup-1", &["--owner", "backup"]),
            ("backup-2", &["--owner", "backup"]),
            ("monitor", &["--owner", "uptime"]),
        ],
    );
    for k in &keys {
        assert_ok(&check(&server, &k.key));
    }
    cli_ok(&server.data_dir, &["apikey", "owner", "disable", "backup"]);
    let r = assert_within_one_second(&server, &keys[0].key, "owner disable", |r| r.status == 401);
    assert_invalid_token(&r, "the API key's owner is disabled");
    assert_invalid_token(
        &check(&server, &keys[1].key),
        "the API key's owner is disabled",
    );
    assert_ok(&check(&server, &keys[2].key));

    cli_ok(&server.data_dir, &["apikey", "owner", "enable", "backup"]);
    assert_within_one_second(&server, &keys[0].key, "owner enable", |r| r.status == 200);
    assert_ok(&check(&server, &keys[1].key));
    for k in &keys {
        assert_not_logged(&server, &k.key);
    }
}

#[test]
fn disabling_the_user_disables_their_keys_within_one_second() {
    let (server, keys) = server_with_keys(&[], &[]);
    assert!(keys.is_empty());
    add_user(&server.data_dir, "alice", &[]);
    add_user(&server.data_dir, "bob", &[]);
    let alice = create_key(&server.data_dir, "alice-script", &["--user", "alice"]);
    let bob = create_key(&server.data_dir, "bob-script", &["--user", "bob"]);
    let (r, _) = poll_key(&server, &alice.key, Duration::from_secs(5), |r| {
        r.status == 200
    });
    assert_ok(&r);
    let (r, _) = poll_key(&server, &bob.key, Duration::from_secs(5), |r| {
        r.status == 200
    });
    assert_ok(&r);

    cli_ok(&server.data_dir, &["user", "disable", "alice"]);
    let r = assert_within_one_second(&server, &alice.key, "user disable", |r| r.status == 401);
    assert_invalid_token(&r, "the API key's owner is disabled");
    assert_ok(&check(&server, &bob.key));

    cli_ok(&server.data_dir, &["user", "enable", "alice"]);
    assert_within_one_second(&server, &alice.key, "user enable", |r| r.status == 200);
    assert_not_logged(&server, &alice.key);
}

#[test]
fn a_burst_over_the_rate_limit_gets_429() {
    let (server, keys) = server_with_keys(&[], &[("limited", &["--rate", "3/min"]), ("free", &[])]);
    let key = &keys[0].key;
    let policy = "\"key\";q=3;w=60";
    for want_r in [2, 1, 0] {
        let r = check(&server, key);
        assert_ok(&r);
        assert_eq!(r.header("ratelimit-policy"), Some(policy));
        let (remaining, reset) = parse_ratelimit(r.header("ratelimit").unwrap());
        assert_eq!(remaining, want_r, "{:?}", r.headers);
        assert!((1..=60).contains(&reset), "{:?}", r.headers);
        assert_eq!(r.header("retry-after"), None);
    }
    for attempt in 0..2 {
        let r = if attempt == 0 {
            check(&server, key)
        } else {
            check_bearer(&server, key)
        };
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.json()["error"], "rate_limited", "{}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("www-authenticate"), None);
        let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
        // One token every 20 s.
        assert!((1..=20).contains(&retry), "Retry-After {retry}");
        assert_eq!(r.header("ratelimit-policy"), Some(policy));
        let (remaining, reset) = parse_ratelimit(r.header("ratelimit").unwrap());
        assert_eq!(remaining, 0);
        assert!((1..=60).contains(&reset), "{:?}", r.headers);
    }
    // Limits are per key.
    assert_ok(&check(&server, &keys[1].key));
    assert_not_logged(&server, key);
}

#[test]
fn the_rate_limit_is_shared_by_all_workers() {
    let (server, keys) =
        server_with_keys(&["--workers", "4"], &[("shared", &["--rate", "10/min"])]);
    let key = keys[0].key.clone();
    let threads = 8;
    let per_thread = 5;
    let barrier = Barrier::new(threads);
    let results: Mutex<Vec<Response>> = Mutex::new(Vec::new());
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..per_thread {
                    let r = check(&server, &key);
                    results.lock().unwrap().push(r);
                }
            });
        }
    });
    // One token comes back every 6 s; the burst must be well inside that for the count to be
    // exact.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let results = results.into_inner().unwrap();
    let ok: Vec<&Response> = results.iter().filter(|r| r.status == 200).collect();
    let limited = results.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        ok.len(),
        10,
        "statuses {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(limited, threads * per_thread - 10);
    // One bucket: every success saw a different number of tokens left.
    let mut remaining: Vec<i64> = ok
        .iter()
        .map(|r| parse_ratelimit(r.header("ratelimit").unwrap()).0)
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, (0..10).collect::<Vec<_>>());
    assert_not_logged(&server, &key);
}

// ---------------------------------------------------------------------------------------------
// 4. Refusals elsewhere
// ---------------------------------------------------------------------------------------------

#[test]
fn an_api_key_is_not_an_access_token_nor_a_client_secret() {
    let (server, keys) = server_with_keys(&[], &[("app", &["--scope", "openid profile"])]);
    let k = &keys[0];
    let client = server.client("svc", "");

    // UserInfo takes access tokens only.
    for r in [
        get_with(
            &server,
            "/userinfo",
            &format!("Authorization: Bearer {}\r\n", k.key),
        ),
        server.post_form("/userinfo", &format!("access_token={}", k.key), ""),
    ] {
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(r.json()["error"], "invalid_token", "{}", r.text());
        let challenge = r.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="latchkey", error="invalid_token""#),
            "{challenge}"
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }

    // The token endpoint: a key is no client secret, however it is sent.
    let post = server.post_form(
        "/token",
        &format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            form_encode(&client.id),
            k.key
        ),
        "",
    );
    post.assert_oauth_error(401, "invalid_client");
    let basic = server.post_form(
        "/token",
        "grant_type=client_credentials",
        &basic_header(&client.id, &k.key),
    );
    assert_error(&basic, 401, "invalid_client");
    // Nor is the key's id a client id.
    let by_key_id = server.post_form(
        "/token",
        "grant_type=client_credentials",
        &basic_header(&k.id, &k.key),
    );
    assert_error(&by_key_id, 401, "invalid_client");
    // Nor the key a client id.
    let as_id = server.post_form(
        "/token",
        &format!("grant_type=client_credentials&client_id={}", k.key),
        "",
    );
    assert_eq!(as_id.status, 401, "{}", as_id.text());
    assert_eq!(as_id.json()["error"], "invalid_client");
    for r in [&post, &basic, &by_key_id, &as_id] {
        assert!(r.json().get("access_token").is_none());
        assert!(!r.text().contains(secret_tail(&k.key)), "{}", r.text());
    }
    assert_not_logged(&server, &k.key);
}

#[test]
fn an_access_token_is_not_an_api_key() {
    let server = Server::start();
    let client = server.client("svc", "read");
    let token = server.token(&client, Some("read"));
    for r in [check(&server, &token), check_bearer(&server, &token)] {
        assert_invalid_token(&r, "not a latchkey API key");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Introspection
// ---------------------------------------------------------------------------------------------

#[test]
fn introspection_describes_an_api_key() {
    let (server, keys) = server_with_keys(
        &[],
        &[
            (
                "nightly-backup",
                &[
                    "--owner",
                    "backup-app",
                    "--scope",
                    "read write",
                    "--expires-in",
                    "90d",
                ],
            ),
            ("forever", &[]),
        ],
    );
    let (a, b) = (&keys[0], &keys[1]);
    let rs = server.client("resource-server", "");
    let shown = cli_json(&server.data_dir, &["apikey", "show", &a.id, "--json"]);
    let v = assert_active(&introspect(&server, &rs, &a.key));
    assert_eq!(
        v,
        json!({
            "active": true, "token_type": "api_key", "scope": "read write", "id": a.id,
            "name": "nightly-backup", "owner": "backup-app",
            "iat": shown["created_at"], "exp": a.created["expires_at"],
        })
    );
    assert!(v["iat"].as_i64().unwrap() <= now());
    assert!(v["exp"].as_i64().unwrap() > now() + 89 * 86_400);
    // Without an expiry there is no exp.
    let v = assert_active(&introspect(&server, &rs, &b.key));
    assert_eq!(v["token_type"], "api_key");
    assert_eq!(v["name"], "forever");
    assert_eq!(v["owner"], "forever");
    assert_eq!(v["scope"], "");
    assert!(v.get("exp").is_none(), "{v}");
    // A hint does not change the answer.
    let hinted = server.post_basic(
        "/introspect",
        &rs,
        &format!("token={}&token_type_hint=access_token", a.key),
    );
    assert_eq!(assert_active(&hinted)["id"], a.id);

    // Keys that do not work are inactive, with nothing more said.
    assert_inactive(&introspect(&server, &rs, &forge_key()));
    assert_inactive(&introspect(&server, &rs, &flip_body_char(&a.key)));
    cli_ok(&server.data_dir, &["apikey", "revoke", &a.id]);
    let start = Instant::now();
    loop {
        let r = introspect(&server, &rs, &a.key);
        if r.json()["active"] == false {
            assert_inactive(&r);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_millis(1_500),
            "revoked key still active at /introspect: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Introspection requires client authentication, also for API keys.
    let anonymous = server.post_form("/introspect", &format!("token={}", b.key), "");
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
    assert_eq!(anonymous.json()["error"], "invalid_client");
    assert_not_logged(&server, &a.key);
    assert_not_logged(&server, &b.key);
}

// ---------------------------------------------------------------------------------------------
// 6. Rotation
// ---------------------------------------------------------------------------------------------

#[test]
fn rotation_keeps_the_old_key_working_for_the_grace_period() {
    let (server, keys) = server_with_keys(&[], &[("deploy", &["--scope", "deploy"])]);
    let old = &keys[0];
    assert_ok(&check(&server, &old.key));
    let rotated = cli_json(
        &server.data_dir,
        &["apikey", "rotate", "deploy", "--grace", "2s", "--json"],
    );
    let t = now();
    let old_until = rotated["old_key_expires_at"].as_i64().unwrap();
    // Right after the rotation the old key still works: its grace period runs to
    // old_key_expires_at (1-2 s from now, counted in whole seconds). Only a machine so loaded
    // that the grace period is already over by the time of the answer excuses a refusal.
    let r = check(&server, &old.key);
    if r.status != 200 {
        assert!(
            now_f64() >= old_until as f64,
            "the old key was refused during its grace period: {}",
            r.text()
        );
    } else {
        assert_eq!(assert_ok(&r)["id"], old.id);
    }

    let new_key = rotated["key"].as_str().unwrap().to_string();
    assert_well_formed(&new_key);
    assert_ne!(new_key, old.key);
    assert_eq!(rotated["replaces"], old.id);
    assert_eq!(rotated["name"], "deploy");
    assert_eq!(rotated["prefix"], new_key[..11]);
    assert!((t - 1..=t + 2).contains(&old_until), "{rotated}, now {t}");

    let r = assert_within_one_second(&server, &new_key, "new key of a rotation", |r| {
        r.status == 200
    });
    let v = assert_ok(&r);
    assert_eq!(v["id"], rotated["id"]);
    assert_eq!(v["name"], "deploy");
    assert_eq!(v["scopes"], json!(["deploy"]));

    // After the grace period, only the new key works.
    while now_f64() < old_until as f64 + 0.2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_invalid_token(&check(&server, &old.key), "API key expired");
    assert_ok(&check(&server, &new_key));
    let shown = cli_json(&server.data_dir, &["apikey", "show", &old.id, "--json"]);
    assert_eq!(shown["replaced_by"], rotated["id"]);
    assert_eq!(shown["status"], "expired");
    let by_name = cli_json(&server.data_dir, &["apikey", "show", "deploy", "--json"]);
    assert_eq!(
        by_name["id"], rotated["id"],
        "the name means the newest key"
    );
    assert_not_logged(&server, &old.key);
    assert_not_logged(&server, &new_key);
    assert_not_stored(&server.data_dir, &new_key);
}

// ---------------------------------------------------------------------------------------------
// 7. Usage
// ---------------------------------------------------------------------------------------------

/// The count stored for `key_id` today, read directly from the database.
fn stored_count(conn: &rusqlite::Connection, key_id: &str) -> Option<i64> {
    conn.query_row(
        "SELECT count FROM api_key_usage WHERE key_id = ?1 AND day = ?2",
        rusqlite::params![key_id, now().div_euclid(86_400)],
        |r| r.get(0),
    )
    .ok()
}

#[test]
fn usage_is_counted_flushed_in_batches_and_at_shutdown() {
    let (mut server, keys) = server_with_keys(&[], &[("counted", &[]), ("idle", &[])]);
    let k = &keys[0];
    let n = 5;
    let before = now();
    for _ in 0..n {
        assert_ok(&check(&server, &k.key));
    }
    // The counts reach the database within the flush interval (~2 s). A flush may fall between
    // the checks, so wait for the full count.
    let start = Instant::now();
    let usage = loop {
        let u = cli_json(&server.data_dir, &["apikey", "usage", "counted", "--json"]);
        if u["days"][0]["requests"] == n || start.elapsed() > Duration::from_secs(4) {
            break u;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        usage,
        json!({"id": k.id, "name": "counted", "days": [{"day": today(), "requests": n}]})
    );
    let shown = cli_json(&server.data_dir, &["apikey", "show", "counted", "--json"]);
    let last_used = shown["last_used_at"]
        .as_i64()
        .unwrap_or_else(|| panic!("{shown}"));
    assert!((before..=now()).contains(&last_used), "{shown}");
    let idle = cli_json(&server.data_dir, &["apikey", "usage", "idle", "--json"]);
    assert_eq!(idle["days"], json!([]));
    let list = cli_ok(&server.data_dir, &["apikey", "list"]);
    let row = list.lines().find(|l| l.contains(&k.id)).unwrap();
    assert!(!row.ends_with("never"), "{list}");

    // N more checks, then SIGTERM at once: the shutdown writes what is still in memory.
    for _ in 0..n {
        assert_ok(&check(&server, &k.key));
    }
    let status = server.sigterm();
    assert!(status.success(), "{status:?}");
    let usage = cli_json(&server.data_dir, &["apikey", "usage", "counted", "--json"]);
    assert_eq!(usage["days"], json!([{"day": today(), "requests": 2 * n}]));
    assert_not_logged(&server, &k.key);
}

/// Checking a key must not write to the database per request.
///
/// How this is observed without relying on timing luck: while a burst of checks runs, a second
/// thread polls `PRAGMA data_version` on its own read-only connection every millisecond.
/// `data_version` changes whenever another connection has committed since the previous poll,
/// so the number of changes seen is at most the number of commits the server made. The
/// server's only writer here is the batched usage flush, which runs at least 2 s apart, so a
/// burst lasting T seconds can show at most T/2 + 1 changes. A server that wrote on every check
/// (or every few) would show a change at nearly every poll, i.e. dozens or hundreds. The poller
/// keeps running until the burst's counts appear in `api_key_usage`, which proves the probe
/// does see the server's commits (it must see at least one change).
#[test]
fn checking_keys_does_not_write_to_the_database_per_request() {
    let (server, keys) = server_with_keys(&[], &[("busy-monitor", &[])]);
    let k = &keys[0];
    let checks = 200;
    let done = AtomicBool::new(false);
    let changes = AtomicUsize::new(0);
    let mut during = usize::MAX;
    let conn = db_ro(&server.data_dir);
    let version = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let mut burst = Duration::ZERO;
    std::thread::scope(|s| {
        let (done, changes) = (&done, &changes);
        let poller = s.spawn(move || {
            let mut last = version(&conn);
            let mut polls = 0u64;
            while !done.load(Ordering::SeqCst) {
                let v = version(&conn);
                if v != last {
                    changes.fetch_add(1, Ordering::SeqCst);
                    last = v;
                }
                polls += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            polls
        });
        let start = Instant::now();
        for _ in 0..checks {
            let r = check(&server, &k.key);
            assert_eq!(r.status, 200, "{}", r.text());
        }
        burst = start.elapsed();
        during = changes.load(Ordering::SeqCst);
        // Now wait for the flush: the counts appear, and the poller must see that commit.
        let reader = db_ro(&server.data_dir);
        let wait = Instant::now();
        while stored_count(&reader, &k.id) != Some(checks)
            && wait.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            stored_count(&reader, &k.id),
            Some(checks),
            "usage never flushed"
        );
        std::thread::sleep(Duration::from_millis(50));
        done.store(true, Ordering::SeqCst);
        let polls = poller.join().unwrap();
        assert!(polls > 50, "the poller ran only {polls} times");
    });
    let allowed = (burst.as_secs_f64() / 2.0).floor() as usize + 1;
    assert!(
        during <= allowed,
        "{during} database commits observed during {checks} checks in {burst:?} (at most {allowed} batched flushes allowed)"
    );
    assert!(
        changes.load(Ordering::SeqCst) >= 1,
        "the probe saw no commit at all, not even the flush"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. CLI errors
// ---------------------------------------------------------------------------------------------

#[test]
fn cli_rejects_bad_values_and_unknown_keys() {
    let dir = temp_dir("apikeys-cli").join("data");
    crate::support::init_data_dir(&dir);
    add_user(&dir, "carol", &[]);
    for (args, code) in [
        (vec!["--rate", "10/fortnight"], 2),
        (vec!["--rate", "0/min"], 2),
        (vec!["--rate", "ten/min"], 2),
        (vec!["--rate", "10"], 2),
        (vec!["--expires-in", "5y"], 2),
        (vec!["--expires-in", "0d"], 2),
        (vec!["--expires-in", "-1d"], 2),
        (vec!["--expires-in", "d"], 2),
        (vec!["--user", "nobody"], 2),
    ] {
        let mut full = vec!["apikey", "create", "bad"];
        full.extend_from_slice(&args);
        full.push("--json");
        let out = latchkey(&dir, &full);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{full:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("lk_"),
            "{full:?}"
        );
    }
    // Nothing was created by the refused commands.
    assert_eq!(cli_json(&dir, &["apikey", "list", "--json"]), json!([]));

    for args in [
        vec!["apikey", "show", "no-such-key"],
        vec!["apikey", "show", "ak_0000000000000000", "--json"],
        vec!["apikey", "revoke", "no-such-key"],
        vec!["apikey", "rotate", "no-such-key"],
        vec!["apikey", "usage", "no-such-key"],
    ] {
        let out = latchkey(&dir, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let k = create_key(&dir, "twice", &["--user", "carol"]);
    cli_ok(&dir, &["apikey", "revoke", &k.id]);
    let again = latchkey(&dir, &["apikey", "revoke", &k.id]);
    assert!(!again.status.success(), "revoking twice must fail");
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains(secret_tail(&k.key)),
        "{again:?}"
    );
    // A revoked key cannot be rotated back to life.
    let rotate = latchkey(&dir, &["apikey", "rotate", &k.id, "--json"]);
    assert!(!rotate.status.success(), "rotating a revoked key must fail");
    assert!(!String::from_utf8_lossy(&rotate.stdout).contains("lk_"));
}

// ---------------------------------------------------------------------------------------------
// The key never leaks, whatever is done with it
// ---------------------------------------------------------------------------------------------

#[test]
fn a_key_used_every_way_never_reaches_logs_or_responses() {
    let (mut server, keys) = server_with_keys(
        &[],
        &[("everywhere", &["--scope", "read", "--rate", "5/min"])],
    );
    let k = &keys[0];
    let key = &k.key;
    let client = server.client("rs", "");
    let mut responses = vec![
        check(&server, key),
        check_bearer(&server, key),
        get_with(
            &server,
            &format!("{VERIFY}?scope=admin"),
            &format!("X-API-Key: {key}\r\n"),
        ),
        get_with(&server, &format!("{VERIFY}?api_key={key}"), ""),
        get_with(
            &server,
            &format!("{VERIFY}?q={key}"),
            &format!("X-API-Key: {key}\r\n"),
        ),
        get_with(&server, &format!("/userinfo?access_token={key}"), ""),
        get_with(
            &server,
            "/userinfo",
            &format!("Authorization: Bearer {key}\r\n"),
        ),
        get_with(
            &server,
            VERIFY,
            &format!("X-API-Key: {key}\r\nAuthorization: Bearer {key}\r\n"),
        ),
        get_with(
            &server,
            VERIFY,
            &format!("X-API-Key: {key}\r\nX-Pad: {}\r\n", "p".repeat(17_000)),
        ),
        check(&server, &flip_body_char(key)),
        introspect(&server, &client, key),
        server.post_form(
            "/token",
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret={key}",
                form_encode(&client.id)
            ),
            "",
        ),
        server.post_form(
            "/token",
            "grant_type=client_credentials",
            &basic_header(&client.id, key),
        ),
    ];
    // Exhaust the rate limit.
    for _ in 0..6 {
        responses.push(check(&server, key));
    }
    assert_eq!(responses.last().unwrap().status, 429);
    // Revoked through the revocation endpoint (which revokes an API key).
    responses.push(server.post_form(
        "/revoke",
        &format!("token={key}"),
        &basic_header(&client.id, &client.secret),
    ));
    let (r, _) = poll_key(&server, key, Duration::from_secs(5), |r| r.status == 401);
    responses.push(r);
    for r in &responses {
        assert!(
            !contains(&r.body, secret_tail(key).as_bytes()),
            "a response echoes the key: {} {}",
            r.status,
            r.text()
        );
        for (name, value) in &r.headers {
            assert!(
                !value.contains(secret_tail(key)),
                "header {name} echoes the key"
            );
        }
    }
    let status = server.sigterm();
    assert!(status.success(), "{status:?}");
    assert_not_logged(&server, key);
    assert_not_stored(&server.data_dir, key);
}

/// A client that puts its key in the URL path (e.g. `/v1/apikeys/verify/lk_…`) gets a 404, and
/// the access log records the path: the full key would land in the logs, and full keys never
/// appear in logs.
#[test]
fn a_key_in_the_url_path_is_not_logged() {
    let (server, keys) = server_with_keys(&[], &[("pathy", &[])]);
    let key = &keys[0].key;
    for target in [format!("{VERIFY}/{key}"), format!("/{key}")] {
        let r = server.get(&target);
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(!r.text().contains(secret_tail(key)), "{}", r.text());
    }
    assert_not_logged(&server, key);
}

/// A name is how an admin revokes and rotates keys: `revoke NAME` after two rotations revokes
/// every key of that name that still works, and a second working key of one name is only made
/// when asked for. `list` says which keys are rotated out but still working, their expiry and
/// the user they are tied to.
#[test]
fn keys_by_name_revoke_together_and_a_duplicate_name_is_asked_for() {
    let server = Server::start();
    let dir = &server.data_dir;
    add_user(dir, "carol", &[]);
    let first = create_key(dir, "deploy", &["--user", "carol", "--expires-in", "30d"]);
    let second: Value = cli_json(
        dir,
        &["apikey", "rotate", "deploy", "--grace", "1h", "--json"],
    );
    let third: Value = cli_json(
        dir,
        &["apikey", "rotate", "deploy", "--grace", "1h", "--json"],
    );
    let list = cli_json(dir, &["apikey", "list", "--json"]);
    let row = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {list}"))
            .clone()
    };
    assert_eq!(row(&first.id)["status"], "retiring", "{list}");
    assert_eq!(row(second["id"].as_str().unwrap())["status"], "retiring");
    assert_eq!(row(third["id"].as_str().unwrap())["status"], "active");
    assert_eq!(row(&first.id)["user"], "carol");
    assert!(row(third["id"].as_str().unwrap())["expires_at"].is_i64());
    let table = cli_ok(dir, &["apikey", "list"]);
    assert!(
        table.contains("retiring") && table.contains("carol"),
        "{table}"
    );

    // A second working key of the name is refused (exit 2), unless asked for.
    let out = latchkey(dir, &["apikey", "create", "deploy"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--allow-duplicate"),
        "{out:?}"
    );
    let extra = create_key(dir, "deploy", &["--allow-duplicate"]);
    let bystander = create_key(dir, "other", &[]);
    // The running server knows every key before the revocation.
    for key in [&extra.key, &bystander.key] {
        crate::support::eventually(Duration::from_secs(3), "the new key is known", || {
            check(&server, key).status == 200
        });
    }

    // Revoking by name: all four working keys of the name, and nothing else.
    let out = cli_ok(dir, &["apikey", "revoke", "deploy"]);
    assert!(out.contains("4 key(s) named deploy revoked"), "{out}");
    for id in [
        first.id.as_str(),
        second["id"].as_str().unwrap(),
        third["id"].as_str().unwrap(),
        extra.id.as_str(),
    ] {
        assert!(out.contains(id), "{id}: {out}");
    }
    for key in [&first.key, &extra.key, third["key"].as_str().unwrap()] {
        crate::support::eventually(Duration::from_secs(3), "the revocation is known", || {
            check(&server, key).status == 401
        });
    }
    assert_ok(&check(&server, &bystander.key));
    // Nothing of that name works any more: a second revoke says so (exit 1).
    let again = latchkey(dir, &["apikey", "revoke", "deploy"]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("revoked or expired"),
        "{again:?}"
    );
    // Once none works, the name is free again without the flag.
    create_key(dir, "deploy", &[]);
}
