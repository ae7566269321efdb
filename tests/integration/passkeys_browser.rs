//! Passkeys (WebAuthn) in a real browser: headless Chromium through chromedriver
//! (`support/webdriver.rs`) with a virtual authenticator of the WebDriver WebAuthn extension
//! (WebAuthn L2 §11) standing in for the platform authenticator, against a server whose issuer
//! is `http://localhost:<port>` (`Server::start_localhost`): WebAuthn refuses an IP address as
//! the RP ID, so the RP ID is `localhost` and the origin `http://localhost:<port>`.
//!
//! The pages: `#passkey-sign-in` on `/login`, `#passkey-second-factor` on
//! `/login/second-factor`, the `#passkey-add` form and `#passkey-list` on `/account/passkeys`;
//! the script writes why a ceremony did not happen in `#passkey-status`, and the server answers
//! a refused credential with a "Passkey not accepted" page.
//!
//! Second-tier tests like `browser_e2e`: a plain `cargo test` skips them with a message, under
//! `scripts/test` (`LATCHKEY_TEST_FULL=1`) a missing Chromium or chromedriver fails them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::mfa_policy::{add_app, authorize_url, code_of, id_claims, redeem};
use crate::support::browser::Browser;
use crate::support::webdriver::{AuthenticatorOptions, Driver, Session, VirtualCredential, WAIT};
use crate::support::{self, PASSWORD, Server, add_user};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// chromedriver in a fresh directory (its log and the browser profiles go there).
fn driver() -> (PathBuf, Driver) {
    let dir = support::temp_dir("chromium-passkeys");
    let driver = Driver::start(&dir);
    (dir, driver)
}

/// A new browser with its own profile under `dir`.
fn browser<'a>(driver: &'a Driver, dir: &Path, name: &str) -> Session<'a> {
    let profile = dir.join(name);
    std::fs::create_dir_all(&profile).unwrap();
    let browser = driver.new_session(&profile);
    browser.cmd(
        "POST",
        "/window/rect",
        Some(&json!({"width": 800, "height": 900})),
    );
    browser
}

/// The creation options of the smoke test: a resident, user-verified ES256 credential for
/// `localhost`, as the brief of the plumbing gives them.
const CREATE: &str = "navigator.credentials.create({publicKey: {\
    challenge: new Uint8Array(32), \
    rp: {id: 'localhost', name: 't'}, \
    user: {id: new Uint8Array(8), name: 'a', displayName: 'a'}, \
    pubKeyCredParams: [{type: 'public-key', alg: -7}], \
    authenticatorSelection: {residentKey: 'required', userVerification: 'required'}}})\
    .then((c) => ({id: c.id, type: c.type, rawIdLength: c.rawId.byteLength, \
        authenticatorAttachment: c.authenticatorAttachment, \
        transports: c.response.getTransports(), \
        clientDataJSON: new TextDecoder().decode(c.response.clientDataJSON)}))";

/// The login page, sending to the account page afterwards.
const LOGIN: &str = "/login?return_to=%2Faccount";

/// Signs in on `/login` with username and password (the form, as a person does) and waits
/// until the browser has left `/login` (for the account page or the second-factor prompt).
fn password_sign_in(browser: &Session<'_>, server: &Server, username: &str) -> String {
    browser.navigate(&server.url(LOGIN));
    browser.type_into(&browser.wait_for("input[name=username]", WAIT), username);
    browser.type_into(&browser.wait_for("input[name=password]", WAIT), PASSWORD);
    browser.click(&browser.wait_for("form[action='/login'] button[type=submit]", WAIT));
    let login = server.url("/login");
    browser.wait_for_url("leaving the login page", |u| {
        u != login && !u.starts_with(&format!("{login}?"))
    })
}

/// Signs out as a person does: the `/logout` confirmation page, its button; then checks that
/// `/account` sends the browser to the login page.
fn sign_out(browser: &Session<'_>, server: &Server) {
    let old = browser
        .cookie("latchkey-session")
        .expect("signed in before signing out");
    browser.navigate(&server.url("/logout"));
    browser.click(&browser.wait_for("form[action='/logout'] button[type=submit]", WAIT));
    // The answer to the POST stays at /logout; the session cookie goes.
    browser.wait_until("the session cookie deleted", WAIT, |s| {
        s.cookie("latchkey-session").is_none().then_some(())
    });
    // The server ended the session: its old cookie no longer opens /account. (Checked over
    // HTTP: in Chromium the login page's conditional request would sign a browser whose
    // authenticator holds a passkey straight back in.)
    let mut http = Browser::new(server);
    http.set_cookie("latchkey-session", &old);
    assert_eq!(
        http.get("/account").status,
        303,
        "the old session still works"
    );
}

