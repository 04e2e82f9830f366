//! Per-tenant limits the router enforces across all of a tenant's
//! connections through this router. Values come from the catalog
//! (`tenant.router_catalog`); 0 means unlimited.
//!
//! `max_connections` is counted by `Limits`; `qps_limit` with
//! `burst_multiplier` is a token bucket per tenant (`TenantCounters`);
//! `max_query_ms` and `max_result_bytes` are watched per session by
//! `StatementWatch`, which the relay shows every frame.

use crate::cancel::CancelRegistry;
use crate::catalog::{Catalog, TenantInfo};
use crate::metrics::{Denial, Metrics, TenantMetrics};
use crate::protocol::{self, Severity};
use crate::relay::Edit;
use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("too many connections for tenant \"{tenant}\": its max_connections is {max}")]
    TooManyConnections { tenant: String, max: i32 },
}

impl LimitError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            LimitError::TooManyConnections { .. } => "53300",
        }
    }
}

/// Live counters of one tenant.
#[derive(Debug)]
pub struct TenantCounters {
    active: AtomicU32,
    /// QPS bucket: tokens left and when it was last refilled.
    bucket: Mutex<Option<(f64, std::time::Instant)>>,
    /// The tenant's latest catalog row, and a version bumped on each change.
    row: Mutex<Option<Arc<TenantInfo>>>,
    version: AtomicU64,
    /// What the admin API shows.
    pub metrics: TenantMetrics,
    /// Bumped to close every session of the tenant.
    disconnect: tokio::sync::watch::Sender<u64>,
}

impl TenantCounters {
    pub fn new(metrics: TenantMetrics) -> TenantCounters {
        TenantCounters {
            active: AtomicU32::new(0),
            bucket: Mutex::new(None),
            row: Mutex::new(None),
            version: AtomicU64::new(0),
            metrics,
            disconnect: tokio::sync::watch::Sender::new(0),
        }
    }

    /// A receiver that fires when the tenant's sessions must close.
    pub fn disconnect_signal(&self) -> tokio::sync::watch::Receiver<u64> {
        self.disconnect.subscribe()
    }

    /// Close every session of the tenant; returns how many were open.
    pub fn disconnect_all(&self) -> u32 {
        // Count first: woken sessions free their slots at once.
        let open = self.active();
        self.disconnect.send_modify(|v| *v += 1);
        open
    }

    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
    }

    /// Make `info` the tenant's current limits for every session.
    /// Every connection publishes the row it looked up; an unchanged row
    /// (the same cached `Arc`) bumps nothing, so live sessions are not made
    /// to re-read their limits on every new connection.
    pub fn publish(&self, info: Arc<TenantInfo>) {
        let mut row = self.row.lock().unwrap_or_else(|p| p.into_inner());
        if row.as_ref().is_some_and(|r| Arc::ptr_eq(r, &info)) {
            return;
        }
        *row = Some(info);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn current(&self) -> (u64, Option<Arc<TenantInfo>>) {
        let v = self.version.load(Ordering::Acquire);
        (
            v,
            self.row.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        )
    }

    /// Take one token from the tenant's bucket: `qps` tokens a second, at
    /// most `qps * burst` saved up. Shared by all the tenant's connections.
    pub fn take_token(&self, qps: i32, burst: f32) -> bool {
        if qps <= 0 {
            return true;
        }
        let rate = qps as f64;
        let cap = (rate * (burst.max(1.0) as f64)).max(1.0);
        let now = std::time::Instant::now();
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = b.unwrap_or((cap, now));
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * rate).min(cap);
        let (left, ok) = if tokens >= 1.0 {
            (tokens - 1.0, true)
        } else {
            (tokens, false)
        };
        *b = Some((left, now));
        ok
    }
}

/// Holds one of a tenant's connection slots; frees it on drop, however the
/// session ends.
#[derive(Debug)]
pub struct ConnectionSlot {
    counters: Arc<TenantCounters>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.counters.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Every tenant's counters. Entries are created only for tenants the
/// catalog knows, and removed when they leave it, so the map (and the
/// tenant-labelled metrics) is bounded by the catalog.
pub struct Limits {
    tenants: Mutex<HashMap<String, Arc<TenantCounters>>>,
    pub metrics: Arc<Metrics>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(Arc::new(Metrics::new()))
    }
}

