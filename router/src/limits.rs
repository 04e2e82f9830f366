//! Per-tenant limits the router enforces across all of a tenant's
//! connections through this router. Values come from the catalog
//! (`tenant.router_catalog`); 0 means unlimited.
//!
//! Implemented: `max_connections` (`Limits`), and `max_query_ms` and
//! `max_result_bytes` (`StatementWatch`, which the relay shows every frame).
//! Not yet: the QPS token bucket.

use crate::cancel::CancelRegistry;
use crate::protocol::{self, Severity};
use crate::relay::Edit;
use bytes::BytesMut;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
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
#[derive(Debug, Default)]
pub struct TenantCounters {
    active: AtomicU32,
}

impl TenantCounters {
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Acquire)
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
/// catalog knows, so the map is bounded by the catalog.
#[derive(Debug, Default)]
pub struct Limits {
    tenants: Mutex<HashMap<String, Arc<TenantCounters>>>,
}

impl Limits {
    pub fn counters(&self, tenant: &str) -> Arc<TenantCounters> {
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant.to_owned()).or_default().clone()
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
    max_query: Option<Duration>,
    max_result_bytes: u64,
    outstanding: u32,
    armed: bool,
    timer: Pin<Box<Sleep>>,
    result_bytes: u64,
    tripped: Option<Trip>,
    reported: bool,
    cancels: std::sync::Arc<CancelRegistry>,
    backend: (i32, i32),
}

impl StatementWatch {
    /// None when the tenant has neither limit.
    pub fn new(
        tenant: &str,
        max_query_ms: i32,
        max_result_bytes: i64,
        cancels: std::sync::Arc<CancelRegistry>,
        backend: (i32, i32),
    ) -> Option<StatementWatch> {
        if max_query_ms <= 0 && max_result_bytes <= 0 {
            return None;
        }
        Some(StatementWatch {
            tenant: tenant.to_owned(),
            max_query: (max_query_ms > 0).then(|| Duration::from_millis(max_query_ms as u64)),
            max_result_bytes: max_result_bytes.max(0) as u64,
            outstanding: 0,
            armed: false,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            result_bytes: 0,
            tripped: None,
            reported: false,
            cancels,
            backend,
        })
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
        let (cancels, (pid, key)) = (self.cancels.clone(), self.backend);
        tracing::info!(tenant = %self.tenant, backend_pid = pid, reason = ?why, "statement limit exceeded; canceling");
        tokio::spawn(async move { cancels.forward(pid, key).await });
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

    /// A frame from the client: Query and Sync end a batch.
    pub fn on_client_frame(&mut self, tag: u8) -> Edit {
        if tag == b'Q' || tag == b'S' {
            if self.outstanding == 0 {
                self.arm();
            }
            self.outstanding += 1;
        }
        Edit::Keep
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
                Edit::Replace(self.error())
            }
            b'E' if self.tripped.is_some() && !self.reported => {
                let (code, _) =
                    protocol::parse_error_fields(bytes::Bytes::copy_from_slice(&frame[5..]));
                if code == "57014" {
                    self.reported = true;
                    Edit::Replace(self.error())
                } else {
                    Edit::Keep
                }
            }
            b'Z' => {
                self.outstanding = self.outstanding.saturating_sub(1);
                self.result_bytes = 0;
                self.tripped = None;
                self.reported = false;
                self.armed = false;
                if self.outstanding > 0 {
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
        let reg = CancelRegistry::new("127.0.0.1:1".into());
        let mut w = StatementWatch::new("acme", 0, 20, reg, (1, 2)).unwrap();
        w.on_client_frame(b'Q');
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
        w.on_client_frame(b'Q');
        assert_eq!(w.on_server_frame(b'D', &row), Edit::Keep);
    }

    #[tokio::test]
    async fn only_cancellation_errors_are_rewritten() {
        let reg = CancelRegistry::new("127.0.0.1:1".into());
        let mut w = StatementWatch::new("acme", 100, 0, reg, (1, 2)).unwrap();
        w.on_client_frame(b'S');
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

    #[test]
    fn no_watch_without_limits() {
        let reg = CancelRegistry::new("127.0.0.1:1".into());
        assert!(StatementWatch::new("acme", 0, 0, reg, (1, 2)).is_none());
    }
}
