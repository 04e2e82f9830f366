//! What the router counts, per tenant and overall, for the admin API: a
//! Prometheus registry (`/metrics`, text format 0.0.4) and JSON snapshots
//! (`/tenants/{id}/metrics`) read from the same counters.
//!
//! Tenant-labelled series exist only for tenants the catalog knows (they
//! are created when such a tenant connects) and are removed when the tenant
//! is dropped from the catalog (`Metrics::forget`), so `/metrics` stays
//! bounded by the catalog however many names clients try.

use crate::auth::Failure;
use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Statement latency histogram buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Percentiles are computed over the statements of this recent window…
pub const WINDOW: Duration = Duration::from_secs(60);
/// …keeping at most this many samples per tenant.
const WINDOW_SAMPLES: usize = 4096;

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
    const ALL: [Refusal; 4] = [
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
    const ALL: [Denial; 3] = [Denial::QpsLimit, Denial::MaxQueryMs, Denial::MaxResultBytes];
    pub fn label(self) -> &'static str {
        match self {
            Denial::QpsLimit => "qps_limit",
            Denial::MaxQueryMs => "max_query_ms",
            Denial::MaxResultBytes => "max_result_bytes",
        }
    }
}

/// The registry and every metric family.
pub struct Metrics {
    registry: Registry,
    active: IntGaugeVec,
    connections: IntCounterVec,
    refused: IntCounterVec,
    statements: IntCounterVec,
    denied: IntCounterVec,
    errors: IntCounterVec,
    bytes_in: IntCounterVec,
    bytes_out: IntCounterVec,
    latency: HistogramVec,
    auth_failures: IntCounterVec,
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

const T: &[&str] = &["tenant"];

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
        Metrics {
            active: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "tenant_router_connections_active",
                        "Open client connections of the tenant.",
                    ),
                    T,
                ),
            ),
            connections: counter_vec(
                &r,
                "tenant_router_connections_total",
                "Client connections accepted for the tenant (context set).",
                T,
            ),
            refused: counter_vec(
                &r,
                "tenant_router_connections_refused_total",
                "Client connections of the tenant refused, by reason.",
                &["tenant", "reason"],
            ),
            statements: counter_vec(
                &r,
                "tenant_router_statements_total",
                "Units sent by the tenant's clients (Query, Execute and FunctionCall messages).",
                T,
            ),
            denied: counter_vec(
                &r,
                "tenant_router_statements_denied_total",
                "Statements refused or stopped by a tenant limit, by limit.",
                &["tenant", "limit"],
            ),
            errors: counter_vec(
                &r,
                "tenant_router_errors_total",
                "Error responses sent to the tenant's clients (from PostgreSQL or the router).",
                T,
            ),
            bytes_in: counter_vec(
                &r,
                "tenant_router_client_received_bytes_total",
                "Bytes relayed from the tenant's clients to PostgreSQL.",
                T,
            ),
            bytes_out: counter_vec(
                &r,
                "tenant_router_client_sent_bytes_total",
                "Bytes relayed from PostgreSQL to the tenant's clients.",
                T,
            ),
            latency: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "tenant_router_statement_duration_seconds",
                        "Time from a unit (Query, Execute, FunctionCall) reaching the router to its answer.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    T,
                ),
            ),
            auth_failures: counter_vec(
                &r,
                "tenant_router_auth_failures_total",
                "Failed authentications checked by the router for the tenant, by reason.",
                &["tenant", "reason"],
            ),
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
                    .buckets(LATENCY_BUCKETS.to_vec()),
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

    /// The handles of one tenant's series (created at zero).
    pub fn tenant(&self, id: &str) -> TenantMetrics {
        TenantMetrics {
            connections: self.connections.with_label_values(&[id]),
            refused: Refusal::ALL.map(|r| self.refused.with_label_values(&[id, r.label()])),
            statements: self.statements.with_label_values(&[id]),
            denied: Denial::ALL.map(|d| self.denied.with_label_values(&[id, d.label()])),
            errors: self.errors.with_label_values(&[id]),
            bytes_in: self.bytes_in.with_label_values(&[id]),
            bytes_out: self.bytes_out.with_label_values(&[id]),
            latency: self.latency.with_label_values(&[id]),
            auth_failures: Failure::ALL
                .map(|f| self.auth_failures.with_label_values(&[id, f.label()])),
            window: Mutex::new(VecDeque::new()),
        }
    }

    /// Set a tenant's open-connection gauge (at scrape time).
    pub fn set_active(&self, id: &str, n: u32) {
        self.active.with_label_values(&[id]).set(n as i64);
    }

    /// Remove every series of a tenant that left the catalog.
    pub fn forget(&self, id: &str) {
        for v in [
            &self.connections,
            &self.statements,
            &self.errors,
            &self.bytes_in,
            &self.bytes_out,
        ] {
            let _ = v.remove_label_values(&[id]);
        }
        let _ = self.active.remove_label_values(&[id]);
        let _ = self.latency.remove_label_values(&[id]);
        for r in Refusal::ALL {
            let _ = self.refused.remove_label_values(&[id, r.label()]);
        }
        for d in Denial::ALL {
            let _ = self.denied.remove_label_values(&[id, d.label()]);
        }
        for f in Failure::ALL {
            let _ = self.auth_failures.remove_label_values(&[id, f.label()]);
        }
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

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// One tenant's counters (handles into `Metrics`) and its recent latencies.
pub struct TenantMetrics {
    pub connections: IntCounter,
    refused: [IntCounter; 4],
    pub statements: IntCounter,
    denied: [IntCounter; 3],
    pub errors: IntCounter,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    latency: Histogram,
    auth_failures: [IntCounter; Failure::ALL.len()],
    window: Mutex<VecDeque<(Instant, f64)>>,
}

impl std::fmt::Debug for TenantMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMetrics")
            .field("statements", &self.statements.get())
            .finish_non_exhaustive()
    }
}

