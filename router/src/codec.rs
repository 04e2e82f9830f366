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
    pub stalled: bool,
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
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![tag];
        f.extend(((body.len() + 4) as u32).to_be_bytes());
        f.extend(body);
        f
    }

    fn keep_all(f: &mut Framer) -> Vec<(u8, usize, bool)> {
        let mut seen = Vec::new();
        f.scan(&mut |v| {
            seen.push((v.tag, v.len, v.is_whole()));
            Edit::Keep
        })
        .unwrap();
        seen
    }

    #[test]
    fn headers_are_checked_before_the_body_arrives() {
        assert_eq!(frame_header(b"Q\0\0", 100), Ok(None));
        assert_eq!(
            frame_header(b"Q\0\0\0\x03", 100),
            Err(FrameError::BadLength(3))
        );
        assert_eq!(
            frame_header(b"Q\x7f\xff\xff\xff", usize::MAX),
            Err(FrameError::BadLength(0x7fff_ffff))
        );
        assert_eq!(
            frame_header(b"p\0\x01\0\0", 16 * 1024),
            Err(FrameError::TooLarge {
                tag: 'p',
                len: 65536,
                max: 16 * 1024
            })
        );
        assert_eq!(complete_frame(b"Q\0\0\0\x09abc"), Ok(None));
        assert_eq!(
            complete_frame(b"Q\0\0\0\x05a"),
            Ok(Some(Header {
                tag: b'Q',
                frame_len: 6
            }))
        );
    }

    #[test]
    fn prepended_bytes_go_before_a_frame_whole_or_streamed() {
        let small = frame(b'B', b"abc");
        let big = frame(b'B', &vec![7u8; STREAM_OVER + 10]);
        for f in [&small, &big] {
            let mut fr = Framer::new(BytesMut::new());
            // The big one arrives in two parts: its start, then the rest.
            let cut = if f.len() > STREAM_OVER {
                PEEK + 3
            } else {
                f.len()
            };
            fr.buf_mut().extend_from_slice(&f[..cut]);
            let mut shown = Vec::new();
            fr.scan(&mut |v| {
                shown.push((v.tag, v.bytes.len()));
                Edit::Prepend(BytesMut::from(&b"H\0\0\0\x04"[..]))
            })
            .unwrap();
            fr.buf_mut().extend_from_slice(&f[cut..]);
            fr.scan(&mut |_| Edit::Keep).unwrap();
            let mut want = b"H\0\0\0\x04".to_vec();
            want.extend_from_slice(f);
            assert_eq!(fr.pending(), &want[..]);
            let seen = if f.len() > STREAM_OVER { PEEK } else { f.len() };
            assert_eq!(shown, vec![(b'B', seen)]);
        }
    }

    /// Found by the fault tests: a client that read nothing let the router
    /// buffer a whole 100 MB result, because each read ended inside a row
    /// and the row's need was counted from the start of the buffer, owed
    /// bytes included, so it was always past the high-water mark.
    #[test]
    fn owed_bytes_and_a_partial_frame_do_not_open_reading_past_the_mark() {
        const HIGH: usize = 256 * 1024;
        let row = frame(b'D', &[b'x'; 1000]);
        let stream: Vec<u8> = row.iter().copied().cycle().take(8 * HIGH).collect();
        let mut f = Framer::new(BytesMut::new());
        let mut fed = 0;
        // Read 64 KiB at a time while the framer allows it; nothing is
        // ever written on (the destination takes nothing).
        while f.may_read(HIGH) && fed < stream.len() {
            let end = (fed + 64 * 1024).min(stream.len());
            f.buf_mut().extend_from_slice(&stream[fed..end]);
            fed = end;
            keep_all(&mut f);
        }
        assert!(fed < stream.len(), "reading stopped");
        assert!(f.buffered() < HIGH + 64 * 1024, "{}", f.buffered());
        // Once what is owed drains, the partial row may be read on.
        let owed = f.pending().len();
        f.consume(owed);
        assert!(f.may_read(HIGH));
    }

    #[test]
    fn a_frame_held_whole_is_read_past_the_mark_once_nothing_is_owed() {
        const HIGH: usize = 1024;
        let mut f = Framer::new(BytesMut::new());
        f.hold_whole(b'P', 1 << 20);
        let small = frame(b'S', b"");
        let big = frame(b'P', &vec![b'p'; 300_000]);
        f.buf_mut().extend_from_slice(&small);
        f.buf_mut().extend_from_slice(&big[..2_000]);
        keep_all(&mut f);
        assert_eq!(f.pending().len(), small.len());
        assert!(!f.may_read(HIGH), "owed bytes first");
        f.consume(small.len());
        assert!(f.may_read(HIGH), "the held frame needs its bytes");
        f.buf_mut().extend_from_slice(&big[2_000..]);
        assert!(!f.may_read(HIGH), "whole: back to the mark");
        assert_eq!(keep_all(&mut f), vec![(b'P', big.len(), true)]);
    }

    /// Found attacking the relay's bounds: an observer's additions (a Parse
    /// prepared again before each Bind) made one read of small frames
    /// hundreds of times its size at once; past the room, frames wait.
    #[test]
    fn frames_past_the_room_wait_undecided_until_what_is_owed_drains() {
        let bind = frame(b'B', b"\0a\0\0\0\0\0\0\0");
        let mut f = Framer::new(BytesMut::from(&bind.repeat(100)[..]));
        f.owe_at_most(10_000);
        let mut grow = |_: FrameView<'_>| Edit::Prepend(BytesMut::from(&[b'P'; 3_000][..]));
        let (mut out, mut scans) = (0, 0);
        while !f.is_empty() {
            f.scan(&mut grow).unwrap();
            scans += 1;
            assert!(f.pending().len() < 10_000 + 3_000 + bind.len());
            assert!(!f.rescan(), "nothing drained yet");
            let n = f.pending().len();
            f.consume(n);
            out += n;
            assert_eq!(f.rescan(), !f.is_empty());
        }
        assert_eq!(out, 100 * (3_000 + bind.len()));
        assert_eq!(scans, 25, "four frames per scan");
    }

    #[test]
    fn only_whole_small_frames_are_ready() {
        let mut f = Framer::new(BytesMut::from(&b"Q\0\0\0\x0dSELECT 1\0Q\0\0"[..]));
        assert_eq!(keep_all(&mut f), vec![(b'Q', 14, true)]);
        assert_eq!(f.pending().len(), 14);
        assert!(!f.at_boundary());
        f.buf_mut().extend_from_slice(b"\0\x05x");
        assert_eq!(keep_all(&mut f), vec![(b'Q', 6, true)]);
        assert!(f.at_boundary());
    }

    #[test]
    fn large_frames_stream_through_as_they_arrive() {
        let big = frame(b'D', &vec![7u8; 200_000]);
        let mut f = Framer::new(BytesMut::from(&big[..10_000]));
        assert_eq!(keep_all(&mut f), vec![(b'D', big.len(), false)]);
        assert_eq!(f.pending().len(), 10_000, "the prefix is owed at once");
        f.consume(10_000);
        f.buf_mut().extend_from_slice(&big[10_000..150_000]);
        assert!(keep_all(&mut f).is_empty(), "no new frame");
        assert_eq!(f.pending().len(), 140_000);
        assert!(!f.insert(b"E"), "no insertion inside a frame");
        f.consume(140_000);
        f.buf_mut().extend_from_slice(&big[150_000..]);
        f.buf_mut().extend_from_slice(&frame(b'Z', b"I"));
        assert_eq!(keep_all(&mut f), vec![(b'Z', 6, true)]);
        assert_eq!(f.pending().len(), big.len() - 150_000 + 6);
        assert!(f.at_boundary());
    }

    #[test]
    fn dropped_and_replaced_large_frames_are_skipped() {
        let big = frame(b'Q', &vec![b'x'; 100_000]);
        let mut input = big.clone();
        input.extend(frame(b'S', b""));
        for edit in [0, 1] {
            let mut f = Framer::new(BytesMut::new());
            let mut out = Vec::new();
            for chunk in input.chunks(7_000) {
                f.buf_mut().extend_from_slice(chunk);
                f.scan(&mut |v| match (v.tag, edit) {
                    (b'Q', 0) => Edit::Drop,
                    (b'Q', _) => Edit::Replace(BytesMut::from(&frame(b'H', b"")[..])),
                    _ => Edit::Keep,
                })
                .unwrap();
                out.extend_from_slice(f.pending());
                let n = f.pending().len();
                f.consume(n);
            }
            let mut want = if edit == 0 { vec![] } else { frame(b'H', b"") };
            want.extend(frame(b'S', b""));
            assert_eq!(out, want);
            assert!(f.is_empty());
        }
    }

    #[test]
    fn small_frames_are_edited_in_place() {
        let mut input = frame(b'D', b"aa");
        input.extend(frame(b'C', b"x\0"));
        input.extend(frame(b'Z', b"I"));
        let mut f = Framer::new(BytesMut::from(&input[..]));
        f.scan(&mut |v| match v.tag {
            b'D' => Edit::Drop,
            b'C' => Edit::Replace(BytesMut::from(&b"E\0\0\0\x04"[..])),
            _ => Edit::Keep,
        })
        .unwrap();
        let mut want = b"E\0\0\0\x04".to_vec();
        want.extend(frame(b'Z', b"I"));
        assert_eq!(f.pending(), &want[..]);
        assert!(f.insert(b"N\0\0\0\x04"));
        assert!(f.pending().ends_with(b"N\0\0\0\x04"));
    }

    #[test]
    fn bad_length_is_an_error() {
        let mut f = Framer::new(BytesMut::from(&b"Q\0\0\0\x02"[..]));
        assert_eq!(f.scan(&mut |_| Edit::Keep), Err(FrameError::BadLength(2)));
    }

    #[tokio::test]
    async fn read_frame_caps_before_reading_the_body() {
        let mut input: &[u8] = b"p\0\x10\0\0rest-of-a-huge-password";
        let mut buf = BytesMut::new();
        let e = read_frame(&mut input, &mut buf, MAX_PREAUTH_LEN)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");
        let mut input: &[u8] = b"p\0\0\0\x08abc\0X";
        let mut buf = BytesMut::new();
        let f = read_frame(&mut input, &mut buf, MAX_PREAUTH_LEN)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&f[..], b"p\0\0\0\x08abc\0");
        assert_eq!(read_frame(&mut input, &mut buf, 64).await.unwrap(), None);
    }
}
