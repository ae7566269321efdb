//! latchkey: one binary and one SQLite file that give a homelab or an intranet an OAuth 2.0
//! authorization server, an OpenID Connect provider, an ES256 JWT issuer and an API-key service.
//!
//! The crate is a library so that integration tests and the benchmark's ceiling binaries can reuse
//! the connection layer; the `latchkey` binary in `main.rs` only calls [`cli::main`].
//!
//! Layout: only [`http`] and [`server`] know about sockets, and the server's runtime (workers,
//! maintenance, reloads) lives in [`server`]; protocol code in [`oauth`], [`oidc`] and [`jwt`]
//! takes typed values and an explicit `now`, and [`jwt`] is handed key material, never the
//! store; [`store`] owns every line of SQL; [`ops`] holds every operation an admin or a user can
//! perform (users, sessions, clients, API keys, rules, keys, settings, backups), audited, and
//! [`cli`] only parses, calls them and prints. `tests/architecture.rs` checks these rules.

// No panics in request paths: a panic is a bug, and the server's catch_unwind is a backstop only.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod account;
pub mod accounts;
pub mod apikeys;
pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod error;
pub mod forward;
pub mod http;
pub mod jwt;
pub mod logger;
pub mod metrics;
pub mod oauth;
pub mod oidc;
pub mod ops;
pub mod server;
pub mod store;
pub mod timefmt;
pub mod ui;
