//! The lease worker: one connection of its own to the catalog database
//! (`catalog.url`, the catalog's TLS), through which every login of a
//! tenant with `max_connections` takes a lease (`tenant.fleet_acquire`) and
//! every such session gives it back (`tenant.fleet_release`). Requests are
//! served one at a time, in order, so `held` (the leases this router's
//! sessions hold, per tenant) is always what the connection's backend
//! holds, except while the connection is down.
//!
//! When the connection is lost its backend exits and PostgreSQL gives its
//! leases back; logins meanwhile are answered `Unavailable` at once (the
//! session then applies `fleet.on_lease_loss`), releases and adoptions
//! only change `held`. On reconnection (with backoff) `held` is restored
//! with `tenant.fleet_restore`, which may exceed a limit: those clients are
//! connected. A call that does not answer in time closes the connection
//! (what it did is then undone by the backend's exit) and is restored the
//! same way.
//!
//! A restore the server refuses (53400: `pg_tenant.fleet_max_tenants`
//! tenants hold leases already) does not close the connection: the
//! sessions it was for stay counted here only (`held` above `counted`),
//! and every other tenant's leases stay in the database. At reconnection a
//! refused restore of everything is retried tenant by tenant, so one
//! tenant without room never keeps the whole connection down.

use super::lease::{Answer, Lease, LeaseError, Msg};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::{Client, NoTls, Statement};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one call may take before the connection is given up.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Set on the lease connection's backend (startup `options`), so that
/// the server notices a router that is gone without closing its socket.
pub const SERVER_KEEPALIVE: [(&str, &str); 4] = [
    ("tcp_keepalives_idle", "5"),
    ("tcp_keepalives_interval", "5"),
    ("tcp_keepalives_count", "3"),
    ("tcp_user_timeout", "20000"),
];

/// TLS to the catalog server, as the catalog connection uses it.
pub type Tls = Option<(
    Arc<tokio_rustls::rustls::ClientConfig>,
    crate::tls::UpstreamTls,
)>;

struct Conn {
    client: Client,
    acquire: Statement,
    release: Statement,
    restore: Statement,
    closed: oneshot::Receiver<()>,
}

pub struct Worker {
    url: String,
    /// `catalog.password_file`'s password, put into `url` at each connect.
    password: crate::config::CatalogPassword,
    tls: Tls,
    rx: mpsc::UnboundedReceiver<Msg>,
    /// For the leases it grants (weak: the worker ends when every session
    /// and the router let go of the channel).
    me: mpsc::WeakUnboundedSender<Msg>,
    held: HashMap<String, i64>,
    /// What the connection's backend holds, per tenant (at most `held`;
    /// below it for sessions admitted while it could not count them).
    counted: HashMap<String, i64>,
    conn: Option<Conn>,
    next_try: Instant,
    backoff: Duration,
    up: Arc<AtomicBool>,
}

impl Worker {
    pub fn new(
        url: String,
        password: crate::config::CatalogPassword,
        tls: Tls,
        rx: mpsc::UnboundedReceiver<Msg>,
        me: mpsc::WeakUnboundedSender<Msg>,
        up: Arc<AtomicBool>,
    ) -> Worker {
        Worker {
            url,
            password,
            tls,
            rx,
            me,
            held: HashMap::new(),
            counted: HashMap::new(),
            conn: None,
            next_try: Instant::now(),
            backoff: BACKOFF_MIN,
            up,
        }
    }

    /// Serve requests until every sender is gone.
    pub async fn run(mut self) {
        loop {
            if self.conn.is_none() && Instant::now() >= self.next_try {
                self.reconnect().await;
            }
            let msg = match &mut self.conn {
                Some(c) => tokio::select! {
                    m = self.rx.recv() => Some(m),
                    _ = &mut c.closed => None,
                },
                None => tokio::select! {
                    m = self.rx.recv() => Some(m),
                    _ = tokio::time::sleep_until(self.next_try) => continue,
                },
            };
            let Some(msg) = msg else {
                self.down(&LeaseError::Connect(
                    "the lease connection was closed".into(),
                ));
                continue;
            };
            let Some(msg) = msg else { return };
            self.handle(msg).await;
        }
    }

