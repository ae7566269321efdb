//! The password sign-in decision, apart from HTTP: throttling, the user lookup, the disabled
//! check, password verification, the rehash of an outdated hash and the audit event. The login
//! form calls [`authenticate`] and renders its [`Outcome`]; any other face that signs someone
//! in with a password calls it too.
//!
//! A refusal takes the same time whether the account exists or not: an unknown user, or one
//! without a password, costs a dummy argon2 verification. Failures are throttled per account
//! and per client address; a locked key is answered without its password being checked. A
//! username longer than any account may have, or a password longer than [`password::MAX_LEN`],
//! is refused without a lookup or a hash, and counts against the address only (an attacker
//! could otherwise fill the per-account table with names of their choosing).

use std::net::IpAddr;

use crate::accounts::{MAX_USERNAME_CHARS, password};
use crate::app::App;
use crate::store::users::username_key;
use crate::store::{Store, StoreError, User};

/// One password sign-in attempt.
#[derive(Clone, Copy, Debug)]
pub struct Attempt<'a> {
    /// As typed; surrounding whitespace is ignored.
    pub username: &'a str,
    pub password: &'a str,
    /// The client's address ([`crate::http::client_ip::client_ip`]), for throttle and audit.
    pub client: IpAddr,
    /// Unix seconds.
    pub now: i64,
    /// What the password is for.
    pub purpose: Purpose,
}

/// What a password is typed for: a sign-in, or confirming a change on one's own account page
/// (removing a factor, changing the password). Both are throttled alike; the audit log and the
/// metrics tell them apart (`login` / `password_confirmed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    SignIn,
    Confirm,
}

impl Purpose {
    /// The audit event.
    fn action(self) -> &'static str {
        match self {
            Purpose::SignIn => "login",
            Purpose::Confirm => "password_confirmed",
        }
    }
}

/// Why a sign-in was refused. The person signing in is told only "wrong username or
/// password", whichever it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The username or the password is longer than any account's could be.
    Oversized,
    /// No account has this name.
    UnknownUser,
    /// The account is disabled.
    Disabled,
    /// The account has no password.
    NoPassword,
    /// The password does not match.
    WrongPassword,
}

/// What became of an attempt.
#[derive(Debug)]
pub enum Outcome {
    /// The password matched an enabled account; its failures are forgotten.
    SignedIn(User),
    /// Refused, and the failure counted.
    Refused { reason: Refusal },
    /// The account or the address is locked: `retry_after` seconds, either before the attempt
    /// (its password was not checked) or because this failure locked it.
    Throttled { retry_after: i64 },
}

/// Decides a password sign-in. Store errors are the caller's to report; nothing about the
/// password is ever in them.
pub fn authenticate(
    app: &App,
    store: &mut Store,
    attempt: &Attempt<'_>,
) -> Result<Outcome, StoreError> {
    let username = attempt.username.trim();
    let (password, now) = (attempt.password, attempt.now);
    let ip_key = attempt.client.to_string();
    let long_name =
        username.len() > 4 * MAX_USERNAME_CHARS || username.chars().count() > MAX_USERNAME_CHARS;
    let oversized = long_name || password.len() > password::MAX_LEN;
    let account_key = (!long_name).then(|| username_key(username));
    let (accounts, addresses) = app.throttles();
    let account_lock = account_key.as_deref().and_then(|k| accounts.locked(k, now));
    if let Some(wait) = account_lock.max(addresses.locked(&ip_key, now)) {
        log::info!(target: "latchkey::security", "login throttled from {ip_key}");
        crate::metrics::METRICS.login_throttled();
        app.audit().record(
            now,
            "anonymous",
            attempt.purpose.action(),
            "",
            "locked",
            &ip_key,
        );
        return Ok(Outcome::Throttled { retry_after: wait });
    }
    let user = if oversized {
        None
    } else {
        store.user_by_name(username)?
    };
    let verdict = match &user {
        _ if oversized => Err(Refusal::Oversized),
        Some(u) if !u.disabled => match &u.password_hash {
            Some(phc) if password::verify(password, phc) => Ok(()),
            Some(_) => Err(Refusal::WrongPassword),
            None => {
                password::verify_dummy(password);
                Err(Refusal::NoPassword)
            }
        },
        Some(_) => {
            password::verify_dummy(password);
            Err(Refusal::Disabled)
        }
        None => {
            password::verify_dummy(password);
            Err(Refusal::UnknownUser)
        }
    };
    let user = match (verdict, user) {
        (Ok(()), Some(user)) => user,
        (verdict, user) => {
            let reason = verdict.err().unwrap_or(Refusal::UnknownUser);
            let key = account_key.as_deref();
            return Ok(refused(
                app,
                store,
                user.as_ref(),
                key,
                reason,
                &ip_key,
                attempt,
            ));
        }
    };
    // A right password forgets the account's failures, unless a second factor is still to
    // come: then only a right code does ([`second_factor_accepted`]), or someone who knows
    // the password could sign in again after every few wrong codes and guess on for ever.
    if let Some(k) = &account_key
        && !store.second_factors(&user.id)?.any()
    {
        accounts.reset(k);
    }
    if attempt.purpose == Purpose::SignIn {
        crate::metrics::METRICS.login();
    }
    app.audit().write(
        store,
        now,
        &format!("user:{}", user.username),
        attempt.purpose.action(),
        &user.username,
        "ok",
        &ip_key,
    );
    if user
        .password_hash
        .as_deref()
        .is_some_and(password::needs_rehash)
    {
        match password::hash(password) {
            Ok(h) => {
                if let Err(e) = store.set_password_hash(&user.id, &h, now) {
                    log::error!("password rehash: {e}");
                }
            }
            Err(e) => log::error!("password rehash: {e}"),
        }
    }
    log::info!(target: "latchkey::security", "login succeeded for {} from {}", user.username.escape_debug(), ip_key);
    Ok(Outcome::SignedIn(user))
}

