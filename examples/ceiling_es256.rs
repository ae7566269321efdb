//! Benchmark ceiling: latchkey's own connection layer signing 64 bytes with ES256 (ring's
//! ECDSA P-256 SHA-256, fixed-size signature) per request and answering with the signature,
//! base64url, in a small JSON body. `bench/run.sh` compares `POST /token` to this.
//!
//! `cargo run --release --example ceiling_es256 -- --listen 127.0.0.1:0 --workers 4`

mod common;

use std::borrow::Cow;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::http::{Req, Resp};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// What every request signs.
const MESSAGE: [u8; 64] = [0x5a; 64];

/// A fresh P-256 key pair.
fn key_pair(rng: &SystemRandom) -> Result<EcdsaKeyPair, String> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| "cannot generate a P-256 key".to_string())?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .map_err(|e| format!("cannot load the P-256 key: {e}"))
}

fn main() -> ExitCode {
    let rng = SystemRandom::new();
    let key = match key_pair(&rng) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ceiling_es256: {e}");
            return ExitCode::FAILURE;
        }
    };
    common::serve("ceiling_es256", move |_: &mut (), _: &Req| -> Resp {
        match key.sign(&rng, &MESSAGE) {
            Ok(sig) => Resp {
                status: 200,
                headers: vec![("Content-Type", Cow::Borrowed("application/json"))],
                body: format!(r#"{{"sig":"{}"}}"#, URL_SAFE_NO_PAD.encode(sig.as_ref()))
                    .into_bytes(),
                close: false,
            },
            Err(_) => Resp::empty(500),
        }
    })
}
