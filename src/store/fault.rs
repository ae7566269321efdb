//! What a failure of the database file means to the person running latchkey: the one place a
//! rusqlite error becomes a [`StoreError`]. A corrupt file, a read-only or full filesystem, a
//! lock held by another process and a permission problem each get a sentence that says what
//! to do; anything else stays [`StoreError::Sqlite`]. Also the integrity checks: the file
//! test of `latchkey check`, of `serve` at start and of a backup before `restore` installs it.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{BUSY_TIMEOUT, SCHEMA_VERSION, StoreError};

/// What is wrong with the database file or the filesystem it is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The file is damaged or not a database.
    Corrupt,
    /// The file or its filesystem cannot be written.
    ReadOnly,
    /// The filesystem has no space left.
    DiskFull,
    /// Another process holds a lock on the file.
    Locked,
    /// The file cannot be opened by this user.
    PermissionDenied,
    /// The operating system reported an I/O error.
    Io,
}

impl Fault {
    /// Whether this fault means the server cannot write at all (for `/healthz`).
    pub fn stops_writes(self) -> bool {
        matches!(
            self,
            Fault::Corrupt | Fault::ReadOnly | Fault::DiskFull | Fault::Io
        )
    }
}

/// The sentence for a corrupt database.
pub fn corrupt_message(detail: &str) -> String {
    format!("the database is corrupt ({detail}): restore a backup with latchkey restore FILE")
}

/// The fault an error is, if it is one.
pub(super) fn fault_of(e: &rusqlite::Error) -> Option<Fault> {
    // Text that is not UTF-8 where latchkey only ever wrote UTF-8: the bytes were damaged.
    match e {
        rusqlite::Error::Utf8Error(..) => return Some(Fault::Corrupt),
        rusqlite::Error::FromSqlConversionFailure(_, _, inner)
            if inner.is::<std::str::Utf8Error>() =>
        {
            return Some(Fault::Corrupt);
        }
        _ => {}
    }
    let rusqlite::Error::SqliteFailure(f, _) = e else {
        return None;
    };
    Some(match f.code {
        ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => Fault::Corrupt,
        ErrorCode::ReadOnly => Fault::ReadOnly,
        ErrorCode::DiskFull => Fault::DiskFull,
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Fault::Locked,
        ErrorCode::PermissionDenied | ErrorCode::CannotOpen => Fault::PermissionDenied,
        ErrorCode::SystemIoFailure => Fault::Io,
        _ => return None,
    })
}

/// A failure of the database file, with SQLite's words and (when known) the file. Its
/// `Display` is the sentence an admin reads.
#[derive(Debug)]
pub struct DbFault {
    pub kind: Fault,
    detail: String,
    path: Option<PathBuf>,
}

impl DbFault {
    /// The same fault, naming `path` when it named no file yet.
    pub fn at(mut self, path: &Path) -> DbFault {
        if self.path.is_none() {
            self.path = Some(path.to_path_buf());
        }
        self
    }
}

impl fmt::Display for DbFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.detail;
        let path = self.path.as_deref();
        let file = path.map_or_else(|| "the database".to_string(), |p| p.display().to_string());
        match self.kind {
            Fault::Corrupt => f.write_str(&corrupt_message(e)),
            Fault::ReadOnly => write!(
                f,
                "{file} cannot be written ({e}){}: check that the filesystem is mounted \
                 read-write and that the file and its directory belong to the user latchkey \
                 runs as",
                owner(path)
            ),
            Fault::DiskFull => write!(
                f,
                "the disk holding {file} is full ({e}): free some space; the change was not \
                 written"
            ),
            Fault::Locked => write!(
                f,
                "{file} is locked by another process ({e}): another latchkey command may be \
                 writing; try again, and stop any other program that opened the file"
            ),
            Fault::PermissionDenied => write!(
                f,
                "cannot open {file} ({e}){}: run latchkey as the file's owner, or fix its \
                 ownership and mode (600)",
                owner(path)
            ),
            Fault::Io => write!(f, "cannot read or write {file} (disk I/O error: {e})"),
        }
    }
}

/// Turns a rusqlite error into a [`StoreError`]; `path` (the database file, when known) lets a
/// permission problem name the file's owner and mode.
pub(super) fn classify(e: rusqlite::Error, path: Option<&Path>) -> StoreError {
    match fault_of(&e) {
        Some(kind) => StoreError::Fault(DbFault {
            kind,
            detail: e.to_string(),
            path: path.map(Path::to_path_buf),
        }),
        None => StoreError::Sqlite(e),
    }
}

/// The sentence for an error, as [`classify`] would word it without a file name.
pub(super) fn describe(e: &rusqlite::Error) -> String {
    match fault_of(e) {
        Some(kind) => DbFault {
            kind,
            detail: e.to_string(),
            path: None,
        }
        .to_string(),
        None => e.to_string(),
    }
}