/// Asserts that the browser's session is a complete one of `username`: `/account` shows the
/// account page with that username.
fn assert_signed_in_as(browser: &Session<'_>, server: &Server, username: &str) {
    browser.navigate(&server.url("/account"));
    browser.wait_for("main .account", WAIT);
    let facts = browser.wait_for_text("main .account dl.facts", username);
    assert!(
        facts.contains(&format!("Username\n{username}")) || facts.contains(username),
        "{facts}"
    );
    assert!(
        browser.current_url().starts_with(&server.url("/account")),
        "{}",
        browser.current_url()
    );
}

/// Registers a passkey named `name` on `/account/passkeys` (signed in): types the name, clicks
/// `#passkey-register`, and waits until the list shows it. Returns the list's text.
fn register_passkey(browser: &Session<'_>, server: &Server, name: &str) -> String {
    if !browser
        .current_url()
        .starts_with(&server.url("/account/passkeys"))
    {
        browser.navigate(&server.url("/account/passkeys"));
    }
    let field = browser.wait_for("#passkey-add #passkey-name", WAIT);
    browser.type_into(&field, name);
    browser.click(&browser.wait_for("#passkey-register", WAIT));
    // The first passkey answers with a page and "Continue": with the recovery codes, shown
    // once, for a user with a password; with a word about a second passkey for one without.
    let first = browser.wait_until("the first passkey's page or the list", WAIT, |s| {
        if s.find("#continue").is_some() {
            Some(true)
        } else {
            s.find("#passkey-list li.passkey").map(|_| false)
        }
    });
    if first {
        if let Some(codes) = browser.find("#recovery-codes") {
            let listed = browser.text(&codes);
            assert_eq!(
                listed.lines().filter(|l| !l.trim().is_empty()).count(),
                10,
                "{listed}"
            );
        }
        browser.click(&browser.wait_for("#continue", WAIT));
    }
    browser.wait_for_url("back on the passkeys page", |u| {
        u.starts_with(&server.url("/account/passkeys"))
    });
    browser.wait_for_text("#passkey-list li.passkey", name)
}

/// Asserts that the browser has no session: `/account` sends it to the login page.
fn assert_not_signed_in(browser: &Session<'_>, server: &Server) {
    browser.navigate(&server.url("/account"));
    let login = server.url("/login");
    browser.wait_for_url(
        "/account sends a browser without a session to the login page",
        |u| u.starts_with(&login),
    );
}

/// The text of `#passkey-status` once it is not empty.
fn passkey_status(browser: &Session<'_>) -> String {
    browser.wait_until("an error in #passkey-status", WAIT, |s| {
        let id = s.find("#passkey-status")?;
        let (status, v) = s.try_cmd("GET", &format!("/element/{id}/text"), None);
        let text = v.as_str().unwrap_or_default().trim().to_string();
        (status == 200 && !text.is_empty()).then_some(text)
    })
}

/// The ID token claims an app gets for the browser's session: its session cookie goes into
/// the HTTP emulation, which runs the code flow of a consent-free app (`mfa_policy`'s).
fn id_token_claims(browser: &Session<'_>, server: &Server) -> Value {
    let cookie = browser
        .cookie("latchkey-session")
        .expect("the browser has a session cookie");
    let app = add_app(server, "amr-check", &[]);
    let mut b = Browser::new(server);
    b.set_cookie("latchkey-session", &cookie);
    let callback = b.finish_authorize(&authorize_url(&app.0, &[]));
    let r = redeem(server, &app, &code_of(&callback));
    assert_eq!(r.status, 200, "{}", r.text());
    id_claims(server, r.json()["id_token"].as_str().unwrap(), &app.0)
}

/// An invite link for a new user `name` (`user invite --json`).
fn invite(server: &Server, name: &str) -> String {
    let v: Value =
        serde_json::from_str(&server.cli_ok(&["user", "invite", name, "--json"])).unwrap();
    let link = v["link"].as_str().unwrap().to_string();
    assert!(
        link.starts_with(&server.url("/account/setup?token=")),
        "the link names the localhost issuer: {link}"
    );
    link
}

