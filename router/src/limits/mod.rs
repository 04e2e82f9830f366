//! Per-tenant limits the router enforces across all of a tenant's
//! connections through this router. Values come from the catalog
//! (`tenant.router_catalog`); 0 means unlimited.
//!
//! This module is the registry: every tenant's counters, connection slots
//! (`max_connections`) and the published catalog row. Each statement limit
//! is its own policy observing the conversation (`conversation`):
//!
//! - `qps`: `qps_limit` with `burst_multiplier`, a token bucket per tenant
//!   (`bucket`), charged for what runs: each Query and FunctionCall, each
//!   Bind together with the Execute of its portal right after it, each
//!   Bind alone, each Execute with no Bind of its portal before it in the
//!   batch; `COMMIT AND CHAIN` is charged, a lone transaction end is not;
//! - `duration`: `max_query_ms`, timed per running unit (Query, Bind,
//!   Execute, FunctionCall: a Bind plans, and planning folds immutable
//!   functions);
//! - `result_size`: `max_result_bytes`, every message a unit sends back
//!   (rows, COPY data, notices, notifications, call results, errors...);
//!
//! and `watch` puts them together for one session.
//!
//! A tenant's state (`counters`) lives here while it is used: a sweep
//! (`sweep`) drops the state of a tenant that no session holds and that
//! was not used for `metrics.tenant_idle_ms`; its next connection starts
//! from zero.
//!
//! The children never import this module: what they share (a tenant's
//! counters, its slot) is in `counters`, and the sweep works on the map
//! this module hands it.

mod bucket;
pub mod counters;
pub mod duration;
pub mod logins;
pub mod qps;
pub mod result_size;
pub mod sweep;
pub mod watch;

pub use counters::{ConnectionSlot, TenantCounters};
pub use sweep::Swept;
pub use watch::StatementWatch;

use crate::metrics::tenant::now_ms;
use crate::metrics::Metrics;
use indexmap::IndexMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("too many connections for tenant \"{tenant}\": its max_connections is {max}")]
    TooManyConnections { tenant: String, max: i32 },
    /// `fleet.on_lease_loss = "refuse"` while the fleet's counts cannot be
    /// reached.
    #[error("tenant \"{tenant}\" cannot connect now: its max_connections is counted for all routers in the catalog database, which this router cannot reach ({reason})")]
    LimitUncheckable { tenant: String, reason: String },
}

impl LimitError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            LimitError::TooManyConnections { .. } | LimitError::LimitUncheckable { .. } => "53300",
        }
    }
}

/// Every tenant's counters. Entries are created only for tenants the
/// catalog knows, removed when they leave it or when idle (`sweep`), so
/// the map (and the tenant-labelled metrics) is bounded by the catalog and
/// by the tenants in use.
///
/// An entry that a session, a slot or a watch holds (its `Arc` is shared)
/// is never removed by the sweep: every `Arc` is taken under the map lock
/// (`counters`, `get`), and the sweep removes only entries held by the map
/// alone, under the same lock. So a session always counts into the entry
/// the map has, and `acquire_connection`, `publish` and `disconnect_all`
/// reach it.
pub struct Limits {
    tenants: Mutex<IndexMap<String, Arc<TenantCounters>>>,
    pub metrics: Arc<Metrics>,
    /// Where the sweep goes on, and when it last reassigned histograms.
    sweep: Mutex<sweep::Cursor>,
    /// Logins in progress of tenants without state here.
    pub logins: logins::Logins,
    /// `fleet.routers`: each tenant's QPS bucket fills at this router's
    /// share of its `qps_limit`, ceil(qps_limit / routers).
    routers: Arc<AtomicU32>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(Arc::new(Metrics::new()))
    }
}

impl Limits {
    pub fn new(metrics: Arc<Metrics>) -> Limits {
        Limits {
            tenants: Mutex::new(IndexMap::new()),
            metrics,
            sweep: Mutex::new(sweep::Cursor::default()),
            logins: logins::Logins::default(),
            routers: Arc::new(AtomicU32::new(1)),
        }
    }

    /// How many routers share each tenant's `qps_limit` (`fleet.routers`;
    /// applies to live sessions at their next statement).
    pub fn set_routers(&self, n: u32) {
        self.routers.store(n.max(1), Ordering::Release);
    }

    /// Close every connection of the tenant through this router, and its
    /// logins in progress; returns how many connections were open (the
    /// logins are not counted).
    pub fn disconnect(&self, tenant: &str) -> u32 {
        self.logins.kick(tenant);
        self.get(tenant).map_or(0, |c| c.disconnect_all())
    }

    fn map(&self) -> std::sync::MutexGuard<'_, IndexMap<String, Arc<TenantCounters>>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant's counters, created on first use (under the map lock:
    /// the entry returned is the map's, and stays there while it is held).
    /// Call only for tenants the catalog knows.
    pub fn counters(&self, tenant: &str) -> Arc<TenantCounters> {
        let mut map = self.map();
        let c = match map.get(tenant) {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(TenantCounters::new(
                    self.metrics.tenant(tenant),
                    self.routers.clone(),
                ));
                map.insert(tenant.to_owned(), c.clone());
                c
            }
        };
        c.touch(now_ms());
        c
    }

