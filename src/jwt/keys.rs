//! The key ring: signing keys loaded from the store, each pinned to its one algorithm
//! (RFC 8725 §3.1), with its public JWK and RFC 7638 thumbprint `kid`.
//!
//! **Publish before use.** Resource servers cache the JWKS for its `Cache-Control` max-age
//! (the `jwks.max_age` setting). A key that signed the moment it was made would have its
//! tokens refused by every resource server holding a JWKS from before, until that copy
//! expired. So [`rotate`] adds each new key as `next`: published at once, signing from
//! `activate_at` = now + `jwks.max_age` (the value at the moment of rotation) +
//! [`PUBLISH_MARGIN`] (whole seconds, and the time running servers take to load the new key).
//! By then every JWKS cached before the key appeared has expired. [`rotate_now`] is the
//! emergency path: the new key signs at once, and resource servers with a cached JWKS refuse
//! its tokens until they fetch it again, for up to the max-age.
//!
//! **Who signs.** [`KeyRing::active`] picks, per algorithm, the newest `next` or `active` key
//! whose `activate_at` has come, so every worker of every process switches at the same second
//! without waiting for a database write. The maintenance thread then records the switch
//! ([`crate::store::Store::promote_due_keys`]: next → active, the old active → retiring, its
//! retirement counted from the moment it stopped signing: [`KEEP_AFTER_SIGNING`]), so that
//! `keys list` and other processes agree; `keys list` and `keys rotate` promote due keys too.
//! Both algorithms (ES256 for access tokens, RS256 for ID tokens) rotate together.
//!
//! **A second rotation while one is pending** is refused with the pending key and its time:
//! replacing the pending key would throw away a key resource servers may already have cached
//! and restart the wait. `keys rotate --now` is the way past it (it withdraws the pending key,
//! which never signed).

use ring::rand::SystemRandom;
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use serde_json::{Value, json};

use crate::config::MAX_TOKEN_TTL;
use crate::crypto::{b64url, sha256};
use crate::error::Error;
use crate::store::{KeyRow, NextOutcome, Store, StoreError};

/// How long after the longest possible token lifetime an old key stays published, for clock
/// skew and for resource servers that cached the JWKS.
pub const RETIRE_MARGIN: i64 = 300;

/// How long a key stays published after it stopped signing: until every token it can have
/// signed has expired (the longest lifetime latchkey allows, whatever is configured now), plus
/// [`RETIRE_MARGIN`].
pub const KEEP_AFTER_SIGNING: i64 = MAX_TOKEN_TTL + RETIRE_MARGIN;

/// Seconds added to `jwks.max_age` before a rotated key signs: times are whole seconds, and a
/// running server loads a new key within a second of the rotation.
pub const PUBLISH_MARGIN: i64 = 2;

/// Where a loaded key is in its life (retired keys are not loaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Published; signs from its `activate_at`.
    Next,
    /// Signs (until a `next` key's time comes).
    Active,
    /// Published so its tokens verify; signs no more.
    Retiring,
}

impl KeyState {
    /// The stored status.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
        }
    }

    fn parse(s: &str) -> Option<KeyState> {
        match s {
            "next" => Some(KeyState::Next),
            "active" => Some(KeyState::Active),
            "retiring" => Some(KeyState::Retiring),
            _ => None,
        }
    }
}

/// The algorithms a key can be pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256 (RFC 7518 §3.4): access tokens, and ID tokens on request.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3): ID tokens by default, because OpenID
    /// Connect requires providers to support it (OIDC Core §15.1).
    Rs256,
}

/// Every algorithm latchkey keeps an active key for.
pub const ALGS: &[Alg] = &[Alg::Es256, Alg::Rs256];

/// RSA modulus size of generated keys: the size OpenID providers commonly publish, and what
/// ring verifies fastest among the sizes it accepts (2048–8192).
const RSA_BITS: usize = 2048;

