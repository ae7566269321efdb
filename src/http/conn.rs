//! Reading requests from, and writing responses to, one connection (RFC 9112).
//!
//! A [`Conn`] keeps a buffer across requests, so pipelined requests that arrive together are
//! served in order. Every read has a deadline: a new connection must deliver its first request
//! head within the header timeout from accept (a connection that says nothing is closed then,
//! and with TLS the handshake, which happens inside that first read, counts within the same
//! budget); between requests of a keep-alive connection the idle timeout applies, and a later
//! head must arrive within the header timeout from its first byte (a client trickling headers
//! is cut off); a body within the body timeout.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::tls::Stream;
use super::{Headers, Method, Rejection, Req, Resp};

/// The bounds a connection is held to.
#[derive(Clone, Debug)]
pub struct Limits {
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long the first request head of a connection may take from accept, and a later one
    /// from its first byte.
    pub header_timeout: Duration,
    /// How long a request body may take once the head is read.
    pub body_timeout: Duration,
    /// Largest accepted body (413 beyond).
    pub max_body: usize,
    /// Largest accepted request line plus headers (431 beyond).
    pub max_head: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: crate::config::Setting::HttpIdleTimeout.default_secs(),
            header_timeout: crate::config::Setting::HttpHeaderTimeout.default_secs(),
            body_timeout: crate::config::Setting::HttpBodyTimeout.default_secs(),
            max_body: 64 * 1024,
            max_head: 16 * 1024,
        }
    }
}

/// How long a stopping server waits for a request already on its way on an idle connection.
const STOP_PROBE: Duration = Duration::from_millis(50);
/// How often a waiting connection looks at the stop flag.
const POLL: Duration = Duration::from_millis(200);
/// Most headers a request may carry (431 beyond).
const MAX_HEADERS: usize = 64;
const READ_CHUNK: usize = 8 * 1024;

/// What reading the next request produced.
pub enum Next {
    /// A complete request. `keep_alive` says whether the client wants the connection kept.
    Request { req: Req, keep_alive: bool },
    /// The client closed, or went idle too long: close quietly.
    Close,
    /// The server is stopping and the connection is idle: close without resetting it.
    Stop,
    /// The request was bad: send this response, then close.
    Reject(Resp),
}

/// One accepted connection and its read buffer.
pub struct Conn {
    stream: Stream,
    peer: SocketAddr,
    buf: Vec<u8>,
    /// The read timeout last set on the socket: a keep-alive connection waits for each next
    /// request with the same 200 ms slices, and setting them again is a system call per request.
    read_timeout: Option<Duration>,
    /// When the connection was accepted, until its first request is read.
    accepted: Option<Instant>,
}

enum Wait {
    Data,
    Eof,
    Timeout,
    Stopped,
}

fn reject(why: Rejection) -> Next {
    Next::Reject(why.into_resp())
}

impl Conn {
    /// Wraps a stream accepted at `accepted` (the first request head is due within the header
    /// timeout from then).
    pub fn new(stream: Stream, peer: SocketAddr, accepted: Instant) -> io::Result<Conn> {
        stream.tcp().set_nodelay(true)?;
        Ok(Conn {
            stream,
            peer,
            buf: Vec::with_capacity(READ_CHUNK),
            read_timeout: None,
            accepted: Some(accepted),
        })
    }

