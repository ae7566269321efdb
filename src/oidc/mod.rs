//! OpenID Connect and RFC 8414 metadata: discovery and the JWKS.

pub mod discovery;
pub mod jwks;
