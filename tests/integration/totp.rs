//! TOTP and recovery codes against the real binary, with codes computed by the independent
//! `totp-rs` crate from the key scraped off the enrolment page: enrolment (a wrong code and an
//! altered page refused), the second factor after the password, replay and drift, recovery
//! codes (single use, "N left", regeneration), the lockout shared with passwords, removal
//! ending the other sessions, step-up for a client that requires a second factor (the ID
//! token's `amr`/`acr` checked with `jsonwebtoken`) and enrolment on demand.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::mfa_policy::{add_app, authorize_url, code_of, id_claims, redeem};
use crate::oauth::db;
use crate::support::browser::{Browser, hidden_input, html_unescape, location, query_param};
use crate::support::{PASSWORD, Server, add_user};

const ACR_MFA: &str = "urn:latchkey:acr:mfa";
const WRONG: &str = "That code is not right.";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits, if needed, until the current 30-second step has at least 20 seconds left, so codes
/// computed now for steps relative to this one mean the same to the server.
fn early_in_a_step() -> u64 {
    let now = unix_now();
    if now % 30 > 10 {
        std::thread::sleep(Duration::from_secs(30 - now % 30));
    }
    unix_now()
}

/// The code `totp-rs` computes for a base32 key at Unix time `t`.
fn code_at(key: &str, t: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(key).expect("the page shows base32");
    totp_rs::Builder::new()
        .with_secret(secret)
        .build()
        .expect("a 160-bit SHA-1 TOTP")
        .generate(t)
        .to_string()
}