// ---------------------------------------------------------------------------------------------
// The plumbing: a localhost server, Chromium, a virtual authenticator
// ---------------------------------------------------------------------------------------------

#[test]
fn a_virtual_authenticator_creates_a_passkey_for_localhost() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start_localhost();
    let port = server.addr.port();
    assert_eq!(server.issuer(), format!("http://localhost:{port}"));
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    let discovery = server.get("/.well-known/openid-configuration").json();
    assert_eq!(discovery["issuer"], server.issuer(), "{discovery}");

    let (dir, driver) = driver();
    let browser = browser(&driver, &dir, "profile");
    // A page without latchkey's script (the login page's would start a conditional request
    // of its own, and Chromium allows one request at a time).
    browser.navigate(&server.url("/logout"));
    browser.wait_for("main h1", WAIT);
    assert_eq!(
        browser.current_url(),
        format!("http://localhost:{port}/logout")
    );
    assert_eq!(
        browser.script(
            "return [window.isSecureContext, location.hostname, typeof PublicKeyCredential]"
        ),
        json!([true, "localhost", "function"]),
        "http://localhost is a secure context with WebAuthn"
    );

    let auth = browser.add_virtual_authenticator(&AuthenticatorOptions::default());
    assert!(browser.credentials(&auth).is_empty());
    assert_eq!(
        browser.await_promise(
            "PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable()",
            &[]
        ),
        Ok(json!(true))
    );

    // The page's CSP (`script-src 'self'`) does not apply to WebDriver's scripts.
    let made = browser
        .await_promise(CREATE, &[])
        .unwrap_or_else(|e| panic!("navigator.credentials.create: {e}"));
    assert_eq!(made["type"], "public-key", "{made}");
    assert_eq!(made["authenticatorAttachment"], "platform", "{made}");
    assert_eq!(made["transports"], json!(["internal"]), "{made}");
    let client_data: Value =
        serde_json::from_str(made["clientDataJSON"].as_str().unwrap()).unwrap();
    assert_eq!(client_data["type"], "webauthn.create", "{client_data}");
    assert_eq!(client_data["origin"], server.issuer(), "{client_data}");
    assert_eq!(
        client_data["challenge"],
        URL_SAFE_NO_PAD.encode([0u8; 32]),
        "{client_data}"
    );
    let id = made["id"].as_str().unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(id).unwrap().len(),
        usize::try_from(made["rawIdLength"].as_u64().unwrap()).unwrap()
    );

    let stored = browser.credentials(&auth);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].credential_id, id);
    assert!(stored[0].is_resident_credential, "{stored:?}");
    assert_eq!(stored[0].rp_id, "localhost");
    assert_eq!(
        stored[0].user_handle.as_deref(),
        Some(URL_SAFE_NO_PAD.encode([0u8; 8]).as_str())
    );

    // A credential planted for another site is kept by the authenticator but never offered to
    // this one: a discoverable get for `localhost` uses the one made above.
    let foreign = VirtualCredential::new_resident("example.com", b"someone-else");
    browser.add_credential(&auth, &foreign);
    let rp_ids: Vec<String> = browser
        .credentials(&auth)
        .into_iter()
        .map(|c| c.rp_id)
        .collect();
    assert_eq!(rp_ids.len(), 2, "{rp_ids:?}");
    assert!(rp_ids.contains(&"example.com".to_string()), "{rp_ids:?}");
    let got = browser
        .await_promise(
            "navigator.credentials.get({publicKey: {challenge: new Uint8Array(32), \
             rpId: 'localhost', userVerification: 'required'}}).then((c) => c.id)",
            &[],
        )
        .unwrap_or_else(|e| panic!("navigator.credentials.get: {e}"));
    assert_eq!(got, id);
    // A get that asks for another site's RP ID is refused by the browser itself.
    let refused = browser.await_promise(
        "navigator.credentials.get({publicKey: {challenge: new Uint8Array(32), \
         rpId: 'example.com'}})",
        &[],
    );
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.starts_with("SecurityError")),
        "{refused:?}"
    );

    // Without user verification a `required` ceremony fails.
    browser.set_user_verified(&auth, false);
    let refused = browser.await_promise(
        "navigator.credentials.get({publicKey: {challenge: new Uint8Array(32), \
         rpId: 'localhost', userVerification: 'required'}})",
        &[],
    );
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.starts_with("NotAllowedError")),
        "{refused:?}"
    );

    browser.remove_all_credentials(&auth);
    assert!(browser.credentials(&auth).is_empty());
    browser.remove_virtual_authenticator(&auth);
}

