//! Where a second factor is required, against the real binary: ID tokens that say how the user
//! signed in (`amr`, `acr`, verified with the independent `jsonwebtoken` crate), a client, a
//! request (`acr_values`), a user's group or the user that requires a second factor, a
//! password-only session sent to give one (or to enrol one), `prompt=none` refused with
//! `login_required`, a user with a second factor who owes it after the password, and forward
//! auth with `--require-mfa` and `Remote-Amr`.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::oauth::{db, jwks};
use crate::support::browser::{Browser, encode_form, location, query_param};
use crate::support::{PASSWORD, Response, Server, add_user, basic_header, eventually, form_encode};

const SECONDS_3: std::time::Duration = std::time::Duration::from_secs(3);

pub(crate) const CB: &str = "https://app.example/cb";
const ACR_MFA: &str = "urn:latchkey:acr:mfa";
const ACR_PWD: &str = "urn:latchkey:acr:pwd";

/// A confidential code client that skips consent: (client_id, secret).
pub(crate) fn add_app(server: &Server, name: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "client",
        "add",
        name,
        "--grant",
        "authorization_code",
        "--grant",
        "refresh_token",
        "--redirect-uri",
        CB,
        "--skip-consent",
        "--no-require-pkce",
        "--json",
    ];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&server.cli_ok(&args)).unwrap();
    (
        v["client_id"].as_str().unwrap().to_string(),
        v["client_secret"].as_str().unwrap().to_string(),
    )
}

pub(crate) fn authorize_url(client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("client_id", client_id),
        ("redirect_uri", CB),
        ("response_type", "code"),
        ("scope", "openid profile offline_access"),
        ("state", "s1"),
        ("nonce", "n1"),
    ];
    pairs.extend_from_slice(extra);
    format!("/authorize?{}", encode_form(&pairs))
}

/// Verifies an ID token with `jsonwebtoken` against the published JWKS; returns its claims.
pub(crate) fn id_claims(server: &Server, token: &str, client_id: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks(server)
        .find(header.kid.as_deref().unwrap())
        .cloned()
        .expect("the ID token's kid is published");
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[server.issuer()]);
    v.set_audience(&[client_id]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .unwrap_or_else(|e| panic!("ID token does not verify: {e}"))
        .claims
}

pub(crate) fn redeem(server: &Server, (id, secret): &(String, String), code: &str) -> Response {
    server.post_form(
        "/token",
        &encode_form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
        ]),
        &basic_header(id, secret),
    )
}

/// The `code` of a callback URL, checking `state`.
pub(crate) fn code_of(callback: &str) -> String {
    assert!(callback.starts_with(CB), "not the callback: {callback}");
    assert_eq!(query_param(callback, "state").as_deref(), Some("s1"));
    query_param(callback, "code").unwrap_or_else(|| panic!("no code in {callback}"))
}

#[test]
fn id_tokens_say_how_the_user_signed_in_and_discovery_lists_the_acr_values() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &[]);
    let app = add_app(&server, "wiki", &[]);
    let mut b = Browser::new(&server);
    let callback = b.login("alice", PASSWORD, &authorize_url(&app.0, &[]));
    let r = redeem(&server, &app, &code_of(&callback));
    assert_eq!(r.status, 200, "{}", r.text());
    let tokens = r.json();
    let claims = id_claims(&server, tokens["id_token"].as_str().unwrap(), &app.0);
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["acr"], ACR_PWD);
    // A refreshed ID token says how the original sign-in went.
    let r = server.post_form(
        "/token",
        &encode_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ]),
        &basic_header(&app.0, &app.1),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let claims = id_claims(&server, r.json()["id_token"].as_str().unwrap(), &app.0);
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));

    let d = server.get("/.well-known/openid-configuration").json();
    assert_eq!(
        d["acr_values_supported"],
        serde_json::json!([ACR_PWD, ACR_MFA])
    );
    let claims = d["claims_supported"].as_array().unwrap();
    assert!(claims.contains(&"amr".into()) && claims.contains(&"acr".into()));
}

