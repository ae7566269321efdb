//! The key ring: signing keys handed over by the caller (as [`KeyMaterial`]), each pinned to its one algorithm
//! (RFC 8725 §3.1), with its public JWK and RFC 7638 thumbprint `kid`.
//!
//! **Publish before use.** Resource servers cache the JWKS for its `Cache-Control` max-age
//! (the `jwks.max_age` setting). A key that signed the moment it was made would have its
//! tokens refused by every resource server holding a JWKS from before, until that copy
//! expired. So `ops::keys::rotate` adds each new key as `next`: published at once, signing from
//! `activate_at` = now + `jwks.max_age` (the value at the moment of rotation) +
//! [`PUBLISH_MARGIN`] (whole seconds, and the time running servers take to load the new key).
//! By then every JWKS cached before the key appeared has expired. `ops::keys::rotate_now` is the
//! emergency path: the new key signs at once, and resource servers with a cached JWKS refuse
//! its tokens until they fetch it again, for up to the max-age.
//!
//! **Who signs.** [`KeyRing::active`] picks, per algorithm, the newest `next` or `active` key
//! whose `activate_at` has come, so every worker of every process switches at the same second
//! without waiting for a database write. The maintenance thread then records the switch
//! (`ops::keys::promote_due`: next → active, the old active → retiring, its
//! retirement counted from the moment it stopped signing: [`KEEP_AFTER_SIGNING`]), so that
//! `keys list` and other processes agree; `keys list` and `keys rotate` promote due keys too.
//! Both algorithms (ES256 for access tokens, RS256 for ID tokens) rotate together.
//!
//! This module is pure: it parses, signs and verifies the key material it is given, and never
//! reads or writes the database. Generating, rotating, promoting and retiring keys are
//! operations in `crate::ops::keys`.
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
    /// The status as the `signing_keys` table names it.
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

    /// Generates a new key; returns its PKCS#8 document and the loaded key (active from `now`).
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

/// A key as the caller loaded it (from the database): what [`KeyRing::from_rows`] takes.
pub struct KeyMaterial {
    pub kid: String,
    /// The JOSE name (`ES256`, `RS256`; others are skipped).
    pub alg: String,
    pub pkcs8: Vec<u8>,
    /// `next`, `active` or `retiring`.
    pub status: String,
    pub created_at: i64,
    pub activate_at: i64,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("status", &self.status)
            .field("pkcs8", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Why [`KeyRing::from_rows`] refused the rows.
#[derive(Debug)]
pub enum RingError {
    /// A row is inconsistent (unknown status, kid not matching its key).
    Corrupt(String),
    /// A key could not be loaded.
    Key(Error),
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
    /// Builds the ring from the next, active and retiring keys the caller loaded, newest first.
    /// Rows of unknown algorithms are skipped with a warning (a newer latchkey may have written
    /// them); a row with an unknown status, or whose kid does not match its key, is refused.
    pub fn from_rows(rows: Vec<KeyMaterial>) -> Result<KeyRing, RingError> {
        let mut keys = Vec::with_capacity(rows.len());
        for KeyMaterial {
            kid,
            alg,
            pkcs8,
            status,
            created_at,
            activate_at,
        } in rows
        {
            let Some(parsed) = Alg::parse(&alg) else {
                log::warn!("signing key {kid} has unsupported algorithm {alg}; skipped");
                continue;
            };
            let state = KeyState::parse(&status).ok_or_else(|| {
                RingError::Corrupt(format!("signing key {kid} has unknown status {status}"))
            })?;
            let key = SigningKey::from_pkcs8(parsed, &pkcs8, state, created_at, activate_at)
                .map_err(RingError::Key)?;
            if key.kid != kid {
                return Err(RingError::Corrupt(format!(
                    "signing key {kid} does not match its stored key material"
                )));
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
    /// none have (the clock went back), the key whose state is `active`.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn material(status: &str) -> KeyMaterial {
        let (pkcs8, key) = SigningKey::generate(Alg::Es256, 1_000).unwrap();
        KeyMaterial {
            kid: key.kid,
            alg: "ES256".into(),
            pkcs8,
            status: status.into(),
            created_at: 1_000,
            activate_at: 1_000,
        }
    }

    #[test]
    fn a_ring_is_built_from_key_material_alone() {
        let row = material("active");
        let kid = row.kid.clone();
        let mut unknown = material("active");
        unknown.alg = "EdDSA".into();
        let ring = KeyRing::from_rows(vec![row, unknown]).unwrap();
        assert_eq!(ring.keys().len(), 1, "the unknown algorithm is skipped");
        assert_eq!(ring.active(Alg::Es256, 1_000).unwrap().kid, kid);
        let jwks: Value = serde_json::from_slice(ring.jwks_json()).unwrap();
        assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
    }

    #[test]
    fn inconsistent_rows_are_refused() {
        let mut wrong_kid = material("active");
        wrong_kid.kid = "not-its-thumbprint".into();
        assert!(matches!(
            KeyRing::from_rows(vec![wrong_kid]),
            Err(RingError::Corrupt(m)) if m.contains("does not match")
        ));
        assert!(matches!(
            KeyRing::from_rows(vec![material("retired-ish")]),
            Err(RingError::Corrupt(m)) if m.contains("unknown status")
        ));
        let mut garbage = material("active");
        garbage.pkcs8 = vec![0; 16];
        assert!(matches!(
            KeyRing::from_rows(vec![garbage]),
            Err(RingError::Key(Error::Crypto(_)))
        ));
    }
}
