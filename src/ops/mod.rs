//! The operations layer: one function per operation an admin or a user can perform, taking
//! typed input and an [`Actor`], validating, writing through the store, recording the change
//! in the audit log, and returning a typed result or an [`OpError`]. It prints nothing (only
//! `cli/` prints) and holds no SQL (only `store/` does); the CLI, and later the console and the
//! admin API, call the same functions, so a rule written here holds for every face.
//!
//! Every operation that changes something runs inside [`audited`]: the event names the actor,
//! an action such as `user_added` and its target, and whether the operation succeeded —
//! a refused change is recorded too.

pub mod apikeys;
pub mod clients;
pub mod keys;

use std::fmt;

use crate::error::Error;
use crate::store::audit::AuditEvent;
use crate::store::{Store, StoreError};

/// Who performs an operation, as the audit log names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// `cli:alice` for a command run by the system user alice; later `user:<sub>` or
    /// `apikey:<id>` for the console and the API.
    pub name: String,
    /// The client address, empty when there is none (the CLI).
    pub address: String,
}

impl Actor {
    /// The system user running a CLI command.
    pub fn cli() -> Actor {
        Actor {
            name: crate::audit::cli_actor(),
            address: String::new(),
        }
    }
}

/// Why an operation did not happen. The messages are complete sentences fit to show the
/// person who asked (they never hold a secret); each face maps the kind to its own shape (the
/// CLI to an exit code, the API to a status and problem type).
#[derive(Debug)]
pub enum OpError {
    /// The input breaks a rule; the message says which and how to fix it.
    Invalid(String),
    /// No such user, client, key or rule; the message names what was looked for.
    NotFound(String),
    /// A name or id that must be unique is taken, or the object's state forbids the change.
    Conflict(String),
    /// The database refused or failed.
    Store(StoreError),
    /// A cryptographic primitive failed (it should not).
    Crypto(&'static str),
    /// Anything else the person can act on, stated in full.
    Failed(String),
}

impl OpError {
    /// Maps a store conflict (a unique name or id taken) to [`OpError::Conflict`].
    pub fn taken(e: StoreError) -> OpError {
        match e {
            StoreError::Conflict(what) => OpError::Conflict(format!("{what} already exists")),
            other => OpError::Store(other),
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpError::Invalid(m)
            | OpError::NotFound(m)
            | OpError::Conflict(m)
            | OpError::Failed(m) => f.write_str(m),
            OpError::Store(e) => write!(f, "database: {e}"),
            OpError::Crypto(m) => write!(f, "cryptography: {m}"),
        }
    }
}

impl std::error::Error for OpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

/// The CLI's view: invalid input and conflicts are usage errors (exit 2), the rest runtime
/// failures (exit 1), as before the operations layer existed.
impl From<OpError> for Error {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid(m) | OpError::Conflict(m) => Error::Usage(m),
            OpError::NotFound(m) | OpError::Failed(m) => Error::Msg(m),
            OpError::Store(e) => Error::Store(e),
            OpError::Crypto(m) => Error::Crypto(m),
        }
    }
}

/// Lets operations call helpers that still return the start-up [`Error`] (password hashing,
/// random bytes, settings parsing) with `?`.
impl From<Error> for OpError {
    fn from(e: Error) -> Self {
        match e {
            Error::Usage(m) => OpError::Invalid(m),
            Error::Msg(m) => OpError::Failed(m),
            Error::Store(e) => OpError::Store(e),
            Error::Crypto(m) => OpError::Crypto(m),
            Error::Io { context, source } => OpError::Failed(format!("{context}: {source}")),
        }
    }
}

/// Runs a change and records it in the audit log with its outcome (`ok` or `failed`), whether
/// it succeeded or was refused. A failure to write the audit log is logged and does not undo
/// the change (the CLI sends warnings and errors of the log to standard error).
pub fn audited<T>(
    store: &mut Store,
    actor: &Actor,
    action: &'static str,
    target: &str,
    f: impl FnOnce(&mut Store) -> Result<T, OpError>,
) -> Result<T, OpError> {
    let result = f(store);
    let event = AuditEvent {
        time: crate::timefmt::now(),
        actor: actor.name.clone(),
        action: action.into(),
        target: target.into(),
        outcome: if result.is_ok() { "ok" } else { "failed" }.into(),
        address: actor.address.clone(),
        count: 1,
    };
    if let Err(e) = store.append_audit(&[event]) {
        log::error!("could not write the audit log ({action} {target}): {e}");
    }
    result
}

/// The rule for the display names of clients, API keys and their owners: 1 to 100 characters,
/// not only spaces, no control characters. `what` names the field in the message.
pub fn validate_name(what: &str, name: &str) -> Result<(), OpError> {
    if name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(OpError::Invalid(format!(
            "the {what} must be 1-100 printable characters"
        )));
    }
    Ok(())
}
