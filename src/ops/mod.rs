//! The operations layer: one function per operation an admin or a user can perform, taking
//! typed input and an [`Actor`], validating, writing through the store, recording the change
//! in the audit log, and returning a typed result or an [`OpError`]. It prints nothing (only
//! `cli/` prints) and holds no SQL (only `store/` does); the CLI, and later the console and the
//! admin API, call the same functions, so a rule written here holds for every face.
//!
//! Every operation that changes something runs inside [`audited`]: the event names the actor,
//! an action such as `user_added` and its target, and whether the operation succeeded —
//! a refused change is recorded too.
//!
//! # One name per concept
//!
//! CLI flags, JSON fields, SQL columns and human output use the same word for the same thing;
//! where an RFC names it, its name wins. A flag is the singular of a repeatable list
//! (`--grant` adds to `grant_types`).
//!
//! | concept | name | where the name comes from |
//! | --- | --- | --- |
//! | a user's stable id | `sub` (JSON, claims); `id` column of `users` | OIDC Core §2 |
//! | a user's login name | `username` | |
//! | a user's full name | `name` (`--name "FULL NAME"`) | OIDC Core §5.1 |
//! | an app's id, secret | `client_id`, `client_secret` | RFC 6749 §2.3.1 |
//! | an app's display name | `name` | |
//! | what an app may use | `grant_types` (`--grant`) | RFC 7591 §2 |
//! | where codes may go | `redirect_uris` (`--redirect-uri`) | RFC 7591 §2 |
//! | where logout may go | `post_logout_redirect_uris` (`--post-logout-redirect-uri`) | OIDC RP-Initiated Logout §3.1 |
//! | scopes granted or asked | `scope`, one space-separated string | RFC 6749 §3.3 |
//! | scopes allowed (a list) | `scopes`, an array (`--scope`) | |
//! | who may sign in to an app | `allowed_groups` (`--allow-group`) | |
//! | a group | `name`; its stable id `id` (JSON, `groups.id`), what rules and clients store | |
//! | a token's lifetime | `access_token_ttl`, seconds | |
//! | an instant | `<event>_at`, Unix seconds in JSON and SQL, RFC 3339 in human output (`created_at`, `expires_at`, `revoked_at`, `last_used_at`, `last_seen_at`); `*_from`/`*_until` bound an interval and `retire_after` is the earliest instant a key may retire | RFC 7519 uses `exp`/`iat` inside tokens only |
//! | a duration | seconds in JSON, SQL and settings (whose `unit` says so); CLI flags take a number with its unit (`90d`, `12h`, `30m`, `45s`; a bare number is refused) | |
//! | a rate limit | `rate_limit` `{requests, per_seconds}` (`--rate 600/min`) | |
//! | an API key's public part | `id` (`ak_…`) and `prefix` | |
//! | a signing key | `kid`, `alg` | RFC 7517 §4.5, RFC 7518 |

pub mod apikeys;
pub mod clients;
pub mod data;
pub mod groups;
pub mod installation;
pub mod keys;
pub mod rules;
pub mod sessions;
pub mod settings;
pub mod setup;
pub mod users;
pub mod view;

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
            OpError::Store(e @ StoreError::Fault(_)) => {
                write!(f, "{e}")
            }
            OpError::Store(e) => write!(f, "database: {e}"),
            OpError::Crypto(m) => write!(f, "cryptography: {m}"),
        }
    }
}

/// No `source`: the store's message is part of this one's `Display`.
impl std::error::Error for OpError {}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        OpError::Store(e)
    }
}

/// The CLI's view: invalid input, conflicts and something named that does not exist are exit
/// 2, the rest runtime failures (exit 1).
impl From<OpError> for Error {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Invalid(m) | OpError::Conflict(m) => Error::Usage(m),
            OpError::NotFound(m) => Error::NotFound(m),
            OpError::Failed(m) => Error::Msg(m),
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
            Error::NotFound(m) => OpError::NotFound(m),
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