impl Alg {
    /// The JOSE name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
        }
    }

    /// Parses a JOSE name this server signs with; anything else (`none`, `HS256`, …) is `None`.
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "ES256" => Some(Alg::Es256),
            "RS256" => Some(Alg::Rs256),
            _ => None,
        }
    }
}

enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

/// One signing key with its public half.
pub struct SigningKey {
    pub kid: String,
    pub alg: Alg,
    pub state: KeyState,
    pub created_at: i64,
    /// When it starts (or started) signing.
    pub activate_at: i64,
    signer: Signer,
    /// The public key in the form ring verifies with (uncompressed SEC1 point for EC).
    public: Vec<u8>,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("activate_at", &self.activate_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a key from its PKCS#8 document; the `kid` is recomputed from the public key, so
    /// a row whose kid does not match its key is rejected.
    pub fn from_pkcs8(
        alg: Alg,
        pkcs8: &[u8],
        state: KeyState,
        created_at: i64,
        activate_at: i64,
    ) -> Result<SigningKey, Error> {
        match alg {
            Alg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(|_| Error::Crypto("stored ES256 key is not a valid P-256 PKCS#8 key"))?;
                let public = pair.public_key().as_ref().to_vec();
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let (x, y) = match public.as_slice() {
                    [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                    _ => return Err(Error::Crypto("unexpected P-256 public key encoding")),
                };
                let (x, y) = (b64url(x), b64url(y));
                // RFC 7638 §3.2: the required members in lexicographic order, no whitespace.
                let thumbprint = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                let kid = b64url(&sha256(thumbprint.as_bytes()));
                let jwk = json!({
                    "kty": "EC", "crv": "P-256", "x": x, "y": y,
                    "kid": kid, "use": "sig", "alg": "ES256",
                });
                Ok(SigningKey {
                    kid,
                    alg,
                    state,
                    created_at,
                    activate_at,
                    signer: Signer::Es256(pair),
                    public,
                    jwk,
                })
            }
            Alg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8)
                    .map_err(|_| Error::Crypto("stored RS256 key is not a valid RSA PKCS#8 key"))?;
                let public = pair.public().as_ref().to_vec();
                let parts = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                let (n, e) = (b64url(&parts.n), b64url(&parts.e));
                // RFC 7638 §3.2 for RSA: e, kty, n.
                let thumbprint = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
                let kid = b64url(&sha256(thumbprint.as_bytes()));
                let jwk = json!({
                    "kty": "RSA", "n": n, "e": e,
                    "kid": kid, "use": "sig", "alg": "RS256",
                });
                Ok(SigningKey {
                    kid,
                    alg,
                    state,
                    created_at,
                    activate_at,
                    signer: Signer::Rs256(pair),
                    public,
                    jwk,
                })
            }
        }
    }

    /// Generates a new key; returns its PKCS#8 document and the loaded key.
    pub fn generate(alg: Alg, now: i64) -> Result<(Vec<u8>, SigningKey), Error> {
        let pkcs8 = match alg {
            Alg::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(|_| Error::Crypto("cannot generate a P-256 key"))?
                    .as_ref()
                    .to_vec()
            }
            Alg::Rs256 => {
                // ring cannot generate RSA keys; the rsa crate generates, ring signs.
                use rsa::pkcs8::EncodePrivateKey as _;
                let key = rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS)
                    .map_err(|_| Error::Crypto("cannot generate an RSA key"))?;
                key.to_pkcs8_der()
                    .map_err(|_| Error::Crypto("cannot encode the RSA key"))?
                    .as_bytes()
                    .to_vec()
            }
        };
        let key = SigningKey::from_pkcs8(alg, &pkcs8, KeyState::Active, now, now)?;
        Ok((pkcs8, key))
    }

    /// The public JWK (RFC 7517), with `kid`, `use` and `alg`.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `msg`; for ES256 the signature is the fixed-width `r || s` of RFC 7518 §3.4.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        match &self.signer {
            Signer::Es256(pair) => Ok(pair
                .sign(&SystemRandom::new(), msg)
                .map_err(|_| Error::Crypto("ES256 signing failed"))?
                .as_ref()
                .to_vec()),
            Signer::Rs256(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut sig)
                    .map_err(|_| Error::Crypto("RS256 signing failed"))?;
                Ok(sig)
            }
        }
    }

    /// Verifies `sig` over `msg` with this key's own algorithm.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self.alg {
            Alg::Es256 => signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.public)
                .verify(msg, sig)
                .is_ok(),
            Alg::Rs256 => {
                signature::UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public)
                    .verify(msg, sig)
                    .is_ok()
            }
        }
    }
}

