//! The tenant catalog as the router sees it: one connection of the
//! router's own role reading `tenant.router_catalog($1)`, owned by one
//! worker task that
//!
//! - connects on its own, with backoff, and reconnects the same way when
//!   the connection drops (no lookup needed to bring it back);
//! - `LISTEN pg_tenant_catalog`s, and on every (re)connection tells the
//!   listener that anything may have changed, so rows in use are re-read;
//! - answers lookups in batches: every lookup waiting when a query starts
//!   shares the next one (`unnest($1)`), so a flood of names costs one
//!   query per round trip, not one per name.
//!
//! A lookup always asks Postgres (a new connection sees a change at once);
//! the cache of known rows (TTL `cache_ttl_ms`) answers only while the
//! catalog cannot be read. Unknown names are remembered for
//! `negative_ttl_ms`, or until a notification names them. Fail-closed:
//! with the catalog down, cached tenants keep working until their TTL and
//! everything else is refused.

use crate::catalog_page::{Counts, PageQuery};
use crate::config::Catalog as CatalogConfig;
use futures_util::StreamExt;
use moka::future::Cache;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// Channel the extension notifies on every catalog change.
pub const CHANNEL: &str = "pg_tenant_catalog";
/// Connect timeout of the catalog connection when its URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff: first and longest wait.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most names answered by one query.
const BATCH: usize = 512;

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

type Entry = Option<Arc<TenantInfo>>;

/// Called with the payload of every catalog notification (`"*"`: anything
/// may have changed).
pub type Listener = Box<dyn Fn(&str) + Send + Sync>;