    /// Sets the socket's read timeout unless it is already that.
    fn set_read_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        if self.read_timeout != Some(timeout) {
            self.read_timeout = None;
            self.stream.tcp().set_read_timeout(Some(timeout))?;
            self.read_timeout = Some(timeout);
        }
        Ok(())
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Reads more bytes into the buffer, waiting until `deadline` at most. With `idle` set the
    /// wait is in slices, so a stopping server notices the flag while the client says nothing.
    fn fill(&mut self, deadline: Instant, stop: Option<&AtomicBool>) -> Wait {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                // A request the client sent before it could see the stop is still served
                // (with `Connection: close`): look once more, briefly, before giving up.
                if self.set_read_timeout(STOP_PROBE).is_ok()
                    && let Ok(n) = self.stream.read(&mut chunk)
                    && n > 0
                {
                    self.buf
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    return Wait::Data;
                }
                return Wait::Stopped;
            }
            let now = Instant::now();
            let Some(left) = deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
            else {
                return Wait::Timeout;
            };
            let slice = if stop.is_some() { left.min(POLL) } else { left };
            if self.set_read_timeout(slice).is_err() {
                return Wait::Eof;
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Wait::Eof,
                Ok(n) => {
                    self.buf
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    return Wait::Data;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(_) => return Wait::Eof,
            }
        }
    }

    /// Reads the next request. `stop` is the server's stop flag: while waiting for a request to
    /// start, a set flag closes the connection; a request already started is read to the end.
    pub fn next_request(&mut self, limits: &Limits, stop: &AtomicBool) -> Next {
        // The first request's head is due within the header timeout from accept, however the
        // time is spent (silence, a TLS handshake, a trickle); later ones wait up to the idle
        // timeout for their first byte.
        let first_deadline = self.accepted.take().map(|a| a + limits.header_timeout);
        // RFC 9112 §2.2: ignore empty lines before a request line.
        let skip = self
            .buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        self.buf.drain(..skip);
        if self.buf.is_empty() {
            let idle_deadline =
                first_deadline.unwrap_or_else(|| Instant::now() + limits.idle_timeout);
            loop {
                match self.fill(idle_deadline, Some(stop)) {
                    Wait::Data => {
                        let skip = self
                            .buf
                            .iter()
                            .take_while(|b| **b == b'\r' || **b == b'\n')
                            .count();
                        self.buf.drain(..skip);
                        if !self.buf.is_empty() {
                            break;
                        }
                    }
                    Wait::Eof | Wait::Timeout => return Next::Close,
                    Wait::Stopped => return Next::Stop,
                }
            }
        }
        let head_deadline =
            first_deadline.unwrap_or_else(|| Instant::now() + limits.header_timeout);
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    // The limit holds however the head was split across reads.
                    if head_len > limits.max_head {
                        return reject(Rejection::HeadTooLarge);
                    }
                    let head = Head::from(&parsed);
                    return self.finish(head, head_len, limits);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() >= limits.max_head {
                        return reject(Rejection::HeadTooLarge);
                    }
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return reject(Rejection::TooManyHeaders);
                }
                Err(_) => return reject(Rejection::Malformed),
            }
            match self.fill(head_deadline, None) {
                Wait::Data => {}
                Wait::Timeout => {
                    return reject(Rejection::HeaderTimeout);
                }
                Wait::Eof | Wait::Stopped => return Next::Close,
            }
        }
    }

    /// Turns a parsed head into a request: checks framing, answers `Expect`, reads the body.
    fn finish(&mut self, head: Option<Head>, head_len: usize, limits: &Limits) -> Next {
        let Some(Head {
            method,
            target,
            http10,
            headers,
        }) = head
        else {
            return reject(Rejection::Malformed);
        };
        let (path, query) = match split_target(&target, method) {
            Some(pq) => pq,
            None => return reject(Rejection::MalformedTarget),
        };

        // RFC 9112 §3.2: a 1.1 request without exactly one Host is a 400.
        let hosts = headers.values("host").count();
        if hosts > 1 || (!http10 && hosts == 0) {
            return reject(Rejection::HostCount);
        }

        let mut connection_close = false;
        let mut connection_keep_alive = false;
        for v in headers.values("connection") {
            for token in String::from_utf8_lossy(v).split(',') {
                let token = token.trim();
                connection_close |= token.eq_ignore_ascii_case("close");
                connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
        let keep_alive = !connection_close && (!http10 || connection_keep_alive);

        let framing = match body_framing(&headers, http10, limits.max_body) {
            Ok(f) => f,
            Err(next) => return next,
        };

        // RFC 9110 §10.1.1: 100-continue is the only expectation; answer it before reading.
        let expectation = {
            let mut expects = headers.values("expect");
            expects
                .next()
                .map(|v| expects.next().is_none() && v.eq_ignore_ascii_case(b"100-continue"))
        };
        if let Some(continue_only) = expectation {
            if !continue_only {
                return reject(Rejection::UnsupportedExpectation);
            }
            let wants_body = !matches!(framing, Framing::Length(0));
            let body_arrived = self.buf.len() > head_len;
            if !http10
                && wants_body
                && !body_arrived
                && self
                    .stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .is_err()
            {
                return Next::Close;
            }
        }

        self.buf.drain(..head_len);
        let body = match framing {
            Framing::Length(n) => match self.read_exact_body(n, limits) {
                Ok(body) => body,
                Err(next) => return next,
            },
            Framing::Chunked => match self.read_chunked_body(limits) {
                Ok(body) => body,
                Err(next) => return next,
            },
        };
        Next::Request {
            req: Req {
                method,
                path,
                query,
                headers,
                body,
                peer: self.peer,
                http10,
            },
            keep_alive,
        }
    }

    #[allow(
        clippy::result_large_err,
        reason = "the Err is a rejection on the cold path"
    )]
    fn read_exact_body(&mut self, n: usize, limits: &Limits) -> Result<Vec<u8>, Next> {
        let deadline = Instant::now() + limits.body_timeout;
        while self.buf.len() < n {
            match self.fill(deadline, None) {
                Wait::Data => {}
                Wait::Timeout => {
                    return Err(reject(Rejection::BodyTimeout));
                }
                Wait::Eof | Wait::Stopped => return Err(Next::Close),
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Reads one CRLF-terminated line (without the CRLF), at most `max` bytes.
    #[allow(
        clippy::result_large_err,
        reason = "the Err is a rejection on the cold path"
    )]
    fn read_line(&mut self, deadline: Instant, max: usize) -> Result<Vec<u8>, Next> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).take(pos).collect();
                return Ok(line);
            }
            if self.buf.len() > max {
                return Err(reject(Rejection::MalformedChunkedBody));
            }
            match self.fill(deadline, None) {
                Wait::Data => {}
                Wait::Timeout => {
                    return Err(reject(Rejection::BodyTimeout));
                }
                Wait::Eof | Wait::Stopped => return Err(Next::Close),
            }
        }
    }

    /// RFC 9112 §7.1: chunks until a zero-size chunk, then trailer lines (discarded).
    #[allow(
        clippy::result_large_err,
        reason = "the Err is a rejection on the cold path"
    )]
    fn read_chunked_body(&mut self, limits: &Limits) -> Result<Vec<u8>, Next> {
        let deadline = Instant::now() + limits.body_timeout;
        let mut body = Vec::new();
        loop {
            let line = self.read_line(deadline, 1024)?;
            let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
            let size_text = std::str::from_utf8(size_text).unwrap_or("").trim_end();
            let size = match usize::from_str_radix(size_text, 16) {
                Ok(s) if !size_text.is_empty() && size_text.len() <= 8 => s,
                _ => return Err(reject(Rejection::MalformedChunkSize)),
            };
            if size == 0 {
                break;
            }
            if body.len() + size > limits.max_body {
                return Err(reject(Rejection::BodyTooLarge));
            }
            let data = self.read_exact_body(size + 2, limits)?;
            let (chunk, crlf) = data.split_at(size);
            if crlf != b"\r\n" {
                return Err(reject(Rejection::MalformedChunkedBody));
            }
            body.extend_from_slice(chunk);
        }
        let mut trailer_bytes = 0usize;
        loop {
            let line = self.read_line(deadline, limits.max_head)?;
            if line.is_empty() {
                return Ok(body);
            }
            trailer_bytes += line.len();
            if trailer_bytes > limits.max_head {
                return Err(reject(Rejection::TrailersTooLarge));
            }
        }
    }

    /// Writes `resp`. `head_only` for HEAD: the headers (with the length the body would have)
    /// and no body. Returns false if the client is gone.
    pub fn write(&mut self, resp: &Resp, head_only: bool, keep_alive: bool, http10: bool) -> bool {
        let out = serialize(resp, head_only, keep_alive, http10);
        self.stream.write_all(&out).is_ok()
    }

    /// Sets how long a response write may block.
    pub fn set_write_timeout(&self, d: Duration) -> io::Result<()> {
        self.stream.tcp().set_write_timeout(Some(d))
    }

    /// Closes after an error response without resetting the connection (RFC 9112 §9.6): stop
    /// writing, then read and discard what the client is still sending (a body the server
    /// refused) for a short, bounded while, so the client reads the response instead of a
    /// reset.
    pub fn linger_close(mut self) {
        self.stream.shutdown_write();
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut sink = [0u8; READ_CHUNK];
        let mut drained = 0usize;
        while drained < 1024 * 1024 {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                return;
            };
            if self.set_read_timeout(left).is_err() {
                return;
            }
            match self.stream.read(&mut sink) {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }
}

