//! The one vocabulary of OAuth and OIDC errors latchkey sends ([`ErrorCode`]), and the
//! renderings they take:
//!
//! - token-endpoint JSON (RFC 6749 §5.2, RFC 7009 §2.2.1, RFC 7662): [`OAuthError::into_resp`],
//!   `{"error", "error_description"}`, with `WWW-Authenticate: Basic` for `invalid_client`;
//! - the authorization redirect (RFC 6749 §4.1.2.1, with `iss` of RFC 9207):
//!   [`ErrorCode::redirect_params`], sent by `oauth::authorize` once the redirect URI is trusted;
//! - the error page, when the redirect URI cannot be trusted (`oauth::authorize`, always 400);
//! - the bearer challenge of a protected resource (RFC 6750 §3): [`bearer_challenge`], and
//!   [`credentials_required`] when no credentials were sent (§3.1: no error at all).
//!
//! The client sees the code and a short, fixed description; the cause of a `server_error` goes
//! to the log only. Call sites name a code; no other module spells one. Errors of HTTP itself
//! (a malformed request, a body too large) are not OAuth errors: see `http::Rejection`.

use std::borrow::Cow;

use crate::http::Resp;
use crate::http::form::Duplicate;
use crate::store::StoreError;

/// Every error code latchkey sends: RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6,
/// RFC 6750 §3.1, and latchkey's own `rate_limited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AccessDenied,
    UnsupportedResponseType,
    LoginRequired,
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    RegistrationNotSupported,
    InvalidToken,
    InsufficientScope,
    ServerError,
    TemporarilyUnavailable,
    /// Not an OAuth code: an API key's rate limit is spent (429 with `Retry-After`).
    RateLimited,
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
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::RegistrationNotSupported => "registration_not_supported",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::RateLimited => "rate_limited",
        }
    }

    /// The HTTP status when the code is the response itself (JSON or a bearer challenge):
    /// 401 for `invalid_client` (RFC 6749 §5.2) and `invalid_token`, 403 for
    /// `insufficient_scope` (RFC 6750 §3.1), 429 for `rate_limited`, 500 and 503 for server
    /// trouble, 400 for the rest. A redirect is a 303 and an error page a 400 whatever the code.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }

    /// The error parameters of an authorization response (RFC 6749 §4.1.2.1); the caller adds
    /// `state` and `iss`.
    pub const fn redirect_params(
        self,
        description: &'static str,
    ) -> [(&'static str, &'static str); 2] {
        [("error", self.as_str()), ("error_description", description)]
    }

    /// The JSON body `{"error", "error_description"}` with this code's status and
    /// `Cache-Control: no-store` (for responses that are neither a token-endpoint error nor a
    /// challenge, e.g. a handler that panicked).
    pub fn json(self, description: &str) -> Resp {
        Resp::json_error(self.status(), self.as_str(), description).no_store()
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
        let resp = self.code.json(&self.description);
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
        if e.fault().is_some_and(crate::store::Fault::stops_writes) {
            // While the database cannot be written the maintenance thread logs it once a
            // minute; per request it would flood the log.
            log::debug!("server_error: {e}");
            return OAuthError {
                cause: None,
                ..OAuthError::server("")
            };
        }
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

/// An RFC 6750 §3 error of a protected resource: the code's status (400 `invalid_request`, 401
/// `invalid_token`, 403 `insufficient_scope`) with `WWW-Authenticate: Bearer realm="latchkey",
/// error=…, error_description=…` and, when given, `scope`; the same code and description in the
/// JSON body. Only fixed strings reach the header, never request data.
pub fn bearer_challenge(
    code: ErrorCode,
    description: &'static str,
    scope: Option<&'static str>,
) -> Resp {
    let mut v = format!(
        r#"{REALM}, error="{}", error_description="{description}""#,
        code.as_str()
    );
    if let Some(s) = scope {
        v.push_str(&format!(r#", scope="{s}""#));
    }
    code.json(description).with("WWW-Authenticate", v)
}

/// The answer of a protected resource to a request with no credentials (RFC 6750 §3.1): 401
/// with `WWW-Authenticate: Bearer realm="latchkey"` and no error, in the header or the body
/// (an empty JSON object).
pub fn credentials_required() -> Resp {
    Resp::json(401, &serde_json::json!({}))
        .with("WWW-Authenticate", REALM)
        .no_store()
}

/// The realm of every bearer challenge.
const REALM: &str = r#"Bearer realm="latchkey""#;

/// A parameter name for an error description: only the names latchkey itself reads reach
/// here, but keep it to the RFC 6749 error_description charset anyway.
fn safe_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}
