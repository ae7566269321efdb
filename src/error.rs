//! The error type of start-up and the CLI. Never sent over HTTP: endpoints use
//! [`crate::oauth::error::OAuthError`], which keeps causes out of responses.

use std::fmt;

use crate::store::StoreError;

/// What can stop a command or the server from starting.
#[derive(Debug)]
pub enum Error {
    /// The command line was well-formed for the parser but asks for something invalid
    /// (exit code 2, like a parse error).
    Usage(String),
    /// An operating-system call failed; `context` says what latchkey was doing.
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The database refused or failed.
    Store(StoreError),
    /// A cryptographic primitive failed (it should not).
    Crypto(&'static str),
    /// The user, client, key, rule or group named does not exist (exit code 2, like a usage
    /// error: the command named something that is not there).
    NotFound(String),
    /// Anything else a user can act on, stated in full.
    Msg(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code: 2 for usage errors and for something named that does not
    /// exist, 1 for an operation that failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::NotFound(_) => 2,
            _ => 1,
        }
    }

    /// A stable name of the kind, for `{"error": {"code": …}}` under `--json`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::NotFound(_) => "not_found",
            Error::Io { .. } => "io",
            Error::Store(StoreError::Conflict(_)) => "conflict",
            Error::Store(StoreError::Fault(_)) => "database_fault",
            Error::Store(_) => "database",
            Error::Crypto(_) => "crypto",
            Error::Msg(_) => "failed",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::NotFound(m) | Error::Msg(m) => f.write_str(m),
            Error::Io { context, .. } => f.write_str(context),
            // A fault's sentence names the database itself.
            Error::Store(e @ StoreError::Fault(_)) => write!(f, "{e}"),
            Error::Store(e) => write!(f, "database: {e}"),
            Error::Crypto(m) => write!(f, "cryptography: {m}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            // The store's message is part of this one's `Display` already.
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}
