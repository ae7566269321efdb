//! One module per grant type, named after its wire value. The shared phases (reading the form,
//! authenticating the client, choosing the grant) belong to `oauth::token`; a grant only does
//! what is particular to it.

pub mod client_credentials;
