//! Transparent phase: a framed relay in both directions, driven by one
//! poll function. Each direction has one buffer; only whole frames are
//! written on (so limits can act on message boundaries), straight from the
//! read buffer, and the buffer is reused once drained: no copies and no
//! allocations in the steady state. Backpressure: a side is not read while
//! `HIGH_WATER` bytes wait for the other.

use crate::limits::StatementWatch;
use crate::protocol::{self, FrameError};
use bytes::{Buf, BytesMut};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio_util::io::poll_read_buf;

const BUF: usize = 16 * 1024;
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
    /// cleanly: no batch in flight, not in a transaction, all delivered.
    Idle,
}

/// Whether the relay runs on or stops at the next idle point (SIGTERM).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    StopWhenIdle,
}

/// Where the conversation stands, from the frames that went through, for
/// sessions without a `StatementWatch` (which tracks this itself).
#[derive(Debug)]
struct Flow {
    /// Batches (Query, or up to Sync) forwarded and not yet answered.
    in_flight: u32,
    /// Extended-protocol messages forwarded since the last Sync.
    open_batch: bool,
    /// Transaction status of the last ReadyForQuery.
    status: u8,
}

impl Flow {
    fn client(&mut self, tag: u8) {
        match tag {
            b'X' => {}
            b'Q' | b'S' => {
                self.in_flight += 1;
                self.open_batch = false;
            }
            _ => self.open_batch = true,
        }
    }

    fn at_rest(&self) -> bool {
        self.in_flight == 0 && !self.open_batch && self.status == b'I'
    }

    fn server(&mut self, tag: u8, frame: &[u8]) {
        if tag == b'Z' {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.status = frame.get(5).copied().unwrap_or(b'I');
        }
    }
}

/// What to do with a frame on its way through.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    Keep,
    Drop,
    Replace(BytesMut),
}

/// A client frame on its way: the watch decides (and tracks the
/// conversation), or it passes and the flow tracks it.
fn on_client(flow: &mut Flow, watch: Option<&mut StatementWatch>, tag: u8, f: &[u8]) -> Edit {
    match watch {
        Some(w) => w.on_client_frame(tag, f),
        None => {
            flow.client(tag);
            Edit::Keep
        }
    }
}

/// A server frame on its way, likewise.
fn on_server(flow: &mut Flow, watch: Option<&mut StatementWatch>, tag: u8, f: &[u8]) -> Edit {
    match watch {
        Some(w) => w.on_server_frame(tag, f),
        None => {
            flow.server(tag, f);
            Edit::Keep
        }
    }
}

/// Answer in place of Postgres, at a frame boundary, what the watch owes
/// the client.
fn deliver_local_reply(down: &mut Pipe, watch: Option<&mut StatementWatch>) {
    if let Some(w) = watch.filter(|w| !w.local_reply.is_empty()) {
        let reply = std::mem::take(&mut w.local_reply);
        splice(&mut down.buf, down.ready, down.ready, &reply);
        down.ready += reply.len();
    }
}

/// Replace `buf[start..end]` with `with` (rare: limits only).
fn splice(buf: &mut BytesMut, start: usize, end: usize, with: &[u8]) {
    let tail = buf.split_off(end);
    buf.truncate(start);
    buf.extend_from_slice(with);
    buf.extend_from_slice(&tail);
}

/// One direction: bytes read, the first `ready` of which are whole frames.
pub struct Pipe {
    buf: BytesMut,
    ready: usize,
    eof: bool,
    terminate: bool,
    pub bytes: u64,
}

impl Pipe {
    pub fn new(buf: BytesMut) -> Pipe {
        Pipe {
            buf,
            ready: 0,
            eof: false,
            terminate: false,
            bytes: 0,
        }
    }

    #[cfg(test)]
    /// Extend `ready` over the complete frames now in the buffer.
    fn scan(&mut self) -> Result<(), FrameError> {
        self.scan_with(&mut |_, _| Edit::Keep)
    }

