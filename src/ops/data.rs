//! Operations on the data itself: a backup of the database while the server runs (on demand,
//! to standard output, or on the server's schedule), a restore while it is stopped, and the
//! check of a data directory (permissions, integrity, schema version, signing keys, the stored issuer)
//! that `latchkey check` reports.
//!
//! A restore must not run beside a server: the server holds an exclusive advisory lock
//! (`flock`) on [`LOCK_FILE`] in the data directory while it runs, and `restore` takes the same
//! lock, so neither starts while the other works.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Actor, OpError, audited};
use crate::store::{DB_FILE, Depth, SCHEMA_VERSION, Store};

/// The lock file a running server holds in its data directory.
pub use crate::store::lock::LOCK_FILE;

/// The prefix of a scheduled backup's file name (`latchkey-20261203T184501Z.db`).
const SCHEDULED_PREFIX: &str = "latchkey-";

/// Writes a consistent snapshot of the whole database to `file` (`VACUUM INTO`), with mode
/// 0600 since it holds the signing keys. `file` must not exist. Audited as `backup_written`.
pub fn backup(store: &mut Store, actor: &Actor, file: &Path) -> Result<(), OpError> {
    let target = file.display().to_string();
    audited(store, actor, "backup_written", &target, |store| {
        if file.exists() {
            return Err(OpError::Invalid(format!(
                "{target} already exists; choose a new file"
            )));
        }
        // Created empty with mode 0600 before SQLite writes the keys into it (VACUUM INTO
        // accepts an empty file), so no other user can open it while it is being written.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .map_err(|e| OpError::Failed(format!("cannot create {target}: {e}")))?;
        if let Err(e) = store.backup_to(file) {
            let _ = std::fs::remove_file(file);
            return Err(e.into());
        }
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| OpError::Failed(format!("cannot chmod {target}: {e}")))
    })
}

