//! The grants as functions, without sockets: a worker over an in-memory store, a form as the
//! token endpoint would have read it, and the outcome — the token response, or the
//! [`ErrorCode`] the client would see. The client is taken as already authenticated, as the
//! token endpoint hands it over.

use std::sync::Arc;

use serde_json::Value;

use super::{authorization_code, client_credentials, refresh_token};
use crate::app::{Worker, testing};
use crate::crypto::{b64url, sha256};
use crate::http::Resp;
use crate::http::form::{Form, encode_pairs};
use crate::oauth::access_token::{self, Invalid};
use crate::oauth::error::{ErrorCode, OAuthError};
use crate::store::grants::NewCode;
use crate::store::{Client, NewClient};

const NOW: i64 = 1_000_000;
const REDIRECT: &str = "https://app.test/cb";
const VERIFIER: &str = "a-verifier-of-at-least-forty-three-characters-0123456789";

/// A worker with the user `u1` and two confidential clients, `app` (every grant, scopes
/// `openid profile api:read`, no consent asked) and `other`.
fn setup() -> Worker {
    let mut w = testing::worker(NOW);
    w.store
        .insert_user("u1", "alice", None, None, None, &[], NOW)
        .unwrap();
    let redirect_uris = [REDIRECT.to_string()];
    let grant_types =
        ["authorization_code", "refresh_token", "client_credentials"].map(String::from);
    let scopes = ["openid", "profile", "api:read"].map(String::from);
    for id in ["app", "other"] {
        w.store
            .insert_client(
                &NewClient {
                    client_id: id,
                    name: id,
                    secret_hash: Some([7u8; 32]),
                    redirect_uris: &redirect_uris,
                    grant_types: &grant_types,
                    scopes: &scopes,
                    audience: None,
                    access_token_ttl: None,
                    require_pkce: true,
                    skip_consent: true,
                    id_token_alg: "ES256",
                    post_logout_redirect_uris: &[],
                    allowed_groups: &[],
                    require_mfa: false,
                },
                NOW,
            )
            .unwrap();
    }
    w
}

fn client(w: &Worker, id: &str) -> Arc<Client> {
    w.store.client(id).unwrap().unwrap()
}

fn form(pairs: &[(&str, &str)]) -> Form {
    Form::parse(encode_pairs(pairs.iter().copied()).as_bytes()).unwrap()
}

/// Stores a code for `app` and alice, bound to [`REDIRECT`] and [`VERIFIER`], and returns it.
fn issue_code(w: &mut Worker, name: &str, expires_at: i64) -> String {
    let code = format!("code-{name}");
    let challenge = b64url(&sha256(VERIFIER.as_bytes()));
    w.store
        .insert_code(
            &sha256(code.as_bytes()),
            &NewCode {
                client_id: "app",
                user_id: "u1",
                redirect_uri: Some(REDIRECT),
                scope: "openid profile",
                nonce: None,
                code_challenge: Some(&challenge),
                auth_time: NOW,
                expires_at,
                amr: "[\"pwd\"]",
            },
        )
        .unwrap();
    code
}

fn redeem(w: &mut Worker, client_id: &str, pairs: &[(&str, &str)]) -> Result<Resp, OAuthError> {
    let c = client(w, client_id);
    authorization_code::exchange(w, &c, &form(pairs), "192.0.2.1", NOW)
}

fn refresh(w: &mut Worker, token: &str) -> Result<Resp, OAuthError> {
    let c = client(w, "app");
    refresh_token::exchange(
        w,
        &c,
        &form(&[("grant_type", "refresh_token"), ("refresh_token", token)]),
        "192.0.2.1",
        NOW,
    )
}

fn code_request(code: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ]
}

/// The JSON body of a token response.
fn tokens(resp: Result<Resp, OAuthError>) -> Value {
    let resp = resp.unwrap();
    assert_eq!(resp.status, 200);
    serde_json::from_slice(&resp.body).unwrap()
}

fn code_of(result: Result<Resp, OAuthError>) -> ErrorCode {
    match result {
        Ok(resp) => panic!("expected an error, got {}", resp.status),
        Err(e) => e.code,
    }
}

fn str_of<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap()
}

