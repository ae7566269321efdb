//! Passkeys over HTTP, against the real binary, answered by a software authenticator
//! ([`crate::support::authenticator`]: ring and ciborium, none of latchkey's code): the
//! options endpoints and their errors, registration (the first passkey brings recovery codes),
//! a usernameless sign-in whose ID token says `hwk`/`user`/`mfa` (verified with
//! `jsonwebtoken`), a passkey as the second factor after the password, every refused answer
//! (another RP ID, another origin, tampered clientDataJSON or authenticatorData, a replayed or
//! foreign challenge, someone else's credential, no user verification), removal, and an
//! invited user who never has a password. The real-browser tests are in `passkeys_browser`.

use serde_json::{Value, json};

use crate::mfa_policy::{add_app, authorize_url, code_of, id_claims, redeem};
use crate::support::authenticator::{BE, Bend, SoftKey, UP, UV, b64, unb64};
use crate::support::browser::{Browser, hidden_input, location};
use crate::support::{PASSWORD, Response, Server, add_user};

const REGISTER_OPTIONS: &str = "/webauthn/register/options";
const AUTH_OPTIONS: &str = "/webauthn/authenticate/options";
const ACR_MFA: &str = "urn:latchkey:acr:mfa";

fn signed_in<'a>(server: &'a Server, user: &str) -> Browser<'a> {
    let mut b = Browser::new(server);
    let r = b.submit_login("/login", user, PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/", "signed in without a second factor");
    b
}

fn csrf(b: &mut Browser<'_>, page: &str) -> String {
    hidden_input(&b.get(page).text(), "csrf").unwrap_or_else(|| panic!("no csrf on {page}"))
}

fn creation_options(b: &mut Browser<'_>) -> (String, Value) {
    let token = csrf(b, "/account/passkeys");
    let r = b.post_json(REGISTER_OPTIONS, Some(&token), "{}");
    assert_eq!(r.status, 200, "{}", r.text());
    (token, r.json()["publicKey"].clone())
}

/// Registers a new passkey named `name` for the browser's user; the key and the answer.
fn register(b: &mut Browser<'_>, name: &str, bend: &Bend) -> (SoftKey, Response) {
    let (token, options) = creation_options(b);
    let (key, cred) = SoftKey::register(&options, &b.server.issuer(), bend);
    let r = b.post(
        "/account/passkeys",
        &[("csrf", &token), ("name", name), ("credential", &cred)],
    );
    (key, r)
}

