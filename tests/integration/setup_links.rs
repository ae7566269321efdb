//! Invite and reset links against the real binary: a link works once, a too-short password is
//! refused without using it, a missing CSRF token is refused, the new password signs in, and
//! the token never reaches the server's log.

use serde_json::Value;

use crate::support::Server;
use crate::support::browser::{Browser, hidden_input};

const NEW_PASSWORD: &str = "a brand new passphrase";

fn invite(server: &Server, name: &str) -> String {
    let v: Value = serde_json::from_str(&server.cli_ok(&[
        "user",
        "invite",
        name,
        "--issuer",
        &server.issuer(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["has_password"], false, "{v}");
    assert!(v["expires_at"].is_i64(), "{v}");
    v["link"].as_str().unwrap().to_string()
}

#[test]
fn an_invite_link_works_once_and_never_reaches_the_log() {
    let server = Server::start_with(&["--log-level", "trace"], |_| {});
    crate::support::init_data_dir(&server.data_dir);
    let link = invite(&server, "carol");
    let token = link.split("token=").nth(1).unwrap().to_string();
    let path = link.strip_prefix(&server.issuer()).unwrap().to_string();
    let mut b = Browser::new(&server);
    let page = b.get(&path);
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("autocomplete=\"new-password\""), "{html}");
    let csrf = hidden_input(&html, "csrf").unwrap();
    // A second GET does not use it.
    assert_eq!(b.get(&path).status, 200);

    let r = b.post(
        "/account/setup",
        &[
            ("token", &token),
            ("method", "password"),
            ("password", "short"),
            ("password2", "short"),
        ],
    );
    assert_eq!(r.status, 403, "no CSRF token");
    let r = b.post(
        "/account/setup",
        &[
            ("csrf", &csrf),
            ("token", &token),
            ("method", "password"),
            ("password", "short"),
            ("password2", "short"),
        ],
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("a password needs at least 8 characters"),
        "{}",
        r.text()
    );
    let ok = [
        ("csrf", csrf.as_str()),
        ("token", token.as_str()),
        ("method", "password"),
        ("password", NEW_PASSWORD),
        ("password2", NEW_PASSWORD),
    ];
    let r = b.post("/account/setup", &ok);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/account"));
    let r = b.post("/account/setup", &ok);
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("This link is no longer valid. Ask your administrator for a new one.")
    );
    assert_eq!(Browser::new(&server).get(&path).status, 400);

    // The new password signs in.
    let mut other = Browser::new(&server);
    let r = other.submit_login("/login", "carol", NEW_PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());

    let out = server.cli(&["user", "invite", "carol"]);
    assert_eq!(out.status.code(), Some(2), "an existing name");
    let logs = server.logs();
    assert!(!logs.contains(&token), "the token is in the log");
}

/// A reset link: a newer one kills the older, using it ends the user's existing sessions, and
/// the old password stops working while the new one works.
#[test]
fn a_reset_link_kills_the_older_one_and_ends_sessions() {
    let server = Server::start();
    crate::support::add_user(&server.data_dir, "alice", &[]);
    let mut before = Browser::new(&server);
    assert_eq!(
        before
            .submit_login("/login", "alice", crate::support::PASSWORD)
            .status,
        303
    );
    assert!(before.get("/").text().contains("alice"), "signed in");
    let link = |server: &Server| -> String {
        let v: Value =
            serde_json::from_str(&server.cli_ok(&["user", "reset", "alice", "--json"])).unwrap();
        v["link"].as_str().unwrap().to_string()
    };
    let old = link(&server);
    let new = link(&server);
    let mut b = Browser::new(&server);
    assert_eq!(b.get(&old).status, 400, "the older link died");
    let page = b.get(&new);
    assert_eq!(page.status, 200);
    let csrf = hidden_input(&page.text(), "csrf").unwrap();
    let token = new.split("token=").nth(1).unwrap();
    let r = b.post(
        "/account/setup",
        &[
            ("csrf", &csrf),
            ("token", token),
            ("method", "password"),
            ("password", NEW_PASSWORD),
            ("password2", NEW_PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let home = before.get("/");
    assert!(
        !home.text().contains("alice"),
        "the earlier session ended: {}",
        home.text()
    );
    let r = Browser::new(&server).submit_login("/login", "alice", crate::support::PASSWORD);
    assert_eq!(r.status, 200, "the old password is refused");
    let r = Browser::new(&server).submit_login("/login", "alice", NEW_PASSWORD);
    assert_eq!(r.status, 303);
}

/// A link past its `--ttl` is dead; "Set up a passkey instead" uses the link without setting a
/// password and signs the browser in, on its way to the passkey page.
#[test]
fn an_expired_link_is_refused_and_the_passkey_choice_signs_in_without_a_password() {
    let server = Server::start();
    crate::support::init_data_dir(&server.data_dir);
    let issuer = server.issuer();
    let out = server.cli_ok(&["user", "invite", "dave", "--ttl", "1s", "--issuer", &issuer]);
    let short = out
        .split_whitespace()
        .find(|w| w.contains("/account/setup?token="))
        .unwrap_or_else(|| panic!("no link in {out}"))
        .strip_prefix(issuer.as_str())
        .unwrap()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = Browser::new(&server).get(&short);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("This link is no longer valid."));

    let link = invite(&server, "erin");
    let token = link.split("token=").nth(1).unwrap().to_string();
    let mut b = Browser::new(&server);
    let html = b.get(link.strip_prefix(&issuer).unwrap()).text();
    let csrf = hidden_input(&html, "csrf").unwrap();
    let r = b.post(
        "/account/setup",
        &[("csrf", &csrf), ("token", &token), ("method", "passkey")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/account/passkeys"));
    assert_eq!(b.get("/account").status, 200, "signed in");
    let v: Value =
        serde_json::from_str(&server.cli_ok(&["user", "show", "erin", "--json"])).unwrap();
    assert_eq!(v["has_password"], false, "{v}");
}

/// `user reset` keeps the user's second factors; `--reset-mfa` removes them and ends the
/// user's sessions at once. `user mfa --require / --no-require` shows in the user's JSON.
#[test]
fn reset_keeps_second_factors_unless_asked_and_user_mfa_sets_the_requirement() {
    let server = Server::start_with(&[], |dir| {
        crate::support::add_user(dir, "alice", &[]);
    });
    crate::oauth::db(&server.data_dir)
        .execute(
            "INSERT INTO totp (user_id, secret, created_at) \
             SELECT id, x'0102030405060708090a0b0c0d0e0f1011121314', 1 FROM users \
             WHERE username = 'alice'",
            [],
        )
        .unwrap();
    let mut b = Browser::new(&server);
    let r = b.submit_login("/login", "alice", crate::support::PASSWORD);
    assert_eq!(r.status, 303);
    let factors = |args: &[&str]| -> Value {
        let v: Value = serde_json::from_str(&server.cli_ok(args)).unwrap();
        v["second_factors"].clone()
    };
    assert_eq!(
        factors(&["user", "reset", "alice", "--json"])["totp"],
        true,
        "a plain reset keeps the authenticator"
    );
    assert_eq!(
        factors(&["user", "reset", "alice", "--reset-mfa", "--json"])["totp"],
        false
    );
    let v: Value =
        serde_json::from_str(&server.cli_ok(&["user", "session", "list", "alice", "--json"]))
            .unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(0), "sessions ended: {v}");

    let v: Value =
        serde_json::from_str(&server.cli_ok(&["user", "mfa", "alice", "--require", "--json"]))
            .unwrap();
    assert_eq!(v["mfa_required"], true, "{v}");
    let out = server.cli(&["user", "mfa", "alice", "--require", "--no-require"]);
    assert_eq!(out.status.code(), Some(2));
    let out = server.cli(&["user", "mfa", "nobody", "--require"]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value =
        serde_json::from_str(&server.cli_ok(&["user", "mfa", "alice", "--no-require", "--json"]))
            .unwrap();
    assert_eq!(v["mfa_required"], false, "{v}");
}