/// Whether latchkey still accepts an access token it issued.
fn access_valid(w: &Worker, token: &str) -> Result<(), Invalid> {
    access_token::validate(w, token, NOW).unwrap().map(|_| ())
}

#[test]
fn a_code_redeems_once_and_its_replay_revokes_what_it_gave() {
    let mut w = setup();
    let code = issue_code(&mut w, "once", NOW + 60);
    let first = tokens(redeem(&mut w, "app", &code_request(&code)));
    assert_eq!(first["scope"], "openid profile");
    assert!(first["id_token"].is_string());
    let access = str_of(&first, "access_token");
    assert_eq!(access_valid(&w, access), Ok(()));

    assert_eq!(
        code_of(redeem(&mut w, "app", &code_request(&code))),
        ErrorCode::InvalidGrant
    );
    assert_eq!(access_valid(&w, access), Err(Invalid::Revoked));
    assert_eq!(
        code_of(refresh(&mut w, str_of(&first, "refresh_token"))),
        ErrorCode::InvalidGrant,
        "the replay revoked the refresh token too"
    );
}

#[test]
fn a_code_is_refused_to_the_wrong_client_redirect_or_verifier_and_when_expired() {
    let mut w = setup();
    let code = issue_code(&mut w, "checks", NOW + 60);
    let mut request = code_request(&code);
    assert_eq!(
        code_of(redeem(&mut w, "other", &request)),
        ErrorCode::InvalidGrant,
        "another client"
    );
    request[2] = ("redirect_uri", "https://app.test/other");
    assert_eq!(
        code_of(redeem(&mut w, "app", &request)),
        ErrorCode::InvalidGrant,
        "another redirect_uri"
    );
    let mut request = code_request(&code);
    request[3] = (
        "code_verifier",
        "b-verifier-of-at-least-forty-three-characters-0123456789",
    );
    assert_eq!(
        code_of(redeem(&mut w, "app", &request)),
        ErrorCode::InvalidGrant,
        "another verifier"
    );
    request.truncate(3);
    assert_eq!(
        code_of(redeem(&mut w, "app", &request)),
        ErrorCode::InvalidGrant,
        "no verifier"
    );
    // None of these spent the code: the right request still gets tokens.
    tokens(redeem(&mut w, "app", &code_request(&code)));

    let expired = issue_code(&mut w, "expired", NOW);
    assert_eq!(
        code_of(redeem(&mut w, "app", &code_request(&expired))),
        ErrorCode::InvalidGrant,
        "expired"
    );
}

#[test]
fn a_refresh_token_rotates_and_its_reuse_revokes_the_family() {
    let mut w = setup();
    let code = issue_code(&mut w, "family", NOW + 60);
    let first = tokens(redeem(&mut w, "app", &code_request(&code)));
    let r1 = str_of(&first, "refresh_token").to_string();

    let second = tokens(refresh(&mut w, &r1));
    let r2 = str_of(&second, "refresh_token").to_string();
    assert_ne!(r1, r2, "rotated");
    let access2 = str_of(&second, "access_token").to_string();
    assert_eq!(access_valid(&w, &access2), Ok(()));

    // The rotated-away token is refused, and presenting it ends the whole family.
    assert_eq!(code_of(refresh(&mut w, &r1)), ErrorCode::InvalidGrant);
    assert_eq!(code_of(refresh(&mut w, &r2)), ErrorCode::InvalidGrant);
    assert_eq!(access_valid(&w, &access2), Err(Invalid::Revoked));
}

#[test]
fn client_credentials_grants_only_the_clients_scopes() {
    let w = setup();
    let c = client(&w, "app");
    let ask = |scope: &str| {
        client_credentials::exchange(
            &w,
            &c,
            &form(&[("grant_type", "client_credentials"), ("scope", scope)]),
            NOW,
        )
    };
    assert_eq!(code_of(ask("api:write")), ErrorCode::InvalidScope);
    assert_eq!(code_of(ask("api:read api:write")), ErrorCode::InvalidScope);
    let granted = tokens(ask("api:read"));
    assert_eq!(granted["scope"], "api:read");
    assert!(granted.get("refresh_token").is_none());
}