impl Limits {
    pub fn new(metrics: Arc<Metrics>) -> Limits {
        Limits {
            tenants: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The tenant's counters, created on first use. Call only for tenants
    /// the catalog knows.
    pub fn counters(&self, tenant: &str) -> Arc<TenantCounters> {
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant.to_owned())
            .or_insert_with(|| Arc::new(TenantCounters::new(self.metrics.tenant(tenant))))
            .clone()
    }

    /// The tenant's counters if it has had any connection.
    pub fn get(&self, tenant: &str) -> Option<Arc<TenantCounters>> {
        let map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.get(tenant).cloned()
    }

    /// Set every known tenant's open-connections gauge (at scrape time;
    /// under the map lock, so a tenant being forgotten does not come back).
    pub fn export_active(&self) {
        let map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        for (id, c) in map.iter() {
            self.metrics.set_active(id, c.active());
        }
    }

    /// A tenant left the catalog: close its sessions, drop its counters and
    /// its metric series.
    pub fn forget(&self, tenant: &str) {
        let gone = {
            let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            self.metrics.forget(tenant);
            map.remove(tenant)
        };
        if let Some(c) = gone {
            let n = c.disconnect_all();
            tracing::info!(
                tenant,
                closed = n,
                "tenant dropped from the catalog: counters removed, sessions closed"
            );
        }
    }

    /// Re-read changed tenants (`"*"`: all known) from the catalog and
    /// publish their rows, so live sessions apply new limits at their next
    /// statement. Called on every catalog notification.
    pub async fn refresh(&self, catalog: &Arc<Catalog>, id: &str) {
        let ids: Vec<String> = if id == "*" {
            self.tenants
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned()
                .collect()
        } else {
            vec![id.to_owned()]
        };
        for id in ids {
            match catalog.lookup(&id).await {
                Ok(Some(info)) => {
                    if let Some(c) = self.get(&id) {
                        c.publish(info);
                    }
                }
                Ok(None) => self.forget(&id),
                Err(_) => {} // catalog down: keep what is known
            }
        }
    }

    /// Take a connection slot, or refuse when `max` (> 0) are in use.
    pub fn acquire_connection(&self, tenant: &str, max: i32) -> Result<ConnectionSlot, LimitError> {
        let counters = self.counters(tenant);
        let mut cur = counters.active.load(Ordering::Acquire);
        loop {
            if max > 0 && cur >= max as u32 {
                return Err(LimitError::TooManyConnections {
                    tenant: tenant.to_owned(),
                    max,
                });
            }
            match counters.active.compare_exchange(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(ConnectionSlot { counters }),
                Err(now) => cur = now,
            }
        }
    }
}

/// Where the client is in its current batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batch {
    Between,
    Allowed,
    Denied,
}

/// Transaction control passes the QPS check: a client must always be able
/// to end a transaction.
fn is_transaction_end(tag: u8, frame: &[u8]) -> bool {
    if tag != b'Q' || frame.len() < 6 {
        return false;
    }
    let text = String::from_utf8_lossy(&frame[5..frame.len().min(5 + 16)]).to_ascii_uppercase();
    let text = text.trim_start();
    ["COMMIT", "ROLLBACK", "END", "ABORT"]
        .iter()
        .any(|k| text.starts_with(k))
}

/// Why the watch canceled the running batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trip {
    Duration,
    ResultSize,
}

/// Per-session statement limits, fed every frame by the relay. A batch (a
/// simple Query, or extended-protocol messages up to Sync) is timed from
/// the moment it is sent until its ReadyForQuery; result rows (DataRow
/// bytes) are counted per batch. Over a limit, the backend gets a
/// CancelRequest, no more rows are forwarded, and the client gets an error
/// naming the limit instead of Postgres' "canceling statement due to user
/// request" (or instead of the CommandComplete of a statement that finished
/// before the cancel landed).
pub struct StatementWatch {
    tenant: String,
    counters: std::sync::Arc<TenantCounters>,
    seen_version: u64,
    qps: i32,
    burst: f32,
    batch: Batch,
    /// Whether the current batch executes anything (Query or Execute).
    executes: bool,
    /// Transaction status from the last ReadyForQuery.
    status: u8,
    /// Replies the router owes the client (a denied batch while idle).
    pub local_reply: BytesMut,
    max_query: Option<Duration>,
    max_result_bytes: u64,
    /// Batches sent to Postgres and not yet answered by ReadyForQuery, with
    /// when they were sent (None: not timed, e.g. a Parse-only batch).
    outstanding: VecDeque<Option<Instant>>,
    /// Relayed bytes already added to the tenant's counters.
    accounted: (u64, u64),
    armed: bool,
    timer: Pin<Box<Sleep>>,
    result_bytes: u64,
    tripped: Option<Trip>,
    reported: bool,
    cancels: std::sync::Arc<CancelRegistry>,
    backend: (i32, i32),
    /// A CancelRequest on its way; the client's next batch waits for it.
    cancel_in_flight: Option<tokio::task::JoinHandle<()>>,
}

