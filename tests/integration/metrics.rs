//! Prometheus metrics on their own listener (`serve --metrics-listen`), not on the public one.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{Server, free_port, metric_value as value, read_response};

fn get(port: u16, path: &str) -> crate::support::Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    read_response(&mut s, false).unwrap()
}

#[test]
fn metrics_count_requests_tokens_and_failures_on_their_own_listener() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with(&["--metrics-listen", &listen], |_| {});
    let c = server.client("svc", "read");
    server.token(&c, None);
    server.token(&c, None);
    assert_eq!(server.get("/nope").status, 404);
    let bad = server.post_form(
        "/token",
        "grant_type=client_credentials&client_id=x&client_secret=y",
        "",
    );
    assert_eq!(bad.status, 401);

    // Not on the public listener.
    assert_eq!(server.get("/metrics").status, 404);

    let r = get(port, "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    assert_eq!(
        value(
            &text,
            r#"latchkey_http_requests_total{endpoint="/token",status="200"}"#
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"latchkey_http_requests_total{endpoint="/token",status="401"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"latchkey_http_requests_total{endpoint="other",status="404"}"#
        ),
        Some(2.0),
        "the unknown path and /metrics on the public port: {text}"
    );
    assert_eq!(
        value(
            &text,
            r#"latchkey_tokens_issued_total{grant="client_credentials"}"#
        ),
        Some(2.0),
        "{text}"
    );
    let count = value(&text, "latchkey_http_request_duration_seconds_count").unwrap();
    let inf = value(
        &text,
        r#"latchkey_http_request_duration_seconds_bucket{le="+Inf"}"#,
    )
    .unwrap();
    assert_eq!(count, inf);
    assert!(count >= 5.0, "{text}");
    for name in [
        "latchkey_logins_total",
        "latchkey_login_failures_total",
        "latchkey_api_key_checks_total",
        "latchkey_api_key_rejections_total",
        "latchkey_rate_limited_total",
        "latchkey_database_errors_total",
    ] {
        assert!(value(&text, name).is_some(), "{name} missing: {text}");
        assert!(text.contains(&format!("# TYPE {name} counter")), "{text}");
    }
    // Only /metrics is served there.
    assert_eq!(get(port, "/token").status, 404);
}
