//! The catalog connection and the one task that owns it: connect (with
//! backoff), `LISTEN`, read which pg_tenant is installed (`Schema`, held by
//! the connection), hand notifications to `Known` as they arrive, and run
//! one query at a time: the lookups waiting (one query for all of them),
//! then one batch of re-reads, and so on; a heartbeat while idle. The task
//! is supervised (`supervise`): if it dies, it is started again.

use super::page;
use super::row::{Entry, TenantInfo};
use super::schema::Schema;
use super::state::Catalog;
use super::supervise::Queue;
use super::types::{CatalogError, Request, CHANNEL};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// Connect timeout of the catalog connection when its URL sets none; also
/// how long a heartbeat may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect backoff: first and longest wait.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Most requests answered by one round (lookups share one query).
const BATCH: usize = 512;
/// Most tenants re-read by one query after changes: one such query is
/// the most a storm of changes delays a login (about 10 ms at 100,000
/// tenants, docs/src/router/index.md).
pub(super) const REREAD_BATCH: usize = 256;
/// A connection idle this long is checked with an empty query: kept rows
/// are trusted only while notifications can arrive.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Longest one query on the catalog connection (a batch of lookups, of
/// re-reads, a secret, a page, a heartbeat) or connecting (LISTEN
/// included) may take: beyond it the connection counts as lost (a peer gone without a FIN must not
/// keep kept rows served as current).
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<Entry, CatalogError>>;

/// One catalog connection and what it knows of the installed pg_tenant.
struct Conn {
    client: Client,
    /// Read at connection (None: that failed, the next query reads it).
    schema: Option<Schema>,
    /// A query failed: read the schema again before the next one (the
    /// extension may have been updated or downgraded).
    stale: bool,
}

/// What requests left unserved get when a query did not finish in time.
fn late() -> CatalogError {
    CatalogError::Unavailable(format!(
        "the catalog connection did not answer within {} ms",
        ROUND_TIMEOUT.as_millis()
    ))
}

impl Catalog {
    /// The connection's schema: as read before, or read now (when it
    /// failed, a query failed since, or it is older than the newest and a
    /// second old). A change of version drops the rows kept: they may lack
    /// what the new one has. An error leaves the schema as it was and is
    /// returned: a lookup never goes on without knowing whether tenants
    /// have secrets.
    async fn schema(&self, conn: &mut Conn) -> Result<Schema, CatalogError> {
        let due = match &conn.schema {
            None => true,
            Some(s) => conn.stale || s.due(Instant::now()),
        };
        if due {
            self.counted();
            let new = Schema::read(&conn.client).await?;
            if conn
                .schema
                .as_ref()
                .is_some_and(|old| old.version != new.version)
            {
                // pg_tenant was updated (ALTER EXTENSION sends no
                // notification).
                tracing::info!(version = %new.extversion, "catalog: pg_tenant version changed");
                self.known.changed("*", |_| false);
            }
            conn.schema = Some(new);
            conn.stale = false;
        }
        conn.schema
            .clone()
            .ok_or_else(|| CatalogError::Schema("not read yet".into()))
    }

    /// Read these tenants' rows with one query, numbered `seq`.
    async fn read_rows(
        &self,
        conn: &mut Conn,
        ids: &[&str],
        seq: u64,
    ) -> Result<HashMap<String, Arc<TenantInfo>>, CatalogError> {
        // The secret comes with the row: no round trip of its own.
        let rows = self.schema(conn).await?.lookups();
        self.counted();
        let sql = format!(
            "SELECT {} FROM unnest($1::text[]) AS q(id) \
             CROSS JOIN LATERAL tenant.router_catalog(q.id) AS r",
            rows.columns()
        );
        let found = conn
            .client
            .query(&sql, &[&ids])
            .await
            .map_err(|e| CatalogError::Unavailable(e.to_string()))
            .and_then(|found| {
                found
                    .iter()
                    .map(|r| rows.decode(r, seq).map(|i| (i.id.clone(), Arc::new(i))))
                    .collect()
            });
        if found.is_err() {
            // E.g. tenant.auth_secret went away (a downgrade): ask again.
            conn.stale = true;
        }
        found
    }

    /// Read `ids` (each once) and keep what may be kept; the answers in
    /// the order of `ids`.
    async fn read(
        &self,
        conn: &mut Conn,
        ids: Vec<String>,
    ) -> Result<Vec<(String, Entry)>, CatalogError> {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let epoch = self.known.begin(refs.iter().copied());
        let seq = self.next_seq();
        match self.read_rows(conn, &refs, seq).await {
            Ok(mut found) => {
                let answers: Vec<(String, Entry)> = ids
                    .into_iter()
                    .map(|id| {
                        let row = found.remove(&id);
                        (id, row)
                    })
                    .collect();
                self.known.settle(epoch, &answers);
                Ok(answers)
            }
            Err(e) => {
                self.known.abandon(refs.iter().copied());
                Err(e)
            }
        }
    }

