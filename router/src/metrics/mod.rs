//! What the router counts, per tenant and overall, for the admin API
//! (`/metrics`, Prometheus text format 0.0.4, and the JSON snapshots of
//! `/tenants/{id}/metrics`).
//!
//! The router's own families (catalog, pools, clients, reloads...) live in
//! a Prometheus registry. The tenant families do not: a tenant's counters
//! are plain atomics in its state (`tenant`), and a scrape writes their
//! series straight into the response (`render`), bounded as `[metrics]`
//! says (`config::MetricsSettings`): a tenant has series only while the router holds its
//! state (dropped after `tenant_idle_ms` without a connection), reasons at
//! zero have no series, and only `histogram_tenants` and the
//! `histogram_top_n` busiest have a latency histogram of their own.
//!
//! Every family's name, help and type is declared once (`families`), and
//! the label values are the metrics' own enums (`labels`): this module
//! imports no layer above it (auth names `labels::Failure` as its own).

pub mod families;
pub mod histogram;
pub mod labels;
pub mod render;
pub mod tenant;

pub use crate::config::MetricsSettings;
pub use labels::{Denial, Failure, Refusal};
pub use render::{ScrapeEntry, TenantSource};
pub use tenant::{Latency, TenantMetrics, TenantSnapshot, Totals, WINDOW};

use families::{Family, Kind};
use prometheus::core::Collector;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// After a scrape larger than this, the sweep gives the memory it freed
/// back to the system (`take_trim`).
const TRIM_AFTER_BYTES: usize = 1 << 20;

/// The registry of the router's own families, and the tenants' totals.
pub struct Metrics {
    registry: Registry,
    /// Totals over all tenants, the shared histograms, the places.
    totals: Arc<Totals>,
    /// `[metrics]` as configured now, and its `histogram_tenants`.
    settings: RwLock<(Arc<MetricsSettings>, Arc<HashSet<String>>)>,
    /// A large scrape was sent: give freed memory back (`take_trim`).
    trim: AtomicBool,
    /// Failed authentications for names the catalog does not know, by
    /// reason (no tenant label: the names are the client's).
    pub unknown_auth_failures: IntCounterVec,
    /// Connections refused because the tenant is not in the catalog (no
    /// tenant label: the names are the client's).
    pub unknown_tenant: IntCounter,
    /// Connections of bypass users (no tenant context), which see every
    /// tenant's rows: worth watching.
    pub bypass: IntCounter,
    /// SIGHUP reloads by `result` ("ok", "error").
    pub reloads: IntCounterVec,
    /// 1 while the router drains after SIGTERM.
    pub draining: IntGauge,
    /// 1 while the catalog connection is up (set at each scrape).
    pub catalog_up: IntGauge,
    /// Queries on the catalog connection (lookups are batched).
    pub catalog_queries: IntCounter,
    /// Lookups answered from rows kept since the tenant's last change.
    pub catalog_cache_hits: IntCounter,
    /// Catalog change notifications received.
    pub catalog_notifications: IntCounter,
    /// Rows of held tenants re-read after notifications.
    pub catalog_rereads: IntCounter,
    /// Held tenants waiting to be re-read (set at each scrape).
    pub catalog_rereads_pending: IntGauge,
    /// Client connections open (set at each scrape).
    pub clients: IntGauge,
    /// Client connections refused over `max_client_connections`.
    pub clients_refused: IntCounter,
    /// Cancel requests from clients, by outcome ("forwarded", "dropped").
    pub cancel_requests: IntCounterVec,
    /// Client connections that started a session over TLS, by `version`.
    pub connections_tls: IntCounterVec,
    /// Pooled backends by `pool` and `state` ("idle", "active"), set at
    /// each scrape.
    pub pool_backends: IntGaugeVec,
    /// Clients waiting for a backend, by `pool` (set at each scrape).
    pub pool_waiting: IntGaugeVec,
    /// Time clients waited for a pooled backend.
    pub pool_wait: HistogramVec,
    /// Clients refused after `pool.timeout_ms`, by `pool`.
    pub pool_timeouts: IntCounterVec,
    /// Pooled backends closed instead of reused, by `pool` and `reason`.
    pub pool_discarded: IntCounterVec,
    /// Pooled backends handed to a tenant other than their last one.
    pub pool_switches: IntCounterVec,
    /// Pooled backends handed out again (checkouts of an idle backend).
    pub pool_reused: IntCounterVec,
    /// 1 when the upstream answered its last probe, by `upstream` (names
    /// from the configuration only).
    pub upstream_up: IntGaugeVec,
    /// The upstream names with a series now (`configure_upstreams`).
    upstream_names: std::sync::Mutex<Vec<String>>,
}

/// Register a metric from a fixed definition (an error is a bug here).
fn register<M: Collector + Clone + 'static>(r: &Registry, m: prometheus::Result<M>) -> M {
    let m = m.expect("valid metric definition");
    r.register(Box::new(m.clone()))
        .expect("metric registered once");
    m
}

