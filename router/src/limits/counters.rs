//! One tenant's live state in the limits registry: its connection count,
//! QPS bucket, published catalog row, metrics and sessions
//! (`TenantCounters`), and the connection slot a session holds
//! (`ConnectionSlot`, with the fleet's lease when there is one). The
//! registry (`Limits`, in `limits`), the sweep and each session's watch
//! share these; this module imports none of them.

use super::bucket::TokenBucket;
use crate::catalog::TenantInfo;
use crate::fleet::lease::Lease;
use crate::interrupt::{Interrupt, Interrupts, Signal};
use crate::metrics::tenant::now_ms;
use crate::metrics::{TenantMetrics, TenantSource};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Live counters of one tenant.
#[derive(Debug)]
pub struct TenantCounters {
    pub(super) active: AtomicU32,
    /// The QPS bucket, shared by all the tenant's connections.
    bucket: Mutex<TokenBucket>,
    /// The tenant's latest catalog row, and a version bumped on each change.
    row: Mutex<Option<Arc<TenantInfo>>>,
    pub(crate) version: AtomicU64,
    /// What the admin API shows.
    pub metrics: TenantMetrics,
    /// The tenant's sessions, to close them all (`disconnect_all`).
    sessions: Interrupts,
    /// When it was last taken from the map or seen in use (`now_ms`).
    pub(super) last_used: AtomicU64,
    /// `fleet.routers` (the registry's): the bucket fills at
    /// ceil(qps / routers).
    routers: Arc<AtomicU32>,
}

impl TenantCounters {
    pub fn new(metrics: TenantMetrics, routers: Arc<AtomicU32>) -> TenantCounters {
        TenantCounters {
            active: AtomicU32::new(0),
            bucket: Mutex::new(TokenBucket::default()),
            row: Mutex::new(None),
            version: AtomicU64::new(0),
            metrics,
            sessions: Interrupts::default(),
            last_used: AtomicU64::new(now_ms()),
            routers,
        }
    }

    pub(super) fn touch(&self, now: u64) {
        self.last_used.fetch_max(now, Ordering::Relaxed);
    }

    /// Make `disconnect_all` reach a session of the tenant.
    pub fn register_session(&self, interrupt: &Arc<Interrupt>) {
        self.sessions.register(interrupt);
    }

    /// Close every session of the tenant; returns how many were open.
    pub fn disconnect_all(&self) -> u32 {
        // Count first: woken sessions free their slots at once.
        let open = self.active();
        self.sessions.raise(Signal::Kick);
        open
    }

    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Make `info` the tenant's current limits for every session.
    /// Every connection publishes the row it looked up; an unchanged row
    /// (the same kept `Arc`) bumps nothing, so live sessions are not made
    /// to re-read their limits on every new connection, and a row read
    /// before the one published (`read_seq`) is ignored: a login that
    /// read the catalog before a change never undoes its re-read.
    pub fn publish(&self, info: Arc<TenantInfo>) {
        let mut row = self.row.lock().unwrap_or_else(|p| p.into_inner());
        if row
            .as_ref()
            .is_some_and(|r| Arc::ptr_eq(r, &info) || r.read_seq > info.read_seq)
        {
            return;
        }
        *row = Some(info);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn current(&self) -> (u64, Option<Arc<TenantInfo>>) {
        let v = self.version.load(Ordering::Acquire);
        (
            v,
            self.row.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        )
    }

    /// Take one token from the tenant's bucket: this router's share of
    /// `qps` (ceil(qps / `fleet.routers`)) tokens a second, at most that
    /// times `burst` saved up.
    pub fn take_token(&self, qps: i32, burst: f32) -> bool {
        if qps <= 0 {
            return true;
        }
        let qps = crate::config::share(qps, self.routers.load(Ordering::Acquire));
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.take(qps, burst, std::time::Instant::now())
    }
}

/// Holds one of a tenant's connection slots; frees it on drop, however the
/// session ends.
#[derive(Debug)]
pub struct ConnectionSlot {
    pub(super) counters: Arc<TenantCounters>,
    /// Its count for the fleet of routers (`fleet`), given back on drop.
    pub(super) lease: Option<Lease>,
}

impl ConnectionSlot {
    /// The counters of the tenant whose place this is.
    pub fn counters(&self) -> &Arc<TenantCounters> {
        &self.counters
    }

    /// Hold the fleet's lease of this connection until the slot goes.
    pub fn attach(&mut self, lease: Lease) {
        self.lease = Some(lease);
    }

    /// Whether the fleet counts this connection.
    pub fn leased(&self) -> bool {
        self.lease.is_some()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.counters.touch(now_ms());
        self.counters.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl TenantSource for TenantCounters {
    fn metrics(&self) -> &TenantMetrics {
        &self.metrics
    }

    fn active(&self) -> u32 {
        TenantCounters::active(self)
    }
}

impl TenantCounters {
    /// Give back what an idle tenant does not need (held by the map
    /// alone: nothing records into it meanwhile).
    pub(crate) fn compact(&mut self, now: u64) {
        self.metrics.compact(now);
        self.sessions.compact();
    }

    /// Bytes it holds on the heap, besides its catalog row (`row`).
    pub fn heap_bytes(&self) -> usize {
        self.metrics.heap_bytes() + self.sessions.heap_bytes()
    }
}
