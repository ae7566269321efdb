//! Checkpoints on a thread of their own.
//!
//! SQLite checkpoints a WAL database from inside a commit: the commit that finds 1000 frames in the
//! WAL copies them into the main file and fsyncs it before it returns, so that the next commit can
//! start the WAL over. In the server that commit runs on the one writing connection, with every
//! other writer queued behind it, so a refresh-token rotation now and then paid for the pages of
//! the last few hundred (7% of the rotation benchmark's CPU, all of it inside the write lock).
//!
//! Here the writer's commits only wake the checkpointer, every [`Limits::wake_every`] frames, and
//! it copies them on its own connection while the writer goes on (a PASSIVE checkpoint takes no
//! write lock). Under writes that never pause, such a checkpoint never catches up and SQLite can
//! never start the WAL over, so once the WAL holds [`Limits::restart_at`] frames a second pass
//! holds this process's write lock and copies the rest; the next commit then starts the WAL from
//! the beginning. The thread also checkpoints when [`Limits::sync_every`] passes without a wake-up,
//! which is what makes the server's unsynced commits durable when they are few. Should the
//! checkpointer be stuck or gone, the writer checkpoints inline again at [`Limits::inline_at`]
//! frames. Under sustained writes the WAL file therefore grows to `restart_at` pages (16 MiB) and
//! what is written during one pass (about 21 MiB in the rotation benchmark), and is reused from the
//! start.
//!
//! A checkpoint fsyncs the WAL only when it copies something, and it cannot copy frames written
//! after the snapshot of a reader that is still open (`latchkey backup` of a large database is
//! one long read). So when a checkpoint leaves frames behind, the checkpointer fsyncs the WAL file
//! itself, at most once per [`Limits::sync_every`]: what the server committed stays on disk
//! within that bound however long a reader holds the WAL.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{SharedWriter, Store, StoreError, WalProgress};

/// When checkpoints happen, in WAL frames (4 KiB pages).
#[derive(Clone, Copy)]
struct Limits {
    /// Wake the checkpointer after this many new frames (SQLite's own checkpoint interval).
    wake_every: i32,
    /// Copy the rest under the write lock once the WAL holds this many frames.
    restart_at: i32,
    /// Checkpoint inline in the writer from this many frames on.
    inline_at: i32,
    /// Also checkpoint when this long passes without a wake-up: the server commits without an
    /// fsync (`synchronous = NORMAL`), so this bounds what a power cut can lose when writes are
    /// few.
    sync_every: Duration,
}

const LIMITS: Limits = Limits {
    wake_every: 1000,
    restart_at: 4000,
    inline_at: 16_000,
    sync_every: Duration::from_secs(2),
};

enum Msg {
    /// The WAL holds this many frames.
    Checkpoint(i32),
    Stop,
}

/// The background checkpointer of one database; [`Checkpointer::stop`] ends it.
pub struct Checkpointer {
    tx: SyncSender<Msg>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    /// Opens a connection of its own to `path`, starts the thread and hooks the writer's
    /// commits to it.
    pub fn start(path: &Path, writer: &SharedWriter) -> Result<Checkpointer, StoreError> {
        Checkpointer::start_with(path, writer, LIMITS)
    }

    fn start_with(
        path: &Path,
        writer: &SharedWriter,
        limits: Limits,
    ) -> Result<Checkpointer, StoreError> {
        let store = Store::open_file(path)?;
        let mut sync = WalSync::new(path, limits.sync_every);
        let (tx, rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || run(&store, &mut sync, &rx, limits))
            .map_err(|e| StoreError::Io("cannot start the checkpoint thread".into(), e))?;
        let wake = tx.clone();
        // The WAL's size when the checkpointer was last woken.
        let mut woken_at = 0;
        writer
            .lock()
            .wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, frames: i32| {
                if frames < woken_at {
                    woken_at = 0; // the WAL started over
                }
                if frames >= limits.inline_at {
                    if let Err(e) = wal.checkpoint() {
                        log::warn!("checkpoint in the writer failed: {e}");
                    }
                } else if frames - woken_at >= limits.wake_every {
                    // If a wake-up is still pending, the checkpoint it starts covers these
                    // frames too.
                    if wake.try_send(Msg::Checkpoint(frames)).is_ok() {
                        woken_at = frames;
                    }
                }
                // An error here would fail a commit that has already happened.
                Ok(())
            }))?;
        Ok(Checkpointer { tx, thread })
    }

    /// Ends the thread after the checkpoint it may be running.
    pub fn stop(self) {
        let _ = self.tx.send(Msg::Stop);
        let _ = self.thread.join();
    }
}

