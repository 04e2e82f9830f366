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

/// What every session shares.
pub struct Shared {
    /// The current configuration (replaced by a reload).
    cfg: RwLock<Arc<Config>>,
    pub catalog: Arc<Catalog>,
    pub cancels: Arc<CancelRegistry>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<Metrics>,
    /// Backend pools (`[pool]`).
    pub pools: Arc<crate::pool::Pools>,
    pub(crate) draining: AtomicBool,
    /// Every session's interrupt flag: the listener raises drain and stop.
    pub interrupts: crate::interrupt::Interrupts,
    /// One permit per client connection (`max_client_connections`),
    /// handshakes included.
    clients: Arc<Semaphore>,
    max_clients: usize,
    /// One permit per backend held by a client that has not finished
    /// authenticating (relayed authentication; `auth.max_unauthenticated_backends`).
    unauthenticated: Arc<Semaphore>,
    max_unauthenticated: usize,
    /// Secret of mock SCRAM salts, derived from the context signing key:
    /// an unknown name sees the same salt on every attempt, after a
    /// restart, and from every router that shares the key (as PostgreSQL
    /// keeps its mock salts across restarts).
    pub mock_secret: [u8; 32],
    /// What mock exchanges for a login role look like (auth::verify).
    pub mock_roles: moka::future::Cache<String, crate::auth::verify::MockShape>,
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
        let shared = Arc::new(Shared {
            pools: crate::pool::Pools::new(metrics.clone()),
            catalog,
            cancels: CancelRegistry::new(),
            limits,
            metrics,
            interrupts: crate::interrupt::Interrupts::default(),
            clients: Arc::new(Semaphore::new(cfg.max_client_connections)),
            max_clients: cfg.max_client_connections,
            unauthenticated: Arc::new(Semaphore::new(cfg.auth.max_unauthenticated_backends)),
            max_unauthenticated: cfg.auth.max_unauthenticated_backends,
            mock_secret: mock_secret(cfg.signing_key.as_ref()),
            mock_roles: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(std::time::Duration::from_millis(
                    cfg.catalog.negative_ttl_ms.max(1),
                ))
                .build(),
            cfg: RwLock::new(cfg),
            draining: AtomicBool::new(false),
        });
        shared.pools.start_maintenance(Arc::downgrade(&shared));
        shared
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

    /// A permit to open a backend before the client authenticated, or
    /// None when `auth.max_unauthenticated_backends` are held.
    pub fn admit_unauthenticated(&self) -> Option<OwnedSemaphorePermit> {
        self.unauthenticated.clone().try_acquire_owned().ok()
    }

    /// The `auth.max_unauthenticated_backends` the router started with.
    pub fn max_unauthenticated(&self) -> usize {
        self.max_unauthenticated
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

/// SHA-256 of a label and the signing key's secret bytes (a one-way
/// function of the key: the mock secret tells nothing about it). Without a
/// key (never in a validated config), 32 bytes from the OS CSPRNG, or a
/// hash of the time and the pid should that fail.
fn mock_secret(key: Option<&pg_tenant_token::SigningKey>) -> [u8; 32] {
    use sha2::Digest;
    if let Some(key) = key {
        let mut h = sha2::Sha256::new();
        h.update(b"pg_tenant router mock salt secret\0");
        h.update(key.to_bytes());
        return h.finalize().into();
    }
    crate::auth::scram::random_bytes::<32>().unwrap_or_else(|_| {
        use sha2::Digest;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut h = sha2::Sha256::new();
        h.update(now.as_nanos().to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        h.finalize().into()
    })
}
