//! One module per grant type, named after its wire value. The shared phases (reading the form,
//! authenticating the client, choosing the grant) belong to `oauth::token`; a grant only does
//! what is particular to it.

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;
pub mod tokens;

#[cfg(test)]
mod tests;