/// Every published key. Built once per change of the `signing_keys` table and shared
/// read-only between workers.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<SigningKey>,
    /// The JWK Set document, serialised once per key change (it is served on every request
    /// for `/jwks.json`).
    jwks_json: Vec<u8>,
}

impl KeyRing {
    /// Loads the next, active and retiring keys from the store. Rows of unknown algorithms are
    /// skipped with a warning (a newer latchkey may have written them).
    pub fn load(store: &Store) -> Result<KeyRing, Error> {
        let rows = store.live_keys()?;
        let mut keys = Vec::with_capacity(rows.len());
        for KeyRow {
            kid,
            alg,
            pkcs8,
            status,
            created_at,
            activate_at,
            ..
        } in rows
        {
            let Some(parsed) = Alg::parse(&alg) else {
                log::warn!("signing key {kid} has unsupported algorithm {alg}; skipped");
                continue;
            };
            let state = KeyState::parse(&status).ok_or_else(|| {
                Error::Store(StoreError::Corrupt(format!(
                    "signing key {kid} has unknown status {status}"
                )))
            })?;
            let key = SigningKey::from_pkcs8(parsed, &pkcs8, state, created_at, activate_at)?;
            if key.kid != kid {
                return Err(Error::Store(StoreError::Corrupt(format!(
                    "signing key {kid} does not match its stored key material"
                ))));
            }
            keys.push(key);
        }
        let mut ring = KeyRing {
            keys,
            jwks_json: Vec::new(),
        };
        ring.jwks_json = serde_json::to_vec(&ring.jwks()).unwrap_or_default();
        Ok(ring)
    }

    /// The key that signs new tokens of `alg` at `now`: the newest next or active key whose
    /// `activate_at` has come (the first in the newest-first order among equal times). Should
    /// none have (the clock went back), the stored active key.
    pub fn active(&self, alg: Alg, now: i64) -> Option<&SigningKey> {
        self.keys
            .iter()
            .filter(|k| k.alg == alg && k.state != KeyState::Retiring && k.activate_at <= now)
            .reduce(|best, k| {
                if k.activate_at > best.activate_at {
                    k
                } else {
                    best
                }
            })
            .or_else(|| {
                self.keys
                    .iter()
                    .find(|k| k.alg == alg && k.state == KeyState::Active)
            })
    }

    /// True if a `next` key's time has come: the database should record the switch.
    pub fn next_due(&self, now: i64) -> bool {
        self.keys
            .iter()
            .any(|k| k.state == KeyState::Next && k.activate_at <= now)
    }

    /// The published key with this `kid`, active or retiring.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Every published key, newest first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The JWK Set document (RFC 7517 §5).
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.keys.iter().map(|k| k.jwk().clone()).collect::<Vec<_>>() })
    }

    /// The JWK Set document as served.
    pub fn jwks_json(&self) -> &[u8] {
        &self.jwks_json
    }
}