fn opts(f: &Family, kind: Kind) -> Opts {
    debug_assert_eq!(f.kind, kind, "{} is declared as another type", f.name);
    Opts::new(f.name, f.help)
}

fn counter(r: &Registry, f: &Family) -> IntCounter {
    register(r, IntCounter::with_opts(opts(f, Kind::Counter)))
}

fn gauge(r: &Registry, f: &Family) -> IntGauge {
    register(r, IntGauge::with_opts(opts(f, Kind::Gauge)))
}

fn counter_vec(r: &Registry, f: &Family, labels: &[&str]) -> IntCounterVec {
    register(r, IntCounterVec::new(opts(f, Kind::Counter), labels))
}

fn gauge_vec(r: &Registry, f: &Family, labels: &[&str]) -> IntGaugeVec {
    register(r, IntGaugeVec::new(opts(f, Kind::Gauge), labels))
}

fn histogram_vec(r: &Registry, f: &Family, labels: &[&str]) -> HistogramVec {
    debug_assert_eq!(f.kind, Kind::Histogram, "{}", f.name);
    let opts = HistogramOpts::new(f.name, f.help).buckets(histogram::BOUNDS.to_vec());
    register(r, HistogramVec::new(opts, labels))
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let settings = MetricsSettings::default();
        let totals = Arc::new(Totals::default());
        totals
            .top_n
            .store(settings.histogram_top_n, Ordering::Relaxed);
        Metrics {
            totals,
            settings: RwLock::new((Arc::new(settings), Arc::default())),
            trim: AtomicBool::new(false),
            unknown_auth_failures: counter_vec(&r, &families::UNKNOWN_AUTH_FAILURES, &["reason"]),
            unknown_tenant: counter(&r, &families::UNKNOWN_TENANT),
            bypass: counter(&r, &families::BYPASS),
            reloads: counter_vec(&r, &families::RELOADS, &["result"]),
            draining: gauge(&r, &families::DRAINING),
            catalog_up: gauge(&r, &families::CATALOG_UP),
            catalog_queries: counter(&r, &families::CATALOG_QUERIES),
            catalog_cache_hits: counter(&r, &families::CATALOG_CACHE_HITS),
            catalog_notifications: counter(&r, &families::CATALOG_NOTIFICATIONS),
            catalog_rereads: counter(&r, &families::CATALOG_REREADS),
            catalog_rereads_pending: gauge(&r, &families::CATALOG_REREADS_PENDING),
            clients: gauge(&r, &families::CLIENTS),
            clients_refused: counter(&r, &families::CLIENTS_REFUSED),
            cancel_requests: counter_vec(&r, &families::CANCEL_REQUESTS, &["outcome"]),
            pool_backends: gauge_vec(&r, &families::POOL_BACKENDS, &["pool", "state"]),
            pool_waiting: gauge_vec(&r, &families::POOL_WAITING, &["pool"]),
            pool_wait: histogram_vec(&r, &families::POOL_WAIT, &["pool"]),
            pool_timeouts: counter_vec(&r, &families::POOL_TIMEOUTS, &["pool"]),
            pool_discarded: counter_vec(&r, &families::POOL_DISCARDED, &["pool", "reason"]),
            pool_switches: counter_vec(&r, &families::POOL_SWITCHES, &["pool"]),
            pool_reused: counter_vec(&r, &families::POOL_REUSED, &["pool"]),
            connections_tls: counter_vec(&r, &families::CONNECTIONS_TLS, &["version"]),
            upstream_up: gauge_vec(&r, &families::UPSTREAM_UP, &["upstream"]),
            upstream_names: std::sync::Mutex::new(Vec::new()),
            registry: r,
        }
    }

    /// Apply `[metrics]` (at start and on reload): `histogram_top_n` at
    /// once for free places, the rest at the next sweep.
    pub fn configure(&self, settings: &MetricsSettings) {
        self.totals
            .top_n
            .store(settings.histogram_top_n, Ordering::Relaxed);
        let mut s = self.settings.write().unwrap_or_else(|p| p.into_inner());
        *s = (Arc::new(settings.clone()), Arc::new(settings.named()));
    }

    /// The upstreams configured now (at start and on reload): the series
    /// of upstreams no longer configured go.
    pub fn configure_upstreams(&self, upstreams: &crate::config::Upstreams) {
        let now: Vec<String> = upstreams.all().map(|u| u.name.to_string()).collect();
        let mut names = self
            .upstream_names
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for gone in names.iter().filter(|n| !now.contains(n)) {
            let _ = self.upstream_up.remove_label_values(&[gone]);
        }
        *names = now;
    }

    /// Record a probe of upstream `name` (configured ones only).
    pub fn upstream_probed(&self, name: &str, up: bool) {
        let names = self
            .upstream_names
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if names.iter().any(|n| n == name) {
            self.upstream_up
                .with_label_values(&[name])
                .set(i64::from(up));
        }
    }

    /// `[metrics]` as configured now.
    pub fn settings(&self) -> Arc<MetricsSettings> {
        let s = self.settings.read().unwrap_or_else(|p| p.into_inner());
        s.0.clone()
    }

    /// `histogram_tenants` as configured now.
    pub fn named(&self) -> Arc<HashSet<String>> {
        let s = self.settings.read().unwrap_or_else(|p| p.into_inner());
        s.1.clone()
    }

    /// Whether `histogram_tenants` names the tenant.
    pub fn is_named(&self, id: &str) -> bool {
        let s = self.settings.read().unwrap_or_else(|p| p.into_inner());
        s.1.contains(id)
    }

    /// A tenant's counters, at zero (the tenant's series appear with them).
    pub fn tenant(&self, id: &str) -> TenantMetrics {
        TenantMetrics::new(id, self.totals.clone(), self.is_named(id))
    }

    pub fn totals(&self) -> &Arc<Totals> {
        &self.totals
    }

    /// A pool was removed: its series go with it (`discard_reasons`: every
    /// reason label of `pool_discarded`).
    pub fn forget_pool(&self, label: &str, discard_reasons: &[&str]) {
        for state in ["idle", "active"] {
            let _ = self.pool_backends.remove_label_values(&[label, state]);
        }
        let _ = self.pool_waiting.remove_label_values(&[label]);
        let _ = self.pool_wait.remove_label_values(&[label]);
        for v in [&self.pool_timeouts, &self.pool_switches, &self.pool_reused] {
            let _ = v.remove_label_values(&[label]);
        }
        for reason in discard_reasons {
            let _ = self.pool_discarded.remove_label_values(&[label, reason]);
        }
    }

    /// The registry's families and the aggregates: the first chunk of a
    /// scrape.
    pub fn head<T: TenantSource>(&self, tenants: &[T]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        render::aggregates(&mut out, &self.totals, tenants);
        out
    }

    /// The whole exposition in one buffer (tests, small sets).
    pub fn render<T: TenantSource>(&self, tenants: &[T]) -> Vec<u8> {
        let mut out = self.head(tenants);
        for f in 0..render::FAMILIES {
            render::family(&mut out, &self.totals, tenants, f, 0, tenants.len());
        }
        out
    }

    /// The Prometheus text exposition (format 0.0.4) of `tenants`, in
    /// chunks of `render::CHUNK` tenants: a response body streams them, so
    /// a scrape holds one chunk at a time, whatever the number of tenants.
    pub fn scrape<E: ScrapeEntry>(self: &Arc<Self>, tenants: Vec<E>) -> Scrape<E> {
        let id_bytes = tenants
            .iter()
            .filter_map(ScrapeEntry::live)
            .map(|t| t.metrics().id().len())
            .sum();
        Scrape {
            metrics: self.clone(),
            tenants,
            id_bytes,
            head: true,
            family: 0,
            from: 0,
            bytes: 0,
        }
    }

    /// Whether a large scrape ended since the last call: what it freed is
    /// worth giving back to the system.
    pub fn take_trim(&self) -> bool {
        self.trim.swap(false, Ordering::AcqRel)
    }
}

