//! The router's pools (`Pools`): made once a key's first backend logged
//! in, removed with their metric series when unused, kept by a maintenance
//! task (idle backends expired, `min_idle` prewarmed, freed memory given
//! back); and which pool a tenant's client uses on what terms (`terms_for`).

use super::single::{Discard, Lease, Pool, PoolCounts, PoolError, PoolKey, State};
use super::switch;
use crate::config::Config;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// What the pools' maintenance reads of the router each tick: the
/// configuration now, and how many clients are connected.
pub trait Router: Send + Sync {
    fn config(&self) -> Arc<Config>;
    fn open_clients(&self) -> usize;
}

/// Every pool of the router. A pool is made only once a backend of its
/// key has logged in (so a database or role a client made up never gets
/// one), and removed, with its metric series, once nothing uses it
/// (`evict_unused`).
pub struct Pools {
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    /// Keys whose first backend is being opened: other clients of the key
    /// wait their turn instead of opening backends of their own.
    opening: Mutex<HashMap<PoolKey, Arc<tokio::sync::Mutex<()>>>>,
    metrics: Arc<Metrics>,
}

/// Where a client's backend comes from.
pub enum Place {
    /// Its pool.
    Pool(Arc<Pool>),
    /// No pool yet: the client opens the key's first backend (others of
    /// the key wait while it holds `Opening`), then `Pools::create`.
    First(Opening),
}

/// The turn to open a key's first backend; freed on drop.
pub struct Opening {
    pools: Arc<Pools>,
    key: PoolKey,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Opening {
    pub fn key(&self) -> &PoolKey {
        &self.key
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        self.pools
            .opening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

impl Pools {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Pools> {
        Arc::new(Pools {
            pools: Mutex::new(HashMap::new()),
            opening: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// The pool of `key` if it exists, with `size` and `min_idle` applied
    /// (a catalog change resizes a dedicated pool).
    fn existing(&self, terms: &Terms) -> Option<Arc<Pool>> {
        let pool = self
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&terms.key)
            .cloned()?;
        let mut st = pool.lock();
        if st.size != terms.size || st.min_idle != terms.min_idle || st.cap != terms.cap {
            st.size = terms.size.max(1);
            st.min_idle = terms.min_idle.min(st.size);
            st.cap = terms.cap.clamp(1, st.size);
            st.dispatch();
        }
        drop(st);
        Some(pool)
    }

    /// The pool of `key`, or the turn to open its first backend; waits up
    /// to `wait` while another client has that turn.
    pub async fn place(
        self: &Arc<Self>,
        terms: &Terms,
        tenant: &str,
        wait: Duration,
    ) -> Result<Place, PoolError> {
        let key = &terms.key;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(pool) = self.existing(terms) {
                return Ok(Place::Pool(pool));
            }
            let turn = {
                let mut opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
                match opening.get(key) {
                    Some(turn) => turn.clone(),
                    None => {
                        // Made meanwhile (its Opening is gone first).
                        if let Some(pool) = self.existing(terms) {
                            return Ok(Place::Pool(pool));
                        }
                        let turn = Arc::new(tokio::sync::Mutex::new(()));
                        let Ok(guard) = turn.clone().try_lock_owned() else {
                            continue;
                        };
                        opening.insert(key.clone(), turn);
                        return Ok(Place::First(Opening {
                            pools: self.clone(),
                            key: key.clone(),
                            _turn: guard,
                        }));
                    }
                }
            };
            if tokio::time::timeout_at(deadline, turn.lock())
                .await
                .is_err()
            {
                return Err(PoolError::Timeout {
                    pool: key.label(),
                    tenant: tenant.to_owned(),
                    waited_ms: wait.as_millis() as u64,
                    size: terms.size,
                    share: terms.share,
                });
            }
        }
    }

    /// The pool of `opening`'s key, made now that its first backend
    /// logged in, with that backend's place held by `tenant`.
    pub fn create(&self, opening: Opening, terms: &Terms, tenant: &str) -> Lease {
        let key = opening.key.clone();
        let label = key.label();
        let m = &self.metrics;
        let mut state = State::new(terms.size, terms.min_idle);
        state.cap = terms.cap.clamp(1, state.size);
        state.open = 1;
        state.held.insert(tenant.to_owned(), 1);
        let pool = Arc::new(Pool {
            wait: m.pool_wait.with_label_values(&[&label]),
            reused: m.pool_reused.with_label_values(&[&label]),
            switches: m.pool_switches.with_label_values(&[&label]),
            label,
            upstream: Arc::from(key.address.as_str()),
            target: terms.upstream.clone(),
            key: key.clone(),
            state: Mutex::new(state),
            metrics: self.metrics.clone(),
        });
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, pool.clone());
        drop(opening);
        pool.wait.observe(0.0);
        Lease {
            pool,
            tenant: tenant.to_owned(),
            done: false,
        }
    }

    /// Remove the pools nothing uses: no client or task holds them, no
    /// backend is open, none was used for `idle` (their series go too).
    /// Returns how many went.
    pub fn evict_unused(&self, idle: Duration) -> usize {
        let mut gone = Vec::new();
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, pool| {
                let unused = Arc::strong_count(pool) == 1 && pool.lock().unused_for(idle);
                if unused {
                    gone.push(pool.label.clone());
                }
                !unused
            });
        for label in &gone {
            self.metrics
                .forget_pool(label, &Discard::ALL.map(Discard::label));
            tracing::info!(pool = %label, "pool removed: unused");
        }
        gone.len()
    }

    /// Drain the pools whose upstream `upstreams` no longer has (a reload
    /// removed it or changed its address): out of the registry, no more
    /// checkouts, idle backends closed now, the others as they come back.
    /// Returns how many.
    pub fn drain_gone(&self, upstreams: &crate::config::Upstreams) -> usize {
        let mut gone = Vec::new();
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, pool| {
                let keep = upstreams.has(&key.upstream, &key.address);
                if !keep {
                    gone.push(pool.clone());
                }
                keep
            });
        for pool in &gone {
            let closing = pool.drain();
            tracing::info!(pool = %pool.label, upstream = %pool.key.upstream, idle_closed = closing.len(), "pool drained: its upstream left the configuration");
            for b in closing {
                tokio::spawn(switch::close(b));
            }
        }
        gone.len()
    }

    /// How many pools exist.
    pub fn len(&self) -> usize {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pool now (the lock is not held after).
    fn all(&self) -> Vec<Arc<Pool>> {
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn counts(&self) -> Vec<PoolCounts> {
        let mut out: Vec<PoolCounts> = self.all().iter().map(|p| p.counts()).collect();
        out.sort_by(|a, b| a.pool.cmp(&b.pool));
        out
    }

    /// Set the pool gauges (at each scrape).
    pub fn export(&self) {
        for c in self.counts() {
            let m = &self.metrics;
            m.pool_backends
                .with_label_values(&[&c.pool, "idle"])
                .set(c.idle as i64);
            m.pool_backends
                .with_label_values(&[&c.pool, "active"])
                .set(c.active as i64);
            m.pool_waiting
                .with_label_values(&[&c.pool])
                .set(c.waiting as i64);
        }
    }

    /// Once a second: expire idle backends and prewarm `min_idle`, until
    /// the router goes away.
    pub fn start_maintenance(self: &Arc<Self>, router: Weak<dyn Router>) {
        let pools = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut trim = Trim::default();
            loop {
                tick.tick().await;
                let (Some(pools), Some(router)) = (pools.upgrade(), router.upgrade()) else {
                    return;
                };
                trim.after_clients_left(router.open_clients());
                let cfg = router.config();
                pools.evict_unused(Duration::from_millis(cfg.pool.idle_timeout_ms));
                for pool in pools.all() {
                    for b in pool.expire(&cfg.pool) {
                        tokio::spawn(switch::close(b));
                    }
                    if let Some((n, (login, params))) = pool.prewarm_places() {
                        for _ in 0..n {
                            let (pool, cfg, login, params) =
                                (pool.clone(), cfg.clone(), login.clone(), params.clone());
                            tokio::spawn(async move {
                                let b = switch::open(
                                    &cfg,
                                    &pool.target,
                                    &params,
                                    &login,
                                    &pool.key.role,
                                )
                                .await;
                                if let Err(e) = &b {
                                    tracing::warn!(pool = pool.label(), error = %e, "cannot prewarm a backend");
                                }
                                pool.put_idle(b.ok());
                            });
                        }
                    }
                }
            }
        });
    }
}

/// Memory freed by clients that left goes back to the system: the
/// allocator keeps freed memory for reuse (per thread arena), so after a
/// wave of clients (their statements, buffers) the router would keep its
/// peak. At most every few seconds, once clients have left.
#[derive(Default)]
struct Trim {
    /// Most clients open since the last trim.
    peak: usize,
    last: Option<Instant>,
}

impl Trim {
    const EVERY: Duration = Duration::from_secs(3);

