//! Benchmark ceiling: latchkey's own connection layer answering every request with a fixed
//! small JSON body. `bench/run.sh` compares latchkey's endpoints to this.
//!
//! `cargo run --release --example ceiling_json -- --listen 127.0.0.1:0 --workers 4`

use std::borrow::Cow;
use std::process::ExitCode;
use std::sync::Arc;

use latchkey::http::{Req, Resp};
use latchkey::server::{Server, ServerConfig};

const BODY: &[u8] = br#"{"active":true,"sub":"bench","scope":"bench:read"}"#;

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

fn main() -> ExitCode {
    let (listen, workers) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ceiling_json: {e}");
            return ExitCode::from(2);
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
            eprintln!("ceiling_json: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let handler = |_: &mut (), _: &Req| -> Resp {
        Resp {
            status: 200,
            headers: vec![("Content-Type", Cow::Borrowed("application/json"))],
            body: BODY.to_vec(),
            close: false,
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
            eprintln!("ceiling_json: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", server.local_addr());
    server.run();
    ExitCode::SUCCESS
}
