//! The key ring: signing keys loaded from the store, each pinned to its one algorithm
//! (RFC 8725 §3.1), with its public JWK and RFC 7638 thumbprint `kid`.

use ring::rand::SystemRandom;
use ring::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use serde_json::{Value, json};

use crate::crypto::{b64url, sha256};
use crate::error::Error;
use crate::store::{KeyRow, Store, StoreError};

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
    /// False for keys that are published (so tokens they signed still verify) but no longer sign.
    pub active: bool,
    pub created_at: i64,
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
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a key from its PKCS#8 document; the `kid` is recomputed from the public key, so
    /// a row whose kid does not match its key is rejected.
    pub fn from_pkcs8(
        alg: Alg,
        pkcs8: &[u8],
        active: bool,
        created_at: i64,
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
                    active,
                    created_at,
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
                    active,
                    created_at,
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
        let key = SigningKey::from_pkcs8(alg, &pkcs8, true, now)?;
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
    /// Loads the active and retiring keys from the store. Rows of unknown algorithms are
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
            ..
        } in rows
        {
            let Some(parsed) = Alg::parse(&alg) else {
                log::warn!("signing key {kid} has unsupported algorithm {alg}; skipped");
                continue;
            };
            let key = SigningKey::from_pkcs8(parsed, &pkcs8, status == "active", created_at)?;
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

    /// The key that signs new tokens of `alg`.
    pub fn active(&self, alg: Alg) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.active && k.alg == alg)
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
        if ring.active(alg).is_some() {
            continue;
        }
        let (pkcs8, key) = SigningKey::generate(alg, now)?;
        if store.insert_first_key(&key.kid, alg.as_str(), &pkcs8, now)? {
            created.push(key.kid);
        }
    }
    Ok(created)
}

/// Makes a new key active for every algorithm; each previous key keeps being published until
/// `retire_after`. Returns the new kids.
pub fn rotate(store: &mut Store, now: i64, retire_after: i64) -> Result<Vec<String>, Error> {
    let mut created = Vec::new();
    for &alg in ALGS {
        let (pkcs8, key) = SigningKey::generate(alg, now)?;
        store.activate_key(&key.kid, alg.as_str(), &pkcs8, now, retire_after)?;
        created.push(key.kid);
    }
    Ok(created)
}