    /// Whole frames read and not yet written on.
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.ready]
    }

    /// Like `scan`, letting `edit` keep, drop or replace each new frame.
    fn scan_with(&mut self, edit: &mut dyn FnMut(u8, &[u8]) -> Edit) -> Result<(), FrameError> {
        while let Some(h) = protocol::complete_frame(&self.buf[self.ready..])? {
            if h.tag == b'X' {
                self.terminate = true;
            }
            let (start, end) = (self.ready, self.ready + h.frame_len);
            match edit(h.tag, &self.buf[start..end]) {
                Edit::Keep => self.ready = end,
                Edit::Drop => splice(&mut self.buf, start, end, &[]),
                Edit::Replace(with) => {
                    splice(&mut self.buf, start, end, &with);
                    self.ready = start + with.len();
                }
            }
        }
        Ok(())
    }

    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut TcpStream,
    ) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < BUF / 4 {
            self.buf.reserve(BUF);
        }
        poll_read_buf(Pin::new(from), cx, &mut self.buf)
    }

    fn poll_drain(
        &mut self,
        cx: &mut Context<'_>,
        to: &mut TcpStream,
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(to).poll_write(cx, &self.buf[..self.ready]);
        if let Poll::Ready(Ok(n)) = r {
            self.buf.advance(n);
            self.ready -= n;
            self.bytes += n as u64;
        }
        r
    }
}

/// Move one direction forward as far as it goes without blocking.
/// Returns Ok(true) on progress.
fn step(
    cx: &mut Context<'_>,
    pipe: &mut Pipe,
    from: &mut TcpStream,
    to: &mut TcpStream,
    edit: &mut dyn FnMut(u8, &[u8]) -> Edit,
) -> Result<bool, crate::session::SessionError> {
    let mut progress = false;
    if !pipe.eof && !pipe.terminate && pipe.buf.len() < HIGH_WATER {
        if let Poll::Ready(r) = pipe.poll_fill(cx, from) {
            if r? == 0 {
                pipe.eof = true;
            } else {
                pipe.scan_with(edit)?;
            }
            progress = true;
        }
    }
    if pipe.ready > 0 {
        if let Poll::Ready(r) = pipe.poll_drain(cx, to) {
            r?;
            progress = true;
        }
    }
    Ok(progress)
}

/// Both directions of one session and where the conversation stands.
pub struct Relay {
    /// Client frames on their way to Postgres.
    pub up: Pipe,
    /// Postgres frames on their way to the client.
    pub down: Pipe,
    flow: Flow,
}

impl Relay {
    /// Prepare both pipes from what the handshake left in the buffers. A
    /// pipelining client may already have sent queries: they go through
    /// `watch` like any later frame, so no batch escapes the limits.
    pub fn new(
        client_buf: BytesMut,
        server_buf: BytesMut,
        mut watch: Option<&mut StatementWatch>,
    ) -> Result<Relay, FrameError> {
        let mut up = Pipe::new(client_buf);
        let mut down = Pipe::new(server_buf);
        let mut flow = Flow {
            in_flight: 0,
            open_batch: false,
            status: b'I',
        };
        up.scan_with(&mut |t, f| on_client(&mut flow, watch.as_deref_mut(), t, f))?;
        down.scan_with(&mut |t, f| on_server(&mut flow, watch.as_deref_mut(), t, f))?;
        deliver_local_reply(&mut down, watch);
        Ok(Relay { up, down, flow })
    }

    /// Clean to close: nothing in flight, not in a transaction, nothing
    /// read from the client and nothing owed to it.
    fn idle(&self, watch: Option<&StatementWatch>) -> bool {
        watch.map_or_else(|| self.flow.at_rest(), StatementWatch::at_rest)
            && self.up.buf.is_empty()
            && self.down.ready == 0
    }

