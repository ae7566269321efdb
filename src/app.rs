//! `App`: the state every handler shares, and `Worker`: what one worker owns.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use crate::accounts::throttle::Throttle;
use crate::apikeys::KeyIndex;
use crate::apikeys::ratelimit::RateLimiter;
use crate::apikeys::usage::Usage;
use crate::audit::AuditQueue;
use crate::config::{Config, Settings};
use crate::forward::cache::SessionCache;
use crate::forward::rules::RuleSet;
use crate::jwt::KeyRing;
use crate::oauth::revocations::Revocations;
use crate::oauth::verified::VerifiedTokens;
use crate::store::{Client, Store, StoreError};

/// Free failed logins per account before locks start, and per client address (a household
/// behind one NAT shares an address).
pub(crate) const ACCOUNT_FREE_FAILURES: u32 = 5;
const ADDRESS_FREE_FAILURES: u32 = 20;
/// Longest lock, in seconds.
const MAX_LOCK: i64 = 900;

/// Shared, read-mostly state: the configuration, the key ring and the settings. The key ring
/// and settings are replaced whole when the database changes (a rotation by the CLI, say), so
/// a request works with one consistent snapshot.
pub struct App {
    pub config: Config,
    keys: RwLock<Arc<KeyRing>>,
    settings: RwLock<Arc<Settings>>,
    csrf_key: Vec<u8>,
    account_throttle: Arc<Throttle>,
    address_throttle: Arc<Throttle>,
    api_keys: RwLock<Arc<KeyIndex>>,
    rate_limiter: RateLimiter,
    ceremony_limiter: RateLimiter,
    usage: Usage,
    rules: RwLock<Arc<RuleSet>>,
    forward_sessions: SessionCache,
    audit: AuditQueue,
    verified_tokens: VerifiedTokens,
    revocations: Revocations,
    clients: RwLock<Arc<HashMap<String, Arc<Client>>>>,
    discovery: OnceLock<Vec<u8>>,
}

impl App {
    /// Builds the shared state. `csrf_key` is the server's CSRF MAC key (from the database).
    pub fn new(config: Config, keys: KeyRing, settings: Settings, csrf_key: Vec<u8>) -> App {
        App {
            config,
            keys: RwLock::new(Arc::new(keys)),
            settings: RwLock::new(Arc::new(settings)),
            csrf_key,
            account_throttle: Arc::new(Throttle::new(ACCOUNT_FREE_FAILURES, MAX_LOCK)),
            address_throttle: Arc::new(Throttle::new(ADDRESS_FREE_FAILURES, MAX_LOCK)),
            api_keys: RwLock::new(Arc::new(KeyIndex::default())),
            rate_limiter: RateLimiter::default(),
            ceremony_limiter: RateLimiter::default(),
            usage: Usage::default(),
            rules: RwLock::new(Arc::new(RuleSet::default())),
            forward_sessions: SessionCache::default(),
            audit: AuditQueue::default(),
            verified_tokens: VerifiedTokens::default(),
            revocations: Revocations::default(),
            clients: RwLock::new(Arc::new(HashMap::new())),
            discovery: OnceLock::new(),
        }
    }

    /// The serialised discovery document of this server's issuer, built once by
    /// [`crate::oidc::discovery`]. It lives here, beside the issuer it depends on, so two servers
    /// in one process never share one.
    pub fn discovery_cache(&self) -> &OnceLock<Vec<u8>> {
        &self.discovery
    }

    /// The revoked access tokens.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The registered client with this id as of the last reload (see [`Worker::client`]).
    pub fn indexed_client(&self, client_id: &str) -> Option<Arc<Client>> {
        self.clients
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(client_id)
            .map(Arc::clone)
    }

    /// Replaces the client index.
    pub fn set_clients(&self, clients: Vec<Client>) {
        let index = clients
            .into_iter()
            .map(|c| (c.client_id.clone(), Arc::new(c)))
            .collect();
        *self.clients.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(index);
    }

    /// Access tokens whose signature was already checked.
    pub fn verified_tokens(&self) -> &VerifiedTokens {
        &self.verified_tokens
    }

    /// Audit events waiting to be written.
    pub fn audit(&self) -> &AuditQueue {
        &self.audit
    }

