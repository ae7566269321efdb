//! The server: the accept loop and the worker pool (here), the start-up sequence of
//! `latchkey serve` ([`start`]) and the background thread that keeps a running server in step
//! with the database ([`maintenance`]).
//!
//! Each accepted connection gets a small thread that does its I/O: it reads requests with the
//! deadlines of [`Limits`] and writes responses. To run a request it borrows one of a fixed
//! number of workers — each owning its per-worker state, in latchkey one SQLite connection —
//! so at most `workers` requests execute at once however many connections are open, and a
//! keep-alive connection never holds a worker while it is idle (a pool that gives each
//! connection a thread of its own for its whole life leaves connections that arrive together
//! unanswered behind idle keep-alive ones). Beyond `max_connections` open connections, new ones get a 503.
//!
//! One peer cannot take every slot: beyond `max_connections_per_address` open connections from
//! one address (an IPv6 peer counts by its /64, the block one host or household is given), its
//! new ones get the same 503. Addresses in `uncapped` — the trusted reverse proxies, which carry
//! many clients over their connections and whose real clients cannot be known at accept — are
//! held only to the global cap. The counts are exact: a connection's slot is taken on the accept
//! thread and given back by a guard however its thread ends, and an address leaves the table
//! when its count reaches zero, so the table holds at most one entry per open connection.
//!
//! Stopping: [`StopHandle::stop`] sets a flag and wakes the accept loop; idle connections see
//! the flag within 200 ms and close; requests in flight finish and their responses carry
//! `Connection: close`; [`Server::run`] returns when every connection is gone or the drain
//! deadline passes.

mod fdlimit;
pub mod maintenance;
pub mod start;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::http::client_ip::Cidr;
use crate::http::conn::{Conn, Limits, Next};
use crate::http::rejection::PROBLEM_JSON;
use crate::http::tls::{Stream, Tls};
use crate::http::{Method, Rejection, Req, Resp};
use crate::oauth::error::ErrorCode;

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
    /// Open connections from one address (IPv6: one /64) beyond this get a 503.
    pub max_connections_per_address: usize,
    /// Peers not held to `max_connections_per_address` (the trusted proxies).
    pub uncapped: Vec<Cidr>,
    /// Serve TLS with this certificate (reloadable) instead of plain HTTP.
    pub tls: Option<Arc<Tls>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            limits: Limits::default(),
            max_connections: crate::config::Setting::HttpMaxConnections.default_count(),
            max_connections_per_address: crate::config::Setting::HttpMaxConnectionsPerAddress
                .default_count(),
            uncapped: Vec::new(),
            tls: None,
        }
    }
}

/// What a server counts about its connections (shown on `/metrics`).
#[derive(Default)]
pub struct ConnStats {
    open: AtomicUsize,
    refused_max: AtomicU64,
    refused_per_address: AtomicU64,
    /// Open connections by address (IPv6 by /64), of peers held to the per-address cap.
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnStats {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections refused so far: (over `max_connections`, over the per-address cap).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.refused_max.load(Ordering::Relaxed),
            self.refused_per_address.load(Ordering::Relaxed),
        )
    }

    /// Addresses with open connections that count against the per-address cap.
    pub fn capped_addresses(&self) -> usize {
        self.by_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The key a peer is counted under: an IPv4 address (IPv4-mapped IPv6 included) as itself, an
/// IPv6 address by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
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
    stats: Arc<ConnStats>,
}

/// One open connection's slot: given back (the open count, and its address's count, which
/// leaves the table at zero) when the connection thread ends, however it ends — or when the
/// thread could not be started.
struct Slot {
    stats: Arc<ConnStats>,
    address: Option<IpAddr>,
}

impl Slot {
    /// Takes a slot for a connection from `peer`, or says which cap refuses it.
    fn take(stats: &Arc<ConnStats>, peer: IpAddr, config: &ServerConfig) -> Result<Slot, Refusal> {
        if stats.open.load(Ordering::SeqCst) >= config.max_connections {
            return Err(Refusal::Max);
        }
        let address = if config.uncapped.iter().any(|c| c.contains(peer)) {
            None
        } else {
            let key = address_key(peer);
            let mut by_address = stats
                .by_address
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let n = by_address.get(&key).copied().unwrap_or(0);
            if n >= config.max_connections_per_address {
                return Err(Refusal::PerAddress);
            }
            by_address.insert(key, n + 1);
            Some(key)
        };
        stats.open.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            stats: Arc::clone(stats),
            address,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(key) = self.address {
            let mut by_address = self
                .stats
                .by_address
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = by_address.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    by_address.remove(&key);
                }
            }
        }
        self.stats.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a new connection was refused.
