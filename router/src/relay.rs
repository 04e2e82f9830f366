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
}

/// What to do with a frame on its way through.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    Keep,
    Drop,
    Replace(BytesMut),
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

    /// Extend `ready` over the complete frames now in the buffer.
    fn scan(&mut self) -> Result<(), FrameError> {
        self.scan_with(&mut |_, _| Edit::Keep)
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

/// Relay until one side ends. `up` carries client frames to the server,
/// `down` server frames to the client; `watch`, when the tenant has
/// statement limits, sees every frame and may cancel or rewrite.
pub fn poll_relay(
    cx: &mut Context<'_>,
    client: &mut TcpStream,
    server: &mut TcpStream,
    up: &mut Pipe,
    down: &mut Pipe,
    mut watch: Option<&mut StatementWatch>,
) -> Poll<Result<End, crate::session::SessionError>> {
    if let Some(w) = watch.as_deref_mut() {
        w.poll_deadline(cx);
    }
    for _ in 0..BUDGET {
        let a = match watch.as_deref_mut() {
            Some(w) => {
                let a = step(cx, up, client, server, &mut |tag, f| {
                    w.on_client_frame(tag, f)
                })?;
                if !w.local_reply.is_empty() {
                    // Answer in place of Postgres, at a frame boundary.
                    let reply = std::mem::take(&mut w.local_reply);
                    splice(&mut down.buf, down.ready, down.ready, &reply);
                    down.ready += reply.len();
                }
                a
            }
            None => step(cx, up, client, server, &mut |_, _| Edit::Keep)?,
        };
        let b = match watch.as_deref_mut() {
            Some(w) => step(cx, down, server, client, &mut |tag, f| {
                w.on_server_frame(tag, f)
            })?,
            None => step(cx, down, server, client, &mut |_, _| Edit::Keep)?,
        };
        if (up.eof || up.terminate) && up.ready == 0 {
            return Poll::Ready(Ok(End::Client));
        }
        if down.eof && down.ready == 0 {
            return Poll::Ready(Ok(End::Server));
        }
        if !a && !b {
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

/// Prepare both pipes from what the handshake left in the buffers (a
/// pipelining client may already have sent queries).
pub fn pipes(client_buf: BytesMut, server_buf: BytesMut) -> Result<(Pipe, Pipe), FrameError> {
    let mut up = Pipe::new(client_buf);
    let mut down = Pipe::new(server_buf);
    up.scan()?;
    down.scan()?;
    Ok((up, down))
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

    #[test]
    fn bad_length_is_an_error() {
        let mut p = Pipe::new(BytesMut::from(&b"Q\0\0\0\x02"[..]));
        assert_eq!(p.scan(), Err(FrameError::BadLength(2)));
    }
}
