//! What every session shares: the configuration, the catalog, the cancel
//! registry, the limits, the metrics, the pools, the router's own check of
//! clients, and the caps on client connections and on backends held by
//! clients still authenticating. With `server`, the composition root: it
//! builds each part and hands the others what they need of it (the
//! checker its catalog and metrics, the pools' maintenance the `Router`
//! view); no part below the session reaches back into it.

use crate::auth::verify::Checker;
use crate::cancel::CancelRegistry;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::SessionError;
use crate::limits::Limits;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What every session shares.
pub struct Shared {
    /// The current configuration (replaced by a reload).
    cfg: RwLock<Arc<Config>>,
    pub catalog: Arc<Catalog>,
    pub cancels: Arc<CancelRegistry>,
    pub limits: Arc<Limits>,
    /// The fleet's connection counts (`[fleet]`; off by default).
    pub fleet: crate::fleet::Fleet,
    pub metrics: Arc<Metrics>,
    /// Backend pools (`[pool]`).
    pub pools: Arc<crate::pool::Pools>,
    /// Per-tenant PAUSE / RESUME (admin API).
    pub pauses: crate::pause::Pauses,
    pub(crate) draining: AtomicBool,
    /// Every session's interrupt flag: the listener raises drain and stop.
    pub interrupts: crate::interrupt::Interrupts,
    /// One permit per client connection (`max_client_connections`),
    /// handshakes included.
    clients: Arc<Semaphore>,
    max_clients: usize,
    /// Backends held by clients that have not finished authenticating
    /// (relayed authentication): `auth.max_unauthenticated_backends` in
    /// all, `auth.max_unauthenticated_per_tenant` per tenant.
    unauthenticated: Unauthenticated,
    /// What the router's own check of a client reads (the catalog, the
    /// metrics, the mock verifiers).
    pub checker: Checker,
}

impl Shared {
    pub fn new(cfg: Arc<Config>) -> Arc<Shared> {
        let catalog = Catalog::new(&cfg.fixed.catalog, &cfg.tls);
        let metrics = Arc::new(Metrics::new());
        metrics.configure(&cfg.metrics);
        metrics.configure_upstreams(&cfg.upstreams);
        let limits = Arc::new(Limits::new(metrics.clone()));
        limits.set_routers(cfg.fleet.routers);
        let fleet = if cfg.fixed.fleet_shared_connection_limits {
            crate::fleet::Fleet::start(&cfg.fixed.catalog, &cfg.tls)
        } else {
            crate::fleet::Fleet::off()
        };
        catalog.start(crate::catalog::CatalogMetrics {
            queries: metrics.catalog_queries.clone(),
            cache_hits: metrics.catalog_cache_hits.clone(),
            notifications: metrics.catalog_notifications.clone(),
            rereads: metrics.catalog_rereads.clone(),
        });
        // A catalog change reaches live sessions' limits within a round
        // trip of its notification.
        catalog.set_holder(Arc::new(Held(Arc::downgrade(&limits))));
        let checker = Checker::new(
            catalog.clone(),
            metrics.clone(),
            mock_secret(cfg.signing_key.as_ref()),
            std::time::Duration::from_millis(cfg.fixed.catalog.negative_ttl_ms.max(1)),
        );
        let shared = Arc::new(Shared {
            pools: crate::pool::Pools::new(metrics.clone()),
            pauses: crate::pause::Pauses::default(),
            catalog,
            cancels: CancelRegistry::new(),
            limits,
            fleet,
            metrics,
            interrupts: crate::interrupt::Interrupts::default(),
            clients: Arc::new(Semaphore::new(cfg.fixed.max_client_connections)),
            max_clients: cfg.fixed.max_client_connections,
            unauthenticated: Unauthenticated::new(
                cfg.fixed.max_unauthenticated_backends,
                cfg.fixed.unauthenticated_per_tenant(),
            ),
            checker,
            cfg: RwLock::new(cfg),
            draining: AtomicBool::new(false),
        });
        let router: Weak<dyn crate::pool::Router> = Arc::downgrade(&shared) as _;
        shared.pools.start_maintenance(router);
        shared.limits.start_sweep(crate::pool::release_free_memory);
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
        self.metrics.configure(&new.metrics);
        self.limits.set_routers(new.fleet.routers);
        self.metrics.configure_upstreams(&new.upstreams);
        // Pools on an upstream the new configuration removed (or moved to
        // another address) drain: new clients of its tenants are refused
        // before a backend is opened (`SessionError::UnknownUpstream`).
        self.pools.drain_gone(&new.upstreams);
        *cfg = Arc::new(new);
        kept
    }

    /// A client connection's permit, or None when `max_client_connections`
    /// are open.
    pub fn admit_client(&self) -> Option<OwnedSemaphorePermit> {
        self.clients.clone().try_acquire_owned().ok()
    }

