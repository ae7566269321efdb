//! Benchmark ceiling: latchkey's own connection layer answering every request with a fixed
//! small JSON body. `bench/run.sh` compares latchkey's endpoints to this.
//!
//! `cargo run --release --example ceiling_json -- --listen 127.0.0.1:0 --workers 4`

mod common;

use std::borrow::Cow;
use std::process::ExitCode;

use latchkey::http::{Req, Resp};

const BODY: &[u8] = br#"{"active":true,"sub":"bench","scope":"bench:read"}"#;

fn main() -> ExitCode {
    common::serve("ceiling_json", |_: &mut (), _: &Req| -> Resp {
        Resp {
            status: 200,
            headers: vec![("Content-Type", Cow::Borrowed("application/json"))],
            body: BODY.to_vec(),
            close: false,
        }
    })
}
