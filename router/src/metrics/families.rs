//! Every metric family `/metrics` exposes, declared once: its name, help
//! text and type. The registry's families are registered from these
//! (`Metrics::new`), the tenant and aggregate families are rendered from
//! them (`render`), and `ALL` lists them for the test that checks a
//! scrape shows exactly these.

/// A family's TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// As the text format writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family.
#[derive(Debug, PartialEq, Eq)]
pub struct Family {
    pub name: &'static str,
    /// A constant without `\` or newlines (written as is).
    pub help: &'static str,
    pub kind: Kind,
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: Kind::Counter,
    }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: Kind::Gauge,
    }
}

const fn histogram(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        kind: Kind::Histogram,
    }
}

// The router's own families (a Prometheus registry).

pub const UNKNOWN_AUTH_FAILURES: Family = counter(
    "tenant_router_unknown_tenant_auth_failures_total",
    "Failed authentications for tenant names the catalog does not know, by reason.",
);
pub const UNKNOWN_TENANT: Family = counter(
    "tenant_router_unknown_tenant_refusals_total",
    "Connections refused because the tenant is not in the catalog.",
);
pub const BYPASS: Family = counter(
    "tenant_router_bypass_connections_total",
    "Connections of bypass users, passed through without a tenant context.",
);
pub const RELOADS: Family = counter(
    "tenant_router_config_reloads_total",
    "Configuration reloads (SIGHUP), by result.",
);
pub const DRAINING: Family = gauge(
    "tenant_router_draining",
    "1 while the router drains after SIGTERM.",
);
pub const CATALOG_UP: Family = gauge(
    "tenant_router_catalog_up",
    "1 while the router's catalog connection is up.",
);
pub const CATALOG_QUERIES: Family = counter(
    "tenant_router_catalog_queries_total",
    "Queries on the catalog connection (concurrent lookups share one).",
);
pub const CATALOG_CACHE_HITS: Family = counter(
    "tenant_router_catalog_cache_hits_total",
    "Tenant lookups answered from rows kept since the tenant's last change (no query).",
);
pub const CATALOG_NOTIFICATIONS: Family = counter(
    "tenant_router_catalog_notifications_total",
    "Catalog change notifications received (pg_tenant_catalog).",
);
pub const CATALOG_REREADS: Family = counter(
    "tenant_router_catalog_rereads_total",
    "Rows of tenants the router holds, re-read in bulk after change notifications.",
);
pub const CATALOG_REREADS_PENDING: Family = gauge(
    "tenant_router_catalog_rereads_pending",
    "Tenants the router holds that changed and wait to be re-read.",
);
pub const CLIENTS: Family = gauge(
    "tenant_router_client_connections",
    "Client connections open, handshakes included (max_client_connections caps it).",
);
pub const CLIENTS_REFUSED: Family = counter(
    "tenant_router_client_connections_refused_total",
    "Client connections refused because max_client_connections were open.",
);
pub const CANCEL_REQUESTS: Family = counter(
    "tenant_router_cancel_requests_total",
    "Cancel requests from clients, by outcome (forwarded, dropped).",
);
pub const POOL_BACKENDS: Family = gauge(
    "tenant_router_pool_backends",
    "Pooled backends by pool and state (idle, active).",
);
pub const POOL_WAITING: Family = gauge(
    "tenant_router_pool_waiting_clients",
    "Clients waiting for a backend of the pool.",
);
pub const POOL_WAIT: Family = histogram(
    "tenant_router_pool_wait_seconds",
    "Time a client waited for a backend of the pool.",
);
pub const POOL_TIMEOUTS: Family = counter(
    "tenant_router_pool_timeouts_total",
    "Clients refused because no backend of the pool became free within pool.timeout_ms.",
);
pub const POOL_DISCARDED: Family = counter(
    "tenant_router_pool_discarded_total",
    "Pooled backends closed instead of reused, by reason.",
);
pub const POOL_SWITCHES: Family = counter(
    "tenant_router_pool_tenant_switches_total",
    "Pooled backends handed to a tenant other than the one they served last.",
);
pub const POOL_REUSED: Family = counter(
    "tenant_router_pool_reused_total",
    "Pooled backends handed out again instead of opening one.",
);
pub const UPSTREAM_UP: Family = gauge(
    "tenant_router_upstream_up",
    "1 when the upstream (main or an [upstreams.<name>]) answered the last probe like PostgreSQL, else 0 (probed by /ready and each scrape).",
);
pub const CONNECTIONS_TLS: Family = counter(
    "tenant_router_connections_tls_total",
    "Client connections that sent their StartupMessage over TLS, by TLS version (1.2, 1.3).",
);

// The aggregates over all tenants (rendered by `render::aggregates`).

pub const TENANTS_TRACKED: Family = gauge(
    "tenant_router_tenants_tracked",
    "Tenants whose state (counters, series) the router holds now.",
);
pub const TENANTS_DROPPED_IDLE: Family = counter(
    "tenant_router_tenants_dropped_idle_total",
    "Tenants whose state was dropped after metrics.tenant_idle_ms without a connection.",
);
pub const ALL_CONNECTIONS_ACTIVE: Family = gauge(
    "tenant_router_all_tenants_connections_active",
    "Open client connections of all tenants.",
);

const CONNECTIONS_HELP: &str = "Client connections accepted for the tenant (context set).";
const STATEMENTS_HELP: &str =
    "Units sent by the tenant's clients (Query, Execute and FunctionCall messages).";
