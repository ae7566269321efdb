//! Bounded under abuse: floods of failed sign-ins with over-long form fields, silent
//! connections, and one peer opening every connection. Measured with the server's own figures
//! (`/metrics`, `/proc/<pid>/status`), never with timings.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::support::browser::{Browser, encode_form, hidden_input, page_error};
use crate::support::{
    PASSWORD, Response, Server, add_user, free_port, metric_value, proc_status, read_response,
    scrape_metrics,
};

const WRONG: &str = "Wrong username or password.";

/// A server with a metrics listener, `extra` serve arguments and these settings.
fn start(extra: &[&str], settings: &[(&str, &str)]) -> (Server, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["--metrics-listen", listen.as_str()];
    args.extend_from_slice(extra);
    (Server::start_with_settings(&args, settings), port)
}

/// One series of the server's `/metrics`, which must be there.
fn metric(port: u16, series: &str) -> f64 {
    let text = scrape_metrics(port);
    metric_value(&text, series).unwrap_or_else(|| panic!("no {series} in {text}"))
}

const ACCOUNT_ENTRIES: &str = r#"latchkey_login_throttle_entries{table="account"}"#;
const ADDRESS_ENTRIES: &str = r#"latchkey_login_throttle_entries{table="address"}"#;
const OPEN: &str = "latchkey_open_connections";
const REFUSED_MAX: &str = r#"latchkey_connections_refused_total{cap="max_connections"}"#;
const REFUSED_PER_ADDRESS: &str = r#"latchkey_connections_refused_total{cap="per_address"}"#;

/// Polls `/metrics` until `series` has `value` (at most 5 s).
fn wait_for_metric(port: u16, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = metric(port, series);
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {now}, waited for {value}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The login form's CSRF token (the browser keeps the cookie it belongs to).
fn csrf(b: &mut Browser) -> String {
    let page = b.get("/login");
    assert_eq!(page.status, 200, "{}", page.text());
    hidden_input(&page.text(), "csrf").unwrap()
}

/// Posts the login form with the browser's cookies and extra header lines.
fn post_login(b: &Browser, csrf: &str, user: &str, password: &str, extra: &str) -> Response {
    let body = encode_form(&[
        ("csrf", csrf),
        ("return_to", "/"),
        ("username", user),
        ("password", password),
    ]);
    b.server
        .post_form("/login", &body, &format!("{}{extra}", b.cookie_header()))
}

/// A 60,000-character username, distinct for each `i`.
fn long_name(i: usize) -> String {
    format!("{i:06}{}", "x".repeat(59_994))
}

#[test]
fn a_flood_of_long_usernames_leaves_the_throttle_tables_and_memory_bounded() {
    let (server, port) = start(&[], &[]);
    let mut b = Browser::new(&server);
    let csrf = csrf(&mut b);
    assert_eq!(metric(port, ACCOUNT_ENTRIES), 0.0);
    let rss_before = proc_status(server.pid(), "VmRSS");

    // 400 failed sign-ins, each a new 60,000-character name from another address (loopback
    // is a trusted proxy by default, so X-Forwarded-For is believed).
    const N: usize = 400;
    for i in 0..N {
        let xff = format!("X-Forwarded-For: 198.18.{}.{}\r\n", i / 250, i % 250 + 1);
        let r = post_login(&b, &csrf, &long_name(i), "guess", &xff);
        assert_eq!(r.status, 200, "sign-in {i}: {}", r.text());
        assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG), "sign-in {i}");
    }

    let text = scrape_metrics(port);
    let accounts = metric_value(&text, ACCOUNT_ENTRIES).unwrap();
    let addresses = metric_value(&text, ADDRESS_ENTRIES).unwrap();
    assert_eq!(accounts, 0.0, "no over-long name entered the account table");
    // Each address failed once: counted, and far under the table's cap.
    assert_eq!(addresses, N as f64);
    assert!(addresses <= 50_000.0);
    // 400 such names kept whole are 24 MB on their own (VmRSS grew from 15 MB to 39 MB
    // before the fix); digests of them, or nothing, are a few kB.
    let rss_kib = proc_status(server.pid(), "VmRSS");
    assert!(
        rss_kib < 40 * 1024 && rss_kib < rss_before + 10 * 1024,
        "VmRSS {rss_kib} kB after the flood, {rss_before} kB before"
    );
    let rss_metric = metric_value(&text, "process_resident_memory_bytes").unwrap();
    assert!(
        rss_metric > 0.0 && rss_metric < 40.0 * 1024.0 * 1024.0,
        "{text}"
    );
}

