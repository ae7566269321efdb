//! The database does not grow without bound under a steady load: rounds of token issuing,
//! revocation and refresh-token rotation leave rows behind only until they expire, and the
//! background collection (here every second) removes them. Expiry is simulated by moving the
//! stored expiry times into the past after each round — the shortest real lifetimes are
//! minutes — so each round ends where the previous one did.

use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::digest;

use crate::oauth::{db, now};
use crate::support::browser::{Browser, query_param};
use crate::support::{Server, basic_header, form_encode};

const CB: &str = "http://127.0.0.1:9/cb";

/// Rows in the tables a steady load writes to.
fn counts(server: &Server) -> Vec<(String, i64)> {
    let conn = db(&server.data_dir);
    [
        "revoked_tokens",
        "refresh_tokens",
        "grant_tokens",
        "auth_codes",
        "grants",
        "sessions",
        "audit_log",
    ]
    .iter()
    .map(|t| {
        let n: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
            .unwrap();
        (t.to_string(), n)
    })
    .collect()
}

/// Pages in use (the file's size less its free list).
fn used_pages(server: &Server) -> i64 {
    let conn = db(&server.data_dir);
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    pages - free
}

#[test]
fn steady_load_leaves_the_database_no_bigger_once_rows_expire() {
    let server = Server::start_with(&["--log-level", "warn"], |dir| {
        crate::support::latchkey_ok(dir, &["settings", "set", "gc.interval", "1"]);
    });
    crate::support::add_user_with_password(&server.data_dir, "alice", "steady-load-password", &[]);
    let rp: serde_json::Value = serde_json::from_str(&server.cli_ok(&[
        "client",
        "add",
        "app",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        CB,
        "--skip-consent",
        "--json",
    ]))
    .unwrap();
    let (id, secret) = (
        rp["client_id"].as_str().unwrap().to_string(),
        rp["client_secret"].as_str().unwrap().to_string(),
    );
    let svc = server.client("svc", "read");

    // One grant whose refresh token the load rotates.
    let verifier = "v".repeat(50);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    let callback = Browser::new(&server).login(
        "alice",
        "steady-load-password",
        &format!(
            "/authorize?client_id={id}&redirect_uri={}&response_type=code&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
            form_encode(CB)
        ),
    );
    let code = query_param(&callback, "code").unwrap();
    let r = server.post_form(
        "/token",
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={verifier}",
            form_encode(CB)
        ),
        &basic_header(&id, &secret),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut refresh = r.json()["refresh_token"].as_str().unwrap().to_string();

    let mut after_rounds = Vec::new();
    for round in 0..4 {
        for _ in 0..100 {
            let t = server.token(&svc, None);
            let r = server.post_basic("/revoke", &svc, &format!("token={}", form_encode(&t)));
            assert_eq!(r.status, 200);
            let r = server.post_form(
                "/token",
                &format!("grant_type=refresh_token&refresh_token={refresh}"),
                &basic_header(&id, &secret),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
        }
        let during = counts(&server);
        let grown = |t: &str| during.iter().find(|(n, _)| n == t).unwrap().1;
        assert!(grown("revoked_tokens") >= 100, "round {round}: {during:?}");
        assert!(grown("refresh_tokens") >= 100, "round {round}: {during:?}");

        // The round's audit events (200 tokens issued) are written in batches: wait for them.
        let conn = db(&server.data_dir);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n: i64 = conn
                .query_row(
                    "SELECT COALESCE(SUM(count), 0) FROM audit_log WHERE action = 'token_issued'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if n >= 200 {
                break;
            }
            assert!(Instant::now() < deadline, "audit events never written: {n}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Time passes: everything of this round expires (the live refresh token stays live).
        let past = now() - 1;
        conn.execute("UPDATE revoked_tokens SET expires_at = ?1", [past])
            .unwrap();
        conn.execute("UPDATE grant_tokens SET expires_at = ?1", [past])
            .unwrap();
        // Access tokens issued with a refresh token are recorded in its row (schema 10).
        conn.execute(
            "UPDATE refresh_tokens SET access_expires_at = ?1 WHERE access_expires_at IS NOT NULL",
            [past],
        )
        .unwrap();
        conn.execute(
            "UPDATE refresh_tokens SET idle_expires_at = ?1 WHERE used_at IS NOT NULL",
            [past],
        )
        .unwrap();
        conn.execute("UPDATE auth_codes SET expires_at = ?1", [past - 601])
            .unwrap();
        // The audit log keeps every token issued for audit.retention_days (90): let that pass
        // too, or its rows would be the growth measured below.
        conn.execute("UPDATE audit_log SET time = ?1", [past - 91 * 86_400])
            .unwrap();
        drop(conn);

        let deadline = Instant::now() + Duration::from_secs(5);
        let settled = loop {
            let c = counts(&server);
            let left = |t: &str| c.iter().find(|(n, _)| n == t).unwrap().1;
            if left("revoked_tokens") == 0
                && left("grant_tokens") == 0
                && left("refresh_tokens") == 1
                && left("auth_codes") == 0
                && left("audit_log") == 0
            {
                break c;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: rows were not collected: {c:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        // The grant and the browser session stay: they are alive.
        assert!(settled.contains(&("grants".to_string(), 1)), "{settled:?}");
        after_rounds.push((used_pages(&server), settled.clone()));
    }
    // Freed pages are reused: after the first round has grown the tables' B-trees to their
    // working size, later rounds do not make the file's used part grow (a couple of pages of
    // slack for where rows happen to land).
    let settled = after_rounds[1].0;
    assert!(
        after_rounds[2..].iter().all(|(p, _)| *p <= settled + 2),
        "the database keeps growing: used pages after each round {after_rounds:?}"
    );
    // The refresh token from the load still works: the collection removed nothing live.
    let r = server.post_form(
        "/token",
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        &basic_header(&id, &secret),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
