//! The tenant catalog as the router sees it: one connection of the
//! router's own role reading `tenant.router_catalog($1)`, a moka cache with
//! a TTL (and a shorter one for unknown tenants), and `LISTEN
//! pg_tenant_catalog` to drop a tenant from the cache the moment it changes.
//!
//! Fail-closed: when the catalog cannot be read, cached tenants keep
//! working until their TTL and everything else is refused.

use crate::config::Catalog as CatalogConfig;
use futures_util::StreamExt;
use moka::future::Cache;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// Channel the extension notifies on every catalog change.
pub const CHANNEL: &str = "pg_tenant_catalog";
/// Connect timeout of the catalog connection when its URL sets none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("tenant catalog unavailable: {0}")]
    Unavailable(String),
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
}

type Entry = Option<Arc<TenantInfo>>;

struct TtlPolicy {
    known: Duration,
    unknown: Duration,
}

impl Expiry<String, Entry> for TtlPolicy {
    fn expire_after_create(&self, _k: &String, v: &Entry, _now: Instant) -> Option<Duration> {
        Some(if v.is_some() {
            self.known
        } else {
            self.unknown
        })
    }
}

struct Conn {
    client: Option<Client>,
    /// Earliest time of the next connection attempt (backoff).
    next_attempt: Instant,
    backoff: Duration,
}

/// Called with the payload of every catalog notification.
pub type Listener = Box<dyn Fn(&str) + Send + Sync>;

pub struct Catalog {
    url: String,
    listener: std::sync::OnceLock<Listener>,
    cache: Cache<String, Entry>,
    conn: Mutex<Conn>,
}

const QUERY: &str = "SELECT id, enabled, isolation, database_name, schema_name, max_connections, \
                     qps_limit, burst_multiplier, max_query_ms, max_result_bytes \
                     FROM tenant.router_catalog($1)";

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
    }
}

impl Catalog {
    pub fn new(cfg: &CatalogConfig) -> Arc<Catalog> {
        let cache = Cache::builder()
            .max_capacity(100_000)
            .expire_after(TtlPolicy {
                known: Duration::from_millis(cfg.cache_ttl_ms),
                unknown: Duration::from_millis(cfg.negative_ttl_ms),
            })
            .build();
        Arc::new(Catalog {
            url: cfg.url.clone(),
            listener: std::sync::OnceLock::new(),
            cache,
            conn: Mutex::new(Conn {
                client: None,
                next_attempt: Instant::now(),
                backoff: Duration::from_millis(100),
            }),
        })
    }

    /// The tenant's row, `None` for an unknown tenant. Concurrent lookups
    /// of one id share a single query; errors are not cached.
    pub async fn lookup(self: &Arc<Self>, id: &str) -> Result<Entry, CatalogError> {
        let this = self.clone();
        let key = id.to_owned();
        self.cache
            .try_get_with(key.clone(), async move { this.fetch(&key).await })
            .await
            .map_err(|e| (*e).clone())
    }

    /// Whether the catalog connection is up (for readiness checks).
    pub async fn is_connected(&self) -> bool {
        let conn = self.conn.lock().await;
        conn.client.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// Register the one function told of every change (after the cache
    /// dropped the tenant).
    pub fn set_listener(&self, f: Listener) {
        let _ = self.listener.set(f);
    }

    /// Drop one tenant (or, with `"*"`, all) from the cache.
    pub async fn invalidate(&self, payload: &str) {
        if payload == "*" {
            self.cache.invalidate_all();
        } else {
            self.cache.invalidate(payload).await;
        }
    }

    /// Every tenant in the catalog (for the admin API), read now.
    pub async fn list(self: &Arc<Self>) -> Result<Vec<TenantInfo>, CatalogError> {
        let mut conn = self.conn.lock().await;
        let client = self.ensure_connected(&mut conn).await?;
        match client.query(QUERY, &[&None::<String>]).await {
            Ok(rows) => Ok(rows.iter().map(row_info).collect()),
            Err(e) => Err(self.query_failed(&mut conn, e)),
        }
    }

    /// Connect if needed and run a trivial query (readiness check).
    pub async fn check(self: &Arc<Self>) -> Result<(), CatalogError> {
        let mut conn = self.conn.lock().await;
        let client = self.ensure_connected(&mut conn).await?;
        match client.simple_query("SELECT 1").await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.query_failed(&mut conn, e)),
        }
    }

    fn query_failed(&self, conn: &mut Conn, e: tokio_postgres::Error) -> CatalogError {
        tracing::warn!(error = %e, "catalog query failed; will reconnect");
        conn.client = None;
        CatalogError::Unavailable(e.to_string())
    }

    /// The live client, connecting (with backoff) when there is none.
    async fn ensure_connected<'c>(
        self: &Arc<Self>,
        conn: &'c mut Conn,
    ) -> Result<&'c Client, CatalogError> {
        if conn.client.as_ref().is_none_or(|c| c.is_closed()) {
            conn.client = None;
            if Instant::now() < conn.next_attempt {
                return Err(CatalogError::Unavailable("reconnecting".into()));
            }
            match self.connect().await {
                Ok(c) => {
                    tracing::info!("catalog connection established");
                    conn.client = Some(c);
                    conn.backoff = Duration::from_millis(100);
                    // Rows cached before the outage may have missed
                    // notifications: forget them, and tell the listener
                    // that anything may have changed.
                    self.cache.invalidate_all();
                    if let Some(l) = self.listener.get() {
                        l("*");
                    }
                }
                Err(e) => {
                    conn.next_attempt = Instant::now() + conn.backoff;
                    conn.backoff = (conn.backoff * 2).min(Duration::from_secs(5));
                    tracing::warn!(error = %e, retry_in = ?conn.backoff, "catalog connection failed");
                    return Err(CatalogError::Unavailable(e.to_string()));
                }
            }
        }
        conn.client
            .as_ref()
            .ok_or_else(|| CatalogError::Unavailable("no connection".into()))
    }

    async fn fetch(self: &Arc<Self>, id: &str) -> Result<Entry, CatalogError> {
        let mut conn = self.conn.lock().await;
        let client = self.ensure_connected(&mut conn).await?;
        match client.query_opt(QUERY, &[&id]).await {
            Ok(row) => Ok(row.map(|r| Arc::new(row_info(&r)))),
            Err(e) => Err(self.query_failed(&mut conn, e)),
        }
    }

    async fn connect(self: &Arc<Self>) -> Result<Client, tokio_postgres::Error> {
        let mut config: tokio_postgres::Config = self.url.parse()?;
        if config.get_connect_timeout().is_none() {
            // An unreachable catalog must not hold the connection lock (and
            // every lookup behind it) for the kernel's TCP timeout.
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (client, mut connection) = config.connect(NoTls).await?;
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(msg) = messages.next().await {
                match msg {
                    Ok(AsyncMessage::Notification(n)) => {
                        let Some(cat) = weak.upgrade() else { break };
                        tracing::debug!(tenant = n.payload(), "catalog change notified");
                        cat.invalidate(n.payload()).await;
                        if let Some(l) = cat.listener.get() {
                            l(n.payload());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "catalog connection lost");
                        break;
                    }
                }
            }
            // Cached rows stay valid until their TTL; the next lookup of
            // anything else reconnects (with backoff).
        });
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        Ok(client)
    }
}
