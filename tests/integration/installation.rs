//! The installation as a whole: commands never create a database by accident (they refuse a
//! missing one and name the path they looked at), one `serve` per data directory (a lock the
//! kernel releases when the server dies), and an issuer that does not change silently.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Server, init_data_dir, latchkey, latchkey_cmd, latchkey_ok, latchkey_stdin, temp_dir,
};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `latchkey --data-dir DIR serve --listen 127.0.0.1:0 ARGS…`, which must exit on its own
/// within ten seconds (a refused start); kills it and fails the test otherwise.
fn serve_refused(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = latchkey_cmd()
        .arg("--data-dir")
        .arg(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("serve {args:?} was not refused: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!stdout(&out).contains("listening"), "{}", stdout(&out));
    out
}

/// The issuer the running server's discovery document names.
fn discovered_issuer(server: &Server) -> String {
    let r = server.get("/.well-known/openid-configuration");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["issuer"].as_str().unwrap().to_string()
}

#[test]
fn commands_refuse_a_missing_database_and_create_nothing() {
    let base = temp_dir("no-db");
    let missing = base.join("data");
    // An existing but empty directory (a mistyped path that happens to exist) is no better.
    let empty = temp_dir("no-db-empty");
    let backup = base.join("copy.db");
    for dir in [&missing, &empty] {
        let db = dir.join("latchkey.db");
        let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
            (vec!["user", "list"], None),
            (
                vec!["user", "add", "alice", "--password-stdin"],
                Some("pw-long-enough-1\n"),
            ),
            (
                vec!["client", "add", "x", "--grant", "client_credentials"],
                None,
            ),
            (vec!["backup", backup.to_str().unwrap()], None),
        ];
        for (args, input) in cases {
            let out = match input {
                Some(i) => latchkey_stdin(dir, &args, i),
                None => latchkey(dir, &args),
            };
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(
                err.contains(&format!("no database at {}", db.display())),
                "{args:?} names the path it looked at: {err}"
            );
            assert!(err.contains("(--data-dir or LATCHKEY_DATA_DIR"), "{err}");
            assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
        }
        assert!(!db.exists(), "no database was created in {}", dir.display());
    }
    assert!(!missing.exists(), "no data directory was created");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "nothing in the empty dir"
    );
    assert!(!backup.exists(), "no backup file was created");

    // The same through LATCHKEY_DATA_DIR.
    let out = latchkey_cmd()
        .args(["user", "list"])
        .env("LATCHKEY_DATA_DIR", &missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!missing.exists());

    // `init` creates it, once; then the commands work.
    let first = latchkey_ok(&missing, &["init"]);
    assert!(first.starts_with("created "), "{first}");
    let again = latchkey_ok(&missing, &["init"]);
    assert!(again.contains("already exists; nothing changed"), "{again}");
    assert_eq!(
        latchkey_ok(&missing, &["user", "list", "--json"]).trim(),
        "[]"
    );
}