/// A second factor (a TOTP or recovery code) after the password: it is throttled with the
/// password, in the same per-account and per-address counters, so an attacker who knows the
/// password guesses codes no faster than passwords. Seconds to wait when the account or the
/// address is locked; the code is then not checked.
pub fn second_factor_locked(app: &App, user: &User, client: IpAddr, now: i64) -> Option<i64> {
    let (accounts, addresses) = app.throttles();
    let account = accounts.locked(&username_key(&user.username), now);
    let lock = account.max(addresses.locked(&client.to_string(), now));
    if lock.is_some() {
        log::info!(target: "latchkey::security", "second factor throttled from {client}");
        crate::metrics::METRICS.login_throttled();
        app.audit().record(
            now,
            &format!("user:{}", user.username),
            "second_factor_failed",
            &user.username,
            "locked",
            &client.to_string(),
        );
    }
    lock
}

/// Counts a wrong (or replayed) second factor like a wrong password and records
/// `second_factor_failed`; the lock it starts, if any.
pub fn second_factor_refused(
    app: &App,
    store: &mut Store,
    user: &User,
    client: IpAddr,
    now: i64,
) -> Option<i64> {
    let ip_key = client.to_string();
    crate::metrics::METRICS.login_failure();
    app.audit().write(
        store,
        now,
        &format!("user:{}", user.username),
        "second_factor_failed",
        &user.username,
        "failed",
        &ip_key,
    );
    log::info!(target: "latchkey::security", "second factor refused for {} from {}", user.username.escape_debug(), ip_key);
    count_failure(
        app,
        store,
        &user.username,
        Some(&username_key(&user.username)),
        &ip_key,
        now,
    )
}

/// A right second factor: the account's failures are forgotten, as after a right password.
pub fn second_factor_accepted(app: &App, user: &User) {
    app.throttles().0.reset(&username_key(&user.username));
}

/// Counts and records a refused attempt, and the lockout it starts.
fn refused(
    app: &App,
    store: &mut Store,
    user: Option<&User>,
    account_key: Option<&str>,
    reason: Refusal,
    ip_key: &str,
    attempt: &Attempt<'_>,
) -> Outcome {
    let (now, purpose) = (attempt.now, attempt.purpose);
    if purpose == Purpose::SignIn {
        crate::metrics::METRICS.login_failure();
    }
    let target = user.map(|u| u.username.as_str()).unwrap_or_default();
    app.audit().write(
        store,
        now,
        "anonymous",
        purpose.action(),
        target,
        "failed",
        ip_key,
    );
    // An oversized attempt counts against its address like any failure (it is one, and a
    // flood of them is abuse from there), but not against an account: it cannot be a guess
    // at one.
    let account_key = account_key.filter(|_| reason != Refusal::Oversized);
    let lock = count_failure(app, store, target, account_key, ip_key, now);
    // The typed name is logged only when it is a real account: people type passwords into
    // the username field.
    let who = user
        .map(|u| u.username.as_str())
        .unwrap_or("an unknown user");
    log::info!(target: "latchkey::security", "login failed for {} from {}", who.escape_debug(), ip_key);
    match lock {
        Some(wait) => Outcome::Throttled { retry_after: wait },
        None => Outcome::Refused { reason },
    }
}

