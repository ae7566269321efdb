//! The store contract (dex's conformance-suite pattern for a single backend): every case runs
//! against a private in-memory database and against an on-disk WAL file, so behaviour that
//! depends on the journal (locking, triggers, transactions) is exercised both ways.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::apikeys::NewApiKey;
use super::grants::{self as g, NewCode, NewRefresh};
use super::{NewClient, Revision, SCHEMA_VERSION, Store, StoreError};

type Case = fn(&mut Store);

const CASES: &[(&str, Case)] = &[
    ("schema_version", schema_version),
    ("clients_crud", clients_crud),
    ("client_name_conflict", client_name_conflict),
    ("client_secret_rotation", client_secret_rotation),
    ("keys_first_key_once", keys_first_key_once),
    ("keys_rotation_and_retirement", keys_rotation_and_retirement),
    ("keys_next_then_promoted", keys_next_then_promoted),
    ("revocations_and_gc", revocations_and_gc),
    ("settings_round_trip", settings_round_trip),
    ("revisions_follow_changes", revisions_follow_changes),
    ("code_is_redeemed_once", code_is_redeemed_once),
    ("refresh_rotation_and_reuse", refresh_rotation_and_reuse),
    (
        "grant_revocation_is_per_family",
        grant_revocation_is_per_family,
    ),
    ("sessions_expire_and_gc", sessions_expire_and_gc),
    (
        "login_sessions_record_how_and_owe_a_second_factor",
        login_sessions_record_how_and_owe_a_second_factor,
    ),
    ("ending_a_users_sessions", ending_a_users_sessions),
    ("api_key_revocation_sticks", api_key_revocation_sticks),
    ("rules_keep_their_order", rules_keep_their_order),
    ("consents_cover_and_revoke", consents_cover_and_revoke),
    ("totp_steps_are_used_once", totp_steps_are_used_once),
    ("recovery_codes_are_used_once", recovery_codes_are_used_once),
    ("setup_links_are_single_use", setup_links_are_single_use),
    ("setup_links_expire_and_gc", setup_links_expire_and_gc),
    (
        "a_newer_setup_link_kills_the_older",
        a_newer_setup_link_kills_the_older,
    ),
    (
        "second_factors_are_removed_together",
        second_factors_are_removed_together,
    ),
    (
        "passkeys_are_unique_and_owned",
        passkeys_are_unique_and_owned,
    ),
    (
        "an_own_password_change_ends_the_rest",
        an_own_password_change_ends_the_rest,
    ),
    (
        "webauthn_challenges_are_single_use",
        webauthn_challenges_are_single_use,
    ),
];

pub(crate) fn temp_db() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "latchkey-store-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run_all(open: &dyn Fn() -> Store) {
    for (name, case) in CASES {
        let mut store = open();
        eprintln!("store case {name}");
        case(&mut store);
    }
}

#[test]
fn conformance_in_memory() {
    run_all(&|| Store::open_in_memory().unwrap());
}

#[test]
fn conformance_on_disk_wal() {
    run_all(&|| {
        let store = Store::open_data_dir(&temp_db()).unwrap();
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        store
    });
}

#[test]
fn commits_are_durable_unless_relaxed() {
    let store = Store::open_data_dir(&temp_db()).unwrap();
    assert_eq!(
        store.synchronous().unwrap(),
        2,
        "FULL for the CLI and first start"
    );
    store.relax_durability().unwrap();
    assert_eq!(store.synchronous().unwrap(), 1, "NORMAL for the workers");
}

#[test]
fn writers_of_one_process_queue_instead_of_failing_busy() {
    // Eight connections each commit 200 revocations at the same time: every write lands and
    // none fails with SQLITE_BUSY. (How fast they land is the benchmark's business: the
    // refresh-rotation scenario of bench/run.sh.)
    let dir = temp_db();
    drop(Store::open_data_dir(&dir).unwrap());
    let path = dir.join(super::DB_FILE);
    std::thread::scope(|s| {
        for t in 0..8 {
            let path = path.clone();
            s.spawn(move || {
                let mut store = Store::open_file(&path).unwrap();
                store.relax_durability().unwrap();
                for i in 0..200 {
                    store.revoke_jti(&format!("t{t}-{i}"), 1000).unwrap();
                }
            });
        }
    });
    let store = Store::open_file(&path).unwrap();
    let n: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM revoked_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1600);
}

/// A confidential client for tests.
pub(crate) fn new_client<'a>(id: &'a str, name: &'a str, scopes: &'a [String]) -> NewClient<'a> {
    NewClient {
        client_id: id,
        name,
        secret_hash: Some([7u8; 32]),
        redirect_uris: &[],
        grant_types: &[],
        scopes,
        audience: None,
        access_token_ttl: None,
        require_pkce: true,
        skip_consent: false,
        id_token_alg: "RS256",
        post_logout_redirect_uris: &[],
        allowed_groups: &[],
        require_mfa: false,
    }
}

fn schema_version(s: &mut Store) {
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    s.ping().unwrap();
}

fn clients_crud(s: &mut Store) {
    let scopes = vec!["a".to_string(), "b".to_string()];
    let uris = vec!["https://app/cb".to_string()];
    let grants = vec!["client_credentials".to_string()];
    s.insert_client(
        &NewClient {
            client_id: "c1",
            name: "one",
            secret_hash: Some([1u8; 32]),
            redirect_uris: &uris,
            grant_types: &grants,
            scopes: &scopes,
            audience: Some("api"),
            access_token_ttl: Some(120),
            require_pkce: false,
            skip_consent: true,
            id_token_alg: "ES256",
            post_logout_redirect_uris: &uris,
            allowed_groups: &grants,
            require_mfa: false,
        },
        100,
    )
    .unwrap();
    let c = s.client("c1").unwrap().unwrap();
    assert_eq!(c.name, "one");
    assert_eq!(c.secret_hash, Some([1u8; 32]));
    assert_eq!(c.redirect_uris, uris);
    assert_eq!(c.grant_types, grants);
    assert_eq!(c.scopes, scopes);
    assert_eq!(c.audience.as_deref(), Some("api"));
    assert_eq!(c.access_token_ttl, Some(120));
    assert_eq!(c.created_at, 100);
    assert!(!c.require_pkce);
    assert!(c.skip_consent);
    assert_eq!(c.id_token_alg, "ES256");
    assert_eq!(c.post_logout_redirect_uris, uris);
    assert_eq!(c.allowed_groups, grants);
    assert!(c.allows_grant("client_credentials"));
    assert!(!c.allows_grant("authorization_code"));
    assert!(s.client("nope").unwrap().is_none());
    assert_eq!(
        s.client_by_id_or_name("one").unwrap().unwrap().client_id,
        "c1"
    );
    assert_eq!(
        s.client_by_id_or_name("c1").unwrap().unwrap().client_id,
        "c1"
    );

    let mut public = new_client("c2", "two", &[]);
    public.secret_hash = None;
    s.insert_client(&public, 101).unwrap();
    assert!(s.client("c2").unwrap().unwrap().is_public());
    let names: Vec<String> = s.clients().unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["one", "two"]);

    s.remove_client("c1").unwrap();
    assert!(s.client("c1").unwrap().is_none());
    assert!(matches!(s.remove_client("c1"), Err(StoreError::NotFound)));
}