impl StatementWatch {
    /// The watch of one tenant session; limits come from `counters` and are
    /// re-read at a batch start whenever the catalog published a change.
    pub fn new(
        tenant: &str,
        counters: std::sync::Arc<TenantCounters>,
        cancels: std::sync::Arc<CancelRegistry>,
        backend: (i32, i32),
    ) -> StatementWatch {
        let mut w = StatementWatch {
            tenant: tenant.to_owned(),
            counters,
            seen_version: u64::MAX,
            qps: 0,
            burst: 1.0,
            batch: Batch::Between,
            executes: false,
            status: b'I',
            local_reply: BytesMut::new(),
            max_query: None,
            max_result_bytes: 0,
            outstanding: VecDeque::new(),
            accounted: (0, 0),
            armed: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            result_bytes: 0,
            tripped: None,
            reported: false,
            cancels,
            backend,
            cancel_in_flight: None,
        };
        w.refresh();
        w
    }

    /// Pick up published limit changes (one atomic load when there are none).
    fn refresh(&mut self) {
        if self.counters.version.load(Ordering::Acquire) == self.seen_version {
            return;
        }
        let (v, row) = self.counters.current();
        self.seen_version = v;
        if let Some(i) = row {
            self.qps = i.qps_limit;
            self.burst = i.burst_multiplier;
            self.max_query =
                (i.max_query_ms > 0).then(|| Duration::from_millis(i.max_query_ms as u64));
            self.max_result_bytes = i.max_result_bytes.max(0) as u64;
        }
    }

    fn arm(&mut self) {
        if let Some(d) = self.max_query {
            self.timer.as_mut().reset(Instant::now() + d);
            self.armed = true;
        }
    }

    fn trip(&mut self, why: Trip) {
        if self.tripped.is_some() {
            return;
        }
        self.tripped = Some(why);
        self.counters.metrics.denied(match why {
            Trip::Duration => Denial::MaxQueryMs,
            Trip::ResultSize => Denial::MaxResultBytes,
        });
        let (cancels, (pid, key)) = (self.cancels.clone(), self.backend);
        tracing::info!(tenant = %self.tenant, backend_pid = pid, reason = ?why, "statement limit exceeded; canceling");
        self.cancel_in_flight = Some(tokio::spawn(async move { cancels.forward(pid, key).await }));
    }

    /// Whether client frames may go on to Postgres: not while a cancel
    /// this watch sent is still being delivered. A cancel that reaches an
    /// idle backend is ignored by Postgres; one that arrived after the
    /// client's next statement started would cancel that statement instead.
    pub fn poll_client_open(&mut self, cx: &mut Context<'_>) -> bool {
        match self.cancel_in_flight.as_mut() {
            None => true,
            Some(h) => {
                if Pin::new(h).poll(cx).is_ready() {
                    self.cancel_in_flight = None;
                    true
                } else {
                    false
                }
            }
        }
    }

    fn error(&self) -> BytesMut {
        match self.tripped {
            Some(Trip::ResultSize) => protocol::error_response(
                Severity::Error,
                "54000",
                &format!(
                    "result too large: tenant \"{}\" exceeded its max_result_bytes of {} bytes",
                    self.tenant, self.max_result_bytes
                ),
            ),
            _ => protocol::error_response(
                Severity::Error,
                "57014",
                &format!(
                    "canceling statement: tenant \"{}\" exceeded its max_query_ms of {} ms",
                    self.tenant,
                    self.max_query.map(|d| d.as_millis()).unwrap_or(0)
                ),
            ),
        }
    }

