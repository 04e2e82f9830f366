//! One tenant session's limits, observing its conversation. The relay
//! shows the watch every client frame before it goes (`on_client`: pass,
//! replace with a stand-in, or answer locally) and every server frame with
//! what it meant (`on_server`: keep, drop or replace). Over
//! `max_query_ms`, the backend gets a CancelRequest and the client an
//! error naming the limit instead of Postgres' "canceling statement due to
//! user request". Over `max_result_bytes`, the backend gets a
//! CancelRequest (unless the unit has already stopped), nothing more the
//! unit sends is relayed but what the protocol needs (BindComplete-,
//! ParseComplete-like answers to other messages, ParameterStatus, COPY
//! starts, ReadyForQuery), and the client gets the limit's error in place
//! of the unit's completion or error (or just before its ReadyForQuery).

use super::counters::TenantCounters;
use super::duration::QueryTimer;
use super::qps;
use super::result_size::ResultSize;
use crate::cancel::CancelRegistry;
use crate::codec::{Edit, FrameView};
use crate::conversation::{Conversation, Pending, ServerEvent, Unit};
use crate::metrics::Denial;
use crate::protocol::{self, Severity};
use bytes::BytesMut;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Context;
use std::time::Duration;

/// What to do with a client frame.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientVerdict {
    /// Forward it.
    Pass,
    /// A limit refused it: forward this failing stand-in instead.
    StandIn(BytesMut),
    /// A limit refused it: drop it; the answer is in `local_reply`.
    Answer,
}

/// Why the watch stopped a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trip {
    Duration,
    ResultSize,
}

pub struct StatementWatch {
    tenant: String,
    counters: Arc<TenantCounters>,
    seen_version: u64,
    qps: i32,
    burst: f32,
    max_query: Option<Duration>,
    max_result_bytes: u64,
    timer: QueryTimer,
    result: ResultSize,
    /// What the batch's units cost so far (a Bind pays for its Execute).
    charges: qps::Charges,
    /// The unit a limit stopped, and why.
    tripped: Option<(Trip, u64)>,
    /// Whether the client was told.
    reported: bool,
    /// Replies the router owes the client (a denied Query while idle).
    pub local_reply: BytesMut,
    /// Relayed bytes already added to the tenant's counters.
    accounted: (u64, u64),
    cancels: Arc<CancelRegistry>,
    backend: (i32, i32),
    /// A CancelRequest on its way; the client's next frames wait for it.
    cancel_in_flight: Option<tokio::task::JoinHandle<()>>,
    /// The unit a limit canceled, and when PostgreSQL's answer to it is
    /// overdue (`CANCEL_ANSWER_WAIT`).
    awaiting_answer: Option<(u64, Pin<Box<tokio::time::Sleep>>)>,
    /// PostgreSQL did not answer a canceled unit in time.
    unresponsive: bool,
    /// Bytes relayed to the client when the relay last said (`answer_moving`).
    answer_relayed: u64,
}

/// How long after canceling a unit over max_query_ms PostgreSQL has to answer
/// it (its error, or the unit's end). A server that stalled (a half-open
/// connection, a frozen host) answers neither that unit nor the cancel:
/// past this the session ends (FATAL 08006) instead of waiting forever.
pub const CANCEL_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// Most of `local_reply` waiting for the relay to deliver it: past it a
/// denied Query goes to PostgreSQL as a stand-in, whose answer is held
/// back like any other (one read of small Queries cannot make the router
/// owe a client ten times what it sent).
pub const LOCAL_REPLY_ROOM: usize = 8 * 1024;