/// The owned parts of a parsed request head.
struct Head {
    method: Method,
    target: String,
    http10: bool,
    headers: Headers,
}

impl Head {
    fn from(parsed: &httparse::Request<'_, '_>) -> Option<Head> {
        Some(Head {
            method: Method::parse(parsed.method?),
            target: parsed.path?.to_string(),
            http10: parsed.version? == 0,
            headers: {
                let fields = parsed.headers.iter();
                let bytes = fields.clone().map(|h| h.name.len() + h.value.len()).sum();
                let mut headers = Headers::with_capacity(fields.len(), bytes);
                for h in fields {
                    headers.push(h.name, h.value);
                }
                headers
            },
        })
    }
}

enum Framing {
    Length(usize),
    Chunked,
}

/// RFC 9112 §6.3: how long the body is. Both `Transfer-Encoding` and `Content-Length`, a bad
/// or conflicting length, or an unknown coding is an error, and the connection closes.
#[allow(
    clippy::result_large_err,
    reason = "the Err is a rejection on the cold path"
)]
fn body_framing(headers: &Headers, http10: bool, max_body: usize) -> Result<Framing, Next> {
    let te: Vec<&[u8]> = headers.values("transfer-encoding").collect();
    let cl: Vec<&[u8]> = headers.values("content-length").collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err(reject(Rejection::TransferEncodingAndLength));
        }
        if http10 {
            return Err(reject(Rejection::TransferEncodingInHttp10));
        }
        let codings: Vec<String> = te
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v)
                    .split(',')
                    .map(|c| c.trim().to_ascii_lowercase())
                    .collect::<Vec<_>>()
            })
            .collect();
        return match codings.as_slice() {
            [only] if only == "chunked" => Ok(Framing::Chunked),
            [.., last] if last == "chunked" => Err(reject(Rejection::UnsupportedTransferCoding)),
            _ => Err(reject(Rejection::UnknownLength)),
        };
    }
    let mut length: Option<usize> = None;
    for v in cl {
        for part in v.split(|b| *b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || part.len() > 18 || !part.iter().all(u8::is_ascii_digit) {
                return Err(reject(Rejection::InvalidContentLength));
            }
            let n: usize = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| reject(Rejection::InvalidContentLength))?;
            if length.is_some_and(|l| l != n) {
                return Err(reject(Rejection::ConflictingContentLength));
            }
            length = Some(n);
        }
    }
    let n = length.unwrap_or(0);
    if n > max_body {
        return Err(reject(Rejection::BodyTooLarge));
    }
    Ok(Framing::Length(n))
}

