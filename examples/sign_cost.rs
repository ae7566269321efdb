//! What one signature costs on this machine, with latchkey's own keys and signing code: an
//! ES256 signature (every access token) and an RS256 signature (every ID token). The
//! authorization-code flow signs one of each, so `cores / (RS256 + ES256)` bounds its flows per
//! second before anything else is counted.
//!
//! `cargo run --release --example sign_cost [-- ROUNDS]` prints the median over `ROUNDS`
//! (default 7) batches of the time per signature.

use std::time::Instant;

use latchkey::jwt::{Alg, SigningKey};

/// Signatures per batch, by algorithm: about a quarter of a second each.
fn batch(alg: Alg) -> u32 {
    match alg {
        Alg::Es256 => 8000,
        Alg::Rs256 => 300,
    }
}

fn median_micros(alg: Alg, rounds: usize) -> Result<f64, String> {
    let (_, key) = SigningKey::generate(alg, 0).map_err(|e| format!("{}: {e}", alg.as_str()))?;
    // Shaped like a JWT signing input of an ID token.
    let msg = vec![b'a'; 600];
    let n = batch(alg);
    let mut times = Vec::with_capacity(rounds);
    // One batch to warm up, then the measured ones.
    for round in 0..=rounds {
        let start = Instant::now();
        for _ in 0..n {
            key.sign(&msg)
                .map_err(|e| format!("{}: {e}", alg.as_str()))?;
        }
        if round > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(n));
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times.get(times.len() / 2).copied().unwrap_or(f64::NAN))
}

fn main() {
    let rounds = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        None => 7,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: sign_cost [ROUNDS > 0]");
            std::process::exit(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut total = 0.0;
    for alg in [Alg::Es256, Alg::Rs256] {
        match median_micros(alg, rounds) {
            Ok(us) => {
                println!(
                    "{} sign: {us:.1} µs (median of {rounds} batches)",
                    alg.as_str()
                );
                total += us;
            }
            Err(e) => {
                eprintln!("sign_cost: {e}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "code flow bound by its two signatures alone on {cores} cores: {:.0} flows/s",
        cores as f64 * 1e6 / total
    );
}
