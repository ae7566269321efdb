//! No secret ever reaches a log line: a full flow (sign-in, consent, code, tokens, refresh,
//! UserInfo, client credentials, API keys, forward auth, revocation, a failed sign-in) runs
//! against a server logging at `trace`, and the log output is searched for every secret the
//! flow handled.

use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::digest;
use serde_json::Value;

use crate::support::browser::{Browser, query_param};
use crate::support::{PASSWORD, Server, add_user, basic_header, form_encode};

const WRONG_PASSWORD: &str = "incorrect-horse-guess-42";
const CB: &str = "http://127.0.0.1:9/cb";

#[test]
fn a_full_flow_leaves_no_secret_in_the_logs() {
    let server = Server::start_with(&["--log-level", "trace"], |_| {});
    let mut secrets: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, s: &str| secrets.push((what.to_string(), s.to_string()));
    keep("password", PASSWORD);
    keep("wrong password", WRONG_PASSWORD);

    add_user(&server.data_dir, "alice", &["--group", "admins"]);
    let rp: Value = serde_json::from_str(&server.cli_ok(&[
        "client",
        "add",
        "app",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        CB,
        "--json",
    ]))
    .unwrap();
    let (id, secret) = (
        rp["client_id"].as_str().unwrap().to_string(),
        rp["client_secret"].as_str().unwrap().to_string(),
    );
    keep("client secret", &secret);
    let svc = server.client("svc", "read");
    keep("service secret", &svc.secret);
    let key: Value = serde_json::from_str(
        &server.cli_ok(&["apikey", "create", "robot", "--scope", "app:read", "--json"]),
    )
    .unwrap();
    let api_key = key["key"].as_str().unwrap().to_string();
    keep("API key", &api_key);
    server.cli_ok(&[
        "rule",
        "add",
        "--host",
        "app.test",
        "--allow-group",
        "admins",
        "--scope",
        "app:read",
    ]);
    // The running server picks up the new key and rule within a second.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let r = server.raw(format!("GET /v1/apikeys/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-API-Key: {api_key}\r\n\r\n").as_bytes());
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the new key never worked");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Sign-in, consent and code with PKCE.
    let verifier = "a".repeat(20) + "-verifier-for-the-log-test-0123456789";
    keep("PKCE verifier", &verifier);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    let authorize = format!(
        "/authorize?client_id={id}&redirect_uri={}&response_type=code&scope=openid+profile&state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256",
        form_encode(CB)
    );
    let mut b = Browser::new(&server);
    // A failed attempt first.
    let r = b.get(&authorize);
    let to_login = r.header("location").unwrap().to_string();
    let r = b.submit_login(&to_login, "alice", WRONG_PASSWORD);
    assert_eq!(r.status, 200);
    let callback = b.login("alice", PASSWORD, &authorize);
    let code = query_param(&callback, "code").unwrap();
    keep("authorization code", &code);
    for c in ["latchkey-session", "latchkey-csrf"] {
        keep(c, b.cookie(c).unwrap());
    }

    let r = server.post_form(
        "/token",
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
            form_encode(CB)
        ),
        &basic_header(&id, &secret),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    for f in ["access_token", "refresh_token", "id_token"] {
        keep(f, t[f].as_str().unwrap());
    }
    let r = server.raw(
        format!(
            "GET /userinfo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
            t["access_token"].as_str().unwrap()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 200);
    let r = server.post_form(
        "/token",
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            t["refresh_token"].as_str().unwrap()
        ),
        &basic_header(&id, &secret),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let t2 = r.json();
    keep(
        "rotated refresh token",
        t2["refresh_token"].as_str().unwrap(),
    );
    keep("second access token", t2["access_token"].as_str().unwrap());
    // Replaying the first refresh token (revokes the family).
    let r = server.post_form(
        "/token",
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            t["refresh_token"].as_str().unwrap()
        ),
        &basic_header(&id, &secret),
    );
    assert_eq!(r.status, 400);

    // Client credentials, introspection, revocation.
    let cc = server.token(&svc, None);
    keep("client-credentials token", &cc);
    let r = server.post_basic("/introspect", &svc, &format!("token={}", form_encode(&cc)));
    assert_eq!(r.json()["active"], true);
    let r = server.post_basic("/introspect", &svc, &format!("token={api_key}"));
    assert_eq!(r.json()["active"], true);
    let r = server.post_basic("/revoke", &svc, &format!("token={}", form_encode(&cc)));
    assert_eq!(r.status, 200);

    // API key checks, including mistakes: in the URL query and the URL path.
    for extra in [
        format!("X-API-Key: {api_key}\r\n"),
        format!("Authorization: Bearer {api_key}\r\n"),
    ] {
        let r = server.raw(
            format!(
                "GET /v1/apikeys/verify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        server
            .get(&format!("/v1/apikeys/verify?api_key={api_key}"))
            .status,
        400
    );
    assert_eq!(server.get(&format!("/v1/apikeys/{api_key}")).status, 404);

    // Forward auth with a session (sign in through rd) and with the key.
    let mut fb = Browser::new(&server);
    let page = fb.get("/login?rd=http%3A%2F%2Fapp.test%2F");
    let html = page.text();
    let field = |n: &str| crate::support::browser::hidden_input(&html, n).unwrap();
    let (csrf, rd) = (field("csrf"), field("rd"));
    assert_eq!(rd, "http://app.test/");
    let r = fb.post(
        "/login",
        &[
            ("csrf", &csrf),
            ("rd", &rd),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let fa = fb.cookie("latchkey-fa").unwrap().to_string();
    keep("forward-auth cookie", &fa);
    keep("second session", fb.cookie("latchkey-session").unwrap());
    let fwd = "X-Forwarded-Host: app.test\r\nX-Forwarded-Uri: /\r\nX-Forwarded-Proto: http\r\n";
    let r = server.raw(format!("GET /api/forward-auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{fwd}Cookie: latchkey-fa={fa}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200);
    let r = server.raw(format!("GET /api/forward-auth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{fwd}X-API-Key: {api_key}\r\n\r\n").as_bytes());
    assert_eq!(r.status, 200);
    let r = b.sign_out();
    assert_eq!(r.status, 200);

    // Stop cleanly (flushes and logs the shutdown), then search everything it wrote.
    let mut server = server;
    assert!(server.sigterm().success());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.logs().contains("stopped") {
        assert!(Instant::now() < deadline, "no shutdown line");
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = server.logs();
    assert!(logs.contains("latchkey::access"), "access logging is on");
    assert!(
        logs.contains("latchkey::security"),
        "security logging is on"
    );
    for (what, s) in &secrets {
        assert!(!s.is_empty());
        assert!(!logs.contains(s.as_str()), "the {what} appears in the logs");
        // Also no recognisable part of a JWT (its signature) or of a long secret.
        if s.len() > 40 {
            let tail = &s[s.len() - 24..];
            assert!(
                !logs.contains(tail),
                "the end of the {what} appears in the logs"
            );
        }
    }
    assert!(
        logs.contains("lk_[redacted]"),
        "the key in the URL path was redacted"
    );
}