    async fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Acquire { tenant, max, reply } => {
                let answer = match self.call_acquire(&tenant, max).await {
                    Ok(true) => match self.me.upgrade() {
                        Some(tx) => {
                            // Counted before it is handed over: a login
                            // that is gone drops it, which sends Release.
                            *self.held.entry(tenant.clone()).or_insert(0) += 1;
                            *self.counted.entry(tenant.clone()).or_insert(0) += 1;
                            Answer::Granted(Lease::new(&tenant, tx))
                        }
                        // The router is stopping: nobody can give it back.
                        None => Answer::Unavailable(LeaseError::Stopped),
                    },
                    Ok(false) => Answer::Refused,
                    Err(e) => Answer::Unavailable(e),
                };
                let _ = reply.send(answer);
            }
            Msg::Release { tenant } => {
                let Some(n) = self.held.get_mut(&tenant) else {
                    return;
                };
                *n -= 1;
                let left = *n;
                if left <= 0 {
                    self.held.remove(&tenant);
                }
                // Only a lease the backend holds beyond the sessions left
                // goes back (a session counted here only has none there).
                let counted = self.counted.get(&tenant).copied().unwrap_or(0);
                if counted > left.max(0) {
                    if counted - 1 <= 0 {
                        self.counted.remove(&tenant);
                    } else {
                        self.counted.insert(tenant.clone(), counted - 1);
                    }
                    self.release_one(&tenant).await;
                }
            }
            Msg::Adopt { tenant } => {
                let n = {
                    let n = self.held.entry(tenant.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                if self.conn.is_some() {
                    let ids = vec![tenant.clone()];
                    let counts = vec![n.clamp(0, i32::MAX as i64) as i32];
                    match self.call_restore(ids, counts).await {
                        Ok(()) => {
                            self.counted.insert(tenant, n);
                        }
                        // The server said no (no room for one more
                        // tenant): this session stays counted here only.
                        Err(Restore::Refused(e)) => {
                            tracing::warn!(tenant, error = %e, "fleet: a session admitted by this router's share is not counted in the database");
                        }
                        Err(Restore::Lost(e)) => self.down(&e),
                    }
                }
            }
        }
    }

