//! The open-file limit (`RLIMIT_NOFILE`) against `http.max_connections`. Every open connection
//! holds a descriptor; when the process has none left, `accept` fails and a new client waits in
//! the kernel's queue, unanswered, with nothing to say why. So at start the soft limit is
//! raised to the hard one, and when even that cannot hold `http.max_connections` beside what
//! the server keeps open itself (its database connections, three descriptors each, the
//! listeners, the log), the cap is lowered to what fits and a warning gives the numbers. A
//! connection over the cap is then answered 503 at once, as any other over it.
//!
//! The limit is read and set through the `rlimit` crate, which wraps `getrlimit`/`setrlimit`
//! (no `unsafe` here); the descriptors already open are counted in `/proc/self/fd`.

/// Descriptors kept free beyond those open when the cap is worked out: the maintenance
/// thread's database connection (3), the signal pipe (2), the metrics listener and its
/// connections, a backup's files, SQLite's temporary files, and the one `accept` needs to
/// answer a connection over the cap with 503.
const SPARE: u64 = 16;

/// Raises the soft descriptor limit to the hard one. Returns the soft limit in force
/// afterwards, or `None` when it cannot be read.
pub fn raise() -> Option<u64> {
    use rlimit::Resource;
    let (soft, hard) = match rlimit::getrlimit(Resource::NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            log::warn!("cannot read the descriptor limit: {e}");
            return None;
        }
    };
    if soft >= hard {
        return Some(soft);
    }
    match rlimit::setrlimit(Resource::NOFILE, hard, hard) {
        Ok(()) => {
            log::debug!("descriptor limit raised from {soft} to {hard}");
            Some(hard)
        }
        Err(e) => {
            log::warn!("cannot raise the descriptor limit from {soft} to {hard}: {e}");
            Some(soft)
        }
    }
}

/// The connection cap to use: `wanted` (`http.max_connections`) when the descriptor `limit`
/// holds it beside the descriptors open now, else what fits, with a warning.
pub fn cap(wanted: usize, limit: Option<u64>) -> usize {
    let (Some(limit), Some(open)) = (limit, open_descriptors()) else {
        return wanted;
    };
    match fit(limit, open, wanted) {
        None => wanted,
        Some(fits) => {
            let needed = open
                .saturating_add(SPARE)
                .saturating_add(u64::try_from(wanted).unwrap_or(u64::MAX));
            log::warn!(
                "the open-file limit is {limit} ({open} in use, {SPARE} kept spare), too low \
                 for http.max_connections {wanted}: accepting at most {fits} connections (503 \
                 beyond). Raise the hard limit to at least {needed} (LimitNOFILE= in the \
                 systemd unit, ulimit -n) or lower http.max_connections"
            );
            fits
        }
    }
}

/// `None` when `wanted` connections fit in `limit` beside `open` descriptors and [`SPARE`];
/// otherwise the number that fits (at least 1, so the server still answers someone).
fn fit(limit: u64, open: u64, wanted: usize) -> Option<usize> {
    let room = limit.saturating_sub(open.saturating_add(SPARE));
    let wanted_u64 = u64::try_from(wanted).unwrap_or(u64::MAX);
    if room >= wanted_u64 {
        return None;
    }
    Some(usize::try_from(room).unwrap_or(usize::MAX).max(1))
}

/// How many descriptors this process has open (`None` without `/proc`).
fn open_descriptors() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The directory being read holds one descriptor itself.
    Some(
        u64::try_from(entries.count())
            .unwrap_or(u64::MAX)
            .saturating_sub(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_is_kept_when_it_fits_and_lowered_when_it_does_not() {
        assert_eq!(fit(1_048_576, 40, 1024), None);
        assert_eq!(fit(1024 + 40 + SPARE, 40, 1024), None, "exactly enough");
        assert_eq!(fit(1024 + 40 + SPARE - 1, 40, 1024), Some(1023));
        assert_eq!(fit(64, 30, 1024), Some(64 - 30 - SPARE as usize));
        assert_eq!(fit(20, 30, 1024), Some(1), "never below one");
    }

    #[test]
    fn this_process_has_descriptors_open_and_a_limit() {
        assert!(open_descriptors().is_some_and(|n| n >= 3));
        assert!(raise().is_some_and(|soft| soft > 0));
    }
}
