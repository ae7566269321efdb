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

/// Two browsers of alice's: the account page lists both, "sign out everywhere else" ends the
/// other one (it is sent to the login page), and the event is in the audit log.
#[test]
fn the_sessions_section_lists_each_browser_and_ends_the_others() {
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
    assert_eq!(
        html.matches("name=\"id\" value=\"").count(),
        2,
        "one end button for the other session and one 'everywhere else': {html}"
    );
    assert!(html.contains("This device"), "{html}");
    let csrf = hidden_input(&html, "csrf").unwrap();
    let r = a.post(
        "/account/sessions/end",
        &[("csrf", &csrf), ("id", "others")],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        other.get("/account").status,
        303,
        "the other browser is signed out"
    );
    assert_eq!(a.get("/account").status, 200, "this one is not");
    let audit = server.cli_ok(&["audit", "--json"]);
    assert!(audit.contains("\"session_ended\""), "{audit}");
}

/// Revoking an app on the account page forgets the consent and kills the refresh token the
/// app holds: the token endpoint answers `invalid_grant`. Revoking an app that has no consent
/// is 404.
#[test]
fn revoking_an_app_kills_its_refresh_token() {
    use crate::mfa_policy::{CB, authorize_url, code_of, redeem};
    use crate::support::basic_header;
    use crate::support::browser::encode_form;
    let server = Server::start_with(&[], |dir| {
        add_user(dir, "alice", &[]);
    });
    let v: serde_json::Value = serde_json::from_str(&server.cli_ok(&[
        "client",
        "add",
        "Photo Gallery",
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        CB,
        "--no-require-pkce",
        "--json",
    ]))
    .unwrap();
    let app = (
        v["client_id"].as_str().unwrap().to_string(),
        v["client_secret"].as_str().unwrap().to_string(),
    );
    let mut b = Browser::new(&server);
    let callback = b.login("alice", PASSWORD, &authorize_url(&app.0, &[]));
    let r = redeem(&server, &app, &code_of(&callback));
    assert_eq!(r.status, 200, "{}", r.text());
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_string();
    let refresh_with = |token: &str| {
        server.post_form(
            "/token",
            &encode_form(&[("grant_type", "refresh_token"), ("refresh_token", token)]),
            &basic_header(&app.0, &app.1),
        )
    };
    let r = refresh_with(&refresh);
    assert_eq!(
        r.status,
        200,
        "the refresh token works before: {}",
        r.text()
    );
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_string();

    let html = b.get("/account").text();
    assert!(html.contains("Photo Gallery"), "the app is listed: {html}");
    let csrf = hidden_input(&html, "csrf").unwrap();
    let r = b.post(
        "/account/consents/revoke",
        &[("csrf", &csrf), ("client_id", "no-such-client")],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = b.post(
        "/account/consents/revoke",
        &[("csrf", &csrf), ("client_id", &app.0)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    let html = b.get(&location(&r)).text();
    assert!(!html.contains("Photo Gallery"), "the app is gone: {html}");
    let r = refresh_with(&refresh);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_grant");
    let audit = server.cli_ok(&["audit", "--json"]);
    assert!(audit.contains("\"consent_revoked\""), "{audit}");
}

/// Wrong current passwords on the password form count like wrong passwords at sign-in: after
/// the free failures the form answers 429 with `Retry-After`, even for the right password. A
/// too-short new password is refused with the rule's message.
#[test]
fn the_password_form_is_throttled_like_the_sign_in_and_checks_the_new_password() {
    let server = Server::start_with(&[], |dir| {
        add_user(dir, "alice", &[]);
    });
    let mut b = Browser::new(&server);
    let r = b.submit_login("/login?return_to=%2Faccount", "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let csrf = hidden_input(&b.get("/account").text(), "csrf").unwrap();
    let change = |b: &mut Browser, current: &str, new: &str| {
        b.post(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current_password", current),
                ("new_password", new),
                ("new_password_again", new),
            ],
        )
    };
    let r = change(&mut b, PASSWORD, "short");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("at least 8 characters"), "{}", r.text());
    // Wrong passwords until the account is locked for at least 4 s (locks grow 1 s, 2 s,
    // 4 s …: waiting out the short ones keeps a slow machine from outliving the lock before
    // the right password is tried).
    let mut locked_for = 0;
    for _ in 0..20 {
        let r = change(&mut b, "not the password", "a new long password");
        if r.status == 429 {
            let wait: u64 = r
                .header("retry-after")
                .expect("429 without Retry-After")
                .parse()
                .unwrap();
            if wait >= 4 {
                locked_for = wait;
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(wait));
            continue;
        }
        assert_eq!(r.status, 400, "{}", r.text());
    }
    assert!(
        locked_for >= 4,
        "wrong current passwords never locked the account"
    );
    let r = change(&mut b, PASSWORD, "a new long password");
    assert_eq!(
        r.status,
        429,
        "locked even for the right password: {}",
        r.text()
    );
}