/// The request options of `purpose` on `page`, and the page's form fields.
fn request_options(b: &mut Browser<'_>, page: &str, purpose: &str) -> (String, String, Value) {
    let html = b.get(page).text();
    let token = hidden_input(&html, "csrf").unwrap();
    let return_to = hidden_input(&html, "return_to").unwrap_or_default();
    let r = b.post_json(
        AUTH_OPTIONS,
        Some(&token),
        &json!({ "purpose": purpose }).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    (token, return_to, r.json()["publicKey"].clone())
}

/// Answers a passkey prompt on `page` (the login page or the second-factor page).
fn use_passkey(
    b: &mut Browser<'_>,
    key: &mut SoftKey,
    page: &str,
    purpose: &str,
    bend: &Bend,
) -> Response {
    let (token, return_to, options) = request_options(b, page, purpose);
    let cred = key.assert(&options, &b.server.issuer(), bend);
    b.post(
        "/login/passkey",
        &[
            ("csrf", &token),
            ("purpose", purpose),
            ("return_to", &return_to),
            ("credential", &cred),
        ],
    )
}

fn is_signed_in(b: &mut Browser<'_>) -> bool {
    b.get("/account").status == 200
}

#[test]
fn ceremony_endpoints_refuse_bad_requests_with_their_errors() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let js = server.get("/assets/latchkey.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.text().contains("navigator.credentials.get"));

    // The login page: the passkey button, the autofill hint, our script under our CSP.
    let login = server.get("/login");
    let csp = login.header("content-security-policy").unwrap().to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = login.text();
    for needle in [
        "autocomplete=\"username webauthn\"",
        "id=\"passkey-sign-in\"",
        "<script src=\"/assets/latchkey.js\" defer></script>",
    ] {
        assert!(html.contains(needle), "login page lacks {needle}");
    }

    // Options without the CSRF header, with the wrong one, or not signed in.
    let mut anon = Browser::new(&server);
    let token = csrf(&mut anon, "/login");
    let r = anon.post_json(REGISTER_OPTIONS, None, "{}");
    assert_eq!((r.status, r.json()["error"].clone()), (403, json!("csrf")));
    let r = anon.post_json(REGISTER_OPTIONS, Some("AAAA"), "{}");
    assert_eq!((r.status, r.json()["error"].clone()), (403, json!("csrf")));
    let r = anon.post_json(REGISTER_OPTIONS, Some(&token), "{}");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("not_signed_in"))
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = anon.post_json(AUTH_OPTIONS, Some(&token), "[1]");
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_request"))
    );
    let r = anon.post_json(AUTH_OPTIONS, Some(&token), r#"{"purpose":"other"}"#);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_request"))
    );
    let r = anon.post_json(AUTH_OPTIONS, Some(&token), r#"{"purpose":"second-factor"}"#);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (401, json!("not_signed_in"))
    );
    let r = anon.post_json(AUTH_OPTIONS, Some(&token), r#"{"purpose":"sign-in"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let o = &r.json()["publicKey"];
    assert_eq!(o["rpId"], "127.0.0.1");
    assert_eq!(o["userVerification"], "required");
    assert_eq!(o["allowCredentials"], json!([]));
    assert_eq!(unb64(o["challenge"].as_str().unwrap()).len(), 32);

    // Creation options for a signed-in user.
    let mut b = signed_in(&server, "alice");
    let (_, o) = creation_options(&mut b);
    assert_eq!(o["rp"]["id"], "127.0.0.1");
    assert_eq!(o["user"]["name"], "alice");
    let handle = o["user"]["id"].as_str().unwrap();
    assert_ne!(handle, b64(b"alice"), "the user handle is not the username");
    assert_eq!(o["attestation"], "none");
    assert_eq!(o["authenticatorSelection"]["residentKey"], "preferred");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "preferred");
    let algs: Vec<i64> = o["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alg"].as_i64().unwrap())
        .collect();
    assert_eq!(algs, [-7, -8, -257]);
    assert_eq!(o["excludeCredentials"], json!([]));

    // The answers' forms: no CSRF, unreadable, a challenge latchkey never sent.
    let r = anon.post(
        "/login/passkey",
        &[("purpose", "sign-in"), ("credential", "{}")],
    );
    assert_eq!(r.status, 403);
    let r = anon.post(
        "/login/passkey",
        &[
            ("csrf", &token),
            ("purpose", "sign-in"),
            ("credential", "garbage"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("could not be read"), "{}", r.text());
    let r = anon.post(
        "/login/passkey",
        &[
            ("csrf", &token),
            ("purpose", "nothing"),
            ("credential", "{}"),
        ],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let token_b = csrf(&mut b, "/account/passkeys");
    let r = b.post(
        "/account/passkeys",
        &[("csrf", &token_b), ("name", "x"), ("credential", "")],
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("could not be read"), "{}", r.text());
    let bend = Bend {
        challenge: Some(b64(&[9u8; 32])),
        ..Bend::default()
    };
    let (_, r) = register(&mut b, "x", &bend);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("expired or was used"), "{}", r.text());
}

#[test]
fn a_passkey_registers_and_signs_in_usernameless_with_the_amr_in_the_id_token() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut b = signed_in(&server, "alice");
    let (mut key, r) = register(&mut b, "Phone <1>", &Bend::default());
    // The first second factor comes with ten recovery codes, shown once.
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(html.contains("id=\"recovery-codes\""), "{html}");
    assert_eq!(html.matches("<li><code>").count(), 10, "{html}");
    assert!(
        html.contains("href=\"/account/passkeys?done=added\""),
        "{html}"
    );
    let list = b.get("/account/passkeys?done=added").text();
    assert!(list.contains("Phone &lt;1&gt;"), "{list}");
    assert!(list.contains("never used"), "{list}");
    // A second registration excludes the first.
    let (_, o) = creation_options(&mut b);
    assert_eq!(o["excludeCredentials"][0]["id"], b64(&key.credential_id));
    assert_eq!(
        o["excludeCredentials"][0]["transports"],
        json!(["internal"])
    );

    // Usernameless, through an app: the ID token says a user-verified device key.
    let app = add_app(&server, "app", &[]);
    let mut c = Browser::new(&server);
    let r = c.get(&authorize_url(&app.0, &[]));
    assert_eq!(r.status, 303);
    let login = location(&r);
    let r = use_passkey(&mut c, &mut key, &login, "sign-in", &Bend::default());
    assert_eq!(r.status, 303, "{}", r.text());
    let back = location(&r);
    assert!(back.starts_with("/authorize?"), "{back}");
    let r = c.get(&back);
    assert_eq!(r.status, 303, "{}", r.text());
    let tokens = redeem(&server, &app, &code_of(&location(&r))).json();
    let claims = id_claims(&server, tokens["id_token"].as_str().unwrap(), &app.0);
    assert_eq!(claims["amr"], json!(["hwk", "user", "mfa"]), "{claims}");
    assert_eq!(claims["acr"], ACR_MFA);
    assert!(b.get("/account/passkeys").text().contains("last used"));

    // The same answer again: its challenge is spent.
    let (token, return_to, options) = request_options(&mut c, "/login", "sign-in");
    let cred = key.assert(&options, &server.issuer(), &Bend::default());
    let post = |c: &mut Browser<'_>| {
        c.post(
            "/login/passkey",
            &[
                ("csrf", &token),
                ("purpose", "sign-in"),
                ("return_to", &return_to),
                ("credential", &cred),
            ],
        )
    };
    assert_eq!(post(&mut c).status, 303);
    let r = post(&mut c);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("expired or was used"), "{}", r.text());

    // A counter that does not grow is logged, not refused.
    key.counter = 0;
    let mut d = Browser::new(&server);
    let r = use_passkey(&mut d, &mut key, "/login", "sign-in", &Bend::default());
    assert_eq!(r.status, 303, "{}", r.text());
    crate::support::eventually(
        std::time::Duration::from_secs(3),
        "the clone warning",
        || server.logs().contains("may have been cloned"),
    );
}

