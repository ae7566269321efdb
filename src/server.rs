//! The accept loop and the worker pool.
//!
//! Each accepted connection gets a small thread that does its I/O: it reads requests with the
//! deadlines of [`Limits`] and writes responses. To run a request it borrows one of a fixed
//! number of workers — each owning its per-worker state, in latchkey one SQLite connection —
//! so at most `workers` requests execute at once however many connections are open, and a
//! keep-alive connection never holds a worker while it is idle (the failure DESIGN.md measured
//! in tiny_http). Beyond `max_connections` open connections, new ones get a 503.
//!
//! Stopping: [`StopHandle::stop`] sets a flag and wakes the accept loop; idle connections see
//! the flag within 200 ms and close; requests in flight finish and their responses carry
//! `Connection: close`; [`Server::run`] returns when every connection is gone or the drain
//! deadline passes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::http::conn::{Conn, Limits, Next};
use crate::http::tls::{Stream, Tls};
use crate::http::{Method, Req, Resp};

/// Pending connections the kernel queues for accept (std's `TcpListener::bind` asks for 128):
/// a burst of 256 clients connecting at once overflowed 128 and the overflow waited a full
/// second for its SYN to be retried (bench/conns.sh). The kernel caps it at `somaxconn`.
const BACKLOG: i32 = 1024;

/// Binds a listening TCP socket like `TcpListener::bind` (with `SO_REUSEADDR`), with a
/// backlog of [`BACKLOG`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Stack size of connection threads: they parse and copy buffers, handlers run on them too
/// (with a worker borrowed), so this is generous for that and small beside the 8 MiB default.
const CONN_STACK: usize = 512 * 1024;
/// Request ids, unique within a process run.
static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);
/// How long a stop waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);

/// A request handler: runs with a borrowed worker and returns the response.
pub type Handler<W> = dyn Fn(&mut W, &Req) -> Resp + Send + Sync;

/// A fixed set of workers lent to one request at a time.
pub struct Pool<W> {
    idle: Mutex<Idle<W>>,
    freed: Condvar,
}

/// The workers not lent out, and how many requests wait for one.
struct Idle<W> {
    workers: Vec<W>,
    waiting: usize,
}

