//! `latchkey client update` against a running server: what a change allows reaches `/token`
//! and `/authorize` within the reload interval, and every change the registration rules
//! forbid is refused with its message, leaving the client as it was.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Server, TestClient, eventually, form_encode};

/// The RFC 7636 appendix B challenge (any valid S256 challenge does here).
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn json(server: &Server, args: &[&str]) -> Value {
    serde_json::from_str(&server.cli_ok(args)).unwrap()
}

fn show(server: &Server, id: &str) -> Value {
    json(server, &["client", "show", id, "--json"])
}

/// The status of `GET /authorize` for a code request to `redirect_uri` without a session: 303
/// to the login page when the URI is registered, a 400 page when it is not.
fn authorize_status(server: &Server, client_id: &str, redirect_uri: &str) -> u16 {
    let r = server.get(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=read\
         &state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256",
        form_encode(redirect_uri)
    ));
    if r.status == 303 {
        let to = r.header("location").unwrap_or("");
        assert!(to.starts_with("/login?"), "{to}");
    }
    r.status
}

fn client_credentials(server: &Server, c: &TestClient, scope: &str) -> (u16, Value) {
    let r = server.post_basic(
        "/token",
        c,
        &format!("grant_type=client_credentials&scope={}", form_encode(scope)),
    );
    (r.status, r.json())
}

const SOON: Duration = Duration::from_secs(5);

#[test]
fn client_update_changes_what_a_running_server_allows() {
    let server = Server::start();
    let c = server.client("svc", "read");
    let (status, body) = client_credentials(&server, &c, "write");
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // Scopes: a --scope replaces the list.
    let v = json(
        &server,
        &["client", "update", "svc", "--scope", "read write", "--json"],
    );
    assert_eq!(v["client_id"], c.id.as_str());
    assert_eq!(v["scopes"], serde_json::json!(["read", "write"]));
    eventually(SOON, "the new scope is granted", || {
        client_credentials(&server, &c, "write").0 == 200
    });
    let (status, body) = client_credentials(&server, &c, "write");
    assert_eq!((status, body["scope"].as_str()), (200, Some("write")));

    // Grants and redirect URIs: the client moves to the code flow and loses client_credentials.
    let first = "https://app.example.org/cb";
    assert_eq!(authorize_status(&server, &c.id, first), 400);
    server.cli_ok(&[
        "client",
        "update",
        &c.id,
        "--grant",
        "authorization_code",
        "--redirect-uri",
        first,
    ]);
    eventually(SOON, "client_credentials is refused", || {
        client_credentials(&server, &c, "read").0 == 400
    });
    let (_, body) = client_credentials(&server, &c, "read");
    assert_eq!(body["error"], "unauthorized_client", "{body}");
    eventually(SOON, "/authorize accepts the redirect URI", || {
        authorize_status(&server, &c.id, first) == 303
    });

    // A new --redirect-uri replaces the old one at /authorize.
    let second = "https://app.example.org/new";
    server.cli_ok(&["client", "update", &c.id, "--redirect-uri", second]);
    eventually(SOON, "/authorize follows the new redirect URI", || {
        authorize_status(&server, &c.id, first) == 400
    });
    assert_eq!(authorize_status(&server, &c.id, second), 303);

    // What was not given stayed; the scope list kept its values.
    let v = show(&server, &c.id);
    assert_eq!(v["name"], "svc");
    assert_eq!(v["public"], false);
    assert_eq!(v["grant_types"], serde_json::json!(["authorization_code"]));
    assert_eq!(v["redirect_uris"], serde_json::json!([second]));
    assert_eq!(v["scopes"], serde_json::json!(["read", "write"]));

    // Every update is audited under the client_id.
    let events = json(&server, &["audit", "--json"]);
    let updates: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "client_updated")
        .collect();
    assert_eq!(updates.len(), 3, "{events}");
    assert!(
        updates
            .iter()
            .all(|e| e["target"] == c.id.as_str() && e["outcome"] == "ok"),
        "{updates:?}"
    );
}

