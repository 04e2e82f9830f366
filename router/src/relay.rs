//! Transparent phase: both directions of a session, driven by one poll
//! function. Each direction is a `codec::Framer` (whole frames up to
//! `STREAM_OVER` bytes, larger ones streamed through as they arrive); every
//! frame passes the `Conversation` and, for tenant sessions, the
//! `StatementWatch`. Backpressure: a side is not read while `HIGH_WATER`
//! bytes wait for the other. No copies and no allocations in the steady
//! state: frames are written on straight from the read buffer.

use crate::codec::{Edit, FrameView, Framer};
use crate::conversation::Conversation;
use crate::conversation::{ServerEvent, Unit};
use crate::limits::watch::{ClientVerdict, StatementWatch};
use crate::pool::prepared::{
    Answer, BackendStatements, ClientVerdict as StatementVerdict, Prepared,
    ServerVerdict as StatementServer,
};
use crate::protocol::FrameError;
use crate::transport::Stream;
use bytes::BytesMut;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

/// Read-buffer growth step.
const BUF: usize = 64 * 1024;
const HIGH_WATER: usize = 256 * 1024;
/// Rounds of progress before yielding to other tasks.
const BUDGET: usize = 64;

/// How the relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The client sent Terminate (forwarded) or hung up.
    Client,
    /// Postgres closed the connection (what it said last was forwarded).
    Server,
    /// Draining, and the session reached a point where it can be closed
    /// cleanly: nothing in flight, not in a transaction, all delivered.
    Idle,
    /// Transaction pooling: the conversation is at rest, the backend can
    /// go back to its pool.
    Rest,
    /// Transaction pooling: the conversation was lost (`Conversation::
    /// lost`): it would never come to rest, so the session ends, and its
    /// backend is closed.
    Lost,
    /// Transaction pooling: more than `prepared::MAX_WAITING` Parse and
    /// Close messages wait for answers; the session ends.
    Overflow,
}

/// Whether the relay runs on or stops at the next idle point (SIGTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    StopWhenIdle,
    /// Transaction pooling: stop at every point of rest (`End::Rest`).
    DetachAtRest,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Who owns the backend, which decides where the client's Terminate goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The session's own: Terminate is forwarded and ends it.
    Own,
    /// A pool's: Terminate ends the client's session but is not forwarded
    /// (the backend goes back to its pool).
    Pooled,
}

/// A client frame on its way: the watch decides, the conversation records
/// what Postgres actually gets.
fn client_frame(
    conv: &mut Conversation,
    watch: Option<&mut StatementWatch>,
    ownership: Ownership,
    statements: Option<&mut Carried>,
    v: FrameView<'_>,
) -> Edit {
    if v.tag == b'X' && ownership == Ownership::Pooled {
        conv.client_sent(v.tag, false);
        return Edit::Drop;
    }
    if v.tag == b'S' && conv.sync_during_copy() {
        // PostgreSQL ignores it when the COPY goes well: so does the
        // router, always (see Conversation::sync_during_copy).
        return Edit::Drop;
    }
    let Some(st) = statements else {
        return watched_client_frame(conv, watch, v);
    };
    // A simple Query or FunctionCall inside an extended batch not yet
    // synced: the router syncs the batch first. (PostgreSQL would run it
    // inside the batch, or skip it after an error in the batch, answering
    // nothing: which of the two cannot be told from the answers, and a
    // backend must never be given back before its last answer.)
    let mut synced = None;
    if matches!(v.tag, b'Q' | b'F') && conv.batch_open() && !conv.terminated() {
        let sync = BytesMut::from(&SYNC[..]);
        conv.client_sent(b'S', false);
        let sync_view = FrameView {
            tag: b'S',
            len: SYNC.len(),
            bytes: &SYNC,
        };
        synced = Some(match st.client.on_client(sync_view, &mut st.backend) {
            StatementVerdict::Prepend(mut first) => {
                first.extend_from_slice(&sync);
                first
            }
            _ => sync,
        });
    }
    let edit = client_frame_tracked(conv, watch, st, v);
    match (synced, edit) {
        (None, edit) => edit,
        (Some(first), Edit::Keep) => Edit::Prepend(first),
        (Some(mut first), Edit::Prepend(more)) => {
            first.extend_from_slice(&more);
            Edit::Prepend(first)
        }
        (Some(mut first), Edit::Replace(with)) => {
            first.extend_from_slice(&with);
            Edit::Replace(first)
        }
        (Some(first), Edit::Drop) => Edit::Replace(first),
    }
}