impl TenantMetrics {
    pub fn refused(&self, r: Refusal) {
        self.refused[r as usize].inc();
    }

    pub fn auth_failed(&self, f: Failure) {
        self.auth_failures[f as usize].inc();
    }

    pub fn denied(&self, d: Denial) {
        self.denied[d as usize].inc();
    }

    /// Record one statement batch's latency.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        self.latency.observe(secs);
        let now = Instant::now();
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        while w.len() >= WINDOW_SAMPLES
            || w.front()
                .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            w.pop_front();
        }
        w.push_back((now, secs));
    }

    /// The JSON view of these counters.
    pub fn snapshot(&self, tenant: &str, active: u32) -> TenantSnapshot {
        let now = Instant::now();
        let mut recent: Vec<f64> = {
            let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
            w.iter()
                .filter(|(t, _)| now.duration_since(*t) <= WINDOW)
                .map(|(_, s)| (s * 1_000_000.0).round() / 1000.0)
                .collect()
        };
        recent.sort_by(f64::total_cmp);
        let refused = |r: Refusal| self.refused[r as usize].get();
        let denied = |d: Denial| self.denied[d as usize].get();
        TenantSnapshot {
            tenant: tenant.to_owned(),
            active_connections: active,
            connections_total: self.connections.get(),
            connections_refused: Refused {
                max_connections: refused(Refusal::MaxConnections),
                disabled: refused(Refusal::Disabled),
                auth: refused(Refusal::Auth),
                error: refused(Refusal::Error),
            },
            auth_failures: Failure::ALL
                .iter()
                .map(|f| (f.label(), self.auth_failures[*f as usize].get()))
                .collect(),
            statements_total: self.statements.get(),
            statements_denied: Denied {
                qps_limit: denied(Denial::QpsLimit),
                max_query_ms: denied(Denial::MaxQueryMs),
                max_result_bytes: denied(Denial::MaxResultBytes),
            },
            errors_total: self.errors.get(),
            bytes_in: self.bytes_in.get(),
            bytes_out: self.bytes_out.get(),
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
    pub auth_failures: std::collections::BTreeMap<&'static str, u64>,
    pub statements_total: u64,
    pub statements_denied: Denied,
    pub errors_total: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub latency_ms: Latency,
}

impl TenantSnapshot {
    /// A tenant that has had no connection through this router.
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
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn counters_render_with_tenant_labels_and_forget_removes_them() {
        let m = Metrics::new();
        let a = m.tenant("acme");
        a.statements.inc_by(3);
        a.denied(Denial::QpsLimit);
        a.observe(Duration::from_millis(2));
        m.set_active("acme", 2);
        let text = m.render();
        assert!(text.contains("tenant_router_statements_total{tenant=\"acme\"} 3"));
        assert!(text.contains(
            "tenant_router_statements_denied_total{limit=\"qps_limit\",tenant=\"acme\"} 1"
        ));
        assert!(text.contains("tenant_router_connections_active{tenant=\"acme\"} 2"));
        assert!(text.contains("tenant_router_statement_duration_seconds_count{tenant=\"acme\"} 1"));
        a.auth_failed(Failure::WrongPassword);
        assert!(m.render().contains(
            "tenant_router_auth_failures_total{reason=\"wrong_password\",tenant=\"acme\"} 1"
        ));
        let s = a.snapshot("acme", 2);
        assert_eq!(s.auth_failures["wrong_password"], 1);
        assert_eq!(s.auth_failures["unknown_tenant"], 0);
        assert_eq!((s.statements_total, s.statements_denied.qps_limit), (3, 1));
        assert_eq!(s.latency_ms.samples, 1);
        m.forget("acme");
        assert!(!m.render().contains("acme"), "{}", m.render());
    }

    #[test]
    fn window_is_bounded() {
        let m = Metrics::new();
        let a = m.tenant("t");
        for _ in 0..(WINDOW_SAMPLES + 10) {
            a.observe(Duration::from_micros(100));
        }
        assert_eq!(a.snapshot("t", 0).latency_ms.samples, WINDOW_SAMPLES);
    }
}