fn client_name_conflict(s: &mut Store) {
    s.insert_client(&new_client("c1", "same", &[]), 1).unwrap();
    assert!(matches!(
        s.insert_client(&new_client("c2", "same", &[]), 1),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.insert_client(&new_client("c1", "other", &[]), 1),
        Err(StoreError::Conflict(_))
    ));
}

fn client_secret_rotation(s: &mut Store) {
    s.insert_client(&new_client("c1", "one", &[]), 1).unwrap();
    s.set_client_secret("c1", &[9u8; 32], 2).unwrap();
    assert_eq!(
        s.client("c1").unwrap().unwrap().secret_hash,
        Some([9u8; 32])
    );
    assert!(matches!(
        s.set_client_secret("nope", &[9u8; 32], 2),
        Err(StoreError::NotFound)
    ));
}

fn keys_first_key_once(s: &mut Store) {
    assert!(s.insert_first_key("k1", "ES256", b"pk1", 10).unwrap());
    assert!(!s.insert_first_key("k2", "ES256", b"pk2", 11).unwrap());
    let live = s.live_keys().unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].kid, "k1");
    assert_eq!(live[0].status, "active");
    assert_eq!(live[0].pkcs8, b"pk1");
}

fn keys_rotation_and_retirement(s: &mut Store) {
    s.insert_first_key("k1", "ES256", b"pk1", 10).unwrap();
    assert_eq!(s.live_keys().unwrap()[0].activate_at, 10);
    s.activate_keys_now(&[("k2", "ES256", b"pk2")], 20, 100)
        .unwrap();
    let live = s.live_keys().unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(
        (live[0].kid.as_str(), live[0].status.as_str()),
        ("k2", "active")
    );
    assert_eq!(live[0].activate_at, 20);
    assert_eq!(
        (live[1].kid.as_str(), live[1].status.as_str()),
        ("k1", "retiring")
    );
    assert_eq!(live[1].retire_after, Some(100));
    assert_eq!(live[1].deactivated_at, Some(20));
    // A second rotation keeps exactly one active key.
    s.activate_keys_now(&[("k3", "ES256", b"pk3")], 30, 200)
        .unwrap();
    let active = s
        .live_keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.status == "active")
        .count();
    assert_eq!(active, 1);
    // A kid that exists is a conflict and changes nothing.
    assert!(matches!(
        s.activate_keys_now(&[("k3", "ES256", b"x")], 31, 300),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.live_keys().unwrap()[0].kid, "k3");
    assert_eq!(s.live_keys().unwrap()[0].status, "active");

    assert_eq!(s.retire_due_keys(99).unwrap(), 0);
    assert_eq!(s.retire_due_keys(100).unwrap(), 1);
    let all = s.all_keys().unwrap();
    let k1 = all.iter().find(|k| k.kid == "k1").unwrap();
    assert_eq!(k1.status, "retired");
    assert!(
        k1.pkcs8.is_empty(),
        "a retired key's private part is erased"
    );
    assert!(s.live_keys().unwrap().iter().all(|k| k.kid != "k1"));
}

fn keys_next_then_promoted(s: &mut Store) {
    use super::NextOutcome;
    s.insert_first_key("a1", "ES256", b"pa1", 10).unwrap();
    s.insert_first_key("r1", "RS256", b"pr1", 10).unwrap();
    let both = [("a2", "ES256", &b"pa2"[..]), ("r2", "RS256", &b"pr2"[..])];
    assert_eq!(s.add_next_keys(&both, 20, 50).unwrap(), NextOutcome::Added);
    let next: Vec<_> = s
        .live_keys()
        .unwrap()
        .into_iter()
        .filter(|k| k.status == "next")
        .collect();
    assert_eq!(next.len(), 2);
    assert!(
        next.iter()
            .all(|k| k.activate_at == 50 && k.created_at == 20)
    );
    // While they wait, another rotation is refused and changes nothing.
    let again = [("a3", "ES256", &b"pa3"[..]), ("r3", "RS256", &b"pr3"[..])];
    assert!(matches!(
        s.add_next_keys(&again, 21, 51).unwrap(),
        NextOutcome::Pending {
            activate_at: 50,
            ..
        }
    ));
    assert_eq!(s.all_keys().unwrap().len(), 4);
    // Two next keys of one algorithm cannot exist, even written past the check.
    assert!(
        s.conn
            .execute(
                "INSERT INTO signing_keys (kid, alg, pkcs8, status, created_at, activate_at) \
                 VALUES ('a4', 'ES256', X'00', 'next', 22, 60)",
                [],
            )
            .is_err()
    );
    assert_eq!(s.promote_due_keys(49, 1_000).unwrap(), 0);
    assert_eq!(s.promote_due_keys(70, 1_000).unwrap(), 2);
    for k in s.all_keys().unwrap() {
        match k.kid.as_str() {
            "a2" | "r2" => assert_eq!(k.status, "active"),
            _ => {
                assert_eq!(k.status, "retiring");
                // Stopped signing when the next key started, not when this write happened.
                assert_eq!(k.deactivated_at, Some(50));
                assert_eq!(k.retire_after, Some(1_050));
            }
        }
    }
    assert_eq!(s.promote_due_keys(80, 1_000).unwrap(), 0);
    // An emergency rotation withdraws a pending key.
    assert_eq!(
        s.add_next_keys(&again, 90, 400).unwrap(),
        NextOutcome::Added
    );
    let mut withdrawn = s
        .activate_keys_now(
            &[("a5", "ES256", b"pa5"), ("r5", "RS256", b"pr5")],
            95,
            2_000,
        )
        .unwrap();
    withdrawn.sort();
    assert_eq!(withdrawn, ["a3", "r3"]);
    assert!(s.all_keys().unwrap().iter().all(|k| k.status != "next"));
}

fn revocations_and_gc(s: &mut Store) {
    s.revoke_jti("j1", 100).unwrap();
    s.revoke_jti("j1", 100).unwrap();
    s.revoke_jti("j2", 200).unwrap();
    let sorted = |mut v: Vec<(String, i64)>| {
        v.sort();
        v
    };
    // Revoking twice keeps one row; the list holds what has not expired at `now`.
    assert_eq!(
        sorted(s.revoked_jtis(0).unwrap()),
        vec![("j1".to_string(), 100), ("j2".to_string(), 200)]
    );
    assert_eq!(s.revoked_jtis(150).unwrap(), vec![("j2".to_string(), 200)]);
    assert!(s.is_jti_revoked("j1").unwrap());
    assert!(!s.is_jti_revoked("j3").unwrap());
    assert_eq!(s.gc_revoked(150).unwrap(), 1);
    assert_eq!(s.revoked_jtis(0).unwrap(), vec![("j2".to_string(), 200)]);
    assert!(!s.is_jti_revoked("j1").unwrap());
}

