//! The one integration-test crate: every test starts the real `latchkey` binary on
//! 127.0.0.1:0 with a temporary data directory and speaks HTTP to it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod abuse;
mod account;
mod apikeys;
mod backup_restore;
mod browser_e2e;
mod cli;
mod clients;
mod forward_auth;
mod gc_load;
mod http_layer;
mod installation;
mod log_secrets;
mod metrics;
mod mfa_policy;
mod oauth;
mod oidc_flow;
mod operations;
mod packaging;
mod passkeys;
mod passkeys_browser;
mod proxies_e2e;
mod sessions;
mod setup_links;
mod tls;
mod totp;