#[test]
fn a_passkey_is_the_second_factor_after_the_password() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    add_user(&server.data_dir, "bob", &[]);
    let (mut key, r) = register(&mut signed_in(&server, "alice"), "Key", &Bend::default());
    assert_eq!(r.status, 200);
    let (mut bobs, r) = register(&mut signed_in(&server, "bob"), "Bob's", &Bend::default());
    assert_eq!(r.status, 200);
    // A security key without user verification: fine after a password.
    key.flags = UP;

    let app = add_app(&server, "app", &[]);
    let mut c = Browser::new(&server);
    let r = c.get(&authorize_url(&app.0, &[]));
    let r = c.submit_login(&location(&r), "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let page = location(&r);
    assert!(page.starts_with("/login/second-factor?"), "{page}");
    let html = c.get(&page).text();
    assert!(html.contains("id=\"passkey-second-factor\""), "{html}");
    let (_, _, options) = request_options(&mut c, &page, "second-factor");
    assert_eq!(
        options["allowCredentials"][0]["id"],
        b64(&key.credential_id)
    );
    assert_eq!(options["userVerification"], "preferred");

    // Bob's passkey is not Alice's second factor.
    let r = use_passkey(&mut c, &mut bobs, &page, "second-factor", &Bend::default());
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(!is_signed_in(&mut c));

    let r = use_passkey(&mut c, &mut key, &page, "second-factor", &Bend::default());
    assert_eq!(r.status, 303, "{}", r.text());
    let back = location(&r);
    assert!(back.starts_with("/authorize?"), "{back}");
    let r = c.get(&back);
    let tokens = redeem(&server, &app, &code_of(&location(&r))).json();
    let claims = id_claims(&server, tokens["id_token"].as_str().unwrap(), &app.0);
    assert_eq!(claims["amr"], json!(["pwd", "hwk", "mfa"]), "{claims}");
    assert_eq!(claims["acr"], ACR_MFA);

    // Without user verification the passkey alone is not enough to sign in.
    let mut d = Browser::new(&server);
    let r = use_passkey(&mut d, &mut key, "/login", "sign-in", &Bend::default());
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("did not check it is you"), "{}", r.text());
    assert!(!is_signed_in(&mut d));
}

