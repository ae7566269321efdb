//! Requests refused by the HTTP layer before any endpoint sees them: a malformed request, a head
//! or body too large, a timeout, an expectation or framing latchkey does not accept, too many
//! connections. They are not OAuth errors and borrow no OAuth code: the answer is an RFC 9457
//! problem, `application/problem+json`, `{"type":"about:blank","title":…,"status":…,"detail":…}`
//! (with `about:blank` the title is the status's reason phrase, §4.2.1), and the connection
//! closes.

use std::borrow::Cow;

use super::Resp;

/// Why the HTTP layer refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The request line or a header field cannot be parsed (RFC 9112 §2.2).
    Malformed,
    /// The request target is neither origin-form nor absolute-form, or carries a fragment.
    MalformedTarget,
    /// An HTTP/1.1 request without exactly one `Host` (RFC 9112 §3.2).
    HostCount,
    /// The request line and headers exceed the limit.
    HeadTooLarge,
    /// More header fields than latchkey reads.
    TooManyHeaders,
    /// The head did not arrive within the header timeout.
    HeaderTimeout,
    /// The body did not arrive within the body timeout.
    BodyTimeout,
    /// An `Expect` other than one `100-continue` (RFC 9110 §10.1.1).
    UnsupportedExpectation,
    /// Both `Transfer-Encoding` and `Content-Length` (RFC 9112 §6.3, request smuggling).
    TransferEncodingAndLength,
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    TransferEncodingInHttp10,
    /// A transfer coding other than `chunked` before the final `chunked`.
    UnsupportedTransferCoding,
    /// A `Transfer-Encoding` that does not end in `chunked`: the length is unknown.
    UnknownLength,
    /// A `Content-Length` that is not a decimal number.
    InvalidContentLength,
    /// Several `Content-Length` values that differ.
    ConflictingContentLength,
    /// A body over the limit.
    BodyTooLarge,
    /// A chunk size that is not hexadecimal.
    MalformedChunkSize,
    /// Chunked framing broken otherwise.
    MalformedChunkedBody,
    /// Trailer fields over the head limit.
    TrailersTooLarge,
    /// Beyond the connection cap (the whole server's or one address's): 503, `Retry-After: 1`.
    TooManyConnections,
}

impl Rejection {
    /// The HTTP status.
    pub const fn status(self) -> u16 {
        match self {
            Rejection::HeadTooLarge | Rejection::TooManyHeaders | Rejection::TrailersTooLarge => {
                431
            }
            Rejection::HeaderTimeout | Rejection::BodyTimeout => 408,
            Rejection::UnsupportedExpectation => 417,
            Rejection::BodyTooLarge => 413,
            Rejection::UnsupportedTransferCoding => 501,
            Rejection::TooManyConnections => 503,
            _ => 400,
        }
    }

    /// The problem's `detail`: fixed text, never request data.
    pub const fn detail(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed request",
            Rejection::MalformedTarget => "malformed request target",
            Rejection::HostCount => "a request needs exactly one Host header",
            Rejection::HeadTooLarge => "request header fields too large",
            Rejection::TooManyHeaders => "too many header fields",
            Rejection::HeaderTimeout => "request header timeout",
            Rejection::BodyTimeout => "request body timeout",
            Rejection::UnsupportedExpectation => "unsupported expectation",
            Rejection::TransferEncodingAndLength => "both Transfer-Encoding and Content-Length",
            Rejection::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Rejection::UnsupportedTransferCoding => "unsupported transfer coding",
            Rejection::UnknownLength => "request body length is unknown",
            Rejection::InvalidContentLength => "invalid Content-Length",
            Rejection::ConflictingContentLength => "conflicting Content-Length values",
            Rejection::BodyTooLarge => "request body too large",
            Rejection::MalformedChunkSize => "malformed chunk size",
            Rejection::MalformedChunkedBody => "malformed chunked body",
            Rejection::TrailersTooLarge => "trailer fields too large",
            Rejection::TooManyConnections => "too many connections",
        }
    }

    /// The problem's `title`: the reason phrase of the status (RFC 9457 §4.2.1).
    pub const fn title(self) -> &'static str {
        match self.status() {
            408 => "Request Timeout",
            413 => "Content Too Large",
            417 => "Expectation Failed",
            431 => "Request Header Fields Too Large",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            _ => "Bad Request",
        }
    }

    /// The `application/problem+json` body.
    pub fn body(self) -> Vec<u8> {
        // Every part is a fixed string without quotes or backslashes: no escaping needed, and
        // the 503 written before any worker is involved costs no serialiser.
        format!(
            r#"{{"type":"about:blank","title":"{}","status":{},"detail":"{}"}}"#,
            self.title(),
            self.status(),
            self.detail()
        )
        .into_bytes()
    }

    /// The response: the problem, and the connection closes.
    pub fn into_resp(self) -> Resp {
        Resp {
            status: self.status(),
            headers: vec![("Content-Type", Cow::Borrowed(PROBLEM_JSON))],
            body: self.body(),
            close: true,
        }
    }
}

/// A request that reached no endpoint: a path nothing serves (404) or a method the endpoint
/// does not take (405, with `Allow`). Also HTTP's own business, answered as a problem like a
/// [`Rejection`], but the connection stays open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoEndpoint {
    NotFound(&'static str),
    MethodNotAllowed(&'static str),
}

impl NoEndpoint {
    /// The problem response (without `Allow`; the caller knows the methods).
    pub fn into_resp(self) -> Resp {
        let (status, title, detail) = match self {
            NoEndpoint::NotFound(d) => (404, "Not Found", d),
            NoEndpoint::MethodNotAllowed(d) => (405, "Method Not Allowed", d),
        };
        let body = serde_json::json!({
            "type": "about:blank",
            "title": title,
            "status": status,
            "detail": detail,
        });
        Resp {
            status,
            headers: vec![("Content-Type", Cow::Borrowed(PROBLEM_JSON))],
            body: serde_json::to_vec(&body).unwrap_or_default(),
            close: false,
        }
    }
}

/// The media type of an RFC 9457 problem.
pub const PROBLEM_JSON: &str = "application/problem+json";

#[cfg(test)]
mod tests {
    use super::Rejection;

    #[test]
    fn a_rejection_is_an_rfc_9457_problem_and_no_oauth_error() {
        let r = Rejection::Malformed.into_resp();
        assert_eq!(r.status, 400);
        assert!(r.close);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": "malformed request",
            })
        );
        let v: serde_json::Value =
            serde_json::from_slice(&Rejection::TooManyConnections.body()).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["title"], "Service Unavailable");
        assert!(v.get("error").is_none());
    }
}
