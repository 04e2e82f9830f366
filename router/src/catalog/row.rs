//! One tenant's row as `tenant.router_catalog` returns it (read by
//! `schema::RowDecoder`, as the installed pg_tenant returns it).

use std::sync::Arc;

/// One tenant's effective settings (defaults resolved by the extension).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TenantInfo {
    pub id: String,
    pub enabled: bool,
    pub isolation: String,
    pub database_name: Option<String>,
    pub schema_name: Option<String>,
    pub max_connections: i32,
    pub qps_limit: i32,
    pub burst_multiplier: f32,
    pub max_query_ms: i32,
    pub max_result_bytes: i64,
    /// The tenant's secret (`tenant.auth_secret`, pg_tenant 0.3.0): read
    /// with the row, never shown.
    #[serde(skip)]
    pub auth_secret: Option<Redacted>,
    /// How its backends are pooled (pg_tenant 0.4.0; earlier: defaults).
    pub pool: PoolSettings,
    /// How long a client may stay idle outside a transaction before the
    /// router closes it (FATAL 57P05); 0: no limit (pg_tenant 0.6.0;
    /// earlier: 0).
    pub client_idle_timeout_ms: i32,
    /// The sealed context a database-isolated tenant's backends get
    /// (`tenant.context_document`, pg_tenant 0.8.0; None for other
    /// isolations and older catalogs): signed as it is, never shown.
    #[serde(skip)]
    pub context_document: Option<Arc<str>>,
    /// The named upstream (`[upstreams.<name>]`) the tenant lives on
    /// (pg_tenant 0.9.0); None: the main upstream (shown as "main").
    #[serde(serialize_with = "upstream_name")]
    pub upstream: Option<String>,
    /// When it was read, in the order of the catalog connection's queries
    /// (each sees every change committed before it): of two rows of a
    /// tenant, the one with the larger number is the newer. 0: not read
    /// from the catalog (tests).
    #[serde(skip)]
    pub read_seq: u64,
}

/// A tenant's upstream as the admin API shows it: its name, "main" for
/// the main one.
fn upstream_name<S: serde::Serializer>(u: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(u.as_deref().unwrap_or(crate::config::MAIN))
}

#[cfg(test)]
impl TenantInfo {
    /// A row for unit tests: enabled, row-level isolation, no limits.
    pub fn for_test(id: &str) -> TenantInfo {
        TenantInfo {
            id: id.into(),
            enabled: true,
            isolation: "rls".into(),
            database_name: None,
            schema_name: None,
            max_connections: 0,
            qps_limit: 0,
            burst_multiplier: 1.0,
            max_query_ms: 0,
            max_result_bytes: 0,
            auth_secret: None,
            pool: Default::default(),
            client_idle_timeout_ms: 0,
            context_document: None,
            upstream: None,
            read_seq: 0,
        }
    }
}

/// `pool_mode` of a tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolMode {
    /// A client keeps its backend until it leaves.
    #[default]
    Session,
    /// A client holds a backend for one transaction at a time.
    Transaction,
}

/// A tenant's pool settings (effective values).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolSettings {
    pub mode: PoolMode,
    /// Its own pool instead of its share of the shared one.
    pub dedicated: bool,
    /// Its share of a shared pool, or the size of its own.
    pub size: i32,
    /// Backends its own pool keeps open.
    pub min_idle: i32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            mode: PoolMode::Session,
            dedicated: false,
            size: 10,
            min_idle: 0,
        }
    }
}

/// A secret kept as text; Debug shows only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(pub String);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A lookup's answer: the row, or None for a tenant the catalog does not
/// know.
pub type Entry = Option<Arc<TenantInfo>>;
