//! Signing-key operations: generate the first keys, list them with the times of their changes,
//! rotate (scheduled or at once), record the switch to a rotated key and retire keys whose time
//! has come. The key ring itself, and why a rotated key is published before it signs, are in
//! [`crate::jwt::keys`]; the rows and their transactions in [`crate::store`] (`store/keys.rs`).
//!
//! [`rotate`] and [`rotate_now`] are what an admin asks for: they take an [`Actor`] and record
//! `signing_keys_rotated` (target empty for a scheduled rotation, `now` for an emergency one)
//! in the audit log. Generating the first keys, promoting and retiring are the server's own
//! housekeeping and are not audited.

use super::{Actor, OpError, audited};
use crate::config::{Setting, Settings};
use crate::error::Error;
use crate::jwt::keys::{
    ALGS, KEEP_AFTER_SIGNING, KeyMaterial, KeyRing, PUBLISH_MARGIN, RingError, SigningKey,
};
use crate::store::{KeyRow, NextOutcome, Store, StoreError};
use crate::timefmt::rfc3339;

/// Loads the next, active and retiring keys from the store into a key ring.
pub fn load_ring(store: &Store) -> Result<KeyRing, Error> {
    let rows = store
        .live_keys()?
        .into_iter()
        .map(
            |KeyRow {
                 kid,
                 alg,
                 pkcs8,
                 status,
                 created_at,
                 activate_at,
                 ..
             }| KeyMaterial {
                kid,
                alg,
                pkcs8,
                status,
                created_at,
                activate_at,
            },
        )
        .collect();
    KeyRing::from_rows(rows).map_err(|e| match e {
        RingError::Corrupt(m) => Error::Store(StoreError::Corrupt(m)),
        RingError::Key(e) => e,
    })
}

/// Makes sure an active key exists for every algorithm latchkey signs with, generating it on
/// first start. Returns the kids it created.
pub fn ensure_keys(store: &mut Store, now: i64) -> Result<Vec<String>, Error> {
    let mut created = Vec::new();
    for &alg in ALGS {
        let ring = load_ring(store)?;
        if ring.active(alg, now).is_some() {
            continue;
        }
        let (pkcs8, key) = SigningKey::generate(alg, now)?;
        if store.insert_first_key(&key.kid, alg.as_str(), &pkcs8, now)? {
            created.push(key.kid);
        }
    }
    Ok(created)
}

/// Records every switch to a `next` key whose time has come (see [`crate::jwt::keys`]). Returns how
/// many keys were promoted.
pub fn promote_due(store: &mut Store, now: i64) -> Result<usize, Error> {
    Ok(store.promote_due_keys(now, KEEP_AFTER_SIGNING)?)
}

/// Retires every retiring key whose time has come: it leaves the JWKS and its private key is
/// erased. Returns how many were retired.
pub fn retire_due(store: &mut Store, now: i64) -> Result<usize, Error> {
    Ok(store.retire_due_keys(now)?)
}

