//! Framing of PostgreSQL v3 messages (tag byte, 4-byte length, body), in
//! one place:
//!
//! - `frame_header` finds the next frame's header (`Ok(None)` while
//!   incomplete), checking the length against a cap before anything is
//!   allocated for the body;
//! - `read_frame` reads one whole frame from a stream (handshake phases,
//!   with a cap chosen by the caller: small before authentication);
//! - `Framer` is one direction of the relay. Frames up to `STREAM_OVER`
//!   bytes are shown whole to an observer, which may keep, drop or replace
//!   them; larger frames are shown by their header only and then streamed
//!   through (or skipped) as their bytes arrive, so no message is ever held
//!   whole and no message size can stall the relay.

use crate::protocol::{FrameError, MAX_MESSAGE_LEN};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Frames longer than this (tag and length included) are streamed.
pub const STREAM_OVER: usize = 64 * 1024;
/// How much of a streamed frame its observer is shown (its header and the
/// start of its body: a Parse's statement name).
pub const PEEK: usize = 261;
/// Largest message a client may send before it is authenticated.
pub const MAX_PREAUTH_LEN: usize = 16 * 1024;

/// Header of a regular (tagged) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub tag: u8,
    /// Whole frame length including the tag byte.
    pub frame_len: usize,
}

/// The header of the frame at the start of `buf`, if its 5 bytes are
/// there; an error when its length is malformed or over `max`.
pub fn frame_header(buf: &[u8], max: usize) -> Result<Option<Header>, FrameError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if !(4..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(FrameError::BadLength(len));
    }
    if len > max {
        return Err(FrameError::TooLarge {
            tag: buf[0] as char,
            len,
            max,
        });
    }
    Ok(Some(Header {
        tag: buf[0],
        frame_len: len + 1,
    }))
}

/// The header of the frame at the start of `buf` if the whole frame is
/// there.
pub fn complete_frame(buf: &[u8]) -> Result<Option<Header>, FrameError> {
    Ok(frame_header(buf, MAX_MESSAGE_LEN)?.filter(|h| buf.len() >= h.frame_len))
}

/// Why reading a frame stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Read one whole frame (header included) of at most `max` bytes from
/// `stream`, buffering in `buf`; `Ok(None)` at end of stream.
pub async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<BytesMut>, ReadError> {
    loop {
        if let Some(h) = frame_header(buf, max)? {
            if buf.len() >= h.frame_len {
                return Ok(Some(buf.split_to(h.frame_len)));
            }
            buf.reserve(h.frame_len - buf.len());
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

/// What an observer is shown of a frame: all of it (`whole`), or for a
/// streamed frame its start (`PEEK` bytes: the header and the body's
/// first bytes).
#[derive(Debug, Clone, Copy)]
pub struct FrameView<'a> {
    pub tag: u8,
    /// Whole frame length, tag included.
    pub len: usize,
    /// The whole frame, or its header.
    pub bytes: &'a [u8],
}

impl FrameView<'_> {
    pub fn is_whole(&self) -> bool {
        self.bytes.len() == self.len
    }

    /// The body, when the frame is whole.
    pub fn body(&self) -> Option<&[u8]> {
        self.is_whole().then(|| &self.bytes[5..])
    }
}

/// What to do with a frame on its way through.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    Keep,
    Drop,
    Replace(BytesMut),
    /// Send these bytes first, then the frame as it is (whole or
    /// streamed).
    Prepend(BytesMut),
}

/// Replace `buf[start..end]` with `with` (rare: limits only).
fn splice(buf: &mut BytesMut, start: usize, end: usize, with: &[u8]) {
    if start == 0 && with.is_empty() {
        buf.advance(end);
        return;
    }
    let tail = buf.split_off(end);
    buf.truncate(start);
    buf.extend_from_slice(with);
    buf.extend_from_slice(&tail);
}

/// One direction of the relay: bytes read, the first `ready` of which are
/// decided and owed to the other side.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    ready: usize,
    /// Bytes of a streamed, kept frame not read yet.
    through: usize,
    /// Bytes of a streamed, dropped frame not read yet.
    skip: usize,
    /// Largest frame accepted.
    max: usize,
    /// Frames of this tag up to this length are held whole (above
    /// `STREAM_OVER`): transaction pooling keeps a client's Parse.
    hold: Option<(u8, usize)>,
    /// Bytes the frame at `ready` needs buffered before it can be decided
    /// (held whole, or the first `PEEK` bytes of a streamed one); 0: none.
    want: usize,
    /// New frames are decided only while less than this is owed (what
    /// observers add never grows the buffer past it by more than a frame).
    room: usize,
    /// `scan` stopped at `room` with frames left undecided.
    stalled: bool,
}

impl Framer {
    pub fn new(buf: BytesMut) -> Framer {
        Framer {
            buf,
            ready: 0,
            through: 0,
            skip: 0,
            max: MAX_MESSAGE_LEN,
            hold: None,
            want: 0,
            room: usize::MAX,
            stalled: false,
        }
    }