/// A Sync message.
const SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

/// A client frame of a transaction-pooled session: the watch, then the
/// statement tracking.
fn client_frame_tracked(
    conv: &mut Conversation,
    watch: Option<&mut StatementWatch>,
    st: &mut Carried,
    v: FrameView<'_>,
) -> Edit {
    let edit = watched_client_frame(conv, watch, v);
    // Transaction pooling: the client's named statements follow it from
    // backend to backend (pool::prepared).
    let (verdict, sent) = match edit {
        Edit::Keep => (st.client.on_client(v, &mut st.backend), None),
        Edit::Replace(with) => {
            let stand_in = FrameView {
                tag: with.first().copied().unwrap_or(0),
                len: with.len(),
                bytes: &with,
            };
            (st.client.on_client(stand_in, &mut st.backend), Some(with))
        }
        edit => return edit,
    };
    match (verdict, sent) {
        (StatementVerdict::AsIs, None) => Edit::Keep,
        (StatementVerdict::AsIs, Some(with)) => Edit::Replace(with),
        (StatementVerdict::Prepend(first), None) => Edit::Prepend(first),
        (StatementVerdict::Prepend(mut first), Some(with)) => {
            first.extend_from_slice(&with);
            Edit::Replace(first)
        }
        (StatementVerdict::Instead(with), _) => Edit::Replace(with),
    }
}

/// A client frame past the watch.
fn watched_client_frame(
    conv: &mut Conversation,
    mut watch: Option<&mut StatementWatch>,
    v: FrameView<'_>,
) -> Edit {
    let verdict = match watch.as_deref_mut() {
        Some(w) => w.on_client(v, conv),
        None => ClientVerdict::Pass,
    };
    let edit = match verdict {
        ClientVerdict::Pass => {
            conv.client_sent(v.tag, false);
            Edit::Keep
        }
        ClientVerdict::StandIn(with) => {
            conv.client_sent(v.tag, true);
            Edit::Replace(with)
        }
        ClientVerdict::Answer => Edit::Drop,
    };
    if let Some(w) = watch {
        w.follow(conv);
    }
    edit
}

/// A server frame on its way, likewise.
fn server_frame(
    conv: &mut Conversation,
    watch: Option<&mut StatementWatch>,
    mut statements: Option<&mut Carried>,
    pid: Option<(i32, i32)>,
    v: FrameView<'_>,
) -> Edit {
    if v.tag == b'S' && !v.is_whole() {
        // A ParameterStatus too large to hold whole: only pg_tenant's
        // report can be that large (PostgreSQL's own reported settings are
        // short). Never passed on; over the cap.
        if let Some(c) = statements.as_deref_mut() {
            c.settings_overflow = true;
        }
        return Edit::Drop;
    }
    if crate::protocol::is_pg_tenant_parameter(v.bytes) {
        // pg_tenant's own reports are the router's, not the client's.
        if let (Some(c), Some((name, value))) = (
            statements.as_deref_mut(),
            crate::protocol::parameter_status(v.bytes),
        ) {
            if name == SESSION_SETTINGS {
                c.settings = Some(parse_settings_report(&value));
            }
        }
        return Edit::Drop;
    }
    let ev = conv.on_server(v);
    let mut refusal = None;
    if let (Some(st), Some(answer)) = (statements, statement_answer(v.tag, &ev)) {
        match st.client.on_server(v.bytes, answer, &mut st.backend) {
            // The answer to a Parse or Close the router added.
            StatementServer::Drop => return Edit::Drop,
            // The stand-in of a message the router refused.
            StatementServer::Replace(error) => refusal = Some(error),
            StatementServer::Pass => {}
        }
        let ignored = conv.take_ignored_syncs();
        if ignored > 0 {
            st.client.syncs_ignored(ignored, &mut st.backend);
        }
    }
    let edit = server_frame_watched(conv, watch, pid, v, ev);
    match refusal {
        Some(error) if edit == Edit::Keep => Edit::Replace(error),
        _ => edit,
    }
}

/// What a server frame meant to the statement tracking (None: nothing).
fn statement_answer(tag: u8, ev: &ServerEvent) -> Option<Answer> {
    Some(match (tag, ev) {
        (b'1', _) => Answer::ParseComplete,
        (b'3', _) => Answer::CloseComplete,
        (b'E', ServerEvent::Error(Some(p))) if matches!(p.unit, Unit::Query | Unit::Call) => {
            Answer::SimpleError
        }
        (b'E', _) => Answer::ExtendedError,
        (b'Z', ServerEvent::Ready(Some(p))) if p.unit != Unit::Sync => Answer::ReadyOther,
        (b'Z', _) => Answer::ReadySync,
        (b'G', _) => Answer::Other,
        _ => return None,
    })
}