/// A six-digit code that is none of the key's codes around `t`.
fn wrong_code(key: &str, t: u64) -> String {
    let near: Vec<String> = (0..5).map(|i| code_at(key, t + i * 30 - 60)).collect();
    (0..)
        .map(|i| format!("{:06}", (123_456 + i * 7919) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// The key on an enrolment page, from its `otpauth://` URI (checking the URI's parameters).
fn key_of(html: &str) -> String {
    let start = html.find("href=\"otpauth://totp/").expect("an otpauth URI") + 6;
    let end = start + html[start..].find('"').unwrap();
    let uri = html_unescape(&html[start..end]);
    assert!(
        uri.starts_with("otpauth://totp/127.0.0.1:alice?") || uri.contains(":alice?"),
        "{uri}"
    );
    for p in ["algorithm=SHA1", "digits=6", "period=30", "issuer="] {
        assert!(uri.contains(p), "{uri} lacks {p}");
    }
    let key = query_param(&uri, "secret").unwrap();
    assert_eq!(key.len(), 32, "160 bits in unpadded base32: {key}");
    key
}

/// A browser signed in with alice's password alone (she has no second factor yet).
fn signed_in(server: &Server) -> Browser<'_> {
    let mut b = Browser::new(server);
    let r = b.submit_login("/login", "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/");
    b
}

/// Posts the enrolment form on `page` with `code`.
fn post_enrolment(b: &mut Browser<'_>, page: &str, code: &str) -> crate::support::Response {
    let f = |n| hidden_input(page, n).unwrap_or_else(|| panic!("enrolment page has {n}"));
    let (csrf, sealed, return_to, rd) = (f("csrf"), f("sealed"), f("return_to"), f("rd"));
    b.post(
        "/account/totp",
        &[
            ("csrf", &csrf),
            ("sealed", &sealed),
            ("return_to", &return_to),
            ("rd", &rd),
            ("code", code),
        ],
    )
}

/// Enrols alice's authenticator at `url` (an `/account/totp…` URL) in a signed-in browser;
/// returns the key, the recovery codes shown and the "Continue" target.
fn enrol(b: &mut Browser<'_>, url: &str, t: u64) -> (String, Vec<String>, String) {
    let r = b.get(url);
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    assert!(page.contains("<svg "), "a QR code");
    let key = key_of(&page);
    let r = post_enrolment(b, &page, &code_at(&key, t));
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|s| s.split('<').next().unwrap().to_string())
        .collect();
    let start = html
        .find("id=\"continue\" href=\"")
        .expect("a Continue link")
        + 20;
    let next = html_unescape(&html[start..start + html[start..].find('"').unwrap()]);
    (key, codes, next)
}

/// Signs in with the password in a fresh browser (for `url`, or `/`); returns the browser and
/// the second-factor page's HTML.
fn to_second_factor<'a>(server: &'a Server, return_to: Option<&str>) -> (Browser<'a>, String) {
    let mut b = Browser::new(server);
    let login = match return_to {
        Some(url) => {
            let r = b.get(url);
            assert_eq!(r.status, 303, "{}", r.text());
            location(&r)
        }
        None => "/login".to_string(),
    };
    let r = b.submit_login(&login, "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let to = location(&r);
    assert!(to.starts_with("/login/second-factor?return_to="), "{to}");
    let r = b.get(&to);
    assert_eq!(r.status, 200, "{}", r.text());
    (b, r.text())
}

fn post_code(b: &mut Browser<'_>, page: &str, code: &str) -> crate::support::Response {
    let csrf = hidden_input(page, "csrf").unwrap();
    let return_to = hidden_input(page, "return_to").unwrap();
    b.post(
        "/login/second-factor",
        &[("csrf", &csrf), ("return_to", &return_to), ("code", code)],
    )
}

/// Alice's authenticator forgets which steps it accepted (so drift can be tried again).
fn forget_steps(server: &Server) {
    db(&server.data_dir)
        .execute("UPDATE totp SET last_step = 0", [])
        .unwrap();
}

#[test]
fn enrolment_then_password_and_code_with_replay_and_drift() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut b = signed_in(&server);
    let t = early_in_a_step();
    // Enrolment: a wrong code re-shows the same key; an altered page is refused.
    let r = b.get("/account/totp");
    assert_eq!(r.status, 200);
    let page = r.text();
    let key = key_of(&page);
    let r = post_enrolment(&mut b, &page, &wrong_code(&key, t));
    assert_eq!(r.status, 200);
    assert!(r.text().contains("That code is not right."), "{}", r.text());
    assert_eq!(key_of(&r.text()), key, "the same key again");
    let altered = page.replace("name=\"sealed\" value=\"", "name=\"sealed\" value=\"AA");
    let r = post_enrolment(&mut b, &altered, &code_at(&key, t));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("expired or was altered"), "{}", r.text());
    assert_eq!(server.get("/account/totp").status, 303, "not signed in");
    // The right code turns it on and shows ten recovery codes once.
    let r = post_enrolment(&mut b, &page, &code_at(&key, t));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().matches("<li><code>").count(), 10);
    let r = b.get("/account/totp");
    assert!(r.text().contains("An authenticator app is set up"));
    assert!(r.text().contains("10 recovery codes left."));

    // Sign-in: the password, then the code.
    let (mut b2, page) = to_second_factor(&server, None);
    assert!(page.contains("autocomplete=\"one-time-code\""));
    assert!(page.contains("inputmode=\"numeric\""));
    assert!(!page.contains("passkey-second-factor"), "no passkeys");
    // The enrolment's code is used already.
    let r = post_code(&mut b2, &page, &code_at(&key, t));
    assert_eq!(r.status, 200);
    assert!(r.text().contains(WRONG), "{}", r.text());
    // One step ahead (a fast clock) is accepted.
    let next = code_at(&key, t + 30);
    let r = post_code(&mut b2, &page, &next);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/");
    assert!(b2.get("/").text().contains("signed in as alice"));
    // Replayed in another browser: refused like a wrong code.
    let (mut b3, page) = to_second_factor(&server, None);
    let r = post_code(&mut b3, &page, &next);
    assert!(r.text().contains(WRONG), "replay: {}", r.text());
    // One step behind (a slow clock) is accepted; two steps either way are not.
    forget_steps(&server);
    for far in [t + 60, t - 60] {
        let r = post_code(&mut b3, &page, &code_at(&key, far));
        assert!(r.text().contains(WRONG), "{far}: {}", r.text());
    }
    let r = post_code(&mut b3, &page, &code_at(&key, t - 30));
    assert_eq!(r.status, 303, "{}", r.text());
    // Without a session the page sends the browser to sign in.
    let r = Browser::new(&server).get("/login/second-factor?return_to=%2F");
    assert_eq!(r.status, 303);
    assert!(
        location(&r).starts_with("/login?return_to="),
        "{}",
        location(&r)
    );
}

