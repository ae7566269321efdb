//! The store contract (dex's conformance-suite pattern for a single backend): every case runs
//! against a private in-memory database and against an on-disk WAL file, so behaviour that
//! depends on the journal (locking, triggers, transactions) is exercised both ways.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

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
