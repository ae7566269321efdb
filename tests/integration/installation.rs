//! The installation as a whole: commands never create a database by accident (they refuse a
//! missing one and name the path they looked at), one `serve` per data directory (a lock the
//! kernel releases when the server dies), and an issuer that does not change silently.

use std::process::Output;

use crate::support::{
    init_data_dir, latchkey, latchkey_cmd, latchkey_ok, latchkey_stdin, temp_dir,
};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
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