    /// Poll the duration timer (registers the waker while armed).
    pub fn poll_deadline(&mut self, cx: &mut Context<'_>) {
        if self.armed && self.timer.as_mut().poll(cx) == Poll::Ready(()) {
            self.armed = false;
            self.trip(Trip::Duration);
        }
    }

    /// The error a denied batch gets.
    fn qps_error(&self) -> String {
        format!(
            "too many statements: tenant \"{}\" exceeded its qps_limit of {} per second",
            self.tenant, self.qps
        )
    }

    /// A frame from the client. Query and Sync end a batch; the QPS bucket
    /// is consulted at its first frame. A denied batch is dropped; idle, the
    /// router answers itself (`local_reply`); inside a transaction or behind
    /// pipelined batches, its last frame becomes a statement that fails with
    /// the same error inside Postgres, so the transaction cannot commit.
    pub fn on_client_frame(&mut self, tag: u8, frame: &[u8]) -> Edit {
        if self.batch == Batch::Between {
            if matches!(tag, b'd' | b'c' | b'f' | b'X') {
                return Edit::Keep; // COPY data belongs to a running batch
            }
            self.refresh();
            let ok =
                is_transaction_end(tag, frame) || self.counters.take_token(self.qps, self.burst);
            self.batch = if ok { Batch::Allowed } else { Batch::Denied };
        }
        let ends = tag == b'Q' || tag == b'S';
        if tag == b'Q' || tag == b'E' {
            self.counters.metrics.statements.inc();
            if self.batch == Batch::Denied {
                self.counters.metrics.denied(Denial::QpsLimit);
            } else {
                self.executes = true;
            }
        }
        let edit = match (self.batch, ends) {
            (Batch::Denied, false) => Edit::Drop,
            (Batch::Denied, true) if self.outstanding.is_empty() && self.status == b'I' => {
                let msg = self.qps_error();
                self.counters.metrics.errors.inc();
                self.local_reply
                    .extend_from_slice(&protocol::error_response(Severity::Error, "53400", &msg));
                self.local_reply.extend_from_slice(b"Z\0\0\0\x05I");
                tracing::info!(tenant = %self.tenant, "statement refused: qps_limit");
                Edit::Drop
            }
            (Batch::Denied, true) => {
                // Tenant ids match [a-z0-9_-]: nothing to escape in the literal.
                let sql = format!(
                    "DO $pg_tenant$BEGIN RAISE EXCEPTION USING ERRCODE = '53400', MESSAGE = '{}'; END$pg_tenant$",
                    self.qps_error()
                );
                let mut q = BytesMut::with_capacity(sql.len() + 6);
                q.extend_from_slice(b"Q");
                q.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
                q.extend_from_slice(sql.as_bytes());
                q.extend_from_slice(b"\0");
                self.begin_batch();
                tracing::info!(tenant = %self.tenant, "statement refused inside a transaction: qps_limit");
                Edit::Replace(q)
            }
            (_, true) => {
                self.begin_batch();
                Edit::Keep
            }
            (_, false) => Edit::Keep,
        };
        if ends {
            self.batch = Batch::Between;
            self.executes = false;
        }
        edit
    }

    /// A batch goes to Postgres: time it if it executes something.
    fn begin_batch(&mut self) {
        if self.outstanding.is_empty() {
            self.arm();
        }
        let timed = self.executes && self.batch == Batch::Allowed;
        self.outstanding.push_back(timed.then(Instant::now));
    }

    /// Nothing in flight, between batches, not in a transaction: a point
    /// where the session can be closed cleanly.
    pub fn at_rest(&self) -> bool {
        self.outstanding.is_empty() && self.batch == Batch::Between && self.status == b'I'
    }

    /// Add the relay's byte counts (totals so far) to the tenant's counters.
    pub fn account(&mut self, bytes_in: u64, bytes_out: u64) {
        if (bytes_in, bytes_out) == self.accounted {
            return;
        }
        let m = &self.counters.metrics;
        m.bytes_in.inc_by(bytes_in - self.accounted.0);
        m.bytes_out.inc_by(bytes_out - self.accounted.1);
        self.accounted = (bytes_in, bytes_out);
    }