/// `; the file is owned by uid 1000 (alice), mode 600, latchkey runs as uid 0`, or nothing
/// when the file cannot be looked at.
fn owner(path: Option<&Path>) -> String {
    let Some(meta) = path.and_then(|p| std::fs::metadata(p).ok()) else {
        return String::new();
    };
    let name = |uid: u32| {
        std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let mut fields = line.split(':');
                    let user = fields.next()?;
                    let id = fields.nth(1)?;
                    (id == uid.to_string()).then(|| format!(" ({user})"))
                })
            })
            .unwrap_or_default()
    };
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let runs_as = me.map_or_else(String::new, |uid| {
        format!(", latchkey runs as uid {uid}{}", name(uid))
    });
    format!(
        "; the file is owned by uid {}{}, mode {:o}{runs_as}",
        meta.uid(),
        name(meta.uid()),
        meta.mode() & 0o777
    )
}

/// How thoroughly [`verify_file`] looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    /// `PRAGMA quick_check`: the structure of every page, in time linear in the file's size.
    Quick,
    /// `PRAGMA integrity_check`: also that every index matches its table.
    Full,
}

/// Opens a database file read-only and checks it; a damaged file (or one that is not a
/// database) is [`Fault::Corrupt`] with what SQLite found. Returns the schema version.
pub(super) fn verify_file(path: &Path, depth: Depth) -> Result<i64, StoreError> {
    let classify = |e| classify(e, Some(path));
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    let pragma = match depth {
        Depth::Quick => "PRAGMA quick_check(5)",
        Depth::Full => "PRAGMA integrity_check(5)",
    };
    let findings: Vec<String> = conn
        .prepare(pragma)
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(classify)?;
    if findings.len() != 1 || findings.first().map(String::as_str) != Some("ok") {
        return Err(StoreError::Fault(DbFault {
            kind: Fault::Corrupt,
            detail: findings.join("; "),
            path: Some(path.to_path_buf()),
        }));
    }
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(classify)
}

/// The tables a latchkey database of a schema version has, by the version that added them.
const TABLES: &[(i64, &str)] = &[
    (1, "revisions"),
    (1, "settings"),
    (1, "clients"),
    (1, "signing_keys"),
    (1, "revoked_tokens"),
    (2, "users"),
    (2, "user_groups"),
    (2, "sessions"),
    (2, "grants"),
    (2, "secrets"),
    (3, "api_keys"),
    (4, "rules"),
    (5, "audit_log"),
];

/// Checks that a file is a sound latchkey database this binary can run: the full integrity
/// check, a schema version from 1 to [`SCHEMA_VERSION`] and the tables of that version. A
/// problem is [`StoreError::Unfit`] (or a corrupt [`StoreError::Fault`]) saying which.
pub(super) fn verify_latchkey_file(path: &Path) -> Result<i64, StoreError> {
    let version = verify_file(path, Depth::Full)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        return Err(StoreError::Unfit(format!(
            "{} is not a latchkey database (schema version {version})",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(e, Some(path)))?;
    let mut missing = Vec::new();
    for (since, table) in TABLES {
        if *since > version {
            continue;
        }
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| classify(e, Some(path)))?;
        if n == 0 {
            missing.push(*table);
        }
    }
    if !missing.is_empty() {
        return Err(StoreError::Unfit(format!(
            "{} is not a complete latchkey database: schema version {version} but no table {}",
            path.display(),
            missing.join(", ")
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn each_fault_says_what_to_do() {
        let dir = std::env::temp_dir().join(format!("latchkey-fault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("latchkey.db");
        std::fs::write(&file, b"x").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let say = |code, path: Option<&Path>| classify(failure(code), path).to_string();

        let denied = say(rusqlite::ffi::SQLITE_CANTOPEN, Some(&file));
        assert!(denied.contains(&file.display().to_string()), "{denied}");
        assert!(
            denied.contains("owned by uid") && denied.contains("mode 640"),
            "{denied}"
        );
        assert!(denied.contains("latchkey runs as uid"), "{denied}");
        let read_only = say(rusqlite::ffi::SQLITE_READONLY, Some(&file));
        assert!(read_only.contains("mounted read-write") && read_only.contains("mode 640"));
        let full = say(rusqlite::ffi::SQLITE_FULL, None);
        assert!(
            full.starts_with("the disk holding the database is full"),
            "{full}"
        );
        let locked = say(rusqlite::ffi::SQLITE_BUSY, None);
        assert!(locked.contains("locked by another process"), "{locked}");
        let corrupt = say(rusqlite::ffi::SQLITE_CORRUPT, None);
        assert!(
            corrupt.starts_with("the database is corrupt (")
                && corrupt.ends_with("): restore a backup with latchkey restore FILE"),
            "{corrupt}"
        );
        let bytes = vec![0xff_u8, 0xfe];
        let bad_text = std::str::from_utf8(&bytes).unwrap_err();
        let e = rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(bad_text),
        );
        assert_eq!(fault_of(&e), Some(Fault::Corrupt));
        assert!(matches!(
            classify(failure(rusqlite::ffi::SQLITE_CONSTRAINT), None),
            StoreError::Sqlite(_)
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_faults_of_the_file_stop_writes() {
        assert!(Fault::DiskFull.stops_writes());
        assert!(Fault::Corrupt.stops_writes());
        assert!(!Fault::Locked.stops_writes());
        assert!(!Fault::PermissionDenied.stops_writes());
    }
}
