//! The tenant catalog as the router sees it: one connection of the
//! router's own role reading `tenant.router_catalog($1)`, owned by one
//! worker task (`worker`), and what the router knows between queries
//! (`known`).
//!
//! - A tenant's row, once read, serves new connections without a query:
//!   every catalog change notifies `pg_tenant_catalog` (the worker
//!   `LISTEN`s), and a notification drops the tenant's row at once. A
//!   change reaches new connections when its notification reaches the
//!   router, usually within a millisecond of the commit.
//! - A notification re-reads only the tenants the router holds state for
//!   (`Holder`: open sessions, counters), in bulk (one query for up to
//!   `REREAD_BATCH` ids), between lookups: a storm of changes delays a
//!   login by one query at most. Notifications for other tenants cost a
//!   hash lookup.
//! - Lookups are batched: every lookup waiting when a query starts shares
//!   the next one (`unnest($1)`), and `tenant.router_catalog(id)` reads by
//!   primary key, so a lookup costs the same at 100,000 tenants as at 100.
//! - The connection reconnects on its own, with backoff; on every
//!   (re)connection rows kept from before are dropped (notifications may
//!   have been missed) and everything held is re-read.
//!
//! Fail-closed: while the catalog cannot be read, rows kept when it went
//! down serve for `cache_ttl_ms`, and everything else is refused. Unknown
//! names are remembered for `negative_ttl_ms`, or until a notification
//! names them.

mod known;
pub mod page;
mod row;
mod worker;

pub use page::{Counts, PageQuery, MAX_PAGE};
pub use row::{Entry, PoolMode, PoolSettings, Redacted, TenantInfo};

use crate::config::Catalog as CatalogConfig;
use known::Known;
use row::{POOL_AND_IDLE_COLUMNS, POOL_COLUMNS};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::Client;

/// Channel the extension notifies on every catalog change.
pub const CHANNEL: &str = "pg_tenant_catalog";

#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("tenant catalog unavailable: {0}")]
    Unavailable(String),
    /// The installed pg_tenant predates the function (0.3.0 adds them).
    #[error("{0} does not exist in the catalog database: tenant-router's [auth] needs pg_tenant 0.3.0 or later (ALTER EXTENSION pg_tenant UPDATE)")]
    NoFunction(&'static str),
}

/// A secret the catalog role may read (pg_tenant 0.3.0; a tenant's own
/// secret comes with its row, `TenantInfo::auth_secret`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// `tenant.login_verifier(role)`: the login role's stored password.
    Login,
}

