//! Benchmark ceiling: latchkey's own connection layer signing 64 bytes with ES256 (ring's
//! ECDSA P-256 SHA-256, fixed-size signature) per request and answering with the signature,
//! base64url, in a small JSON body. `bench/run.sh` compares `POST /token` to this.
//!
//! `cargo run --release --example ceiling_es256 -- --listen 127.0.0.1:0 --workers 4`

use std::borrow::Cow;
use std::process::ExitCode;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::http::{Req, Resp};
use latchkey::server::{Server, ServerConfig};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

/// What every request signs.
const MESSAGE: [u8; 64] = [0x5a; 64];

/// `--listen ADDR` and `--workers N`.
fn parse_args() -> Result<(String, usize), String> {
    let mut listen = String::from("127.0.0.1:0");
    let mut workers = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "--workers" => {
                workers = args
                    .next()
                    .ok_or("--workers needs a number")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok((listen, workers.max(1)))
}

/// A fresh P-256 key pair.
fn key_pair(rng: &SystemRandom) -> Result<EcdsaKeyPair, String> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map_err(|_| "cannot generate a P-256 key".to_string())?;
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .map_err(|e| format!("cannot load the P-256 key: {e}"))
}

fn main() -> ExitCode {
    let (listen, workers) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ceiling_es256: {e}");
            return ExitCode::from(2);
        }
    };
    let rng = SystemRandom::new();
    let key = match key_pair(&rng) {
        Ok(k) => Arc::new(k),
        Err(e) => {
            eprintln!("ceiling_es256: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = match listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}: bad --listen {listen}: {e}", env!("CARGO_CRATE_NAME"));
            return ExitCode::from(2);
        }
    };
    let listener = match latchkey::server::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ceiling_es256: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handler = move |_: &mut (), _: &Req| -> Resp {
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
    };
    let server = match Server::new(
        listener,
        vec![(); workers],
        Arc::new(handler),
        ServerConfig::default(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ceiling_es256: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", server.local_addr());
    server.run();
    ExitCode::SUCCESS
}