/// Splits an origin-form or absolute-form target into (path, query). `*` only for OPTIONS.
fn split_target(target: &str, method: Method) -> Option<(String, String)> {
    let rest = if target.starts_with('/') {
        target
    } else if target == "*" && method == Method::Options {
        return Some(("*".into(), String::new()));
    } else {
        // absolute-form (RFC 9112 §3.2.2): scheme "://" authority path
        let lower = target
            .get(..8)
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let after = if lower.starts_with("http://") {
            target.get(7..)?
        } else if lower.starts_with("https://") {
            target.get(8..)?
        } else {
            return None;
        };
        match after.find(['/', '?']) {
            Some(i) if after.as_bytes().get(i) == Some(&b'/') => after.get(i..)?,
            Some(i) => return Some(("/".into(), after.get(i + 1..)?.to_string())),
            None => "/",
        }
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    // The fragment is never sent; a '#' here is malformed.
    if path.contains('#') || query.contains('#') {
        return None;
    }
    Some((path.to_string(), query.to_string()))
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

thread_local! {
    static DATE: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((-1, String::new())) };
}

/// Appends the `Date` header value, formatted at most once a second per thread.
fn push_date(out: &mut Vec<u8>) {
    let now = crate::timefmt::now();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now {
            *cached = (now, crate::timefmt::http_date(now));
        }
        out.extend_from_slice(cached.1.as_bytes());
    });
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let start = out.len();
    loop {
        out.push(b'0' + u8::try_from(n % 10).unwrap_or(0));
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if let Some(digits) = out.get_mut(start..) {
        digits.reverse();
    }
}