    /// Decide new frames only while less than `room` bytes are owed (the
    /// rest waits in the buffer: `rescan` once what is owed drained).
    pub fn owe_at_most(&mut self, room: usize) {
        self.room = room;
    }

    /// `scan` stopped at its room with frames left undecided (they wait
    /// in the buffer).
    pub fn stalled(&self) -> bool {
        self.stalled
    }

    /// `scan` stopped at its room with frames undecided, and what is owed
    /// drained below it since: scan again.
    pub fn rescan(&self) -> bool {
        self.stalled && self.ready < self.room
    }

    /// Hold frames tagged `tag` whole up to `max` bytes (larger ones are
    /// still streamed).
    pub fn hold_whole(&mut self, tag: u8, max: usize) {
        self.hold = Some((tag, max.min(MAX_MESSAGE_LEN)));
    }

    /// Whether to read more, with `high_water` bounding what waits in the
    /// buffer: below it, or past it only for a frame held whole at the
    /// front of the buffer with nothing owed before it (owed bytes drain
    /// first). So what waits for a destination that takes nothing stays
    /// under `high_water` plus one read, or one held frame.
    pub fn may_read(&self, high_water: usize) -> bool {
        self.buf.len() < high_water || (self.ready == 0 && self.buf.len() < self.want)
    }

    /// The read buffer, for reuse, when nothing is left in it.
    pub fn take_buf(&mut self) -> Option<BytesMut> {
        self.is_empty().then(|| {
            let mut b = std::mem::take(&mut self.buf);
            b.clear();
            self.ready = 0;
            b
        })
    }

    /// The read buffer (to read more into).
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes buffered, owed or not.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes decided and not yet written on.
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.ready]
    }

    /// `n` pending bytes were written.
    pub fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.ready -= n;
    }

    /// Between frames: nothing undecided buffered, no frame half through.
    pub fn at_boundary(&self) -> bool {
        self.buf.len() == self.ready && self.through == 0 && self.skip == 0
    }

    /// What is owed ends at a frame boundary (no streamed frame is half
    /// written).
    pub fn owes_whole_frames(&self) -> bool {
        self.through == 0
    }

    /// Nothing buffered and nothing half through.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.at_boundary()
    }

    /// Append `bytes` to what is owed, at a frame boundary of the output;
    /// false (nothing done) while a streamed frame is half written.
    pub fn insert(&mut self, bytes: &[u8]) -> bool {
        if self.through > 0 {
            return false;
        }
        splice(&mut self.buf, self.ready, self.ready, bytes);
        self.ready += bytes.len();
        true
    }

    /// Decide on everything new in the buffer: whole frames (up to
    /// `STREAM_OVER`) are shown to `observe` whole, larger ones by their
    /// header, after which their bytes pass (or are skipped) as they come.
    pub fn scan(
        &mut self,
        observe: &mut dyn FnMut(FrameView<'_>) -> Edit,
    ) -> Result<(), FrameError> {
        self.stalled = false;
        loop {
            let avail = self.buf.len() - self.ready;
            if self.through > 0 {
                let n = self.through.min(avail);
                self.ready += n;
                self.through -= n;
                if self.through > 0 {
                    return Ok(());
                }
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(avail);
                splice(&mut self.buf, self.ready, self.ready + n, &[]);
                self.skip -= n;
                if self.skip > 0 {
                    return Ok(());
                }
                continue;
            }
            let start = self.ready;
            if start >= self.room {
                self.stalled = start < self.buf.len();
                self.want = 0;
                return Ok(());
            }
            let Some(h) = frame_header(&self.buf[start..], self.max)? else {
                return Ok(());
            };
            let whole = avail >= h.frame_len;
            let held = h.frame_len <= STREAM_OVER
                || self
                    .hold
                    .is_some_and(|(tag, max)| tag == h.tag && h.frame_len <= max);
            if !whole && held {
                self.buf.reserve(h.frame_len - avail);
                self.want = h.frame_len;
                return Ok(());
            }
            // A streamed frame is shown with its first bytes (up to PEEK).
            let peek = PEEK.min(h.frame_len);
            if !whole && avail < peek {
                self.want = peek;
                return Ok(());
            }
            self.want = 0;
            let shown = if whole { h.frame_len } else { peek };
            let edit = observe(FrameView {
                tag: h.tag,
                len: h.frame_len,
                bytes: &self.buf[start..start + shown],
            });
            // Of this frame, the bytes in the buffer now and those to come.
            let here = h.frame_len.min(avail);
            let later = h.frame_len - here;
            match edit {
                Edit::Keep => {
                    self.ready += here;
                    self.through = later;
                }
                Edit::Drop => {
                    splice(&mut self.buf, start, start + here, &[]);
                    self.skip = later;
                }
                Edit::Replace(with) => {
                    splice(&mut self.buf, start, start + here, &with);
                    self.ready += with.len();
                    self.skip = later;
                }
                Edit::Prepend(with) => {
                    splice(&mut self.buf, start, start, &with);
                    self.ready += with.len() + here;
                    self.through = later;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