#[test]
fn over_long_fields_are_answered_like_a_wrong_password_and_the_throttle_still_locks() {
    let (server, port) = start(&[], &[]);
    add_user(&server.data_dir, "alice", &[]);
    let mut b = Browser::new(&server);
    let csrf = csrf(&mut b);

    let wrong = post_login(&b, &csrf, "alice", "wrong password", "");
    assert_eq!(wrong.status, 200, "{}", wrong.text());
    assert_eq!(page_error(&wrong.text()).as_deref(), Some(WRONG));

    // The same page and status for a name longer than any account may have (the form shows
    // back what was typed, as it does for "alice") …
    let long = "a".repeat(65);
    let r = post_login(&b, &csrf, &long, "wrong password", "");
    assert_eq!(r.status, wrong.status);
    assert_eq!(r.header("content-type"), wrong.header("content-type"));
    assert_eq!(r.text().replace(&long, "alice"), wrong.text());
    let r = post_login(&b, &csrf, &long_name(0), PASSWORD, "");
    assert_eq!(r.text().replace(&long_name(0), "alice"), wrong.text());
    // … and for a password longer than any that can be set, even for a real account.
    let r = post_login(&b, &csrf, "alice", &"p".repeat(1025), "");
    assert_eq!(r.status, wrong.status);
    assert_eq!(r.text(), wrong.text());
    assert_eq!(
        metric(port, ACCOUNT_ENTRIES),
        1.0,
        "only alice is in the account table"
    );

    // alice is still locked after her five free failures: four more wrong passwords pass (the
    // over-long one did not count against her), the sixth failure is a 429.
    for i in 2..=5 {
        let r = post_login(&b, &csrf, "alice", "wrong password", "");
        assert_eq!(r.status, 200, "failure {i}: {}", r.text());
        assert_eq!(page_error(&r.text()).as_deref(), Some(WRONG));
    }
    let r = post_login(&b, &csrf, "alice", "wrong password", "");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.text().contains("Too many"), "{}", r.text());

    // Over-long names count against their address like any failure: 20 free, then 429.
    let from = "X-Forwarded-For: 203.0.113.7\r\n";
    for i in 1..=20 {
        let r = post_login(&b, &csrf, &long_name(i), "guess", from);
        assert_eq!(r.status, 200, "failure {i}: {}", r.text());
    }
    let r = post_login(&b, &csrf, &long_name(21), "guess", from);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
}

/// A connection from `local` (an address of 127/8) to the server.
fn connect_from(local: &str, server: SocketAddr) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let local: SocketAddr = format!("{local}:0").parse().unwrap();
    socket.bind(&local.into()).unwrap();
    socket.connect(&server.into()).unwrap();
    let s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// `GET /healthz` on `s`, closing; the response (`None` if the server closed first).
fn healthz(s: &mut TcpStream) -> Option<Response> {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    read_response(s, false)
}

/// Reads the 503 the server answers a refused connection with at once (before any request,
/// so no write of ours races its close).
fn assert_refused(mut s: TcpStream) {
    let r = read_response(&mut s, false).expect("a 503, not a close");
    assert_503(&r);
}

fn assert_503(r: &Response) {
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["status"], 503, "{}", r.text());
    assert_eq!(r.json()["detail"], "too many connections");
    assert_eq!(r.header("retry-after"), Some("1"));
}

/// True when the server closed `s` (EOF or reset) before sending anything.
fn closed_silently(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match std::io::Read::read(s, &mut buf) {
        Ok(0) => true,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
        Ok(n) => panic!("the server sent {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => panic!("still open after 10 s: {e}"),
    }
}

#[test]
fn silent_connections_are_closed_at_the_header_timeout_and_free_their_slots() {
    let (server, port) = start(
        &[],
        &[
            ("http.max_connections", "32"),
            ("http.header_timeout", "2"),
            ("http.idle_timeout", "60"),
        ],
    );
    let mut silent: Vec<TcpStream> = (0..32).map(|_| server.connect()).collect();
    wait_for_metric(port, OPEN, 32.0);
    // Every slot is taken: a new client is refused.
    assert_refused(server.connect());
    assert!(metric(port, REFUSED_MAX) >= 1.0);

    // The header timeout from accept (2 s), not the idle timeout (60 s), ends them: each read
    // sees the close within its 10 s read timeout.
    for (i, s) in silent.iter_mut().enumerate() {
        assert!(closed_silently(s), "connection {i}");
    }
    wait_for_metric(port, OPEN, 0.0);
    let r = healthz(&mut server.connect()).expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn one_address_cannot_take_more_than_its_share_of_connections() {
    // Loopback is not a trusted proxy here, so loopback peers are held to the cap.
    let (server, port) = start(
        &["--trusted-proxy", "192.0.2.1/32"],
        &[("http.max_connections_per_address", "4")],
    );
    let held: Vec<TcpStream> = (0..4)
        .map(|_| connect_from("127.0.0.2", server.addr))
        .collect();
    wait_for_metric(port, OPEN, 4.0);

    assert_refused(connect_from("127.0.0.2", server.addr));
    assert_eq!(metric(port, REFUSED_PER_ADDRESS), 1.0);
    assert_eq!(metric(port, REFUSED_MAX), 0.0);

    let r = healthz(&mut connect_from("127.0.0.3", server.addr)).expect("an answer");
    assert_eq!(r.status, 200, "another address is served: {}", r.text());

    // Once the four close, the address is served again.
    drop(held);
    wait_for_metric(port, OPEN, 0.0);
    let r = healthz(&mut connect_from("127.0.0.2", server.addr)).expect("an answer");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_trusted_proxy_is_not_held_to_the_per_address_cap() {
    // Default trusted proxies: loopback. 12 keep-alive connections from 127.0.0.1, over the
    // cap of 4, are all served.
    let (server, port) = start(&[], &[("http.max_connections_per_address", "4")]);
    let mut held: Vec<TcpStream> = (0..12).map(|_| server.connect()).collect();
    for (i, s) in held.iter_mut().enumerate() {
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let r = read_response(s, false).expect("an answer");
        assert_eq!(r.status, 200, "connection {i}: {}", r.text());
    }
    assert_eq!(metric(port, OPEN), 12.0);
    assert_eq!(metric(port, REFUSED_PER_ADDRESS), 0.0);
}
