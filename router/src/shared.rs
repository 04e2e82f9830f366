//! What every session shares: the configuration, the catalog, the cancel
//! registry, the limits, the metrics, and the cap on client connections.

use crate::cancel::CancelRegistry;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the listener tells sessions at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Finish what is running, then close.
    Drain,
    /// The grace period is over: close now.
    Now,
}

/// What every session shares.
pub struct Shared {
    /// The current configuration (replaced by a reload).
    cfg: RwLock<Arc<Config>>,
    pub catalog: Arc<Catalog>,
    pub cancels: Arc<CancelRegistry>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<Metrics>,
    pub(crate) draining: AtomicBool,
    /// One permit per client connection (`max_client_connections`),
    /// handshakes included.
    clients: Arc<Semaphore>,
    max_clients: usize,
}

impl Shared {
    pub fn new(cfg: Arc<Config>) -> Arc<Shared> {
        let catalog = Catalog::new(&cfg.catalog, &cfg.tls);
        let metrics = Arc::new(Metrics::new());
        let limits = Arc::new(Limits::new(metrics.clone()));
        catalog.start(metrics.catalog_queries.clone());
        // A catalog change reaches live sessions' limits within a round trip.
        let (cat, lim) = (Arc::downgrade(&catalog), Arc::downgrade(&limits));
        catalog.set_listener(Box::new(move |id| {
            let (cat, lim, id) = (cat.clone(), lim.clone(), id.to_owned());
            tokio::spawn(async move {
                if let (Some(cat), Some(lim)) = (cat.upgrade(), lim.upgrade()) {
                    lim.refresh(&cat, &id).await;
                }
            });
        }));
        Arc::new(Shared {
            catalog,
            cancels: CancelRegistry::new(),
            limits,
            metrics,
            clients: Arc::new(Semaphore::new(cfg.max_client_connections)),
            max_clients: cfg.max_client_connections,
            cfg: RwLock::new(cfg),
            draining: AtomicBool::new(false),
        })
    }

    /// The configuration now; a session keeps the one it started with.
    pub fn config(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Apply a reloaded configuration. Settings that only a restart can
    /// change keep their running values; returns their names.
    pub fn reload(&self, mut new: Config) -> Vec<&'static str> {
        let mut cfg = self.cfg.write().unwrap_or_else(|p| p.into_inner());
        let kept = new.keep_restart_only(&cfg);
        *cfg = Arc::new(new);
        kept
    }

    /// A client connection's permit, or None when `max_client_connections`
    /// are open.
    pub fn admit_client(&self) -> Option<OwnedSemaphorePermit> {
        self.clients.clone().try_acquire_owned().ok()
    }

    /// Client connections open now (handshakes included).
    pub fn open_clients(&self) -> usize {
        self.max_clients - self.clients.available_permits()
    }

    /// The `max_client_connections` the router started with.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