impl<W> Pool<W> {
    /// A pool of these workers.
    pub fn new(workers: Vec<W>) -> Pool<W> {
        Pool {
            idle: Mutex::new(Idle {
                workers,
                waiting: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` with a worker, waiting for one if all are busy.
    pub fn with<R>(&self, f: impl FnOnce(&mut W) -> R) -> R {
        let mut worker = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(w) = idle.workers.pop() {
                    break w;
                }
                idle.waiting += 1;
                idle = self
                    .freed
                    .wait(idle)
                    .unwrap_or_else(PoisonError::into_inner);
                idle.waiting -= 1;
            }
        };
        let out = f(&mut worker);
        let waiting = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            idle.workers.push(worker);
            idle.waiting
        };
        // `notify_one` is a futex syscall even when nobody waits: one per request for nothing
        // while workers are free. A waiter counts itself under the lock before it sleeps, so a
        // waiter is never missed.
        if waiting > 0 {
            self.freed.notify_one();
        }
        out
    }
}

/// Settings of the connection layer.
#[derive(Clone)]
pub struct ServerConfig {
    pub limits: Limits,
    /// Open connections beyond this get a 503.
    pub max_connections: usize,
    /// Serve TLS with this certificate (reloadable) instead of plain HTTP.
    pub tls: Option<Arc<Tls>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            max_connections: 1024,
            tls: None,
        }
    }
}

/// Stops a running [`Server`] from another thread (a signal handler thread, a test).
#[derive(Clone)]
pub struct StopHandle {
    stop: Arc<AtomicBool>,
    wake: SocketAddr,
}

impl StopHandle {
    /// Stops accepting; connections finish what they are doing and close.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, which blocks in accept().
        let _ = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1));
    }

    /// True once a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Picks the requests that run on the side pool (see [`Server::with_side_pool`]).
pub type SideRoutes = fn(&Req) -> bool;

/// The worker pools of a server: the main one, and optionally a side pool for requests that
/// wait a long time for something other than the database.
struct Pools<W> {
    main: Pool<W>,
    side: Option<(Pool<W>, SideRoutes)>,
}

impl<W> Pools<W> {
    fn for_request(&self, req: &Req) -> &Pool<W> {
        match &self.side {
            Some((side, routes)) if routes(req) => side,
            _ => &self.main,
        }
    }
}

/// A bound listener with its workers and handler.
pub struct Server<W> {
    listener: TcpListener,
    addr: SocketAddr,
    pools: Arc<Pools<W>>,
    handler: Arc<Handler<W>>,
    config: ServerConfig,
    stop: Arc<AtomicBool>,
    open: Arc<AtomicUsize>,
}

/// Decrements the open-connection count when a connection thread ends, however it ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<W: Send + 'static> Server<W> {
    /// Wraps a bound listener.
    pub fn new(
        listener: TcpListener,
        workers: Vec<W>,
        handler: Arc<Handler<W>>,
        config: ServerConfig,
    ) -> std::io::Result<Server<W>> {
        let addr = listener.local_addr()?;
        Ok(Server {
            listener,
            addr,
            pools: Arc::new(Pools {
                main: Pool::new(workers),
                side: None,
            }),
            handler,
            config,
            stop: Arc::new(AtomicBool::new(false)),
            open: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Runs the requests `routes` picks on their own `workers`. latchkey sends password
    /// sign-ins there: each waits tens of milliseconds for an argon2 hash while holding its
    /// worker, and a flood of them on the main pool left every worker waiting (a
    /// client_credentials request took 660 ms during a login flood). On their own pool they wait
    /// among themselves.
    pub fn with_side_pool(mut self, workers: Vec<W>, routes: SideRoutes) -> Self {
        if let Some(pools) = Arc::get_mut(&mut self.pools) {
            pools.side = Some((Pool::new(workers), routes));
        }
        self
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that stops this server.
    pub fn stop_handle(&self) -> StopHandle {
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        StopHandle {
            stop: Arc::clone(&self.stop),
            wake,
        }
    }

    /// The number of open connections.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Accepts and serves until stopped, then waits (boundedly) for open connections to
    /// finish. Returns the number of connections still open when it gave up waiting.
    pub fn run(self) -> usize {
        for stream in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else {
                // EMFILE and friends: back off briefly rather than spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            if self.open.load(Ordering::SeqCst) >= self.config.max_connections {
                refuse(stream);
                continue;
            }
            self.open.fetch_add(1, Ordering::SeqCst);
            let guard = OpenGuard(Arc::clone(&self.open));
            let pools = Arc::clone(&self.pools);
            let handler = Arc::clone(&self.handler);
            let stop = Arc::clone(&self.stop);
            let limits = self.config.limits.clone();
            let tls = self.config.tls.clone();
            let spawned = std::thread::Builder::new()
                .name("conn".into())
                .stack_size(CONN_STACK)
                .spawn(move || {
                    let _guard = guard;
                    serve_connection(stream, tls.as_deref(), &pools, &*handler, &limits, &stop);
                });
            if let Err(e) = spawned {
                log::error!("cannot start a connection thread: {e}");
            }
        }
        drop(self.listener);
        let deadline = Instant::now() + DRAIN;
        while self.open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.open.load(Ordering::SeqCst)
    }
}

/// Answers a connection over the cap with 503 and closes it.
fn refuse(mut stream: TcpStream) {
    let body = br#"{"error":"temporarily_unavailable","error_description":"too many connections"}"#;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n\
         Cache-Control: no-store\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Drain what the client already sent, so closing does not reset the connection before it
    // reads the 503.
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

fn serve_connection<W>(
    stream: TcpStream,
    tls: Option<&Tls>,
    pools: &Pools<W>,
    handler: &Handler<W>,
    limits: &Limits,
    stop: &AtomicBool,
) {
    let Ok(peer) = stream.peer_addr() else { return };
    let stream = match tls {
        Some(t) => match t.accept(stream) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("TLS setup for {peer}: {e}");
                return;
            }
        },
        None => Stream::Plain(stream),
    };
    let Ok(mut conn) = Conn::new(stream, peer) else {
        return;
    };
    if conn.set_write_timeout(limits.body_timeout).is_err() {
        return;
    }
    loop {
        match conn.next_request(limits, stop) {
            Next::Close => return,
            // Stop writing, then drain: a request that crosses our close is read, not answered
            // with a reset (the client sees a clean close and may retry elsewhere).
            Next::Stop => {
                conn.linger_close();
                return;
            }
            Next::Reject(resp) => {
                log::info!(
                    target: "latchkey::access",
                    "{peer} - - {} rejected before routing",
                    resp.status
                );
                if conn.write(&resp, false, false, false) {
                    conn.linger_close();
                }
                return;
            }
            Next::Request { req, keep_alive } => {
                let started = Instant::now();
                // A request id ties the access-log line to the X-Request-Id the client sees.
                let rid = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
                let resp = pools.for_request(&req).with(|w| {
                    catch_unwind(AssertUnwindSafe(|| handler(w, &req))).unwrap_or_else(|_| {
                        log::error!("handler panicked on {} {}", req.method.as_str(), req.path);
                        Resp::json_error(500, "server_error", "internal error").no_store()
                    })
                });
                let resp = resp.with("X-Request-Id", format!("{rid:x}"));
                let keep = keep_alive && !resp.close && !stop.load(Ordering::SeqCst);
                let ok = conn.write(&resp, req.method == Method::Head, keep, req.http10);
                log::info!(
                    target: "latchkey::access",
                    "{peer} {} {} {} {}us rid={rid:x}",
                    req.method.as_str(),
                    crate::apikeys::format::redact(&req.path),
                    resp.status,
                    started.elapsed().as_micros()
                );
                if !ok || !keep {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    fn status_line(stream: &TcpStream) -> String {
        let mut line = String::new();
        let _ = BufReader::new(stream).read_line(&mut line);
        line
    }

    #[test]
    fn pool_lends_each_worker_to_one_request_and_wakes_every_waiter() {
        // 8 threads share 2 workers, 300 times each, so most calls wait. A release that did
        // not wake a waiter would leave threads asleep with a worker idle: the receive below
        // would time out. Each worker is a flag that must be free when lent.
        let pool = Arc::new(Pool::new(vec![
            AtomicBool::new(false),
            AtomicBool::new(false),
        ]));
        let busy = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = mpsc::channel();
        for _ in 0..8 {
            let (pool, busy, done_tx) = (pool.clone(), busy.clone(), done_tx.clone());
            std::thread::spawn(move || {
                for _ in 0..300 {
                    pool.with(|lent| {
                        assert!(!lent.swap(true, Ordering::SeqCst), "worker lent twice");
                        assert!(busy.fetch_add(1, Ordering::SeqCst) < 2);
                        std::thread::yield_now();
                        busy.fetch_sub(1, Ordering::SeqCst);
                        lent.store(false, Ordering::SeqCst);
                    });
                }
                done_tx.send(()).unwrap();
            });
        }
        for _ in 0..8 {
            done_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("every thread gets workers until it is done");
        }
        let idle = pool.idle.lock().unwrap();
        assert_eq!((idle.workers.len(), idle.waiting), (2, 0));
    }

    #[test]
    fn side_pool_requests_leave_the_main_workers_free() {
        // `/slow` requests hold their worker until the test lets them go. The main pool has one
        // worker and the side pool two: with both side workers taken and a third slow request
        // queued, a fast request is still answered. Were the slow requests on the main pool,
        // the second could never start and the wait below would fail.
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let handler = move |_: &mut (), req: &Req| -> Resp {
            if req.path == "/slow" {
                let _ = entered_tx.send(());
                let _ = release_rx.lock().map(|r| r.recv());
            }
            Resp::json(200, &serde_json::json!({ "path": req.path }))
        };
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = Server::new(
            listener,
            vec![()],
            Arc::new(handler),
            ServerConfig::default(),
        )
        .unwrap()
        .with_side_pool(vec![(), ()], |req| req.path == "/slow");
        let addr = server.local_addr();
        let stop = server.stop_handle();
        let running = std::thread::spawn(move || server.run());

        let request = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .unwrap();
            s
        };
        let slow: Vec<TcpStream> = (0..3).map(|_| request("/slow")).collect();
        for _ in 0..2 {
            entered_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("two slow requests run at once on the side pool");
        }
        let fast = request("/fast");
        assert!(
            status_line(&fast).starts_with("HTTP/1.1 200"),
            "the fast request waited"
        );
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        for s in &slow {
            assert!(status_line(s).starts_with("HTTP/1.1 200"));
        }
        stop.stop();
        running.join().unwrap();
    }
}