#[test]
fn answers_for_another_site_tampered_or_unknown_are_refused() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut b = signed_in(&server, "alice");

    // Registration: another origin, another RP ID, the wrong ceremony type.
    for (bend, what) in [
        (
            Bend {
                origin: Some("https://evil.example".into()),
                ..Bend::default()
            },
            "origin",
        ),
        (
            Bend {
                tamper_authenticator_data: true,
                ..Bend::default()
            },
            "rpIdHash",
        ),
        (
            Bend {
                kind: Some("webauthn.get"),
                ..Bend::default()
            },
            "type",
        ),
    ] {
        let (_, r) = register(&mut b, "x", &bend);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(
            r.text().contains("did not check out"),
            "{what}: {}",
            r.text()
        );
    }
    assert!(
        !b.get("/account/passkeys")
            .text()
            .contains("class=\"passkey\"")
    );

    let (key, r) = register(&mut b, "Phone", &Bend::default());
    assert_eq!(r.status, 200);
    let mut key = key;
    // Each refusal for its own reason: the security log names the failed check.
    let refused = |key: &mut SoftKey, bend: Bend, why: &str| {
        let before = server.logs().matches(why).count();
        let mut c = Browser::new(&server);
        let r = use_passkey(&mut c, key, "/login", "sign-in", &bend);
        assert_eq!(r.status, 401, "{why}: {}", r.text());
        assert!(!is_signed_in(&mut c), "{why}");
        crate::support::eventually(std::time::Duration::from_secs(3), why, || {
            server.logs().matches(why).count() > before
        });
    };
    refused(
        &mut key,
        Bend {
            origin: Some("https://evil.example".into()),
            ..Bend::default()
        },
        "clientDataJSON: wrong origin",
    );
    refused(
        &mut key,
        Bend {
            tamper_client_data: true,
            ..Bend::default()
        },
        "signature does not verify",
    );
    refused(
        &mut key,
        Bend {
            tamper_authenticator_data: true,
            ..Bend::default()
        },
        "signature does not verify",
    );
    refused(
        &mut key,
        Bend {
            no_user_handle: true,
            ..Bend::default()
        },
        "unknown credential",
    );
    refused(
        &mut key,
        Bend {
            kind: Some("webauthn.create"),
            ..Bend::default()
        },
        "clientDataJSON: wrong type",
    );
    // Backup eligibility never changes (§7.2 step 19): registered device-bound, it cannot
    // turn synced.
    key.flags = UP | UV | BE;
    refused(&mut key, Bend::default(), "backup eligibility changed");
    key.flags = UP | UV;
    // The same credential made for another site (its rpIdHash names that site).
    let mut elsewhere = key.for_rp("example.com");
    refused(&mut elsewhere, Bend::default(), "wrong rpIdHash");
    // A credential latchkey never registered.
    let options = json!({"rp": {"id": "127.0.0.1"}, "user": {"id": b64(b"nobody")}, "challenge": b64(&[0; 32])});
    let (mut stranger, _) = SoftKey::register(&options, &server.issuer(), &Bend::default());
    refused(&mut stranger, Bend::default(), "unknown credential");
    // And the key itself still works.
    let mut key = elsewhere.for_rp("127.0.0.1");
    let mut c = Browser::new(&server);
    let r = use_passkey(&mut c, &mut key, "/login", "sign-in", &Bend::default());
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(is_signed_in(&mut c));
    // No secret or credential material in the log.
    let logs = server.logs();
    assert!(!logs.contains(&b64(&key.credential_id)), "{logs}");
}