fn run(store: &Store, sync: &mut WalSync, rx: &Receiver<Msg>, limits: Limits) {
    let mut failing = false;
    loop {
        let result = match rx.recv_timeout(limits.sync_every) {
            Ok(Msg::Checkpoint(frames)) => checkpoint(store, frames >= limits.restart_at),
            // Cheap when nothing was written: no copy and no fsync.
            Err(RecvTimeoutError::Timeout) => checkpoint(store, false),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
        };
        let result = result.and_then(|progress| {
            sync.after(progress)
                .map_err(|e| StoreError::Io("cannot fsync the WAL".into(), e))
        });
        match result {
            Ok(_) => failing = false,
            // Logged once, not every two seconds while it lasts (a full disk, say).
            Err(e) if !failing => {
                failing = true;
                log::warn!("checkpoint failed, will retry: {e}");
            }
            Err(e) => log::debug!("checkpoint failed again: {e}"),
        }
    }
}

/// Copies the WAL into the main file beside the writers; with `restart`, then copies what they
/// appended meanwhile while holding the write lock, so that the next commit starts the WAL over.
fn checkpoint(store: &Store, restart: bool) -> Result<WalProgress, StoreError> {
    let progress = store.checkpoint_passive()?;
    if restart {
        let _writer = super::writer();
        return store.checkpoint_passive();
    }
    Ok(progress)
}

/// Keeps the WAL on disk when checkpoints cannot (see the module documentation).
struct WalSync {
    wal: PathBuf,
    every: Duration,
    /// When the WAL was last known to be on disk.
    synced_at: Instant,
}

impl WalSync {
    fn new(db: &Path, every: Duration) -> WalSync {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        WalSync {
            wal: wal.into(),
            every,
            synced_at: Instant::now(),
        }
    }

    /// Called after each checkpoint; fsyncs the WAL file if the checkpoint left frames behind
    /// and `every` has passed since the WAL was last known to be on disk. Returns whether it
    /// did. (An fsync with nothing new to write costs next to nothing.)
    fn after(&mut self, progress: WalProgress) -> std::io::Result<bool> {
        // Everything copied: SQLite fsynced the WAL before copying it (or it is empty).
        if progress.copied >= progress.frames {
            self.synced_at = Instant::now();
            return Ok(false);
        }
        if self.synced_at.elapsed() < self.every {
            return Ok(false);
        }
        match std::fs::File::open(&self.wal) {
            Ok(f) => f.sync_data()?,
            // No WAL file, nothing to keep.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        self.synced_at = Instant::now();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::{DB_FILE, conformance::temp_db};

    fn limits(wake_every: i32, restart_at: i32, inline_at: i32) -> Limits {
        Limits {
            wake_every,
            restart_at,
            inline_at,
            sync_every: Duration::from_secs(3600),
        }
    }

    /// A server-like setup: a migrated database, its writer, and a store writing through it.
    fn setup() -> (std::path::PathBuf, SharedWriter, Store) {
        let dir = temp_db();
        drop(Store::open_data_dir(&dir).unwrap());
        let path = dir.join(DB_FILE);
        let writer = SharedWriter::open(&path).unwrap();
        let mut store = Store::open_file(&path).unwrap();
        store.write_through(writer.clone());
        store.exec("CREATE TABLE t (b BLOB)", []).unwrap();
        (path, writer, store)
    }

    /// `n` commits of one 4000-byte row each: at least `n` WAL frames.
    fn write_pages(store: &Store, n: usize) {
        for _ in 0..n {
            store
                .exec("INSERT INTO t VALUES (zeroblob(4000))", [])
                .unwrap();
        }
    }

    fn read_start<const N: usize>(path: &Path) -> [u8; N] {
        let mut buf = [0u8; N];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut buf))
            .unwrap();
        buf
    }

    /// (frames in the WAL, frames copied into the main file), from the shared-memory index
    /// (SQLite's file format: mxFrame at byte 16, nBackfill at byte 96, native byte order).
    fn wal_state(path: &Path) -> (u32, u32) {
        let shm: [u8; 100] = read_start(&path.with_extension("db-shm"));
        let at = |i: usize| u32::from_ne_bytes([shm[i], shm[i + 1], shm[i + 2], shm[i + 3]]);
        (at(16), at(96))
    }

