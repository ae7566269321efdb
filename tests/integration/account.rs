//! The account page against the real binary.

use crate::support::browser::{Browser, hidden_input, location};
use crate::support::{PASSWORD, Server, add_user};

#[test]
fn the_account_page_needs_a_sign_in_and_its_forms_a_csrf_token() {
    let server = Server::start_with(&[], |dir| {
        add_user(dir, "alice", &[]);
    });
    let mut b = Browser::new(&server);
    let r = b.get("/account");
    assert_eq!(r.status, 303);
    assert_eq!(location(&r), "/login?return_to=%2Faccount");
    let r = b.submit_login(&location(&r), "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/account");
    let page = b.get("/account");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    assert!(
        html.contains("alice") && html.contains("This device"),
        "{html}"
    );
    assert!(html.contains("href=\"/account/totp\""), "{html}");
    let r = b.post("/account/profile", &[("name", "Alice A")]);
    assert_eq!(r.status, 403, "{}", r.text());
    let csrf = hidden_input(&html, "csrf").unwrap();
    let r = b.post("/account/profile", &[("csrf", &csrf), ("name", "Alice A")]);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/account?done=profile");
    let html = b.get("/account?done=profile").text();
    assert!(
        html.contains("Alice A") && html.contains("Your profile was saved."),
        "{html}"
    );
    // The default (`name`) does not let a user change their email.
    let r = b.post(
        "/account/profile",
        &[("csrf", &csrf), ("email", "a@evil.example")],
    );
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn a_password_change_ends_the_other_session_and_a_foreign_session_id_is_refused() {
    let server = Server::start_with(&[], |dir| {
        add_user(dir, "alice", &[]);
    });
    let mut a = Browser::new(&server);
    let mut other = Browser::new(&server);
    for b in [&mut a, &mut other] {
        let r = b.submit_login("/login?return_to=%2Faccount", "alice", PASSWORD);
        assert_eq!(r.status, 303, "{}", r.text());
    }
    let html = a.get("/account").text();
    let csrf = hidden_input(&html, "csrf").unwrap();
    let r = a.post(
        "/account/sessions/end",
        &[("csrf", &csrf), ("id", "0123456789ab")],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let pw = |cur: &str, new: &str, again: &str| {
        vec![
            ("csrf".to_string(), csrf.clone()),
            ("current_password".into(), cur.into()),
            ("new_password".into(), new.into()),
            ("new_password_again".into(), again.into()),
        ]
    };
    let post = |b: &mut Browser, f: Vec<(String, String)>| {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        b.post("/account/password", &f)
    };
    let r = post(
        &mut a,
        pw("wrong", "a new long password", "a new long password"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(
        &mut a,
        pw(PASSWORD, "a new long password", "another long password"),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(
        &mut a,
        pw(PASSWORD, "a new long password", "a new long password"),
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/account?done=password");
    assert_eq!(a.get("/account").status, 200);
    assert_eq!(other.get("/account").status, 303, "the other session ended");
    let r = Browser::new(&server).submit_login("/login", "alice", PASSWORD);
    assert_eq!(r.status, 200, "the old password no longer works");
}
