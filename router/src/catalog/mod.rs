//! The tenant catalog as the router sees it: one connection of the
//! router's own role reading `tenant.router_catalog($1)`, owned by one
//! worker task (`worker`, restarted by `supervise` if it dies), and what
//! the router knows between queries (`known`). Which pg_tenant is
//! installed is read per connection (`schema`), and each version's rows
//! have a decoder of their own that reports a row of another shape as an
//! error. This module is the API (`Catalog`'s lookups, pages, secrets);
//! what its children share is in leaves (`types`, `row`, `state`), so
//! none of them imports this one.
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
mod page;
mod row;
mod schema;
mod state;
mod supervise;
mod types;
mod worker;

pub use row::{Entry, PoolMode, PoolSettings, Redacted, TenantInfo};
pub use state::Catalog;
pub use types::{
    CatalogError, CatalogMetrics, Counts, Holder, PageQuery, Secret, CHANNEL, MAX_PAGE,
};

use crate::config::Catalog as CatalogConfig;
use known::Known;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use types::{Link, Request};

impl Catalog {
    pub fn new(cfg: &CatalogConfig, tls: &crate::tls::TlsSettings) -> Arc<Catalog> {
        let (tx, rx) = mpsc::channel(4096);
        Arc::new(Catalog {
            url: cfg.url.clone(),
            password: cfg.password.clone(),
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
            metrics: OnceLock::new(),
            admin_reads: tokio::sync::Semaphore::new(1),
        })
    }

    /// Start the worker (once; inside a tokio runtime), counting into
    /// `metrics`. It is supervised: if it panics, the requests it was
    /// serving get an error, requests meanwhile get one at once, and it is
    /// started again after a backoff (`supervise`).
    pub fn start(self: &Arc<Self>, metrics: CatalogMetrics) {
        let _ = self.metrics.set(metrics);
        let rx = self.inbox.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            let weak = Arc::downgrade(self);
            let died = weak.clone();
            tokio::spawn(supervise::supervise(
                rx,
                move |rx| worker::run(weak.clone(), rx),
                move || {
                    if let Some(c) = died.upgrade() {
                        c.went_down();
                    }
                },
                |r: Request| {
                    r.fail(CatalogError::Unavailable(
                        "the catalog worker is restarting".into(),
                    ))
                },
                supervise::Backoff::DEFAULT,
            ));
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

    /// Read `id` again soon (a row that looks older than the catalog: a
    /// database tenant without its sealed context, kept from before an
    /// `ALTER EXTENSION pg_tenant UPDATE`, which notifies nothing). The
    /// re-read checks the catalog's version first, and a new version drops
    /// every kept row.
    pub fn recheck(&self, id: &str) {
        self.known.recheck(id);
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
}