/// Writes a backup to a temporary file in `dir` (mode 0600) and returns it open for reading,
/// already unlinked, so nothing is left behind whatever happens to the reader: for
/// `latchkey backup -`, which copies it to standard output. Audited as `backup_written` with
/// the target `-`.
pub fn backup_stream(store: &mut Store, actor: &Actor, dir: &Path) -> Result<File, OpError> {
    audited(store, actor, "backup_written", "-", |store| {
        let tmp = dir.join(format!(".latchkey-backup-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let shown = tmp.display().to_string();
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| OpError::Failed(format!("cannot create {shown}: {e}")))?;
        let written = store.backup_to(&tmp);
        let file = File::open(&tmp);
        let _ = std::fs::remove_file(&tmp);
        written?;
        file.map_err(|e| OpError::Failed(format!("cannot read {shown}: {e}")))
    })
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    /// The database now in place.
    pub database: PathBuf,
    /// Where the database it replaced was kept (with its WAL, if it had one), if there was one.
    pub kept: Option<PathBuf>,
    /// The schema version of the restored file (migrated at the next start if older).
    pub schema_version: i64,
}

/// Puts the backup `file` in place of the data directory's database while no server runs:
/// refuses if a server holds [`LOCK_FILE`]; checks the file (integrity, a schema version this
/// latchkey knows, the tables of that version) before anything changes; copies it to a
/// temporary file in the data directory and fsyncs it; moves the current database aside as
/// `latchkey.db.before-restore-<time>` (its WAL goes with it, named for it, so a stale WAL
/// can never be replayed onto the restored file, and the shared-memory file is removed); and
/// renames the copy into place. Audited as `backup_restored` in the restored database.
pub fn restore(data_dir: &Path, actor: &Actor, file: &Path) -> Result<Restored, OpError> {
    let shown = file.display().to_string();
    if !file.is_file() {
        return Err(OpError::NotFound(format!("no backup file {shown}")));
    }
    if !data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|e| OpError::Failed(format!("cannot create {}: {e}", data_dir.display())))?;
    }
    let _lock = lock_data_dir(data_dir)?;
    let schema_version = Store::verify_latchkey_file(file).map_err(|e| {
        OpError::Failed(format!(
            "{shown} cannot be restored: {e}; nothing was changed"
        ))
    })?;

    let db = data_dir.join(DB_FILE);
    let tmp = data_dir.join(format!(".{DB_FILE}.restore-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if let Err(e) = copy_synced(file, &tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let failed = |what: String, e: std::io::Error| OpError::Failed(format!("{what}: {e}"));
    let wal = sidecar(&db, "-wal");
    let shm = sidecar(&db, "-shm");
    let kept = if db.exists() {
        let stamp = crate::timefmt::rfc3339(crate::timefmt::now()).replace([':', '-'], "");
        let mut kept = sidecar(&db, &format!(".before-restore-{stamp}"));
        let mut n = 1;
        while kept.exists() {
            kept = sidecar(&db, &format!(".before-restore-{stamp}-{n}"));
            n += 1;
        }
        std::fs::rename(&db, &kept)
            .map_err(|e| failed(format!("cannot move {} aside", db.display()), e))?;
        if wal.exists() {
            std::fs::rename(&wal, sidecar(&kept, "-wal"))
                .map_err(|e| failed(format!("cannot move {} aside", wal.display()), e))?;
        }
        Some(kept)
    } else {
        // No database: a WAL without one belongs to nothing.
        if wal.exists() {
            std::fs::remove_file(&wal)
                .map_err(|e| failed(format!("cannot remove {}", wal.display()), e))?;
        }
        None
    };
    if shm.exists() {
        std::fs::remove_file(&shm)
            .map_err(|e| failed(format!("cannot remove {}", shm.display()), e))?;
    }
    std::fs::rename(&tmp, &db)
        .map_err(|e| failed(format!("cannot move the copy to {}", db.display()), e))?;
    if let Ok(d) = File::open(data_dir) {
        let _ = d.sync_all();
    }
    // Recorded in the restored database: the one the server runs with from now on.
    let mut store = Store::open_file(&db)?;
    audited(&mut store, actor, "backup_restored", &shown, |_| Ok(()))?;
    Ok(Restored {
        database: db,
        kept,
        schema_version,
    })
}

/// `path` with `suffix` appended to its file name (`latchkey.db` and `-wal`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Takes the data directory's lock (see the module documentation), or says that a server
/// holds it. The lock is released when the returned file is closed.
fn lock_data_dir(data_dir: &Path) -> Result<File, OpError> {
    let path = data_dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| OpError::Failed(format!("cannot open {}: {e}", path.display())))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = std::fs::read_to_string(&path).unwrap_or_default();
            let pid = pid.trim();
            let by = if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
                String::new()
            } else {
                format!(" (PID {pid})")
            };
            Err(OpError::Failed(format!(
                "a latchkey server is running on {}{by}: stop it first; restore never replaces \
                 the database of a running server",
                data_dir.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(OpError::Failed(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Copies `from` to the new file `to` (mode 0600) and fsyncs it.
fn copy_synced(from: &Path, to: &Path) -> Result<(), OpError> {
    let fail = |what: &str, e: std::io::Error| {
        OpError::Failed(format!("cannot {what} {}: {e}", to.display()))
    };
    let mut src = File::open(from)
        .map_err(|e| OpError::Failed(format!("cannot read {}: {e}", from.display())))?;
    let mut dst = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| fail("create", e))?;
    std::io::copy(&mut src, &mut dst).map_err(|e| fail("write", e))?;
    dst.flush().map_err(|e| fail("write", e))?;
    dst.sync_all().map_err(|e| fail("fsync", e))
}

/// The directory scheduled backups go to: `backup.dir`, or `<data dir>/backups`.
pub fn scheduled_backup_dir(data_dir: &Path, setting: &str) -> PathBuf {
    if setting.is_empty() {
        data_dir.join("backups")
    } else {
        PathBuf::from(setting)
    }
}

/// One scheduled backup (the running server's): writes `latchkey-<time>.db` into `dir`
/// (created mode 0700 if missing), checks the written file (`integrity_check`), and deletes
/// the oldest scheduled backups beyond `keep`. Each step is audited (`backup_written`,
/// `backup_pruned`); returns the new file.
pub fn scheduled_backup(
    store: &mut Store,
    actor: &Actor,
    dir: &Path,
    keep: usize,
) -> Result<PathBuf, OpError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| OpError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    let stamp = crate::timefmt::rfc3339(crate::timefmt::now()).replace([':', '-'], "");
    let mut file = dir.join(format!("{SCHEDULED_PREFIX}{stamp}.db"));
    let mut n = 1;
    while file.exists() {
        file = dir.join(format!("{SCHEDULED_PREFIX}{stamp}-{n}.db"));
        n += 1;
    }
    backup(store, actor, &file)?;
    if let Err(e) = Store::verify_file(&file, Depth::Full) {
        let shown = file.display().to_string();
        return audited(store, actor, "backup_checked", &shown, |_| {
            Err(OpError::Failed(format!(
                "the backup {shown} failed its check: {e}"
            )))
        });
    }
    let mut old: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| OpError::Failed(format!("cannot list {}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with(SCHEDULED_PREFIX) && name.ends_with(".db")
        })
        .filter_map(|entry| {
            let modified = entry.metadata().ok()?.modified().ok()?;
            Some((modified, entry.path()))
        })
        .collect();
    old.sort();
    let excess = old.len().saturating_sub(keep.max(1));
    for (_, path) in old.into_iter().take(excess) {
        let shown = path.display().to_string();
        audited(store, actor, "backup_pruned", &shown, |_| {
            std::fs::remove_file(&path)
                .map_err(|e| OpError::Failed(format!("cannot delete {shown}: {e}")))
        })?;
    }
    Ok(file)
}

/// One finding of [`check`]: fine, or a problem to fix, in a sentence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub message: String,
}

/// Looks at the data directory, the database (read-only: nothing is migrated or created), the
/// signing keys and the issuer the server runs with, and says what it found.
pub fn check(data_dir: &Path, issuer: Option<&str>) -> Vec<Check> {
    let mut lines = Vec::new();
    let mut report = |ok: bool, message: String| lines.push(Check { ok, message });
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode() & 0o777);

    match mode(data_dir) {
        Ok(m) if m & 0o077 == 0 => report(
            true,
            format!("data directory {} (mode {m:o})", data_dir.display()),
        ),
        Ok(m) => report(
            false,
            format!(
                "data directory {} is mode {m:o}: others can enter it; chmod 700",
                data_dir.display()
            ),
        ),
        Err(e) => report(false, format!("data directory {}: {e}", data_dir.display())),
    }
    let db = data_dir.join(DB_FILE);
    match mode(&db) {
        Ok(m) if m & 0o077 == 0 => report(true, format!("database {} (mode {m:o})", db.display())),
        Ok(m) => report(
            false,
            format!(
                "database {} is mode {m:o}: it holds private keys; chmod 600",
                db.display()
            ),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report(false, super::installation::missing_database(data_dir))
        }
        Err(e) => report(false, format!("database {}: {e}", db.display())),
    }
    let mut stored_issuer = None;
    let sound = db.exists()
        && match Store::verify_file(&db, Depth::Full) {
            Ok(_) => {
                report(true, "database integrity ok (integrity_check)".into());
                true
            }
            Err(e) => {
                report(false, e.to_string());
                false
            }
        };
    if sound {
        match Store::inspect(&db) {
            Ok(info) => {
                stored_issuer = info.issuer.clone();
                match info.schema_version {
                    v if v > SCHEMA_VERSION => report(
                        false,
                        format!(
                            "schema version {v} is newer than this latchkey ({SCHEMA_VERSION}): run the newer binary"
                        ),
                    ),
                    v if v < SCHEMA_VERSION => report(
                        true,
                        format!(
                            "schema version {v}: {} migration(s) will be applied at the next start",
                            SCHEMA_VERSION - v
                        ),
                    ),
                    v => report(true, format!("schema version {v} (current)")),
                }
                let now = crate::timefmt::now();
                for alg in ["ES256", "RS256"] {
                    match info
                        .keys
                        .iter()
                        .find(|k| k.alg == alg && k.status == "active")
                    {
                        Some(k) => report(
                            true,
                            format!(
                                "active {alg} key {} ({} days old)",
                                k.kid,
                                (now - k.created_at) / 86_400
                            ),
                        ),
                        None => report(
                            true,
                            format!("no active {alg} key yet: the next start generates one"),
                        ),
                    }
                }
                let next = info.keys.iter().filter(|k| k.status == "next").count();
                if next > 0 {
                    report(
                        true,
                        format!(
                            "{next} new key(s) published, not yet signing (a rotation is pending)"
                        ),
                    );
                }
                let retiring = info.keys.iter().filter(|k| k.status == "retiring").count();
                if retiring > 0 {
                    report(
                        true,
                        format!("{retiring} previous key(s) still published after a rotation"),
                    );
                }
            }
            Err(e) => report(false, format!("cannot read the database: {e}")),
        }
    }
    // `--issuer` on check is what the server is (or will be) started with: compared against
    // the stored one, which a start with another would refuse.
    if let (Some(given), Some(stored)) = (issuer, stored_issuer.as_deref())
        && let Ok((iss, _)) = crate::config::validate_issuer(given)
        && iss != stored
    {
        report(
            false,
            format!(
                "issuer {iss} (--issuer) differs from the stored issuer {stored}: serve refuses it unless started with --change-issuer, which breaks every app's configuration"
            ),
        );
    }
    let from_store = issuer.is_none() && stored_issuer.is_some();
    let stored = if from_store { "stored " } else { "" };
    match issuer.or(stored_issuer.as_deref()) {
        None => report(
            false,
            "no issuer set (LATCHKEY_ISSUER or --issuer): the default http://<listen> only suits loopback testing".into(),
        ),
        Some(i) => match crate::config::validate_issuer(i) {
            Ok((iss, None)) if iss.starts_with("https://") => {
                report(true, format!("{stored}issuer {iss} (https)"))
            }
            Ok((iss, None)) => report(
                true,
                format!("{stored}issuer {iss} (plain http, loopback only)"),
            ),
            Ok((iss, Some(_))) => report(
                false,
                format!("{stored}issuer {iss} is plain http on a network address: use https"),
            ),
            Err(e) => report(false, e.to_string()),
        },
    }
    lines
}