#[test]
fn client_update_sets_and_clears_the_other_fields() {
    let server = Server::start();
    let c = server.client("svc", "read");
    let v = json(
        &server,
        &[
            "client",
            "update",
            "svc",
            "--name",
            "service",
            "--audience",
            "api://one",
            "--access-token-ttl",
            "10m",
            "--skip-consent",
            "true",
            "--require-pkce",
            "false",
            "--id-token-alg",
            "ES256",
            "--allow-group",
            "staff",
            "--allow-group",
            "ops",
            "--json",
        ],
    );
    assert_eq!(v["name"], "service");
    assert_eq!(v["audience"], "api://one");
    assert_eq!(v["access_token_ttl"], 600);
    assert_eq!(v["skip_consent"], true);
    assert_eq!(v["require_pkce"], false);
    assert_eq!(v["id_token_alg"], "ES256");
    assert_eq!(v["allowed_groups"], serde_json::json!(["staff", "ops"]));
    eventually(SOON, "tokens have the new lifetime", || {
        let (status, body) = client_credentials(&server, &c, "read");
        status == 200 && body["expires_in"] == 600
    });

    let v = json(
        &server,
        &[
            "client",
            "update",
            &c.id,
            "--no-audience",
            "--default-access-token-ttl",
            "--allow-group",
            "",
            "--json",
        ],
    );
    assert_eq!(v["audience"], Value::Null);
    assert_eq!(v["access_token_ttl"], Value::Null);
    assert_eq!(v["allowed_groups"], serde_json::json!([]));
    assert_eq!(v["name"], "service", "untouched fields stay");
}

