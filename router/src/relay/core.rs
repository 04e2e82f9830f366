//! The relay: both directions of a session, driven by one poll function.
//! Each direction is a `Pipe` (whole frames up to `STREAM_OVER` bytes,
//! larger ones streamed through as they arrive); every frame passes the
//! observers (`observe`). No copies and no allocations in the steady
//! state: frames are written on straight from the read buffer.
//!
//! The session sees the relay through methods only; when it stops at a
//! point of rest it becomes a `Rest`: what the next relay on another
//! backend carries on with.

use super::carried::Carried;
use super::observe::{deliver_local_reply, Observers, Ownership};
use super::pipe::{Pipe, RelayError};
use crate::conversation::Conversation;
use crate::limits::watch::StatementWatch;
use crate::protocol::FrameError;
use crate::transport::Stream;
use bytes::BytesMut;
use std::task::{Context, Poll};

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
    /// The tenant is paused (`Mode::PauseAtRest`) and the session is at a
    /// point of rest: it parks, its backend kept.
    Paused,
    /// PostgreSQL did not answer a unit canceled over max_query_ms within
    /// `limits::watch::CANCEL_ANSWER_WAIT`: the server (or the network to
    /// it) stalled; the session ends and its backend is closed.
    Unresponsive,
}

/// Whether the relay runs on or stops at the next idle point (SIGTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    StopWhenIdle,
    /// Transaction pooling: stop at every point of rest (`End::Rest`).
    DetachAtRest,
    /// Session mode, the tenant paused: stop at the next point of rest
    /// (`End::Paused`).
    PauseAtRest,
}

/// What a relay leaves when it stops: the conversation (and, with
/// transaction pooling, what is carried) for the next relay, and the
/// server's read buffer, which the backend keeps.
pub struct Rest {
    pub conv: Conversation,
    pub carried: Option<Carried>,
    pub server_buf: Option<BytesMut>,
}

