//! `Store`: the one owner of SQL. One `Store` wraps one rusqlite connection; every server worker
//! and every CLI command opens its own (readers run in parallel under WAL, writers take
//! `BEGIN IMMEDIATE` and wait on the busy timeout).
//!
//! Writers of one process queue on [`WRITER`] before they ask SQLite for its write lock. SQLite
//! only has one writer at a time anyway, and a writer that finds it taken sleeps in its busy
//! handler for 1, 2, 5, 10 … 100 ms before looking again: under a burst of token rotations that
//! turned a 50 µs commit into tens of milliseconds of waiting. A mutex hands the lock over as
//! soon as it is free; the busy timeout is left for the CLI and other processes.
//!
//! Submodules group the statements by table; each returns typed rows and
//! `Result<Option<T>, StoreError>` for lookups.

pub mod apikeys;
pub mod audit;
mod checkpoint;
mod clients;
pub mod factors;
mod fault;
pub mod grants;
pub mod groups;
mod installation;
mod keys;
pub mod lock;
pub mod mfa;
mod migrations;
pub mod passkeys;
mod revision;
pub mod rules;
pub mod sessions;
mod settings;
pub mod setup_links;
mod tokens;
pub mod users;

#[cfg(test)]
pub(crate) mod conformance;

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use checkpoint::Checkpointer;
pub use clients::{Client, NewClient};
pub use fault::{DbFault, Depth, Fault, corrupt_message};
pub use groups::Group;
pub use keys::{KeyRow, NextOutcome};
pub use migrations::SCHEMA_VERSION;
pub use revision::Revision;
pub use sessions::{SessionRow, UserSession};
pub use users::User;

/// The database file's name inside the data directory.
pub const DB_FILE: &str = "latchkey.db";

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long no write may have failed before a working probe clears a write failure.
pub const WRITES_QUIET: Duration = Duration::from_secs(3);

/// The write lock of this process's connections (see the module documentation).
static WRITER: Mutex<()> = Mutex::new(());

/// Holds [`WRITER`]; a panic while it was held leaves nothing to repair (SQLite rolled back).
fn writer() -> MutexGuard<'static, ()> {
    WRITER.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the store can fail with. `Sqlite` keeps the cause for the log; endpoints turn every
/// store error into `server_error` without showing it.
#[derive(Debug)]
pub enum StoreError {
    /// A row that must exist does not.
    NotFound,
    /// A unique value (a name, an id) is already taken.
    Conflict(String),
    /// The database was written by a newer latchkey; it is left untouched.
    TooNew { found: i64, supported: i64 },
    /// Preparing the data directory or database file failed.
    Io(String, std::io::Error),
    /// SQLite itself failed.
    Sqlite(rusqlite::Error),
    /// The database file or its filesystem failed (corrupt, read-only, full, locked,
    /// permission denied): the message says what to do.
    Fault(DbFault),
    /// A file offered as a latchkey database is not one this binary can run.
    Unfit(String),
    /// A stored value could not be decoded (the file was edited by hand or is damaged).
    Corrupt(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotFound => f.write_str("not found"),
            StoreError::Conflict(what) => write!(f, "{what} already exists"),
            StoreError::TooNew { found, supported } => write!(
                f,
                "the database has schema version {found}, but this latchkey only knows versions up \
                 to {supported}: it was written by a newer latchkey. Run that version, or restore \
                 a backup made for this one. The file was not changed."
            ),
            StoreError::Io(what, e) => write!(f, "{what}: {e}"),
            StoreError::Sqlite(e) => write!(f, "{e}"),
            StoreError::Fault(fault) => write!(f, "{fault}"),
            StoreError::Unfit(why) => f.write_str(why),
            StoreError::Corrupt(what) => write!(f, "stored data is damaged: {what}"),
        }
    }
}

/// No `source`: every message already says its cause, and the CLI prints the chain.
impl std::error::Error for StoreError {}