    /// Relay until one side ends (or, in `Mode::StopWhenIdle`, until the
    /// session is idle). `watch` (tenant sessions) sees every frame and may
    /// cancel or rewrite.
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut TcpStream,
        server: &mut TcpStream,
        mut watch: Option<&mut StatementWatch>,
        mode: Mode,
    ) -> Poll<Result<End, crate::session::SessionError>> {
        let r = self.poll_pipes(cx, client, server, watch.as_deref_mut(), mode);
        if let Some(w) = watch {
            w.account(self.up.bytes, self.down.bytes);
        }
        r
    }

    fn poll_pipes(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut TcpStream,
        server: &mut TcpStream,
        mut watch: Option<&mut StatementWatch>,
        mode: Mode,
    ) -> Poll<Result<End, crate::session::SessionError>> {
        if let Some(w) = watch.as_deref_mut() {
            w.poll_deadline(cx);
        }
        for _ in 0..BUDGET {
            if mode == Mode::StopWhenIdle && self.idle(watch.as_deref()) {
                return Poll::Ready(Ok(End::Idle));
            }
            let Relay { up, down, flow } = self;
            // Hold the client's frames while the watch's cancel is on its way.
            let open = watch.as_deref_mut().is_none_or(|w| w.poll_client_open(cx));
            let a = open
                && step(cx, up, client, server, &mut |t, f| {
                    on_client(flow, watch.as_deref_mut(), t, f)
                })?;
            deliver_local_reply(down, watch.as_deref_mut());
            let b = step(cx, down, server, client, &mut |t, f| {
                on_server(flow, watch.as_deref_mut(), t, f)
            })?;
            if (up.eof || up.terminate) && up.ready == 0 {
                return Poll::Ready(Ok(End::Client));
            }
            if down.eof && down.ready == 0 {
                return Poll::Ready(Ok(End::Server));
            }
            if !a && !b {
                if mode == Mode::StopWhenIdle && self.idle(watch.as_deref()) {
                    return Poll::Ready(Ok(End::Idle));
                }
                // A batch sent just now arms the timer: register its waker.
                if let Some(w) = watch.as_deref_mut() {
                    w.poll_deadline(cx);
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

    fn pipe(bytes: &[u8]) -> Pipe {
        let mut p = Pipe::new(BytesMut::from(bytes));
        p.scan().unwrap();
        p
    }

    #[test]
    fn only_whole_frames_are_ready() {
        // Query "SELECT 1" (14 bytes) then the first 3 bytes of another.
        let p = pipe(b"Q\0\0\0\x0dSELECT 1\0Q\0\0");
        assert_eq!(p.ready, 14);
        assert!(!p.terminate);
        let p = pipe(b"Q\0\0");
        assert_eq!(p.ready, 0);
    }

    #[test]
    fn scanning_resumes_where_it_stopped() {
        let mut p = pipe(b"S\0\0\0\x04P\0\0\0");
        assert_eq!(p.ready, 5);
        p.buf.extend_from_slice(b"\x04X\0\0\0\x04");
        p.scan().unwrap();
        assert_eq!(p.ready, 15);
        assert!(p.terminate, "Terminate seen");
    }

    fn relay(client: &[u8], server: &[u8]) -> Relay {
        Relay::new(BytesMut::from(client), BytesMut::from(server), None).unwrap()
    }

    fn feed(r: &mut Relay, client: &[u8], server: &[u8]) {
        if let Some(&tag) = client.first() {
            r.flow.client(tag);
        }
        if let Some(&tag) = server.first() {
            r.flow.server(tag, server);
        }
    }

    #[test]
    fn idle_means_no_batch_in_flight_and_no_transaction() {
        let mut r = relay(b"", b"");
        assert!(r.idle(None), "fresh session");
        feed(&mut r, b"Q\0\0\0\x0dBEGIN;;;\0", b"");
        assert!(!r.idle(None), "a query in flight");
        feed(&mut r, b"", b"Z\0\0\0\x05T");
        assert!(!r.idle(None), "inside a transaction");
        feed(&mut r, b"P\0\0\0\x04", b"");
        assert!(!r.idle(None), "extended messages before Sync");
        feed(&mut r, b"S\0\0\0\x04", b"");
        feed(&mut r, b"", b"Z\0\0\0\x05I");
        assert!(r.idle(None), "transaction over, all answered");
        // A partial frame from the client is not idle either.
        let r = relay(b"Q\0\0", b"");
        assert!(!r.idle(None));
        // A query the handshake already buffered counts as in flight.
        let r = relay(b"Q\0\0\0\x0dSELECT 1\0", b"");
        assert!(!r.idle(None));
    }

    #[test]
    fn bad_length_is_an_error() {
        let mut p = Pipe::new(BytesMut::from(&b"Q\0\0\0\x02"[..]));
        assert_eq!(p.scan(), Err(FrameError::BadLength(2)));
    }
}
