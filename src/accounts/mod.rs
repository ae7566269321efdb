//! People: the password sign-in ([`authenticate`]), password hashing, browser sessions, CSRF
//! tokens and login throttling.

pub mod csrf;
pub mod login;
pub mod mfa;
pub mod passkey;
pub mod password;
pub mod second_factor;
pub mod session;
pub mod signin;
pub mod throttle;

pub use signin::{Attempt, Outcome, authenticate};

/// The longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// Checks a username for `user add` / `user rename`: 1–64 characters, no whitespace or control
/// characters (it is typed into a login form and shown in headers).
pub fn validate_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_USERNAME_CHARS {
        return Err("a username has 1 to 64 characters".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a username has no spaces or control characters".into());
    }
    Ok(())
}

/// Checks a group name: like a scope token (printable ASCII without spaces, quotes or
/// backslashes), 1–64 characters, so it fits a `groups` claim and a header.
pub fn validate_group(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !crate::oauth::scope::valid_token(name)
        || name.contains(',')
    {
        return Err(format!(
            "group {name:?}: use 1-64 printable ASCII characters without spaces, commas, quotes or backslashes"
        ));
    }
    Ok(())
}