    /// The tenant's counters if it has had any connection.
    pub fn get(&self, tenant: &str) -> Option<Arc<TenantCounters>> {
        let map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.get(tenant).cloned()
    }

    /// Tenants whose state the router holds now.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// The ids of the tenants whose state the router holds now.
    pub fn ids(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// The Prometheus exposition, in chunks: the registry's families, the
    /// aggregates and every held tenant's families. The map lock is held
    /// only to copy `Weak` pointers to the entries: a scrape keeps no
    /// tenant's state alive, however long its client takes to read it.
    pub fn scrape(&self) -> crate::metrics::Scrape<std::sync::Weak<TenantCounters>> {
        let tenants: Vec<std::sync::Weak<TenantCounters>> =
            self.map().values().map(Arc::downgrade).collect();
        self.metrics.scrape(tenants)
    }

    /// Call `f` with every tenant the router holds counters for (connected
    /// now or before), in no order, under the map's lock: `f` must be quick
    /// (new connections wait for the lock) and must not call into `Limits`.
    /// The admin API's `active` pages and summary read the map this way,
    /// keeping only a page or a top-N of what they see.
    pub fn for_each_tenant(&self, mut f: impl FnMut(&str, &TenantCounters)) {
        let map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        for (id, c) in map.iter() {
            f(id, c);
        }
    }

    /// A tenant left the catalog: close its sessions, drop its counters and
    /// its metric series.
    pub fn forget(&self, tenant: &str) {
        // Its logins in progress too: they must not get in.
        self.logins.kick(tenant);
        let gone = self.map().swap_remove(tenant);
        if let Some(c) = gone {
            let n = c.disconnect_all();
            tracing::info!(
                tenant,
                closed = n,
                "tenant dropped from the catalog: counters removed, sessions closed"
            );
        }
    }

    /// Take a connection slot, or refuse when `max` (> 0) are in use.
    pub fn acquire_connection(&self, tenant: &str, max: i32) -> Result<ConnectionSlot, LimitError> {
        let counters = self.counters(tenant);
        let mut cur = counters.active.load(Ordering::Acquire);
        loop {
            if max > 0 && cur >= max as u32 {
                return Err(LimitError::TooManyConnections {
                    tenant: tenant.to_owned(),
                    max,
                });
            }
            match counters.active.compare_exchange(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(ConnectionSlot {
                        counters,
                        lease: None,
                    })
                }
                Err(now) => cur = now,
            }
        }
    }
}

impl Limits {
    /// Run the sweep every `sweep::EVERY` until the limits go away; after
    /// a large scrape, `trim` gives the memory it freed back to the
    /// system (the pools' `release_free_memory`).
    pub fn start_sweep(self: &Arc<Self>, trim: fn()) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(sweep::EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(limits) = me.upgrade() else {
                    return;
                };
                let s = limits.sweep(now_ms());
                if s.dropped > 0 {
                    tracing::debug!(
                        dropped = s.dropped,
                        examined = s.examined,
                        "idle tenants' state dropped"
                    );
                }
                if limits.metrics.take_trim() {
                    trim();
                }
            }
        });
    }

    /// One tick of the sweep at time `now` (`now_ms`).
    pub fn sweep(&self, now: u64) -> Swept {
        let mut cursor = self.sweep.lock().unwrap_or_else(|p| p.into_inner());
        let mut map = self.map();
        sweep::tick(&mut map, &mut cursor, now, &self.metrics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_freed() {
        let l = Limits::default();
        let a = l.acquire_connection("acme", 2).unwrap();
        let _b = l.acquire_connection("acme", 2).unwrap();
        assert_eq!(
            l.acquire_connection("acme", 2).unwrap_err(),
            LimitError::TooManyConnections {
                tenant: "acme".into(),
                max: 2
            }
        );
        // Other tenants are unaffected.
        let _g = l.acquire_connection("globex", 1).unwrap();
        drop(a);
        assert_eq!(l.counters("acme").active(), 1);
        let _c = l.acquire_connection("acme", 2).unwrap();
        // 0 is unlimited.
        let many: Vec<_> = (0..50)
            .map(|_| l.acquire_connection("free", 0).unwrap())
            .collect();
        assert_eq!(l.counters("free").active(), 50);
        drop(many);
        assert_eq!(l.counters("free").active(), 0);
    }

    #[test]
    fn concurrent_acquires_never_exceed_the_limit() {
        let l = Arc::new(Limits::default());
        let held: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..10)
                            .filter_map(|_| l.acquire_connection("t", 5).ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(held.len(), 5);
        assert_eq!(l.counters("t").active(), 5);
    }
}