/// A server frame past the statement tracking: the watch's say.
fn server_frame_watched(
    conv: &mut Conversation,
    watch: Option<&mut StatementWatch>,
    pid: Option<(i32, i32)>,
    v: FrameView<'_>,
    ev: crate::conversation::ServerEvent,
) -> Edit {
    match watch {
        Some(w) => {
            let edit = w.on_server(v, ev, conv);
            w.follow(conv);
            match edit {
                // pg_tenant delivers a tenant's notifications on
                // `<tenant>:<channel>`: give the application its own name.
                Edit::Keep if v.tag == b'A' && v.is_whole() => {
                    let prefix = format!("{}:", w.tenant());
                    match crate::protocol::unprefix_notification(v.bytes, prefix.as_bytes(), pid) {
                        Some(frame) => Edit::Replace(frame),
                        None => Edit::Keep,
                    }
                }
                edit => edit,
            }
        }
        None => Edit::Keep,
    }
}

/// Answer in place of Postgres, at a frame boundary, what the watch owes
/// the client.
fn deliver_local_reply(down: &mut Framer, watch: Option<&mut StatementWatch>) {
    if let Some(w) = watch.filter(|w| !w.local_reply.is_empty()) {
        if down.insert(&w.local_reply) {
            w.local_reply.clear();
        }
    }
}

/// One direction: its framer, whether its source ended, bytes relayed.
pub struct Pipe {
    pub framer: Framer,
    eof: bool,
    pub bytes: u64,
}

impl Pipe {
    fn new(buf: BytesMut) -> Pipe {
        Pipe {
            framer: Framer::new(buf),
            eof: false,
            bytes: 0,
        }
    }

    /// Frames decided and not yet written on.
    pub fn pending(&self) -> &[u8] {
        self.framer.pending()
    }

    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
    ) -> Poll<std::io::Result<usize>> {
        // Grow from what the buffer has (a pooled client's few hundred
        // bytes) by doubling, up to BUF: small conversations never hold
        // large buffers, large transfers read BUF at a time.
        let buf = self.framer.buf_mut();
        let cap = buf.capacity();
        if cap - buf.len() < (cap / 4).clamp(256, BUF / 4) {
            buf.reserve(cap.clamp(8 * 1024, BUF));
        }
        poll_read_buf(Pin::new(from), cx, buf)
    }

    fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut Stream,
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(to).poll_write(cx, self.framer.pending());
        if let Poll::Ready(Ok(n)) = r {
            self.framer.consume(n);
            self.bytes += n as u64;
        }
        r
    }

    /// Move forward as far as it goes without blocking; Ok(true) on
    /// progress. `read` false: do not read (the source must wait).
    fn step(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
        to: &mut Stream,
        read: bool,
        observe: &mut dyn FnMut(FrameView<'_>) -> Edit,
    ) -> Result<bool, RelayError> {
        let mut progress = false;
        // Past the high-water mark only for a frame held whole.
        let room = HIGH_WATER.max(self.framer.wanted());
        if read && !self.eof && self.framer.buffered() < room {
            if let Poll::Ready(r) = self.poll_fill(cx, from) {
                if r? == 0 {
                    self.eof = true;
                } else {
                    self.framer.scan(observe)?;
                }
                progress = true;
            }
        }
        if !self.pending().is_empty() {
            if let Poll::Ready(r) = self.poll_drain(cx, to) {
                r?;
                progress = true;
            }
        }
        Ok(progress)
    }
}

/// Transaction pooling: what follows a client from backend to backend,
/// as the relay sees it: its named statements and those of the backend
/// serving it now, and the settings it SET on that backend (pg_tenant's
/// report, `pg_tenant.session_settings`).
#[derive(Debug, Default)]
pub struct Carried {
    pub client: Prepared,
    pub backend: BackendStatements,
    /// The last report: setting → value (None: RESET); None: no report
    /// during this relay.
    pub settings: Option<Vec<(String, Option<String>)>>,
    /// A report too large to hold (streamed through the codec): over the
    /// cap by itself.
    pub settings_overflow: bool,
}

impl Carried {
    /// A client's carried state, its statements within `budget`.
    pub fn new(budget: crate::pool::prepared::Budget) -> Carried {
        Carried {
            client: Prepared::new(budget),
            ..Carried::default()
        }
    }
}

