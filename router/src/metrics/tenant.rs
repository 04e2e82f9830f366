//! One tenant's counters: plain atomics, each bump also counted in the
//! all-tenants totals, which outlive the tenant's state. Its recent
//! latencies (the JSON percentiles) and, while it holds a histogram place,
//! its own `statement_duration_seconds` histogram sit under one lock.

use super::histogram::{AtomicHistogram, Counts};
use super::labels::{Denial, Failure, Refusal};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Percentiles are computed over the statements of this recent window…
pub const WINDOW: Duration = Duration::from_secs(60);
/// …keeping at most this many samples per tenant.
pub const WINDOW_SAMPLES: usize = 4096;

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

/// A tenant's own histogram: a named place (`histogram_tenants`) or a
/// top-N one.
#[derive(Debug)]
struct Place {
    named: bool,
    counts: Counts,
}

/// One latency sample: when (ms, `now_ms`) and how long (seconds).
type Sample = (u64, f64);

#[derive(Debug, Default)]
struct Recent {
    window: VecDeque<Sample>,
    place: Option<Box<Place>>,
}

/// One tenant's counters and recent latencies.
pub struct TenantMetrics {
    id: Box<str>,
    own: Counters,
    totals: Arc<Totals>,
    /// Statements since the last histogram reassignment.
    recent: AtomicU64,
    /// Whether it holds a place (read without the lock by `has_place`).
    placed: AtomicBool,
    latency: Mutex<Recent>,
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
        let l = self.latency.get_mut().unwrap_or_else(|p| p.into_inner());
        if l.place.as_ref().is_some_and(|p| !p.named) {
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
        let place = named.then(|| {
            Box::new(Place {
                named: true,
                counts: Counts::default(),
            })
        });
        TenantMetrics {
            id: id.into(),
            own: Counters::default(),
            totals,
            recent: AtomicU64::new(0),
            placed: AtomicBool::new(named),
            latency: Mutex::new(Recent {
                window: VecDeque::new(),
                place,
            }),
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.latency.lock().unwrap_or_else(|p| p.into_inner())
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
        let mut l = self.lock();
        let window = WINDOW.as_millis() as u64;
        while l.window.len() >= WINDOW_SAMPLES
            || l.window
                .front()
                .is_some_and(|(t, _)| now.saturating_sub(*t) > window)
        {
            l.window.pop_front();
        }
        l.window.push_back((now, secs));
        if l.place.is_none() && self.totals.take_place() {
            l.place = Some(Box::new(Place {
                named: false,
                counts: Counts::default(),
            }));
            self.placed.store(true, Ordering::Release);
        }
        match l.place.as_mut() {
            Some(p) => p.counts.observe(secs),
            None => self.totals.other_latency.observe(secs),
        }
    }

    /// Its own histogram, while it holds a place.
    pub fn own_histogram(&self) -> Option<Counts> {
        if !self.placed.load(Ordering::Acquire) {
            return None;
        }
        self.lock().place.as_ref().map(|p| p.counts)
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
        let mut l = self.lock();
        match (l.place.as_mut(), hold) {
            (Some(p), true) => {
                if p.named && !named {
                    // No longer named: it keeps its series as a top-N
                    // place if one is free, else it loses it.
                    if !self.totals.take_place() {
                        l.place = None;
                    } else {
                        p.named = false;
                    }
                } else if !p.named && named {
                    p.named = true;
                    self.totals.free_place();
                }
            }
            (Some(p), false) => {
                if !p.named {
                    self.totals.free_place();
                }
                l.place = None;
            }
            (None, true) => {
                if named || self.totals.take_place() {
                    l.place = Some(Box::new(Place {
                        named,
                        counts: Counts::default(),
                    }));
                }
            }
            (None, false) => {}
        }
        self.placed.store(l.place.is_some(), Ordering::Release);
    }

    /// An idle tenant gives back its latency memory: samples older than
    /// the window go, and the window's buffer is freed or shrunk.
    pub(crate) fn compact(&self, now: u64) {
        let mut l = self.lock();
        let window = WINDOW.as_millis() as u64;
        while l
            .window
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > window)
        {
            l.window.pop_front();
        }
        if l.window.is_empty() {
            l.window = VecDeque::new();
        } else if l.window.capacity() > 2 * l.window.len() {
            l.window.shrink_to_fit();
        }
    }

    /// Bytes it holds on the heap (id, latency window, own histogram).
    pub fn heap_bytes(&self) -> usize {
        let l = self.lock();
        self.id.len()
            + l.window.capacity() * std::mem::size_of::<Sample>()
            + l.place.as_ref().map_or(0, |_| std::mem::size_of::<Place>())
    }

    /// The JSON view of these counters.
    pub fn snapshot(&self, tenant: &str, active: u32) -> TenantSnapshot {
        let now = now_ms();
        let window = WINDOW.as_millis() as u64;
        let mut recent: Vec<f64> = {
            let l = self.lock();
            l.window
                .iter()
                .filter(|(t, _)| now.saturating_sub(*t) <= window)
                .map(|(_, s)| (s * 1_000_000.0).round() / 1000.0)
                .collect()
        };
        recent.sort_by(f64::total_cmp);
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
                samples: recent.len(),
                p50: percentile(&recent, 50.0),
                p95: percentile(&recent, 95.0),
                p99: percentile(&recent, 99.0),
            },
        }
    }
}

/// Nearest-rank percentile of sorted values; None when there are none.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
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

/// Latency percentiles over the last `window_seconds` (null without samples).
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