fn settings_round_trip(s: &mut Store) {
    assert!(s.setting("a").unwrap().is_none());
    s.set_setting("a", "1").unwrap();
    s.set_setting("a", "2").unwrap();
    s.set_setting("b", "3").unwrap();
    assert_eq!(s.setting("a").unwrap().as_deref(), Some("2"));
    assert_eq!(
        s.settings().unwrap(),
        vec![("a".into(), "2".into()), ("b".into(), "3".into())]
    );
    assert!(s.unset_setting("a").unwrap());
    assert!(!s.unset_setting("a").unwrap());
}

fn revisions_follow_changes(s: &mut Store) {
    let rev = |s: &Store, name: Revision| {
        s.revisions()
            .unwrap()
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap()
            .1
    };
    let (c0, k0, s0) = (
        rev(s, Revision::Clients),
        rev(s, Revision::Keys),
        rev(s, Revision::Settings),
    );
    s.insert_client(&new_client("c1", "one", &[]), 1).unwrap();
    assert!(rev(s, Revision::Clients) > c0);
    s.insert_first_key("k1", "ES256", b"pk", 1).unwrap();
    let k1 = rev(s, Revision::Keys);
    assert!(k1 > k0);
    s.add_next_keys(&[("k2", "ES256", b"pk2")], 2, 10).unwrap();
    let k2 = rev(s, Revision::Keys);
    assert!(k2 > k1);
    s.promote_due_keys(10, 100).unwrap();
    assert!(rev(s, Revision::Keys) > k2);
    assert!(rev(s, Revision::Keys) > k1);
    s.set_setting("x", "1").unwrap();
    assert!(rev(s, Revision::Settings) > s0);
    // A revocation bumps `revoked` (a running server merges the list when it sees that), and
    // only that; revoking the same token again changes nothing.
    let r0 = rev(s, Revision::Revoked);
    let before = s.revisions().unwrap();
    s.revoke_jti("j", 10).unwrap();
    assert!(rev(s, Revision::Revoked) > r0);
    let after = s.revisions().unwrap();
    for ((name, a), (_, b)) in before.iter().zip(&after) {
        assert!(*name == Revision::Revoked || a == b, "{name} changed");
    }
    s.revoke_jti("j", 10).unwrap();
    assert_eq!(s.revisions().unwrap(), after);
}

/// A database from a newer latchkey is refused and left byte-for-byte unchanged.
#[test]
fn newer_database_is_refused_untouched() {
    let dir = temp_db();
    let path = {
        let store = Store::open_data_dir(&dir).unwrap();
        store.conn.pragma_update(None, "user_version", 99).unwrap();
        store.checkpoint().unwrap();
        store.path().unwrap().to_path_buf()
    };
    let before = std::fs::read(&path).unwrap();
    match Store::open_data_dir(&dir) {
        Err(StoreError::TooNew { found, supported }) => {
            assert_eq!(found, 99);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        Err(other) => panic!("expected TooNew, got {other}"),
        Ok(_) => panic!("expected TooNew, got a store"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// The data directory and the database are private to the owner.
#[test]
fn creates_private_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_db();
    let store = Store::open_data_dir(&dir).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(store.path().unwrap()), 0o600);
}

// ----- single-use and family rules -----

/// Clients `c1` and `c2`, users `u1` and `u2`.
fn people(s: &mut Store) {
    s.insert_client(&new_client("c1", "one", &[]), 1).unwrap();
    s.insert_client(&new_client("c2", "two", &[]), 1).unwrap();
    for (id, name) in [("u1", "alice"), ("u2", "bob")] {
        s.insert_user(id, name, Some("hash"), None, None, &[], 1)
            .unwrap();
    }
}

/// A grant `id` of `user` to `client`, with one access token `jti` recorded under it.
fn grant(s: &mut Store, id: &str, client: &str, user: &str, jti: &str) {
    s.transaction(|tx| {
        g::insert_grant_tx(tx, id, client, user, "openid", (5, "[\"pwd\"]"), 10, 10_000)?;
        g::insert_grant_token_tx(tx, jti, id, 5_000)
    })
    .unwrap();
}

fn revoked_at(s: &mut Store, id: &str) -> Option<i64> {
    s.transaction(|tx| g::grant_tx(tx, id))
        .unwrap()
        .unwrap()
        .revoked_at
}

fn sorted(mut v: Vec<(String, i64)>) -> Vec<(String, i64)> {
    v.sort();
    v
}

/// An authorization code swaps for a grant once; a second swap fails and leaves the first
/// swap's record, so the replay can revoke the grant the code became.
fn code_is_redeemed_once(s: &mut Store) {
    people(s);
    let hash = [3u8; 32];
    s.insert_code(
        &hash,
        &NewCode {
            client_id: "c1",
            user_id: "u1",
            redirect_uri: Some("https://app/cb"),
            scope: "openid profile",
            nonce: Some("n"),
            code_challenge: Some("ch"),
            auth_time: 5,
            expires_at: 100,
            amr: "[\"pwd\"]",
        },
    )
    .unwrap();
    let code = s.transaction(|tx| g::code_tx(tx, &hash)).unwrap().unwrap();
    assert_eq!(
        (code.client_id.as_str(), code.user_id.as_str()),
        ("c1", "u1")
    );
    assert_eq!(code.redirect_uri.as_deref(), Some("https://app/cb"));
    assert_eq!(code.scope, "openid profile");
    assert_eq!(code.nonce.as_deref(), Some("n"));
    assert_eq!(code.code_challenge.as_deref(), Some("ch"));
    assert_eq!((code.auth_time, code.expires_at), (5, 100));
    assert_eq!((code.used_at, code.grant_id), (None, None));
    assert!(
        s.transaction(|tx| g::code_tx(tx, &[4u8; 32]))
            .unwrap()
            .is_none()
    );

    let first = s
        .transaction(|tx| {
            g::insert_grant_tx(
                tx,
                "g1",
                "c1",
                "u1",
                "openid profile",
                (5, "[\"pwd\"]"),
                20,
                10_000,
            )?;
            g::insert_grant_token_tx(tx, "a1", "g1", 500)?;
            g::use_code_tx(tx, &hash, "g1", 20)
        })
        .unwrap();
    assert!(first, "the first swap wins");
    let second = s
        .transaction(|tx| g::use_code_tx(tx, &hash, "g2", 30))
        .unwrap();
    assert!(!second, "the second swap fails");
    let code = s.transaction(|tx| g::code_tx(tx, &hash)).unwrap().unwrap();
    assert_eq!(code.used_at, Some(20), "the second swap changes nothing");
    assert_eq!(code.grant_id.as_deref(), Some("g1"));

    // The replay revokes the grant the code became, and its access token.
    let revoked = s.revoke_grant("g1", 30).unwrap();
    assert_eq!(revoked, vec![("a1".to_string(), 500)]);
    assert_eq!(revoked_at(s, "g1"), Some(30));
    assert!(s.is_jti_revoked("a1").unwrap());
}

/// Rotation spends the presented refresh token once; revoking the family (what a reuse does)
/// kills every token of it, the newest included, and is not undone by a second revocation.
fn refresh_rotation_and_reuse(s: &mut Store) {
    people(s);
    s.transaction(|tx| {
        g::insert_grant_tx(tx, "g1", "c1", "u1", "openid", (5, "[\"pwd\"]"), 10, 10_000)
    })
    .unwrap();
    let (r1, r2) = ([11u8; 32], [12u8; 32]);
    // One family member with the access token issued beside it, `(jti, expiry)`.
    let insert = |s: &mut Store, hash: &[u8; 32], jti: &str, exp: i64| {
        s.transaction(|tx| {
            g::insert_refresh_tx(
                tx,
                &NewRefresh {
                    hash,
                    grant_id: "g1",
                    scope: "openid offline_access",
                    idle_expires_at: 1_000,
                    access: (jti, exp),
                },
                10,
            )
        })
        .unwrap();
    };
    insert(s, &r1, "a1", 300);
    let row = s
        .transaction(|tx| g::refresh_tx(tx, Some("g1"), &r1))
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.grant_id.as_str(), row.scope.as_str()),
        ("g1", "openid offline_access")
    );
    assert_eq!((row.idle_expires_at, row.used_at), (1_000, None));
    // Found by its family's key only.
    assert!(
        s.transaction(|tx| g::refresh_tx(tx, Some("g2"), &r1))
            .unwrap()
            .is_none()
    );
    assert!(
        s.transaction(|tx| g::refresh_tx(tx, None, &r1))
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.refresh_token_client(Some("g1"), &r1).unwrap(),
        Some(("g1".to_string(), "c1".to_string()))
    );

    // Rotation: r1 is spent, r2 takes its place.
    assert!(
        s.transaction(|tx| g::use_refresh_tx(tx, "g1", &r1, 20))
            .unwrap()
    );
    insert(s, &r2, "a2", 400);
    let old = s
        .transaction(|tx| g::refresh_tx(tx, Some("g1"), &r1))
        .unwrap()
        .unwrap();
    assert_eq!(old.used_at, Some(20), "the old token is spent");
    assert!(
        !s.transaction(|tx| g::use_refresh_tx(tx, "g1", &r1, 30))
            .unwrap(),
        "a spent token does not rotate again"
    );
    let newest = s
        .transaction(|tx| g::refresh_tx(tx, Some("g1"), &r2))
        .unwrap()
        .unwrap();
    assert_eq!(newest.used_at, None);

    // The reuse revokes the family: the grant (so the newest token too) and both access tokens.
    let revoked = s
        .transaction(|tx| g::revoke_grant_tx(tx, "g1", 30))
        .unwrap();
    assert_eq!(
        sorted(revoked),
        vec![("a1".to_string(), 300), ("a2".to_string(), 400)]
    );
    assert_eq!(
        revoked_at(s, "g1"),
        Some(30),
        "the newest token's grant is revoked"
    );
    assert!(s.is_jti_revoked("a1").unwrap());
    assert!(s.is_jti_revoked("a2").unwrap());
    // Revoking again finds nothing new and keeps the first revocation time.
    assert!(s.revoke_grant("g1", 40).unwrap().is_empty());
    assert_eq!(revoked_at(s, "g1"), Some(30));
}

