//! OAuth errors as values (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 6750 §3.1), mapped to HTTP in
//! one place: [`OAuthError::into_resp`]. The client sees the RFC code and a short, fixed
//! description; the cause of a `server_error` goes to the log only.

use std::borrow::Cow;

use crate::http::Resp;
use crate::http::form::Duplicate;
use crate::store::StoreError;

/// Error codes of RFC 6749 §5.2 and related specifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The wire value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The HTTP status: 401 for `invalid_client` (with a challenge, see `into_resp`), 500 and
    /// 503 for server trouble, 400 for the rest (RFC 6749 §5.2).
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient => 401,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

/// An OAuth error response in the making.
#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    /// Short, lower-case, safe to show; never built from request data.
    pub description: Cow<'static, str>,
    /// Logged, never sent.
    cause: Option<String>,
}

impl OAuthError {
    /// An error with a fixed description.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> OAuthError {
        OAuthError {
            code,
            description: description.into(),
            cause: None,
        }
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> OAuthError {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> OAuthError {
        Self::new(ErrorCode::InvalidClient, d)
    }

    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> OAuthError {
        Self::new(ErrorCode::InvalidGrant, d)
    }

    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> OAuthError {
        Self::new(ErrorCode::InvalidScope, d)
    }

    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> OAuthError {
        Self::new(ErrorCode::UnauthorizedClient, d)
    }

    /// A `server_error` whose cause is logged and not shown.
    pub fn server(cause: impl std::fmt::Display) -> OAuthError {
        OAuthError {
            code: ErrorCode::ServerError,
            description: Cow::Borrowed("internal error"),
            cause: Some(cause.to_string()),
        }
    }

    /// The JSON response: `{"error", "error_description"}` with `Cache-Control: no-store` and
    /// `Pragma: no-cache`. `invalid_client` is a 401 and, as every 401 must (RFC 9110
    /// §11.6.1; RFC 6749 §5.2 for Basic), names the scheme to use.
    pub fn into_resp(self) -> Resp {
        if let Some(cause) = &self.cause {
            log::error!("server_error: {cause}");
        }
        let resp =
            Resp::json_error(self.code.status(), self.code.as_str(), &self.description).no_store();
        if self.code == ErrorCode::InvalidClient {
            resp.with("WWW-Authenticate", r#"Basic realm="latchkey""#)
        } else {
            resp
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        crate::metrics::METRICS.db_error();
        OAuthError::server(e)
    }
}

impl From<crate::error::Error> for OAuthError {
    fn from(e: crate::error::Error) -> Self {
        OAuthError::server(e)
    }
}

impl From<Duplicate> for OAuthError {
    /// RFC 6749 §3.1/§3.2: parameters "MUST NOT be included more than once".
    fn from(d: Duplicate) -> Self {
        OAuthError::invalid_request(format!("parameter {} is repeated", safe_name(&d.0)))
    }
}

/// An RFC 6750 §3 response of a protected resource: 401/400/403 with
/// `WWW-Authenticate: Bearer realm="latchkey"` and, when there is one, `error`,
/// `error_description` and `scope`. Only fixed strings reach the header, never request data.
/// With no error (no credentials sent) the challenge carries no error code (§3.1).
pub fn bearer_challenge(
    status: u16,
    error: Option<(&'static str, &'static str)>,
    scope: Option<&'static str>,
) -> Resp {
    let mut v = String::from(r#"Bearer realm="latchkey""#);
    if let Some((code, description)) = error {
        v.push_str(&format!(
            r#", error="{code}", error_description="{description}""#
        ));
    }
    if let Some(s) = scope {
        v.push_str(&format!(r#", scope="{s}""#));
    }
    let (code, description) = error.unwrap_or(("invalid_token", "no credentials were sent"));
    Resp::json_error(status, code, description)
        .with("WWW-Authenticate", v)
        .no_store()
}

/// A parameter name for an error description: only the names latchkey itself reads reach
/// here, but keep it to the RFC 6749 error_description charset anyway.
fn safe_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}