    /// The current forward-auth rules.
    pub fn rules(&self) -> Arc<RuleSet> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the rules.
    pub fn set_rules(&self, rules: RuleSet) {
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rules);
    }

    /// Cached forward-auth sessions.
    pub fn forward_sessions(&self) -> &SessionCache {
        &self.forward_sessions
    }

    /// The current API-key index.
    pub fn api_keys(&self) -> Arc<KeyIndex> {
        Arc::clone(&self.api_keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the API-key index.
    pub fn set_api_keys(&self, index: KeyIndex) {
        *self
            .api_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(index);
    }

    /// Marks the key of digest `hash` revoked in the index now (see [`KeyIndex::with_revoked`]).
    /// A reload that read the database just before the revocation was written may still
    /// replace this index with its older copy; the revision the revocation bumped makes the
    /// maintenance thread's next round (within a quarter of a second) load it again.
    pub fn revoke_indexed_api_key(&self, hash: &[u8; 32]) {
        let mut index = self
            .api_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *index = Arc::new(index.with_revoked(hash));
    }

    /// The per-key rate limiter.
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.rate_limiter
    }

    /// WebAuthn options requests per client address (see `accounts::passkey`).
    pub fn ceremony_limiter(&self) -> &RateLimiter {
        &self.ceremony_limiter
    }

    /// Usage counted since the last flush.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// True when cookies must be `Secure` (and may use the `__Host-` prefix): the issuer is
    /// https.
    pub fn secure_cookies(&self) -> bool {
        self.config.issuer.starts_with("https://")
    }

    /// The CSRF MAC key.
    pub fn csrf_key(&self) -> &[u8] {
        &self.csrf_key
    }

    /// The login throttles: per account, per client address.
    pub fn throttles(&self) -> (&Throttle, &Throttle) {
        (&self.account_throttle, &self.address_throttle)
    }

    /// Shared handles to the login throttles (per account, per address), for `/metrics`.
    pub fn throttle_handles(&self) -> (Arc<Throttle>, Arc<Throttle>) {
        (
            Arc::clone(&self.account_throttle),
            Arc::clone(&self.address_throttle),
        )
    }

    /// The current key ring.
    pub fn keys(&self) -> Arc<KeyRing> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the key ring.
    pub fn set_keys(&self, keys: KeyRing) {
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }

    /// Replaces the settings.
    pub fn set_settings(&self, settings: Settings) {
        *self
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
    }
}

/// One worker: the shared state and this worker's own database connection.
pub struct Worker {
    pub app: Arc<App>,
    pub store: Store,
}

impl Worker {
    /// The client with this id, for a request: from the in-memory index, which the maintenance
    /// thread reloads within a quarter of a second of a change by the CLI, so that a token
    /// request or an introspection reads no database row for its client. A client the index
    /// does not have yet (added a moment ago) is read from the database, so a new client works
    /// at once.
    pub fn client(&self, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        self.client_where(client_id, |_| true)
    }

    /// As [`Worker::client`], but an indexed client that fails `accept` is read again from the
    /// database (its secret may have just been rotated, say), and that answer is returned
    /// whatever it is.
    pub fn client_where(
        &self,
        client_id: &str,
        accept: impl Fn(&Client) -> bool,
    ) -> Result<Option<Arc<Client>>, StoreError> {
        match self.app.indexed_client(client_id) {
            Some(c) if accept(&c) => Ok(Some(c)),
            _ => self.store.client(client_id),
        }
    }
}

/// Workers for handler tests without sockets: an in-memory store, the issuer
/// `https://auth.test`, loopback as the trusted proxy.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::{App, Worker};
    use crate::config::{Config, Settings};
    use crate::jwt::{Alg, SigningKey};
    use crate::store::Store;

    /// The issuer of test workers.
    pub const ISSUER: &str = "https://auth.test";

    /// A worker whose store has no signing keys (enough for sign-in, not for tokens).
    pub fn worker_without_keys() -> Worker {
        worker_on(Store::open_in_memory().unwrap(), ISSUER)
    }

    /// A worker whose store has an active ES256 key, so access tokens (and ES256 ID tokens)
    /// can be signed. There is no RS256 key: generating one takes seconds.
    pub fn worker(now: i64) -> Worker {
        let mut store = Store::open_in_memory().unwrap();
        let (pkcs8, key) = SigningKey::generate(Alg::Es256, now).unwrap();
        assert!(
            store
                .insert_first_key(&key.kid, Alg::Es256.as_str(), &pkcs8, now)
                .unwrap()
        );
        worker_on(store, ISSUER)
    }

    /// A worker over `store` for `issuer`, with the clients the store holds indexed.
    pub fn worker_on(store: Store, issuer: &str) -> Worker {
        let config = Config {
            data_dir: std::path::PathBuf::from("/nonexistent"),
            listen: "127.0.0.1:0".parse().unwrap(),
            issuer: issuer.into(),
            workers: 1,
            cookie_domain: None,
            trusted_proxies: crate::http::client_ip::default_trusted(),
        };
        let app = App::new(
            config,
            crate::ops::keys::load_ring(&store).unwrap(),
            Settings::load(&store).unwrap(),
            vec![0; 32],
        );
        app.set_clients(store.clients().unwrap());
        Worker {
            app: Arc::new(app),
            store,
        }
    }
}
