//! OpenID Connect and RFC 8414 metadata: discovery, the JWKS, ID tokens, UserInfo and logout.

pub mod discovery;
pub mod id_token;
pub mod jwks;
pub mod logout;
pub mod userinfo;
