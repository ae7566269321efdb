//! OAuth 2.0: the token endpoint and its grants, introspection and revocation.

pub mod access_token;
pub mod authorize;
pub mod client_auth;
pub mod error;
pub mod grants;
pub mod introspect;
pub mod pkce;
pub mod policy;
pub mod redirect_uri;
pub mod revocations;
pub mod revoke;
pub mod scope;
pub mod token;
pub mod verified;

use crate::http::Req;
use crate::http::form::Form;
use error::OAuthError;

/// Reads a back-channel POST body: it must be `application/x-www-form-urlencoded`, properly
/// escaped UTF-8 (RFC 6749 §3.2, Appendix B).
pub fn read_form(req: &Req) -> Result<Form, OAuthError> {
    if req.content_type().as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Form::parse(&req.body)
        .map_err(|_| OAuthError::invalid_request("the body is not valid form-urlencoded UTF-8"))
}