#[test]
fn verbose_names_the_database_every_command_uses() {
    let dir = temp_dir("verbose").join("data");
    init_data_dir(&dir);
    let line = format!("using database {}", dir.join("latchkey.db").display());
    for args in [
        &["-v", "user", "list"][..],
        &["--verbose", "client", "list"],
        &["settings", "list", "-v"],
        &["-v", "check", "--issuer", "https://auth.example.org"],
    ] {
        let out = latchkey(&dir, args);
        assert!(stderr(&out).contains(&line), "{args:?}: {}", stderr(&out));
    }
    let quiet = latchkey(&dir, &["user", "list"]);
    assert!(
        !stderr(&quiet).contains("using database"),
        "{}",
        stderr(&quiet)
    );
    // On a missing database it says which path it tried, then refuses.
    let missing = temp_dir("verbose-missing").join("data");
    let out = latchkey(&missing, &["-v", "user", "list"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!(
            "using database {}",
            missing.join("latchkey.db").display()
        )),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_second_serve_is_refused_with_the_pid_of_the_first_which_keeps_serving() {
    let server = Server::start();
    let dir = server.data_dir.clone();
    let lock = dir.join("latchkey.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        server.pid().to_string(),
        "the lock file holds the server's PID"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The log line may reach the reader thread a moment after the address does.
    let logged = format!("database {}", dir.join("latchkey.db").display());
    crate::support::eventually(Duration::from_secs(3), "serve logs its database", || {
        server.logs().contains(&logged)
    });

    let out = serve_refused(&dir, &[], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("PID {}", server.pid())), "{err}");
    assert!(err.contains("another latchkey serve"), "{err}");

    // The first is untouched, and CLI commands keep working beside it.
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        server.pid().to_string()
    );
    crate::support::add_user(&dir, "alice", &[]);
    assert!(server.cli_ok(&["user", "list"]).contains("alice"));
}

#[test]
fn a_killed_servers_directory_is_served_again_at_once_and_a_stopped_one_is_unlocked() {
    let server = Server::start();
    let dir = server.data_dir.clone();
    let old_pid = server.pid();
    drop(server); // SIGKILL: the lock file stays behind with the dead server's PID.
    let lock = dir.join("latchkey.lock");
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        old_pid.to_string()
    );

    let mut again = Server::start_in(dir.clone(), &[]);
    assert_eq!(again.get("/healthz").status, 200);
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        again.pid().to_string()
    );
    assert!(again.sigterm().success());
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap(),
        "",
        "released on exit"
    );
    let third = Server::start_in(dir, &[]);
    assert_eq!(third.get("/healthz").status, 200);
}

#[test]
fn the_issuer_is_stored_inherited_and_changed_only_when_confirmed() {
    let dir = temp_dir("issuer").join("data");
    let one = "https://auth.one.example";
    let two = "https://auth.two.example";

    let mut server = Server::start_in(dir.clone(), &["--issuer", &format!("{one}/")]);
    assert_eq!(discovered_issuer(&server), one);
    assert!(
        server.logs().contains(&format!("issuer {one} stored")),
        "{}",
        server.logs()
    );
    assert!(server.sigterm().success());

    // `check` reads it (no --issuer needed), and compares an --issuer against it.
    let out = latchkey(&dir, &["check"]);
    assert!(
        stdout(&out).contains(&format!("ok      stored issuer {one} (https)")),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("no issuer set"), "{}", stdout(&out));
    let out = latchkey(&dir, &["check", "--issuer", two]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!(
            "PROBLEM issuer {two} (--issuer) differs from the stored issuer {one}"
        )),
        "{}",
        stdout(&out)
    );

    // Another issuer is refused, with what it would break and how to confirm.
    let out = serve_refused(&dir, &["--issuer", two], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for fragment in [
        one,
        two,
        "every configured app",
        "discovery URL",
        "the iss of every token",
        "stop validating",
        "--change-issuer",
    ] {
        assert!(err.contains(fragment), "refusal names {fragment:?}: {err}");
    }
    // So is it from the environment.
    let out = serve_refused(&dir, &[], &[("LATCHKEY_ISSUER", two)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--change-issuer"), "{}", stderr(&out));

    // Without --issuer the stored one is used.
    let mut server = Server::start_in(dir.clone(), &[]);
    assert_eq!(discovered_issuer(&server), one);
    assert!(server.sigterm().success());

    // --change-issuer needs --issuer.
    let out = serve_refused(&dir, &["--change-issuer"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Confirmed: stored, warned about and audited.
    let mut server = Server::start_in(dir.clone(), &["--issuer", two, "--change-issuer"]);
    assert_eq!(discovered_issuer(&server), two);
    let logs = server.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains(" WARN ")
                && l.contains(&format!("issuer changed from {one} to {two}"))),
        "{logs}"
    );
    assert!(server.sigterm().success());
    let audit: Value = serde_json::from_str(&latchkey_ok(&dir, &["audit", "--json"])).unwrap();
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "issuer_changed" && e["target"] == two && e["outcome"] == "ok"),
        "{audit}"
    );
    let server = Server::start_in(dir.clone(), &[]);
    assert_eq!(discovered_issuer(&server), two);
    drop(server);
    let out = latchkey(&dir, &["check"]);
    assert!(
        stdout(&out).contains(&format!("stored issuer {two}")),
        "{}",
        stdout(&out)
    );
}
