//! Checkpoints on a thread of their own.
//!
//! SQLite checkpoints a WAL database from inside a commit: the commit that finds 1000 frames in
//! the WAL copies them into the main file, fsyncs it, and starts the WAL over before it
//! returns. In the server that commit runs on the one writing connection, with every other
//! writer queued behind it, so a refresh-token rotation now and then paid for the pages of the
//! last few hundred (7% of the rotation benchmark's CPU, all of it inside the write lock).
//!
//! Here the writer's commits only wake the checkpointer, every [`Limits::wake_every`] frames,
//! and it copies them on its own connection while the writer goes on (a PASSIVE checkpoint
//! takes no write lock). Under writes that never pause, such a checkpoint never catches up and
//! SQLite can never start the WAL over, so once the WAL holds [`Limits::restart_at`] frames a
//! second pass holds this process's write lock and copies the rest; the next commit then starts
//! the WAL from the beginning. Should the checkpointer be stuck or gone, the writer checkpoints
//! inline again at [`Limits::inline_at`] frames. The WAL file therefore stays near
//! `restart_at` pages (16 MiB) under sustained writes, and far below when writes are few.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{SharedWriter, Store, StoreError};

/// When checkpoints happen, in WAL frames (4 KiB pages).
#[derive(Clone, Copy)]
struct Limits {
    /// Wake the checkpointer after this many new frames (SQLite's own checkpoint interval).
    wake_every: i32,
    /// Copy the rest under the write lock once the WAL holds this many frames.
    restart_at: i32,
    /// Checkpoint inline in the writer from this many frames on.
    inline_at: i32,
}

const LIMITS: Limits = Limits {
    wake_every: 1000,
    restart_at: 4000,
    inline_at: 16_000,
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
        let (tx, rx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || run(&store, &rx, limits))
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

fn run(store: &Store, rx: &Receiver<Msg>, limits: Limits) {
    while let Ok(Msg::Checkpoint(frames)) = rx.recv() {
        if let Err(e) = checkpoint(store, frames >= limits.restart_at) {
            log::warn!("checkpoint failed (the next wake-up retries it): {e}");
        }
    }
}

/// Copies the WAL into the main file beside the writers; with `restart`, then copies what they
/// appended meanwhile while holding the write lock, so that the next commit starts the WAL over.
fn checkpoint(store: &Store, restart: bool) -> Result<(), StoreError> {
    store.checkpoint_passive()?;
    if restart {
        let _writer = super::writer();
        store.checkpoint_passive()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::{DB_FILE, conformance::temp_db};

    fn limits(wake_every: i32, restart_at: i32, inline_at: i32) -> Limits {
        Limits {
            wake_every,
            restart_at,
            inline_at,
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

    fn main_file_pages(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len() / 4096
    }

    #[test]
    fn the_checkpointer_copies_the_wal_that_the_writer_fills() {
        let (path, writer, store) = setup();
        let checkpointer =
            Checkpointer::start_with(&path, &writer, limits(50, 200, i32::MAX)).unwrap();
        write_pages(&store, 60);
        let deadline = Instant::now() + Duration::from_secs(5);
        while main_file_pages(&path) < 60 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Nobody else checkpoints: the writer's own automatic checkpoint is replaced.
        assert!(
            main_file_pages(&path) >= 60,
            "{} pages",
            main_file_pages(&path)
        );
        checkpointer.stop();
    }

    /// Under writes that never pause, the WAL must still start over, or it grows without end
    /// (without the second pass it never did here).
    #[test]
    fn the_wal_stays_bounded_under_continuous_writes() {
        let (path, writer, store) = setup();
        let checkpointer =
            Checkpointer::start_with(&path, &writer, limits(50, 200, i32::MAX)).unwrap();
        // The WAL header's checkpoint sequence number counts the times the WAL started over.
        let restarts = || {
            use std::io::Read;
            let mut header = [0u8; 16];
            std::fs::File::open(path.with_extension("db-wal"))
                .and_then(|mut f| f.read_exact(&mut header))
                .unwrap();
            u32::from_be_bytes([header[12], header[13], header[14], header[15]])
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut written = 0;
        while restarts() == 0 && Instant::now() < deadline {
            write_pages(&store, 100);
            written += 100;
        }
        checkpointer.stop();
        assert!(
            restarts() >= 1,
            "the WAL never started over in {written} commits"
        );
    }

    #[test]
    fn the_writer_checkpoints_itself_when_the_checkpointer_is_gone() {
        let (path, writer, store) = setup();
        Checkpointer::start_with(&path, &writer, limits(50, 200, 100))
            .unwrap()
            .stop();
        write_pages(&store, 120);
        // No waiting: the commit that passed 100 frames copied them before it returned.
        assert!(
            main_file_pages(&path) >= 100,
            "{} pages",
            main_file_pages(&path)
        );
    }
}
