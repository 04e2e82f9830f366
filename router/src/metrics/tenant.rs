//! One tenant's counters: plain atomics, each bump also counted in the
//! all-tenants totals, which outlive the tenant's state. Its latencies go,
//! without a lock, into its recent window (`histogram::Window`, whose
//! buckets give the JSON percentiles at read time) and into one histogram
//! of the family: its own while it holds a histogram place, else
//! `_other`. A lock is taken only to give or take a place.

use super::histogram::{self, AtomicHistogram, Counts, Window};
use super::labels::{Denial, Failure, Refusal};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Percentiles are estimated over the statements of about this recent
/// window (`histogram::SLICES` slices of `histogram::SLICE_MS`: the last
/// 50 to 60 seconds).
pub const WINDOW: Duration = Duration::from_millis(histogram::SLICE_MS * histogram::SLICES as u64);

/// Milliseconds since the first call (the router's clock for idle times
/// and latency samples).
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// What is counted, per tenant and in all.
#[derive(Debug, Default)]
pub struct Counters {
    pub connections: AtomicU64,
    pub refused: [AtomicU64; Refusal::ALL.len()],
    pub statements: AtomicU64,
    pub denied: [AtomicU64; Denial::ALL.len()],
    pub errors: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub auth_failures: [AtomicU64; Failure::ALL.len()],
}

/// Shared by every tenant of one `Metrics`: the totals over all tenants,
/// the `_other` and all-tenants histograms, and the histogram places.
#[derive(Debug, Default)]
pub struct Totals {
    pub all: Counters,
    pub all_latency: AtomicHistogram,
    pub other_latency: AtomicHistogram,
    /// Tenants dropped as idle.
    pub dropped_idle: AtomicU64,
    /// `histogram_top_n`, and the places of it taken.
    pub top_n: AtomicUsize,
    pub places: AtomicUsize,
}

impl Totals {
    /// A refusal of a known tenant the router holds no state for (a
    /// client that never authenticated): counted in the aggregates only,
    /// so that such clients create no tenant state and no series.
    pub fn refused(&self, r: Refusal) {
        bump(&self.all.refused[r as usize], 1);
    }

    /// A failed authentication for a known tenant the router holds no
    /// state for: in the aggregates only (see `refused`).
    pub fn auth_failed(&self, f: Failure) {
        bump(&self.all.auth_failures[f as usize], 1);
    }

    /// Take a top-N place if one is free.
    fn take_place(&self) -> bool {
        let top = self.top_n.load(Ordering::Relaxed);
        self.places
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < top).then_some(n + 1)
            })
            .is_ok()
    }

    fn free_place(&self) {
        let _ = self
            .places
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}

/// One tenant's counters and recent latencies.
pub struct TenantMetrics {
    id: Box<str>,
    own: Counters,
    totals: Arc<Totals>,
    /// Statements since the last histogram reassignment.
    recent: AtomicU64,
    /// Whether it holds a place (its latencies go to `own_latency`).
    placed: AtomicBool,
    /// Its place: named (true) or top-N (false); None: none. Changed
    /// only when a place is given or taken.
    place: Mutex<Option<bool>>,
    /// Its own histogram, made with its first place (from zero at each
    /// place it gets).
    own_latency: OnceLock<Box<AtomicHistogram>>,
    /// Its recent latencies, made by its first statement, freed when it
    /// is idle (`compact`).
    window: OnceLock<Box<Window>>,
}

impl std::fmt::Debug for TenantMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMetrics")
            .field("id", &self.id)
            .field("statements", &self.statements())
            .finish_non_exhaustive()
    }
}