/// What the passkey tests rely on in Chromium's virtual authenticators, checked so that a
/// Chromium update that changes it fails here first, by name: a conditional request resolves
/// at once when an attached authenticator holds a matching credential (no user interaction),
/// stays pending while none is attached, fails when one is attached later, and blocks any other
/// `navigator.credentials` call until it settles or is aborted.
#[test]
fn chromium_virtual_authenticators_and_conditional_mediation() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start_localhost();
    let (dir, driver) = driver();
    let browser = browser(&driver, &dir, "profile");
    // A page without latchkey's script: only this test's requests.
    browser.navigate(&server.url("/logout"));
    browser.wait_for("main h1", WAIT);
    let auth = browser.add_virtual_authenticator(&AuthenticatorOptions::default());
    browser.await_promise(CREATE, &[]).unwrap();
    assert_eq!(
        browser.await_promise("PublicKeyCredential.isConditionalMediationAvailable()", &[]),
        Ok(json!(true))
    );
    // Starts a conditional request in the page, its outcome in `window.outcome`.
    let conditional = "window.abortConditional = new AbortController(); \
        window.outcome = 'pending'; \
        navigator.credentials.get({mediation: 'conditional', \
            signal: window.abortConditional.signal, \
            publicKey: {challenge: new Uint8Array(32), rpId: 'localhost'}}) \
        .then((c) => { window.outcome = 'credential'; }, \
              (e) => { window.outcome = e.name; }); \
        return null;";
    let outcome = |expected: &str| {
        browser.wait_until(&format!("the conditional request: {expected}"), WAIT, |s| {
            (s.script("return window.outcome") == expected).then_some(())
        });
    };
    // With the authenticator and its credential: at once, with no input focused or clicked.
    browser.script("document.activeElement.blur(); return null;");
    browser.script(conditional);
    outcome("credential");

    // Without an authenticator: pending, and other calls are refused meanwhile.
    let credentials = browser.detach_authenticator(&auth);
    browser.navigate(&server.url("/login?again"));
    browser.wait_for("input[name=username]", WAIT);
    browser.script(conditional);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(browser.script("return window.outcome"), "pending");
    assert_eq!(
        browser.await_promise(
            "navigator.credentials.get({publicKey: {challenge: new Uint8Array(32)}})",
            &[]
        ),
        Err("OperationError: A request is already pending.".to_string())
    );
    // Attaching one ends it with NotAllowedError; a modal request then works.
    let auth = browser.attach_authenticator(&AuthenticatorOptions::default(), &credentials);
    outcome("NotAllowedError");
    let id = browser
        .await_promise(
            "navigator.credentials.get({publicKey: {challenge: new Uint8Array(32)}}) \
             .then((c) => c.id)",
            &[],
        )
        .unwrap();
    assert_eq!(id, credentials[0].credential_id.as_str());
    // An abort ends a pending request with AbortError.
    browser.remove_virtual_authenticator(&auth);
    browser.script(conditional);
    browser.script("window.abortConditional.abort(); return null;");
    outcome("AbortError");
}

// ---------------------------------------------------------------------------------------------
// Against the server (notes/passkeys-contract.md)
// ---------------------------------------------------------------------------------------------