enum Refusal {
    Max,
    PerAddress,
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
            stats: Arc::new(ConnStats::default()),
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
        self.stats.open()
    }

    /// The connection counts, shared (they stay current while the server runs).
    pub fn stats(&self) -> Arc<ConnStats> {
        Arc::clone(&self.stats)
    }

    /// Accepts and serves until stopped, then waits (boundedly) for open connections to
    /// finish. Returns the number of connections still open when it gave up waiting.
    pub fn run(self) -> usize {
        let mut accept_warned: Option<Instant> = None;
        loop {
            let accepted = self.listener.accept();
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: said once a minute, and backed off briefly rather
                    // than spun on; the client waits in the kernel's queue meanwhile.
                    if accept_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                        log::warn!("cannot accept connections: {e}");
                        accept_warned = Some(Instant::now());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let accepted_at = Instant::now();
            let slot = match Slot::take(&self.stats, peer.ip(), &self.config) {
                Ok(slot) => slot,
                Err(why) => {
                    let counter = match why {
                        Refusal::Max => &self.stats.refused_max,
                        Refusal::PerAddress => {
                            log::debug!("connection from {peer} over the per-address cap");
                            &self.stats.refused_per_address
                        }
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    refuse(stream);
                    continue;
                }
            };
            let pools = Arc::clone(&self.pools);
            let handler = Arc::clone(&self.handler);
            let stop = Arc::clone(&self.stop);
            let limits = self.config.limits.clone();
            let tls = self.config.tls.clone();
            let spawned = std::thread::Builder::new()
                .name("conn".into())
                .stack_size(CONN_STACK)
                .spawn(move || {
                    let _slot = slot;
                    serve_connection(
                        stream,
                        peer,
                        accepted_at,
                        tls.as_deref(),
                        &pools,
                        &*handler,
                        &limits,
                        &stop,
                    );
                });
            if let Err(e) = spawned {
                log::error!("cannot start a connection thread: {e}");
            }
        }
        drop(self.listener);
        let deadline = Instant::now() + DRAIN;
        while self.stats.open() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stats.open()
    }
}

/// Answers a connection over the cap with 503 and closes it.
fn refuse(mut stream: TcpStream) {
    let why = Rejection::TooManyConnections;
    let body = why.body();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {PROBLEM_JSON}\r\nRetry-After: 1\r\n\
         Cache-Control: no-store\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        why.status(),
        why.title(),
        body.len()
    );
    let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Drain what the client already sent, so closing does not reset the connection before it
    // reads the 503.
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site, each argument a different part of the server"
)]
fn serve_connection<W>(
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    tls: Option<&Tls>,
    pools: &Pools<W>,
    handler: &Handler<W>,
    limits: &Limits,
    stop: &AtomicBool,
) {
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
    let Ok(mut conn) = Conn::new(stream, peer, accepted) else {
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
                        ErrorCode::ServerError.json("internal error")
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
    fn slots_count_per_address_exactly_and_forget_addresses_at_zero() {
        let stats = Arc::new(ConnStats::default());
        let config = ServerConfig {
            max_connections: 10,
            max_connections_per_address: 2,
            uncapped: vec![Cidr::parse("192.0.2.1/32").unwrap()],
            ..ServerConfig::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a1 = Slot::take(&stats, ip("10.0.0.1"), &config).ok().unwrap();
        let a2 = Slot::take(&stats, ip("::ffff:10.0.0.1"), &config)
            .ok()
            .unwrap();
        assert!(
            matches!(
                Slot::take(&stats, ip("10.0.0.1"), &config),
                Err(Refusal::PerAddress)
            ),
            "IPv4-mapped IPv6 counts as the IPv4 address"
        );
        let b = Slot::take(&stats, ip("10.0.0.2"), &config).ok().unwrap();
        // An IPv6 host counts by its /64.
        let v1 = Slot::take(&stats, ip("2001:db8::1"), &config).ok().unwrap();
        let v2 = Slot::take(&stats, ip("2001:db8::2:3"), &config)
            .ok()
            .unwrap();
        assert!(matches!(
            Slot::take(&stats, ip("2001:db8::ffff"), &config),
            Err(Refusal::PerAddress)
        ));
        // The trusted proxy is held to the global cap only.
        let proxy: Vec<Slot> = (0..5)
            .map(|_| Slot::take(&stats, ip("192.0.2.1"), &config).ok().unwrap())
            .collect();
        assert_eq!(stats.open(), 10);
        assert!(matches!(
            Slot::take(&stats, ip("10.0.0.3"), &config),
            Err(Refusal::Max)
        ));
        assert_eq!(stats.capped_addresses(), 3);
        drop(a1);
        assert_eq!(stats.capped_addresses(), 3);
        drop((a2, b, v1, v2, proxy));
        assert_eq!((stats.open(), stats.capped_addresses()), (0, 0));
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