/// Counts a failure against the account (when `account_key` is given) and the address, and
/// records the lockout it starts; the lock, if any.
fn count_failure(
    app: &App,
    store: &mut Store,
    target: &str,
    account_key: Option<&str>,
    ip_key: &str,
    now: i64,
) -> Option<i64> {
    let (accounts, addresses) = app.throttles();
    let account_lock = account_key.and_then(|k| accounts.fail(k, now));
    let address_lock = addresses.fail(ip_key, now);
    // The failure that starts a lock: the account's (named only when it is a real one) or,
    // with no account lock, the address's.
    if account_lock.is_some() || address_lock.is_some() {
        let locked = if account_lock.is_some() {
            target
        } else {
            ip_key
        };
        app.audit()
            .write(store, now, "anonymous", "lockout", locked, "ok", ip_key);
    }
    account_lock.max(address_lock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing;

    const NOW: i64 = 1_000_000;

    fn attempt<'a>(username: &'a str, password: &'a str, client: &str) -> Attempt<'a> {
        Attempt {
            username,
            password,
            client: client.parse().unwrap(),
            now: NOW,
            purpose: Purpose::SignIn,
        }
    }

    /// A worker whose store has the enabled user alice and the disabled user bob, both with
    /// the password "correct horse".
    fn worker() -> crate::app::Worker {
        let mut w = testing::worker_without_keys();
        let phc = password::hash("correct horse").unwrap();
        for (id, name) in [("u-alice", "alice"), ("u-bob", "bob")] {
            w.store
                .insert_user(id, name, Some(&phc), None, None, &[], NOW)
                .unwrap();
        }
        w.store.set_user_disabled("u-bob", true, NOW).unwrap();
        w
    }

    fn run(w: &mut crate::app::Worker, a: &Attempt<'_>) -> Outcome {
        authenticate(&w.app, &mut w.store, a).unwrap()
    }

    #[test]
    fn the_right_password_signs_in_and_the_wrong_one_is_refused() {
        let mut w = worker();
        match run(&mut w, &attempt(" alice ", "correct horse", "192.0.2.1")) {
            Outcome::SignedIn(u) => assert_eq!(u.id, "u-alice"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            run(&mut w, &attempt("alice", "wrong", "192.0.2.1")),
            Outcome::Refused {
                reason: Refusal::WrongPassword
            }
        ));
    }

    #[test]
    fn unknown_disabled_and_oversized_are_refused() {
        let mut w = worker();
        for (name, password, reason) in [
            ("carol", "correct horse", Refusal::UnknownUser),
            ("bob", "correct horse", Refusal::Disabled),
            (
                &*"a".repeat(MAX_USERNAME_CHARS + 1),
                "x",
                Refusal::Oversized,
            ),
            (
                "alice",
                &*"p".repeat(password::MAX_LEN + 1),
                Refusal::Oversized,
            ),
        ] {
            match run(&mut w, &attempt(name, password, "192.0.2.1")) {
                Outcome::Refused { reason: r } => assert_eq!(r, reason, "{name:.10}"),
                other => panic!("{name:.10}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_account_locks_after_its_free_failures_even_for_the_right_password() {
        let mut w = worker();
        // Each failure from a different address, so only the account's count grows.
        for i in 0..crate::app::ACCOUNT_FREE_FAILURES {
            let client = format!("192.0.2.{}", i + 10);
            assert!(
                matches!(
                    run(&mut w, &attempt("alice", "wrong", &client)),
                    Outcome::Refused { .. }
                ),
                "failure {i} is free"
            );
        }
        match run(&mut w, &attempt("alice", "wrong", "198.51.100.1")) {
            Outcome::Throttled { retry_after } => assert!(retry_after > 0),
            other => panic!("{other:?}"),
        }
        // Locked: even the right password is not checked now.
        assert!(matches!(
            run(&mut w, &attempt("alice", "correct horse", "198.51.100.2")),
            Outcome::Throttled { .. }
        ));
        // Another account is not locked by alice's failures.
        w.store
            .insert_user("u-dave", "dave", None, None, None, &[], NOW)
            .unwrap();
        assert!(matches!(
            run(&mut w, &attempt("dave", "x", "198.51.100.3")),
            Outcome::Refused {
                reason: Refusal::NoPassword
            }
        ));
    }

    #[test]
    fn sign_ins_failures_and_the_lockout_are_in_the_store_at_once() {
        let mut w = worker();
        run(&mut w, &attempt("alice", "correct horse", "192.0.2.1"));
        for i in 0..=crate::app::ACCOUNT_FREE_FAILURES {
            run(
                &mut w,
                &attempt("alice", "wrong", &format!("192.0.2.{}", i + 10)),
            );
        }
        // Refused while locked: queued with the high-rate events, not written.
        run(&mut w, &attempt("alice", "correct horse", "192.0.2.99"));
        let stored: Vec<_> = w
            .store
            .audit_since(0, 100)
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.target, e.outcome))
            .collect();
        let event = |a: &str, t: &str, o: &str| (a.to_string(), t.to_string(), o.to_string());
        let mut expected = vec![event("login", "alice", "ok")];
        for _ in 0..=crate::app::ACCOUNT_FREE_FAILURES {
            expected.push(event("login", "alice", "failed"));
        }
        expected.push(event("lockout", "alice", "ok"));
        assert_eq!(stored, expected);
        let queued = w.app.audit().drain();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].outcome, "locked");
    }

    #[test]
    fn wrong_second_factors_count_with_wrong_passwords() {
        let mut w = worker();
        let alice = w.store.user("u-alice").unwrap().unwrap();
        let free = crate::app::ACCOUNT_FREE_FAILURES;
        // Half the free failures as passwords, the rest as codes, each from its own address.
        for i in 0..free {
            let client: IpAddr = format!("192.0.2.{}", i + 10).parse().unwrap();
            if i % 2 == 0 {
                run(&mut w, &attempt("alice", "wrong", &client.to_string()));
            } else {
                assert_eq!(
                    second_factor_refused(&w.app, &mut w.store, &alice, client, NOW),
                    None
                );
            }
        }
        let client: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(second_factor_locked(&w.app, &alice, client, NOW), None);
        let lock = second_factor_refused(&w.app, &mut w.store, &alice, client, NOW);
        assert!(lock.is_some_and(|s| s > 0), "{lock:?}");
        // The lock holds for codes and for passwords alike.
        assert!(second_factor_locked(&w.app, &alice, client, NOW).is_some());
        assert!(matches!(
            run(&mut w, &attempt("alice", "correct horse", "198.51.100.9")),
            Outcome::Throttled { .. }
        ));
        let failed = w
            .store
            .audit_since(0, 100)
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "second_factor_failed")
            .count();
        assert_eq!(failed, usize::try_from(free / 2 + 1).unwrap());
        // A right code forgets the account's failures.
        second_factor_accepted(&w.app, &alice);
        assert_eq!(w.app.throttles().0.len(), 0);
    }

    #[test]
    fn a_success_forgets_the_accounts_failures() {
        let mut w = worker();
        for _ in 0..3 {
            run(&mut w, &attempt("alice", "wrong", "192.0.2.1"));
        }
        assert!(matches!(
            run(&mut w, &attempt("alice", "correct horse", "192.0.2.1")),
            Outcome::SignedIn(_)
        ));
        let (accounts, _) = w.app.throttles();
        assert_eq!(accounts.len(), 0, "the success reset alice's count");
    }

    #[test]
    fn a_sign_in_with_an_outdated_hash_stores_a_current_one() {
        use argon2::password_hash::PasswordHasher;
        use argon2::{Algorithm, Argon2, Params, Version};
        let mut w = worker();
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"old password")
        .unwrap()
        .to_string();
        w.store
            .insert_user("u-erin", "erin", Some(&weak), None, None, &[], NOW)
            .unwrap();
        assert!(matches!(
            run(&mut w, &attempt("erin", "old password", "192.0.2.1")),
            Outcome::SignedIn(_)
        ));
        let stored = w
            .store
            .user("u-erin")
            .unwrap()
            .unwrap()
            .password_hash
            .unwrap();
        assert_ne!(stored, weak);
        assert!(!password::needs_rehash(&stored));
        assert!(password::verify("old password", &stored));
    }
}