impl StatementWatch {
    /// The watch of one tenant session; limits come from `counters` and are
    /// re-read at each unit whenever the catalog published a change.
    /// The tenant this watch belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn new(
        tenant: &str,
        counters: Arc<TenantCounters>,
        cancels: Arc<CancelRegistry>,
        backend: (i32, i32),
    ) -> StatementWatch {
        let mut w = StatementWatch {
            tenant: tenant.to_owned(),
            counters,
            seen_version: u64::MAX,
            qps: 0,
            burst: 1.0,
            max_query: None,
            max_result_bytes: 0,
            timer: QueryTimer::default(),
            result: ResultSize::default(),
            charges: qps::Charges::default(),
            tripped: None,
            reported: false,
            local_reply: BytesMut::new(),
            accounted: (0, 0),
            cancels,
            backend,
            cancel_in_flight: None,
            awaiting_answer: None,
            unresponsive: false,
            answer_relayed: 0,
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

    /// A client frame about to go to Postgres.
    pub fn on_client(&mut self, v: FrameView<'_>, conv: &Conversation) -> ClientVerdict {
        if v.tag == b'S' {
            self.charges.sync();
            return ClientVerdict::Pass;
        }
        let Some(unit) = conv.starts(v.tag) else {
            return ClientVerdict::Pass;
        };
        self.refresh();
        match self.charges.charge(v, unit, conv) {
            qps::Charge::Paid => return ClientVerdict::Pass,
            // Postgres would skip it: it goes as a stand-in all the same,
            // so that nothing runs even if the denied one did not fail.
            qps::Charge::Skipped => {
                return ClientVerdict::StandIn(qps::stand_in(
                    unit,
                    &qps::message(&self.tenant, self.qps),
                ))
            }
            qps::Charge::TransactionEnd => {
                self.counters.metrics.statement();
                return ClientVerdict::Pass;
            }
            qps::Charge::Token => {}
        }
        self.counters.metrics.statement();
        let ran = self.counters.take_token(self.qps, self.burst);
        self.charges.charged(v, unit, ran);
        if ran {
            return ClientVerdict::Pass;
        }
        self.counters.metrics.denied(Denial::QpsLimit);
        let msg = qps::message(&self.tenant, self.qps);
        tracing::info!(tenant = %self.tenant, unit = ?unit, "statement refused: qps_limit");
        if unit == Unit::Query && conv.at_rest() && self.local_reply.len() < LOCAL_REPLY_ROOM {
            self.counters.metrics.error();
            self.local_reply.extend_from_slice(&qps::local_reply(&msg));
            return ClientVerdict::Answer;
        }
        ClientVerdict::StandIn(qps::stand_in(unit, &msg))
    }

    /// After a frame went either way: time what runs now.
    pub fn follow(&mut self, conv: &Conversation) {
        self.timer.follow(conv, self.max_query);
    }

    /// A server frame on its way to the client; `ev` is what it meant to
    /// the conversation (already updated).
    pub fn on_server(&mut self, v: FrameView<'_>, ev: ServerEvent, conv: &Conversation) -> Edit {
        self.restart_answer_wait();
        // The unit the frame belongs to: the one it answered, else the one
        // being answered now. A denied unit's stand-in runs nothing.
        let owner = ev.unit().or_else(|| conv.front());
        let seq = owner.filter(|p| !p.denied).map(|p| p.seq);
        if let Some(s) = seq.filter(|_| v.tag != b'Z') {
            if self.result.add(s, v.len, self.max_result_bytes) {
                // After its error, its call result or its completion the
                // unit runs nothing more: no cancel (it would hit the next).
                let done = matches!(
                    ev,
                    ServerEvent::Error(_)
                        | ServerEvent::StatementDone(Some(_))
                        | ServerEvent::Bound(Some(_))
                ) || v.tag == b'V';
                self.trip(Trip::ResultSize, s, !done);
            }
        }
        match ev {
            ServerEvent::StatementDone(Some(p)) => self.counters.metrics.observe(p.sent.elapsed()),
            ServerEvent::Ready(Some(p)) if p.unit != Unit::Sync => {
                self.counters.metrics.observe(p.sent.elapsed())
            }
            _ => {}
        }
        let why = match self.tripped {
            Some((why, s)) if Some(s) == seq => why,
            _ => Trip::ResultSize,
        };
        let edit = match ev {
            ServerEvent::Error(Some(p))
                if p.denied
                    && matches!(p.unit, Unit::Bind | Unit::Execute)
                    && qps::is_stand_in_error(v.bytes) =>
            {
                self.counters.metrics.error();
                Edit::Replace(protocol::error_response(
                    Severity::Error,
                    "53400",
                    &qps::message(&self.tenant, self.qps),
                ))
            }
            // A denied Query's stand-in that could not even raise its
            // error (25P02 in a failed transaction): the client is told
            // why all the same.
            ServerEvent::Error(Some(p))
                if p.denied
                    && matches!(p.unit, Unit::Query | Unit::Call)
                    && v.body().is_some()
                    && protocol::error_fields(v.bytes).0 != "53400" =>
            {
                self.counters.metrics.error();
                Edit::Replace(protocol::error_response(
                    Severity::Error,
                    "53400",
                    &qps::message(&self.tenant, self.qps),
                ))
            }
            _ if self.result.over(seq) => self.past_the_limit(v, ev, owner, why),
            ServerEvent::Error(p) => {
                self.counters.metrics.error();
                match p {
                    Some(p) if !self.reported && self.tripped.is_some_and(|t| t.1 == p.seq) => {
                        let code = v.body().map(|_| protocol::error_fields(v.bytes).0);
                        if code.as_deref() == Some("57014") {
                            self.reported = true;
                            Edit::Replace(self.error(why))
                        } else {
                            Edit::Keep
                        }
                    }
                    _ => Edit::Keep,
                }
            }
            _ => Edit::Keep,
        };
        // Postgres holds a Bind's or an Execute's answer back until a Flush
        // or Sync: a unit timed out while its answer waited had finished,
        // and the cancel lands in the unit after it, which is then the one
        // stopped for running over.
        if let (Some((Trip::Duration, s)), Some(p)) = (self.tripped, ev.unit()) {
            let succeeded = matches!(
                ev,
                ServerEvent::Bound(Some(_)) | ServerEvent::StatementDone(Some(_))
            );
            if s == p.seq && succeeded && !self.reported {
                if let Some(next) = conv.front().filter(|n| n.unit != Unit::Sync && !n.denied) {
                    self.tripped = Some((Trip::Duration, next.seq));
                }
            }
        }
        // The stopped unit is answered: the next starts afresh.
        if self
            .tripped
            .is_some_and(|(_, s)| Some(s) != conv.front().map(|p| p.seq))
        {
            self.tripped = None;
            self.reported = false;
        }
        edit
    }

    /// A frame of a unit whose result went over `max_result_bytes`: only
    /// what the protocol needs goes on, and the limit's error once, in
    /// place of the unit's answer (or before its ReadyForQuery).
    fn past_the_limit(
        &mut self,
        v: FrameView<'_>,
        ev: ServerEvent,
        owner: Option<Pending>,
        why: Trip,
    ) -> Edit {
        match ev {
            ServerEvent::StatementDone(_) | ServerEvent::Bound(_) | ServerEvent::Error(_) => {
                self.report(why)
            }
            ServerEvent::Ready(_) => match self.report(why) {
                Edit::Replace(mut error) => {
                    error.extend_from_slice(v.bytes);
                    Edit::Replace(error)
                }
                _ => Edit::Keep,
            },
            ServerEvent::Row | ServerEvent::CopyData | ServerEvent::CopyDone => Edit::Drop,
            ServerEvent::Other => match v.tag {
                // FunctionCallResponse: the call's answer.
                b'V' => self.report(why),
                // NoticeResponse, NotificationResponse.
                b'N' | b'A' => Edit::Drop,
                // A later statement's RowDescription in a simple Query (in
                // a batch, RowDescription answers a Describe: it stays).
                b'T' if owner.is_some_and(|p| p.unit == Unit::Query) => Edit::Drop,
                _ => Edit::Keep,
            },
        }
    }

    /// The limit's error, the first time; after that the frame is dropped.
    fn report(&mut self, why: Trip) -> Edit {
        if self.reported {
            return Edit::Drop;
        }
        self.reported = true;
        self.counters.metrics.error();
        Edit::Replace(self.error(why))
    }

    /// Stop unit `seq` for `why`; `cancel`: it may still be running.
    fn trip(&mut self, why: Trip, seq: u64, cancel: bool) {
        if self.tripped.is_some_and(|t| t.1 == seq) {
            return;
        }
        self.tripped = Some((why, seq));
        self.reported = false;
        self.counters.metrics.denied(match why {
            Trip::Duration => Denial::MaxQueryMs,
            Trip::ResultSize => Denial::MaxResultBytes,
        });
        let (cancels, (pid, key)) = (self.cancels.clone(), self.backend);
        if !cancel {
            tracing::info!(tenant = %self.tenant, backend_pid = pid, reason = ?why, "statement limit exceeded");
            return;
        }
        tracing::info!(tenant = %self.tenant, backend_pid = pid, reason = ?why, "statement limit exceeded; canceling");
        self.cancel_in_flight = Some(tokio::spawn(async move {
            cancels.forward(pid, key).await;
        }));
        // Over max_query_ms only: a unit over max_result_bytes is still
        // sending (the server is evidently there).
        if why == Trip::Duration {
            self.awaiting_answer = Some((seq, Box::pin(tokio::time::sleep(CANCEL_ANSWER_WAIT))));
        }
    }

    /// PostgreSQL left a unit canceled over max_query_ms unanswered for
    /// `CANCEL_ANSWER_WAIT`: the relay ends the session.
    pub fn server_unresponsive(&self) -> bool {
        self.unresponsive
    }

    /// The canceled unit's answer is on its way, so the wait for it starts
    /// again: `relayed`, the bytes relayed to the client so far, grew (a
    /// frame streamed through is not shown to `on_server` past its first
    /// bytes). A client that takes nothing at all holds the server back
    /// (PostgreSQL acts on a cancel only once its socket takes writes
    /// again): that wait is not restarted, and its end is told apart by the
    /// relay (bytes still owed to the client).
    pub fn answer_moving(&mut self, relayed: u64) {
        if std::mem::replace(&mut self.answer_relayed, relayed) != relayed {
            self.restart_answer_wait();
        }
    }

    fn restart_answer_wait(&mut self) {
        if let Some((_, overdue)) = self.awaiting_answer.as_mut() {
            overdue
                .as_mut()
                .reset(tokio::time::Instant::now() + CANCEL_ANSWER_WAIT);
        }
    }

    /// Poll the duration timer (registers the waker while armed); a unit
    /// still running when it fires is canceled.
    pub fn poll_deadline(&mut self, cx: &mut Context<'_>, conv: &Conversation) {
        if let Some(seq) = self.timer.poll_expired(cx) {
            if conv.front().is_some_and(|p| p.seq == seq) {
                self.trip(Trip::Duration, seq, true);
            }
        }
        if let Some((seq, overdue)) = self.awaiting_answer.as_mut() {
            if conv.front().is_none_or(|p| p.seq != *seq) {
                self.awaiting_answer = None;
            } else if overdue.as_mut().poll(cx).is_ready() {
                self.awaiting_answer = None;
                self.unresponsive = true;
            }
        }
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

    fn error(&self, why: Trip) -> BytesMut {
        match why {
            Trip::ResultSize => protocol::error_response(
                Severity::Error,
                "54000",
                &format!(
                    "result too large: tenant \"{}\" exceeded its max_result_bytes of {} bytes",
                    self.tenant, self.max_result_bytes
                ),
            ),
            Trip::Duration => protocol::error_response(
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

    /// Add the relay's byte counts (totals so far) to the tenant's counters.
    /// A new relay starts counting from zero (transaction pooling: one
    /// relay per transaction).
    pub fn restart_accounting(&mut self) {
        self.accounted = (0, 0);
    }

    pub fn account(&mut self, bytes_in: u64, bytes_out: u64) {
        if (bytes_in, bytes_out) == self.accounted {
            return;
        }
        let m = &self.counters.metrics;
        m.add_bytes(bytes_in - self.accounted.0, bytes_out - self.accounted.1);
        self.accounted = (bytes_in, bytes_out);
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