#[test]
fn client_update_refusals_exit_2_and_change_nothing() {
    let server = Server::start();
    let conf = server.client("conf", "read");
    let public = json(
        &server,
        &[
            "client",
            "add",
            "spa",
            "--public",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            "https://spa.example.org/cb",
            "--json",
        ],
    )["client_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (conf_before, public_before) = (show(&server, &conf.id), show(&server, &public));

    let cases: &[(&str, &[&str], &str)] = &[
        (
            "unknown grant",
            &["conf", "--grant", "password"],
            "unknown grant \"password\"",
        ),
        (
            "public with client_credentials",
            &["spa", "--grant", "client_credentials"],
            "a public client cannot use client_credentials",
        ),
        (
            "refresh without the code flow",
            &["conf", "--grant", "refresh_token"],
            "refresh_token needs the authorization_code grant",
        ),
        (
            "code flow without a redirect URI",
            &["conf", "--grant", "authorization_code"],
            "needs at least one redirect URI",
        ),
        (
            "code flow whose redirect URIs are cleared",
            &["spa", "--redirect-uri", ""],
            "needs at least one redirect URI",
        ),
        (
            "http redirect URI on a public host",
            &["spa", "--redirect-uri", "http://spa.example.org/cb"],
            "plain http is only allowed on loopback addresses",
        ),
        (
            "redirect URI with user information",
            &["spa", "--redirect-uri", "https://u@spa.example.org/cb"],
            "needs a host and no user information",
        ),
        (
            "post-logout URI with a fragment",
            &[
                "spa",
                "--post-logout-redirect-uri",
                "https://spa.example.org/#x",
            ],
            "must not contain a fragment",
        ),
        (
            "lifetime below 30 s",
            &["conf", "--access-token-ttl", "29s"],
            "between 30 and 86400 seconds",
        ),
        (
            "lifetime above a day",
            &["conf", "--access-token-ttl", "86401s"],
            "between 30 and 86400 seconds",
        ),
        (
            "confidential to public",
            &["conf", "--public", "true"],
            "client conf is confidential, and a client's type cannot change",
        ),
        (
            "public to confidential",
            &["spa", "--public", "false"],
            "client spa is public, and a client's type cannot change",
        ),
        (
            "public without PKCE",
            &["spa", "--require-pkce", "false"],
            "a public client always uses PKCE",
        ),
        (
            "a taken name",
            &["conf", "--name", "spa"],
            "a client named \"spa\" already exists",
        ),
        (
            "a name with a control character",
            &["conf", "--name", "a\u{7}b"],
            "the name must be 1-100 printable characters",
        ),
        (
            "a bad group",
            &["conf", "--allow-group", "two words"],
            "group",
        ),
        (
            "empty audience",
            &["conf", "--audience", ""],
            "the audience must be a non-empty string",
        ),
        ("nothing to change", &["conf"], "nothing to change"),
        (
            "audience and no audience",
            &["conf", "--audience", "a", "--no-audience"],
            "cannot be used with",
        ),
        (
            "a lifetime and the default",
            &[
                "conf",
                "--access-token-ttl",
                "60s",
                "--default-access-token-ttl",
            ],
            "cannot be used with",
        ),
        (
            "not a boolean",
            &["conf", "--skip-consent", "yes"],
            "invalid value",
        ),
    ];
    let mut failures = Vec::new();
    for (name, args, message) in cases {
        let full: Vec<&str> = [&["client", "update"][..], args].concat();
        let out = server.cli(&full);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !stderr.contains(message) || !out.stdout.is_empty() {
            failures.push(format!(
                "[{name}] exit {:?}, stderr {stderr:?}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(show(&server, &conf.id), conf_before, "conf unchanged");
    assert_eq!(show(&server, &public), public_before, "spa unchanged");
    // The confidential client still works as before.
    assert_eq!(client_credentials(&server, &conf, "read").0, 200);

    // An unknown client is not found (exit 2), audited under the key given.
    let out = server.cli(&["client", "update", "nope", "--name", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no client with id or name \"nope\""),
        "{stderr}"
    );
    let events = json(&server, &["audit", "--json"]);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "client_updated"
                && e["target"] == "nope"
                && e["outcome"] == "failed"),
        "{events}"
    );
}

#[test]
fn token_lifetimes_take_a_unit_like_every_other_duration_flag() {
    let server = Server::start();
    let added = json(
        &server,
        &[
            "client",
            "add",
            "lifetimes",
            "--grant",
            "client_credentials",
            "--scope",
            "read",
            "--access-token-ttl",
            "15m",
            "--json",
        ],
    );
    let id = added["client_id"].as_str().unwrap();
    assert_eq!(show(&server, id)["access_token_ttl"], 900);
    server.cli_ok(&["client", "update", id, "--access-token-ttl", "1h"]);
    assert_eq!(show(&server, id)["access_token_ttl"], 3600);
    server.cli_ok(&["client", "update", id, "--access-token-ttl", "120s"]);
    assert_eq!(show(&server, id)["access_token_ttl"], 120);
    // Beyond a day, a bad unit, and not a number: usage errors, nothing changed.
    for bad in ["2d", "15x", "soon", "120"] {
        let out = server.cli(&["client", "update", id, "--access-token-ttl", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
    }
    assert_eq!(show(&server, id)["access_token_ttl"], 120);
    let shown = server.cli_ok(&["client", "show", id]);
    assert!(
        shown.contains("grant_types:               client_credentials"),
        "{shown}"
    );
    assert!(shown.contains("access_token_ttl:          120s"), "{shown}");
}

/// Redirect URIs are added and removed one by one, keeping the others, the client id and the
/// secret; removing a URI that is not registered is refused and changes nothing.
#[test]
fn client_update_adds_and_removes_redirect_uris_keeping_id_and_secret() {
    let server = Server::start();
    let (a, b, c) = (
        "https://app.example.org/a",
        "https://app.example.org/b",
        "https://app.example.org/c",
    );
    let added = json(
        &server,
        &[
            "client",
            "add",
            "web",
            "--grant",
            "authorization_code",
            "--grant",
            "client_credentials",
            "--scope",
            "openid read",
            "--redirect-uri",
            a,
            "--redirect-uri",
            b,
            "--json",
        ],
    );
    let client = TestClient {
        id: added["client_id"].as_str().unwrap().to_string(),
        secret: added["client_secret"].as_str().unwrap().to_string(),
    };
    let v = json(
        &server,
        &[
            "client",
            "update",
            "web",
            "--add-redirect-uri",
            c,
            "--remove-redirect-uri",
            a,
            "--add-post-logout-redirect-uri",
            "https://app.example.org/bye",
            "--json",
        ],
    );
    assert_eq!(v["client_id"], client.id.as_str());
    assert_eq!(v["redirect_uris"], serde_json::json!([b, c]));
    assert_eq!(
        v["post_logout_redirect_uris"],
        serde_json::json!(["https://app.example.org/bye"])
    );
    eventually(SOON, "the removed URI is refused", || {
        authorize_status(&server, &client.id, a) == 400
    });
    assert_eq!(authorize_status(&server, &client.id, b), 303);
    assert_eq!(authorize_status(&server, &client.id, c), 303);
    // The secret is the same one.
    assert_eq!(client_credentials(&server, &client, "read").0, 200);

    // Adding one already there keeps it once; removing one not there is refused.
    let v = json(
        &server,
        &["client", "update", "web", "--add-redirect-uri", b, "--json"],
    );
    assert_eq!(v["redirect_uris"], serde_json::json!([b, c]));
    let out = server.cli(&["client", "update", "web", "--remove-redirect-uri", a]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not registered for this client"),
        "{out:?}"
    );
    assert_eq!(
        show(&server, &client.id)["redirect_uris"],
        serde_json::json!([b, c])
    );
    // Removing the last one of a code-flow client is refused by the registration rules.
    let out = server.cli(&[
        "client",
        "update",
        "web",
        "--remove-redirect-uri",
        b,
        "--remove-redirect-uri",
        c,
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        show(&server, &client.id)["redirect_uris"],
        serde_json::json!([b, c])
    );
}