    /// A frame from Postgres.
    pub fn on_server_frame(&mut self, tag: u8, frame: &[u8]) -> Edit {
        match tag {
            b'D' => {
                if self.tripped == Some(Trip::ResultSize) {
                    return Edit::Drop;
                }
                self.result_bytes += frame.len() as u64;
                if self.max_result_bytes > 0 && self.result_bytes > self.max_result_bytes {
                    self.trip(Trip::ResultSize);
                    return Edit::Drop;
                }
                Edit::Keep
            }
            b'C' if self.tripped == Some(Trip::ResultSize) && !self.reported => {
                self.reported = true;
                self.counters.metrics.errors.inc();
                Edit::Replace(self.error())
            }
            b'E' if self.tripped.is_some() && !self.reported => {
                self.counters.metrics.errors.inc();
                let (code, _) =
                    protocol::parse_error_fields(bytes::Bytes::copy_from_slice(&frame[5..]));
                if code == "57014" {
                    self.reported = true;
                    Edit::Replace(self.error())
                } else {
                    Edit::Keep
                }
            }
            b'E' => {
                self.counters.metrics.errors.inc();
                Edit::Keep
            }
            b'Z' => {
                self.status = frame.get(5).copied().unwrap_or(b'I');
                if let Some(Some(sent)) = self.outstanding.pop_front() {
                    self.counters.metrics.observe(sent.elapsed());
                }
                self.result_bytes = 0;
                self.tripped = None;
                self.reported = false;
                self.armed = false;
                if !self.outstanding.is_empty() {
                    self.arm();
                }
                Edit::Keep
            }
            _ => Edit::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_freed() {
        let l = Limits::default();
        let a = l.acquire_connection("acme", 2).unwrap();
        let _b = l.acquire_connection("acme", 2).unwrap();
        assert_eq!(
            l.acquire_connection("acme", 2).unwrap_err(),
            LimitError::TooManyConnections {
                tenant: "acme".into(),
                max: 2
            }
        );
        // Other tenants are unaffected.
        let _g = l.acquire_connection("globex", 1).unwrap();
        drop(a);
        assert_eq!(l.counters("acme").active(), 1);
        let _c = l.acquire_connection("acme", 2).unwrap();
        // 0 is unlimited.
        let many: Vec<_> = (0..50)
            .map(|_| l.acquire_connection("free", 0).unwrap())
            .collect();
        assert_eq!(l.counters("free").active(), 50);
        drop(many);
        assert_eq!(l.counters("free").active(), 0);
    }

    #[test]
    fn concurrent_acquires_never_exceed_the_limit() {
        let l = Arc::new(Limits::default());
        let held: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..10)
                            .filter_map(|_| l.acquire_connection("t", 5).ok())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(held.len(), 5);
        assert_eq!(l.counters("t").active(), 5);
    }

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![tag];
        f.extend(((body.len() + 4) as u32).to_be_bytes());
        f.extend(body);
        f
    }