/// A generated key: kid, algorithm, PKCS#8 document.
type Generated = (String, &'static str, Vec<u8>);

/// New keys, one per algorithm.
fn generate_all(now: i64) -> Result<Vec<Generated>, Error> {
    ALGS.iter()
        .map(|&alg| {
            let (pkcs8, key) = SigningKey::generate(alg, now)?;
            Ok((key.kid, alg.as_str(), pkcs8))
        })
        .collect()
}

/// What [`schedule`] did.
#[derive(Debug, PartialEq, Eq)]
enum Rotation {
    /// New keys (their kids), published now, signing from `activate_at`.
    Scheduled { kids: Vec<String>, activate_at: i64 },
    /// Refused: a rotation is pending (this key signs from `activate_at`). Nothing changed.
    Pending { kid: String, activate_at: i64 },
}

/// Publishes a new key for every algorithm, signing from `now + max_age + PUBLISH_MARGIN`;
/// refused while an earlier rotation is pending.
fn schedule(store: &mut Store, now: i64, max_age: i64) -> Result<Rotation, Error> {
    promote_due(store, now)?;
    let activate_at = now + max_age.max(0) + PUBLISH_MARGIN;
    let keys = generate_all(now)?;
    let rows: Vec<_> = keys
        .iter()
        .map(|(kid, alg, pkcs8)| (kid.as_str(), *alg, pkcs8.as_slice()))
        .collect();
    Ok(match store.add_next_keys(&rows, now, activate_at)? {
        NextOutcome::Added => Rotation::Scheduled {
            kids: keys.into_iter().map(|(kid, _, _)| kid).collect(),
            activate_at,
        },
        NextOutcome::Pending { kid, activate_at } => Rotation::Pending { kid, activate_at },
    })
}

/// Makes a new key active for every algorithm at once; each previous key stops signing now and
/// stays published until `now + KEEP_AFTER_SIGNING`, and a pending `next` key is withdrawn.
/// Returns the new kids and the withdrawn ones.
fn activate_now(store: &mut Store, now: i64) -> Result<(Vec<String>, Vec<String>), Error> {
    promote_due(store, now)?;
    let keys = generate_all(now)?;
    let rows: Vec<_> = keys
        .iter()
        .map(|(kid, alg, pkcs8)| (kid.as_str(), *alg, pkcs8.as_slice()))
        .collect();
    let withdrawn = store.activate_keys_now(&rows, now, now + KEEP_AFTER_SIGNING)?;
    Ok((keys.into_iter().map(|(kid, _, _)| kid).collect(), withdrawn))
}

/// The times of a key's changes: when it starts or started signing, stops or stopped signing,
/// and leaves or left the JWKS. Times ahead are what will happen if nothing else changes: an
/// active key with a `next` key waiting stops signing when that one starts, and is published
/// `KEEP_AFTER_SIGNING` longer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Times {
    pub signing_from: i64,
    pub signing_until: Option<i64>,
    pub published_until: Option<i64>,
}

/// A key as [`list`] shows it (without its private half).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub kid: String,
    pub alg: String,
    /// `next`, `active`, `retiring` or `retired`.
    pub status: String,
    pub created_at: i64,
    pub retire_after: Option<i64>,
    pub times: Times,
}

fn times(k: &KeyRow, rows: &[KeyRow]) -> Times {
    let successor = rows
        .iter()
        .find(|n| n.alg == k.alg && n.status == "next")
        .map(|n| n.activate_at);
    let signing_until = match k.status.as_str() {
        "active" => successor,
        _ => k.deactivated_at,
    };
    let published_until = k
        .retire_after
        .or_else(|| signing_until.map(|t| t + KEEP_AFTER_SIGNING));
    Times {
        signing_from: k.activate_at,
        signing_until,
        published_until,
    }
}

/// Every key (next, active, retiring and retired) with the times of its changes, after making
/// sure the first keys exist and recording any switch whose time has come.
pub fn list(store: &mut Store, now: i64) -> Result<Vec<ListedKey>, OpError> {
    ensure_keys(store, now)?;
    promote_due(store, now)?;
    let rows = store.all_keys()?;
    let all_times: Vec<Times> = rows.iter().map(|k| times(k, &rows)).collect();
    Ok(rows
        .into_iter()
        .zip(all_times)
        .map(|(k, times)| ListedKey {
            kid: k.kid,
            alg: k.alg,
            status: k.status,
            created_at: k.created_at,
            retire_after: k.retire_after,
            times,
        })
        .collect())
}

/// A scheduled rotation: the new keys, published now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub kids: Vec<String>,
    /// When the new keys start signing.
    pub activate_at: i64,
    /// When the previous keys leave the JWKS (after every token they signed has expired).
    pub retire_after: i64,
    /// `jwks.max_age`, the delay's reason.
    pub max_age: i64,
}

/// Publishes a new key for every algorithm, signing once every JWKS cached before now has
/// expired (`jwks.max_age`). Refused while an earlier rotation is pending; nothing changes then.
pub fn rotate(store: &mut Store, actor: &Actor, now: i64) -> Result<Scheduled, OpError> {
    audited(store, actor, "signing_keys_rotated", "", |store| {
        let max_age = Settings::load(store)?.get(Setting::JwksMaxAge);
        match schedule(store, now, max_age)? {
            Rotation::Scheduled { kids, activate_at } => Ok(Scheduled {
                kids,
                activate_at,
                retire_after: activate_at + KEEP_AFTER_SIGNING,
                max_age,
            }),
            Rotation::Pending { kid, activate_at } => Err(OpError::Failed(format!(
                "a rotation is already pending: key {kid} signs from {}. Wait until then, \
                 or rotate with --now to sign with a new key at once",
                rfc3339(activate_at)
            ))),
        }
    })
}