    /// Answer a batch of lookups with one query.
    async fn serve_lookups(&self, conn: &mut Conn, batch: Vec<(String, Reply)>) {
        let mut waiting: HashMap<String, Vec<Reply>> = HashMap::new();
        for (id, tx) in batch {
            waiting.entry(id).or_default().push(tx);
        }
        let ids: Vec<String> = waiting.keys().cloned().collect();
        match self.read(conn, ids).await {
            Ok(answers) => {
                for (id, entry) in answers {
                    for tx in waiting.remove(&id).into_iter().flatten() {
                        let _ = tx.send(Ok(entry.clone()));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "catalog query failed");
                for tx in waiting.into_values().flatten() {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }

    /// Re-read one batch of changed tenants the router holds, and hand
    /// the rows over.
    async fn reread(&self, conn: &mut Conn, ids: Vec<String>) {
        let n = ids.len() as u64;
        match self.read(conn, ids).await {
            Ok(answers) => {
                if let Some(m) = self.metrics.get() {
                    m.rereads.inc_by(n);
                }
                if let Some(h) = self.holder.get() {
                    for (id, row) in answers {
                        h.reread(&id, row);
                    }
                }
            }
            // The connection is gone (everything held is re-read when it
            // is back) or the catalog refused the query (the next change
            // queues the tenants again).
            Err(e) => tracing::warn!(error = %e, tenants = n, "catalog re-read failed"),
        }
    }

    /// Serve `first` and whatever else is waiting (up to `BATCH`), each
    /// query within `ROUND_TIMEOUT`; false when one did not finish in time
    /// (the connection counts as lost, and the requests not served yet
    /// get an error at once).
    async fn serve(
        &self,
        conn: &mut Conn,
        first: Request,
        rx: &mut mpsc::Receiver<Request>,
    ) -> bool {
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
        if !lookups.is_empty() && !self.in_time(self.serve_lookups(conn, lookups)).await {
            for r in others {
                r.fail(late());
            }
            return false;
        }
        let mut others = others.into_iter();
        while let Some(req) = others.next() {
            if !self.in_time(self.serve_one(conn, req)).await {
                for r in others {
                    r.fail(late());
                }
                return false;
            }
        }
        true
    }

    /// One request other than a lookup: one query.
    async fn serve_one(&self, conn: &mut Conn, req: Request) {
        self.counted();
        match req {
            Request::Page(q, tx) => {
                let r = match self.schema(conn).await {
                    Ok(schema) => {
                        let seq = self.next_seq();
                        page::read_page(&conn.client, &schema.pages(), seq, &q).await
                    }
                    Err(e) => Err(e),
                };
                // A pg_tenant without the 0.7.0 functions (a downgrade)?
                conn.stale |= r.is_err();
                let _ = tx.send(r);
            }
            Request::Counts(tx) => {
                let r = match self.schema(conn).await {
                    Ok(schema) => page::read_counts(&conn.client, schema.version).await,
                    Err(e) => Err(e),
                };
                conn.stale |= r.is_err();
                let _ = tx.send(r);
            }
            Request::Check(tx) => {
                let r = conn.client.simple_query("SELECT 1").await;
                let _ = tx.send(
                    r.map(|_| ())
                        .map_err(|e| CatalogError::Unavailable(e.to_string())),
                );
            }
            Request::Secret(kind, name, tx) => {
                let f = kind.function();
                let r = conn
                    .client
                    .query_one(&format!("SELECT {f}($1)"), &[&name])
                    .await;
                let _ = tx.send(match r {
                    Ok(row) => {
                        row.try_get::<_, Option<String>>(0)
                            .map_err(|e| CatalogError::Shape {
                                version: conn
                                    .schema
                                    .as_ref()
                                    .map_or_else(|| "?".into(), |s| s.extversion.clone()),
                                detail: format!("{f}: {e}"),
                            })
                    }
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

    /// One connection's life: requests first, then a batch of re-reads,
    /// then wait. Returns true when every request sender is gone.
    async fn converse(
        &self,
        conn: &mut Conn,
        closed: &mut oneshot::Receiver<()>,
        rx: &mut mpsc::Receiver<Request>,
    ) -> bool {
        loop {
            if conn.client.is_closed() {
                return false;
            }
            // Logins first: everything waiting now shares one query.
            if let Ok(first) = rx.try_recv() {
                if !self.serve(conn, first, rx).await {
                    return false;
                }
            }
            // Then one batch of re-reads, so that a storm of changes
            // delays a login by one query at most.
            let stale = self.known.take_stale(REREAD_BATCH, || self.held());
            if !stale.is_empty() {
                if !self.in_time(self.reread(conn, stale)).await {
                    return false;
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = &mut *closed => return false,
                req = rx.recv() => match req {
                    Some(first) => {
                        if !self.serve(conn, first, rx).await {
                            return false;
                        }
                    }
                    None => return true,
                },
                _ = self.known.wake.notified() => {}
                _ = tokio::time::sleep(HEARTBEAT) => {
                    match tokio::time::timeout(ROUND_TIMEOUT, conn.client.simple_query("")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "catalog heartbeat failed");
                            return false;
                        }
                        Err(_) => {
                            tracing::warn!("catalog heartbeat timed out");
                            return false;
                        }
                    }
                }
            }
        }
    }

    /// Run one query (and what it answers) within `ROUND_TIMEOUT`; false
    /// (the connection counts as lost) when it did not finish. The
    /// lookups it was answering get an error (their senders are dropped)
    /// and fall back on kept rows.
    async fn in_time(&self, round: impl std::future::Future<Output = ()>) -> bool {
        if tokio::time::timeout(ROUND_TIMEOUT, round).await.is_ok() {
            return true;
        }
        tracing::warn!(
            timeout_ms = ROUND_TIMEOUT.as_millis() as u64,
            "catalog query did not finish in time: reconnecting"
        );
        false
    }

    /// Run the connection in a task that hands notifications over as they
    /// arrive; the receiver completes when the connection ends.
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
                        tracing::trace!(tenant = n.payload(), "catalog change notified");
                        cat.changed(n.payload());
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

    /// The connect_timeout of the catalog URL, if it sets one.
    fn connect_timeout(&self) -> Duration {
        self.url
            .parse::<tokio_postgres::Config>()
            .ok()
            .and_then(|c| c.get_connect_timeout().copied())
            .unwrap_or(CONNECT_TIMEOUT)
    }

    /// Connect, start relaying notifications, LISTEN, read the schema.
    async fn connect(
        self: &Arc<Self>,
    ) -> Result<(Conn, oneshot::Receiver<()>), tokio_postgres::Error> {
        let mut config: tokio_postgres::Config = self.url.parse()?;
        self.password.apply(&mut config);
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
        self.counted();
        let schema = match Schema::read(&client).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "catalog: cannot tell which pg_tenant is installed; lookups will ask again");
                None
            }
        };
        let conn = Conn {
            client,
            schema,
            stale: false,
        };
        Ok((conn, closed_rx))
    }
}

/// The catalog's worker: connect (with backoff), serve requests, reconnect
/// when the connection drops; ends when every request sender is gone (or
/// the catalog). Run under `supervise`, which holds the queue.
pub(super) async fn run(cat: Weak<Catalog>, mut rx: Queue<Request>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(c) = cat.upgrade() else { return };
        // The URL's connect_timeout (or CONNECT_TIMEOUT) bounds reaching
        // the server; LISTEN and the schema check get a round more.
        let limit = CONNECT_TIMEOUT.max(c.connect_timeout()) + ROUND_TIMEOUT;
        let connected = match tokio::time::timeout(limit, c.connect()).await {
            // The log gets the causes too ("db error" alone hides
            // PostgreSQL's "password authentication failed for user ...");
            // the error requests get (and clients' refusals) stays short.
            Ok(r) => r.map_err(|e| (e.to_string(), crate::logtext::with_causes(&e))),
            Err(_) => {
                let e = format!(
                    "connecting (LISTEN included) took longer than {} ms",
                    limit.as_millis()
                );
                Err((e.clone(), e))
            }
        };
        let (mut conn, mut closed) = match connected {
            Ok(conn) => conn,
            Err((e, logged)) => {
                tracing::warn!(error = %crate::logtext::Escaped(&logged), retry_in_ms = backoff.as_millis() as u64, "catalog connection failed");
                c.went_down();
                let err = CatalogError::Unavailable(e);
                drop(c);
                // Requests meanwhile are answered at once (kept rows serve).
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
        // Notifications may have been missed while it was down.
        c.came_up();
        tracing::info!("catalog connection established");
        let ended = c.converse(&mut conn, &mut closed, &mut rx).await;
        c.went_down();
        if ended {
            return;
        }
        tracing::warn!("catalog connection closed; reconnecting");
    }
}
