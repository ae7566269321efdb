//! Counters and a latency histogram in the Prometheus text format (version 0.0.4), served on a
//! separate listener (`serve --metrics-listen`), off by default: the numbers describe who uses
//! what and how often, which is nobody's business on the public port.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use crate::accounts::throttle::Throttle;
use crate::server::ConnStats;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Every metric of the process.
pub struct Metrics {
    requests: Mutex<Vec<(&'static str, u16, u64)>>,
    latency: [AtomicU64; BUCKETS.len() + 1],
    latency_sum_us: AtomicU64,
    latency_count: AtomicU64,
    tokens: Mutex<Vec<(&'static str, u64)>>,
    logins: AtomicU64,
    login_failures: AtomicU64,
    login_throttled: AtomicU64,
    api_key_ok: AtomicU64,
    api_key_rejected: AtomicU64,
    rate_limited: AtomicU64,
    db_errors: AtomicU64,
    /// The main server's connection counts, once it runs.
    connections: OnceLock<Arc<ConnStats>>,
    /// The login throttles (per account, per address), once the server runs.
    login_throttles: OnceLock<(Arc<Throttle>, Arc<Throttle>)>,
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);

/// The process's metrics.
pub static METRICS: Metrics = Metrics::new();

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn bump(list: &Mutex<Vec<(&'static str, u64)>>, key: &'static str) {
    let mut l = list.lock().unwrap_or_else(PoisonError::into_inner);
    match l.iter_mut().find(|(k, _)| *k == key) {
        Some((_, n)) => *n += 1,
        None => l.push((key, 1)),
    }
}

impl Metrics {
    /// All counters at zero.
    pub const fn new() -> Metrics {
        Metrics {
            requests: Mutex::new(Vec::new()),
            latency: [ZERO; BUCKETS.len() + 1],
            latency_sum_us: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            tokens: Mutex::new(Vec::new()),
            logins: AtomicU64::new(0),
            login_failures: AtomicU64::new(0),
            login_throttled: AtomicU64::new(0),
            api_key_ok: AtomicU64::new(0),
            api_key_rejected: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            db_errors: AtomicU64::new(0),
            connections: OnceLock::new(),
            login_throttles: OnceLock::new(),
        }
    }

    /// Shows these connection counts (of the public listener). Only the first call counts.
    pub fn watch_connections(&self, stats: Arc<ConnStats>) {
        let _ = self.connections.set(stats);
    }

    /// Shows the sizes of these login throttle tables. Only the first call counts.
    pub fn watch_login_throttles(&self, account: Arc<Throttle>, address: Arc<Throttle>) {
        let _ = self.login_throttles.set((account, address));
    }

    /// Counts a request to `endpoint` (a route path, or "other") answered with `status`.
    pub fn request(&self, endpoint: &'static str, status: u16, took: Duration) {
        {
            let mut r = self.requests.lock().unwrap_or_else(PoisonError::into_inner);
            match r
                .iter_mut()
                .find(|(e, s, _)| *e == endpoint && *s == status)
            {
                Some((_, _, n)) => *n += 1,
                None => r.push((endpoint, status, 1)),
            }
        }
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        if let Some(b) = self.latency.get(bucket) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_sum_us.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.latency_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a token issued by `grant`.
    pub fn token_issued(&self, grant: &'static str) {
        bump(&self.tokens, grant);
    }

    pub fn login(&self) {
        self.logins.fetch_add(1, Ordering::Relaxed);
    }

    pub fn login_failure(&self) {
        self.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn login_throttled(&self) {
        self.login_throttled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn api_key(&self, ok: bool) {
        if ok {
            self.api_key_ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.api_key_rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn db_error(&self) {
        self.db_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP latchkey_http_requests_total Requests by endpoint and status.\n");
        out.push_str("# TYPE latchkey_http_requests_total counter\n");
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        requests.sort_unstable();
        for (e, s, n) in requests {
            let _ = writeln!(
                out,
                "latchkey_http_requests_total{{endpoint=\"{e}\",status=\"{s}\"}} {n}"
            );
        }
        out.push_str("# HELP latchkey_http_request_duration_seconds Time from a parsed request to its response.\n");
        out.push_str("# TYPE latchkey_http_request_duration_seconds histogram\n");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.latency.get(i).map(load).unwrap_or(0);
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        cumulative += self.latency.get(BUCKETS.len()).map(load).unwrap_or(0);
        let _ = writeln!(
            out,
            "latchkey_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(
            out,
            "latchkey_http_request_duration_seconds_sum {}",
            load(&self.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "latchkey_http_request_duration_seconds_count {}",
            load(&self.latency_count)
        );
        out.push_str("# HELP latchkey_tokens_issued_total Access tokens issued, by grant type.\n");
        out.push_str("# TYPE latchkey_tokens_issued_total counter\n");
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tokens.sort_unstable();
        for (g, n) in tokens {
            let _ = writeln!(out, "latchkey_tokens_issued_total{{grant=\"{g}\"}} {n}");
        }
        let simple: [(&str, &str, &AtomicU64); 7] = [
            (
                "latchkey_logins_total",
                "Successful password sign-ins.",
                &self.logins,
            ),
            (
                "latchkey_login_failures_total",
                "Failed password sign-ins.",
                &self.login_failures,
            ),
            (
                "latchkey_login_throttled_total",
                "Sign-ins refused while an account or address was locked.",
                &self.login_throttled,
            ),
            (
                "latchkey_api_key_checks_total",
                "API keys accepted.",
                &self.api_key_ok,
            ),
            (
                "latchkey_api_key_rejections_total",
                "API keys refused (malformed, unknown, expired, revoked, disabled).",
                &self.api_key_rejected,
            ),
            (
                "latchkey_rate_limited_total",
                "Requests refused by an API key's rate limit.",
                &self.rate_limited,
            ),
            (
                "latchkey_database_errors_total",
                "Requests that failed on a database error.",
                &self.db_errors,
            ),
        ];
        for (name, help, v) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                load(v)
            );
        }
        if let Some(c) = self.connections.get() {
            let (max, per_address) = c.refused();
            let _ = writeln!(
                out,
                "# HELP latchkey_open_connections Connections open on the public listener.\n\
                 # TYPE latchkey_open_connections gauge\nlatchkey_open_connections {}\n\
                 # HELP latchkey_connections_refused_total Connections answered 503 at accept, by \
                 the cap that refused them.\n\
                 # TYPE latchkey_connections_refused_total counter\n\
                 latchkey_connections_refused_total{{cap=\"max_connections\"}} {max}\n\
                 latchkey_connections_refused_total{{cap=\"per_address\"}} {per_address}",
                c.open()
            );
        }
        if let Some((account, address)) = self.login_throttles.get() {
            let _ = writeln!(
                out,
                "# HELP latchkey_login_throttle_entries Keys held by a login throttle table (at \
                 most {}).\n# TYPE latchkey_login_throttle_entries gauge\n\
                 latchkey_login_throttle_entries{{table=\"account\"}} {}\n\
                 latchkey_login_throttle_entries{{table=\"address\"}} {}",
                crate::accounts::throttle::MAX_ENTRIES,
                account.len(),
                address.len()
            );
        }
        if let Some(rss) = resident_bytes() {
            let _ = writeln!(
                out,
                "# HELP process_resident_memory_bytes Resident memory of the process (VmRSS).\n\
                 # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
            );
        }
        out
    }
}

/// The process's resident memory in bytes, from `/proc/self/status` (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::new();
        m.request("/token", 200, Duration::from_micros(300));
        m.request("/token", 200, Duration::from_millis(3));
        m.request("/token", 401, Duration::from_secs(10));
        m.token_issued("client_credentials");
        let text = m.render();
        assert!(
            text.contains("latchkey_http_requests_total{endpoint=\"/token\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_http_request_duration_seconds_bucket{le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_http_request_duration_seconds_bucket{le=\"0.005\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_http_request_duration_seconds_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_tokens_issued_total{grant=\"client_credentials\"} 1"),
            "{text}"
        );
        assert!(text.contains("latchkey_logins_total 0"), "{text}");
    }

    #[test]
    fn renders_connections_throttle_sizes_and_resident_memory() {
        let m = Metrics::new();
        let text = m.render();
        assert!(!text.contains("latchkey_open_connections"), "{text}");
        m.watch_connections(Arc::new(ConnStats::default()));
        let (account, address) = (
            Arc::new(Throttle::new(1, 60)),
            Arc::new(Throttle::new(1, 60)),
        );
        account.fail("a", 0);
        address.fail("1.2.3.4", 0);
        address.fail("1.2.3.5", 0);
        m.watch_login_throttles(account, address);
        let text = m.render();
        for line in [
            "latchkey_open_connections 0",
            "latchkey_connections_refused_total{cap=\"max_connections\"} 0",
            "latchkey_connections_refused_total{cap=\"per_address\"} 0",
            "latchkey_login_throttle_entries{table=\"account\"} 1",
            "latchkey_login_throttle_entries{table=\"address\"} 2",
            "# TYPE latchkey_open_connections gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        let rss: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