    fn code_of(edit: Edit) -> String {
        match edit {
            Edit::Replace(b) => protocol::parse_error_fields(b.freeze().slice(5..)).0,
            other => panic!("expected a replacement, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn result_size_drops_rows_and_replaces_completion() {
        let reg = CancelRegistry::new();
        let mut w = StatementWatch::new("acme", counters(info(0, 20, 0)), reg, (1, 2));
        w.on_client_frame(b'Q', b"");
        let row = frame(b'D', &[0; 11]); // 16 bytes
        assert_eq!(w.on_server_frame(b'D', &row), Edit::Keep);
        assert_eq!(w.on_server_frame(b'D', &row), Edit::Drop, "over 20 bytes");
        assert_eq!(w.on_server_frame(b'D', &row), Edit::Drop);
        assert_eq!(
            code_of(w.on_server_frame(b'C', &frame(b'C', b"SELECT 3\0"))),
            "54000"
        );
        assert_eq!(w.on_server_frame(b'Z', &frame(b'Z', b"I")), Edit::Keep);
        // The next batch starts afresh.
        w.on_client_frame(b'Q', b"");
        assert_eq!(w.on_server_frame(b'D', &row), Edit::Keep);
    }

    #[tokio::test]
    async fn only_cancellation_errors_are_rewritten() {
        let reg = CancelRegistry::new();
        let mut w = StatementWatch::new("acme", counters(info(100, 0, 0)), reg, (1, 2));
        w.on_client_frame(b'S', b"");
        w.trip(Trip::Duration);
        let other = protocol::error_response(Severity::Error, "22012", "division by zero");
        assert_eq!(w.on_server_frame(b'E', &other), Edit::Keep);
        let canceled = protocol::error_response(
            Severity::Error,
            "57014",
            "canceling statement due to user request",
        );
        assert_eq!(code_of(w.on_server_frame(b'E', &canceled)), "57014");
        assert_eq!(
            w.on_server_frame(b'E', &canceled),
            Edit::Keep,
            "reported once per batch"
        );
    }

    fn counters(i: TenantInfo) -> Arc<TenantCounters> {
        let c = Limits::default().counters("acme");
        c.publish(Arc::new(i));
        c
    }

    #[test]
    fn published_changes_reach_the_watch_at_the_next_batch() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let c = counters(info(0, 0, 0));
        let mut w = StatementWatch::new("acme", c.clone(), CancelRegistry::new(), (1, 2));
        assert_eq!(w.qps, 0);
        c.publish(Arc::new(info(0, 0, 7)));
        w.on_client_frame(b'Q', b"Q\0\0\0\x0dSELECT 1\0");
        assert_eq!(w.qps, 7);
    }

    fn info(max_query_ms: i32, max_result_bytes: i64, qps_limit: i32) -> TenantInfo {
        TenantInfo {
            id: "acme".into(),
            enabled: true,
            isolation: "rls".into(),
            database_name: None,
            schema_name: None,
            max_connections: 0,
            qps_limit,
            burst_multiplier: 1.5,
            max_query_ms,
            max_result_bytes,
        }
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let c = Limits::default().counters("acme");
        let ok = (0..100).filter(|_| c.take_token(20, 1.5)).count();
        assert_eq!(ok, 30, "burst capacity is qps * burst");
        std::thread::sleep(std::time::Duration::from_millis(210));
        let ok = (0..100).filter(|_| c.take_token(20, 1.5)).count();
        assert!((4..=6).contains(&ok), "refilled at 20/s: {ok}");
        assert!(c.take_token(0, 1.0), "0 is unlimited");
    }

    #[tokio::test]
    async fn frames_buffered_during_the_handshake_are_watched() {
        let c = counters(info(0, 0, 1));
        assert!(c.take_token(1, 1.0)); // empty the bucket
        let mut w = StatementWatch::new("acme", c, CancelRegistry::new(), (1, 2));
        // A client that sent its first query before ReadyForQuery.
        let early = frame(b'Q', b"SELECT 1\0");
        let relay =
            crate::relay::Relay::new(BytesMut::from(&early[..]), BytesMut::new(), Some(&mut w))
                .unwrap();
        assert_eq!(w.counters.metrics.statements.get(), 1);
        assert!(w.outstanding.is_empty(), "refused, not sent");
        assert!(relay.up.pending().is_empty());
        assert_eq!(
            relay.down.pending()[0],
            b'E',
            "53400 answered by the router"
        );
    }

    #[tokio::test]
    async fn denied_batch_is_answered_locally_when_idle_and_substituted_in_a_transaction() {
        let reg = CancelRegistry::new();
        let c = counters(info(0, 0, 1));
        assert!(c.take_token(1, 1.0)); // empty the bucket
        let mut w = StatementWatch::new("acme", c, reg, (1, 2));
        // Idle: dropped, answered by the router with 53400 and ReadyForQuery.
        assert_eq!(w.on_client_frame(b'P', b""), Edit::Drop);
        assert_eq!(w.on_client_frame(b'S', b""), Edit::Drop);
        assert_eq!(w.local_reply[0], b'E');
        assert!(w.local_reply.ends_with(b"Z\0\0\0\x05I"));
        // In a transaction: the Query becomes one that fails inside Postgres.
        w.on_server_frame(b'Z', b"Z\0\0\0\x05T");
        match w.on_client_frame(b'Q', b"Q\0\0\0\x0dSELECT 1\0") {
            Edit::Replace(q) => assert!(String::from_utf8_lossy(&q).contains("ERRCODE = '53400'")),
            other => panic!("{other:?}"),
        }
        // COMMIT always passes.
        assert_eq!(w.on_client_frame(b'Q', b"Q\0\0\0\x0bCOMMIT\0"), Edit::Keep);
    }
}