    fn after_clients_left(&mut self, open: usize) {
        self.peak = self.peak.max(open);
        if open >= self.peak || self.last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        release_free_memory();
        self.peak = open;
        self.last = Some(Instant::now());
    }
}

/// Give memory the allocator keeps free back to the system (glibc's
/// `malloc_trim`; nothing elsewhere). Also after a large `/metrics` scrape.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it
    // takes the allocator's own locks and touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Which pool a verified client of `tenant` uses and on what terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    pub key: PoolKey,
    /// The upstream its backends are opened on.
    pub upstream: Arc<crate::config::Upstream>,
    /// The pool's size and the backends it keeps open.
    pub size: usize,
    pub min_idle: usize,
    /// The most backends of it the tenant holds at once: its `pool_size`.
    pub share: usize,
    /// Past this many (a shared pool: `pool.max_tenant_share` of it) a
    /// tenant takes one more only while more places than this stay free
    /// for the others.
    pub cap: usize,
}

/// `up`: the tenant's upstream (`session::source::upstream_for`).
pub fn terms_for(
    cfg: &Config,
    up: &Arc<crate::config::Upstream>,
    tenant: &crate::catalog::TenantInfo,
    database: &str,
    role: &str,
) -> Terms {
    let pool_size = tenant.pool.size.max(1) as usize;
    let key = PoolKey {
        upstream: up.name.to_string(),
        address: up.address.clone(),
        database: database.to_owned(),
        role: role.to_owned(),
        dedicated: tenant.pool.dedicated.then(|| tenant.id.clone()),
    };
    if tenant.pool.dedicated {
        Terms {
            key,
            upstream: up.clone(),
            size: pool_size,
            min_idle: tenant.pool.min_idle.max(0) as usize,
            share: pool_size,
            cap: pool_size,
        }
    } else {
        Terms {
            key,
            upstream: up.clone(),
            size: up.pool_size,
            min_idle: 0,
            share: pool_size,
            // max_tenant_share of this upstream's pools, not of pool.size.
            cap: cfg.pool.tenant_cap(up.pool_size),
        }
    }
}
