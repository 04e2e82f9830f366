//! What the catalog's modules share: its errors, the requests its worker
//! serves, what the router registers with it (`Holder`, `CatalogMetrics`)
//! whether its connection is up (`Link`), and what an admin page asks
//! for (`PageQuery`, `Counts`). A leaf: `catalog` re-exports
//! the public part; the worker, the pages and the state import it from
//! here.

use super::row::{Entry, TenantInfo};
use std::time::Instant;
use tokio::sync::oneshot;

/// Channel the extension notifies on every catalog change.
pub const CHANNEL: &str = "pg_tenant_catalog";

#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("tenant catalog unavailable: {0}")]
    Unavailable(String),
    /// The installed pg_tenant predates the function (0.3.0 adds them).
    #[error("{0} does not exist in the catalog database: tenant-router's [auth] needs pg_tenant 0.3.0 or later (ALTER EXTENSION pg_tenant UPDATE)")]
    NoFunction(&'static str),
    /// A row is not what the installed pg_tenant returns (a column of
    /// another type, or NULL where there can be none).
    #[error("the tenant catalog (pg_tenant {version}) returned an unexpected row: {detail}")]
    Shape { version: String, detail: String },
    /// The catalog database has no pg_tenant, or one whose version this
    /// router does not know how to read.
    #[error("the catalog database's pg_tenant cannot be read: {0}")]
    Schema(String),
}

/// A secret the catalog role may read (pg_tenant 0.3.0; a tenant's own
/// secret comes with its row, `TenantInfo::auth_secret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// `tenant.login_verifier(role)`: the login role's stored password.
    Login,
}

impl Secret {
    pub(super) fn function(self) -> &'static str {
        match self {
            Secret::Login => "tenant.login_verifier",
        }
    }
}

/// What the router holds per tenant besides the catalog's rows (counters,
/// the limits its open sessions apply): the catalog re-reads these
/// tenants when they change and hands over the new rows.
pub trait Holder: Send + Sync {
    /// Whether the router holds state for the tenant.
    fn holds(&self, id: &str) -> bool;
    /// Every tenant it holds state for.
    fn held(&self) -> Vec<String>;
    /// A held tenant's row re-read after a change (None: it left the
    /// catalog).
    fn reread(&self, id: &str, row: Entry);
}

/// What the catalog counts (handles into `Metrics`).
#[derive(Clone)]
pub struct CatalogMetrics {
    /// Queries run (lookups, re-reads, lists, checks).
    pub queries: prometheus::IntCounter,
    /// Lookups answered from kept rows, without a query.
    pub cache_hits: prometheus::IntCounter,
    /// Notifications received.
    pub notifications: prometheus::IntCounter,
    /// Rows re-read after notifications.
    pub rereads: prometheus::IntCounter,
}

pub(super) enum Request {
    Lookup(String, oneshot::Sender<Result<Entry, CatalogError>>),
    /// One page for the admin API (`page`).
    Page(
        PageQuery,
        oneshot::Sender<Result<Vec<TenantInfo>, CatalogError>>,
    ),
    /// Tenants by state, for the admin API (`page`).
    Counts(oneshot::Sender<Result<Counts, CatalogError>>),
    Check(oneshot::Sender<Result<(), CatalogError>>),
    Secret(
        Secret,
        String,
        oneshot::Sender<Result<Option<String>, CatalogError>>,
    ),
}

impl Request {
    pub(super) fn fail(self, e: CatalogError) {
        match self {
            Request::Lookup(_, tx) => drop(tx.send(Err(e))),
            Request::Page(_, tx) => drop(tx.send(Err(e))),
            Request::Counts(tx) => drop(tx.send(Err(e))),
            Request::Check(tx) => drop(tx.send(Err(e))),
            Request::Secret(_, _, tx) => drop(tx.send(Err(e))),
        }
    }
}

/// Whether the catalog connection is up, and since when it is not.
#[derive(Debug, Clone, Copy)]
pub(super) enum Link {
    /// Not yet connected since the router started.
    Never,
    Up,
    Down {
        since: Instant,
    },
}

/// The largest page `tenant.router_catalog_page` returns.
pub const MAX_PAGE: u32 = 1000;

/// One page to read: tenants whose id comes after `after` (None: from the
/// first), at most `limit` (1 to [`MAX_PAGE`]), optionally only ids that
/// start with `prefix` and only enabled (true) or disabled (false) ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub after: Option<String>,
    pub limit: u32,
    pub prefix: Option<String>,
    pub enabled: Option<bool>,
}

/// How many tenants the catalog has, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub tenants: i64,
    pub enabled: i64,
    pub disabled: i64,
}
