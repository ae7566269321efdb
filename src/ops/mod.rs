//! The operations layer: one function per operation an admin or a user can perform, taking
//! typed input, writing through the store and returning typed results or a typed error. It
//! prints nothing (only `cli/` prints) and holds no SQL (only `store/` does); the CLI, and later
//! the console and the admin API, call the same functions.
//!
//! This is the start of issue 16's operations layer: for now it holds the signing-key
//! operations ([`keys`]), moved out of `jwt/` so that `jwt/` only handles key material.

pub mod keys;