    /// How often the WAL started over: its header's checkpoint sequence number (byte 12).
    fn restarts(path: &Path) -> u32 {
        let header: [u8; 16] = read_start(&path.with_extension("db-wal"));
        u32::from_be_bytes([header[12], header[13], header[14], header[15]])
    }

    /// Waits up to 5 s for `done(frames in the WAL, frames copied)`; returns the last state.
    fn wait_for(path: &Path, done: impl Fn(u32, u32) -> bool) -> (u32, u32) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (frames, copied) = wal_state(path);
            if done(frames, copied) || Instant::now() >= deadline {
                return (frames, copied);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_checkpointer_copies_the_wal_that_the_writer_fills() {
        let (path, writer, store) = setup();
        let checkpointer =
            Checkpointer::start_with(&path, &writer, limits(50, 200, i32::MAX)).unwrap();
        write_pages(&store, 60);
        // Woken at 50 frames and each 50 after, it copies at least those. Nobody else
        // checkpoints: the writer's own automatic checkpoint is replaced.
        let (frames, copied) = wait_for(&path, |_, copied| copied >= 50);
        assert!(copied >= 50, "{copied} of {frames} frames copied");
        checkpointer.stop();
    }

    /// A few writes, far from any frame limit, still reach the main file (and its fsync).
    #[test]
    fn the_checkpointer_also_runs_on_a_timer() {
        let (path, writer, store) = setup();
        let mut timed = limits(i32::MAX, i32::MAX, i32::MAX);
        timed.sync_every = Duration::from_millis(20);
        let checkpointer = Checkpointer::start_with(&path, &writer, timed).unwrap();
        write_pages(&store, 5);
        let (frames, copied) = wait_for(&path, |frames, copied| frames >= 5 && copied == frames);
        assert!(
            frames >= 5 && copied == frames,
            "{copied} of {frames} frames copied"
        );
        checkpointer.stop();
    }

    /// Under writes that never pause, the WAL must still start over, or it grows without end
    /// (without the second pass it never did here).
    #[test]
    fn the_wal_starts_over_under_continuous_writes() {
        let (path, writer, store) = setup();
        let checkpointer =
            Checkpointer::start_with(&path, &writer, limits(50, 200, i32::MAX)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut written = 0;
        while restarts(&path) == 0 && Instant::now() < deadline {
            write_pages(&store, 100);
            written += 100;
        }
        checkpointer.stop();
        assert!(
            restarts(&path) >= 1,
            "the WAL never started over in {written} commits"
        );
    }

    /// A reader holding an old snapshot keeps checkpoints from copying — and so from fsyncing —
    /// what was written after it; the WAL is then fsynced directly.
    #[test]
    fn a_wal_that_a_reader_holds_is_still_fsynced() {
        let (path, _writer, store) = setup();
        let checkpointer = Store::open_file(&path).unwrap();
        let mut sync = WalSync::new(&path, Duration::ZERO);
        write_pages(&store, 5);
        let reader = rusqlite::Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let rows: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 5);
        write_pages(&store, 5);

        let held = checkpoint(&checkpointer, false).unwrap();
        assert!(held.copied < held.frames, "{held:?}");
        assert!(
            sync.after(held).unwrap(),
            "frames left behind must be fsynced"
        );

        // Once the reader is gone the checkpoint copies everything, fsyncing on its own.
        reader.execute_batch("COMMIT").unwrap();
        let done = checkpoint(&checkpointer, false).unwrap();
        assert_eq!(done.copied, done.frames);
        assert!(!sync.after(done).unwrap());
    }

    /// The fsyncs it adds are at most one per `sync_every`.
    #[test]
    fn direct_wal_fsyncs_wait_for_the_interval() {
        let (path, _writer, _store) = setup();
        let mut sync = WalSync::new(&path, Duration::from_secs(3600));
        let held = WalProgress {
            frames: 10,
            copied: 5,
        };
        assert!(!sync.after(held).unwrap(), "an hour has not passed");
        sync.every = Duration::ZERO;
        assert!(sync.after(held).unwrap());
    }

    #[test]
    fn the_writer_checkpoints_itself_when_the_checkpointer_is_gone() {
        let (path, writer, store) = setup();
        Checkpointer::start_with(&path, &writer, limits(50, 200, 100))
            .unwrap()
            .stop();
        write_pages(&store, 120);
        // A commit that passed 100 frames copied them all before it returned, so the next one
        // started the WAL over (without it, it never would here).
        assert!(restarts(&path) >= 1);
    }
}
