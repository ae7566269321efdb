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