impl StoreError {
    /// The fault of the database file, if that is what this is.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            StoreError::Fault(f) => Some(f.kind),
            _ => None,
        }
    }

    /// The same error, naming the database file `path` if it is a fault that named none.
    fn at(self, path: &Path) -> StoreError {
        match self {
            StoreError::Fault(f) => StoreError::Fault(f.at(path)),
            other => other,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        fault::classify(e, None)
    }
}

/// What `latchkey check` reads from a database.
pub struct Inspection {
    pub schema_version: i64,
    pub keys: Vec<KeySummary>,
    /// The issuer stored by an earlier `serve --issuer`.
    pub issuer: Option<String>,
}

/// A signing key without its private part.
pub struct KeySummary {
    pub kid: String,
    pub alg: String,
    pub status: String,
    pub created_at: i64,
}

/// A connection to latchkey's database.
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    /// Where this store's writes go, when the process shares one writing connection.
    writer: Option<SharedWriter>,
    /// Parsed clients (see `Store::client`).
    clients: std::cell::RefCell<clients::ClientCache>,
}

/// The WAL after a checkpoint: frames in it, and how many of them are now in the main file
/// (both -1 when the database is not in WAL mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalProgress {
    pub frames: i64,
    pub copied: i64,
}

/// One connection that all of a server's stores write through. Writers queue for it (behind
/// [`WRITER`]) and, because nobody else in the process writes, its page cache stays warm: a
/// connection that sees another connection's commit must drop its cached pages and read them
/// again, which was the largest single cost of a refresh-token rotation when every worker
/// wrote on its own connection.
#[derive(Clone)]
pub struct SharedWriter {
    conn: Arc<Mutex<Connection>>,
    health: Arc<Mutex<WriteHealth>>,
}

/// The last write through a [`SharedWriter`] that failed because the database could not be
/// written (disk full, read-only, corrupt, I/O error), until a probe write works again.
#[derive(Default)]
struct WriteHealth {
    failure: Option<(std::time::Instant, String)>,
}

impl SharedWriter {
    /// Opens the writing connection (relaxed durability: it carries the server's writes).
    pub fn open(path: &Path) -> Result<SharedWriter, StoreError> {
        let store = Store::open_file(path)?;
        store.relax_durability()?;
        store.conn.execute_batch("PRAGMA cache_size = -4096;")?;
        Ok(SharedWriter {
            conn: Arc::new(Mutex::new(store.conn)),
            health: Arc::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn health(&self) -> MutexGuard<'_, WriteHealth> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failed write if it failed because the database cannot be written.
    fn record(&self, e: &StoreError) {
        if let StoreError::Fault(f) = e
            && f.kind.stops_writes()
        {
            self.health().failure = Some((std::time::Instant::now(), f.to_string()));
        }
    }
}

/// Creates the data directory (mode 0700, parents as needed) if it is missing.
pub fn create_data_dir(dir: &Path) -> Result<(), StoreError> {
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}", dir.display()), e))?;
        // `recursive` applies the mode to the last component only through the umask; set
        // it explicitly.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::Io(format!("cannot chmod {}", dir.display()), e))?;
    }
    Ok(())
}

impl Store {
    /// Creates the data directory (mode 0700) and the database file (mode 0600) when missing,
    /// opens it in WAL mode and applies pending migrations. A database from a newer latchkey is
    /// refused before anything is written.
    pub fn open_data_dir(dir: &Path) -> Result<Store, StoreError> {
        create_data_dir(dir)?;
        let path = dir.join(DB_FILE);
        if !path.exists() {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .or_else(|e| {
                    // Another process may have created it between the check and the open.
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        OpenOptions::new().read(true).open(&path)
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| StoreError::Io(format!("cannot create {}", path.display()), e))?;
        }
        Self::open_file(&path)
    }

    /// Opens (and migrates) an existing database file.
    pub fn open_file(path: &Path) -> Result<Store, StoreError> {
        Self::open_file_unnamed(path).map_err(|e| e.at(path))
    }

    fn open_file_unnamed(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )?;
        let mut store = Store {
            conn,
            path: Some(path.to_path_buf()),
            writer: None,
            clients: Default::default(),
        };
        store.configure(true)?;
        migrations::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        let mut store = Store {
            conn,
            path: None,
            writer: None,
            clients: Default::default(),
        };
        store.configure(false)?;
        migrations::migrate(&mut store.conn)?;
        Ok(store)
    }