/// An emergency rotation: the new keys sign now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emergency {
    pub created: Vec<String>,
    /// Pending `next` keys withdrawn (they never signed).
    pub withdrawn: Vec<String>,
    /// When the previous keys leave the JWKS.
    pub retire_after: i64,
    /// `jwks.max_age`: for this long, resource servers that cached the JWKS before the rotation
    /// refuse the new keys' tokens.
    pub max_age: i64,
}

/// Makes a new key of every algorithm sign at once; see [`activate_now`].
pub fn rotate_now(store: &mut Store, actor: &Actor, now: i64) -> Result<Emergency, OpError> {
    audited(store, actor, "signing_keys_rotated", "now", |store| {
        // Lifetimes may have been longer while the old key signed than they are now, so the
        // old key stays for the longest lifetime latchkey allows, not the current one.
        let retire_after = now + KEEP_AFTER_SIGNING;
        let max_age = Settings::load(store)?.get(Setting::JwksMaxAge);
        let (created, withdrawn) = activate_now(store, now)?;
        Ok(Emergency {
            created,
            withdrawn,
            retire_after,
            max_age,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::keys::{Alg, KeyState};

    fn es256(ring: &KeyRing, now: i64) -> String {
        ring.active(Alg::Es256, now).unwrap().kid.clone()
    }

    #[test]
    fn a_rotated_key_is_published_at_once_and_signs_when_its_time_comes() {
        let mut store = Store::open_in_memory().unwrap();
        ensure_keys(&mut store, 1_000).unwrap();
        let ring = load_ring(&store).unwrap();
        let (old_es, old_rs) = (
            es256(&ring, 1_000),
            ring.active(Alg::Rs256, 1_000).unwrap().kid.clone(),
        );
        let Rotation::Scheduled { kids, activate_at } = schedule(&mut store, 2_000, 300).unwrap()
        else {
            panic!("refused");
        };
        assert_eq!(activate_at, 2_000 + 300 + PUBLISH_MARGIN);
        assert_eq!(kids.len(), 2);
        let ring = load_ring(&store).unwrap();
        // Published: both keys of both algorithms are in the JWKS.
        let published: Vec<String> = ring.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect();
        for kid in kids.iter().chain([&old_es, &old_rs]) {
            assert!(published.contains(kid), "{kid} not in {published:?}");
        }
        // The old keys sign until the second the new ones start, for both algorithms.
        for alg in [Alg::Es256, Alg::Rs256] {
            let old = if alg == Alg::Es256 { &old_es } else { &old_rs };
            assert_eq!(&ring.active(alg, activate_at - 1).unwrap().kid, old);
            let new = &ring.active(alg, activate_at).unwrap().kid;
            assert!(kids.contains(new) && new != old);
            assert_eq!(ring.active(alg, activate_at).unwrap().state, KeyState::Next);
        }
        assert!(!ring.next_due(activate_at - 1));
        assert!(ring.next_due(activate_at));
        // A second rotation while one is pending changes nothing.
        assert_eq!(
            schedule(&mut store, 2_001, 300).unwrap(),
            Rotation::Pending {
                kid: store
                    .live_keys()
                    .unwrap()
                    .iter()
                    .find(|k| k.status == "next")
                    .unwrap()
                    .kid
                    .clone(),
                activate_at
            }
        );
        assert_eq!(store.live_keys().unwrap().len(), 4);
        // Recording the switch: not before its time; then the old keys retire from that second.
        assert_eq!(promote_due(&mut store, activate_at - 1).unwrap(), 0);
        assert_eq!(promote_due(&mut store, activate_at + 50).unwrap(), 2);
        let rows = store.all_keys().unwrap();
        for row in &rows {
            if kids.contains(&row.kid) {
                assert_eq!(row.status, "active");
                assert_eq!(row.activate_at, activate_at);
            } else {
                assert_eq!(row.status, "retiring");
                assert_eq!(row.deactivated_at, Some(activate_at));
                assert_eq!(row.retire_after, Some(activate_at + KEEP_AFTER_SIGNING));
            }
        }
        let ring = load_ring(&store).unwrap();
        assert!(kids.contains(&es256(&ring, activate_at + 50)));
        assert!(!ring.next_due(activate_at + 50));
    }

    #[test]
    fn an_emergency_rotation_signs_at_once_and_withdraws_a_pending_key() {
        let mut store = Store::open_in_memory().unwrap();
        ensure_keys(&mut store, 1_000).unwrap();
        let old = es256(&load_ring(&store).unwrap(), 1_000);
        let Rotation::Scheduled { kids: pending, .. } = schedule(&mut store, 2_000, 300).unwrap()
        else {
            panic!("refused");
        };
        let (new, withdrawn) = activate_now(&mut store, 2_010).unwrap();
        let mut sorted = withdrawn.clone();
        sorted.sort();
        let mut expected = pending.clone();
        expected.sort();
        assert_eq!(sorted, expected, "the pending keys are withdrawn");
        let ring = load_ring(&store).unwrap();
        let now_signing = es256(&ring, 2_010);
        assert!(new.contains(&now_signing) && now_signing != old);
        assert!(ring.get(&old).is_some(), "the old key stays published");
        assert!(pending.iter().all(|k| ring.get(k).is_none()));
        let old_row = store
            .all_keys()
            .unwrap()
            .into_iter()
            .find(|k| k.kid == old)
            .unwrap();
        assert_eq!(old_row.status, "retiring");
        assert_eq!(old_row.deactivated_at, Some(2_010));
        assert_eq!(old_row.retire_after, Some(2_010 + KEEP_AFTER_SIGNING));
        // Nothing pending now: a normal rotation is accepted again.
        assert!(matches!(
            schedule(&mut store, 2_020, 300).unwrap(),
            Rotation::Scheduled { .. }
        ));
    }

    #[test]
    fn a_clock_behind_every_activation_still_signs_with_the_active_key() {
        let mut store = Store::open_in_memory().unwrap();
        ensure_keys(&mut store, 1_000).unwrap();
        let ring = load_ring(&store).unwrap();
        let kid = es256(&ring, 1_000);
        assert_eq!(es256(&ring, 10), kid);
    }

    #[test]
    fn rotations_are_audited_and_a_pending_one_is_refused_and_audited_as_failed() {
        let mut store = Store::open_in_memory().unwrap();
        let actor = Actor {
            name: "cli:test".into(),
            address: String::new(),
        };
        ensure_keys(&mut store, 1_000).unwrap();
        let done = rotate(&mut store, &actor, 2_000).unwrap();
        let max_age = Settings::load(&store).unwrap().get(Setting::JwksMaxAge);
        assert_eq!(done.max_age, max_age);
        assert_eq!(done.activate_at, 2_000 + max_age + PUBLISH_MARGIN);
        assert_eq!(done.retire_after, done.activate_at + KEEP_AFTER_SIGNING);
        match rotate(&mut store, &actor, 2_001) {
            Err(OpError::Failed(m)) => {
                assert!(m.contains("already pending") && m.contains("--now"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let now = rotate_now(&mut store, &actor, 2_002).unwrap();
        assert_eq!(now.withdrawn.len(), 2, "the pending keys are withdrawn");
        assert_eq!(now.retire_after, 2_002 + KEEP_AFTER_SIGNING);
        let events: Vec<_> = store
            .audit_since(0, 10)
            .unwrap()
            .into_iter()
            .map(|e| (e.actor, e.action, e.target, e.outcome))
            .collect();
        let ev = |target: &str, outcome: &str| {
            (
                "cli:test".to_string(),
                "signing_keys_rotated".to_string(),
                target.to_string(),
                outcome.to_string(),
            )
        };
        assert_eq!(
            events,
            vec![ev("", "ok"), ev("", "failed"), ev("now", "ok")]
        );
        // Listing shows every key, the withdrawn ones gone, with the times of their changes.
        let listed = list(&mut store, 2_003).unwrap();
        assert_eq!(listed.iter().filter(|k| k.status == "active").count(), 2);
        assert!(listed.iter().all(|k| k.status != "next"));
        for k in listed.iter().filter(|k| k.status == "retiring") {
            assert_eq!(k.times.signing_until, Some(2_002));
            assert_eq!(k.times.published_until, Some(2_002 + KEEP_AFTER_SIGNING));
        }
    }
}