/// Signs alice in with her password for `url`; returns the browser and where `/authorize`
/// then sent it.
fn password_only<'a>(server: &'a Server, url: &str) -> (Browser<'a>, String) {
    let mut b = Browser::new(server);
    let r = b.get(url);
    assert_eq!(r.status, 303, "{}", r.text());
    let r = b.submit_login(&location(&r), "alice", PASSWORD);
    assert_eq!(r.status, 303, "login: {}", r.text());
    let back = location(&r);
    assert!(back.starts_with("/authorize?"), "{back}");
    let r = b.get(&back);
    assert_eq!(r.status, 303, "{}", r.text());
    (b, location(&r))
}

/// Asserts that a password-only session was sent to enrol a second factor, carrying the
/// authorization request back.
fn assert_sent_to_enrol(to: &str, client_id: &str) {
    assert!(to.starts_with("/account/totp?return_to="), "{to}");
    let back = query_param(to, "return_to").unwrap();
    assert!(
        back.starts_with("/authorize?") && back.contains(client_id),
        "{back}"
    );
}

#[test]
fn a_client_a_request_a_group_or_the_user_can_require_a_second_factor() {
    let server = Server::start();
    add_user(&server.data_dir, "alice", &["--group", "family"]);
    let strict = add_app(&server, "vault", &["--require-mfa"]);
    let (mut b, to) = password_only(&server, &authorize_url(&strict.0, &[]));
    assert_sent_to_enrol(&to, &strict.0);
    // Under prompt=none the client hears why, with the error OIDC Core §3.1.2.6 names.
    let r = b.get(&authorize_url(&strict.0, &[("prompt", "none")]));
    assert_eq!(r.status, 303);
    let back = location(&r);
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("login_required"),
        "{back}"
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("s1"));
    // The consent form cannot get round it either.
    let lax = add_app(&server, "wiki", &[]);
    let r = b.get(&authorize_url(&lax.0, &[]));
    assert_eq!(r.status, 303);
    assert!(location(&r).starts_with(CB), "no requirement: a code");
    // acr_values asks for it on a client that does not require it.
    let r = b.get(&authorize_url(&lax.0, &[("acr_values", ACR_MFA)]));
    assert_sent_to_enrol(&location(&r), &lax.0);
    // Other acr values are voluntary and ignored.
    let r = b.get(&authorize_url(&lax.0, &[("acr_values", "urn:other:gold")]));
    assert!(location(&r).starts_with(CB));

    // A group: the setting names groups that exist, and follows a rename.
    let out = server.cli(&["settings", "set", "mfa.required_for_groups", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no group named \"nosuch\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.cli_ok(&["settings", "set", "mfa.required_for_groups", "family"]);
    server.cli_ok(&["group", "rename", "family", "household"]);
    assert_eq!(
        server
            .cli_ok(&["settings", "get", "mfa.required_for_groups"])
            .trim(),
        "household"
    );
    let needs = |b: &mut Browser| {
        let r = b.get(&authorize_url(&lax.0, &[]));
        assert_eq!(r.status, 303);
        !location(&r).starts_with(CB)
    };
    eventually(
        SECONDS_3,
        "a member of household must give a second factor",
        || needs(&mut b),
    );
    // Removing the group needs --yes because the setting names it, and then drops it there.
    let out = server.cli(&["group", "remove", "household"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("mfa.required_for_groups"));
    server.cli_ok(&["group", "remove", "household", "--yes"]);
    assert_eq!(
        server
            .cli_ok(&["settings", "get", "mfa.required_for_groups"])
            .trim(),
        ""
    );
    eventually(SECONDS_3, "a removed group requires nothing", || {
        !needs(&mut b)
    });

    // The user: `user mfa --require`.
    server.cli_ok(&["user", "mfa", "alice", "--require"]);
    eventually(SECONDS_3, "the user requires a second factor", || {
        needs(&mut b)
    });
}

#[test]
fn a_user_with_a_second_factor_owes_it_after_the_password() {
    let server = Server::start();
    let sub = add_user(&server.data_dir, "alice", &[]);
    db(&server.data_dir)
        .execute(
            "INSERT INTO totp (user_id, secret, created_at) VALUES (?1, zeroblob(20), 1)",
            [&sub],
        )
        .unwrap();
    let app = add_app(&server, "wiki", &[]);
    let url = authorize_url(&app.0, &[]);
    let mut b = Browser::new(&server);
    let r = b.get(&url);
    let r = b.submit_login(&location(&r), "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let to = location(&r);
    assert!(to.starts_with("/login/second-factor?return_to="), "{to}");
    assert_eq!(query_param(&to, "return_to").as_deref(), Some(&*url));
    // Until it is given, the browser is not signed in: no code, and `/` says so.
    let r = b.get(&url);
    assert_eq!(r.status, 303);
    assert!(location(&r).starts_with("/login?"), "{}", location(&r));
    assert!(b.get("/").text().contains("You are not signed in."));
}

/// Forward auth for `http://vault.test/` as Traefik asks, with this browser's cookie.
fn ask(server: &Server, cookie: &str, accept: &str) -> Response {
    server.raw(
        format!(
            "GET /api/forward-auth HTTP/1.1\r\nHost: auth.test\r\nConnection: close\r\n\
             X-Forwarded-Proto: http\r\nX-Forwarded-Host: vault.test\r\nX-Forwarded-Uri: /\r\n\
             Accept: {accept}\r\nCookie: latchkey-fa={cookie}\r\n\r\n"
        )
        .as_bytes(),
    )
}

#[test]
fn forward_auth_passes_the_amr_and_a_rule_can_require_a_second_factor() {
    let server = Server::start_with(&[], |dir| {
        crate::support::latchkey_ok(
            dir,
            &["rule", "add", "--host", "vault.test", "--allow-any-user"],
        );
    });
    add_user(&server.data_dir, "alice", &[]);
    let mut b = Browser::new(&server);
    let rd = "http://vault.test/";
    let (_, r) = b.submit_login_page(&format!("/login?rd={}", form_encode(rd)), "alice", PASSWORD);
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = b.cookie("latchkey-fa").unwrap().to_string();
    let r = ask(&server, &cookie, "text/html");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("remote-user"), Some("alice"));
    assert_eq!(r.header("remote-amr"), Some("pwd"));

    // The rule now wants a second factor: the browser is sent to get one, then back.
    let id = server.cli_ok(&["rule", "list", "--json"]);
    let id = serde_json::from_str::<Value>(&id).unwrap()[0]["id"].to_string();
    server.cli_ok(&["rule", "remove", &id]);
    server.cli_ok(&[
        "rule",
        "add",
        "--host",
        "vault.test",
        "--allow-any-user",
        "--require-mfa",
    ]);
    eventually(SECONDS_3, "the rule change reaches the server", || {
        ask(&server, &cookie, "text/html").status == 302
    });
    let r = ask(&server, &cookie, "text/html");
    let to = r.header("location").unwrap().to_string();
    let prefix = format!("{}/account/totp?", server.issuer());
    assert!(to.starts_with(&prefix), "{to}");
    assert_eq!(query_param(&to, "rd").as_deref(), Some(rd));
    // Scripts are refused outright.
    let r = ask(&server, &cookie, "application/json");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("second factor"), "{}", r.text());
    // nginx sends the browser to /login?rd=…: a signed-in one steps up there too, not round
    // in a circle.
    let r = b.get(&format!("/login?rd={}", form_encode(rd)));
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(
        location(&r).starts_with("/account/totp?"),
        "{}",
        location(&r)
    );
}
