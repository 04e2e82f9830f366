//! The relay's observers: every frame of the conversation passes them in
//! a fixed order, each sees the conversation and returns the edit to make
//! (keep, replace, prepend, drop); a frame one of them drops goes no
//! further.
//!
//! Client frames, on their way to PostgreSQL:
//! 1. ownership: a pooled backend never gets the client's Terminate;
//! 2. a Sync sent during COPY FROM STDIN is dropped (`Conversation::
//!    sync_during_copy`);
//! 3. statement carry (transaction pooling): a simple Query or
//!    FunctionCall in an open extended batch is synced first;
//! 4. the limits watch decides (pass, stand-in, answer locally), and the
//!    conversation records what PostgreSQL actually gets;
//! 5. statement carry: the client's named statements follow it from
//!    backend to backend (`pool::prepared`).
//!
//! Server frames, on their way to the client:
//! 1. settings report: pg_tenant's own ParameterStatus reports are the
//!    router's (the settings a transaction-pooled client SET are carried);
//!    never the client's, never the conversation's;
//! 2. the conversation learns what the frame means;
//! 3. statement carry: answers to the router's own Parse and Close are
//!    dropped, refusals stand in for the message refused;
//! 4. the limits watch;
//! 5. notifications: pg_tenant's `<tenant>:<channel>` is given back its
//!    own name (and a pooled client the pid it knows).

use super::carried::{parse_settings_report, Carried, SESSION_SETTINGS};
use crate::codec::{Edit, FrameView, Framer};
use crate::conversation::{Conversation, ServerEvent, Unit};
use crate::limits::watch::{ClientVerdict, StatementWatch};
use crate::pool::prepared::{
    Answer, ClientVerdict as StatementVerdict, ServerVerdict as StatementServer,
};
use bytes::BytesMut;

/// Who owns the backend, which decides where the client's Terminate goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The session's own: Terminate is forwarded and ends it.
    Own,
    /// A pool's: Terminate ends the client's session but is not forwarded
    /// (the backend goes back to its pool).
    Pooled,
}

/// The observers of one relay, for one frame.
pub struct Observers<'a> {
    pub ownership: Ownership,
    /// The tenant's limits (tenant sessions).
    pub watch: Option<&'a mut StatementWatch>,
    /// Transaction pooling: what follows the client from backend to backend.
    pub carried: Option<&'a mut Carried>,
    /// Pooled clients: (the backend's pid, the pid the client was given).
    pub pid: Option<(i32, i32)>,
}

/// A Sync message.
const SYNC: [u8; 5] = [b'S', 0, 0, 0, 4];

impl<'a> Observers<'a> {
    pub fn new(
        ownership: Ownership,
        watch: Option<&'a mut StatementWatch>,
        carried: Option<&'a mut Carried>,
        pid: Option<(i32, i32)>,
    ) -> Observers<'a> {
        Observers {
            ownership,
            watch,
            carried,
            pid,
        }
    }

    /// A client frame on its way.
    pub fn client(&mut self, conv: &mut Conversation, v: FrameView<'_>) -> Edit {
        if v.tag == b'X' && self.ownership == Ownership::Pooled {
            conv.client_sent(v.tag, false);
            return Edit::Drop;
        }
        if v.tag == b'S' && conv.sync_during_copy() {
            // PostgreSQL ignores it when the COPY goes well: so does the
            // router, always.
            return Edit::Drop;
        }
        let synced = self
            .carried
            .as_deref_mut()
            .and_then(|st| batch_sync(conv, st, v));
        let edit = watch_client(conv, self.watch.as_deref_mut(), v);
        let edit = match self.carried.as_deref_mut() {
            Some(st) => carry_client(st, v, edit),
            None => edit,
        };
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

    /// A server frame on its way.
    pub fn server(&mut self, conv: &mut Conversation, v: FrameView<'_>) -> Edit {
        if let Some(edit) = settings_report(self.carried.as_deref_mut(), v) {
            return edit;
        }
        let ev = conv.on_server(v);
        let mut refusal = None;
        if let Some(st) = self.carried.as_deref_mut() {
            match carry_server(conv, st, v, &ev) {
                // The answer to a Parse or Close the router added.
                Some(StatementServer::Drop) => return Edit::Drop,
                // The stand-in of a message the router refused.
                Some(StatementServer::Replace(error)) => refusal = Some(error),
                Some(StatementServer::Pass) | None => {}
            }
        }
        let edit = match self.watch.as_deref_mut() {
            Some(w) => {
                let edit = w.on_server(v, ev, conv);
                w.follow(conv);
                unprefix_notification(w, self.pid, v, edit)
            }
            None => Edit::Keep,
        };
        match refusal {
            Some(error) if edit == Edit::Keep => Edit::Replace(error),
            _ => edit,
        }
    }
}