/// The ParameterStatus by which pg_tenant reports a transaction-pooled
/// session's own SETs (never passed on to the client).
pub const SESSION_SETTINGS: &str = "pg_tenant.session_settings";

/// pg_tenant's report: a JSON object of setting → text or null; '' (reset)
/// is an empty one. A malformed report counts as empty.
pub fn parse_settings_report(value: &str) -> Vec<(String, Option<String>)> {
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(value)
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_owned)))
                .collect()
        })
        .unwrap_or_default()
}

/// Both directions of one session and where the conversation stands.
pub struct Relay {
    /// Client frames on their way to Postgres.
    pub up: Pipe,
    /// Postgres frames on their way to the client.
    pub down: Pipe,
    pub conv: Conversation,
    pub ownership: Ownership,
    /// Transaction pooling only.
    pub statements: Option<Carried>,
    /// Pooled clients: (the backend's pid, the pid the client was given),
    /// for its own notifications.
    pub pid: Option<(i32, i32)>,
}

impl Relay {
    /// Prepare both pipes from what the handshake left in the buffers. A
    /// pipelining client may already have sent queries: they go through
    /// `watch` like any later frame, so nothing escapes the limits.
    pub fn new(
        client_buf: BytesMut,
        server_buf: BytesMut,
        watch: Option<&mut StatementWatch>,
        ownership: Ownership,
    ) -> Result<Relay, FrameError> {
        Relay::resume(
            Conversation::default(),
            None,
            None,
            client_buf,
            server_buf,
            watch,
            ownership,
        )
    }

    /// A relay that carries on a conversation (and, with transaction
    /// pooling, its statements) on another backend. `pid`: see `Relay::pid`.
    pub fn resume(
        conv: Conversation,
        mut statements: Option<Carried>,
        pid: Option<(i32, i32)>,
        client_buf: BytesMut,
        server_buf: BytesMut,
        mut watch: Option<&mut StatementWatch>,
        ownership: Ownership,
    ) -> Result<Relay, FrameError> {
        if let Some(st) = statements.as_mut() {
            st.client.adopt(&st.backend);
        }
        let mut r = Relay {
            up: Pipe::new(client_buf),
            down: Pipe::new(server_buf),
            conv,
            ownership,
            statements,
            pid,
        };
        let Relay {
            up,
            down,
            conv,
            statements,
            ..
        } = &mut r;
        if let Some(st) = statements.as_ref() {
            up.framer.hold_whole(b'P', st.client.largest());
        }
        up.framer.scan(&mut |v| {
            client_frame(
                conv,
                watch.as_deref_mut(),
                ownership,
                statements.as_mut(),
                v,
            )
        })?;
        down.framer
            .scan(&mut |v| server_frame(conv, watch.as_deref_mut(), statements.as_mut(), pid, v))?;
        deliver_local_reply(&mut down.framer, watch);
        Ok(r)
    }

    /// Clean to close: the conversation at rest, nothing read from the
    /// client and nothing owed to it.
    pub fn idle(&self, watch: Option<&StatementWatch>) -> bool {
        self.conv.at_rest()
            && self.up.framer.is_empty()
            && self.down.pending().is_empty()
            && watch.is_none_or(|w| w.local_reply.is_empty())
    }

    /// Where the relay may stop in `mode`, if it may stop now.
    fn stop_point(&self, watch: Option<&StatementWatch>, mode: Mode) -> Option<End> {
        match mode {
            Mode::Serve => None,
            Mode::StopWhenIdle => self.idle(watch).then_some(End::Idle),
            Mode::DetachAtRest => (self.idle(watch)
                && !self.conv.terminated()
                && self.down.framer.is_empty()
                && self.statements.as_ref().is_none_or(|s| s.client.settled()))
            .then_some(End::Rest),
        }
    }