enum Request {
    Lookup(String, oneshot::Sender<Result<Entry, CatalogError>>),
    /// One page for the admin API (`catalog_page`).
    Page(
        PageQuery,
        oneshot::Sender<Result<Vec<TenantInfo>, CatalogError>>,
    ),
    /// Tenants by state, for the admin API (`catalog_page`).
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

pub struct Catalog {
    url: String,
    /// TLS to the catalog (`tls.upstream_tls`, read at start).
    tls: Option<(
        Arc<tokio_rustls::rustls::ClientConfig>,
        crate::tls::UpstreamTls,
    )>,
    listener: OnceLock<Listener>,
    /// Known rows, for when the catalog cannot be read.
    known: Cache<String, Arc<TenantInfo>>,
    /// Names the catalog does not know.
    unknown: Cache<String, ()>,
    requests: mpsc::Sender<Request>,
    inbox: std::sync::Mutex<Option<mpsc::Receiver<Request>>>,
    connected: AtomicBool,
    /// Whether the catalog database has `tenant.auth_secret` (checked at
    /// each connection): lookups then read each tenant's secret too.
    has_secrets: AtomicBool,
    /// When `has_secrets` or `has_pool` was last found false (re-checked at
    /// most once a second, so an `ALTER EXTENSION pg_tenant UPDATE` is seen
    /// at once).
    schema_checked: std::sync::Mutex<Option<std::time::Instant>>,
    /// Whether `tenant.router_catalog` has the pool columns (pg_tenant
    /// 0.4.0), checked with `has_secrets`.
    has_pool: AtomicBool,
    /// Whether `tenant.router_catalog` has `client_idle_timeout_ms`
    /// (pg_tenant 0.6.0), checked with `has_secrets`.
    has_idle: AtomicBool,
    /// Queries run (lookups, pages, counts, checks).
    queries: OnceLock<prometheus::IntCounter>,
}

const COLUMNS: &str = "r.id, r.enabled, r.isolation, r.database_name, r.schema_name, \
     r.max_connections, r.qps_limit, r.burst_multiplier, r.max_query_ms, r.max_result_bytes";

/// The pool columns of `tenant.router_catalog` (pg_tenant 0.4.0).
const POOL_COLUMNS: &str = ", r.dedicated_pool, r.pool_size, r.min_idle, r.pool_mode";

/// The pool columns and the client idle bound (pg_tenant 0.6.0).
const POOL_AND_IDLE_COLUMNS: &str =
    ", r.dedicated_pool, r.pool_size, r.min_idle, r.pool_mode, r.client_idle_timeout_ms";

fn row_pool(r: &tokio_postgres::Row) -> PoolSettings {
    let Ok(mode) = r.try_get::<_, String>("pool_mode") else {
        return PoolSettings::default();
    };
    PoolSettings {
        mode: if mode == "transaction" {
            PoolMode::Transaction
        } else {
            PoolMode::Session
        },
        dedicated: r.try_get("dedicated_pool").unwrap_or(false),
        size: r.try_get("pool_size").unwrap_or(10),
        min_idle: r.try_get("min_idle").unwrap_or(0),
    }
}

fn row_info(r: &tokio_postgres::Row) -> TenantInfo {
    TenantInfo {
        id: r.get(0),
        enabled: r.get(1),
        isolation: r.get(2),
        database_name: r.get(3),
        schema_name: r.get(4),
        max_connections: r.get(5),
        qps_limit: r.get(6),
        burst_multiplier: r.get(7),
        max_query_ms: r.get(8),
        max_result_bytes: r.get(9),
        auth_secret: r
            .try_get::<_, Option<String>>("auth_secret")
            .ok()
            .flatten()
            .map(Redacted),
        pool: row_pool(r),
        // Absent before pg_tenant 0.6.0: no limit.
        client_idle_timeout_ms: r.try_get::<_, i32>("client_idle_timeout_ms").unwrap_or(0),
    }
}

impl Catalog {
    pub fn new(cfg: &CatalogConfig, tls: &crate::tls::TlsSettings) -> Arc<Catalog> {
        let (tx, rx) = mpsc::channel(4096);
        Arc::new(Catalog {
            url: cfg.url.clone(),
            tls: tls.client.clone().map(|c| (c, tls.upstream_tls)),
            listener: OnceLock::new(),
            known: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(cfg.cache_ttl_ms.max(1)))
                .build(),
            unknown: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_millis(cfg.negative_ttl_ms.max(1)))
                .build(),
            requests: tx,
            inbox: std::sync::Mutex::new(Some(rx)),
            connected: AtomicBool::new(false),
            has_secrets: AtomicBool::new(false),
            has_pool: AtomicBool::new(false),
            has_idle: AtomicBool::new(false),
            schema_checked: std::sync::Mutex::new(None),
            queries: OnceLock::new(),
        })
    }

    /// Start the worker (once; inside a tokio runtime). `queries` counts
    /// the catalog queries it runs.
    pub fn start(self: &Arc<Self>, queries: prometheus::IntCounter) {
        let _ = self.queries.set(queries);
        let rx = self.inbox.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(worker(Arc::downgrade(self), rx));
        }
    }

    /// Register the one function told of every change (after the cache
    /// dropped the tenant).
    pub fn set_listener(&self, f: Listener) {
        let _ = self.listener.set(f);
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, CatalogError>>) -> Request,
    ) -> Result<T, CatalogError> {
        let (tx, rx) = oneshot::channel();
        let gone = || CatalogError::Unavailable("catalog worker stopped".into());
        self.requests.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// The tenant's row now, `None` for an unknown tenant. While the
    /// catalog cannot be read, a row cached within its TTL.
    pub async fn lookup(&self, id: &str) -> Result<Entry, CatalogError> {
        if self.unknown.get(id).await.is_some() {
            return Ok(None);
        }
        match self.ask(|tx| Request::Lookup(id.to_owned(), tx)).await {
            Ok(e) => Ok(e),
            Err(e) => match self.known.get(id).await {
                Some(row) => {
                    tracing::debug!(tenant = id, error = %e, "catalog down: using the cached row");
                    Ok(Some(row))
                }
                None => Err(e),
            },
        }
    }

    /// One page of the catalog (for the admin API), read now: see
    /// `catalog_page`.
    pub async fn page(&self, q: PageQuery) -> Result<Vec<TenantInfo>, CatalogError> {
        self.ask(|tx| Request::Page(q, tx)).await
    }

    /// How many tenants the catalog has, by state (for the admin API).
    pub async fn counts(&self) -> Result<Counts, CatalogError> {
        self.ask(Request::Counts).await
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

    /// Forget one tenant (or, with `"*"`, all) as unknown.
    pub async fn invalidate(&self, payload: &str) {
        if payload == "*" {
            self.unknown.invalidate_all();
        } else {
            self.unknown.invalidate(payload).await;
        }
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
                   WHERE oid = to_regprocedure('tenant.router_catalog(text)')), false)",
                &[],
            )
            .await
            .and_then(|r| {
                Ok((
                    r.try_get::<_, bool>(0)?,
                    r.try_get::<_, bool>(1)?,
                    r.try_get::<_, bool>(2)?,
                ))
            });
        match found {
            Ok((secrets, pool, idle)) => {
                self.has_secrets.store(secrets, Ordering::Release);
                self.has_pool.store(pool, Ordering::Release);
                self.has_idle.store(idle, Ordering::Release);
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

    fn counted(&self) {
        if let Some(q) = self.queries.get() {
            q.inc();
        }
    }

    async fn tell(&self, payload: &str) {
        self.invalidate(payload).await;
        if let Some(l) = self.listener.get() {
            l(payload);
        }
    }

    /// Answer a batch of lookups with one query.
    async fn serve_lookups(
        &self,
        client: &Client,
        batch: Vec<(String, oneshot::Sender<Result<Entry, CatalogError>>)>,
    ) {
        let mut waiting: HashMap<String, Vec<oneshot::Sender<Result<Entry, CatalogError>>>> =
            HashMap::new();
        for (id, tx) in batch {
            waiting.entry(id).or_default().push(tx);
        }
        let ids: Vec<&str> = waiting.keys().map(String::as_str).collect();
        self.counted();
        // The secret comes with the row: no round trip of its own.
        if let Err(e) = self.check_schema(client, false).await {
            tracing::warn!(error = %e, "catalog query failed");
            let e = CatalogError::Unavailable(e.to_string());
            for tx in waiting.into_values().flatten() {
                let _ = tx.send(Err(e.clone()));
            }
            return;
        }
        let secret = if self.has_secrets.load(Ordering::Acquire) {
            ", tenant.auth_secret(r.id) AS auth_secret"
        } else {
            ""
        };
        let optional = self.optional_columns();
        let sql = format!(
            "SELECT {COLUMNS}{optional}{secret} FROM unnest($1::text[]) AS q(id) \
             CROSS JOIN LATERAL tenant.router_catalog(q.id) AS r"
        );
        let result = client.query(&sql, &[&ids]).await;
        match result {
            Ok(rows) => {
                let mut found: HashMap<String, Arc<TenantInfo>> = rows
                    .iter()
                    .map(|r| {
                        let i = row_info(r);
                        (i.id.clone(), Arc::new(i))
                    })
                    .collect();
                for (id, txs) in waiting {
                    let entry = found.remove(&id);
                    match &entry {
                        Some(row) => self.known.insert(id, row.clone()).await,
                        None => {
                            self.known.invalidate(&id).await;
                            self.unknown.insert(id, ()).await;
                        }
                    }
                    for tx in txs {
                        let _ = tx.send(Ok(entry.clone()));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "catalog query failed");
                if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_FUNCTION) {
                    // tenant.auth_secret went away (a downgrade): ask again.
                    self.has_secrets.store(false, Ordering::Release);
                }
                let e = CatalogError::Unavailable(e.to_string());
                for tx in waiting.into_values().flatten() {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }

    async fn serve(&self, client: &Client, first: Request, rx: &mut mpsc::Receiver<Request>) {
        let mut lookups = Vec::new();
        let mut others = Vec::new();
        let mut next = Some(first);
        while let Some(req) = next.take() {
            match req {
                Request::Lookup(id, tx) => lookups.push((id, tx)),
                other => others.push(other),
            }
            if lookups.len() + others.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !lookups.is_empty() {
            self.serve_lookups(client, lookups).await;
        }
        for req in others {
            self.counted();
            match req {
                Request::Page(q, tx) => {
                    let _ = self.check_schema(client, false).await;
                    let columns = format!("{COLUMNS}{}", self.optional_columns());
                    let r = crate::catalog_page::read_page(client, &columns, row_info, &q).await;
                    let _ = tx.send(r);
                }
                Request::Counts(tx) => {
                    let _ = tx.send(crate::catalog_page::read_counts(client).await);
                }
                Request::Check(tx) => {
                    let r = client.simple_query("SELECT 1").await;
                    let _ = tx.send(
                        r.map(|_| ())
                            .map_err(|e| CatalogError::Unavailable(e.to_string())),
                    );
                }
                Request::Secret(kind, name, tx) => {
                    let f = kind.function();
                    let r = client.query_one(&format!("SELECT {f}($1)"), &[&name]).await;
                    let _ = tx.send(match r {
                        Ok(row) => Ok(row.get::<_, Option<String>>(0)),
                        Err(e)
                            if e.code()
                                == Some(&tokio_postgres::error::SqlState::UNDEFINED_FUNCTION) =>
                        {
                            Err(CatalogError::NoFunction(f))
                        }
                        Err(e) => Err(CatalogError::Unavailable(e.to_string())),
                    });
                }
                Request::Lookup(..) => {}
            }
        }
    }

    /// Connect, start relaying notifications, LISTEN. The receiver
    /// resolves when the connection is gone.
    /// Run the connection in a task that hands notifications to the
    /// listener; the receiver completes when the connection ends.
    fn drive<S, T>(
        self: &Arc<Self>,
        mut connection: tokio_postgres::Connection<S, T>,
    ) -> oneshot::Receiver<()>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (closed_tx, closed_rx) = oneshot::channel::<()>();
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(msg) = messages.next().await {
                match msg {
                    Ok(AsyncMessage::Notification(n)) => {
                        let Some(cat) = weak.upgrade() else { break };
                        tracing::debug!(tenant = n.payload(), "catalog change notified");
                        cat.tell(n.payload()).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog connection lost");
                        break;
                    }
                }
            }
            drop(closed_tx);
        });
        closed_rx
    }

    async fn connect(
        self: &Arc<Self>,
    ) -> Result<(Client, oneshot::Receiver<()>), tokio_postgres::Error> {
        let mut config: tokio_postgres::Config = self.url.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let tcp = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)));
        let (client, closed_rx) = match &self.tls {
            // TLS applies to TCP hosts; a Unix socket stays as it is.
            Some((tls, mode)) if tcp => {
                config.ssl_mode(if *mode == crate::tls::UpstreamTls::Prefer {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                let make = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) = config.connect(make).await?;
                (client, self.drive(connection))
            }
            _ => {
                let (client, connection) = config.connect(NoTls).await?;
                (client, self.drive(connection))
            }
        };
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        if let Err(e) = self.check_schema(&client, true).await {
            tracing::warn!(error = %e, "catalog: cannot tell whether tenant.auth_secret exists; lookups will ask again");
        }
        Ok((client, closed_rx))
    }
}

/// The catalog's worker: connect (with backoff), serve requests, reconnect
/// when the connection drops; ends when every request sender is gone.
async fn worker(cat: std::sync::Weak<Catalog>, mut rx: mpsc::Receiver<Request>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(c) = cat.upgrade() else { return };
        let (client, mut closed) = match c.connect().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "catalog connection failed");
                let err = CatalogError::Unavailable(e.to_string());
                drop(c);
                // Requests meanwhile are answered at once (cached rows serve).
                let wait = tokio::time::sleep(backoff);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        req = rx.recv() => match req {
                            Some(r) => r.fail(err.clone()),
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = BACKOFF_MIN;
        c.connected.store(true, Ordering::Release);
        tracing::info!("catalog connection established");
        // Notifications may have been missed while it was down.
        c.tell("*").await;
        loop {
            tokio::select! {
                _ = &mut closed => break,
                req = rx.recv() => match req {
                    Some(first) => {
                        c.serve(&client, first, &mut rx).await;
                        if client.is_closed() {
                            break;
                        }
                    }
                    None => return,
                },
            }
        }
        c.connected.store(false, Ordering::Release);
        tracing::warn!("catalog connection closed; reconnecting");
    }
}