/// Revoking a grant revokes that family only: its access tokens (recorded on their own and
/// beside a refresh token), not those of another grant, and not those already expired.
fn grant_revocation_is_per_family(s: &mut Store) {
    people(s);
    grant(s, "g1", "c1", "u1", "a1");
    grant(s, "g2", "c1", "u1", "b1");
    s.transaction(|tx| {
        g::insert_grant_token_tx(tx, "old", "g1", 50)?;
        g::insert_refresh_tx(
            tx,
            &NewRefresh {
                hash: &[21u8; 32],
                grant_id: "g1",
                scope: "openid",
                idle_expires_at: 1_000,
                access: ("a2", 600),
            },
            10,
        )
    })
    .unwrap();
    let revoked = s.revoke_grant("g1", 100).unwrap();
    assert_eq!(
        sorted(revoked),
        vec![("a1".to_string(), 5_000), ("a2".to_string(), 600)]
    );
    assert_eq!(revoked_at(s, "g1"), Some(100));
    assert_eq!(
        revoked_at(s, "g2"),
        None,
        "another grant of the same user and client"
    );
    assert!(!s.is_jti_revoked("b1").unwrap());
    assert!(
        !s.is_jti_revoked("old").unwrap(),
        "an expired token needs no revocation"
    );
}