/// The bytes of a response. Written piece by piece rather than with `write!`, whose
/// formatting machinery was a tenth of a forward-auth request's instructions.
pub fn serialize(resp: &Resp, head_only: bool, keep_alive: bool, http10: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, usize::from(resp.status));
    out.push(b' ');
    out.extend_from_slice(reason(resp.status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in &resp.headers {
        // Header values are built by latchkey; a CR or LF would split the response.
        if v.contains(['\r', '\n']) {
            continue;
        }
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Date: ");
    push_date(&mut out);
    out.extend_from_slice(b"\r\n");
    if !(resp.status == 204 || resp.status == 304 || resp.status < 200) {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut out, resp.body.len());
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive || resp.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_targets() {
        assert_eq!(
            split_target("/a?b=c", Method::Get),
            Some(("/a".into(), "b=c".into()))
        );
        assert_eq!(
            split_target("/a", Method::Get),
            Some(("/a".into(), "".into()))
        );
        assert_eq!(
            split_target("http://h:1/x?y", Method::Get),
            Some(("/x".into(), "y".into()))
        );
        assert_eq!(
            split_target("http://h", Method::Get),
            Some(("/".into(), "".into()))
        );
        assert_eq!(
            split_target("*", Method::Options),
            Some(("*".into(), "".into()))
        );
        assert_eq!(split_target("*", Method::Get), None);
        assert_eq!(split_target("a/b", Method::Get), None);
        assert_eq!(split_target("/a#f", Method::Get), None);
    }

    fn framing(headers: &[(&str, &str)], http10: bool) -> Result<usize, u16> {
        let mut fields = Headers::default();
        for (k, v) in headers {
            fields.push(k, v.as_bytes());
        }
        match body_framing(&fields, http10, 100) {
            Ok(Framing::Length(n)) => Ok(n),
            Ok(Framing::Chunked) => Ok(usize::MAX),
            Err(Next::Reject(r)) => Err(r.status),
            Err(_) => Err(0),
        }
    }

    #[test]
    fn body_framing_follows_rfc9112() {
        assert_eq!(framing(&[], false), Ok(0));
        assert_eq!(framing(&[("content-length", "5")], false), Ok(5));
        assert_eq!(framing(&[("content-length", "5, 5")], false), Ok(5));
        assert_eq!(
            framing(&[("content-length", "5"), ("content-length", "5")], false),
            Ok(5)
        );
        assert_eq!(
            framing(&[("content-length", "5"), ("content-length", "6")], false),
            Err(400)
        );
        assert_eq!(framing(&[("content-length", "-1")], false), Err(400));
        assert_eq!(framing(&[("content-length", "+5")], false), Err(400));
        assert_eq!(framing(&[("content-length", "")], false), Err(400));
        assert_eq!(framing(&[("content-length", "101")], false), Err(413));
        assert_eq!(
            framing(&[("transfer-encoding", "chunked")], false),
            Ok(usize::MAX)
        );
        assert_eq!(
            framing(&[("transfer-encoding", "Chunked")], false),
            Ok(usize::MAX)
        );
        assert_eq!(
            framing(
                &[("transfer-encoding", "chunked"), ("content-length", "3")],
                false
            ),
            Err(400)
        );
        assert_eq!(
            framing(&[("transfer-encoding", "gzip, chunked")], false),
            Err(501)
        );
        assert_eq!(framing(&[("transfer-encoding", "gzip")], false), Err(400));
        assert_eq!(framing(&[("transfer-encoding", "chunked")], true), Err(400));
    }

    #[test]
    fn writes_decimals() {
        for n in [0usize, 7, 10, 404, 65_536, usize::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn serializes_head_without_body_but_with_length() {
        let resp = Resp::json(200, &serde_json::json!({"a": 1}));
        let text = String::from_utf8(serialize(&resp, true, true, false)).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Length: 7\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        let text = String::from_utf8(serialize(&resp, false, false, false)).unwrap();
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("{\"a\":1}"));
    }

    #[test]
    fn drops_header_values_with_line_breaks() {
        let resp = Resp::empty(200).with("X-Test", "a\r\nInjected: 1");
        let text = String::from_utf8(serialize(&resp, false, true, false)).unwrap();
        assert!(!text.contains("Injected"));
    }
}
