//! Backups, restores and damaged databases, against the real binary: `restore` refused beside
//! a server, a corrupt or unfit backup refused with nothing changed, a good one restored over
//! a stale write-ahead log and served; `check` and `serve` on a file with flipped bytes;
//! `backup -`; scheduled backups and their pruning; and a full disk (a small tmpfs): writes
//! fail cleanly, `/healthz` answers 503 and recovers when space returns, nothing is damaged.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use rusqlite::Connection;
use serde_json::Value;

use crate::support::{self, Server, add_user, eventually, latchkey, latchkey_ok, temp_dir};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: stdout {}\nstderr {}",
        stdout(out),
        stderr(out)
    );
}

/// The usernames in a data directory.
fn usernames(dir: &Path) -> Vec<String> {
    let v: Value = serde_json::from_str(&latchkey_ok(dir, &["user", "list", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect()
}

/// A data directory with the user `before`, and a backup of it taken then.
fn dir_with_backup(name: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name).join("data");
    add_user(&dir, "before", &[]);
    let backup = temp_dir(name).join("backup.db");
    latchkey_ok(&dir, &["backup", backup.to_str().unwrap()]);
    (dir, backup)
}

/// Flips every byte of pages 2 to 4 (4 KiB pages): the tables' pages are garbage, page 1
/// (the header) is intact, so SQLite opens the file and its checks find the damage.
fn flip_pages(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    assert!(bytes.len() >= 5 * 4096, "{} is too small", file.display());
    for b in &mut bytes[4096..4 * 4096] {
        *b ^= 0xff;
    }
    std::fs::write(file, bytes).unwrap();
}

fn integrity(file: &Path) -> String {
    let conn =
        Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

fn before_restore_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("latchkey.db.before-restore-"))
        .collect();
    names.sort();
    names
}

#[test]
fn restore_is_refused_while_a_server_holds_the_data_directory() {
    let (dir, backup) = dir_with_backup("restore-running");
    let server = Server::start_in(dir.clone(), &[]);
    // The server holds an exclusive lock on latchkey.lock. Where this build's `serve` does not
    // take it yet, the test holds it in the server's place: restore must see it either way.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join("latchkey.lock"))
        .unwrap();
    let held_by_test = lock.try_lock().is_ok();
    eprintln!(
        "lock held by the {}",
        if held_by_test { "test" } else { "server" }
    );
    let db_before = std::fs::read(dir.join("latchkey.db")).unwrap();
    let out = latchkey(&dir, &["restore", backup.to_str().unwrap()]);
    assert_exit(&out, 1, "restore beside a server");
    let err = stderr(&out);
    assert!(
        err.contains("a latchkey server is running on") && err.contains("stop it first"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("latchkey.db")).unwrap(), db_before);
    assert!(before_restore_files(&dir).is_empty());
    assert_eq!(server.get("/healthz").status, 200);
    drop(lock);
}

#[test]
fn restore_refuses_a_corrupt_or_unfit_file_and_changes_nothing() {
    let (dir, backup) = dir_with_backup("restore-bad");
    let db = dir.join("latchkey.db");
    let db_before = std::fs::read(&db).unwrap();
    let restore = |file: &Path| latchkey(&dir, &["restore", file.to_str().unwrap()]);

    let corrupt = backup.with_file_name("corrupt.db");
    std::fs::copy(&backup, &corrupt).unwrap();
    flip_pages(&corrupt);
    let out = restore(&corrupt);
    assert_exit(&out, 1, "restore of a corrupt file");
    let err = stderr(&out);
    assert!(err.contains("the database is corrupt ("), "{err}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(err.matches("the database is corrupt").count(), 1, "{err}");

    let text = backup.with_file_name("notes.txt");
    std::fs::write(
        &text,
        "not a database at all, just some words in a file\n".repeat(100),
    )
    .unwrap();
    let out = restore(&text);
    assert_exit(&out, 1, "restore of a text file");
    assert!(
        stderr(&out).contains("the database is corrupt ("),
        "{}",
        stderr(&out)
    );

    let newer = backup.with_file_name("newer.db");
    std::fs::copy(&backup, &newer).unwrap();
    Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 9999")
        .unwrap();
    let out = restore(&newer);
    assert_exit(&out, 1, "restore of a newer schema");
    assert!(
        stderr(&out).contains("schema version 9999"),
        "{}",
        stderr(&out)
    );

    let empty = backup.with_file_name("empty.db");
    Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); PRAGMA user_version = 3;")
        .unwrap();
    let out = restore(&empty);
    assert_exit(&out, 1, "restore of a database without latchkey's tables");
    let err = stderr(&out);
    assert!(err.contains("not a complete latchkey database"), "{err}");
    assert!(err.contains("users"), "{err}");

    let out = restore(&backup.with_file_name("missing.db"));
    assert_exit(&out, 2, "restore of a missing file");
    assert!(stderr(&out).contains("no backup file"), "{}", stderr(&out));

    assert_eq!(
        std::fs::read(&db).unwrap(),
        db_before,
        "the database changed"
    );
    assert!(before_restore_files(&dir).is_empty());
    assert_eq!(usernames(&dir), ["before"]);
}

#[test]
fn a_backup_restored_over_a_stale_wal_is_served_and_the_old_database_kept() {
    let (dir, backup) = dir_with_backup("restore-wal");
    let db = dir.join("latchkey.db");
    let wal = dir.join("latchkey.db-wal");
    {
        // Writes a killed server leaves in the write-ahead log.
        let server = Server::start_in(dir.clone(), &[]);
        for i in 0..20 {
            server.client(&format!("after{i}"), "read");
        }
        // Dropping the server kills it with SIGKILL: no checkpoint, the WAL stays.
    }
    let stale = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(stale > 0, "no stale WAL to test with");

    let out = latchkey_ok(&dir, &["restore", backup.to_str().unwrap()]);
    assert!(out.contains("restored"), "{out}");
    assert!(
        !wal.exists(),
        "the stale WAL is still beside the restored database"
    );
    assert!(!dir.join("latchkey.db-shm").exists());
    let kept = before_restore_files(&dir);
    assert_eq!(kept.len(), 2, "the old database and its WAL: {kept:?}");
    assert!(kept[1].ends_with("-wal"), "{kept:?}");
    assert!(out.contains(&kept[0]), "{out}");
    assert_eq!(integrity(&db), "ok");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&db).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let server = Server::start_in(dir.clone(), &[]);
    assert_eq!(server.get("/healthz").status, 200);
    assert_eq!(usernames(&dir), ["before"]);
    let clients = server.cli_ok(&["client", "list", "--json"]);
    assert!(!clients.contains("after0"), "{clients}");
    let audit = server.cli_ok(&["audit", "--json"]);
    assert!(audit.contains("backup_restored"), "{audit}");
    drop(server);

    // The database it replaced still holds what was written after the backup.
    let old = Connection::open(dir.join(&kept[0])).unwrap();
    let n: i64 = old
        .query_row(
            "SELECT count(*) FROM clients WHERE name LIKE 'after%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 20);
}

#[test]
fn check_and_serve_refuse_a_database_with_flipped_bytes() {
    let dir = temp_dir("corrupt-db").join("data");
    for i in 0..30 {
        add_user(&dir, &format!("user{i}"), &[]);
    }
    let db = dir.join("latchkey.db");
    flip_pages(&db);

    let out = latchkey(&dir, &["check", "--issuer", "https://auth.example.org"]);
    assert_exit(&out, 1, "check of a corrupt database");
    let text = stdout(&out);
    assert!(
        text.contains("PROBLEM the database is corrupt (")
            && text.contains("): restore a backup with latchkey restore FILE"),
        "{text}"
    );

    let out = support::latchkey_cmd()
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_exit(&out, 1, "serve on a corrupt database");
    let err = stderr(&out);
    assert!(
        err.contains("the database is corrupt (")
            && err.contains("restore a backup with latchkey restore FILE"),
        "{err}"
    );
    assert_eq!(
        err.matches("the database is corrupt").count(),
        1,
        "said once: {err}"
    );
    assert!(!stdout(&out).contains("listening"), "{}", stdout(&out));
}

#[test]
fn backup_to_standard_output_is_a_valid_database() {
    let dir = temp_dir("backup-stdout").join("data");
    add_user(&dir, "alice", &[]);
    let out = latchkey(&dir, &["backup", "-"]);
    assert_exit(&out, 0, "backup -");
    assert!(
        out.stdout.starts_with(b"SQLite format 3\0"),
        "not a database"
    );
    let file = temp_dir("backup-stdout").join("copy.db");
    std::fs::write(&file, &out.stdout).unwrap();
    assert_eq!(integrity(&file), "ok");
    let conn = Connection::open(&file).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM users WHERE username = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("backup"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    // And it restores.
    let other = temp_dir("backup-stdout").join("other");
    latchkey_ok(&other, &["restore", file.to_str().unwrap()]);
    assert_eq!(usernames(&other), ["alice"]);
}

#[test]
fn scheduled_backups_are_written_checked_and_pruned() {
    let backups = temp_dir("scheduled").join("backups");
    let bad = temp_dir("scheduled-bad");
    support::init_data_dir(&bad);
    let out = latchkey(&bad, &["settings", "set", "backup.dir", "relative/dir"]);
    assert_exit(&out, 2, "a relative backup.dir");
    assert!(
        stderr(&out).contains("not an absolute path"),
        "{}",
        stderr(&out)
    );

    let server = Server::start_with_settings(
        &[],
        &[
            ("backup.dir", backups.to_str().unwrap()),
            ("backup.keep", "2"),
            ("backup.interval", "1"),
        ],
    );
    let listed = server.cli_ok(&["settings", "get", "backup.dir"]);
    assert_eq!(listed.trim(), backups.to_str().unwrap());
    let audit = || -> Vec<Value> {
        serde_json::from_str::<Value>(&server.cli_ok(&["audit", "--json"]))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    let count = |action: &str| {
        audit()
            .iter()
            .filter(|e| e["action"] == action && e["actor"] == "server" && e["outcome"] == "ok")
            .count()
    };
    eventually(
        Duration::from_secs(10),
        "three scheduled backups, one pruned",
        || count("backup_written") >= 3 && count("backup_pruned") >= 1,
    );
    let files: Vec<PathBuf> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        files.len() == 2 || files.len() == 3,
        "backup.keep 2 (a third may be being written): {files:?}"
    );
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("latchkey-") && name.ends_with(".db"),
            "{name}"
        );
    }
    drop(server);
    let files: Vec<PathBuf> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .collect();
    assert!(files.len() <= 3, "{files:?}");
    // Every finished one is a sound database (the newest may have been cut off by the kill).
    let mut sound = 0;
    for f in &files {
        if Connection::open_with_flags(f, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0)))
            .is_ok_and(|s| s == "ok")
        {
            sound += 1;
        }
    }
    assert!(sound >= 2, "{files:?}");
}