    /// Relay until one side ends (or, in `Mode::StopWhenIdle`, until the
    /// session is idle). `watch` (tenant sessions) sees every frame and may
    /// cancel or rewrite.
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut Stream,
        server: &mut Stream,
        mut watch: Option<&mut StatementWatch>,
        mode: Mode,
    ) -> Poll<Result<End, RelayError>> {
        let r = self.poll_pipes(cx, client, server, watch.as_deref_mut(), mode);
        if let Some(w) = watch {
            w.account(self.up.bytes, self.down.bytes);
        }
        r
    }

    fn poll_pipes(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut Stream,
        server: &mut Stream,
        mut watch: Option<&mut StatementWatch>,
        mode: Mode,
    ) -> Poll<Result<End, RelayError>> {
        for _ in 0..BUDGET {
            if let Some(w) = watch.as_deref_mut() {
                w.poll_deadline(cx, &self.conv);
            }
            if let Some(end) = self.stop_point(watch.as_deref(), mode) {
                return Poll::Ready(Ok(end));
            }
            let Relay {
                up,
                down,
                conv,
                ownership,
                statements,
                pid,
            } = self;
            let (ownership, pid) = (*ownership, *pid);
            // Hold the client's frames while the watch's cancel is on its
            // way, and after Terminate.
            let open =
                !conv.terminated() && watch.as_deref_mut().is_none_or(|w| w.poll_client_open(cx));
            let a = up.step(cx, client, server, open, &mut |v| {
                client_frame(
                    conv,
                    watch.as_deref_mut(),
                    ownership,
                    statements.as_mut(),
                    v,
                )
            })?;
            deliver_local_reply(&mut down.framer, watch.as_deref_mut());
            let b = down.step(cx, server, client, true, &mut |v| {
                server_frame(conv, watch.as_deref_mut(), statements.as_mut(), pid, v)
            })?;
            if (up.eof || conv.terminated()) && up.pending().is_empty() {
                return Poll::Ready(Ok(End::Client));
            }
            if down.eof && down.pending().is_empty() {
                return Poll::Ready(Ok(End::Server));
            }
            if mode == Mode::DetachAtRest && conv.lost() && down.pending().is_empty() {
                return Poll::Ready(Ok(End::Lost));
            }
            if statements.as_ref().is_some_and(|s| s.client.overflowing()) {
                return Poll::Ready(Ok(End::Overflow));
            }
            if !a && !b {
                if let Some(end) = self.stop_point(watch.as_deref(), mode) {
                    return Poll::Ready(Ok(end));
                }
                // A unit sent just now arms the timer: register its waker.
                if let Some(w) = watch.as_deref_mut() {
                    w.poll_deadline(cx, &self.conv);
                }
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_reports_parse_values_and_resets() {
        assert_eq!(
            parse_settings_report(r#"{"extra_float_digits":"3","search_path":null}"#),
            vec![
                ("extra_float_digits".to_owned(), Some("3".to_owned())),
                ("search_path".to_owned(), None)
            ]
        );
        assert!(parse_settings_report("").is_empty());
        assert!(parse_settings_report("not json").is_empty());
    }

    fn relay(client: &[u8], server: &[u8]) -> Relay {
        Relay::new(
            BytesMut::from(client),
            BytesMut::from(server),
            None,
            Ownership::Own,
        )
        .unwrap()
    }

    #[test]
    fn idle_means_at_rest_and_nothing_buffered() {
        let r = relay(b"", b"");
        assert!(r.idle(None), "fresh session");
        // A partial frame from the client is not idle.
        let r = relay(b"Q\0\0", b"");
        assert!(!r.idle(None));
        // A query the handshake already buffered counts as in flight.
        let r = relay(b"Q\0\0\0\x0dSELECT 1\0", b"");
        assert!(!r.idle(None));
        assert!(!r.conv.at_rest());
    }

    #[tokio::test]
    async fn frames_buffered_during_the_handshake_are_watched() {
        use crate::catalog::TenantInfo;
        use crate::limits::Limits;
        let c = Limits::default().counters("acme");
        c.publish(std::sync::Arc::new(TenantInfo {
            id: "acme".into(),
            enabled: true,
            isolation: "rls".into(),
            database_name: None,
            schema_name: None,
            max_connections: 0,
            qps_limit: 1,
            burst_multiplier: 1.0,
            max_query_ms: 0,
            max_result_bytes: 0,
            auth_secret: None,
            pool: Default::default(),
            client_idle_timeout_ms: 0,
            read_seq: 0,
        }));
        assert!(c.take_token(1, 1.0)); // empty the bucket
        let mut w = StatementWatch::new(
            "acme",
            c.clone(),
            crate::cancel::CancelRegistry::new(),
            (1, 2),
        );
        // A client that sent its first query before ReadyForQuery.
        let early = b"Q\0\0\0\x0dSELECT 1\0";
        let relay = Relay::new(
            BytesMut::from(&early[..]),
            BytesMut::new(),
            Some(&mut w),
            Ownership::Own,
        )
        .unwrap();
        assert_eq!(c.metrics.statements(), 1);
        assert!(relay.up.pending().is_empty(), "refused, not sent");
        assert_eq!(
            relay.down.pending()[0],
            b'E',
            "53400 answered by the router"
        );
        assert!(relay.conv.at_rest());
    }
}
