//! One direction of the relay: a `Framer` over what one side sent, whether
//! that side has ended, and the bytes relayed. Backpressure: a side is not
//! read while `HIGH_WATER` bytes wait for the other, and no new frame is
//! decided (edited, added to) while `HIGH_WATER` bytes are owed.

use crate::codec::{Edit, FrameView, Framer};
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

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// One direction: its framer, whether its source ended, bytes relayed.
pub struct Pipe {
    pub framer: Framer,
    pub eof: bool,
    pub bytes: u64,
    /// Reading its source failed (e.g. a reset): the error is the source's,
    /// not the destination's.
    pub source_failed: bool,
}

impl Pipe {
    pub fn new(buf: BytesMut) -> Pipe {
        let mut framer = Framer::new(buf);
        framer.owe_at_most(HIGH_WATER);
        Pipe {
            framer,
            eof: false,
            bytes: 0,
            source_failed: false,
        }
    }

    /// Frames decided and not yet written on.
    pub fn pending(&self) -> &[u8] {
        self.framer.pending()
    }

    /// Its high-water mark is owed to the destination: the router adds
    /// nothing more of its own to it (the other side is not read).
    pub fn owes_high_water(&self) -> bool {
        self.framer.pending().len() >= HIGH_WATER
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
    pub fn step(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
        to: &mut Stream,
        read: bool,
        observe: &mut dyn FnMut(FrameView<'_>) -> Edit,
    ) -> Result<bool, RelayError> {
        let mut progress = false;
        // Past the high-water mark only for a frame held whole.
        if read && !self.eof && self.framer.may_read(HIGH_WATER) {
            if let Poll::Ready(r) = self.poll_fill(cx, from) {
                self.source_failed = r.is_err();
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
        // Frames left undecided at the high-water mark, now that it drained
        // (as new ones would be: only while the source may be read).
        if read && self.framer.rescan() {
            self.framer.scan(observe)?;
            progress = true;
        }
        Ok(progress)
    }
}