/// Statement carry, before the watch: a simple Query or FunctionCall
/// inside an extended batch not yet synced is preceded by a Sync of the
/// router's. (PostgreSQL would run it inside the batch, or skip it after
/// an error in the batch, answering nothing: which of the two cannot be
/// told from the answers, and a backend must never be given back before
/// its last answer.)
fn batch_sync(conv: &mut Conversation, st: &mut Carried, v: FrameView<'_>) -> Option<BytesMut> {
    if !(matches!(v.tag, b'Q' | b'F') && conv.batch_open() && !conv.terminated()) {
        return None;
    }
    let sync = BytesMut::from(&SYNC[..]);
    conv.client_sent(b'S', false);
    let sync_view = FrameView {
        tag: b'S',
        len: SYNC.len(),
        bytes: &SYNC,
    };
    Some(match st.client.on_client(sync_view, &mut st.backend) {
        StatementVerdict::Prepend(mut first) => {
            first.extend_from_slice(&sync);
            first
        }
        _ => sync,
    })
}

/// The limits watch's say on a client frame; the conversation records
/// what PostgreSQL gets.
fn watch_client(
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

/// Statement carry, after the watch: the frame PostgreSQL gets (the
/// watch's stand-in, if any) passes the client's statement tracking.
fn carry_client(st: &mut Carried, v: FrameView<'_>, edit: Edit) -> Edit {
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

/// pg_tenant's own reports (ParameterStatus `pg_tenant.*`) are the
/// router's: dropped, and with transaction pooling the settings the client
/// SET are noted. A ParameterStatus too large to hold whole can only be
/// pg_tenant's report (PostgreSQL's own reported settings are short): over
/// the cap. None: not a report.
fn settings_report(carried: Option<&mut Carried>, v: FrameView<'_>) -> Option<Edit> {
    if v.tag == b'S' && !v.is_whole() {
        if let Some(c) = carried {
            c.settings_overflow = true;
        }
        return Some(Edit::Drop);
    }
    if !crate::protocol::is_pg_tenant_parameter(v.bytes) {
        return None;
    }
    if let (Some(c), Some((name, value))) = (carried, crate::protocol::parameter_status(v.bytes)) {
        if name == SESSION_SETTINGS {
            c.settings = Some(parse_settings_report(&value));
        }
    }
    Some(Edit::Drop)
}

/// Statement carry on a server frame (None: the frame means nothing to
/// it).
fn carry_server(
    conv: &mut Conversation,
    st: &mut Carried,
    v: FrameView<'_>,
    ev: &ServerEvent,
) -> Option<StatementServer> {
    let answer = statement_answer(v.tag, ev)?;
    let verdict = st.client.on_server(v.bytes, answer, &mut st.backend);
    if matches!(verdict, StatementServer::Drop) {
        return Some(verdict);
    }
    let ignored = conv.take_ignored_syncs();
    if ignored > 0 {
        st.client.syncs_ignored(ignored, &mut st.backend);
    }
    Some(verdict)
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

/// pg_tenant delivers a tenant's notifications on `<tenant>:<channel>`:
/// the application gets its own name back.
fn unprefix_notification(
    w: &StatementWatch,
    pid: Option<(i32, i32)>,
    v: FrameView<'_>,
    edit: Edit,
) -> Edit {
    match edit {
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

/// Answer in place of Postgres, at a frame boundary, what the watch owes
/// the client.
pub fn deliver_local_reply(down: &mut Framer, watch: Option<&mut StatementWatch>) {
    if let Some(w) = watch.filter(|w| !w.local_reply.is_empty()) {
        if down.insert(&w.local_reply) {
            w.local_reply.clear();
        }
    }
}

#[cfg(test)]
#[path = "observe_tests.rs"]
mod tests;
