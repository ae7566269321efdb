//! A page of one's own: `/account` and the pages below it, where a signed-in user manages
//! their profile, password, second factors, sessions and consents, and `/account/setup`, where
//! an invited user (or one whose reset link an admin made) sets up their sign-in.
//!
//! Each page file reads a form, calls the operation, and renders; second factors themselves
//! are in [`crate::accounts::mfa`].

pub mod consents;
pub mod factors;
pub mod passkeys;
pub mod password;
pub mod profile;
pub mod sessions;
pub mod setup;
pub mod totp;
