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

pub mod histogram;
pub mod render;
pub mod tenant;

pub use crate::config::MetricsSettings;
pub use render::{ScrapeEntry, TenantSource};
pub use tenant::{Latency, TenantMetrics, TenantSnapshot, Totals, WINDOW};

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

/// Why a connection of a known tenant was refused (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    Disabled,
    Auth,
    /// Upstream unreachable, startup timeout, context injection failed.
    Error,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::MaxConnections,
        Refusal::Disabled,
        Refusal::Auth,
        Refusal::Error,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::Disabled => "disabled",
            Refusal::Auth => "auth",
            Refusal::Error => "error",
        }
    }
}

/// Which limit refused or stopped a statement (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    QpsLimit,
    MaxQueryMs,
    MaxResultBytes,
}

impl Denial {
    pub const ALL: [Denial; 3] = [Denial::QpsLimit, Denial::MaxQueryMs, Denial::MaxResultBytes];
    pub fn label(self) -> &'static str {
        match self {
            Denial::QpsLimit => "qps_limit",
            Denial::MaxQueryMs => "max_query_ms",
            Denial::MaxResultBytes => "max_result_bytes",
        }
    }
}

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
}

/// Register a metric from a fixed definition (an error is a bug here).
fn register<M: Collector + Clone + 'static>(r: &Registry, m: prometheus::Result<M>) -> M {
    let m = m.expect("valid metric definition");
    r.register(Box::new(m.clone()))
        .expect("metric registered once");
    m
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(r, IntCounterVec::new(Opts::new(name, help), labels))
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
            unknown_auth_failures: counter_vec(
                &r,
                "tenant_router_unknown_tenant_auth_failures_total",
                "Failed authentications for tenant names the catalog does not know, by reason.",
                &["reason"],
            ),
            unknown_tenant: register(
                &r,
                IntCounter::new(
                    "tenant_router_unknown_tenant_refusals_total",
                    "Connections refused because the tenant is not in the catalog.",
                ),
            ),
            bypass: register(
                &r,
                IntCounter::new(
                    "tenant_router_bypass_connections_total",
                    "Connections of bypass users, passed through without a tenant context.",
                ),
            ),
            reloads: counter_vec(
                &r,
                "tenant_router_config_reloads_total",
                "Configuration reloads (SIGHUP), by result.",
                &["result"],
            ),
            draining: register(
                &r,
                IntGauge::new(
                    "tenant_router_draining",
                    "1 while the router drains after SIGTERM.",
                ),
            ),
            catalog_up: register(
                &r,
                IntGauge::new(
                    "tenant_router_catalog_up",
                    "1 while the router's catalog connection is up.",
                ),
            ),
            catalog_queries: register(
                &r,
                IntCounter::new(
                    "tenant_router_catalog_queries_total",
                    "Queries on the catalog connection (concurrent lookups share one).",
                ),
            ),
            catalog_cache_hits: register(
                &r,
                IntCounter::new(
                    "tenant_router_catalog_cache_hits_total",
                    "Tenant lookups answered from rows kept since the tenant's last change (no query).",
                ),
            ),
            catalog_notifications: register(
                &r,
                IntCounter::new(
                    "tenant_router_catalog_notifications_total",
                    "Catalog change notifications received (pg_tenant_catalog).",
                ),
            ),
            catalog_rereads: register(
                &r,
                IntCounter::new(
                    "tenant_router_catalog_rereads_total",
                    "Rows of tenants the router holds, re-read in bulk after change notifications.",
                ),
            ),
            catalog_rereads_pending: register(
                &r,
                IntGauge::new(
                    "tenant_router_catalog_rereads_pending",
                    "Tenants the router holds that changed and wait to be re-read.",
                ),
            ),
            clients: register(
                &r,
                IntGauge::new(
                    "tenant_router_client_connections",
                    "Client connections open, handshakes included (max_client_connections caps it).",
                ),
            ),
            clients_refused: register(
                &r,
                IntCounter::new(
                    "tenant_router_client_connections_refused_total",
                    "Client connections refused because max_client_connections were open.",
                ),
            ),
            cancel_requests: counter_vec(
                &r,
                "tenant_router_cancel_requests_total",
                "Cancel requests from clients, by outcome (forwarded, dropped).",
                &["outcome"],
            ),
            pool_backends: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "tenant_router_pool_backends",
                        "Pooled backends by pool and state (idle, active).",
                    ),
                    &["pool", "state"],
                ),
            ),
            pool_waiting: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "tenant_router_pool_waiting_clients",
                        "Clients waiting for a backend of the pool.",
                    ),
                    &["pool"],
                ),
            ),
            pool_wait: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "tenant_router_pool_wait_seconds",
                        "Time a client waited for a backend of the pool.",
                    )
                    .buckets(histogram::BOUNDS.to_vec()),
                    &["pool"],
                ),
            ),
            pool_timeouts: counter_vec(
                &r,
                "tenant_router_pool_timeouts_total",
                "Clients refused because no backend of the pool became free within pool.timeout_ms.",
                &["pool"],
            ),
            pool_discarded: counter_vec(
                &r,
                "tenant_router_pool_discarded_total",
                "Pooled backends closed instead of reused, by reason.",
                &["pool", "reason"],
            ),
            pool_switches: counter_vec(
                &r,
                "tenant_router_pool_tenant_switches_total",
                "Pooled backends handed to a tenant other than the one they served last.",
                &["pool"],
            ),
            pool_reused: counter_vec(
                &r,
                "tenant_router_pool_reused_total",
                "Pooled backends handed out again instead of opening one.",
                &["pool"],
            ),
            connections_tls: counter_vec(
                &r,
                "tenant_router_connections_tls_total",
                "Client connections that sent their StartupMessage over TLS, by TLS version (1.2, 1.3).",
                &["version"],
            ),
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