/// A user with a password signs in with it, adds a passkey on `/account/passkeys`, signs out,
/// and signs in again with the passkey alone: `#passkey-sign-in` on `/login`, no username typed
/// (a discoverable credential; the server finds the user by the credential).
#[test]
fn a_passkey_registered_on_the_account_page_signs_in_without_a_username() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start_localhost();
    add_user(&server.data_dir, "alice", &["--name", "Alice Liddell"]);
    let (dir, driver) = driver();
    let browser = browser(&driver, &dir, "profile");
    let auth = browser.add_virtual_authenticator(&AuthenticatorOptions::default());

    let landed = password_sign_in(&browser, &server, "alice");
    assert!(landed.starts_with(&server.url("/account")), "{landed}");
    let list = register_passkey(&browser, &server, "Work laptop");
    assert!(list.contains("never used"), "{list}");
    let made = browser.credentials(&auth);
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0].is_resident_credential, "a passkey is discoverable");
    assert_eq!(made[0].rp_id, "localhost");
    assert!(made[0].user_handle.is_some(), "{made:?}");

    sign_out(&browser, &server);
    // The login page's conditional request waits while no authenticator is attached.
    let credentials = browser.detach_authenticator(&auth);
    browser.navigate(&server.url(LOGIN));
    let button = browser.wait_for("#passkey-sign-in", WAIT);
    browser.wait_until("#passkey-sign-in shown by the script", WAIT, |s| {
        s.displayed(&button).then_some(())
    });
    let autocomplete = browser.script(
        "return document.querySelector('input[name=username]').getAttribute('autocomplete')",
    );
    assert_eq!(autocomplete, "username webauthn");
    let auth = browser.attach_authenticator(&AuthenticatorOptions::default(), &credentials);
    browser.click(&button);
    let at = browser.wait_for_url("signed in with the passkey", |u| {
        !u.starts_with(&server.url("/login"))
    });
    assert!(at.starts_with(&server.url("/account")), "{at}");
    assert_signed_in_as(&browser, &server, "alice");
    let used = browser.credentials(&auth);
    assert!(used[0].sign_count > made[0].sign_count, "{used:?}");
    // The account page now says it was used.
    browser.navigate(&server.url("/account/passkeys"));
    let list = browser.wait_for_text("#passkey-list li.passkey", "Work laptop");
    assert!(list.contains("last used"), "{list}");
}

/// With a matching passkey in the authenticator, the login page's conditional request (started
/// on load) signs the user in by itself: Chromium's virtual authenticator answers a conditional
/// request at once, as if the user had picked the passkey from the username field's list.
#[test]
fn conditional_mediation_on_the_login_page_signs_in() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start_localhost();
    add_user(&server.data_dir, "alice", &[]);
    let (dir, driver) = driver();
    let browser = browser(&driver, &dir, "profile");
    browser.add_virtual_authenticator(&AuthenticatorOptions::default());
    password_sign_in(&browser, &server, "alice");
    register_passkey(&browser, &server, "Phone");
    sign_out(&browser, &server);

    browser.navigate(&server.url("/login?return_to=%2Faccount%2Fpasskeys"));
    let at = browser.wait_for_url("signed in by conditional mediation", |u| {
        !u.starts_with(&server.url("/login"))
    });
    assert_eq!(at, server.url("/account/passkeys"), "return_to is kept");
    assert_signed_in_as(&browser, &server, "alice");
}

/// A user with a password and a passkey: the password first, then `/login/second-factor` asks
/// for the second factor and `#passkey-second-factor` gives it. The session is a multi-factor
/// one: an app's ID token says `mfa` (and `pwd`).
#[test]
fn a_passkey_is_the_second_factor_after_the_password() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start_localhost();
    add_user(&server.data_dir, "alice", &[]);
    let (dir, driver) = driver();
    let browser = browser(&driver, &dir, "profile");
    let auth = browser.add_virtual_authenticator(&AuthenticatorOptions::default());
    password_sign_in(&browser, &server, "alice");
    register_passkey(&browser, &server, "Security key");
    sign_out(&browser, &server);

    // No authenticator on the login page: its conditional request must not sign in by itself.
    let credentials = browser.detach_authenticator(&auth);
    let at = password_sign_in(&browser, &server, "alice");
    assert!(
        at.starts_with(&server.url("/login/second-factor")),
        "a user with a passkey owes a second factor after the password: {at}"
    );
    let auth = browser.attach_authenticator(&AuthenticatorOptions::default(), &credentials);
    browser.click(&browser.wait_for("#passkey-second-factor", WAIT));
    let at = browser.wait_for_url("signed in with the second factor", |u| {
        !u.starts_with(&server.url("/login"))
    });
    assert!(at.starts_with(&server.url("/account")), "{at}");
    assert_signed_in_as(&browser, &server, "alice");
    assert!(browser.credentials(&auth)[0].sign_count > credentials[0].sign_count);

    let claims = id_token_claims(&browser, &server);
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .unwrap_or_else(|| panic!("no amr: {claims}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(amr.contains(&"pwd"), "{claims}");
    assert!(amr.contains(&"mfa"), "{claims}");
    assert_eq!(claims["acr"], "urn:latchkey:acr:mfa", "{claims}");
}

/// A passkey of another site (`example.com`) in the authenticator is neither offered to this
/// one nor accepted: `#passkey-sign-in` fails with an error in `#passkey-status`, nobody is
/// signed in, and the credential was never used.
#[test]
fn a_passkey_for_another_site_does_not_sign_in() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start_localhost();
    add_user(&server.data_dir, "alice", &[]);
    let (dir, driver) = driver();
    let browser = browser(&driver, &dir, "profile");
    browser.navigate(&server.url(LOGIN));
    let button = browser.wait_for("#passkey-sign-in", WAIT);
    let foreign = VirtualCredential::new_resident("example.com", b"alice");
    let auth = browser.attach_authenticator(
        &AuthenticatorOptions::default(),
        std::slice::from_ref(&foreign),
    );
    browser.click(&button);
    let status = passkey_status(&browser);
    assert!(!status.is_empty());
    assert!(
        browser.current_url().starts_with(&server.url("/login")),
        "{}",
        browser.current_url()
    );
    assert_eq!(browser.cookie("latchkey-session"), None);
    let after = browser.credentials(&auth);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        after[0].sign_count, foreign.sign_count,
        "the foreign credential was used"
    );
    assert_not_signed_in(&browser, &server);
}