    /// Leave to open a backend before the client authenticated, for a
    /// tenant's client (`tenant` None: a bypass user), held until the
    /// guard drops. Refused (53300) when `auth.max_unauthenticated_backends`
    /// are held, or the tenant's `auth.max_unauthenticated_per_tenant`.
    pub fn admit_unauthenticated(
        &self,
        tenant: Option<&str>,
    ) -> Result<UnauthenticatedGuard, SessionError> {
        self.unauthenticated.admit(tenant)
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

/// What the pools' maintenance reads of the router each second.
impl crate::pool::Router for Shared {
    fn config(&self) -> Arc<Config> {
        Shared::config(self)
    }

    fn open_clients(&self) -> usize {
        Shared::open_clients(self)
    }
}

/// The tenants the router holds counters for, as the catalog sees them:
/// re-read on change, their new rows published to live sessions (a tenant
/// dropped from the catalog: counters removed, sessions closed).
struct Held(std::sync::Weak<Limits>);

impl crate::catalog::Holder for Held {
    /// Counters, or a login in progress (a tenant dropped meanwhile must
    /// be re-read, so that the login is kicked).
    fn holds(&self, id: &str) -> bool {
        self.0
            .upgrade()
            .is_some_and(|l| l.get(id).is_some() || l.logins.contains(id))
    }

    fn held(&self) -> Vec<String> {
        self.0.upgrade().map(|l| l.ids()).unwrap_or_default()
    }

    fn reread(&self, id: &str, row: crate::catalog::Entry) {
        let Some(limits) = self.0.upgrade() else {
            return;
        };
        match row {
            Some(row) => {
                if let Some(c) = limits.get(id) {
                    c.publish(row);
                }
            }
            None => limits.forget(id),
        }
    }
}

/// Backends held by clients still authenticating, in all (a semaphore)
/// and per tenant (counts; a tenant is in the map only while it holds
/// one, so the map never has more entries than the cap has permits).
/// Bypass users together count as one tenant (`None`).
struct Unauthenticated {
    all: Arc<Semaphore>,
    max: usize,
    per_tenant: usize,
    held: Arc<Mutex<HashMap<Option<String>, usize>>>,
}

/// One client's leave to hold a backend while it authenticates: a permit
/// of the cap and a place in its tenant's share, both freed on drop.
pub struct UnauthenticatedGuard {
    _permit: OwnedSemaphorePermit,
    tenant: Option<String>,
    held: Arc<Mutex<HashMap<Option<String>, usize>>>,
}

impl Unauthenticated {
    fn new(max: usize, per_tenant: usize) -> Self {
        Unauthenticated {
            all: Arc::new(Semaphore::new(max)),
            max,
            per_tenant,
            held: Arc::default(),
        }
    }

    fn admit(&self, tenant: Option<&str>) -> Result<UnauthenticatedGuard, SessionError> {
        let permit = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| SessionError::TooManyUnauthenticated(self.max))?;
        let key = tenant.map(str::to_owned);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.get_mut(&key) {
            Some(n) if *n >= self.per_tenant => {
                return Err(SessionError::TooManyUnauthenticatedFor {
                    who: match tenant {
                        Some(t) => format!("tenant \"{t}\""),
                        None => "bypass users".into(),
                    },
                    limit: self.per_tenant,
                });
            }
            Some(n) => *n += 1,
            None => {
                held.insert(key.clone(), 1);
            }
        }
        drop(held);
        Ok(UnauthenticatedGuard {
            _permit: permit,
            tenant: key,
            held: self.held.clone(),
        })
    }
}

impl Drop for UnauthenticatedGuard {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.tenant) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.tenant);
            }
        }
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
    crate::random::bytes::<32>().unwrap_or_else(|_| {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(r: Result<UnauthenticatedGuard, SessionError>) -> String {
        match r {
            Ok(_) => panic!("admitted"),
            Err(e) => {
                assert_eq!(e.sqlstate(), Some("53300"));
                e.to_string()
            }
        }
    }

    #[test]
    fn one_tenant_fills_its_share_not_the_cap() {
        let u = Unauthenticated::new(5, 2);
        let a: Vec<_> = (0..2).map(|_| u.admit(Some("acme")).unwrap()).collect();
        assert_eq!(
            refusal(u.admit(Some("acme"))),
            "too many clients are authenticating for tenant \"acme\": \
             tenant-router's auth.max_unauthenticated_per_tenant is 2"
        );
        // The refusal took no permit: others still get the rest of the cap.
        let b: Vec<_> = (0..2).map(|_| u.admit(Some("globex")).unwrap()).collect();
        let bypass = u.admit(None).unwrap();
        assert_eq!(
            refusal(u.admit(Some("initech"))),
            "too many clients are authenticating: \
             tenant-router's auth.max_unauthenticated_backends is 5"
        );
        drop(bypass);
        let c = u.admit(Some("initech")).unwrap();
        // A freed place goes back to its tenant.
        drop(a);
        let again = u.admit(Some("acme")).unwrap();
        drop((b, c, again));
        assert!(
            u.held.lock().unwrap().is_empty(),
            "no entry outlives its logins"
        );
        assert_eq!(u.all.available_permits(), 5);
    }

    #[test]
    fn bypass_users_share_one_place() {
        let u = Unauthenticated::new(4, 1);
        let first = u.admit(None).unwrap();
        assert!(refusal(u.admit(None)).contains("for bypass users"));
        let tenant = u.admit(Some("acme")).unwrap();
        drop((first, tenant));
        assert!(u.held.lock().unwrap().is_empty());
    }
}