impl Secret {
    fn function(self) -> &'static str {
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

enum Request {
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
    fn fail(self, e: CatalogError) {
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
enum Link {
    /// Not yet connected since the router started.
    Never,
    Up,
    Down {
        since: Instant,
    },
}

pub struct Catalog {
    url: String,
    /// TLS to the catalog (`tls.upstream_tls`, read at start).
    tls: Option<(
        Arc<tokio_rustls::rustls::ClientConfig>,
        crate::tls::UpstreamTls,
    )>,
    holder: OnceLock<Arc<dyn Holder>>,
    /// Rows, unknown names, reads in flight, tenants to re-read.
    known: Known,
    /// How long kept rows serve once the catalog went down.
    fallback_ttl: Duration,
    requests: mpsc::Sender<Request>,
    inbox: Mutex<Option<mpsc::Receiver<Request>>>,
    link: Mutex<Link>,
    /// `link` is Up (read on every lookup).
    connected: AtomicBool,
    /// Numbers the catalog connection's queries, in the order they run.
    seq: AtomicU64,
    /// Whether the catalog database has `tenant.auth_secret` (checked at
    /// each connection): lookups then read each tenant's secret too.
    has_secrets: AtomicBool,
    /// When `has_secrets` or `has_pool` was last found false (re-checked at
    /// most once a second, so an `ALTER EXTENSION pg_tenant UPDATE` is seen
    /// at once).
    schema_checked: Mutex<Option<Instant>>,
    /// Whether `tenant.router_catalog` has the pool columns (pg_tenant
    /// 0.4.0), checked with `has_secrets`.
    has_pool: AtomicBool,
    /// Whether `tenant.router_catalog` has `client_idle_timeout_ms`
    /// (pg_tenant 0.6.0), checked with `has_secrets`.
    has_idle: AtomicBool,
    /// Whether the catalog has `tenant.router_catalog_page` and
    /// `router_catalog_counts` (pg_tenant 0.7.0), checked with
    /// `has_secrets`: the admin API's pages read them, else every tenant.
    has_pages: AtomicBool,
    metrics: OnceLock<CatalogMetrics>,
    /// One admin read (a page, the counts) on the catalog connection at a
    /// time: each round of the worker serves at most one besides the
    /// lookups, so the admin API never holds logins up by more than one
    /// such query.
    admin_reads: tokio::sync::Semaphore,
}

impl Catalog {
    pub fn new(cfg: &CatalogConfig, tls: &crate::tls::TlsSettings) -> Arc<Catalog> {
        let (tx, rx) = mpsc::channel(4096);
        Arc::new(Catalog {
            url: cfg.url.clone(),
            tls: tls.client.clone().map(|c| (c, tls.upstream_tls)),
            holder: OnceLock::new(),
            known: Known::new(
                Duration::from_millis(cfg.cache_idle_ms),
                Duration::from_millis(cfg.negative_ttl_ms),
            ),
            fallback_ttl: Duration::from_millis(cfg.cache_ttl_ms),
            requests: tx,
            inbox: Mutex::new(Some(rx)),
            link: Mutex::new(Link::Never),
            connected: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            has_secrets: AtomicBool::new(false),
            has_pool: AtomicBool::new(false),
            has_idle: AtomicBool::new(false),
            has_pages: AtomicBool::new(false),
            schema_checked: Mutex::new(None),
            metrics: OnceLock::new(),
            admin_reads: tokio::sync::Semaphore::new(1),
        })
    }

    /// Start the worker (once; inside a tokio runtime), counting into
    /// `metrics`.
    pub fn start(self: &Arc<Self>, metrics: CatalogMetrics) {
        let _ = self.metrics.set(metrics);
        let rx = self.inbox.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(worker::run(Arc::downgrade(self), rx));
        }
    }

    /// Register what the router holds per tenant (once).
    pub fn set_holder(&self, h: Arc<dyn Holder>) {
        let _ = self.holder.set(h);
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, CatalogError>>) -> Request,
    ) -> Result<T, CatalogError> {
        let (tx, rx) = oneshot::channel();
        let gone = || {
            CatalogError::Unavailable(
                "the catalog connection was lost or did not answer in time".into(),
            )
        };
        self.requests.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// The tenant's row, `None` for an unknown tenant: a row kept since
    /// its last change, or read now. While the catalog cannot be read, a
    /// row kept when it went down, for `cache_ttl_ms`.
    pub async fn lookup(&self, id: &str) -> Result<Entry, CatalogError> {
        if self.known.is_unknown(id) {
            return Ok(None);
        }
        if self.connected.load(Ordering::Acquire) {
            if let Some(row) = self.known.row(id) {
                if let Some(m) = self.metrics.get() {
                    m.cache_hits.inc();
                }
                return Ok(Some(row));
            }
        }
        match self.ask(|tx| Request::Lookup(id.to_owned(), tx)).await {
            Ok(e) => Ok(e),
            Err(e) => match self.fallback(id) {
                Some(row) => {
                    tracing::debug!(tenant = id, error = %e, "catalog down: using the kept row");
                    Ok(Some(row))
                }
                None => Err(e),
            },
        }
    }

    /// A kept row, while the catalog has been down for less than
    /// `cache_ttl_ms`.
    fn fallback(&self, id: &str) -> Option<Arc<TenantInfo>> {
        let link = *self.link.lock().unwrap_or_else(|p| p.into_inner());
        match link {
            Link::Down { since } if since.elapsed() < self.fallback_ttl => self.known.row(id),
            _ => None,
        }
    }

    /// The row a session publishes once its tenant's counters exist: the
    /// kept row if it was read after `row`. When the router keeps no row
    /// of this read (a change dropped it while this login ran, before the
    /// router held the tenant), the tenant is re-read, so the change
    /// reaches the session through its counters.
    pub fn newest(&self, row: Arc<TenantInfo>) -> Arc<TenantInfo> {
        match self.known.row(&row.id) {
            Some(kept) if kept.read_seq > row.read_seq => kept,
            Some(kept) if kept.read_seq == row.read_seq => row,
            _ => {
                if row.read_seq > 0 {
                    self.known.recheck(&row.id);
                }
                row
            }
        }
    }

    /// One page of the catalog (for the admin API), read now: see
    /// `page`.
    pub async fn page(&self, q: PageQuery) -> Result<Vec<TenantInfo>, CatalogError> {
        let _turn = self.admin_turn().await?;
        self.ask(|tx| Request::Page(q, tx)).await
    }

    /// How many tenants the catalog has, by state (for the admin API).
    pub async fn counts(&self) -> Result<Counts, CatalogError> {
        let _turn = self.admin_turn().await?;
        self.ask(Request::Counts).await
    }

    async fn admin_turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, CatalogError> {
        self.admin_reads
            .acquire()
            .await
            .map_err(|_| CatalogError::Unavailable("the catalog is shutting down".into()))
    }

    /// A secret, read now (never cached): None when the catalog has none
    /// for `name` (no such tenant or role, no secret, refused role).
    pub async fn secret(&self, kind: Secret, name: &str) -> Result<Option<String>, CatalogError> {
        self.ask(|tx| Request::Secret(kind, name.to_owned(), tx))
            .await
    }

    /// A trivial query (readiness check).
    pub async fn check(&self) -> Result<(), CatalogError> {
        self.ask(Request::Check).await
    }

    /// Whether the catalog connection is up.
    pub async fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Tenants waiting to be re-read after changes.
    pub fn rereads_pending(&self) -> usize {
        self.known.stale_len()
    }

    /// A notification: forget what is known of the tenant (`"*"`: of
    /// all), and queue it for re-reading if the router holds it. Runs on
    /// the task that reads the catalog connection, for every notification:
    /// constant work (a forged flood must not hold up the answers behind
    /// it).
    fn changed(&self, payload: &str) {
        if let Some(m) = self.metrics.get() {
            m.notifications.inc();
        }
        let holder = self.holder.get();
        self.known
            .changed(payload, |id| holder.is_some_and(|h| h.holds(id)));
    }

    /// Everything the router holds, for a pass of re-reads.
    fn held(&self) -> Vec<String> {
        self.holder.get().map(|h| h.held()).unwrap_or_default()
    }

    /// The connection is up: rows kept from before may have missed
    /// changes, so they are not served, and everything held is re-read.
    fn came_up(&self) {
        self.known.reset();
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Link::Up;
        self.connected.store(true, Ordering::Release);
    }

    /// The connection is gone: kept rows serve for `cache_ttl_ms`.
    /// (Failing to reconnect leaves `since` as it was.)
    fn went_down(&self) {
        self.connected.store(false, Ordering::Release);
        let mut link = self.link.lock().unwrap_or_else(|p| p.into_inner());
        if !matches!(*link, Link::Down { .. }) {
            *link = Link::Down {
                since: Instant::now(),
            };
        }
    }

    fn counted(&self) {
        if let Some(m) = self.metrics.get() {
            m.queries.inc();
        }
    }

    /// The number of the next query on the catalog connection.
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Find out whether the catalog database has `tenant.auth_secret`, and
    /// the pool columns and `client_idle_timeout_ms` of
    /// `tenant.router_catalog` (now, or when it lacked any of them more
    /// than a second ago). An error leaves
    /// the answer as it was and is returned: a lookup must never go on
    /// without secrets because the check failed (it would let a role's own
    /// password open a tenant that has a secret).
    async fn check_schema(&self, client: &Client, now: bool) -> Result<(), tokio_postgres::Error> {
        if self.has_secrets.load(Ordering::Acquire)
            && self.has_pool.load(Ordering::Acquire)
            && self.has_idle.load(Ordering::Acquire)
            && self.has_pages.load(Ordering::Acquire)
            && !now
        {
            return Ok(());
        }
        {
            let mut last = self
                .schema_checked
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !now && last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        self.counted();
        let found = client
            .query_one(
                "SELECT to_regprocedure('tenant.auth_secret(text)') IS NOT NULL, \
                 coalesce((SELECT 'pool_mode' = ANY (proargnames) FROM pg_catalog.pg_proc \
                   WHERE oid = to_regprocedure('tenant.router_catalog(text)')), false), \
                 coalesce((SELECT 'client_idle_timeout_ms' = ANY (proargnames) FROM pg_catalog.pg_proc \
                   WHERE oid = to_regprocedure('tenant.router_catalog(text)')), false), \
                 to_regprocedure('tenant.router_catalog_page(text, integer, text, boolean)') IS NOT NULL \
                   AND to_regprocedure('tenant.router_catalog_counts()') IS NOT NULL",
                &[],
            )
            .await
            .and_then(|r| {
                Ok((
                    r.try_get::<_, bool>(0)?,
                    r.try_get::<_, bool>(1)?,
                    r.try_get::<_, bool>(2)?,
                    r.try_get::<_, bool>(3)?,
                ))
            });
        match found {
            Ok((secrets, pool, idle, pages)) => {
                let had = (
                    self.has_secrets.load(Ordering::Acquire),
                    self.has_pool.load(Ordering::Acquire),
                    self.has_idle.load(Ordering::Acquire),
                );
                if (secrets && !had.0) || (pool && !had.1) || (idle && !had.2) {
                    // pg_tenant was updated (ALTER EXTENSION sends no
                    // notification): rows kept lack what it added.
                    self.known.changed("*", |_| false);
                }
                self.has_secrets.store(secrets, Ordering::Release);
                self.has_pool.store(pool, Ordering::Release);
                self.has_idle.store(idle, Ordering::Release);
                self.has_pages.store(pages, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                // Not answered: the next lookup asks again.
                *self
                    .schema_checked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
                Err(e)
            }
        }
    }

    /// The pool columns and the client idle bound, as far as the installed
    /// pg_tenant has them (0.6.0 has both).
    fn optional_columns(&self) -> &'static str {
        if self.has_pool.load(Ordering::Acquire) && self.has_idle.load(Ordering::Acquire) {
            POOL_AND_IDLE_COLUMNS
        } else if self.has_pool.load(Ordering::Acquire) {
            POOL_COLUMNS
        } else {
            ""
        }
    }
}