/// Unmounts the tmpfs when the test ends, however it ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_healthz_until_space_returns() {
    let mnt = temp_dir("tmpfs");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m,mode=700", "tmpfs"])
        .arg(&mnt)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        if !support::needs(&["root, to mount a small tmpfs (mount -t tmpfs)"]) {
            return;
        }
        panic!("cannot mount a tmpfs on {}", mnt.display());
    }
    let _unmount = Unmount(mnt.clone());
    let dir = mnt.join("data");
    add_user(&dir, "alice", &[]);
    let server = Server::start_in(dir.clone(), &[]);
    let client = server.client("svc", "read");
    let token = server.token(&client, None);
    assert_eq!(server.get("/healthz").status, 200);

    // An empty write-ahead log, so the next write must allocate space; then no space.
    let conn = Connection::open(dir.join("latchkey.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let mut filler = File::create(mnt.join("filler")).unwrap();
    let chunk = vec![0u8; 4096];
    while filler.write_all(&chunk).is_ok() {}
    while filler.write_all(&[0]).is_ok() {}

    // The CLI's write fails with a message that says so.
    let out = server.cli(&[
        "client",
        "add",
        "other",
        "--grant",
        "client_credentials",
        "--scope",
        "read",
    ]);
    assert_exit(&out, 1, "a write on a full disk");
    let err = stderr(&out);
    assert!(
        err.contains("is full") && err.contains("free some space"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // The server's: a revocation cannot be stored.
    let r = server.post_basic("/revoke", &client, &format!("token={token}"));
    assert!(r.status == 200 || r.status >= 500, "{}", r.status);
    eventually(Duration::from_secs(15), "/healthz 503", || {
        server.get("/healthz").status == 503
    });
    let h = server.get("/healthz");
    assert_eq!(h.json()["status"], "unavailable");
    assert!(
        h.json()["reason"].as_str().unwrap().contains("is full"),
        "{}",
        h.text()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !server.logs().contains("the database cannot be written") {
        assert!(
            std::time::Instant::now() < deadline,
            "the failure was not logged: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..20 {
        assert_eq!(server.get("/healthz").status, 503);
    }
    // Failing requests do not log the failure each: the server logs it once.
    for _ in 0..5 {
        let r = server.post_basic("/revoke", &client, &format!("token={token}"));
        assert!(r.status == 200 || r.status >= 500, "{}", r.status);
    }
    let logs = server.logs();
    assert_eq!(
        logs.matches("the database cannot be written").count(),
        1,
        "logged once, not per request: {logs}"
    );
    assert!(!logs.contains("ERROR latchkey::oauth::error"), "{logs}");

    // Space returns: the server recovers on its own.
    drop(filler);
    std::fs::remove_file(mnt.join("filler")).unwrap();
    eventually(Duration::from_secs(8), "/healthz 200 again", || {
        server.get("/healthz").status == 200
    });
    eventually(Duration::from_secs(2), "the recovery logged", || {
        server.logs().contains("the database can be written again")
    });
    server.cli_ok(&[
        "client",
        "add",
        "other",
        "--grant",
        "client_credentials",
        "--scope",
        "read",
    ]);
    drop(conn);
    let mut server = server;
    server.sigterm();
    let out = latchkey(&dir, &["check", "--issuer", "https://auth.example.org"]);
    assert_exit(&out, 0, "check after the full disk");
    assert_eq!(usernames(&dir), ["alice"]);
}
