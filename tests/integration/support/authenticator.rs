//! A software WebAuthn authenticator for HTTP-level tests: an ES256 key made with ring, the
//! attestation object and COSE key written with ciborium, clientDataJSON as a browser writes
//! it. Independent of latchkey's verifier (nothing of the crate is used); every field can be
//! bent to test a refusal. The real-browser tests use Chromium's virtual authenticator.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ciborium::Value as Cbor;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// Flags of authenticatorData (WebAuthn §6.1).
pub const UP: u8 = 0x01;
pub const UV: u8 = 0x04;
pub const BE: u8 = 0x08;
pub const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// One passkey on the software authenticator.
pub struct SoftKey {
    key: EcdsaKeyPair,
    pub credential_id: Vec<u8>,
    /// The RP ID it was made for.
    pub rp_id: String,
    /// The user handle the RP gave at registration.
    pub user_handle: Vec<u8>,
    pub counter: u32,
    /// Flags for the next assertion (UP | UV by default).
    pub flags: u8,
}

/// What to bend in one answer.
#[derive(Default, Clone)]
pub struct Bend {
    /// Use this origin in clientDataJSON instead of the server's.
    pub origin: Option<String>,
    /// Use this `type`.
    pub kind: Option<&'static str>,
    /// Add a member to clientDataJSON after signing.
    pub tamper_client_data: bool,
    /// Change a byte of authenticatorData after signing.
    pub tamper_authenticator_data: bool,
    /// Use this challenge (base64url) instead of the one sent.
    pub challenge: Option<String>,
    /// Leave the user handle out of an assertion.
    pub no_user_handle: bool,
    /// The flags of a registration (UP | UV unless given).
    pub flags: Option<u8>,
}

impl SoftKey {
    fn new(rp_id: &str, user_handle: &[u8]) -> SoftKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let mut id = [0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut id).unwrap();
        SoftKey {
            key,
            credential_id: id.to_vec(),
            rp_id: rp_id.to_string(),
            user_handle: user_handle.to_vec(),
            counter: 0,
            flags: UP | UV,
        }
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.public_key().as_ref();
        let map = Cbor::Map(vec![
            (Cbor::Integer(1.into()), Cbor::Integer(2.into())),
            (Cbor::Integer(3.into()), Cbor::Integer((-7).into())),
            (Cbor::Integer((-1).into()), Cbor::Integer(1.into())),
            (
                Cbor::Integer((-2).into()),
                Cbor::Bytes(point[1..33].to_vec()),
            ),
            (
                Cbor::Integer((-3).into()),
                Cbor::Bytes(point[33..65].to_vec()),
            ),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&map, &mut out).unwrap();
        out
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        // Field order as Chromium writes it.
        format!(
            "{{\"type\":\"{kind}\",\"challenge\":\"{challenge}\",\"origin\":\"{origin}\",\"crossOrigin\":false}}"
        )
        .into_bytes()
    }

    /// Answers `navigator.credentials.create()` for these creation options (the `publicKey`
    /// member latchkey sends): a new key, and the credential as the script posts it.
    pub fn register(options: &Value, origin: &str, bend: &Bend) -> (SoftKey, String) {
        let rp_id = options["rp"]["id"].as_str().unwrap();
        let handle = unb64(options["user"]["id"].as_str().unwrap());
        let mut key = SoftKey::new(rp_id, &handle);
        let challenge = bend
            .challenge
            .clone()
            .unwrap_or_else(|| options["challenge"].as_str().unwrap().to_string());
        let mut cd = Self::client_data(
            bend.kind.unwrap_or("webauthn.create"),
            &challenge,
            bend.origin.as_deref().unwrap_or(origin),
        );
        let mut auth = sha256(key.rp_id.as_bytes());
        auth.push(bend.flags.unwrap_or(key.flags) | AT);
        auth.extend_from_slice(&key.counter.to_be_bytes());
        auth.extend_from_slice(&[0u8; 16]);
        auth.extend_from_slice(&(key.credential_id.len() as u16).to_be_bytes());
        auth.extend_from_slice(&key.credential_id);
        auth.extend_from_slice(&key.cose_key());
        if bend.tamper_authenticator_data {
            auth[0] ^= 1;
        }
        if bend.tamper_client_data {
            cd.pop();
            cd.extend_from_slice(b",\"other\":1}");
        }
        let att = Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth)),
        ]);
        let mut att_bytes = Vec::new();
        ciborium::into_writer(&att, &mut att_bytes).unwrap();
        key.counter = 1;
        let id = b64(&key.credential_id);
        let cred = json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": b64(&cd),
                "attestationObject": b64(&att_bytes),
                "transports": ["internal"],
            }
        });
        (key, cred.to_string())
    }

    /// Answers `navigator.credentials.get()` for these request options.
    pub fn assert(&mut self, options: &Value, origin: &str, bend: &Bend) -> String {
        let challenge = bend
            .challenge
            .clone()
            .unwrap_or_else(|| options["challenge"].as_str().unwrap().to_string());
        let mut cd = Self::client_data(
            bend.kind.unwrap_or("webauthn.get"),
            &challenge,
            bend.origin.as_deref().unwrap_or(origin),
        );
        let mut auth = sha256(self.rp_id.as_bytes());
        auth.push(self.flags);
        auth.extend_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        let mut signed = auth.clone();
        signed.extend_from_slice(&sha256(&cd));
        let sig = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .unwrap()
            .as_ref()
            .to_vec();
        if bend.tamper_authenticator_data {
            // The counter's low byte: still well-formed, no longer what was signed.
            auth[36] ^= 0x40;
        }
        if bend.tamper_client_data {
            // Still valid JSON with every checked member right: only the signature tells.
            cd.pop();
            cd.extend_from_slice(b",\"other\":1}");
        }
        let id = b64(&self.credential_id);
        let handle = if bend.no_user_handle {
            Value::Null
        } else {
            Value::String(b64(&self.user_handle))
        };
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "clientDataJSON": b64(&cd),
                "authenticatorData": b64(&auth),
                "signature": b64(&sig),
                "userHandle": handle,
            }
        })
        .to_string()
    }

    /// The same key registered under another RP ID (as if made on another site).
    pub fn for_rp(mut self, rp_id: &str) -> SoftKey {
        self.rp_id = rp_id.to_string();
        self
    }
}