#[test]
fn removing_a_passkey_needs_the_password_ends_other_sessions_and_never_the_last_way_in() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let mut other = signed_in(&server, "alice");
    let mut b = signed_in(&server, "alice");
    let (key, r) = register(&mut b, "Phone", &Bend::default());
    assert_eq!(r.status, 200);
    let id = b64(&key.credential_id);
    // A session signed in with the password alone before the passkey existed must give the
    // passkey first, password or not.
    let token = csrf(&mut other, "/account/passkeys");
    let r = other.post(
        "/account/passkeys/remove",
        &[("csrf", &token), ("id", &id), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(
        location(&r).starts_with("/login/second-factor?"),
        "{}",
        location(&r)
    );
    let token = csrf(&mut b, "/account/passkeys");
    let r = b.post(
        "/account/passkeys/remove",
        &[("csrf", &token), ("id", &id), ("password", "wrong")],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Wrong password."), "{}", r.text());
    let r = b.post(
        "/account/passkeys/remove",
        &[
            ("csrf", &token),
            ("id", &b64(b"nope")),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = b.post(
        "/account/passkeys/remove",
        &[("csrf", &token), ("id", &id), ("password", PASSWORD)],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/account/passkeys?done=removed");
    assert!(is_signed_in(&mut b));
    assert!(!is_signed_in(&mut other), "the other session ended");
    let v: Value =
        serde_json::from_str(&server.cli_ok(&["user", "show", "alice", "--json"])).unwrap();
    assert_eq!(v["second_factors"]["passkeys"], 0, "{v}");
    assert_eq!(v["second_factors"]["recovery_codes"], 0, "{v}");
    let audit = server.cli_ok(&["audit", "--json"]);
    assert!(audit.contains("passkey_added"), "{audit}");
    assert!(audit.contains("passkey_removed"), "{audit}");
    // The password typed to confirm the removal is audited as a confirmation, not a login.
    assert!(audit.contains("password_confirmed"), "{audit}");
}

#[test]
fn an_invited_user_sets_up_a_passkey_and_signs_in_without_a_password() {
    let server = Server::start();
    crate::support::init_data_dir(&server.data_dir);
    let issuer = server.issuer();
    let v: Value = serde_json::from_str(
        &server.cli_ok(&["user", "invite", "erin", "--issuer", &issuer, "--json"]),
    )
    .unwrap();
    let link = v["link"]
        .as_str()
        .unwrap()
        .strip_prefix(&issuer)
        .unwrap()
        .to_string();
    let token = link.split("token=").nth(1).unwrap().to_string();
    let mut b = Browser::new(&server);
    let html = b.get(&link).text();
    let form_csrf = hidden_input(&html, "csrf").unwrap();
    let r = b.post(
        "/account/setup",
        &[
            ("csrf", &form_csrf),
            ("token", &token),
            ("method", "passkey"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/account/passkeys");
    let page = b.get("/account/passkeys");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("id=\"passkey-add\""));
    // Without a password the passkey must sign in alone: discoverable, user-verifying.
    let (_, o) = creation_options(&mut b);
    assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    let sloppy = Bend {
        flags: Some(UP),
        ..Bend::default()
    };
    let (_, r) = register(&mut b, "No PIN", &sloppy);
    assert_eq!(
        r.status,
        400,
        "a passkey that cannot verify the user: {}",
        r.text()
    );
    let (mut key, r) = register(&mut b, "Laptop", &Bend::default());
    assert_eq!(r.status, 200, "{}", r.text());
    // Recovery codes back up a second factor after a password; without one, none are made.
    assert!(!r.text().contains("id=\"recovery-codes\""), "{}", r.text());
    assert!(r.text().contains("second device"), "{}", r.text());
    // The only way in cannot be removed.
    let token = csrf(&mut b, "/account/passkeys");
    let r = b.post(
        "/account/passkeys/remove",
        &[("csrf", &token), ("id", &b64(&key.credential_id))],
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("only way to sign in"), "{}", r.text());

    let mut c = Browser::new(&server);
    let r = use_passkey(&mut c, &mut key, "/login", "sign-in", &Bend::default());
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), "/");
    assert!(c.get("/").text().contains("erin"));
}

/// A user who must have a second factor and has none is sent to enrol after the password; the
/// enrolment page offers a passkey instead, and after the passkey "Continue" goes on to the
/// app, whose ID token says password and passkey.
#[test]
fn a_user_who_must_enrol_may_add_a_passkey_on_the_way_to_the_app() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    server.cli_ok(&["user", "mfa", "alice", "--require"]);
    let app = add_app(&server, "wiki", &[]);
    let url = authorize_url(&app.0, &[]);
    let mut b = Browser::new(&server);
    let r = b.get(&url);
    let r = b.submit_login(&location(&r), "alice", PASSWORD);
    assert_eq!(location(&r), url);
    let to = location(&b.get(&url));
    assert!(to.starts_with("/account/totp?return_to="), "{to}");
    let html = b.get(&to).text();
    let link = crate::support::browser::html_unescape(
        html.split("id=\"use-passkey\" href=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("no passkey link: {html}")),
    );
    assert!(link.starts_with("/account/passkeys?return_to="), "{link}");
    let page = b.get(&link).text();
    assert_eq!(
        hidden_input(&page, "return_to").as_deref(),
        Some(url.as_str())
    );
    let token = hidden_input(&page, "csrf").unwrap();
    let r = b.post_json(REGISTER_OPTIONS, Some(&token), "{}");
    let (_, cred) = SoftKey::register(&r.json()["publicKey"], &server.issuer(), &Bend::default());
    let r = b.post(
        "/account/passkeys",
        &[
            ("csrf", &token),
            ("name", "Phone"),
            ("return_to", &url),
            ("credential", &cred),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(html.contains("id=\"recovery-codes\""), "{html}");
    let next = crate::support::browser::html_unescape(
        html.split("id=\"continue\" href=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap(),
    );
    assert_eq!(next, url, "Continue goes back to the app");
    let callback = b.finish_authorize(&next);
    let tokens = redeem(&server, &app, &code_of(&callback)).json();
    let claims = id_claims(&server, tokens["id_token"].as_str().unwrap(), &app.0);
    assert_eq!(
        claims["amr"],
        json!(["pwd", "hwk", "user", "mfa"]),
        "{claims}"
    );
}

/// One address may ask for a few dozen ceremonies a minute, not for the whole table: the
/// 31st options request within the minute gets 429 `rate_limited` with `Retry-After`.
#[test]
fn options_requests_are_limited_per_address() {
    let server = Server::start();
    let mut anon = Browser::new(&server);
    let token = csrf(&mut anon, "/login");
    for i in 0..30 {
        let r = anon.post_json(AUTH_OPTIONS, Some(&token), r#"{"purpose":"sign-in"}"#);
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
    }
    let r = anon.post_json(AUTH_OPTIONS, Some(&token), r#"{"purpose":"sign-in"}"#);
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (429, json!("rate_limited"))
    );
    let wait: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}