/// Makes sure an active key exists for every algorithm latchkey signs with, generating it on
/// first start. Returns the kids it created.
pub fn ensure_keys(store: &mut Store, now: i64) -> Result<Vec<String>, Error> {
    let mut created = Vec::new();
    for &alg in ALGS {
        let ring = KeyRing::load(store)?;
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

/// Records every switch to a `next` key whose time has come (see the module docs). Returns how
/// many keys were promoted.
pub fn promote_due(store: &mut Store, now: i64) -> Result<usize, Error> {
    Ok(store.promote_due_keys(now, KEEP_AFTER_SIGNING)?)
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

/// What [`rotate`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// New keys (their kids), published now, signing from `activate_at`.
    Scheduled { kids: Vec<String>, activate_at: i64 },
    /// Refused: a rotation is pending (this key signs from `activate_at`). Nothing changed.
    Pending { kid: String, activate_at: i64 },
}

/// Publishes a new key for every algorithm, signing from `now + max_age + PUBLISH_MARGIN`;
/// refused while an earlier rotation is pending.
pub fn rotate(store: &mut Store, now: i64, max_age: i64) -> Result<Rotation, Error> {
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
pub fn rotate_now(store: &mut Store, now: i64) -> Result<(Vec<String>, Vec<String>), Error> {
    promote_due(store, now)?;
    let keys = generate_all(now)?;
    let rows: Vec<_> = keys
        .iter()
        .map(|(kid, alg, pkcs8)| (kid.as_str(), *alg, pkcs8.as_slice()))
        .collect();
    let withdrawn = store.activate_keys_now(&rows, now, now + KEEP_AFTER_SIGNING)?;
    Ok((keys.into_iter().map(|(kid, _, _)| kid).collect(), withdrawn))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es256(ring: &KeyRing, now: i64) -> String {
        ring.active(Alg::Es256, now).unwrap().kid.clone()
    }

    #[test]
    fn a_rotated_key_is_published_at_once_and_signs_when_its_time_comes() {
        let mut store = Store::open_in_memory().unwrap();
        ensure_keys(&mut store, 1_000).unwrap();
        let ring = KeyRing::load(&store).unwrap();
        let (old_es, old_rs) = (
            es256(&ring, 1_000),
            ring.active(Alg::Rs256, 1_000).unwrap().kid.clone(),
        );
        let Rotation::Scheduled { kids, activate_at } = rotate(&mut store, 2_000, 300).unwrap()
        else {
            panic!("refused");
        };
        assert_eq!(activate_at, 2_000 + 300 + PUBLISH_MARGIN);
        assert_eq!(kids.len(), 2);
        let ring = KeyRing::load(&store).unwrap();
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
            rotate(&mut store, 2_001, 300).unwrap(),
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
        let ring = KeyRing::load(&store).unwrap();
        assert!(kids.contains(&es256(&ring, activate_at + 50)));
        assert!(!ring.next_due(activate_at + 50));
    }

    #[test]
    fn an_emergency_rotation_signs_at_once_and_withdraws_a_pending_key() {
        let mut store = Store::open_in_memory().unwrap();
        ensure_keys(&mut store, 1_000).unwrap();
        let old = es256(&KeyRing::load(&store).unwrap(), 1_000);
        let Rotation::Scheduled { kids: pending, .. } = rotate(&mut store, 2_000, 300).unwrap()
        else {
            panic!("refused");
        };
        let (new, withdrawn) = rotate_now(&mut store, 2_010).unwrap();
        let mut sorted = withdrawn.clone();
        sorted.sort();
        let mut expected = pending.clone();
        expected.sort();
        assert_eq!(sorted, expected, "the pending keys are withdrawn");
        let ring = KeyRing::load(&store).unwrap();
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
            rotate(&mut store, 2_020, 300).unwrap(),
            Rotation::Scheduled { .. }
        ));
    }

    #[test]
    fn a_clock_behind_every_activation_still_signs_with_the_active_key() {
        let mut store = Store::open_in_memory().unwrap();
        ensure_keys(&mut store, 1_000).unwrap();
        let ring = KeyRing::load(&store).unwrap();
        let kid = es256(&ring, 1_000);
        assert_eq!(es256(&ring, 10), kid);
    }
}