#[test]
fn recovery_codes_are_single_use_say_how_many_are_left_and_regenerate() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut a = signed_in(&server);
    let (_, codes, next) = enrol(&mut a, "/account/totp", early_in_a_step());
    assert_eq!(next, "/account");
    assert_eq!(codes.len(), 10);
    let (mut b, page) = to_second_factor(&server, None);
    let r = post_code(&mut b, &page, &codes[0]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("9 recovery codes left."), "{}", r.text());
    assert!(r.text().contains("href=\"/\""), "Continue: {}", r.text());
    assert!(b.get("/").text().contains("signed in as alice"));
    // Used once; typed another way it is the same code.
    let (mut c, page) = to_second_factor(&server, None);
    let r = post_code(&mut c, &page, &codes[0].to_uppercase().replace('-', " "));
    assert!(r.text().contains(WRONG), "{}", r.text());
    let r = post_code(&mut c, &page, &codes[1].to_uppercase());
    assert!(r.text().contains("8 recovery codes left."), "{}", r.text());
    // The account page counts them, and new ones replace them all.
    let r = a.get("/account/recovery");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("8 recovery codes left."), "{}", r.text());
    let csrf = hidden_input(&r.text(), "csrf").unwrap();
    let r = a.post("/account/recovery", &[("csrf", &csrf)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().matches("<li><code>").count(), 10);
    assert!(
        a.get("/account/recovery")
            .text()
            .contains("10 recovery codes left.")
    );
    let (mut d, page) = to_second_factor(&server, None);
    let r = post_code(&mut d, &page, &codes[2]);
    assert!(r.text().contains(WRONG), "replaced: {}", r.text());
    let r = a.post("/account/recovery", &[("csrf", "forged")]);
    assert_eq!(r.status, 403);
    let audit: Vec<String> = db(&server.data_dir)
        .prepare("SELECT action FROM audit_log WHERE action IN ('totp_enrolled', 'recovery_codes_generated', 'recovery_code_used', 'second_factor_failed') ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        audit,
        [
            "totp_enrolled",
            "recovery_codes_generated",
            "recovery_code_used",
            "second_factor_failed",
            "recovery_code_used",
            "recovery_codes_generated",
            "second_factor_failed"
        ]
    );
}

#[test]
fn wrong_codes_count_with_wrong_passwords_and_lock_the_account() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut a = signed_in(&server);
    let t = early_in_a_step();
    let (key, _, _) = enrol(&mut a, "/account/totp", t);
    // One wrong password, then wrong codes: five failures are free.
    let r = Browser::new(&server).submit_login("/login", "alice", "wrong");
    assert!(r.text().contains("Wrong username or password."));
    let (mut b, page) = to_second_factor(&server, None);
    for i in 0..4 {
        let r = post_code(&mut b, &page, &wrong_code(&key, t));
        assert_eq!(r.status, 200, "failure {i}");
        assert!(r.text().contains(WRONG));
    }
    let r = post_code(&mut b, &page, &wrong_code(&key, t));
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 1, "{wait}");
    // Locked: the right code is not checked, and neither is the right password.
    let r = post_code(&mut b, &page, &code_at(&key, t + 30));
    assert_eq!(r.status, 429);
    let r = Browser::new(&server).submit_login("/login", "alice", PASSWORD);
    assert_eq!(r.status, 429);
    // Once the lock is over the right code is accepted.
    std::thread::sleep(Duration::from_secs(wait + 1));
    let r = post_code(&mut b, &page, &code_at(&key, unix_now() + 30));
    assert_eq!(r.status, 303, "{}", r.text());
}