impl Drop for TenantMetrics {
    fn drop(&mut self) {
        let place = *self.place.get_mut().unwrap_or_else(|p| p.into_inner());
        if place == Some(false) {
            self.totals.free_place();
        }
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

impl TenantMetrics {
    /// A tenant's counters at zero; `named`: it has a histogram of its own
    /// from the start.
    pub fn new(id: &str, totals: Arc<Totals>, named: bool) -> TenantMetrics {
        TenantMetrics {
            id: id.into(),
            own: Counters::default(),
            totals,
            recent: AtomicU64::new(0),
            placed: AtomicBool::new(named),
            place: Mutex::new(named.then_some(true)),
            own_latency: OnceLock::new(),
            window: OnceLock::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn own(&self) -> &Counters {
        &self.own
    }

    fn count(&self, f: impl Fn(&Counters) -> &AtomicU64, n: u64) {
        bump(f(&self.own), n);
        bump(f(&self.totals.all), n);
    }

    fn place(&self) -> std::sync::MutexGuard<'_, Option<bool>> {
        self.place.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn own_latency(&self) -> &AtomicHistogram {
        self.own_latency.get_or_init(Box::default)
    }

    /// A connection got its tenant context.
    pub fn connection(&self) {
        self.count(|c| &c.connections, 1);
    }

    pub fn refused(&self, r: Refusal) {
        self.count(|c| &c.refused[r as usize], 1);
    }

    pub fn auth_failed(&self, f: Failure) {
        self.count(|c| &c.auth_failures[f as usize], 1);
    }

    pub fn statement(&self) {
        self.count(|c| &c.statements, 1);
        bump(&self.recent, 1);
    }

    pub fn denied(&self, d: Denial) {
        self.count(|c| &c.denied[d as usize], 1);
    }

    pub fn error(&self) {
        self.count(|c| &c.errors, 1);
    }

    pub fn add_bytes(&self, bytes_in: u64, bytes_out: u64) {
        self.count(|c| &c.bytes_in, bytes_in);
        self.count(|c| &c.bytes_out, bytes_out);
    }

    pub fn connections(&self) -> u64 {
        self.own.connections.load(Ordering::Relaxed)
    }

    pub fn statements(&self) -> u64 {
        self.own.statements.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.own.errors.load(Ordering::Relaxed)
    }

    /// Record one unit's latency: into the tenant's window, and into
    /// exactly one histogram of the family (its own while it holds a
    /// place, else `_other`; a free top-N place is taken here) and the
    /// all-tenants one.
    pub fn observe(&self, took: Duration) {
        self.observe_at(now_ms(), took.as_secs_f64());
    }

    pub(crate) fn observe_at(&self, now: u64, secs: f64) {
        self.totals.all_latency.observe(secs);
        self.window.get_or_init(Box::default).observe(now, secs);
        if !self.placed.load(Ordering::Acquire) && self.totals.take_place() {
            let mut place = self.place();
            if place.is_none() {
                *place = Some(false);
                self.own_latency().reset();
                self.placed.store(true, Ordering::Release);
            } else {
                // Given one meanwhile.
                self.totals.free_place();
            }
        }
        if self.placed.load(Ordering::Acquire) {
            self.own_latency().observe(secs);
        } else {
            self.totals.other_latency.observe(secs);
        }
    }

    /// Its own histogram, while it holds a place.
    pub fn own_histogram(&self) -> Option<Counts> {
        if !self.placed.load(Ordering::Acquire) {
            return None;
        }
        Some(self.own_latency().load())
    }

    pub fn has_place(&self) -> bool {
        self.placed.load(Ordering::Acquire)
    }

    /// Statements since the last call (the histogram reassignment).
    pub(crate) fn take_recent(&self) -> u64 {
        self.recent.swap(0, Ordering::Relaxed)
    }

    /// Give or take its histogram place (`hold`), `named` or top-N. A
    /// top-N place is given only if one is free. Its series restart from
    /// zero when it gets a place again.
    pub(crate) fn set_place(&self, hold: bool, named: bool) {
        let mut place = self.place();
        match (*place, hold) {
            (Some(was_named), true) => {
                if was_named && !named {
                    // No longer named: it keeps its series as a top-N
                    // place if one is free, else it loses it.
                    *place = self.totals.take_place().then_some(false);
                } else if !was_named && named {
                    *place = Some(true);
                    self.totals.free_place();
                }
            }
            (Some(was_named), false) => {
                if !was_named {
                    self.totals.free_place();
                }
                *place = None;
            }
            (None, true) => {
                if named || self.totals.take_place() {
                    self.own_latency().reset();
                    *place = Some(named);
                }
            }
            (None, false) => {}
        }
        self.placed.store(place.is_some(), Ordering::Release);
    }

    /// An idle tenant no one else holds gives back its latency memory: the
    /// window once nothing in it is recent, its own histogram while it
    /// has no place.
    pub(crate) fn compact(&mut self, now: u64) {
        let quiet = self
            .window
            .get()
            .is_some_and(|w| w.counts(now).iter().all(|n| *n == 0));
        if quiet {
            self.window.take();
        }
        if !*self.placed.get_mut() {
            self.own_latency.take();
        }
    }

    /// Bytes it holds on the heap (id, latency window, own histogram).
    pub fn heap_bytes(&self) -> usize {
        self.id.len()
            + self
                .window
                .get()
                .map_or(0, |_| std::mem::size_of::<Window>())
            + self
                .own_latency
                .get()
                .map_or(0, |_| std::mem::size_of::<AtomicHistogram>())
    }

    /// The JSON view of these counters.
    pub fn snapshot(&self, tenant: &str, active: u32) -> TenantSnapshot {
        let now = now_ms();
        let window = self.window.get();
        let recent = window.map_or([0; histogram::SLOTS], |w| w.counts(now));
        let largest = window.and_then(|w| w.largest(now));
        // Estimated from the buckets (see `histogram::quantile`), in ms
        // rounded to the µs.
        let ms = |q: f64| {
            histogram::quantile(&recent, q, largest).map(|s| (s * 1_000_000.0).round() / 1000.0)
        };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.own;
        let refused = |r: Refusal| get(&c.refused[r as usize]);
        let denied = |d: Denial| get(&c.denied[d as usize]);
        TenantSnapshot {
            tenant: tenant.to_owned(),
            active_connections: active,
            connections_total: get(&c.connections),
            connections_refused: Refused {
                max_connections: refused(Refusal::MaxConnections),
                disabled: refused(Refusal::Disabled),
                auth: refused(Refusal::Auth),
                error: refused(Refusal::Error),
            },
            auth_failures: Failure::ALL
                .iter()
                .map(|f| (f.label(), get(&c.auth_failures[*f as usize])))
                .collect(),
            statements_total: get(&c.statements),
            statements_denied: Denied {
                qps_limit: denied(Denial::QpsLimit),
                max_query_ms: denied(Denial::MaxQueryMs),
                max_result_bytes: denied(Denial::MaxResultBytes),
            },
            errors_total: get(&c.errors),
            bytes_in: get(&c.bytes_in),
            bytes_out: get(&c.bytes_out),
            latency_ms: Latency {
                window_seconds: WINDOW.as_secs(),
                samples: recent.iter().sum::<u64>() as usize,
                p50: ms(0.50),
                p95: ms(0.95),
                p99: ms(0.99),
            },
        }
    }
}

/// `GET /tenants/{id}/metrics`.
#[derive(Debug, Default, Serialize)]
pub struct TenantSnapshot {
    pub tenant: String,
    pub active_connections: u32,
    pub connections_total: u64,
    pub connections_refused: Refused,
    /// Failed authentications checked by the router, by reason.
    pub auth_failures: BTreeMap<&'static str, u64>,
    pub statements_total: u64,
    pub statements_denied: Denied,
    pub errors_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency_ms: Latency,
}

impl TenantSnapshot {
    /// A tenant whose state the router does not hold (no connection since
    /// the router started, or dropped as idle).
    pub fn empty(tenant: &str) -> TenantSnapshot {
        TenantSnapshot {
            tenant: tenant.to_owned(),
            latency_ms: Latency {
                window_seconds: WINDOW.as_secs(),
                ..Latency::default()
            },
            ..TenantSnapshot::default()
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Refused {
    pub max_connections: u64,
    pub disabled: u64,
    pub auth: u64,
    pub error: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Denied {
    pub qps_limit: u64,
    pub max_query_ms: u64,
    pub max_result_bytes: u64,
}

/// Latency percentiles over about the last `window_seconds` (null without
/// samples): estimates from the histogram buckets, each within its
/// bucket's width of the true value (`histogram::quantile`).
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub window_seconds: u64,
    pub samples: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

#[cfg(test)]
#[path = "tenant_tests.rs"]
mod tests;
