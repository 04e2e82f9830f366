//! Per-tenant limits the router enforces across all of a tenant's
//! connections through this router. Values come from the catalog
//! (`tenant.router_catalog`); 0 means unlimited.
//!
//! Implemented: `max_connections`. (QPS, query duration and result size
//! are not enforced yet.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("too many connections for tenant \"{tenant}\": its max_connections is {max}")]
    TooManyConnections { tenant: String, max: i32 },
}

impl LimitError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            LimitError::TooManyConnections { .. } => "53300",
        }
    }
}

/// Live counters of one tenant.
#[derive(Debug, Default)]
pub struct TenantCounters {
    active: AtomicU32,
}

impl TenantCounters {
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }
}

/// Holds one of a tenant's connection slots; frees it on drop, however the
/// session ends.
#[derive(Debug)]
pub struct ConnectionSlot {
    counters: Arc<TenantCounters>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.counters.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every tenant's counters. Entries are created only for tenants the
/// catalog knows, so the map is bounded by the catalog.
#[derive(Debug, Default)]
pub struct Limits {
    tenants: Mutex<HashMap<String, Arc<TenantCounters>>>,
}

impl Limits {
    pub fn counters(&self, tenant: &str) -> Arc<TenantCounters> {
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant.to_owned()).or_default().clone()
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
                Ok(_) => return Ok(ConnectionSlot { counters }),
                Err(now) => cur = now,
            }
        }
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