    async fn call_acquire(&mut self, tenant: &str, max: i32) -> Result<bool, LeaseError> {
        const CALL: &str = "fleet_acquire";
        let Some(c) = &self.conn else {
            return Err(LeaseError::Down);
        };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tenant, &max];
        let r = tokio::time::timeout(ROUND_TIMEOUT, c.client.query_one(&c.acquire, &params)).await;
        let closed = c.client.is_closed();
        let e = match r {
            Ok(Ok(row)) => return row.try_get::<_, bool>(0).map_err(|e| call(CALL, &e)),
            Ok(Err(e)) => call(CALL, &e),
            Err(_) => timeout(CALL),
        };
        if closed || matches!(e, LeaseError::Timeout { .. }) {
            self.down(&e);
        } else {
            tracing::warn!(tenant, error = %e, "fleet: lease refused by the server");
        }
        Err(e)
    }

    /// Give one of this backend's leases of `tenant` back (nothing when
    /// the connection is down: its backend gave everything back).
    async fn release_one(&mut self, tenant: &str) {
        const CALL: &str = "fleet_release";
        let Some(c) = &self.conn else { return };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&tenant];
        let r = tokio::time::timeout(ROUND_TIMEOUT, c.client.query_one(&c.release, &params)).await;
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self.down(&call(CALL, &e)),
            Err(_) => self.down(&timeout(CALL)),
        }
    }

    async fn call_restore(&mut self, ids: Vec<String>, counts: Vec<i32>) -> Result<(), Restore> {
        const CALL: &str = "fleet_restore";
        let Some(c) = &self.conn else {
            return Err(Restore::Lost(LeaseError::Down));
        };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&ids, &counts];
        let r = tokio::time::timeout(ROUND_TIMEOUT, c.client.query_one(&c.restore, &params)).await;
        match r {
            Ok(Ok(_)) => Ok(()),
            // The server answered (and the restore changed nothing: it is
            // all or nothing); the connection is fine.
            Ok(Err(e)) if e.as_db_error().is_some() && !c.client.is_closed() => {
                Err(Restore::Refused(call(CALL, &e)))
            }
            Ok(Err(e)) => Err(Restore::Lost(call(CALL, &e))),
            Err(_) => Err(Restore::Lost(timeout(CALL))),
        }
    }

    /// Restore every tenant's `held` on a new connection: all at once, or
    /// when the server refuses that, tenant by tenant (those without room
    /// stay counted here only).
    async fn restore_held(&mut self) -> Result<(), LeaseError> {
        let all: Vec<(String, i32)> = self
            .held
            .iter()
            .map(|(t, n)| (t.clone(), (*n).clamp(0, i32::MAX as i64) as i32))
            .collect();
        if all.is_empty() {
            return Ok(());
        }
        let (ids, counts) = all.iter().cloned().unzip();
        match self.call_restore(ids, counts).await {
            Ok(()) => {
                self.counted = self.held.clone();
                return Ok(());
            }
            Err(Restore::Lost(e)) => return Err(e),
            Err(Restore::Refused(e)) => {
                tracing::warn!(error = %e, "fleet: restoring every lease at once was refused; restoring tenant by tenant");
            }
        }
        for (t, n) in all {
            match self.call_restore(vec![t.clone()], vec![n]).await {
                Ok(()) => {
                    self.counted.insert(t, n as i64);
                }
                Err(Restore::Refused(e)) => {
                    tracing::warn!(tenant = t, error = %e, "fleet: this tenant's sessions are not counted in the database");
                }
                Err(Restore::Lost(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Give the connection up (its backend's exit gives its leases back);
    /// reconnect after the backoff.
    fn down(&mut self, why: &LeaseError) {
        self.counted.clear();
        if self.conn.take().is_some() {
            tracing::warn!(error = %why, "fleet: lease connection lost; logins of limited tenants follow fleet.on_lease_loss until it is back");
        }
        self.up.store(false, Ordering::Release);
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    async fn reconnect(&mut self) {
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT + ROUND_TIMEOUT, self.connect()).await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return self.failed(&e),
            Err(_) => return self.failed(&LeaseError::Connect("connecting took too long".into())),
        };
        self.conn = Some(conn);
        self.counted.clear();
        if let Err(e) = self.restore_held().await {
            self.conn = None;
            self.counted.clear();
            return self.failed(&e);
        }
        let restored: i64 = self.counted.values().sum();
        self.backoff = BACKOFF_MIN;
        self.up.store(true, Ordering::Release);
        tracing::info!(restored, "fleet: lease connection up");
    }

    fn failed(&mut self, why: &LeaseError) {
        tracing::warn!(
            error = %why,
            retry_in_ms = self.backoff.as_millis() as u64,
            "fleet: cannot open the lease connection"
        );
        self.up.store(false, Ordering::Release);
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    async fn connect(&self) -> Result<Conn, LeaseError> {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| LeaseError::Connect(e.to_string()))?;
        self.password.apply(&mut config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // Named apart from the catalog connection: "<its name> fleet leases".
        let name = match config.get_application_name() {
            Some(n) => format!("{n} fleet leases"),
            None => "tenant-router fleet leases".to_owned(),
        };
        config.application_name(&name);
        // A router whose host dies, or is cut off, never closes this
        // socket, and the backend holding its leases would wait for it
        // for hours (the kernel's keepalive) while this router, back or
        // replaced, restores the same leases on a new connection: the
        // tenants' counts would stay too high. The server gives the
        // connection up within about 20 s instead (settings the URL's
        // `options` names itself are left as they are).
        let mut options = config.get_options().unwrap_or_default().to_owned();
        for (name, value) in SERVER_KEEPALIVE {
            if !options.contains(name) {
                options.push_str(&format!(" -c {name}={value}"));
            }
        }
        config.options(options.trim_start());
        let tcp = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, tokio_postgres::config::Host::Tcp(_)));
        let (closed_tx, closed) = oneshot::channel();
        let client = match &self.tls {
            Some((tls, mode)) if tcp => {
                config.ssl_mode(if *mode == crate::tls::UpstreamTls::Prefer {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                let make = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
                let (client, connection) = config
                    .connect(make)
                    .await
                    .map_err(|e| LeaseError::Connect(e.to_string()))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(closed_tx);
                });
                client
            }
            _ => {
                let (client, connection) = config
                    .connect(NoTls)
                    .await
                    .map_err(|e| LeaseError::Connect(e.to_string()))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                    drop(closed_tx);
                });
                client
            }
        };
        let prep = |q: &'static str| {
            let client = &client;
            async move {
                client
                    .prepare(q)
                    .await
                    .map_err(|e| LeaseError::Connect(format!("{q}: {}", db_message(&e))))
            }
        };
        // A role that may not take leases is a setup error: say so once
        // here rather than at every login (pg_tenant 0.9.0 and tenant_router).
        let may = client
            .query_one(
                "SELECT CASE WHEN pg_catalog.to_regprocedure('tenant.fleet_restore(text[],integer[])') IS NULL \
                   THEN false ELSE \
                   pg_catalog.has_function_privilege('tenant.fleet_acquire(text,integer)', 'EXECUTE') \
                   AND pg_catalog.has_function_privilege('tenant.fleet_release(text)', 'EXECUTE') \
                   AND pg_catalog.has_function_privilege('tenant.fleet_restore(text[],integer[])', 'EXECUTE') END",
                &[],
            )
            .await
            .map_err(|e| LeaseError::Connect(db_message(&e)))?;
        if !may.try_get::<_, bool>(0).unwrap_or(false) {
            return Err(LeaseError::NotPermitted);
        }
        let acquire = prep("SELECT tenant.fleet_acquire($1::text, $2::integer)").await?;
        let release = prep("SELECT tenant.fleet_release($1::text)").await?;
        let restore = prep("SELECT tenant.fleet_restore($1::text[], $2::integer[])").await?;
        Ok(Conn {
            client,
            acquire,
            release,
            restore,
            closed,
        })
    }
}

/// Why a restore did not happen.
enum Restore {
    /// The server refused it (nothing changed; the connection is fine).
    Refused(LeaseError),
    /// The connection failed or the call timed out.
    Lost(LeaseError),
}

fn call(call: &'static str, e: &tokio_postgres::Error) -> LeaseError {
    LeaseError::Call {
        call,
        message: db_message(e),
    }
}

fn timeout(call: &'static str) -> LeaseError {
    LeaseError::Timeout {
        call,
        ms: ROUND_TIMEOUT.as_millis() as u64,
    }
}

/// The server's message of a failed call, or the error itself.
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    }
}
