//! The catalog connection and the one task that owns it: connect (with
//! backoff), `LISTEN`, hand notifications to `Known` as they arrive, and
//! run one query at a time: the lookups waiting (one query for all of
//! them), then one batch of re-reads, and so on; a heartbeat while idle.

use super::row::{row_info, Entry, TenantInfo, COLUMNS};
use super::{Catalog, CatalogError, Request, CHANNEL};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;
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
/// tenants, README "Many tenants").
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

/// What requests left unserved get when a query did not finish in time.
fn late() -> CatalogError {
    CatalogError::Unavailable(format!(
        "the catalog connection did not answer within {} ms",
        ROUND_TIMEOUT.as_millis()
    ))
}

impl Catalog {
    /// Read these tenants' rows with one query, numbered `seq`.
    async fn read_rows(
        &self,
        client: &Client,
        ids: &[&str],
        seq: u64,
    ) -> Result<HashMap<String, Arc<TenantInfo>>, tokio_postgres::Error> {
        self.counted();
        // The secret comes with the row: no round trip of its own.
        self.check_schema(client, false).await?;
        let secret = if self.has_secrets.load(std::sync::atomic::Ordering::Acquire) {
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
        if let Err(e) = &result {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_FUNCTION) {
                // tenant.auth_secret went away (a downgrade): ask again.
                self.has_secrets
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
        Ok(result?
            .iter()
            .map(|r| {
                let i = row_info(r, seq);
                (i.id.clone(), Arc::new(i))
            })
            .collect())
    }

    /// Read `ids` (each once) and keep what may be kept; the answers in
    /// the order of `ids`.
    async fn read(
        &self,
        client: &Client,
        ids: Vec<String>,
    ) -> Result<Vec<(String, Entry)>, tokio_postgres::Error> {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let epoch = self.known.begin(refs.iter().copied());
        let seq = self.next_seq();
        match self.read_rows(client, &refs, seq).await {
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
    async fn serve_lookups(&self, client: &Client, batch: Vec<(String, Reply)>) {
        let mut waiting: HashMap<String, Vec<Reply>> = HashMap::new();
        for (id, tx) in batch {
            waiting.entry(id).or_default().push(tx);
        }
        let ids: Vec<String> = waiting.keys().cloned().collect();
        match self.read(client, ids).await {
            Ok(answers) => {
                for (id, entry) in answers {
                    for tx in waiting.remove(&id).into_iter().flatten() {
                        let _ = tx.send(Ok(entry.clone()));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "catalog query failed");
                let e = CatalogError::Unavailable(e.to_string());
                for tx in waiting.into_values().flatten() {
                    let _ = tx.send(Err(e.clone()));
                }
            }
        }
    }

    /// Re-read one batch of changed tenants the router holds, and hand
    /// the rows over.
    async fn reread(&self, client: &Client, ids: Vec<String>) {
        let n = ids.len() as u64;
        match self.read(client, ids).await {
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
        client: &Client,
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
        if !lookups.is_empty() && !self.in_time(self.serve_lookups(client, lookups)).await {
            for r in others {
                r.fail(late());
            }
            return false;
        }
        let mut others = others.into_iter();
        while let Some(req) = others.next() {
            if !self.in_time(self.serve_one(client, req)).await {
                for r in others {
                    r.fail(late());
                }
                return false;
            }
        }
        true
    }

    /// One request other than a lookup: one query.
    async fn serve_one(&self, client: &Client, req: Request) {
        self.counted();
        match req {
            Request::Page(q, tx) => {
                let _ = self.check_schema(client, false).await;
                let columns = format!("{COLUMNS}{}", self.optional_columns());
                let seq = self.next_seq();
                let paged = self.has_pages.load(Ordering::Acquire);
                let r = super::page::read_page(client, paged, &columns, |r| row_info(r, seq), &q);
                let r = r.await;
                self.recheck_pages_after(&r);
                let _ = tx.send(r);
            }
            Request::Counts(tx) => {
                let _ = self.check_schema(client, false).await;
                let counted = self.has_pages.load(Ordering::Acquire);
                let r = super::page::read_counts(client, counted).await;
                self.recheck_pages_after(&r);
                let _ = tx.send(r);
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

    /// One connection's life: requests first, then a batch of re-reads,
    /// then wait. Returns true when every request sender is gone.
    async fn converse(
        &self,
        client: &Client,
        closed: &mut oneshot::Receiver<()>,
        rx: &mut mpsc::Receiver<Request>,
    ) -> bool {
        loop {
            if client.is_closed() {
                return false;
            }
            // Logins first: everything waiting now shares one query.
            if let Ok(first) = rx.try_recv() {
                if !self.serve(client, first, rx).await {
                    return false;
                }
            }
            // Then one batch of re-reads, so that a storm of changes
            // delays a login by one query at most.
            let stale = self.known.take_stale(REREAD_BATCH, || self.held());
            if !stale.is_empty() {
                if !self.in_time(self.reread(client, stale)).await {
                    return false;
                }
                continue;
            }
            tokio::select! {
                biased;
                _ = &mut *closed => return false,
                req = rx.recv() => match req {
                    Some(first) => {
                        if !self.serve(client, first, rx).await {
                            return false;
                        }
                    }
                    None => return true,
                },
                _ = self.known.wake.notified() => {}
                _ = tokio::time::sleep(HEARTBEAT) => {
                    match tokio::time::timeout(ROUND_TIMEOUT, client.simple_query("")).await {
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

    /// A page or count that failed may have met a pg_tenant without the
    /// 0.7.0 functions (a downgrade): ask the schema again next time.
    fn recheck_pages_after<T>(&self, r: &Result<T, CatalogError>) {
        if r.is_err() {
            self.has_pages.store(false, Ordering::Release);
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

    /// Connect, start relaying notifications, LISTEN.
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
pub(super) async fn run(cat: Weak<Catalog>, mut rx: mpsc::Receiver<Request>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some(c) = cat.upgrade() else { return };
        // The URL's connect_timeout (or CONNECT_TIMEOUT) bounds reaching
        // the server; LISTEN and the schema check get a round more.
        let limit = CONNECT_TIMEOUT.max(c.connect_timeout()) + ROUND_TIMEOUT;
        let connected = match tokio::time::timeout(limit, c.connect()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "connecting (LISTEN included) took longer than {} ms",
                limit.as_millis()
            )),
        };
        let (client, mut closed) = match connected {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "catalog connection failed");
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
        let ended = c.converse(&client, &mut closed, &mut rx).await;
        c.went_down();
        if ended {
            return;
        }
        tracing::warn!("catalog connection closed; reconnecting");
    }
}