/// A login session keeps how it was signed in, whether it owes a second factor, the browser
/// and the address; completing it records the new `amr` and time, ends its forward-auth
/// sessions, and makes it count; one still owing its factor 300 s after the password is
/// collected.
fn login_sessions_record_how_and_owe_a_second_factor(s: &mut Store) {
    use super::sessions::NewSession;
    people(s);
    let (owing, child, late) = ([7u8; 32], [8u8; 32], [9u8; 32]);
    for (hash, now) in [(&owing, 100), (&late, 100)] {
        s.insert_login_session(&NewSession {
            hash,
            user_id: "u1",
            now,
            expires_at: 10_000,
            amr: r#"["pwd"]"#,
            pending: true,
            user_agent: "Firefox",
            address: "192.0.2.1",
        })
        .unwrap();
    }
    let row = s.session(&owing).unwrap().unwrap();
    assert!(row.pending);
    assert_eq!(row.amr, r#"["pwd"]"#);
    let listed = s.sessions_of("u1").unwrap();
    assert_eq!(
        (listed[0].user_agent.as_str(), listed[0].address.as_str()),
        ("Firefox", "192.0.2.1")
    );
    s.insert_child_session(&child, &owing, "u1", 100, 150, 900)
        .unwrap();
    assert_eq!(s.session(&child).unwrap().unwrap().amr, r#"["pwd"]"#);
    let renewed = [12u8; 32];
    assert!(
        s.complete_session(&owing, &renewed, r#"["pwd","otp","mfa"]"#, 200)
            .unwrap()
    );
    assert!(s.session(&owing).unwrap().is_none(), "the old id is gone");
    let owing = renewed;
    let row = s.session(&owing).unwrap().unwrap();
    assert!(!row.pending);
    assert_eq!(
        (row.amr.as_str(), row.auth_time),
        (r#"["pwd","otp","mfa"]"#, 200)
    );
    assert!(
        s.session(&child).unwrap().is_none(),
        "its forward-auth session ended"
    );
    // A forward-auth session started now carries the new amr.
    s.insert_child_session(&child, &owing, "u1", 200, 200, 900)
        .unwrap();
    assert_eq!(
        s.session(&child).unwrap().unwrap().amr,
        r#"["pwd","otp","mfa"]"#
    );
    assert!(
        !s.complete_session(&[0u8; 32], &[13u8; 32], "[]", 200)
            .unwrap(),
        "no such session"
    );
    // 399: the late one is 299 s past its password; 400: collected. The completed one stays.
    assert_eq!(s.gc_sessions(399, 100_000).unwrap(), 0);
    assert_eq!(s.gc_sessions(400, 100_000).unwrap(), 1);
    assert!(s.session(&late).unwrap().is_none());
    assert!(s.session(&owing).unwrap().is_some());
    // Ending the user's other sessions keeps this one and its forward-auth session.
    let other = [10u8; 32];
    s.insert_session(&other, "u1", 400, 10_000).unwrap();
    s.insert_session(&[11u8; 32], "u2", 400, 10_000).unwrap();
    assert_eq!(s.end_other_sessions("u1", &owing).unwrap(), 1);
    assert!(s.session(&other).unwrap().is_none());
    assert!(s.session(&owing).unwrap().is_some());
    assert!(s.session(&child).unwrap().is_some());
    assert!(s.session(&[11u8; 32]).unwrap().is_some(), "another user's");
}

/// Sessions are returned as stored (expiry is the caller's to check) until `gc_sessions`
/// removes those past their absolute expiry or idle for `idle_ttl`, and forward-auth sessions
/// whose login session is gone; ending a login session ends its forward-auth sessions.
fn sessions_expire_and_gc(s: &mut Store) {
    people(s);
    let (live, idle, parent, child, orphan) =
        ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32], [5u8; 32]);
    s.insert_session(&live, "u1", 100, 1_000).unwrap();
    s.insert_session(&idle, "u1", 100, 1_000).unwrap();
    s.insert_session(&parent, "u1", 100, 1_000).unwrap();
    s.insert_child_session(&child, &live, "u1", 100, 150, 900)
        .unwrap();
    s.insert_child_session(&orphan, &parent, "u1", 100, 150, 900)
        .unwrap();
    let row = s.session(&live).unwrap().unwrap();
    assert_eq!(row.user_id, "u1");
    assert_eq!(
        (row.auth_time, row.last_seen_at, row.expires_at),
        (100, 100, 1_000)
    );
    assert_eq!(row.parent, None);
    let row = s.session(&child).unwrap().unwrap();
    assert_eq!(row.parent, Some(live));
    assert_eq!(
        (row.auth_time, row.last_seen_at, row.expires_at),
        (100, 150, 900)
    );

    s.touch_session(&live, 400).unwrap();
    assert_eq!(s.session(&live).unwrap().unwrap().last_seen_at, 400);
    // Idle: `idle` and `parent` were last seen at 100; 100 + 300 <= 500. `live` was seen at 400.
    // The forward-auth session of `parent` is hidden at once and collected (by the same or
    // the next collection).
    let n = s.gc_sessions(500, 300).unwrap() + s.gc_sessions(500, 300).unwrap();
    assert_eq!(n, 3, "idle, parent and its forward-auth session");
    assert!(s.session(&idle).unwrap().is_none());
    assert!(s.session(&parent).unwrap().is_none());
    assert!(s.session(&orphan).unwrap().is_none());
    assert!(s.session(&live).unwrap().is_some());
    assert!(
        s.session(&child).unwrap().is_some(),
        "forward-auth sessions have no idle timeout"
    );
    assert_eq!(s.gc_sessions(500, 300).unwrap(), 0);

    // Absolute: past its expiry a session is still returned (the caller refuses it) until
    // the collection removes it, whatever its activity.
    s.touch_session(&live, 1_000).unwrap();
    assert!(s.session(&live).unwrap().is_some());
    assert_eq!(
        s.gc_sessions(1_000, 10_000).unwrap(),
        2,
        "live and its child"
    );
    assert!(s.session(&live).unwrap().is_none());
    assert!(s.session(&child).unwrap().is_none());

    // Ending a login session ends its forward-auth sessions; an unknown one is no error.
    s.insert_session(&parent, "u1", 2_000, 3_000).unwrap();
    s.insert_child_session(&child, &parent, "u1", 2_000, 2_000, 3_000)
        .unwrap();
    s.delete_session(&parent).unwrap();
    assert!(s.session(&parent).unwrap().is_none());
    assert!(s.session(&child).unwrap().is_none());
    s.delete_session(&[9u8; 32]).unwrap();
    assert_eq!(
        s.gc_sessions(2_000, 10_000).unwrap(),
        0,
        "nothing was left behind"
    );
}

/// Ending a user's sessions ends every session of that user (forward-auth ones included) and
/// revokes their grants, and touches no one else.
fn ending_a_users_sessions(s: &mut Store) {
    people(s);
    let (a, b, fa, other) = ([1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]);
    s.insert_session(&a, "u1", 10, 1_000).unwrap();
    s.insert_session(&b, "u1", 10, 1_000).unwrap();
    s.insert_child_session(&fa, &a, "u1", 10, 10, 1_000)
        .unwrap();
    s.insert_session(&other, "u2", 10, 1_000).unwrap();
    grant(s, "g1", "c1", "u1", "a1");
    grant(s, "g2", "c1", "u2", "b1");
    s.end_user_sessions("u1", 50).unwrap();
    for h in [a, b, fa] {
        assert!(s.session(&h).unwrap().is_none());
    }
    assert!(s.session(&other).unwrap().is_some());
    assert_eq!(revoked_at(s, "g1"), Some(50));
    assert_eq!(revoked_at(s, "g2"), None);
    assert!(s.is_jti_revoked("a1").unwrap());
    assert!(!s.is_jti_revoked("b1").unwrap());
}

/// A revoked API key is returned with its revocation (the caller refuses it); a lookup by
/// name prefers a key that is not revoked; revocation is never undone or moved.
fn api_key_revocation_sticks(s: &mut Store) {
    let scopes = vec!["app:read".to_string()];
    let scopes_ref: &[String] = &scopes;
    let key = move |id: &'static str, hash: &'static [u8; 32]| NewApiKey {
        id,
        name: "ci",
        owner: "ops",
        user_id: None,
        prefix: "lk_",
        hash,
        scopes: scopes_ref,
        rate: None,
        expires_at: None,
    };
    s.insert_api_key(&key("k0", &[1u8; 32]), 5).unwrap();
    s.insert_api_key(&key("k1", &[2u8; 32]), 10).unwrap();
    let k1 = s.api_key_by_hash(&[2u8; 32]).unwrap().unwrap();
    assert_eq!((k1.id.as_str(), k1.revoked_at), ("k1", None));
    assert_eq!(k1.scopes, scopes);
    assert_eq!(
        s.api_key_by_id_or_name("ci").unwrap().unwrap().id,
        "k1",
        "the newest"
    );

    s.revoke_api_key("k1", 50).unwrap();
    assert_eq!(
        s.api_key_by_hash(&[2u8; 32]).unwrap().unwrap().revoked_at,
        Some(50)
    );
    assert_eq!(
        s.api_key_by_id_or_name("k1").unwrap().unwrap().revoked_at,
        Some(50)
    );
    assert_eq!(
        s.api_key_by_id_or_name("ci").unwrap().unwrap().id,
        "k0",
        "by name, a key that still works comes first"
    );
    assert!(matches!(
        s.revoke_api_key("k1", 60),
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.revoke_api_key("nope", 60),
        Err(StoreError::NotFound)
    ));
    // Replacing the revoked key does not bring it back.
    s.rotate_api_key("k1", &key("k2", &[3u8; 32]), 100, 70)
        .unwrap();
    let k1 = s.api_key_by_hash(&[2u8; 32]).unwrap().unwrap();
    assert_eq!(k1.revoked_at, Some(50), "revocation is not undone");
    assert_eq!(k1.replaced_by.as_deref(), Some("k2"));
    assert_eq!(
        s.api_key_by_hash(&[3u8; 32]).unwrap().unwrap().revoked_at,
        None
    );
}

/// Forward-auth rules come back in their stored order after inserts, moves and removals.
fn rules_keep_their_order(s: &mut Store) {
    let hosts =
        |s: &Store| -> Vec<String> { s.rules().unwrap().into_iter().map(|r| r.host).collect() };
    let mut ids = Vec::new();
    for host in ["a", "b", "c", "d"] {
        ids.push(
            s.insert_rule(host, "/*", None, "bypass", None, None, false, 1)
                .unwrap(),
        );
    }
    let [a, b, c, d] = <[i64; 4]>::try_from(ids).unwrap();
    assert_eq!(hosts(s), ["a", "b", "c", "d"]);
    let rules = s.rules().unwrap();
    let first = &rules[0];
    assert_eq!(
        (first.id, first.path.as_str(), first.action.as_str()),
        (a, "/*", "bypass")
    );
    assert_eq!(s.move_rule(d, 1).unwrap(), 1);
    assert_eq!(hosts(s), ["d", "a", "b", "c"]);
    assert_eq!(s.move_rule(a, 99).unwrap(), 4, "clamped to the end");
    assert_eq!(hosts(s), ["d", "b", "c", "a"]);
    assert_eq!(s.move_rule(c, 0).unwrap(), 1, "clamped to the start");
    assert_eq!(hosts(s), ["c", "d", "b", "a"]);
    s.remove_rule(b).unwrap();
    assert_eq!(hosts(s), ["c", "d", "a"]);
    s.insert_rule("e", "/", Some("GET"), "deny", None, None, false, 2)
        .unwrap();
    assert_eq!(hosts(s), ["c", "d", "a", "e"], "a new rule goes last");
    assert!(matches!(s.remove_rule(b), Err(StoreError::NotFound)));
    assert!(matches!(s.move_rule(b, 1), Err(StoreError::NotFound)));
    assert_eq!(hosts(s), ["c", "d", "a", "e"]);
}

/// A consent covers its scopes and any subset of them, for its user and client only;
/// revoking it forgets it and revokes the grants it led to (that client's only).
fn consents_cover_and_revoke(s: &mut Store) {
    people(s);
    let v = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    s.insert_consent("u1", "c1", &v(&["profile", "openid"]), 10)
        .unwrap();
    s.insert_consent("u1", "c1", &v(&["openid", "profile"]), 11)
        .unwrap();
    s.insert_consent("u1", "c2", &v(&["openid"]), 12).unwrap();
    assert_eq!(
        s.consents_of("u1").unwrap(),
        vec![
            ("c1".to_string(), "openid profile".to_string(), 10),
            ("c2".to_string(), "openid".to_string(), 12)
        ],
        "stored sorted, once"
    );
    assert!(s.has_consent("u1", "c1", &v(&["openid"])).unwrap());
    assert!(
        s.has_consent("u1", "c1", &v(&["profile", "openid"]))
            .unwrap()
    );
    assert!(!s.has_consent("u1", "c1", &v(&["openid", "email"])).unwrap());
    assert!(!s.has_consent("u1", "c2", &v(&["profile"])).unwrap());
    assert!(!s.has_consent("u2", "c1", &v(&["openid"])).unwrap());

    grant(s, "g1", "c1", "u1", "a1");
    grant(s, "g2", "c2", "u1", "b1");
    assert_eq!(s.revoke_consent("u1", "c1", 50).unwrap(), 1);
    assert!(!s.has_consent("u1", "c1", &v(&["openid"])).unwrap());
    assert!(s.has_consent("u1", "c2", &v(&["openid"])).unwrap());
    assert_eq!(revoked_at(s, "g1"), Some(50));
    assert_eq!(revoked_at(s, "g2"), None);
    assert!(s.is_jti_revoked("a1").unwrap());
    assert!(!s.is_jti_revoked("b1").unwrap());
    assert_eq!(s.revoke_consent("u1", "c1", 60).unwrap(), 0);
    assert_eq!(revoked_at(s, "g1"), Some(50));
}

fn totp_steps_are_used_once(s: &mut Store) {
    people(s);
    assert_eq!(s.totp("u1").unwrap(), None);
    assert!(
        !s.advance_totp_step("u1", 5).unwrap(),
        "no authenticator, no step"
    );
    assert!(s.set_totp("u1", &[7; 20], 100, 10).unwrap());
    let t = s.totp("u1").unwrap().unwrap();
    assert_eq!(
        (t.secret, t.last_step, t.created_at),
        (vec![7; 20], 100, 10)
    );
    assert!(
        !s.advance_totp_step("u1", 100).unwrap(),
        "the enrolment's step"
    );
    assert!(!s.advance_totp_step("u1", 99).unwrap(), "an earlier step");
    assert!(s.advance_totp_step("u1", 101).unwrap());
    assert!(!s.advance_totp_step("u1", 101).unwrap(), "replayed");
    assert!(s.advance_totp_step("u1", 103).unwrap());
    assert!(
        !s.advance_totp_step("u1", 102).unwrap(),
        "older than the last"
    );
    assert!(s.totp("u2").unwrap().is_none(), "bob's is apart");
    assert!(s.second_factors("u1").unwrap().totp);
    // A second enrolment does not replace the first.
    assert!(!s.set_totp("u1", &[8; 20], 50, 20).unwrap());
    assert_eq!(s.totp("u1").unwrap().unwrap().secret, vec![7; 20]);
    // Removing it removes the recovery codes it was the last factor for.
    s.replace_recovery_codes("u1", &[[9u8; 32]], 20).unwrap();
    assert!(s.delete_totp("u1").unwrap());
    assert!(!s.delete_totp("u1").unwrap());
    assert!(!s.second_factors("u1").unwrap().totp);
    assert_eq!(s.second_factors("u1").unwrap().recovery_codes, 0);
}

fn recovery_codes_are_used_once(s: &mut Store) {
    people(s);
    let codes: Vec<[u8; 32]> = (0..10u8).map(|i| [i; 32]).collect();
    s.replace_recovery_codes("u1", &codes, 1).unwrap();
    assert_eq!(s.recovery_codes_left("u1").unwrap(), 10);
    assert!(s.use_recovery_code("u1", &[3; 32], 2).unwrap());
    assert!(!s.use_recovery_code("u1", &[3; 32], 3).unwrap(), "used");
    assert!(!s.use_recovery_code("u2", &[4; 32], 3).unwrap(), "alice's");
    assert!(!s.use_recovery_code("u1", &[99; 32], 3).unwrap(), "unknown");
    assert_eq!(s.recovery_codes_left("u1").unwrap(), 9);
    assert_eq!(s.second_factors("u1").unwrap().recovery_codes, 9);
    // Regenerating replaces all, used ones included.
    s.replace_recovery_codes("u1", &codes[..2], 4).unwrap();
    assert_eq!(s.recovery_codes_left("u1").unwrap(), 2);
    assert!(!s.use_recovery_code("u1", &[5; 32], 5).unwrap(), "replaced");
    assert!(s.use_recovery_code("u1", &[1; 32], 5).unwrap());
    assert_eq!(s.recovery_codes_left("u2").unwrap(), 0);
}

/// A setup link is checked without being used, then used once: the password is set, the user's
/// sessions end and their grants are revoked in the same transaction; a second use changes
/// nothing.
fn setup_links_are_single_use(s: &mut Store) {
    use super::setup_links::LinkKind;
    people(s);
    let link = [21u8; 32];
    s.create_setup_link(&link, "u1", LinkKind::Reset, 100, 200)
        .unwrap();
    s.insert_session(&[1u8; 32], "u1", 100, 10_000).unwrap();
    s.insert_session(&[2u8; 32], "u2", 100, 10_000).unwrap();
    grant(s, "g1", "c1", "u1", "jti-1");
    for _ in 0..2 {
        let seen = s.setup_link(&link, 150).unwrap().unwrap();
        assert_eq!(
            (seen.user_id.as_str(), seen.kind, seen.expires_at),
            ("u1", LinkKind::Reset, 200)
        );
    }
    assert_eq!(s.setup_link(&[22u8; 32], 150).unwrap(), None, "unknown");
    let used = s.use_setup_link(&link, 150, Some("new-hash")).unwrap();
    assert_eq!(used.map(|l| l.user_id), Some("u1".to_string()));
    let u = s.user("u1").unwrap().unwrap();
    assert_eq!(u.password_hash.as_deref(), Some("new-hash"));
    assert!(s.session(&[1u8; 32]).unwrap().is_none(), "sessions ended");
    assert!(
        s.session(&[2u8; 32]).unwrap().is_some(),
        "another user's stays"
    );
    assert!(revoked_at(s, "g1").is_some(), "grants revoked");
    assert_eq!(s.setup_link(&link, 151).unwrap(), None);
    assert_eq!(s.use_setup_link(&link, 151, Some("other")).unwrap(), None);
    let u = s.user("u1").unwrap().unwrap();
    assert_eq!(u.password_hash.as_deref(), Some("new-hash"), "unchanged");
    // Without a password (a passkey comes next) the hash stays.
    s.create_setup_link(&[23u8; 32], "u2", LinkKind::Invite, 100, 200)
        .unwrap();
    let used = s.use_setup_link(&[23u8; 32], 150, None).unwrap().unwrap();
    assert_eq!(used.kind, LinkKind::Invite);
    assert_eq!(
        s.user("u2").unwrap().unwrap().password_hash.as_deref(),
        Some("hash")
    );
}

/// A link works until its expiry and not at it; gc deletes expired and used links only.
fn setup_links_expire_and_gc(s: &mut Store) {
    use super::setup_links::LinkKind;
    people(s);
    let (short, long, used) = ([31u8; 32], [32u8; 32], [33u8; 32]);
    s.create_setup_link(&short, "u1", LinkKind::Invite, 100, 200)
        .unwrap();
    s.create_setup_link(&long, "u2", LinkKind::Reset, 100, 1_000)
        .unwrap();
    assert!(s.setup_link(&short, 199).unwrap().is_some());
    assert!(s.setup_link(&short, 200).unwrap().is_none(), "expired");
    assert_eq!(s.use_setup_link(&short, 200, Some("h")).unwrap(), None);
    assert_eq!(
        s.user("u1").unwrap().unwrap().password_hash.as_deref(),
        Some("hash")
    );
    assert_eq!(s.gc_setup_links(199).unwrap(), 0);
    assert_eq!(s.gc_setup_links(200).unwrap(), 1);
    assert!(s.setup_link(&long, 200).unwrap().is_some(), "kept");
    s.create_setup_link(&used, "u2", LinkKind::Reset, 300, 1_000)
        .unwrap();
    s.use_setup_link(&used, 300, None).unwrap().unwrap();
    assert_eq!(s.gc_setup_links(301).unwrap(), 1, "used");
    assert_eq!(s.gc_setup_links(301).unwrap(), 0);
}

/// Making a link deletes every older link of the same user, and only theirs.
fn a_newer_setup_link_kills_the_older(s: &mut Store) {
    use super::setup_links::LinkKind;
    people(s);
    let (old, new, bobs) = ([41u8; 32], [42u8; 32], [43u8; 32]);
    s.create_setup_link(&old, "u1", LinkKind::Invite, 100, 1_000)
        .unwrap();
    s.create_setup_link(&bobs, "u2", LinkKind::Invite, 100, 1_000)
        .unwrap();
    s.create_setup_link(&new, "u1", LinkKind::Reset, 100, 1_000)
        .unwrap();
    assert!(s.setup_link(&old, 150).unwrap().is_none());
    assert_eq!(s.use_setup_link(&old, 150, Some("h")).unwrap(), None);
    assert!(s.setup_link(&new, 150).unwrap().is_some());
    assert!(
        s.setup_link(&bobs, 150).unwrap().is_some(),
        "another user's"
    );
    assert!(s.use_setup_link(&new, 150, None).unwrap().is_some());
}

/// Removing a user's second factors removes TOTP, recovery codes and passkeys, and only theirs.
fn second_factors_are_removed_together(s: &mut Store) {
    use super::factors::SecondFactors;
    people(s);
    s.transaction(|tx| {
        for u in ["u1", "u2"] {
            tx.execute(
                "INSERT INTO totp (user_id, secret, created_at) VALUES (?1, x'00', 1)",
                [u],
            )?;
            tx.execute(
                "INSERT INTO recovery_codes (user_id, hash, created_at) VALUES (?1, x'01', 1)",
                [u],
            )?;
            tx.execute(
                "INSERT INTO passkeys (id, user_id, name, public_key, alg, created_at) \
                 VALUES (?1, ?2, 'phone', x'02', -7, 1)",
                rusqlite::params![u.as_bytes(), u],
            )?;
        }
        Ok(())
    })
    .unwrap();
    let all = SecondFactors {
        totp: true,
        passkeys: 1,
        recovery_codes: 1,
    };
    assert_eq!(s.remove_second_factors("u1").unwrap(), all);
    assert_eq!(s.second_factors("u1").unwrap(), SecondFactors::default());
    assert_eq!(s.second_factors("u2").unwrap(), all);
}

fn passkey(id: &[u8], user: &str, at: i64) -> super::passkeys::Passkey {
    super::passkeys::Passkey {
        id: id.to_vec(),
        user_id: user.into(),
        name: format!("key {at}"),
        public_key: vec![0xa1],
        alg: -7,
        sign_count: 5,
        backup_eligible: true,
        transports: "[\"internal\"]".into(),
        created_at: at,
        last_used_at: None,
    }
}

/// A credential id is registered once (to anyone); a user removes only their own passkeys;
/// the counter never goes down; recovery codes go with the last second factor.
fn passkeys_are_unique_and_owned(s: &mut Store) {
    people(s);
    assert!(s.add_passkey(&passkey(b"k1", "u1", 10)).unwrap());
    assert!(s.add_passkey(&passkey(b"k2", "u1", 20)).unwrap());
    assert!(!s.add_passkey(&passkey(b"k1", "u2", 30)).unwrap());
    assert_eq!(s.passkey(b"k1").unwrap().unwrap().user_id, "u1");
    let names: Vec<_> = s
        .passkeys("u1")
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(names, [b"k1".to_vec(), b"k2".to_vec()]);
    assert!(s.passkeys("u2").unwrap().is_empty());
    s.passkey_used(b"k1", 9, 100).unwrap();
    s.passkey_used(b"k1", 3, 200).unwrap();
    let k1 = s.passkey(b"k1").unwrap().unwrap();
    assert_eq!((k1.sign_count, k1.last_used_at), (9, Some(200)));
    s.replace_recovery_codes("u1", &[[7u8; 32]], 1).unwrap();
    use super::passkeys::Removal;
    assert_eq!(s.remove_passkey("u2", b"k1").unwrap(), Removal::NotFound);
    assert_eq!(s.remove_passkey("u1", b"k1").unwrap(), Removal::Removed);
    assert_eq!(s.remove_passkey("u1", b"k1").unwrap(), Removal::NotFound);
    assert_eq!(s.second_factors("u1").unwrap().recovery_codes, 1);
    // Without a password the last passkey stays; with one it may go.
    let had = s.user("u1").unwrap().unwrap().password_hash;
    s.transaction(|tx| {
        tx.execute("UPDATE users SET password_hash = NULL WHERE id = 'u1'", [])?;
        Ok(())
    })
    .unwrap();
    assert_eq!(s.remove_passkey("u1", b"k2").unwrap(), Removal::LastWayIn);
    assert_eq!(s.passkeys("u1").unwrap().len(), 1);
    s.set_password_hash("u1", had.as_deref().unwrap_or("$x"), 2)
        .unwrap();
    assert_eq!(s.remove_passkey("u1", b"k2").unwrap(), Removal::Removed);
    assert_eq!(s.second_factors("u1").unwrap().recovery_codes, 0);
}

/// A challenge answers once, for its purpose, before it expires; expired ones are collected.
fn webauthn_challenges_are_single_use(s: &mut Store) {
    use super::passkeys::ChallengePurpose::{Login, Register};
    people(s);
    let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    assert!(
        s.add_webauthn_challenge(&a, Register, Some("u1"), 0, 100)
            .unwrap()
    );
    assert!(s.add_webauthn_challenge(&b, Login, None, 0, 100).unwrap());
    assert!(
        s.add_webauthn_challenge(&c, Login, Some("u2"), 0, 50)
            .unwrap()
    );
    assert_eq!(s.take_webauthn_challenge(&a, Login, 10).unwrap(), None);
    assert_eq!(
        s.take_webauthn_challenge(&a, Register, 10).unwrap(),
        Some(Some("u1".into()))
    );
    assert_eq!(s.take_webauthn_challenge(&a, Register, 10).unwrap(), None);
    assert_eq!(
        s.take_webauthn_challenge(&b, Login, 10).unwrap(),
        Some(None)
    );
    assert_eq!(s.take_webauthn_challenge(&c, Login, 50).unwrap(), None);
    // Still stored until collected (expired, so never taken).
    assert_eq!(s.gc_webauthn_challenges(60).unwrap(), 1);
    assert_eq!(s.gc_webauthn_challenges(60).unwrap(), 0);
    // A user's challenges beyond the newest few give way to the next.
    let max = super::passkeys::MAX_USER_CHALLENGES as u8;
    for i in 0..=max {
        assert!(
            s.add_webauthn_challenge(&[100 + i; 32], Login, Some("u1"), 60, 1000 + i64::from(i))
                .unwrap()
        );
    }
    assert_eq!(
        s.take_webauthn_challenge(&[100; 32], Login, 70).unwrap(),
        None,
        "the oldest went"
    );
    assert!(
        s.take_webauthn_challenge(&[101; 32], Login, 70)
            .unwrap()
            .is_some()
    );
    assert!(
        s.take_webauthn_challenge(&[100 + max; 32], Login, 70)
            .unwrap()
            .is_some()
    );
}

/// A user's own password change keeps their browser, ends their other sessions and grants, and
/// kills an outstanding setup link; nobody else's.
fn an_own_password_change_ends_the_rest(s: &mut Store) {
    use super::setup_links::LinkKind;
    people(s);
    let (keep, other, theirs) = ([1u8; 32], [2u8; 32], [3u8; 32]);
    s.insert_session(&keep, "u1", 10, 1_000).unwrap();
    s.insert_session(&other, "u1", 10, 1_000).unwrap();
    s.insert_session(&theirs, "u2", 10, 1_000).unwrap();
    s.create_setup_link(&[7u8; 32], "u1", LinkKind::Reset, 10, 1_000)
        .unwrap();
    s.create_setup_link(&[8u8; 32], "u2", LinkKind::Reset, 10, 1_000)
        .unwrap();
    grant(s, "g1", "c1", "u1", "a1");
    assert_eq!(s.change_own_password("u1", "$new", &keep, 50).unwrap(), 1);
    assert!(s.session(&keep).unwrap().is_some());
    assert!(s.session(&other).unwrap().is_none());
    assert!(s.session(&theirs).unwrap().is_some());
    assert_eq!(revoked_at(s, "g1"), Some(50));
    assert!(
        s.setup_link(&[7u8; 32], 60).unwrap().is_none(),
        "the link died"
    );
    assert!(s.setup_link(&[8u8; 32], 60).unwrap().is_some());
}