/// One scrape's chunks (an iterator: the head, then each tenant family
/// `render::CHUNK` tenants at a time). It holds `Weak` pointers to the
/// tenants' entries: a tenant dropped meanwhile (idle, or gone from the
/// catalog) is skipped, and a scrape whose client stops reading keeps no
/// tenant's state alive.
pub struct Scrape<E: ScrapeEntry> {
    metrics: Arc<Metrics>,
    tenants: Vec<E>,
    id_bytes: usize,
    head: bool,
    family: usize,
    from: usize,
    /// Bytes given out so far.
    bytes: usize,
}

impl<E: ScrapeEntry> Iterator for Scrape<E> {
    type Item = Vec<u8>;

    fn next(&mut self) -> Option<Vec<u8>> {
        if std::mem::take(&mut self.head) {
            let live: Vec<E::Live> = self.tenants.iter().filter_map(ScrapeEntry::live).collect();
            let out = self.metrics.head(&live);
            self.bytes += out.len();
            return Some(out);
        }
        let n = self.tenants.len();
        while self.family < render::FAMILIES {
            let to = (self.from + render::CHUNK).min(n);
            let ids = self.id_bytes * (to - self.from) / n.max(1);
            let mut out = Vec::with_capacity(render::estimate(to - self.from, ids));
            let totals = &self.metrics.totals;
            let live: Vec<E::Live> = self.tenants[self.from..to]
                .iter()
                .filter_map(ScrapeEntry::live)
                .collect();
            render::family_part(
                &mut out,
                totals,
                &live,
                self.family,
                self.from == 0,
                to >= n,
            );
            if to >= n {
                (self.family, self.from) = (self.family + 1, 0);
            } else {
                self.from = to;
            }
            if !out.is_empty() {
                self.bytes += out.len();
                return Some(out);
            }
        }
        None
    }
}

impl<E: ScrapeEntry> Drop for Scrape<E> {
    fn drop(&mut self) {
        if self.bytes > TRIM_AFTER_BYTES {
            self.metrics.trim.store(true, Ordering::Release);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