    fn configure(&mut self, wal: bool) -> Result<(), StoreError> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // The version check comes before anything that could write (journal_mode=WAL writes
        // the header), so a newer database is left byte-for-byte untouched.
        migrations::check_version(&self.conn)?;
        if wal {
            let mode: String = self
                .conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Corrupt(format!(
                    "cannot switch the database to WAL mode (got {mode})"
                )));
            }
        }
        // Durable by default: a commit is on disk (the WAL fsynced) before it returns. The
        // server's workers relax this for their own writes (`relax_durability`).
        self.conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             PRAGMA synchronous = FULL;",
        )?;
        self.conn.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    /// Commits of this connection no longer wait for an fsync (`synchronous = NORMAL` in WAL
    /// mode): they survive a crash of the process, and a power cut may lose the last ones. The
    /// server's request workers use this for what they write — sessions, codes, refresh-token
    /// rotations, revocations — while administrative changes, made by the CLI, and the
    /// signing keys the server generates on first start stay fully durable. The next fsync
    /// (a CLI commit, a checkpoint) makes everything before it durable too.
    pub fn relax_durability(&self) -> Result<(), StoreError> {
        self.conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        Ok(())
    }

    /// Sends this store's writes (transactions and single statements) through `writer`; reads
    /// stay on its own connection.
    pub fn write_through(&mut self, writer: SharedWriter) {
        self.writer = Some(writer);
    }

    /// The value of `PRAGMA synchronous` (1 = NORMAL, 2 = FULL).
    pub fn synchronous(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    }

    /// The database file, if on disk.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Why writes through this store's shared writer fail, if the last one that failed for a
    /// reason of the database file (disk full, read-only, corrupt) has not been followed by a
    /// [`Store::probe_write`] that worked (for `/healthz`).
    pub fn write_failure(&self) -> Option<String> {
        let w = self.writer.as_ref()?;
        w.health().failure.as_ref().map(|(_, why)| why.clone())
    }

    /// Writes one row back unchanged through the shared writer, which appends to the WAL like
    /// any change: the maintenance thread's test that the database can still be written. A
    /// success clears the recorded failure once no write has failed for [`WRITES_QUIET`]: a
    /// one-page probe can fit where a real change does not (in WAL space a failed write
    /// allocated before it ran out), so it alone does not prove the disk has room again.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        let result = self
            .exec("UPDATE revisions SET rev = rev WHERE name = 'settings'", [])
            .map_err(StoreError::from);
        if let Some(w) = &self.writer {
            match &result {
                Ok(_) => {
                    let mut health = w.health();
                    if health
                        .failure
                        .as_ref()
                        .is_some_and(|(at, _)| at.elapsed() >= WRITES_QUIET)
                    {
                        health.failure = None;
                    }
                }
                Err(e) => w.record(e),
            }
        }
        result.map(|_| ())
    }

    /// Checks the database file at `path` read-only (`quick_check` or `integrity_check`):
    /// a damaged file is a corrupt [`StoreError::Fault`]. Returns its schema version.
    pub fn verify_file(path: &Path, depth: Depth) -> Result<i64, StoreError> {
        fault::verify_file(path, depth)
    }

    /// Checks that `path` is a latchkey database this binary can run (for `restore`): the
    /// full integrity check, a schema version it knows and the tables of that version.
    pub fn verify_latchkey_file(path: &Path) -> Result<i64, StoreError> {
        fault::verify_latchkey_file(path)
    }

    /// Proves the database answers a query (for `/healthz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        let one: i64 = self
            .conn
            .prepare_cached("SELECT 1")?
            .query_row([], |r| r.get(0))?;
        if one == 1 {
            Ok(())
        } else {
            Err(StoreError::Corrupt("SELECT 1 did not return 1".into()))
        }
    }

    /// The change counters of the tables a running server caches ([`Revision`]), sorted by
    /// name. Two equal readings mean nothing cached changed in between. A row this latchkey
    /// does not know (a newer one wrote it) is left out: nothing here caches its table.
    pub fn revisions(&self) -> Result<Vec<(Revision, i64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, rev FROM revisions ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (name, rev) = row?;
            if let Some(r) = Revision::parse(&name) {
                out.push((r, rev));
            }
        }
        Ok(out)
    }

    /// The change counter of one cached table.
    pub fn revision(&self, which: Revision) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT rev FROM revisions WHERE name = ?1")?
            .query_row([which.as_str()], |r| r.get(0))?)
    }

    /// Reads the schema version and the signing keys (without their private parts) of a
    /// database file opened read-only: nothing is migrated, created or written.
    pub fn inspect(path: &Path) -> Result<Inspection, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let mut keys = Vec::new();
        if schema_version >= 1 {
            let mut stmt = conn.prepare(
                "SELECT kid, alg, status, created_at FROM signing_keys ORDER BY created_at DESC",
            )?;
            keys = stmt
                .query_map([], |r| {
                    Ok(KeySummary {
                        kid: r.get(0)?,
                        alg: r.get(1)?,
                        status: r.get(2)?,
                        created_at: r.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
        }
        let issuer = installation::read_issuer(&conn)?;
        Ok(Inspection {
            schema_version,
            keys,
            issuer,
        })
    }

    /// Writes a consistent copy of the whole database to `path` (`VACUUM INTO`: one read
    /// transaction, so writers carry on while it runs and the copy is one point in time).
    pub fn backup_to(&self, path: &Path) -> Result<(), StoreError> {
        let target = path.to_str().ok_or_else(|| {
            StoreError::Io(
                "the backup path is not UTF-8".into(),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            )
        })?;
        self.conn.execute("VACUUM INTO ?1", [target])?;
        Ok(())
    }

    /// Copies the WAL into the main file and truncates it, so the single file is complete.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Copies what it can of the WAL into the main file, waiting for no reader or writer, and
    /// says how far it got.
    pub fn checkpoint_passive(&self) -> Result<WalProgress, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok(WalProgress {
                    frames: r.get(1)?,
                    copied: r.get(2)?,
                })
            })?)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken before the first
    /// read, so a check and the write that depends on it cannot interleave with another
    /// writer. Returning `Err` (or unwinding) rolls back.
    pub(crate) fn with_tx<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _writer = writer();
        let mut shared;
        let conn = match &self.writer {
            Some(w) => {
                shared = w.lock();
                &mut *shared
            }
            None => &mut self.conn,
        };
        let result: Result<T, StoreError> = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        if let (Err(e), Some(w)) = (&result, &self.writer) {
            w.record(e);
        }
        result
    }

    /// Runs one writing statement on its own (autocommit), queued behind this process's other
    /// writers, with the statement prepared once per connection. Returns the rows changed.
    pub(crate) fn exec<P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
    ) -> rusqlite::Result<usize> {
        let _writer = writer();
        match &self.writer {
            Some(w) => {
                let result = w.lock().prepare_cached(sql)?.execute(params);
                if let Err(e) = &result
                    && fault::fault_of(e).is_some_and(Fault::stops_writes)
                {
                    w.health().failure = Some((std::time::Instant::now(), fault::describe(e)));
                }
                result
            }
            None => self.conn.prepare_cached(sql)?.execute(params),
        }
    }
}

/// Runs one statement inside a transaction, prepared once per connection (the grant flows run
/// the same few statements thousands of times a second; parsing them each time was an eighth of
/// a refresh rotation's CPU).
pub(crate) fn exec_tx<P: rusqlite::Params>(
    tx: &Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// Maps a unique-constraint failure to `Conflict(what)`.
fn conflict(e: rusqlite::Error, what: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(what.to_string())
        }
        _ => StoreError::Sqlite(e),
    }
}