/// Both directions of one session and where the conversation stands.
pub struct Relay {
    /// Client frames on their way to Postgres.
    up: Pipe,
    /// Postgres frames on their way to the client.
    down: Pipe,
    conv: Conversation,
    ownership: Ownership,
    /// Transaction pooling only.
    carried: Option<Carried>,
    /// Pooled clients: (the backend's pid, the pid the client was given),
    /// for its own notifications.
    pid: Option<(i32, i32)>,
    /// The last frame PostgreSQL sent was an ErrorResponse (the FATAL a
    /// server closes a session with, when it says why).
    server_said_error: bool,
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
        let rest = Rest {
            conv: Conversation::default(),
            carried: None,
            server_buf: None,
        };
        Relay::resume(rest, None, client_buf, server_buf, watch, ownership)
    }

    /// A relay that carries on a conversation (and, with transaction
    /// pooling, its statements) on another backend. `pid`: see `Relay::pid`.
    pub fn resume(
        rest: Rest,
        pid: Option<(i32, i32)>,
        client_buf: BytesMut,
        server_buf: BytesMut,
        mut watch: Option<&mut StatementWatch>,
        ownership: Ownership,
    ) -> Result<Relay, FrameError> {
        let Rest {
            conv, mut carried, ..
        } = rest;
        if let Some(st) = carried.as_mut() {
            st.client.adopt(&st.backend);
        }
        let mut r = Relay {
            up: Pipe::new(client_buf),
            down: Pipe::new(server_buf),
            conv,
            ownership,
            carried,
            pid,
            server_said_error: false,
        };
        let Relay {
            up,
            down,
            conv,
            carried,
            server_said_error,
            ..
        } = &mut r;
        if let Some(st) = carried.as_ref() {
            up.framer.hold_whole(b'P', st.client.largest());
        }
        up.framer.scan(&mut |v| {
            Observers::new(ownership, watch.as_deref_mut(), carried.as_mut(), pid).client(conv, v)
        })?;
        down.framer.scan(&mut |v| {
            *server_said_error = v.tag == b'E';
            Observers::new(ownership, watch.as_deref_mut(), carried.as_mut(), pid).server(conv, v)
        })?;
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

    /// A client that stopped in the middle of a message: at rest but for
    /// part of a message held until it is whole (nothing of it sent on,
    /// nothing owed to the client), or in the middle of a message larger
    /// than the relay holds, streamed on as far as the client sent it
    /// (PostgreSQL, too, waits for the rest: it reads a message whole).
    /// Not while the client is owed the high-water mark: then the relay
    /// stopped reading it, the client did not stop sending.
    pub fn idle_mid_message(&self, watch: Option<&StatementWatch>) -> bool {
        let held = self.conv.at_rest()
            && !self.up.framer.is_empty()
            && self.up.framer.owes_whole_frames()
            && self.down.pending().is_empty()
            && watch.is_none_or(|w| w.local_reply.is_empty());
        let streamed = !self.up.framer.owes_whole_frames() && !self.down.owes_high_water();
        (held || streamed) && self.up.pending().is_empty()
    }

    /// Transaction pooling: nothing in flight and no transaction, nothing
    /// buffered either way, but an extended batch left without Sync keeps
    /// the backend.
    pub fn unsynced_idle(&self) -> bool {
        self.conv.unsynced_idle() && self.up.framer.is_empty() && self.down.pending().is_empty()
    }

    /// Bytes from the client so far, read or relayed (its activity, for
    /// the idle timers).
    pub fn client_activity(&self) -> u64 {
        self.up.bytes + self.up.framer.buffered() as u64
    }

    /// (bytes from the client, bytes to the client) relayed.
    pub fn traffic(&self) -> (u64, u64) {
        (self.up.bytes, self.down.bytes)
    }

    /// Nothing of the server's half read: no partial frame of PostgreSQL's
    /// in the buffer (a backend can be given back).
    pub fn server_drained(&self) -> bool {
        self.down.framer.is_empty()
    }

    /// PostgreSQL closed (or reset) the connection without an
    /// ErrorResponse last (a server or network gone, not a FATAL of its
    /// own): the client must be told by the router.
    pub fn server_left_silently(&self) -> bool {
        (self.down.eof || self.down.source_failed) && !self.server_said_error
    }

    /// What is still owed to the client, and whether it ends at a frame
    /// boundary (a FATAL may follow it).
    pub fn owed(&self) -> (&[u8], bool) {
        (self.down.pending(), self.down.framer.owes_whole_frames())
    }

    /// What the relay leaves: the conversation, what is carried, and the
    /// server's read buffer.
    pub fn into_rest(mut self) -> Rest {
        Rest {
            server_buf: self.down.framer.take_buf(),
            conv: self.conv,
            carried: self.carried,
        }
    }

    /// Where the relay may stop in `mode`, if it may stop now.
    fn stop_point(&self, watch: Option<&StatementWatch>, mode: Mode) -> Option<End> {
        match mode {
            Mode::Serve => None,
            Mode::StopWhenIdle => self.idle(watch).then_some(End::Idle),
            Mode::DetachAtRest => (self.idle(watch)
                && !self.conv.terminated()
                && self.down.framer.is_empty()
                && self.carried.as_ref().is_none_or(|s| s.client.settled()))
            .then_some(End::Rest),
            Mode::PauseAtRest => {
                (self.idle(watch) && !self.conv.terminated() && self.down.framer.is_empty())
                    .then_some(End::Paused)
            }
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
                w.answer_moving(self.down.bytes);
                w.poll_deadline(cx, &self.conv);
                if w.server_unresponsive() {
                    return Poll::Ready(Ok(End::Unresponsive));
                }
            }
            if let Some(end) = self.stop_point(watch.as_deref(), mode) {
                return Poll::Ready(Ok(end));
            }
            let Relay {
                up,
                down,
                conv,
                ownership,
                carried,
                pid,
                server_said_error,
            } = self;
            let (ownership, pid) = (*ownership, *pid);
            // Hold the client's frames while the watch's cancel is on its
            // way, after Terminate, and while the client is owed the
            // high-water mark: what the router answers itself (a denied
            // Query) must not grow without end for a client that reads
            // nothing. (Its owed bytes' write wakes the relay.)
            let open = !conv.terminated()
                && !down.owes_high_water()
                && watch.as_deref_mut().is_none_or(|w| w.poll_client_open(cx));
            let a = up.step(cx, client, server, open, &mut |v| {
                Observers::new(ownership, watch.as_deref_mut(), carried.as_mut(), pid)
                    .client(conv, v)
            })?;
            deliver_local_reply(&mut down.framer, watch.as_deref_mut());
            let b = down.step(cx, server, client, true, &mut |v| {
                *server_said_error = v.tag == b'E';
                Observers::new(ownership, watch.as_deref_mut(), carried.as_mut(), pid)
                    .server(conv, v)
            })?;
            // A client that hung up is done once what it sent whole went
            // on: frames still undecided at the mark (the client not read
            // meanwhile, e.g. owed the mark) are decided first.
            let sent = up.pending().is_empty() && !up.framer.stalled();
            if (up.eof && sent) || (conv.terminated() && up.pending().is_empty()) {
                return Poll::Ready(Ok(End::Client));
            }
            if down.eof && down.pending().is_empty() {
                return Poll::Ready(Ok(End::Server));
            }
            if mode == Mode::DetachAtRest && conv.lost() && down.pending().is_empty() {
                return Poll::Ready(Ok(End::Lost));
            }
            if carried.as_ref().is_some_and(|s| s.client.overflowing()) {
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
#[path = "tests.rs"]
mod tests;
