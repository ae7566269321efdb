//! The HTTP/1.1 connection layer (src/http/conn.rs, src/server/) against the real binary:
//! bursts, timeouts, the connection cap, keep-alive, pipelining, `Expect`, HEAD, HTTP/1.0,
//! message framing (RFC 9112), graceful stop and memory with many idle connections.
//! Each test's name states the behaviour it shows.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{
    Response, Server, basic_header, eventually, proc_status, read_response, temp_dir,
};

/// A server whose `http.*` settings are set with the CLI before it starts.
fn start_with_settings(settings: &[(&str, &str)]) -> Server {
    Server::start_with_settings(&[], settings)
}

/// A keep-alive `GET path` (HTTP/1.1, no `Connection` header).
fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

fn send(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).unwrap();
}

/// Reads one response, which must be there.
fn response(s: &mut TcpStream) -> Response {
    read_response(s, false).expect("connection closed before a response")
}

/// What the next read on `s` sees within `limit`.
#[derive(Debug, PartialEq)]
enum After {
    /// The server closed the connection (EOF, or a reset after it closed).
    Closed,
    /// These bytes arrived.
    Data(Vec<u8>),
    /// Nothing within the limit: the connection is still open.
    Open,
}

/// `read`, repeated when a signal interrupts it.
fn read_retrying(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn after(s: &mut TcpStream, limit: Duration) -> After {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    let got = match read_retrying(s, &mut buf) {
        Ok(0) => After::Closed,
        Ok(n) => After::Data(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => After::Closed,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => After::Open,
        Err(e) => panic!("read error: {e}"),
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    got
}

/// Asserts that the server closes `s` (within 5 s) and sends nothing more.
fn assert_closed(s: &mut TcpStream) {
    assert_eq!(after(s, Duration::from_secs(5)), After::Closed);
}

/// Asserts the server keeps `s` open and silent for a moment.
fn assert_open(s: &mut TcpStream) {
    assert_eq!(after(s, Duration::from_millis(300)), After::Open);
}

/// Asserts a rejection: `status`, an RFC 9457 problem body (no OAuth error code),
/// `Connection: close`, then EOF.
fn assert_rejected(s: &mut TcpStream, status: u16) -> Response {
    let r = response(s);
    assert_eq!(r.status, status, "body: {}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert_problem(&r, status);
    assert_closed(s);
    r
}

/// Asserts an `application/problem+json` body `{"type":"about:blank","title","status",
/// "detail"}` with this status and nothing else (in particular no OAuth `error`).
fn assert_problem(r: &Response, status: u16) {
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let v = r.json();
    let mut keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["detail", "status", "title", "type"], "body: {v}");
    assert_eq!(v["type"], "about:blank", "body: {v}");
    assert_eq!(v["status"], status, "body: {v}");
    assert!(
        v["title"].is_string() && v["detail"].is_string(),
        "body: {v}"
    );
}

/// Sends `request` on a new connection and asserts the rejection.
fn rejected(server: &Server, request: &[u8], status: u16) -> Response {
    let mut s = server.connect();
    // The server may close as soon as it has seen enough; the rest of the write may fail.
    let _ = s.write_all(request);
    assert_rejected(&mut s, status)
}

/// A `POST /token` with a client_credentials form body of `body` and `client`'s Basic auth.
fn token_head(client: &crate::support::TestClient, extra: &str) -> String {
    format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n{}{extra}\r\n",
        basic_header(&client.id, &client.secret)
    )
}

const CC_BODY: &str = "grant_type=client_credentials";

fn assert_token(r: &Response) {
    assert_eq!(r.status, 200, "body: {}", r.text());
    assert_eq!(r.json()["token_type"], "Bearer", "body: {}", r.text());
    assert!(r.json()["access_token"].is_string(), "body: {}", r.text());
}

fn fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn burst_of_256_keep_alive_connections_is_answered_within_a_second() {
    let server = Server::start();
    let mut conns: Vec<TcpStream> = (0..256).map(|_| server.connect()).collect();
    let request = get("/healthz");

    let started = Instant::now();
    for s in &mut conns {
        send(s, request.as_bytes());
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let r = response(s);
        assert_eq!(r.status, 200, "connection {i}: {}", r.text());
        assert_eq!(r.json()["status"], "ok");
        assert_eq!(
            r.header("connection"),
            None,
            "connection {i} must stay open"
        );
    }
    let elapsed = started.elapsed();
    eprintln!("256 keep-alive connections answered in {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(1),
        "256 keep-alive connections were all answered only after {elapsed:?}"
    );

    // Every one of them is still open and serves a second request.
    for s in &mut conns {
        send(s, get("/jwks.json").as_bytes());
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let r = response(s);
        assert_eq!(
            r.status,
            200,
            "second request on connection {i}: {}",
            r.text()
        );
        assert!(r.json()["keys"].is_array());
    }
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = start_with_settings(&[("http.idle_timeout", "1")]);
    let mut s = server.connect();
    send(&mut s, get("/healthz").as_bytes());
    let r = response(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), None);

    let idle_from = Instant::now();
    assert_eq!(after(&mut s, Duration::from_secs(5)), After::Closed);
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_millis(2500),
        "closed after {idle:?} idle, the timeout is 1 s"
    );
    // A fresh connection is served as usual.
    assert_eq!(server.get("/healthz").status, 200);
}