#[test]
fn removing_the_authenticator_needs_the_password_and_ends_other_sessions() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut a = signed_in(&server);
    let t = early_in_a_step();
    let (key, _, _) = enrol(&mut a, "/account/totp", t);
    let (mut other, page) = to_second_factor(&server, None);
    assert_eq!(
        post_code(&mut other, &page, &code_at(&key, t + 30)).status,
        303
    );
    assert!(other.get("/").text().contains("signed in as alice"));
    let page = a.get("/account/totp").text();
    let csrf = hidden_input(&page, "csrf").unwrap();
    let r = a.post(
        "/account/totp/remove",
        &[("csrf", &csrf), ("password", "not it")],
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Wrong password."), "{}", r.text());
    let r = a.post(
        "/account/totp/remove",
        &[("csrf", "x"), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 403, "CSRF");
    let r = a.post(
        "/account/totp/remove",
        &[("csrf", &csrf), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Authenticator app removed"));
    assert!(other.get("/").text().contains("You are not signed in."));
    assert!(
        a.get("/").text().contains("signed in as alice"),
        "this browser stays"
    );
    // No second factor now: the password alone signs in, and there is nothing to remove.
    assert_eq!(signed_in(&server).get("/").status, 200);
    let r = a.post(
        "/account/totp/remove",
        &[("csrf", &csrf), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        a.get("/account/recovery").status,
        409,
        "no codes without a factor"
    );
    let removed: i64 = db(&server.data_dir)
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'totp_removed'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(removed, 1);
}

#[test]
fn a_client_requiring_a_second_factor_steps_a_password_session_up() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let app = add_app(&server, "vault", &["--require-mfa"]);
    // Signed in with the password before the authenticator was set up elsewhere.
    let mut b = signed_in(&server);
    let t = early_in_a_step();
    let (key, _, _) = enrol(&mut signed_in(&server), "/account/totp", t);
    let url = authorize_url(&app.0, &[]);
    let r = b.get(&url);
    assert_eq!(r.status, 303, "{}", r.text());
    let to = location(&r);
    assert!(to.starts_with("/login/second-factor?return_to="), "{to}");
    let page = b.get(&to).text();
    let r = post_code(&mut b, &page, &code_at(&key, t + 30));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), url);
    let callback = b.finish_authorize(&url);
    let r = redeem(&server, &app, &code_of(&callback));
    assert_eq!(r.status, 200, "{}", r.text());
    let claims = id_claims(&server, r.json()["id_token"].as_str().unwrap(), &app.0);
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
    assert_eq!(claims["acr"], ACR_MFA);
}

#[test]
fn a_user_who_must_have_a_second_factor_enrols_on_the_way() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    server.cli_ok(&["user", "mfa", "alice", "--require"]);
    let app = add_app(&server, "wiki", &[]);
    let url = authorize_url(&app.0, &[]);
    let mut b = Browser::new(&server);
    let r = b.get(&url);
    let r = b.submit_login(&location(&r), "alice", PASSWORD);
    assert_eq!(location(&r), url);
    let r = b.get(&url);
    let to = location(&r);
    assert!(to.starts_with("/account/totp?return_to="), "{to}");
    let (_, codes, next) = enrol(&mut b, &to, early_in_a_step());
    assert_eq!(codes.len(), 10);
    assert_eq!(next, url, "Continue goes back to the app");
    let callback = b.finish_authorize(&next);
    let r = redeem(&server, &app, &code_of(&callback));
    assert_eq!(r.status, 200, "{}", r.text());
    let claims = id_claims(&server, r.json()["id_token"].as_str().unwrap(), &app.0);
    assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp", "mfa"]));
}

/// A session signed in with the password alone before the authenticator was set up (in
/// another browser) cannot make itself recovery codes, nor set up a second authenticator: it
/// is sent to give the code first. A session whose sign-in is older than 15 minutes is sent to
/// sign in again before it enrols.
#[test]
fn a_password_only_session_gives_the_code_before_it_changes_the_sign_in() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut old = signed_in(&server);
    let t = early_in_a_step();
    let (key, codes, _) = enrol(&mut signed_in(&server), "/account/totp", t);
    // Seeing how many codes are left is fine; making new ones asks for the code first.
    assert_eq!(old.get("/account/recovery").status, 200);
    let csrf = hidden_input(&old.get("/account").text(), "csrf").unwrap();
    let r = old.post("/account/recovery", &[("csrf", &csrf)]);
    assert_eq!(r.status, 303, "{}", r.text());
    let to = location(&r);
    assert!(
        to.starts_with("/login/second-factor?return_to=%2Faccount%2Frecovery"),
        "{to}"
    );
    // The old codes still work: nothing was replaced.
    let mut c = Browser::new(&server);
    let r = c.submit_login("/login", "alice", PASSWORD);
    let page = c.get(&location(&r)).text();
    let r = post_code(&mut c, &page, &codes[0]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("9 recovery codes left."), "{}", r.text());
    // Given the code, the old session may.
    let page = old.get(&to).text();
    let r = post_code(&mut old, &page, &code_at(&key, t + 30));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/account/recovery");
    let csrf = hidden_input(&old.get("/account").text(), "csrf").unwrap();
    let r = old.post("/account/recovery", &[("csrf", &csrf)]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("New recovery codes"), "{}", r.text());
    // The old set is gone.
    let mut c = Browser::new(&server);
    let r = c.submit_login("/login", "alice", PASSWORD);
    let page = c.get(&location(&r)).text();
    let r = post_code(&mut c, &page, &codes[1]);
    assert!(r.text().contains(WRONG), "{}", r.text());
}