const ERRORS_HELP: &str =
    "Error responses sent to the tenant's clients (from PostgreSQL or the router).";
const RECEIVED_HELP: &str = "Bytes relayed from the tenant's clients to PostgreSQL.";
const SENT_HELP: &str = "Bytes relayed from PostgreSQL to the tenant's clients.";
const REFUSED_HELP: &str = "Client connections of the tenant refused, by reason.";
const DENIED_HELP: &str = "Statements refused or stopped by a tenant limit, by limit.";
const AUTH_FAILURES_HELP: &str =
    "Failed authentications checked by the router for the tenant, by reason.";
const DURATION_HELP: &str =
    "Time from a unit (Query, Execute, FunctionCall) reaching the router to its answer.";

pub const ALL_CONNECTIONS: Family = counter(
    "tenant_router_all_tenants_connections_total",
    CONNECTIONS_HELP,
);
pub const ALL_STATEMENTS: Family = counter(
    "tenant_router_all_tenants_statements_total",
    STATEMENTS_HELP,
);
pub const ALL_ERRORS: Family = counter("tenant_router_all_tenants_errors_total", ERRORS_HELP);
pub const ALL_RECEIVED: Family = counter(
    "tenant_router_all_tenants_client_received_bytes_total",
    RECEIVED_HELP,
);
pub const ALL_SENT: Family = counter(
    "tenant_router_all_tenants_client_sent_bytes_total",
    SENT_HELP,
);
pub const ALL_REFUSED: Family = counter(
    "tenant_router_all_tenants_connections_refused_total",
    REFUSED_HELP,
);
pub const ALL_DENIED: Family = counter(
    "tenant_router_all_tenants_statements_denied_total",
    DENIED_HELP,
);
pub const ALL_AUTH_FAILURES: Family = counter(
    "tenant_router_all_tenants_auth_failures_total",
    AUTH_FAILURES_HELP,
);
pub const ALL_DURATION: Family = histogram(
    "tenant_router_all_tenants_statement_duration_seconds",
    DURATION_HELP,
);

// The tenant families (a `tenant` label; rendered by `render::family`).

pub const CONNECTIONS_ACTIVE: Family = gauge(
    "tenant_router_connections_active",
    "Open client connections of the tenant.",
);
pub const CONNECTIONS: Family = counter("tenant_router_connections_total", CONNECTIONS_HELP);
pub const STATEMENTS: Family = counter("tenant_router_statements_total", STATEMENTS_HELP);
pub const ERRORS: Family = counter("tenant_router_errors_total", ERRORS_HELP);
pub const RECEIVED: Family = counter("tenant_router_client_received_bytes_total", RECEIVED_HELP);
pub const SENT: Family = counter("tenant_router_client_sent_bytes_total", SENT_HELP);
pub const REFUSED: Family = counter("tenant_router_connections_refused_total", REFUSED_HELP);
pub const DENIED: Family = counter("tenant_router_statements_denied_total", DENIED_HELP);
pub const AUTH_FAILURES: Family = counter("tenant_router_auth_failures_total", AUTH_FAILURES_HELP);
pub const DURATION: Family = histogram("tenant_router_statement_duration_seconds", DURATION_HELP);

/// Every family, once.
pub const ALL: [&Family; 45] = [
    &UNKNOWN_AUTH_FAILURES,
    &UNKNOWN_TENANT,
    &BYPASS,
    &RELOADS,
    &DRAINING,
    &CATALOG_UP,
    &CATALOG_QUERIES,
    &CATALOG_CACHE_HITS,
    &CATALOG_NOTIFICATIONS,
    &CATALOG_REREADS,
    &CATALOG_REREADS_PENDING,
    &CLIENTS,
    &CLIENTS_REFUSED,
    &CANCEL_REQUESTS,
    &POOL_BACKENDS,
    &POOL_WAITING,
    &POOL_WAIT,
    &POOL_TIMEOUTS,
    &POOL_DISCARDED,
    &POOL_SWITCHES,
    &POOL_REUSED,
    &CONNECTIONS_TLS,
    &UPSTREAM_UP,
    &TENANTS_TRACKED,
    &TENANTS_DROPPED_IDLE,
    &ALL_CONNECTIONS_ACTIVE,
    &ALL_CONNECTIONS,
    &ALL_STATEMENTS,
    &ALL_ERRORS,
    &ALL_RECEIVED,
    &ALL_SENT,
    &ALL_REFUSED,
    &ALL_DENIED,
    &ALL_AUTH_FAILURES,
    &ALL_DURATION,
    &CONNECTIONS_ACTIVE,
    &CONNECTIONS,
    &STATEMENTS,
    &ERRORS,
    &RECEIVED,
    &SENT,
    &REFUSED,
    &DENIED,
    &AUTH_FAILURES,
    &DURATION,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let mut names = std::collections::HashSet::new();
        for f in ALL {
            assert!(names.insert(f.name), "{} declared twice", f.name);
            assert!(f.name.starts_with("tenant_router_"), "{}", f.name);
            assert!(!f.help.contains(['\\', '\n']), "{}", f.name);
            assert_eq!(
                f.name.ends_with("_total"),
                f.kind == Kind::Counter,
                "{}: counters and only counters end in _total",
                f.name
            );
        }
    }
}