#[test]
fn a_client_trickling_its_headers_is_cut_off_with_408() {
    let server = start_with_settings(&[("http.header_timeout", "1")]);
    let mut s = server.connect();
    let mut writer = s.try_clone().unwrap();
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        // A head that never ends: one byte every 300 ms, for at most 5 s.
        let endless =
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in endless {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    let r = response(&mut s);
    let cut_off = started.elapsed();
    assert_eq!(r.status, 408, "body: {}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    assert_problem(&r, 408);
    assert_eq!(r.json()["title"], "Request Timeout");
    assert_eq!(r.json()["detail"], "request header timeout");
    assert!(
        cut_off >= Duration::from_millis(800) && cut_off < Duration::from_secs(3),
        "cut off after {cut_off:?}, the header timeout is 1 s"
    );
    assert_closed(&mut s);
    drop(s);
    trickle.join().unwrap();
}

#[test]
fn connections_beyond_the_cap_get_503() {
    let server = start_with_settings(&[("http.max_connections", "4")]);
    // Four keep-alive connections, each proven accepted by a served request.
    let mut held: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    for s in &mut held {
        send(s, get("/healthz").as_bytes());
        assert_eq!(response(s).status, 200);
    }

    let mut fifth = server.connect();
    send(&mut fifth, get("/healthz").as_bytes());
    let r = response(&mut fifth);
    assert_eq!(r.status, 503, "body: {}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("connection"), Some("close"));
    assert_problem(&r, 503);
    assert_eq!(r.json()["title"], "Service Unavailable");
    assert_eq!(r.json()["detail"], "too many connections");
    assert_closed(&mut fifth);

    // The four are unaffected.
    for s in &mut held {
        send(s, get("/healthz").as_bytes());
        assert_eq!(response(s).status, 200);
    }

    // Once they close, new connections are served again (the server notices within moments).
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = server.get("/healthz");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503);
        assert!(
            Instant::now() < deadline,
            "still 503 after the held connections closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Under a descriptor limit far below `http.max_connections` (64, the hard limit too, so it
/// cannot be raised), the server lowers its cap at start and says why with the numbers; 50
/// idle connections then cannot leave a new client waiting unanswered in the kernel's queue
/// (as they did when `accept` ran out of descriptors): it is answered at once, with a 503 if
/// the lowered cap is full.
#[test]
fn a_descriptor_limit_below_the_cap_lowers_it_and_new_clients_are_answered() {
    let server = Server::start_under(
        &["sh", "-c", r#"ulimit -n 64 && exec "$0" "$@""#],
        temp_dir("fdlimit").join("data"),
        // Few database connections, whatever the machine's core count.
        &["--workers", "2"],
    );
    eventually(Duration::from_secs(3), "the descriptor warning", || {
        let logs = server.logs();
        logs.contains("the open-file limit is 64")
            && logs.contains("too low for http.max_connections 1024")
    });

    let idle: Vec<TcpStream> = (0..50).map(|_| server.connect()).collect();
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    send(&mut s, get("/healthz").as_bytes());
    let r = read_response(&mut s, false).expect("no answer beside 50 idle connections");
    assert_eq!(r.status, 503, "the lowered cap is full: {}", r.text());
    assert_problem(&r, 503);
    drop(idle);
}

#[test]
fn keep_alive_is_the_http11_default_and_connection_close_closes() {
    let server = Server::start();
    let mut s = server.connect();
    send(&mut s, get("/healthz").as_bytes());
    let first = response(&mut s);
    assert_eq!(first.status, 200);
    assert_eq!(first.header("connection"), None);
    assert_eq!(
        first.header("content-length"),
        Some(&*first.body.len().to_string())
    );

    send(&mut s, get("/jwks.json").as_bytes());
    let second = response(&mut s);
    assert_eq!(second.status, 200);
    assert_eq!(second.header("connection"), None);
    assert_open(&mut s);

    send(
        &mut s,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let last = response(&mut s);
    assert_eq!(last.status, 200);
    assert_eq!(last.header("connection"), Some("close"));
    assert_closed(&mut s);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let mut s = server.connect();
    let three = format!("{}{}{}", get("/healthz"), get("/jwks.json"), get("/nope"));
    send(&mut s, three.as_bytes());

    let healthz = response(&mut s);
    assert_eq!(healthz.status, 200);
    assert_eq!(healthz.json()["status"], "ok");
    let jwks = response(&mut s);
    assert_eq!(jwks.status, 200);
    assert!(jwks.json()["keys"].is_array());
    let nope = response(&mut s);
    assert_eq!(nope.status, 404);
    assert_eq!(nope.json()["title"], "Not Found");
    // Nothing else was sent and the connection stays usable.
    assert_open(&mut s);
    send(&mut s, get("/healthz").as_bytes());
    assert_eq!(response(&mut s).status, 200);
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = Server::start();
    let client = server.client("expect", "");

    let mut s = server.connect();
    let head = token_head(
        &client,
        &format!(
            "Expect: 100-continue\r\nContent-Length: {}\r\n",
            CC_BODY.len()
        ),
    );
    send(&mut s, head.as_bytes());
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut got = vec![0u8; interim.len()];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.read_exact(&mut got)
        .expect("no 100 Continue before the body was sent");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(interim)
    );
    send(&mut s, CC_BODY.as_bytes());
    let r = response(&mut s);
    assert_token(&r);
    assert_eq!(r.header("connection"), None);

    // The body sent along with the head: no interim response, just the final one.
    let mut s = server.connect();
    let head = token_head(
        &client,
        &format!(
            "Expect: 100-continue\r\nContent-Length: {}\r\n",
            CC_BODY.len()
        ),
    );
    send(&mut s, format!("{head}{CC_BODY}").as_bytes());
    assert_token(&response(&mut s));

    // Any other expectation is 417.
    let r = rejected(
        &server,
        b"POST /token HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 0\r\n\r\n",
        417,
    );
    assert_eq!(r.json()["title"], "Expectation Failed");
    assert_eq!(r.json()["detail"], "unsupported expectation");
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let server = Server::start();
    let mut s = server.connect();
    send(&mut s, get("/jwks.json").as_bytes());
    let g = response(&mut s);
    assert_eq!(g.status, 200);
    assert!(!g.body.is_empty());

    send(&mut s, b"HEAD /jwks.json HTTP/1.1\r\nHost: x\r\n\r\n");
    let h = read_response(&mut s, true).unwrap();
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    let stable_headers = |r: &Response| -> Vec<(String, String)> {
        r.headers
            .iter()
            .filter(|(k, _)| k != "date" && k != "x-request-id")
            .cloned()
            .collect()
    };
    assert_eq!(stable_headers(&h), stable_headers(&g));
    assert_eq!(h.header("content-length"), Some(&*g.body.len().to_string()));
    assert!(h.header("date").is_some());

    // No body bytes followed the HEAD response: the next response starts right away.
    send(&mut s, get("/healthz").as_bytes());
    let next = response(&mut s);
    assert_eq!(next.status, 200);
    assert_eq!(next.json()["status"], "ok");

    // HEAD on a POST-only endpoint is 405, like GET.
    send(&mut s, b"HEAD /token HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = read_response(&mut s, true).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn http10_closes_by_default_and_keeps_alive_when_asked() {
    let server = Server::start();

    let mut s = server.connect();
    send(&mut s, b"GET /healthz HTTP/1.0\r\n\r\n");
    let r = response(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.header("connection"), Some("close"));
    assert_closed(&mut s);

    let mut s = server.connect();
    send(
        &mut s,
        b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let r = response(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert_open(&mut s);
    send(
        &mut s,
        b"GET /jwks.json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let r = response(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    send(&mut s, b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(response(&mut s).header("connection"), Some("close"));
    assert_closed(&mut s);

    // HTTP/1.1 needs exactly one Host.
    rejected(&server, b"GET /healthz HTTP/1.1\r\n\r\n", 400);
    rejected(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    );
}

#[test]
fn body_framing_follows_rfc9112() {
    let server = Server::start();
    let client = server.client("framing", "");

    // Transfer-Encoding and Content-Length together (request smuggling).
    let both = format!(
        "{}{}",
        token_head(
            &client,
            "Transfer-Encoding: chunked\r\nContent-Length: 29\r\n"
        ),
        "1d\r\ngrant_type=client_credentials\r\n0\r\n\r\n"
    );
    rejected(&server, both.as_bytes(), 400);

    // Invalid Content-Length values.
    for cl in [
        "Content-Length: abc\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: +29\r\n",
        "Content-Length: 29, 30\r\n",
        "Content-Length: 29\r\nContent-Length: 30\r\n",
    ] {
        let request = format!("{}{CC_BODY}", token_head(&client, cl));
        let r = rejected(&server, request.as_bytes(), 400);
        let detail = &r.json()["detail"];
        assert!(
            detail == "invalid Content-Length" || detail == "conflicting Content-Length values",
            "{cl:?}: {detail}"
        );
    }
    // The same value twice is one length (RFC 9112 §6.3).
    let mut s = server.connect();
    let request = format!(
        "{}{CC_BODY}",
        token_head(&client, "Content-Length: 29, 29\r\n")
    );
    send(&mut s, request.as_bytes());
    assert_token(&response(&mut s));

    // A chunked body is decoded, chunk extensions and trailers ignored.
    let mut s = server.connect();
    let chunked = format!(
        "{}{}",
        token_head(&client, "Transfer-Encoding: chunked\r\n"),
        "b\r\ngrant_type=\r\n12;ext=1\r\nclient_credentials\r\n0\r\nX-Trailer: t\r\n\r\n"
    );
    send(&mut s, chunked.as_bytes());
    let r = response(&mut s);
    assert_token(&r);
    assert_eq!(r.header("connection"), None);
    // ... and the connection is in step for the next request.
    send(&mut s, get("/healthz").as_bytes());
    assert_eq!(response(&mut s).status, 200);

    // Bodies over 64 KiB: 413, by declared length or by chunks.
    let big = "a".repeat(64 * 1024 + 1);
    let request = format!(
        "{}{big}",
        token_head(&client, &format!("Content-Length: {}\r\n", big.len()))
    );
    rejected(&server, request.as_bytes(), 413);
    let request = format!(
        "{}{:x}\r\n{big}\r\n0\r\n\r\n",
        token_head(&client, "Transfer-Encoding: chunked\r\n"),
        big.len()
    );
    rejected(&server, request.as_bytes(), 413);
    // Exactly 64 KiB is accepted by the connection layer (the form is the handler's business).
    let mut s = server.connect();
    let body = format!("{CC_BODY}&x={}", "a".repeat(64 * 1024 - CC_BODY.len() - 3));
    assert_eq!(body.len(), 64 * 1024);
    let request = format!(
        "{}{body}",
        token_head(&client, &format!("Content-Length: {}\r\n", body.len()))
    );
    send(&mut s, request.as_bytes());
    assert_ne!(response(&mut s).status, 413);

    // A transfer coding latchkey does not implement.
    let request = format!(
        "{}{}",
        token_head(&client, "Transfer-Encoding: gzip, chunked\r\n"),
        "0\r\n\r\n"
    );
    rejected(&server, request.as_bytes(), 501);
    // A malformed chunk size.
    let request = format!(
        "{}{}",
        token_head(&client, "Transfer-Encoding: chunked\r\n"),
        "zz\r\nabc\r\n0\r\n\r\n"
    );
    rejected(&server, request.as_bytes(), 400);
}

#[test]
fn oversized_head_is_431_and_malformed_request_line_is_400() {
    let server = Server::start();

    // One write of a 20 KiB head.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    rejected(&server, big.as_bytes(), 431);

    // A complete 18 KB head whose last part arrives in one read must not slip past the limit.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(18_000)
    );
    let mut s = server.connect();
    send(&mut s, &big.as_bytes()[..10_000]);
    std::thread::sleep(Duration::from_millis(200));
    let _ = s.write_all(&big.as_bytes()[10_000..]);
    assert_rejected(&mut s, 431);

    // Too many header fields.
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    rejected(
        &server,
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
        431,
    );

    // Just under the limit is served.
    let fine = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
        "a".repeat(15 * 1024)
    );
    assert_eq!(server.raw(fine.as_bytes()).status, 200);

    // Malformed request lines and targets.
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /healthz\r\nHost: x\r\n\r\n",
        b"GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n",
    ] {
        let r = rejected(&server, bad, 400);
        assert_eq!(
            r.json()["title"],
            "Bad Request",
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn sigterm_finishes_requests_in_flight_and_closes_idle_connections() {
    let mut server = Server::start();
    let client = server.client("drain", "");

    // An idle keep-alive connection: the server must close it rather than wait for it.
    let mut idle = server.connect();
    send(&mut idle, get("/healthz").as_bytes());
    assert_eq!(response(&mut idle).status, 200);

    // A request whose body is still arriving when the signal comes.
    let mut slow = server.connect();
    let head = token_head(&client, &format!("Content-Length: {}\r\n", CC_BODY.len()));
    let (first, rest) = CC_BODY.split_at(CC_BODY.len() / 2);
    send(&mut slow, format!("{head}{first}").as_bytes());
    std::thread::sleep(Duration::from_millis(200));

    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));

    // The idle connection was closed by the server meanwhile, and the listener is gone
    // although a request is still in flight.
    assert_closed(&mut idle);
    let refused = TcpStream::connect_timeout(&server.addr, Duration::from_secs(1));
    assert!(refused.is_err(), "a connection was accepted after SIGTERM");

    send(&mut slow, rest.as_bytes());
    let r = response(&mut slow);
    assert_token(&r);
    assert_eq!(r.header("connection"), Some("close"));
    assert_closed(&mut slow);

    let status = server.wait(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "logs:\n{}", server.logs());
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "stopping took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn unknown_path_is_404_and_wrong_method_is_405_with_allow() {
    let server = Server::start();
    let r = server.get("/nope");
    assert_eq!(r.status, 404);
    // HTTP's own answer (RFC 9457), not an OAuth error.
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"type": "about:blank", "title": "Not Found", "status": 404,
                           "detail": "no such endpoint"})
    );

    let r = server.post_form("/jwks.json", "", "");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(r.json()["status"], 405);
    assert_eq!(r.json()["title"], "Method Not Allowed");
    assert!(r.json().get("error").is_none());

    let r = server.get("/token");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));

    let r = server.raw(b"DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn a_thousand_idle_connections_keep_memory_bounded() {
    let limit = fd_limit();
    assert!(
        limit >= 2200,
        "this test opens 1000 connections and needs `ulimit -n` >= 2200, it is {limit}"
    );
    let server = start_with_settings(&[("http.max_connections", "2000")]);
    let pid = server.pid();
    let threads_before = proc_status(pid, "Threads");

    let conns: Vec<TcpStream> = (0..1000).map(|_| server.connect()).collect();
    // Wait until the server holds them all (one connection thread each).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let threads = proc_status(pid, "Threads");
        if threads >= threads_before + 1000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server holds only {} of 1000 connections",
            threads - threads_before
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let rss_kib = proc_status(pid, "VmRSS");
    eprintln!(
        "server VmRSS with 1000 idle connections: {} MiB",
        rss_kib / 1024
    );
    assert!(
        rss_kib < 200 * 1024,
        "VmRSS is {} MiB with 1000 idle connections",
        rss_kib / 1024
    );

    // A new client is still served promptly.
    let started = Instant::now();
    let r = server.get("/healthz");
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a request took {:?} beside 1000 idle connections",
        started.elapsed()
    );
    // ... and so is one of the idle ones.
    let mut one = conns.into_iter().next().unwrap();
    send(&mut one, get("/healthz").as_bytes());
    assert_eq!(response(&mut one).status, 200);
}

/// A burst of connections larger than std's default backlog (128) must queue in the kernel
/// rather than have its SYNs dropped and retried a second later: the listening socket asks for
/// 1024 (capped by net.core.somaxconn). `ss -ltn` shows a listener's backlog as its Send-Q.
#[test]
fn listen_backlog_is_larger_than_the_std_default() {
    let server = Server::start();
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", server.addr.port())])
        .output()
        .expect("ss(8) from iproute2 is needed (scripts/test installs it)");
    assert!(out.status.success(), "ss failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let send_q: u32 = text
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no listener line in {text:?}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(send_q, 1024.min(somaxconn), "{text}");
}
