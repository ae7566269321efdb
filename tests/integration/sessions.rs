//! `latchkey user session list|end` against the real binary: a user signs in over HTTP, an
//! admin lists the session and ends it, and its cookies stop working, both the login session
//! at `/authorize` and the forward-auth session at `/api/forward-auth` (whose in-memory cache
//! must drop it); unknown ids and users are refused.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::browser::{Browser, encode_form, hidden_input, location};
use crate::support::{
    Response, Server, eventually, form_encode, latchkey, latchkey_ok, latchkey_stdin, temp_dir,
};

const PASSWORD: &str = "correct horse battery staple";
const CB: &str = "https://app.example/cb";
/// A syntactically valid S256 challenge (no code is ever redeemed here).
const CHALLENGE_S256: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// What a protected app is asked for.
const RD: &str = "http://any.test/";
/// How long a CLI change may take to reach a running server (about a second).
const RELOAD: Duration = Duration::from_secs(3);

fn add_user(data_dir: &Path, name: &str) {
    let out = latchkey_stdin(
        data_dir,
        &["user", "add", name, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "user add {name}: {out:?}");
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Signs `user` in through `/login?rd=RD` with a new browser, which then holds a login cookie
/// and a forward-auth cookie.
fn sign_in<'a>(server: &'a Server, user: &str) -> Browser<'a> {
    let mut b = Browser::new(server);
    let page = b.get(&format!("/login?rd={}", form_encode(RD)));
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let field = |name: &str| hidden_input(&html, name).unwrap_or_default();
    let r = b.post(
        "/login",
        &[
            ("csrf", &field("csrf")),
            ("return_to", &field("return_to")),
            ("rd", &field("rd")),
            ("username", user),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text());
    assert!(b.cookie("latchkey-session").is_some() && b.cookie("latchkey-fa").is_some());
    b
}

/// The proxy's question for `RD` with this browser's forward-auth cookie, as a browser asks.
fn forward(server: &Server, b: &Browser) -> Response {
    let cookie = b.cookie("latchkey-fa").unwrap_or_default();
    server.raw(
        format!(
            "GET /api/forward-auth HTTP/1.1\r\nHost: auth.test\r\nConnection: close\r\n\
             X-Forwarded-Proto: http\r\nX-Forwarded-Host: any.test\r\nX-Forwarded-Uri: /\r\n\
             Accept: text/html\r\nCookie: latchkey-fa={cookie}\r\n\r\n"
        )
        .as_bytes(),
    )
}

/// True if `/authorize` with this browser's login cookie goes straight back to the app with a
/// code; false if it asks to sign in.
fn authorize_signed_in(b: &mut Browser, authorize: &str) -> bool {
    let r = b.get(authorize);
    assert_eq!(r.status, 303, "{}", r.text());
    let to = location(&r);
    if to.starts_with("/login?return_to=") {
        return false;
    }
    assert!(to.starts_with(CB) && to.contains("code="), "{to}");
    true
}

fn session_list(server: &Server, user: &str) -> Vec<Value> {
    let out = server.cli_ok(&["user", "session", "list", user, "--json"]);
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_admin_lists_a_users_sessions_and_ends_one_or_all_and_their_cookies_stop_working() {
    let mut client_id = String::new();
    let server = Server::start_with(&[], |dir| {
        add_user(dir, "alice");
        add_user(dir, "bob");
        latchkey_ok(
            dir,
            &["rule", "add", "--host", "any.test", "--allow-any-user"],
        );
        let rp: Value = serde_json::from_str(&latchkey_ok(
            dir,
            &[
                "client",
                "add",
                "web",
                "--grant",
                "authorization_code",
                "--redirect-uri",
                CB,
                "--skip-consent",
                "--json",
            ],
        ))
        .unwrap();
        client_id = rp["client_id"].as_str().unwrap().to_string();
    });
    let authorize = format!(
        "/authorize?{}",
        encode_form(&[
            ("client_id", client_id.as_str()),
            ("redirect_uri", CB),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s1"),
            ("code_challenge", CHALLENGE_S256),
            ("code_challenge_method", "S256"),
        ])
    );
    assert!(session_list(&server, "alice").is_empty());
    assert!(
        server
            .cli_ok(&["user", "session", "list", "alice"])
            .contains("alice has no sessions")
    );

    // Two browsers; the list tells which session is whose by what is new in it.
    let mut first = sign_in(&server, "alice");
    let first_id = ids(&session_list(&server, "alice"));
    assert_eq!(first_id.len(), 1, "{first_id:?}");
    let first_id = first_id[0].clone();
    let mut second = sign_in(&server, "alice");
    let bob = sign_in(&server, "bob");
    let list = session_list(&server, "alice");
    assert_eq!(list.len(), 2, "{list:?}");
    let second_id = ids(&list).into_iter().find(|id| *id != first_id).unwrap();
    for s in &list {
        let id = s["id"].as_str().unwrap();
        assert_eq!(id.len(), 12, "{s}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{s}"
        );
        let auth_time = s["auth_time"].as_i64().unwrap();
        assert!(auth_time > 0, "{s}");
        assert!(s["last_seen_at"].as_i64().unwrap() >= auth_time, "{s}");
        assert!(s["expires_at"].as_i64().unwrap() > auth_time, "{s}");
        assert_eq!(s["forward_auth_sessions"], 1, "{s}");
    }
    // The list never shows a cookie, in either form.
    let text = server.cli_ok(&["user", "session", "list", "alice"]);
    assert!(
        text.contains(&first_id) && text.contains(&second_id),
        "{text}"
    );
    for b in [&first, &second] {
        for name in ["latchkey-session", "latchkey-fa"] {
            let cookie = b.cookie(name).unwrap();
            assert!(!text.contains(cookie), "a cookie is in the session list");
            assert!(!format!("{list:?}").contains(cookie));
        }
    }

    // Every cookie works, and the forward-auth answers are cached.
    for _ in 0..2 {
        assert_eq!(forward(&server, &first).status, 200);
        assert_eq!(forward(&server, &second).status, 200);
    }
    assert!(authorize_signed_in(&mut first, &authorize));
    assert!(authorize_signed_in(&mut second, &authorize));

    // End the first: its login and forward-auth cookies stop working; the second stays.
    let out = server.cli_ok(&["user", "session", "end", "alice", &first_id]);
    assert!(out.contains(&first_id), "{out}");
    eventually(RELOAD, "the ended forward-auth session is refused", || {
        forward(&server, &first).status == 302
    });
    let r = forward(&server, &first);
    assert!(
        r.header("location")
            .unwrap_or_default()
            .contains("/login?rd="),
        "{:?}",
        r.headers
    );
    assert!(!authorize_signed_in(&mut first, &authorize));
    assert_eq!(forward(&server, &second).status, 200);
    assert!(authorize_signed_in(&mut second, &authorize));
    assert_eq!(
        ids(&session_list(&server, "alice")),
        vec![second_id.clone()]
    );
    // The same id again is unknown now.
    let again = server.cli(&["user", "session", "end", "alice", &first_id]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");

    // End all of alice's sessions; bob's stays.
    let out = server.cli_ok(&["user", "session", "end", "alice", "--all"]);
    assert!(out.contains("ended 1 session"), "{out}");
    eventually(
        RELOAD,
        "every forward-auth session of alice is refused",
        || forward(&server, &second).status == 302,
    );
    assert!(!authorize_signed_in(&mut second, &authorize));
    assert!(session_list(&server, "alice").is_empty());
    assert_eq!(forward(&server, &bob).status, 200);
    assert_eq!(session_list(&server, "bob").len(), 1);

    // Each end is audited with the user and the id, or `all`.
    let audit: Value = serde_json::from_str(&server.cli_ok(&["audit", "--json"])).unwrap();
    let ended: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user_session_ended")
        .map(|e| {
            (
                e["target"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        (format!("alice {first_id}"), "ok"),
        (format!("alice {first_id}"), "failed"),
        ("alice all".to_string(), "ok"),
    ] {
        assert!(
            ended.iter().any(|(t, o)| *t == want.0 && o == want.1),
            "{want:?} not in {ended:?}"
        );
    }
}

#[test]
fn ending_a_session_refuses_unknown_ids_malformed_ids_and_unknown_users() {
    let dir = temp_dir("session-end-errors");
    crate::support::init_data_dir(&dir);
    add_user(&dir, "alice");
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["user", "session", "end", "alice", "0123456789ab"],
            2,
            "alice has no session \"0123456789ab\"",
        ),
        (
            &["user", "session", "end", "alice", "not-an-id"],
            2,
            "a session id is the 12 hex digits",
        ),
        (
            &["user", "session", "end", "nobody", "--all"],
            2,
            "no user named \"nobody\"",
        ),
        (
            &["user", "session", "end", "nobody", "0123456789ab"],
            2,
            "no user named \"nobody\"",
        ),
        (
            &["user", "session", "list", "nobody"],
            2,
            "no user named \"nobody\"",
        ),
        // Neither an id nor --all, and both.
        (&["user", "session", "end", "alice"], 2, "<ID>"),
        (
            &["user", "session", "end", "alice", "0123456789ab", "--all"],
            2,
            "--all",
        ),
    ];
    for (args, code, message) in cases {
        let out = latchkey(&dir, args);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {out:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // --all with no sessions is fine.
    let out = latchkey_ok(&dir, &["user", "session", "end", "alice", "--all"]);
    assert!(out.contains("ended 0 session"), "{out}");
}
