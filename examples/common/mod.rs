//! What both ceiling examples share: `--listen ADDR` and `--workers N`, binding the way
//! latchkey binds, and serving one handler on latchkey's own connection layer.

use std::process::ExitCode;
use std::sync::Arc;

use latchkey::http::{Req, Resp};
use latchkey::server::{Server, ServerConfig};

/// `--listen ADDR` (default 127.0.0.1:0) and `--workers N` (default two per core).
fn parse_args() -> Result<(std::net::SocketAddr, usize), String> {
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
    let addr = listen
        .parse()
        .map_err(|e| format!("bad --listen {listen}: {e}"))?;
    Ok((addr, workers.max(1)))
}

/// Serves `handler` until killed; prints `listening on http://ADDR` once bound. `name` prefixes
/// error messages. Exit code 2 for bad arguments, 1 when the server cannot start.
pub fn serve(
    name: &str,
    handler: impl Fn(&mut (), &Req) -> Resp + Send + Sync + 'static,
) -> ExitCode {
    let (addr, workers) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match latchkey::server::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{name}: cannot listen on {addr}: {e}");
            return ExitCode::FAILURE;
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
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on http://{}", server.local_addr());
    server.run();
    ExitCode::SUCCESS
}
