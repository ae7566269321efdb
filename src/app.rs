//! `App`: the state every handler shares, and `Worker`: what one worker owns.

use std::sync::{Arc, PoisonError, RwLock};

use crate::config::{Config, Settings};
use crate::jwt::KeyRing;
use crate::store::Store;

/// Shared, read-mostly state: the configuration, the key ring and the settings. The key ring
/// and settings are replaced whole when the database changes (a rotation by the CLI, say), so
/// a request works with one consistent snapshot.
pub struct App {
    pub config: Config,
    keys: RwLock<Arc<KeyRing>>,
    settings: RwLock<Arc<Settings>>,
}

impl App {
    /// Builds the shared state.
    pub fn new(config: Config, keys: KeyRing, settings: Settings) -> App {
        App {
            config,
            keys: RwLock::new(Arc::new(keys)),
            settings: RwLock::new(Arc::new(settings)),
        }
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
