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
