//! The command line against the real binary: `client` and `keys`, exit codes (0 ok, 1 runtime
//! failure, 2 usage error), the data directory and database file it creates, the refusal of a
//! newer database, and the CLI and a running server sharing one database (clients added, removed
//! and re-keyed, and signing keys rotated, while the server runs).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::oauth::{
    assert_active, assert_error, assert_inactive, es256_kids, introspect, now, token_kid, verify,
    verify_with,
};
use crate::support::{Server, TestClient, bin, eventually, latchkey, latchkey_ok, temp_dir};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts the exit code, with the output in the message.
fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: stdout {:?} stderr {:?}",
        stdout(out),
        stderr(out)
    );
}

fn json_out(dir: &Path, args: &[&str]) -> Value {
    let out = latchkey_ok(dir, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// `client add NAME --grant client_credentials [extra…] --json`.
fn add_client(dir: &Path, name: &str, extra: &[&str]) -> TestClient {
    let mut args = vec![
        "client",
        "add",
        name,
        "--grant",
        "client_credentials",
        "--json",
    ];
    args.extend_from_slice(extra);
    let v = json_out(dir, &args);
    TestClient {
        id: v["client_id"].as_str().unwrap().to_string(),
        secret: v["client_secret"].as_str().unwrap().to_string(),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The database's `PRAGMA user_version`, read without writing.
fn user_version(db: &Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// `keys list --json` rows with the given status.
fn keys_with_status(dir: &Path, status: &str) -> Vec<Value> {
    json_out(dir, &["keys", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["status"] == status && k["alg"] == "ES256")
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Exit codes and help
// ---------------------------------------------------------------------------------------------

#[test]
fn help_and_version_exit_0() {
    let dir = temp_dir("help");
    for args in [
        &["--help"][..],
        &["help"],
        &["client", "--help"],
        &["client", "add", "--help"],
        &["keys", "--help"],
        &["keys", "rotate", "--help"],
        &["serve", "--help"],
        &["--version"],
    ] {
        let out = latchkey(&dir, args);
        assert_exit(&out, 0, &format!("{args:?}"));
        assert!(!stdout(&out).is_empty(), "{args:?} prints to stdout");
    }
    let top = stdout(&latchkey(&dir, &["--help"]));
    for sub in ["serve", "client", "keys"] {
        assert!(top.contains(sub), "--help lists {sub}: {top}");
    }
    let add = stdout(&latchkey(&dir, &["client", "add", "--help"]));
    for flag in [
        "--grant",
        "--scope",
        "--redirect-uri",
        "--public",
        "--audience",
        "--access-token-ttl",
        "--json",
    ] {
        assert!(add.contains(flag), "client add --help lists {flag}");
    }
    assert!(stdout(&latchkey(&dir, &["--version"])).contains(env!("CARGO_PKG_VERSION")));
    // Help does not create a database.
    assert!(!dir.join("latchkey.db").exists());
}

#[test]
fn command_line_parse_errors_exit_2() {
    let dir = temp_dir("parse");
    for args in [
        &[][..],
        &["frobnicate"],
        &["client"],
        &["client", "add"],
        &["client", "add", "x"],
        &["client", "add", "x", "--grant"],
        &[
            "client",
            "add",
            "x",
            "--grant",
            "client_credentials",
            "--bogus",
        ],
        &[
            "client",
            "add",
            "x",
            "--grant",
            "client_credentials",
            "--access-token-ttl",
            "ten",
        ],
        &["client", "show"],
        &["client", "remove"],
        &["keys", "rotate", "extra"],
    ] {
        let out = latchkey(&dir, args);
        assert_exit(&out, 2, &format!("{args:?}"));
        assert!(!stderr(&out).is_empty(), "{args:?} explains on stderr");
    }
}

#[test]
fn client_add_usage_errors_exit_2_and_register_nothing() {
    let dir = temp_dir("usage").join("data");
    crate::support::init_data_dir(&dir);
    let cc = ["--grant", "client_credentials"];
    let long_name = "n".repeat(101);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("unknown grant", vec!["a", "--grant", "password"]),
        (
            "unknown grant next to a known one",
            vec!["a", "--grant", "client_credentials", "--grant", "implicit"],
        ),
        (
            "grant in another case",
            vec!["a", "--grant", "CLIENT_CREDENTIALS"],
        ),
        (
            "scope with a double quote",
            [&["a"][..], &cc, &["--scope", "read\"x"]].concat(),
        ),
        (
            "scope with a backslash",
            [&["a"][..], &cc, &["--scope", "read\\x"]].concat(),
        ),
        (
            "scope with a tab",
            [&["a"][..], &cc, &["--scope", "read\twrite"]].concat(),
        ),
        (
            "scope with non-ASCII",
            [&["a"][..], &cc, &["--scope", "léser"]].concat(),
        ),
        (
            "http redirect URI on a public host",
            [
                &["a"][..],
                &cc,
                &["--redirect-uri", "http://app.example.org/cb"],
            ]
            .concat(),
        ),
        (
            "redirect URI with a fragment",
            [
                &["a"][..],
                &cc,
                &["--redirect-uri", "https://app.example.org/cb#x"],
            ]
            .concat(),
        ),
        (
            "relative redirect URI",
            [&["a"][..], &cc, &["--redirect-uri", "/cb"]].concat(),
        ),
        (
            "javascript: redirect URI",
            [&["a"][..], &cc, &["--redirect-uri", "javascript:alert(1)"]].concat(),
        ),
        (
            "redirect URI with user information",
            [
                &["a"][..],
                &cc,
                &["--redirect-uri", "https://u@app.example.org/cb"],
            ]
            .concat(),
        ),
        (
            "public client with client_credentials",
            [&["a"][..], &cc, &["--public"]].concat(),
        ),
        ("empty name", [&[""][..], &cc].concat()),
        ("blank name", [&["   "][..], &cc].concat()),
        (
            "name with a control character",
            [&["a\u{7}b"][..], &cc].concat(),
        ),
        (
            "name over 100 characters",
            [&[long_name.as_str()][..], &cc].concat(),
        ),
        (
            "lifetime below 30 s",
            [&["a"][..], &cc, &["--access-token-ttl", "29s"]].concat(),
        ),
        (
            "lifetime above a day",
            [&["a"][..], &cc, &["--access-token-ttl", "86401s"]].concat(),
        ),
        (
            "negative lifetime",
            [&["a"][..], &cc, &["--access-token-ttl=-5"]].concat(),
        ),
        (
            "empty audience",
            [&["a"][..], &cc, &["--audience", ""]].concat(),
        ),
        (
            "audience with a space",
            [&["a"][..], &cc, &["--audience", "api one"]].concat(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, args) in &cases {
        let full: Vec<&str> = [&["client", "add"][..], args, &["--json"]].concat();
        let out = latchkey(&dir, &full);
        if out.status.code() != Some(2)
            || stderr(&out).trim().is_empty()
            || !stdout(&out).is_empty()
        {
            failures.push(format!(
                "[{name}] exit {:?}, stdout {:?}, stderr {:?}",
                out.status.code(),
                stdout(&out),
                stderr(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        json_out(&dir, &["client", "list", "--json"]),
        serde_json::json!([]),
        "nothing was registered"
    );

    // A taken name is a usage error too, and leaves the first client as it was.
    let first = add_client(&dir, "taken", &["--scope", "read"]);
    let out = latchkey(
        &dir,
        &[
            "client",
            "add",
            "taken",
            "--grant",
            "client_credentials",
            "--scope",
            "write",
        ],
    );
    assert_exit(&out, 2, "duplicate name");
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert!(
        !stdout(&out).contains("client_secret"),
        "no secret printed for a refused client"
    );
    let list = json_out(&dir, &["client", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["client_id"], first.id);
    assert_eq!(list[0]["scopes"], serde_json::json!(["read"]));

    // Valid edge values are accepted.
    for (name, extra) in [
        (
            "loopback-v4",
            &["--redirect-uri", "http://127.0.0.1:8000/cb"][..],
        ),
        ("loopback-v6", &["--redirect-uri", "http://[::1]/cb"]),
        ("localhost", &["--redirect-uri", "http://localhost:3000/cb"]),
        (
            "private-scheme",
            &["--redirect-uri", "com.example.app:/oauth"],
        ),
        ("ttl-min", &["--access-token-ttl", "30s"]),
        ("ttl-max", &["--access-token-ttl", "24h"]),
    ] {
        add_client(&dir, name, extra);
    }
}

#[test]
fn unknown_client_is_not_found_exit_2() {
    let dir = temp_dir("unknown").join("data");
    crate::support::init_data_dir(&dir);
    for args in [
        &["client", "show", "nobody"][..],
        &["client", "remove", "nobody"],
        &["client", "rotate-secret", "nobody"],
    ] {
        let out = latchkey(&dir, args);
        assert_exit(&out, 2, &format!("{args:?}"));
        assert!(stderr(&out).contains("nobody"), "{}", stderr(&out));
    }
}

#[test]
fn unusable_data_directory_is_a_runtime_failure_exit_1() {
    let base = temp_dir("notadir");
    let file = base.join("plain-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let out = latchkey(&file, &["client", "list"]);
    assert_exit(&out, 1, "data dir is a file");
    assert!(stderr(&out).starts_with("latchkey: "), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn data_dir_can_come_from_the_environment() {
    let dir = temp_dir("env").join("data");
    crate::support::init_data_dir(&dir);
    let out = crate::support::latchkey_cmd()
        .args([
            "client",
            "add",
            "from-env",
            "--grant",
            "client_credentials",
            "--json",
        ])
        .env("LATCHKEY_DATA_DIR", &dir)
        .output()
        .unwrap();
    assert_exit(&out, 0, "LATCHKEY_DATA_DIR");
    let list = json_out(&dir, &["client", "list", "--json"]);
    assert_eq!(list[0]["name"], "from-env");
}

// ---------------------------------------------------------------------------------------------
// client add / list / show / remove / rotate-secret
// ---------------------------------------------------------------------------------------------

#[test]
fn client_add_prints_the_secret_once() {
    let server = Server::start();
    let out = server.cli_ok(&[
        "client",
        "add",
        "human",
        "--grant",
        "client_credentials",
        "--scope",
        "read",
    ]);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} line in {out:?}"))
    };
    let c = TestClient {
        id: field("client_id:"),
        secret: field("client_secret:"),
    };
    assert!(
        c.secret.len() >= 22,
        "at least 128 bits of secret: {}",
        c.secret
    );
    // The printed credentials work.
    let token = server.token(&c, None);
    assert_eq!(verify(&server, &token).claims["client_id"], c.id);
    // Nothing shows the secret again.
    for args in [
        &["client", "show", &c.id][..],
        &["client", "show", &c.id, "--json"],
        &["client", "show", "human"],
        &["client", "list"],
        &["client", "list", "--json"],
    ] {
        let shown = server.cli_ok(args);
        assert!(shown.contains(&c.id), "{args:?} shows the client: {shown}");
        assert!(!shown.contains(&c.secret), "{args:?} shows the secret");
        assert!(!shown.contains("secret_hash"), "{args:?}: {shown}");
    }
}

#[test]
fn client_add_json_and_show_and_list_json() {
    let dir = temp_dir("json").join("data");
    crate::support::init_data_dir(&dir);
    let v = json_out(
        &dir,
        &[
            "client",
            "add",
            "inventory",
            "--grant",
            "client_credentials",
            "--scope",
            "read write",
            "--scope",
            "admin",
            "--redirect-uri",
            "https://inv.example.org/cb",
            "--audience",
            "https://api.example.org",
            "--access-token-ttl",
            "15m",
            "--json",
        ],
    );
    let id = v["client_id"].as_str().unwrap();
    let secret = v["client_secret"].as_str().unwrap();
    assert!(!id.is_empty() && secret.len() >= 22, "{v}");
    let other = add_client(&dir, "billing", &[]);
    assert_ne!(other.id, id);
    assert_ne!(other.secret, secret);

    let shown = json_out(&dir, &["client", "show", id, "--json"]);
    assert_eq!(shown["client_id"], id);
    assert_eq!(shown["name"], "inventory");
    assert_eq!(shown["public"], false);
    assert_eq!(
        shown["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        shown["scopes"],
        serde_json::json!(["read", "write", "admin"])
    );
    assert_eq!(
        shown["redirect_uris"],
        serde_json::json!(["https://inv.example.org/cb"])
    );
    assert_eq!(shown["audience"], "https://api.example.org");
    assert_eq!(shown["access_token_ttl"], 900);
    let created = shown["created_at"].as_i64().unwrap();
    assert!((now() - created).abs() < 60, "created_at {created}");
    for k in shown.as_object().unwrap().keys() {
        assert!(!k.contains("secret"), "show --json has {k}");
    }
    assert_eq!(
        json_out(&dir, &["client", "show", "inventory", "--json"]),
        shown,
        "by name"
    );

    let list = json_out(&dir, &["client", "list", "--json"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let names: Vec<&str> = list.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["billing", "inventory"], "listed by name");
    assert_eq!(list[1], shown);
    assert_eq!(list[0]["scopes"], serde_json::json!([]));
    assert_eq!(list[0]["audience"], Value::Null);
    assert_eq!(list[0]["access_token_ttl"], Value::Null);
    assert!(!serde_json::to_string(list).unwrap().contains(secret));

    let human = latchkey_ok(&dir, &["client", "list"]);
    assert!(
        human.contains(id) && human.contains("inventory") && human.contains(&other.id),
        "{human}"
    );
}

#[test]
fn client_added_while_the_server_runs_works_on_the_next_request() {
    let server = Server::start();
    // The server is up before the client exists; no restart, no waiting.
    assert_eq!(server.get("/healthz").status, 200);
    let c = server.client("late", "read");
    let token = server.token(&c, Some("read"));
    assert_eq!(verify(&server, &token).claims["sub"], c.id);
    assert_active(&introspect(&server, &c, &token));
}

#[test]
fn removed_client_can_no_longer_authenticate() {
    let server = Server::start();
    let c = server.client("doomed", "read");
    let keep = server.client("kept", "read");
    let issued = server.token(&c, None);
    assert_active(&introspect(&server, &keep, &issued));
    let out = server.cli_ok(&["client", "remove", "doomed"]);
    assert!(out.contains(&c.id), "{out}");
    // The running server reloads its clients within a second of the change.
    refused_soon(&server, &c);
    let r = server.post_form(
        "/token",
        &format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            c.id, c.secret
        ),
        "",
    );
    assert_error(&r, 401, "invalid_client");
    let r = server.post_basic("/introspect", &c, "token=x");
    assert_error(&r, 401, "invalid_client");
    assert_exit(
        &server.cli(&["client", "show", &c.id]),
        2,
        "show after remove",
    );
    assert_exit(&server.cli(&["client", "remove", &c.id]), 2, "remove twice");
    // Removing a client withdraws the tokens it was given.
    assert_inactive(&introspect(&server, &keep, &issued));
    // The other client is unaffected; removal by client_id works too.
    server.token(&keep, None);
    server.cli_ok(&["client", "remove", &keep.id]);
    refused_soon(&server, &keep);
    assert_eq!(
        json_out(&server.data_dir, &["client", "list", "--json"]),
        serde_json::json!([])
    );
}

/// A client index that cannot be reloaded (a row the server cannot decode, as a hand edit might
/// leave it) is dropped rather than kept: a client removed meanwhile is refused, and the others
/// are read from the database.
#[test]
fn a_failed_client_reload_keeps_no_removed_client() {
    let server = Server::start();
    let gone = server.client("gone", "read");
    let keep = server.client("keep", "read");
    let broken = server.client("broken", "read");
    // The server's index holds all three before the damage.
    eventually(Duration::from_secs(2), "the three clients indexed", || {
        server.logs().contains("clients reloaded: 3 clients")
    });
    server.token(&gone, None);
    let db = rusqlite::Connection::open(server.data_dir.join("latchkey.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let n = db
        .execute(
            "UPDATE clients SET redirect_uris = 'not json' WHERE client_id = ?1",
            [&broken.id],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(db);
    server.cli_ok(&["client", "remove", "gone"]);
    refused_soon(&server, &gone);
    server.token(&keep, None);
}

/// Polls (up to 2 s) until `c`'s credentials are refused at `/token`, then asserts the exact
/// error: a client removed or a secret rotated by the CLI reaches a running server's client
/// index within a second.
fn refused_soon(server: &Server, c: &TestClient) {
    eventually(
        Duration::from_secs(2),
        "the change reaches the server",
        || {
            server
                .post_basic("/token", c, "grant_type=client_credentials")
                .status
                == 401
        },
    );
    assert_error(
        &server.post_basic("/token", c, "grant_type=client_credentials"),
        401,
        "invalid_client",
    );
}

#[test]
fn rotate_secret_works_at_once_and_retires_the_old_secret_within_a_second() {
    let server = Server::start();
    let c = server.client("rotating", "read");
    let before = server.token(&c, None);
    let v = json_out(
        &server.data_dir,
        &["client", "rotate-secret", &c.id, "--json"],
    );
    assert_eq!(v["client_id"], c.id);
    let new = TestClient {
        id: c.id.clone(),
        secret: v["client_secret"].as_str().unwrap().to_string(),
    };
    assert_ne!(new.secret, c.secret);
    // The new secret works on the next request (the server reads a secret it does not know
    // from the database); the old one stops within a second (the in-memory index reloads).
    server.token(&new, None);
    refused_soon(&server, &c);
    server.token(&new, None);
    // Tokens issued under the old secret are not affected by a secret rotation.
    assert_active(&introspect(&server, &new, &before));
    // The human form, by name.
    let out = server.cli_ok(&["client", "rotate-secret", "rotating"]);
    let third = out
        .lines()
        .find_map(|l| l.strip_prefix("client_secret:"))
        .unwrap()
        .trim()
        .to_string();
    let third = TestClient {
        id: c.id.clone(),
        secret: third,
    };
    server.token(&third, None);
    refused_soon(&server, &new);
}

/// Sets the flag when dropped (also while unwinding).
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn cli_and_server_share_the_database_under_load() {
    let server = Server::start();
    let base = server.client("base", "read");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let hammers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let r = server.post_basic("/token", &base, "grant_type=client_credentials");
                        assert_eq!(r.status, 200, "{}", r.text());
                        let t = r.json()["access_token"].as_str().unwrap().to_string();
                        assert_active(&introspect(&server, &base, &t));
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        // Stops the hammers however this closure ends, so a failed assertion below fails the
        // test instead of leaving the scope waiting for them forever.
        let stopper = StopOnDrop(&stop);
        for i in 0..6 {
            let c = server.client(&format!("added-{i}"), "read");
            server.token(&c, None);
            server.cli_ok(&["client", "rotate-secret", &c.id]);
            refused_soon(&server, &c);
        }
        drop(stopper);
        for h in hammers {
            assert!(h.join().unwrap() > 0);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Data directory and database
// ---------------------------------------------------------------------------------------------

#[test]
fn first_start_creates_a_private_data_dir_database_and_key() {
    let server = Server::start();
    let dir = &server.data_dir.clone();
    let db = dir.join("latchkey.db");
    assert_eq!(mode(dir), 0o700, "data directory");
    assert_eq!(mode(&db), 0o600, "database");
    for side in ["latchkey.db-wal", "latchkey.db-shm"] {
        let p = dir.join(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
    assert!(user_version(&db) >= 1, "migrations ran");
    let active = keys_with_status(dir, "active");
    assert_eq!(active.len(), 1, "one signing key");
    assert_eq!(
        es256_kids(&server),
        vec![active[0]["kid"].as_str().unwrap().to_string()]
    );
    // A second start reuses the key.
    let kid = active[0]["kid"].clone();
    drop(server);
    let again = Server::start_in(dir.to_path_buf(), &[]);
    assert_eq!(es256_kids(&again), vec![kid.as_str().unwrap().to_string()]);
}

#[test]
fn init_and_cli_use_create_private_files_even_with_umask_000() {
    let dir = temp_dir("umask").join("nested").join("data");
    for args in [
        &["init"][..],
        &["client", "add", "x", "--grant", "client_credentials"],
    ] {
        let out = crate::support::clean_env(&mut Command::new("sh"))
            .arg("-c")
            .arg(r#"umask 000; exec "$0" "$@""#)
            .arg(bin())
            .arg("--data-dir")
            .arg(&dir)
            .args(args)
            .output()
            .unwrap();
        assert_exit(&out, 0, &format!("{args:?} under umask 000"));
    }
    assert_eq!(mode(&dir), 0o700, "data directory");
    assert_eq!(mode(&dir.join("latchkey.db")), 0o600, "database");
    for side in ["latchkey.db-wal", "latchkey.db-shm"] {
        let p = dir.join(side);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{side}");
        }
    }
}

#[test]
fn database_written_by_a_newer_version_is_refused_and_left_untouched() {
    let dir = temp_dir("newer").join("data");
    crate::support::init_data_dir(&dir);
    latchkey_ok(&dir, &["keys", "list"]);
    let db = dir.join("latchkey.db");
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    } // Closing the last connection checkpoints the WAL into the file.
    let before = std::fs::read(&db).unwrap();
    for args in [
        &["client", "list"][..],
        &["client", "add", "x", "--grant", "client_credentials"],
        &["keys", "list"],
        &["keys", "rotate"],
        &["settings", "set", "token.access_ttl", "300"],
    ] {
        let out = latchkey(&dir, args);
        assert_exit(&out, 1, &format!("{args:?}"));
        let err = stderr(&out);
        assert!(err.contains("newer"), "{args:?}: {err}");
        assert!(
            err.contains("99"),
            "{args:?} names the version found: {err}"
        );
    }
    // The server refuses too, before listening.
    let mut child = crate::support::latchkey_cmd()
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve did not refuse the newer database");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1), "serve: {}", stderr(&out));
    assert!(stderr(&out).contains("newer"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("listening"), "{}", stdout(&out));

    assert_eq!(user_version(&db), 99);
    assert!(
        std::fs::read(&db).unwrap() == before,
        "the database file was modified"
    );
}

// ---------------------------------------------------------------------------------------------
// Signing keys
// ---------------------------------------------------------------------------------------------

#[test]
fn keys_list_and_rotate() {
    let dir = temp_dir("keys").join("data");
    crate::support::init_data_dir(&dir);
    let listed = json_out(&dir, &["keys", "list", "--json"]);
    let rows = listed.as_array().unwrap();
    let es: Vec<&Value> = rows.iter().filter(|k| k["alg"] == "ES256").collect();
    assert_eq!(es.len(), 1, "keys list creates the first key: {listed}");
    assert_eq!(es[0]["status"], "active");
    assert_eq!(es[0]["retire_after"], Value::Null);
    let kid1 = es[0]["kid"].as_str().unwrap().to_string();
    let human = latchkey_ok(&dir, &["keys", "list"]);
    assert!(human.contains(&kid1) && human.contains("active"), "{human}");
    for k in rows {
        assert!(
            k.get("pkcs8").is_none() && k.get("d").is_none(),
            "no private key material: {k}"
        );
    }

    let t0 = now();
    let rotated = json_out(&dir, &["keys", "rotate", "--now", "--json"]);
    let t1 = now();
    let new_kids: Vec<String> = rotated["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let active = keys_with_status(&dir, "active");
    assert_eq!(active.len(), 1, "exactly one active ES256 key");
    let kid2 = active[0]["kid"].as_str().unwrap().to_string();
    assert!(new_kids.contains(&kid2), "{rotated}");
    assert_ne!(kid1, kid2);
    let retiring = keys_with_status(&dir, "retiring");
    assert_eq!(retiring.len(), 1);
    assert_eq!(retiring[0]["kid"], kid1.as_str());
    // Published until every token it can have signed has expired: the longest lifetime latchkey
    // allows (24 h, whatever is configured now), plus a 5-minute margin.
    let retire_after = retiring[0]["retire_after"].as_i64().unwrap();
    assert_eq!(
        Some(retire_after),
        rotated["previous_retire_after"].as_i64()
    );
    assert!(
        retire_after >= t0 + 86_400 + 300,
        "retire_after {retire_after} before the longest token could expire"
    );
    assert!(
        retire_after <= t1 + 86_400 + 300,
        "retire_after {retire_after} later than needed"
    );

    let human = latchkey_ok(&dir, &["keys", "rotate", "--now"]);
    let kid3 = keys_with_status(&dir, "active")[0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(human.contains(&kid3), "{human}");
    let retiring: Vec<String> = keys_with_status(&dir, "retiring")
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(retiring.len(), 2, "both earlier keys are still published");
    assert!(retiring.contains(&kid1) && retiring.contains(&kid2));
}

#[test]
fn rotation_keeps_the_old_key_for_the_longest_token_lifetime() {
    let dir = temp_dir("retire").join("data");
    crate::support::init_data_dir(&dir);
    latchkey_ok(&dir, &["keys", "list"]);
    add_client(&dir, "long-lived", &["--access-token-ttl", "2h"]);
    let t0 = now();
    let v = json_out(&dir, &["keys", "rotate", "--now", "--json"]);
    assert!(
        v["previous_retire_after"].as_i64().unwrap() >= t0 + 7200,
        "a client's own lifetime counts: {v}"
    );
    latchkey_ok(&dir, &["client", "remove", "long-lived"]);
    latchkey_ok(&dir, &["settings", "set", "token.access_ttl", "10000"]);
    let t0 = now();
    let v = json_out(&dir, &["keys", "rotate", "--now", "--json"]);
    assert!(
        v["previous_retire_after"].as_i64().unwrap() >= t0 + 10_000,
        "the server default counts: {v}"
    );
}

/// Lifetimes configured at rotation time say nothing about tokens the old key signed earlier:
/// lower the lifetime (or remove a long-lived client) before rotating and the old key must
/// still outlive the tokens it signed.
#[test]
fn rotation_after_lowering_the_lifetime_keeps_the_key_until_its_tokens_expire() {
    let server = Server::start_with(&[], |dir| {
        latchkey_ok(dir, &["settings", "set", "token.access_ttl", "3600"]);
    });
    let c = server.client("svc", "read");
    let token = server.token(&c, None);
    let exp = verify(&server, &token).claims["exp"].as_i64().unwrap();
    server.cli_ok(&["settings", "set", "token.access_ttl", "60"]);
    let v = json_out(&server.data_dir, &["keys", "rotate", "--json"]);
    let retire_after = v["previous_retire_after"].as_i64().unwrap();
    assert!(
        retire_after >= exp,
        "the key that signed a token valid until {exp} is retired at {retire_after}"
    );
}

#[test]
fn key_rotation_reaches_the_running_server_and_old_tokens_stay_valid() {
    let server = Server::start();
    let c = server.client("svc", "read");
    let rs = server.client("rs", "");
    let token_a = server.token(&c, None);
    let kid1 = token_kid(&token_a);
    assert_eq!(es256_kids(&server), vec![kid1.clone()]);

    let rotated = json_out(&server.data_dir, &["keys", "rotate", "--now", "--json"]);
    let kid2 = rotated["active"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .find(|k| *k != kid1)
        .unwrap();
    // The running server picks the new key up without a restart (it polls every 250 ms).
    let took = eventually(
        Duration::from_secs(2),
        "new tokens signed with the new key",
        || token_kid(&server.token(&c, None)) == kid2,
    );
    assert!(
        took <= Duration::from_millis(1500),
        "rotation took {took:?} to reach the server"
    );
    // From then on every token is signed with the new key.
    for _ in 0..5 {
        assert_eq!(token_kid(&server.token(&c, None)), kid2);
    }
    let token_b = server.token(&c, None);

    // Both keys are published: the new one signs, the old one verifies what it signed.
    let kids = es256_kids(&server);
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids.contains(&kid1) && kids.contains(&kid2), "{kids:?}");
    for t in [&token_a, &token_b] {
        let v = verify(&server, t);
        assert_eq!(v.claims["client_id"], c.id);
        assert_active(&introspect(&server, &rs, t));
    }
    assert_eq!(
        verify(&server, &token_a).header.kid.as_deref(),
        Some(kid1.as_str())
    );

    // Revocation still works for tokens of the retiring key.
    assert_eq!(
        server
            .post_basic("/revoke", &c, &format!("token={token_a}"))
            .status,
        200
    );
    crate::oauth::assert_inactive(&introspect(&server, &rs, &token_a));
    assert_active(&introspect(&server, &rs, &token_b));

    // The server's log records the reload; a restart keeps the same active key.
    assert!(server.logs().contains(&kid2), "{}", server.logs());
    let dir = server.data_dir.clone();
    drop(server);
    let again = Server::start_in(dir, &[]);
    let token_c = again.token(&c, None);
    assert_eq!(token_kid(&token_c), kid2);
    let issuer = again.issuer();
    verify_with(&again, &token_c, &issuer, &issuer);
}

/// Every key of `alg` in `keys list --json`, by kid.
fn keys_of(dir: &Path, alg: &str) -> std::collections::HashMap<String, Value> {
    json_out(dir, &["keys", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| (k["kid"].as_str().unwrap().to_string(), k.clone()))
        .collect()
}

/// The kids of the served keys of `alg`.
fn served_kids(server: &Server, alg: &str) -> Vec<String> {
    server.get("/jwks.json").json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == alg)
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Sleeps until the wall clock reads at least `t` (Unix seconds).
fn sleep_until(t: i64) {
    while now() < t {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publish before use: `keys rotate` puts the new keys in the JWKS at once and signs with them
/// only once the JWKS max-age has passed (`jwks.max_age`, 2 s here, plus latchkey's 2-second
/// margin), on the second it said; `keys list` shows every state and time; `--now` signs at
/// once. Tokens are checked with `jsonwebtoken` against the served JWKS.
#[test]
fn a_rotated_key_is_published_at_once_and_signs_only_after_the_jwks_max_age() {
    let server = Server::start_with(&[], |dir| {
        latchkey_ok(dir, &["settings", "set", "jwks.max_age", "2"]);
    });
    let c = server.client("svc", "read");
    let rs = server.client("rs", "");
    let jwks = server.get("/jwks.json");
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=2"));
    let token_a = server.token(&c, None);
    let kid1 = token_kid(&token_a);
    let rsa1 = served_kids(&server, "RS256");
    assert_eq!(rsa1.len(), 1);

    let t0 = now();
    let rotated = json_out(&server.data_dir, &["keys", "rotate", "--json"]);
    let at = rotated["signing_from"].as_i64().unwrap();
    assert!(
        (t0 + 4..=now() + 4).contains(&at),
        "{rotated}, rotated at {t0}"
    );
    assert_eq!(rotated["previous_retire_after"], at + 86_400 + 300);
    let next: Vec<String> = rotated["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(next.len(), 2, "one per algorithm: {rotated}");
    let kid2 = keys_of(&server.data_dir, "ES256")
        .into_keys()
        .find(|k| *k != kid1)
        .unwrap();
    // Published at once (the server loads the change within a second): old and new, per
    // algorithm.
    eventually(
        Duration::from_millis(1500),
        "both ES256 keys in the JWKS",
        || served_kids(&server, "ES256").len() == 2,
    );
    let es = served_kids(&server, "ES256");
    let rsa = served_kids(&server, "RS256");
    assert_eq!(rsa.len(), 2, "{rsa:?}");
    assert!(rsa.contains(&rsa1[0]), "{rsa:?}");
    let rsa2 = rsa.iter().find(|k| **k != rsa1[0]).unwrap().clone();
    assert!(next.contains(&rsa2) && next.contains(&kid2), "{next:?}");
    assert!(es.contains(&kid1) && es.contains(&kid2), "{es:?}");
    // …but not signing yet.
    assert!(now() < at, "the test machine is too slow for this test");
    let token_b = server.token(&c, None);
    assert_eq!(token_kid(&token_b), kid1, "a token minted before {at}");
    verify(&server, &token_b);
    // A second rotation while these wait is refused and changes nothing.
    let again = latchkey(&server.data_dir, &["keys", "rotate"]);
    assert_exit(&again, 1, "a second rotation");
    let err = stderr(&again);
    assert!(err.contains("already pending"), "{err}");
    assert!(
        err.contains(&kid2) || err.contains(&rsa2),
        "names the key: {err}"
    );
    // The states and times, before the switch.
    let keys = keys_of(&server.data_dir, "ES256");
    assert_eq!(keys.len(), 2, "{keys:?}");
    let (old, new) = (&keys[&kid1], &keys[&kid2]);
    assert_eq!(old["status"], "active");
    assert_eq!(old["signing_until"], at, "{old}");
    assert_eq!(old["published_until"], at + 86_700, "{old}");
    assert_eq!(old["retire_after"], Value::Null, "{old}");
    assert_eq!(new["status"], "next");
    assert_eq!(new["signing_from"], at, "{new}");
    assert_eq!(new["signing_until"], Value::Null, "{new}");
    assert_eq!(new["published_until"], Value::Null, "{new}");
    assert!(
        (t0..=at).contains(&new["created_at"].as_i64().unwrap()),
        "{new}"
    );
    assert_eq!(keys_of(&server.data_dir, "RS256")[&rsa2]["status"], "next");
    assert_eq!(
        served_kids(&server, "ES256").len(),
        2,
        "the refused rotation added a key"
    );

    // The second the delay has passed, new tokens carry the new kid.
    sleep_until(at);
    let token_c = server.token(&c, None);
    assert_eq!(token_kid(&token_c), kid2, "a token minted at {at} or later");
    for _ in 0..5 {
        assert_eq!(token_kid(&server.token(&c, None)), kid2);
    }
    // Old tokens still verify, offline and by introspection.
    for t in [&token_a, &token_b, &token_c] {
        assert_eq!(verify(&server, t).claims["client_id"], c.id);
        assert_active(&introspect(&server, &rs, t));
    }
    // The database agrees: the server's maintenance thread records the switch (`keys list`
    // would too, were no server running).
    eventually(
        Duration::from_millis(1500),
        "the switch recorded by the server",
        || server.logs().contains("2 rotated signing keys now sign"),
    );
    let keys = keys_of(&server.data_dir, "ES256");
    let (old, new) = (&keys[&kid1], &keys[&kid2]);
    assert_eq!(old["status"], "retiring", "{old}");
    assert_eq!(old["signing_from"], old["created_at"], "{old}");
    assert_eq!(old["signing_until"], at, "{old}");
    assert_eq!(old["retire_after"], at + 86_700, "{old}");
    assert_eq!(old["published_until"], at + 86_700, "{old}");
    assert_eq!(new["status"], "active", "{new}");
    assert_eq!(new["signing_from"], at, "{new}");
    assert_eq!(new["signing_until"], Value::Null, "{new}");
    let rsa_keys = keys_of(&server.data_dir, "RS256");
    assert_eq!(rsa_keys[&rsa2]["status"], "active");
    assert_eq!(rsa_keys[&rsa1[0]]["status"], "retiring");
    assert_eq!(rsa_keys[&rsa1[0]]["signing_until"], at);

    // An emergency rotation signs at once (once the server has loaded it), and says what that
    // costs.
    let out = server.cli(&["keys", "rotate", "--now"]);
    assert_exit(&out, 0, "keys rotate --now");
    let printed = stdout(&out);
    assert!(
        printed.contains("refuse") && printed.contains("up to 2 s"),
        "the cost is stated: {printed}"
    );
    let kid3 = keys_with_status(&server.data_dir, "active")[0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(printed.contains(&kid3), "{printed}");
    eventually(
        Duration::from_millis(1500),
        "tokens of the --now key",
        || token_kid(&server.token(&c, None)) == kid3,
    );
    let keys = keys_of(&server.data_dir, "ES256");
    assert_eq!(keys[&kid2]["status"], "retiring");
    assert!(keys[&kid2]["signing_until"].as_i64().unwrap() >= at);
    assert_eq!(keys[&kid3]["status"], "active");
    for t in [&token_a, &token_c] {
        verify(&server, t);
    }

    // The JWKS lifetime follows the setting in a running server.
    server.cli_ok(&["settings", "set", "jwks.max_age", "120"]);
    eventually(Duration::from_millis(1500), "the new max-age", || {
        server.get("/jwks.json").header("cache-control") == Some("public, max-age=120")
    });
}

/// Two rotations in a row while the first key waits: the second is refused (exit 1, naming the
/// pending key and its time) and changes nothing; `--now` then signs with a fresh key at once
/// and withdraws the pending one, which never signed. The default delay is the JWKS max-age,
/// 300 s.
#[test]
fn a_second_rotation_is_refused_while_one_is_pending_and_now_replaces_it() {
    let dir = temp_dir("pending").join("data");
    crate::support::init_data_dir(&dir);
    let first = keys_with_status(&dir, "active");
    let kid1 = first[0]["kid"].as_str().unwrap().to_string();
    let t0 = now();
    let v = json_out(&dir, &["keys", "rotate", "--json"]);
    let at = v["signing_from"].as_i64().unwrap();
    assert!((t0 + 302..=now() + 302).contains(&at), "{v}");
    let pending = keys_with_status(&dir, "next");
    assert_eq!(pending.len(), 1);
    let kid2 = pending[0]["kid"].as_str().unwrap().to_string();
    let before = json_out(&dir, &["keys", "list", "--json"]);
    for args in [&["keys", "rotate"][..], &["keys", "rotate", "--json"]] {
        let out = latchkey(&dir, args);
        assert_exit(&out, 1, &format!("{args:?}"));
        let err = stderr(&out);
        assert!(err.contains("already pending"), "{err}");
        assert!(err.contains("--now"), "the way out is named: {err}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    assert_eq!(json_out(&dir, &["keys", "list", "--json"]), before);
    let human = latchkey_ok(&dir, &["keys", "list"]);
    assert!(human.contains(&kid2) && human.contains("next"), "{human}");

    let v = json_out(&dir, &["keys", "rotate", "--now", "--json"]);
    let withdrawn: Vec<&str> = v["withdrawn"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(withdrawn.len(), 2, "{v}");
    assert!(withdrawn.contains(&kid2.as_str()), "{v}");
    assert!(keys_with_status(&dir, "next").is_empty());
    let active = keys_with_status(&dir, "active");
    let kid3 = active[0]["kid"].as_str().unwrap();
    assert!(
        v["active"].as_array().unwrap().iter().any(|k| k == kid3),
        "{v}"
    );
    let retiring = keys_with_status(&dir, "retiring");
    assert_eq!(retiring.len(), 1);
    assert_eq!(retiring[0]["kid"], kid1.as_str());
    let listed = json_out(&dir, &["keys", "list", "--json"]);
    assert!(
        !listed.to_string().contains(&kid2),
        "the withdrawn key is gone: {listed}"
    );
    // A rotation is accepted again.
    let v = json_out(&dir, &["keys", "rotate", "--json"]);
    assert_eq!(v["next"].as_array().unwrap().len(), 2, "{v}");
}

// ---------------------------------------------------------------------------------------------
// latchkey check
// ---------------------------------------------------------------------------------------------

#[test]
fn check_reports_a_healthy_data_directory_and_exits_0() {
    let dir = temp_dir("check-ok").join("data");
    crate::support::init_data_dir(&dir);
    latchkey_ok(&dir, &["keys", "list"]);
    let out = latchkey(&dir, &["check", "--issuer", "https://auth.example.org"]);
    assert_exit(&out, 0, "check");
    let text = stdout(&out);
    assert!(!text.contains("PROBLEM"), "{text}");
    assert!(text.contains("schema version"), "{text}");
    assert!(text.contains("active ES256 key"), "{text}");
    assert!(text.contains("active RS256 key"), "{text}");
    assert!(
        text.contains("issuer https://auth.example.org (https)"),
        "{text}"
    );
}

#[test]
fn check_finds_problems_and_exits_1() {
    let dir = temp_dir("check-bad").join("data");
    crate::support::init_data_dir(&dir);
    latchkey_ok(&dir, &["keys", "list"]);
    let db = dir.join("latchkey.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = latchkey(
        &dir,
        &["check", "--issuer", "http://auth.example.org", "--json"],
    );
    assert_exit(&out, 1, "check with problems");
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["ok"], false);
    let problems: Vec<String> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("mode 644"), "{problems:?}");
    assert!(problems[1].contains("plain http"), "{problems:?}");
    // check reads the database read-only: the mode it found is untouched.
    let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn check_does_not_create_a_missing_data_directory() {
    let dir = temp_dir("check-missing").join("data");
    let out = latchkey(&dir, &["check", "--issuer", "https://auth.example.org"]);
    assert_exit(&out, 1, "check on a missing directory");
    assert!(stdout(&out).contains("PROBLEM"), "{}", stdout(&out));
    assert!(!dir.exists(), "check must not create the data directory");
}

// ---------------------------------------------------------------------------------------------
// latchkey audit
// ---------------------------------------------------------------------------------------------

#[test]
fn audit_log_records_cli_changes_tokens_and_sign_ins_without_secrets() {
    let server = Server::start();
    let c = server.client("svc", "read");
    let token = server.token(&c, None);
    // Two more tokens: identical events are coalesced into rows with a count.
    server.token(&c, None);
    server.token(&c, None);
    // A failed sign-in (the form needs a CSRF cookie and token: take them from the login page).
    let page = server.get("/login");
    let cookie = page
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = server.post_form(
        "/login",
        &format!("csrf={csrf}&username=nobody&password=wrong-password-123"),
        &format!("Cookie: {cookie}\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    server.cli_ok(&["settings", "set", "token.access_ttl", "120"]);
    let failed = server.cli(&["client", "remove", "no-such-client"]);
    assert_eq!(failed.status.code(), Some(2));

    // Server-side events are written in batches: poll.
    let deadline = Instant::now() + Duration::from_secs(6);
    let events = loop {
        let v = json_out(&server.data_dir, &["audit", "--json"]);
        let events = v.as_array().unwrap().clone();
        let has = |action: &str, outcome: &str| {
            events
                .iter()
                .any(|e| e["action"] == action && e["outcome"] == outcome)
        };
        let issued: i64 = events
            .iter()
            .filter(|e| e["action"] == "token_issued")
            .map(|e| e["count"].as_i64().unwrap())
            .sum();
        if issued == 3 && has("login", "failed") {
            break events;
        }
        assert!(
            Instant::now() < deadline,
            "server events missing: {events:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let find = |action: &str| {
        events
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {events:?}"))
            .clone()
    };
    let added = find("client_added");
    assert_eq!(added["target"], "svc");
    assert_eq!(added["outcome"], "ok");
    assert!(added["actor"].as_str().unwrap().starts_with("cli"));
    let issued = find("token_issued");
    assert_eq!(issued["actor"], format!("client:{}", c.id));
    assert_eq!(issued["target"], "client_credentials");
    assert_eq!(issued["address"], "127.0.0.1");
    let login = find("login");
    assert_eq!(login["outcome"], "failed");
    assert_eq!(login["address"], "127.0.0.1");
    assert_eq!(find("setting_changed")["target"], "token.access_ttl=120");
    let removed = find("client_removed");
    assert_eq!(removed["outcome"], "failed");
    // Neither the secret nor the token nor the tried password is in the audit log.
    let all = serde_json::to_string(&events).unwrap();
    for secret in [c.secret.as_str(), token.as_str(), "wrong-password-123"] {
        assert!(!all.contains(secret), "a secret is in the audit log");
    }
    // Text output too.
    let text = latchkey_ok(&server.data_dir, &["audit", "--since", "1h"]);
    assert!(text.contains("token_issued"), "{text}");
}

/// `settings` refuses an unknown key naming every known one, and `list` says each setting's
/// unit and whether a change applies live or at the next start.
#[test]
fn settings_unknown_key_and_list_shows_unit_and_when_it_applies() {
    let dir = temp_dir("settings-typed");
    crate::support::init_data_dir(&dir);
    for args in [
        &["settings", "get", "token.acess_ttl"][..],
        &["settings", "set", "token.acess_ttl", "300"],
        &["settings", "unset", "token.acess_ttl"],
    ] {
        let out = latchkey(&dir, args);
        assert_exit(&out, 2, &format!("{args:?}"));
        let err = stderr(&out);
        assert!(
            err.contains("unknown setting \"token.acess_ttl\""),
            "{args:?}: {err}"
        );
        for known in [
            "token.access_ttl",
            "http.max_connections_per_address",
            "audit.retention_days",
        ] {
            assert!(err.contains(known), "{args:?} lists {known}: {err}");
        }
    }
    // A value out of range names the range the way a person writes it, with its unit.
    for (key, value, range) in [
        ("token.access_ttl", "5", "is outside 30–86400 s"),
        ("audit.retention_days", "0", "days"),
        ("http.max_connections", "0", "is outside 1–"),
    ] {
        let out = latchkey(&dir, &["settings", "set", key, value]);
        assert_exit(&out, 2, key);
        let err = stderr(&out);
        assert!(err.contains(range) && !err.contains("..="), "{key}: {err}");
    }
    let rows: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["settings", "list", "--json"])).unwrap();
    let row = |key: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .unwrap_or_else(|| panic!("{key} in {rows}"))
            .clone()
    };
    let ttl = row("token.access_ttl");
    assert_eq!(
        (ttl["value"].as_i64(), ttl["default"].as_i64()),
        (Some(600), Some(600))
    );
    assert_eq!(
        (ttl["unit"].as_str(), ttl["applies"].as_str()),
        (Some("seconds"), Some("live"))
    );
    assert!(ttl["help"].is_string());
    let conns = row("http.max_connections");
    assert_eq!(
        (conns["unit"].as_str(), conns["applies"].as_str()),
        (Some("count"), Some("start"))
    );
    let days = row("audit.retention_days");
    assert_eq!(days["unit"].as_str(), Some("days"));
    let text = latchkey_ok(&dir, &["settings", "list"]);
    let line = text
        .lines()
        .find(|l| l.starts_with("http.max_connections "))
        .unwrap_or_else(|| panic!("{text}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &cols[..4],
        &["http.max_connections", "1024", "count", "start"],
        "{line}"
    );
}

/// Input is checked at the edges: a log level that is not one, a listen address by name, a
/// rule method that is not a method, and settings that would contradict each other.
#[test]
fn edges_refuse_what_is_not_meant_and_resolve_what_is() {
    let dir = temp_dir("edges");
    // Not a log level: refused (clap's usage error), never silently `info`.
    let out = latchkey(
        &dir,
        &["serve", "--log-level", "verbose", "--listen", "127.0.0.1:0"],
    );
    assert_exit(&out, 2, "--log-level verbose");
    assert!(stderr(&out).contains("verbose"), "{}", stderr(&out));
    let out = latchkey(&dir, &["serve", "--listen", "nowhere.invalid:8080"]);
    assert_exit(&out, 2, "--listen nowhere.invalid:8080");
    // A name is resolved: localhost:PORT serves.
    let server = Server::start_in(
        temp_dir("edges-listen"),
        &["--listen", "localhost:0", "--log-level", "WARN"],
    );
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    assert_eq!(server.get("/healthz").status, 200);

    // --method FOO for a rule.
    let out = server.cli(&[
        "rule",
        "add",
        "--host",
        "a.example.org",
        "--bypass",
        "--method",
        "G T",
    ]);
    assert_exit(&out, 2, "--method 'G T'");

    // An idle timeout longer than the lifetime it sits in is refused, either way round.
    let out = server.cli(&["settings", "set", "session.idle_ttl", "50000"]);
    assert_exit(&out, 2, "session.idle_ttl above session.ttl");
    assert!(
        stderr(&out).contains("cannot be longer than session.ttl"),
        "{}",
        stderr(&out)
    );
    let out = server.cli(&["settings", "set", "session.ttl", "3600"]);
    assert_exit(&out, 2, "session.ttl below session.idle_ttl");
    assert!(
        stderr(&out).contains("change session.idle_ttl first"),
        "{}",
        stderr(&out)
    );
    let out = server.cli(&["settings", "set", "refresh.idle_ttl", "9000000"]);
    assert_exit(&out, 2, "refresh.idle_ttl above refresh.ttl");
    server.cli_ok(&["settings", "set", "session.idle_ttl", "1800"]);
    server.cli_ok(&["settings", "set", "session.ttl", "3600"]);
}

// ---------------------------------------------------------------------------------------------
// Groups and user update
// ---------------------------------------------------------------------------------------------

#[test]
fn groups_are_objects_with_members_description_and_what_names_them() {
    let dir = temp_dir("groups").join("data");
    crate::support::init_data_dir(&dir);
    crate::support::add_user(&dir, "alice", &["--group", "admins"]);
    crate::support::add_user(&dir, "bob", &["--group", "admins", "--group", "family"]);
    latchkey_ok(
        &dir,
        &[
            "rule",
            "add",
            "--host",
            "app.test",
            "--allow-group",
            "admins",
        ],
    );
    let client: Value = serde_json::from_str(&latchkey_ok(
        &dir,
        &[
            "client",
            "add",
            "app",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "https://app.test/cb",
            "--allow-group",
            "family",
            "--json",
        ],
    ))
    .unwrap();
    let added: Value = serde_json::from_str(&latchkey_ok(
        &dir,
        &["group", "add", "ops", "--description", "On call", "--json"],
    ))
    .unwrap();
    assert_eq!(added["name"], "ops");
    assert_eq!(added["description"], "On call");
    assert!(added["id"].as_i64().is_some(), "{added}");
    let list: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["group", "list", "--json"])).unwrap();
    let brief: Vec<(String, Value, Value, Value)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                g["members"].clone(),
                g["rules"].clone(),
                g["clients"].clone(),
            )
        })
        .collect();
    assert_eq!(
        brief,
        vec![
            (
                "admins".into(),
                json!(["alice", "bob"]),
                json!([1]),
                json!([])
            ),
            (
                "family".into(),
                json!(["bob"]),
                json!([]),
                json!([client["client_id"]])
            ),
            ("ops".into(), json!([]), json!([]), json!([])),
        ]
    );
    let show = latchkey_ok(&dir, &["group", "show", "family"]);
    assert!(show.contains("members:     bob"), "{show}");
    assert!(show.contains("named by:    client app ("), "{show}");
    latchkey_ok(&dir, &["group", "describe", "ops", "Pager duty"]);
    let ops: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["group", "show", "ops", "--json"])).unwrap();
    assert_eq!(ops["description"], "Pager duty");
    assert_eq!(ops["id"], added["id"]);
    // Refused: a taken name, a bad name, a bad description, renaming onto a taken name.
    for args in [
        &["group", "add", "ops"][..],
        &["group", "add", "a b"],
        &["group", "add", "x", "--description", "line\nbreak"],
        &["group", "rename", "ops", "admins"],
        &["group", "rename", "ops", "no,commas"],
    ] {
        let out = latchkey(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Unknown groups are not found.
    for args in [
        &["group", "show", "nope"][..],
        &["group", "remove", "nope"],
        &["group", "rename", "nope", "x"],
    ] {
        let out = latchkey(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains("no group named \"nope\""), "{args:?}");
    }
    // Removing a group nobody names takes its memberships with it.
    latchkey_ok(&dir, &["user", "group", "add", "alice", "ops"]);
    latchkey_ok(&dir, &["group", "remove", "ops"]);
    let alice: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(alice["groups"], json!(["admins"]));
    let audit = latchkey_ok(&dir, &["audit"]);
    for action in ["group_added", "group_updated", "group_removed"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
}

#[test]
fn user_update_changes_email_full_name_and_groups_and_nothing_else() {
    let dir = temp_dir("user-update").join("data");
    crate::support::init_data_dir(&dir);
    let sub = crate::support::add_user(
        &dir,
        "alice",
        &["--group", "admins", "--email", "a@old.example"],
    );
    let u: Value = serde_json::from_str(&latchkey_ok(
        &dir,
        &[
            "user",
            "update",
            "alice",
            "--email",
            "alice@example.org",
            "--name",
            "Alice L",
            "--group",
            "ops",
            "--group",
            "family",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(u["sub"], sub.as_str());
    assert_eq!(u["username"], "alice");
    assert_eq!(u["email"], "alice@example.org");
    assert_eq!(u["name"], "Alice L");
    assert_eq!(u["groups"], json!(["family", "ops"]));
    // Only what is given changes; "" clears; --no-groups empties the groups.
    let u: Value = serde_json::from_str(&latchkey_ok(
        &dir,
        &["user", "update", "alice", "--email", "", "--json"],
    ))
    .unwrap();
    assert_eq!(
        (u["email"].clone(), u["name"].clone()),
        (Value::Null, json!("Alice L"))
    );
    assert_eq!(u["groups"], json!(["family", "ops"]));
    let u: Value = serde_json::from_str(&latchkey_ok(
        &dir,
        &["user", "update", "alice", "--no-groups", "--json"],
    ))
    .unwrap();
    assert_eq!(u["groups"], json!([]));
    let groups: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["group", "show", "ops", "--json"])).unwrap();
    assert_eq!(
        groups["members"],
        json!([]),
        "the group stays, without alice"
    );
    // Refused with exit 2 and nothing changed: nothing to change, a bad email, a bad group,
    // --group with --no-groups; an unknown user is not found (exit 1).
    for args in [
        &["user", "update", "alice"][..],
        &["user", "update", "alice", "--email", "not-an-email"],
        &["user", "update", "alice", "--group", "a b"],
        &["user", "update", "alice", "--name", "bell\u{7}"],
        &["user", "update", "alice", "--group", "x", "--no-groups"],
    ] {
        let out = latchkey(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = latchkey(
        &dir,
        &["user", "update", "nobody", "--email", "n@example.org"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no user named \"nobody\""),
        "{}",
        stderr(&out)
    );
    let u: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(u["groups"], json!([]));
    assert_eq!(u["name"], "Alice L");
}

/// `latchkey … | head -1`: a reader that closes the pipe ends the command quietly, never with
/// a panic.
#[test]
fn a_closed_pipe_ends_output_quietly() {
    let dir = temp_dir("epipe");
    crate::support::init_data_dir(&dir);
    for i in 0..30 {
        latchkey_ok(&dir, &["group", "add", &format!("g{i}")]);
    }
    for args in [
        &["audit"][..],
        &["group", "list"],
        &["settings", "list", "--json"],
    ] {
        let mut child = crate::support::latchkey_cmd()
            .arg("--data-dir")
            .arg(&dir)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the command writes (as `head` does after its line).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// A script that asks for JSON gets its error as JSON too: one object on stderr with a stable
/// code, and the exit code says the kind (2 for not found and usage, 1 for a failed operation).
#[test]
fn errors_under_json_are_json_with_a_code() {
    let dir = temp_dir("json-errors");
    crate::support::init_data_dir(&dir);
    for (args, code, exit) in [
        (&["user", "show", "nobody", "--json"][..], "not_found", 2),
        (&["client", "show", "nothing", "--json"], "not_found", 2),
        (
            &["client", "add", "x", "--grant", "bogus", "--json"],
            "usage",
            2,
        ),
    ] {
        let out = latchkey(&dir, args);
        assert_exit(&out, exit, &format!("{args:?}"));
        let err: Value = serde_json::from_str(stderr(&out).trim())
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stderr(&out)));
        assert_eq!(err["error"]["code"], code, "{args:?}: {err}");
        assert!(err["error"]["message"].as_str().unwrap().len() > 5, "{err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Without --json: the same error as a sentence.
    let out = latchkey(&dir, &["user", "show", "nobody"]);
    assert_exit(&out, 2, "user show nobody");
    assert!(
        stderr(&out).starts_with("latchkey: no user named"),
        "{}",
        stderr(&out)
    );
}

/// An email that is not one, or a name with control characters, is refused at `user add` and
/// `user update`, and the refusal never echoes the raw bytes to the terminal.
#[test]
fn emails_and_names_are_checked_and_never_echoed_raw() {
    let dir = temp_dir("user-fields");
    crate::support::add_user(&dir, "alice", &[]);
    let escape = "evil\u{1b}[31mred";
    for (args, message) in [
        (
            vec!["user", "update", "alice", "--email", "alice"],
            "is not an email address",
        ),
        (
            vec!["user", "update", "alice", "--email", "a b@example.org"],
            "is not an email address",
        ),
        (
            vec!["user", "update", "alice", "--email", "alice@"],
            "is not an email address",
        ),
        (
            vec!["user", "update", "alice", "--email", "a@b@example.org"],
            "is not an email address",
        ),
        (
            vec!["user", "update", "alice", "--name", escape],
            "printable",
        ),
        (
            vec!["user", "update", "alice", "--email", escape],
            "printable",
        ),
    ] {
        let out = latchkey(&dir, &args);
        assert_exit(&out, 2, &format!("{args:?}"));
        let err = stderr(&out);
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(
            !err.contains('\u{1b}'),
            "{args:?} echoed a raw escape: {err:?}"
        );
    }
    for (email, message) in [("bob", "is not an email address"), (escape, "printable")] {
        let out = crate::support::latchkey_stdin(
            &dir,
            &["user", "add", "bob", "--email", email, "--password-stdin"],
            "correct horse battery staple\n",
        );
        assert_exit(&out, 2, email);
        assert!(
            stderr(&out).contains(message),
            "{email:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains('\u{1b}'));
    }
    let shown: Value =
        serde_json::from_str(&latchkey_ok(&dir, &["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(shown["email"], Value::Null, "nothing was changed: {shown}");
    latchkey_ok(
        &dir,
        &["user", "update", "alice", "--email", "alice@example.org"],
    );
}

/// A duration setting takes a unit like every duration flag (`12h`, `30d`); a bare number is in
/// the unit `settings list` names for it.
#[test]
fn duration_settings_take_units() {
    let dir = temp_dir("settings-units");
    crate::support::init_data_dir(&dir);
    for (key, value, stored) in [
        ("session.idle_ttl", "30m", "1800"),
        ("session.ttl", "12h", "43200"),
        ("audit.retention_days", "30d", "30"),
        ("token.access_ttl", "900", "900"),
    ] {
        latchkey_ok(&dir, &["settings", "set", key, value]);
        assert_eq!(
            latchkey_ok(&dir, &["settings", "get", key]).trim(),
            stored,
            "{key} {value}"
        );
    }
    for (key, value) in [
        ("token.access_ttl", "10x"),
        ("audit.retention_days", "36h"),
        ("http.max_connections", "10s"),
    ] {
        let out = latchkey(&dir, &["settings", "set", key, value]);
        assert_exit(&out, 2, &format!("{key} {value}"));
    }
}

/// Naming a group that does not exist yet (a typo, or members to come) warns, in rules and
/// clients alike; naming an existing one does not.
#[test]
fn naming_a_group_that_does_not_exist_warns() {
    let dir = temp_dir("group-warn");
    crate::support::add_user(&dir, "alice", &["--group", "family"]);
    let rule = |group: &str| {
        latchkey(
            &dir,
            &[
                "rule",
                "add",
                "--host",
                "app.example.org",
                "--allow-group",
                group,
            ],
        )
    };
    let out = rule("famliy");
    assert_exit(&out, 0, "rule with a new group");
    assert!(
        stderr(&out).contains("group \"famliy\" does not exist yet"),
        "{}",
        stderr(&out)
    );
    let out = rule("family");
    assert_exit(&out, 0, "rule with an existing group");
    assert!(!stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = latchkey(
        &dir,
        &[
            "client",
            "add",
            "app",
            "--grant",
            "client_credentials",
            "--allow-group",
            "staff",
        ],
    );
    assert_exit(&out, 0, "client with a new group");
    assert!(
        stderr(&out).contains("group \"staff\" does not exist yet"),
        "{}",
        stderr(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// One JSON shape per object type
// ---------------------------------------------------------------------------------------------

/// The field names of a JSON object, sorted.
fn fields(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// `fields` of `v` without the named ones (a secret shown once, which the other commands of
/// the type never print).
fn fields_without(v: &Value, once: &[&str]) -> Vec<String> {
    for f in once {
        assert!(v.get(f).is_some(), "{f} missing from {v}");
    }
    fields(v)
        .into_iter()
        .filter(|f| !once.contains(&f.as_str()))
        .collect()
}

/// Every command that shows, lists, creates, changes or removes an object prints it with
/// `--json` in the same shape: the fields of `show` (plus the secret a create or rotation
/// shows once). Each assertion names the command whose shape differs.
#[test]
fn every_command_prints_each_object_type_in_one_json_shape() {
    let dir = temp_dir("json-shapes").join("data");
    crate::support::init_data_dir(&dir);
    let stdin_json = |args: &[&str], input: &str| -> Value {
        let out = crate::support::latchkey_stdin(&dir, args, input);
        assert_exit(&out, 0, &format!("{args:?}"));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let same = |what: &str, shape: &[String], v: &Value| {
        assert_eq!(&fields(v), shape, "{what} --json differs from show: {v}");
    };

    // Users.
    let pw = "correct horse battery staple\n";
    let added = stdin_json(
        &[
            "user",
            "add",
            "alice",
            "--group",
            "family",
            "--password-stdin",
            "--json",
        ],
        pw,
    );
    let user = fields(&json_out(&dir, &["user", "show", "alice", "--json"]));
    assert!(user.contains(&"sub".to_string()), "{user:?}");
    same("user add", &user, &added);
    same(
        "user list",
        &user,
        &json_out(&dir, &["user", "list", "--json"])[0],
    );
    for args in [
        &["user", "update", "alice", "--email", "alice@example.org"][..],
        &["user", "disable", "alice"],
        &["user", "enable", "alice"],
        &["user", "group", "add", "alice", "admins"],
        &["user", "group", "remove", "alice", "admins"],
        &["user", "rename", "alice", "alicia"],
    ] {
        let mut args = args.to_vec();
        args.push("--json");
        let v = json_out(&dir, &args);
        same(&args[..2].join(" "), &user, &v);
        assert_eq!(v["sub"], added["sub"], "{args:?} names the same person");
    }
    let renamed = json_out(&dir, &["user", "show", "alicia", "--json"]);
    assert_eq!(renamed["username"], "alicia");
    assert_eq!(renamed["email"], "alice@example.org");
    same(
        "user passwd",
        &user,
        &stdin_json(
            &["user", "passwd", "alicia", "--password-stdin", "--json"],
            "another good passphrase\n",
        ),
    );

    // Clients: add and rotate-secret add the secret, shown once; a public client's is null.
    let c = json_out(
        &dir,
        &[
            "client",
            "add",
            "grafana",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "https://grafana.example.org/cb",
            "--json",
        ],
    );
    let id = c["client_id"].as_str().unwrap().to_string();
    let client = fields(&json_out(&dir, &["client", "show", &id, "--json"]));
    assert_eq!(fields_without(&c, &["client_secret"]), client, "client add");
    assert!(c["client_secret"].is_string(), "{c}");
    let public = json_out(
        &dir,
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "https://spa.example.org/cb",
            "--json",
        ],
    );
    assert_eq!(
        fields(&public),
        fields(&c),
        "public and confidential client add"
    );
    assert_eq!(public["client_secret"], Value::Null);
    same(
        "client list",
        &client,
        &json_out(&dir, &["client", "list", "--json"])[0],
    );
    let updated = json_out(
        &dir,
        &["client", "update", &id, "--skip-consent", "true", "--json"],
    );
    same("client update", &client, &updated);
    assert_eq!(updated["skip_consent"], true);
    let rotated = json_out(&dir, &["client", "rotate-secret", &id, "--json"]);
    assert_eq!(
        fields_without(&rotated, &["client_secret"]),
        client,
        "client rotate-secret"
    );
    assert_ne!(rotated["client_secret"], c["client_secret"]);
    same(
        "client remove",
        &client,
        &json_out(&dir, &["client", "remove", "spa", "--json"]),
    );

    // API keys: create and rotate add the key (rotate also what it replaces); revoking by name
    // lists every key it revoked.
    let k = json_out(&dir, &["apikey", "create", "backup", "--json"]);
    let key = fields(&json_out(&dir, &["apikey", "show", "backup", "--json"]));
    assert_eq!(fields_without(&k, &["key"]), key, "apikey create");
    same(
        "apikey list",
        &key,
        &json_out(&dir, &["apikey", "list", "--json"])[0],
    );
    let r = json_out(&dir, &["apikey", "rotate", "backup", "--json"]);
    assert_eq!(
        fields_without(&r, &["key", "replaces", "old_key_expires_at"]),
        key,
        "apikey rotate"
    );
    assert_eq!(r["replaces"], k["id"]);
    let owner = json_out(&dir, &["apikey", "owner", "disable", "backup", "--json"]);
    assert_eq!(owner.as_array().unwrap().len(), 2, "{owner}");
    for v in owner.as_array().unwrap() {
        same("apikey owner disable", &key, v);
    }
    let revoked = json_out(&dir, &["apikey", "revoke", "backup", "--json"]);
    let revoked = revoked.as_array().unwrap();
    assert_eq!(revoked.len(), 2, "both keys of the name: {revoked:?}");
    for v in revoked {
        same("apikey revoke", &key, v);
        assert!(v["revoked_at"].is_i64(), "{v}");
    }

    // Groups.
    let g = json_out(
        &dir,
        &["group", "add", "ops", "--description", "on call", "--json"],
    );
    let group = fields(&json_out(&dir, &["group", "show", "ops", "--json"]));
    assert!(group.contains(&"members".to_string()), "{group:?}");
    same("group add", &group, &g);
    same(
        "group list",
        &group,
        &json_out(&dir, &["group", "list", "--json"])[0],
    );
    same(
        "group describe",
        &group,
        &json_out(&dir, &["group", "describe", "ops", "pager duty", "--json"]),
    );
    let renamed = json_out(&dir, &["group", "rename", "ops", "oncall", "--json"]);
    same("group rename", &group, &renamed);
    assert_eq!(renamed["id"], g["id"]);
    same(
        "group remove",
        &group,
        &json_out(&dir, &["group", "remove", "oncall", "--json"]),
    );

    // Forward-auth rules.
    let first = json_out(
        &dir,
        &["rule", "add", "--host", "a.example.org", "--deny", "--json"],
    );
    let rule = fields(&json_out(&dir, &["rule", "list", "--json"])[0]);
    same("rule add", &rule, &first);
    let second = json_out(
        &dir,
        &[
            "rule",
            "add",
            "--host",
            "b.example.org",
            "--allow-any-user",
            "--json",
        ],
    );
    assert_eq!(second["position"], 2);
    let second_id = second["id"].to_string();
    let moved = json_out(&dir, &["rule", "move", &second_id, "1", "--json"]);
    same("rule move", &rule, &moved);
    assert_eq!(moved["position"], 1);
    same(
        "rule remove",
        &rule,
        &json_out(&dir, &["rule", "remove", &second_id, "--json"]),
    );

    // Settings.
    let setting = fields(&json_out(
        &dir,
        &["settings", "get", "session.ttl", "--json"],
    ));
    same(
        "settings list",
        &setting,
        &json_out(&dir, &["settings", "list", "--json"])[0],
    );
    let set = json_out(&dir, &["settings", "set", "session.ttl", "8h", "--json"]);
    same("settings set", &setting, &set);
    assert_eq!(set["value"], 28_800);
    let unset = json_out(&dir, &["settings", "unset", "session.ttl", "--json"]);
    same("settings unset", &setting, &unset);
    assert_eq!(unset["value"], unset["default"]);
    same(
        "settings set (a path)",
        &setting,
        &json_out(&dir, &["settings", "set", "backup.dir", "/tmp", "--json"]),
    );

    // Signing keys: a rotation prints the keys it made as `keys list` does.
    let signing = fields(&json_out(&dir, &["keys", "list", "--json"])[0]);
    let rotation = json_out(&dir, &["keys", "rotate", "--json"]);
    let made = rotation["keys"].as_array().unwrap();
    assert_eq!(made.len(), 2, "one key per algorithm: {rotation}");
    for v in made {
        same("keys rotate", &signing, v);
        assert_eq!(v["status"], "next");
    }

    // Removing a user prints them as they were.
    same(
        "user remove",
        &user,
        &json_out(&dir, &["user", "remove", "alicia", "--json"]),
    );
}

/// Commands with nothing but a result to print still print JSON with `--json`, on standard
/// output, and nothing else there.
#[test]
fn commands_without_an_object_print_json_too() {
    let dir = temp_dir("json-results").join("data");
    let init = json_out(&dir, &["init", "--json"]);
    assert_eq!(init["created"], true);
    assert_eq!(json_out(&dir, &["init", "--json"])["created"], false);
    let db = init["database"].as_str().unwrap().to_string();
    assert!(db.ends_with("latchkey.db"), "{db}");

    let file = dir.parent().unwrap().join("copy.db");
    let backup = json_out(&dir, &["backup", file.to_str().unwrap(), "--json"]);
    assert!(backup["bytes"].as_u64().unwrap() > 0, "{backup}");
    let refused = latchkey(&dir, &["backup", "-", "--json"]);
    assert_exit(&refused, 2, "backup - --json");
    assert!(refused.stdout.is_empty());

    let restored = json_out(&dir, &["restore", file.to_str().unwrap(), "--json"]);
    assert_eq!(restored["database"], db.as_str());
    assert!(
        restored["kept"]
            .as_str()
            .unwrap()
            .contains("before-restore")
    );

    let test = json_out(
        &dir,
        &["rule", "test", "https://nothing.example.org/", "--json"],
    );
    assert_eq!(test["decision"], "deny");
    assert_eq!(test["rule"], Value::Null);

    // -v with --json names the database as JSON on standard error.
    let out = latchkey(&dir, &["-v", "--json", "user", "list"]);
    assert_exit(&out, 0, "-v --json user list");
    let said: Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(said["database"], db.as_str());
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
}
