//! HTTP/1.1 for latchkey: requests are read with `httparse` into a [`Req`], handlers return a
//! [`Resp`], and only this module and `server/` touch sockets. Nothing else crosses this
//! boundary.

pub mod auth;
pub mod client_ip;
pub mod conn;
pub mod cookies;
pub mod form;
pub mod probe;
pub mod rejection;
pub mod router;
pub mod tls;

use std::borrow::Cow;
use std::net::SocketAddr;

use serde::Serialize;

pub use rejection::Rejection;

/// Request methods latchkey distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    /// Any other token; answered 405 (or 501 by the router).
    Other,
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    /// The method's name as sent on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// A request's header fields: names in lower case, values as sent, in order. They share one
/// buffer, so a request's headers cost two allocations instead of two for every field (a
/// forward-auth request carries half a dozen; allocation was a sixth of its CPU).
#[derive(Debug, Default, Clone)]
pub struct Headers {
    bytes: Vec<u8>,
    /// (name start, value start = name end, value end) in `bytes`.
    fields: Vec<(usize, usize, usize)>,
}

impl Headers {
    /// Room for `fields` fields of `bytes` bytes in all.
    pub fn with_capacity(fields: usize, bytes: usize) -> Headers {
        Headers {
            bytes: Vec::with_capacity(bytes),
            fields: Vec::with_capacity(fields),
        }
    }

    /// Appends a field; the name is lower-cased.
    pub fn push(&mut self, name: &str, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name.as_bytes());
        let mid = self.bytes.len();
        if let Some(name) = self.bytes.get_mut(start..mid) {
            name.make_ascii_lowercase();
        }
        self.bytes.extend_from_slice(value);
        self.fields.push((start, mid, self.bytes.len()));
    }

    /// A field's (name, value); the ranges are the buffer's own.
    fn field(&self, &(start, mid, end): &(usize, usize, usize)) -> (&[u8], &[u8]) {
        (
            self.bytes.get(start..mid).unwrap_or_default(),
            self.bytes.get(mid..end).unwrap_or_default(),
        )
    }

    /// The fields in order, as (lower-case name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields.iter().map(|f| {
            let (name, value) = self.field(f);
            // Names were pushed as `&str` and lower-cased byte-wise: always UTF-8.
            (std::str::from_utf8(name).unwrap_or_default(), value)
        })
    }

    /// The values of the fields named `name` (lower case), in order.
    pub fn values<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + use<'a, 'n> {
        self.fields.iter().filter_map(move |f| {
            let (k, v) = self.field(f);
            (k == name.as_bytes()).then_some(v)
        })
    }
}

/// One parsed request with its whole (bounded) body.
#[derive(Debug)]
pub struct Req {
    pub method: Method,
    /// The path of the request target, not percent-decoded (routing compares it exactly).
    pub path: String,
    /// The raw query string without `?` (empty if none).
    pub query: String,
    /// Header names in lower case, values as sent, in order.
    pub headers: Headers,
    pub body: Vec<u8>,
    pub peer: SocketAddr,
    /// True for an HTTP/1.0 request.
    pub http10: bool,
}

impl Req {
    /// A request with no headers or body, for tests and internal callers.
    pub fn new(method: Method, target: &str, peer: SocketAddr) -> Req {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Req {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: Headers::default(),
            body: Vec::new(),
            peer,
            http10: false,
        }
    }

    /// The value of the only header `name` (lower case) if it is present once and is UTF-8.
    /// A header sent twice gives `Err(())`: callers treat ambiguity as a bad request.
    #[allow(clippy::result_unit_err)]
    pub fn header(&self, name: &str) -> Result<Option<&str>, ()> {
        let mut values = self.headers.values(name);
        let found = values.next();
        if values.next().is_some() {
            return Err(());
        }
        found
            .map(|v| std::str::from_utf8(v).map_err(|_| ()))
            .transpose()
    }

    /// The first value of header `name`, if UTF-8 (for headers where repeats do not matter).
    pub fn header_first(&self, name: &str) -> Option<&str> {
        self.headers
            .values(name)
            .next()
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The media type of `Content-Type`, lower-cased, without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.header_first("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// A response as a value: status, headers and body. The writer adds `Content-Length`,
/// `Date` and `Connection`.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    pub body: Vec<u8>,
    /// Close the connection after this response.
    pub close: bool,
}

impl Resp {
    /// An empty response with `status`.
    pub fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        }
    }

    /// A JSON response. Serialising latchkey's own types cannot fail; if it ever did, the
    /// answer is a bare 500 rather than a panic.
    pub fn json(status: u16, value: &impl Serialize) -> Resp {
        match serde_json::to_vec(value) {
            Ok(body) => Resp {
                status,
                headers: vec![("Content-Type", Cow::Borrowed("application/json"))],
                body,
                close: false,
            },
            Err(_) => Resp::empty(500),
        }
    }

    /// A JSON error body `{"error", "error_description"}` (no `Cache-Control` added).
    pub fn json_error(status: u16, error: &str, description: &str) -> Resp {
        Resp::json(
            status,
            &serde_json::json!({ "error": error, "error_description": description }),
        )
    }

    /// Sets a header, replacing any earlier value of it.
    pub fn set(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Resp {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Resp {
        self.headers.push((name, value.into()));
        self
    }

    /// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1), for anything that
    /// carries or describes a credential.
    pub fn no_store(self) -> Resp {
        self.with("Cache-Control", "no-store")
            .with("Pragma", "no-cache")
    }

    /// Marks the connection to be closed after this response.
    pub fn closing(mut self) -> Resp {
        self.close = true;
        self
    }

    /// The first value of a response header (for tests and the access log).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::{Headers, Method, Req};

    #[test]
    fn headers_keep_order_and_lower_case_names() {
        let mut h = Headers::default();
        h.push("Host", b"a.test");
        h.push("X-Forwarded-Uri", b"/P?q=1");
        h.push("host", b"b.test");
        let all: Vec<(&str, &[u8])> = h.iter().collect();
        assert_eq!(
            all,
            [
                ("host", &b"a.test"[..]),
                ("x-forwarded-uri", &b"/P?q=1"[..]),
                ("host", &b"b.test"[..]),
            ]
        );
        assert_eq!(h.values("host").count(), 2);
        let mut req = Req::new(Method::Get, "/", "127.0.0.1:1".parse().unwrap());
        req.headers = h;
        assert_eq!(req.header("x-forwarded-uri"), Ok(Some("/P?q=1")));
        assert_eq!(req.header("host"), Err(()), "sent twice");
        assert_eq!(req.header_first("host"), Some("a.test"));
        assert_eq!(req.header("cookie"), Ok(None));
    }
}