/// A passkey for `localhost` that the server never registered (planted in the authenticator)
/// reaches the server and is refused: the "Passkey not accepted" page, nobody signed in.
#[test]
fn an_unknown_passkey_is_refused_by_the_server() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start_localhost();
    let sub = add_user(&server.data_dir, "alice", &[]);
    let (dir, driver) = driver();
    let browser = browser(&driver, &dir, "profile");
    browser.navigate(&server.url(LOGIN));
    let button = browser.wait_for("#passkey-sign-in", WAIT);
    // Even with alice's sub as the user handle: the server knows no such credential.
    let stranger = VirtualCredential::new_resident("localhost", sub.as_bytes());
    let auth = browser.attach_authenticator(
        &AuthenticatorOptions::default(),
        std::slice::from_ref(&stranger),
    );
    browser.click(&button);
    // The answer reaches the server, which refuses it with a page that offers to try again.
    browser.wait_for_text("main", "Passkey not accepted");
    browser.wait_for_text("main", "not registered here");
    assert_eq!(browser.cookie("latchkey-session"), None);
    assert!(
        browser.credentials(&auth)[0].sign_count > 0,
        "the browser did use the planted credential (so the server refused it)"
    );
    assert_not_signed_in(&browser, &server);
}

/// An invite link, "Set up a passkey instead", a passkey registered on the page it leads to;
/// signed out, the new user signs in with the passkey and no username.
#[test]
fn an_invited_user_sets_up_a_passkey_and_signs_in_with_it() {
    if !support::needs(&["chromium", "chromedriver"]) {
        return;
    }
    let server = Server::start_localhost();
    support::init_data_dir(&server.data_dir);
    let link = invite(&server, "carol");
    let (dir, driver) = driver();
    let browser = browser(&driver, &dir, "profile");
    let auth = browser.add_virtual_authenticator(&AuthenticatorOptions::default());
    browser.navigate(&link);
    browser.click(&browser.wait_for("button[name=method][value=passkey]", WAIT));
    let at = browser.wait_for_url("sent to set up the passkey", |u| {
        !u.starts_with(&server.url("/account/setup"))
    });
    assert!(at.starts_with(&server.url("/account/passkeys")), "{at}");
    register_passkey(&browser, &server, "Carol's phone");
    assert_eq!(browser.credentials(&auth).len(), 1);

    sign_out(&browser, &server);
    let credentials = browser.detach_authenticator(&auth);
    browser.navigate(&server.url(LOGIN));
    let button = browser.wait_for("#passkey-sign-in", WAIT);
    browser.attach_authenticator(&AuthenticatorOptions::default(), &credentials);
    browser.click(&button);
    browser.wait_for_url("signed in with the passkey", |u| {
        !u.starts_with(&server.url("/login"))
    });
    assert_signed_in_as(&browser, &server, "carol");
    // The link is used up.
    browser.navigate(&link);
    browser.wait_for_text("main", "no longer valid");
}
