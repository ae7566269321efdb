//! The lock of a data directory: `latchkey serve` holds an exclusive advisory lock
//! (`flock`, through [`std::fs::File::try_lock`]) on `latchkey.lock` (mode 0600) for as long as
//! it runs, with its PID written in the file. The kernel releases the lock when the process
//! ends, however it ends, so a file left behind by a crashed server is simply taken over; the
//! file itself is never removed (removing it would let two servers lock two different files).
//! CLI commands do not take the lock: they work beside a running server.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "latchkey.lock";

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; its PID as written in the file, if readable.
    Held { path: PathBuf, pid: Option<u32> },
    /// The lock file could not be opened, locked or written.
    Io(String, std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held { path, pid } => {
                let who = match pid {
                    Some(p) => format!("PID {p}"),
                    None => "PID unknown".into(),
                };
                write!(
                    f,
                    "another latchkey serve ({who}) is running on this data directory (it holds {}): \
                     one server per data directory; stop it first",
                    path.display()
                )
            }
            LockError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for LockError {}

/// The held lock; released (and the PID cleared) when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
}

impl DataDirLock {
    /// Takes the lock of `dir` (which must exist), or says who holds it. Never waits.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |what: &str, e| LockError::Io(format!("{what} {}", path.display()), e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io("cannot open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    pid: read_pid(&mut file),
                    path: path.clone(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io("cannot lock", e)),
        }
        // A file left by an older or crashed server may have another mode or a stale PID.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("cannot chmod", e))?;
        file.set_len(0).map_err(|e| io("cannot write", e))?;
        file.rewind().map_err(|e| io("cannot write", e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| io("cannot write", e))?;
        file.sync_all().map_err(|e| io("cannot write", e))?;
        Ok(DataDirLock { file })
    }

    /// The PID of the server holding the lock of `dir`, without taking it: `Ok(None)` when no
    /// process holds it (or there is no lock file), `Ok(Some(None))` when one does but its PID
    /// cannot be read. For commands that need the server stopped.
    pub fn holder(dir: &Path) -> Result<Option<Option<u32>>, std::io::Error> {
        let path = dir.join(LOCK_FILE);
        let mut file = match OpenOptions::new().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            // Released again when `file` is dropped.
            Ok(()) => Ok(None),
            Err(TryLockError::WouldBlock) => Ok(Some(read_pid(&mut file))),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // The lock goes with the file descriptor; the empty file says nobody holds it.
        let _ = self.file.set_len(0);
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_pid_and_released_on_drop() {
        let dir = std::env::temp_dir().join(format!("latchkey-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DataDirLock::acquire(&dir).unwrap();
        let mode = std::fs::metadata(dir.join(LOCK_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        match DataDirLock::acquire(&dir) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        assert_eq!(
            DataDirLock::holder(&dir).unwrap(),
            Some(Some(std::process::id()))
        );
        drop(first);
        assert_eq!(DataDirLock::holder(&dir).unwrap(), None);
        let again = DataDirLock::acquire(&dir).unwrap();
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
