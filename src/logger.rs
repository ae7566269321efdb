//! A small `log` implementation: one line per record on stderr, as text
//! (`2026-11-29T12:00:00Z INFO target: message`) or as one JSON object per line
//! (`{"ts":…,"level":…,"target":…,"msg":…}`). Level from `LATCHKEY_LOG` (error, warn, info,
//! debug, trace; default info), format from `--log-format` / `LATCHKEY_LOG_FORMAT`.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    level: LevelFilter,
    json: bool,
    /// A CLI command's messages: `latchkey: warning: …`, for a person at a terminal.
    cli: bool,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        if self.cli {
            let kind = if record.level() == Level::Warn {
                "warning"
            } else {
                "error"
            };
            let line = format!("latchkey: {kind}: {}\n", record.args());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            return;
        }
        let ts = crate::timefmt::rfc3339(crate::timefmt::now());
        let line = if self.json {
            let mut l = serde_json::json!({
                "ts": ts,
                "level": level,
                "target": record.target(),
                "msg": record.args().to_string(),
            })
            .to_string();
            l.push('\n');
            l
        } else {
            format!("{ts} {level} {}: {}\n", record.target(), record.args())
        };
        // One write per line, so lines from different threads do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger once; later calls do nothing. `json` selects one JSON object per line.
pub fn init(level: Option<&str>, json: bool) {
    let level = match level.map(str::to_ascii_lowercase).as_deref() {
        Some("off") => LevelFilter::Off,
        Some("error") => LevelFilter::Error,
        Some("warn") => LevelFilter::Warn,
        Some("debug") => LevelFilter::Debug,
        Some("trace") => LevelFilter::Trace,
        _ => LevelFilter::Info,
    };
    if log::set_boxed_logger(Box::new(Logger {
        level,
        json,
        cli: false,
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
}

/// Installs the logger of a CLI command: warnings and errors only, as `latchkey: warning: …`.
pub fn init_cli() {
    let level = LevelFilter::Warn;
    if log::set_boxed_logger(Box::new(Logger {
        level,
        json: false,
        cli: true,
    }))
    .is_ok()
    {
        log::set_max_level(level);
    }
}
