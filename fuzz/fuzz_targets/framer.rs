//! One direction of the relay (`codec::Framer`) against a model: the
//! input is a byte stream fed in chunks, plus the observer's decisions
//! (keep, drop, replace, prepend) and optionally a tag held whole. Every
//! frame shown is the next frame of the stream (tag, length and bytes);
//! whole frames above STREAM_OVER only for the held tag within its cap;
//! streamed frames are shown with exactly min(PEEK, len) bytes; a length
//! error comes exactly at the first bad header; and what the framer
//! passes on is exactly what the decisions say, byte for byte.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tenant_router::codec::{complete_frame, frame_header, Edit, Framer, PEEK, STREAM_OVER};
use tenant_router::protocol::MAX_MESSAGE_LEN;

struct Model {
    /// (start, tag, frame length) of each frame whose header is in the stream.
    frames: Vec<(usize, u8, usize)>,
    /// Where a bad length header starts.
    bad_at: Option<usize>,
}

fn model(stream: &[u8]) -> Model {
    let (mut frames, mut pos) = (Vec::new(), 0usize);
    while pos + 5 <= stream.len() {
        let len = u32::from_be_bytes([
            stream[pos + 1],
            stream[pos + 2],
            stream[pos + 3],
            stream[pos + 4],
        ]) as usize;
        if !(4..=MAX_MESSAGE_LEN).contains(&len) {
            return Model {
                frames,
                bad_at: Some(pos),
            };
        }
        frames.push((pos, stream[pos], len + 1));
        pos += len + 1;
    }
    Model {
        frames,
        bad_at: None,
    }
}

fn edit(d: u8) -> Edit {
    let with = || BytesMut::from(&vec![b'R'; usize::from(d >> 2)][..]);
    match d & 3 {
        0 => Edit::Keep,
        1 => Edit::Drop,
        2 => Edit::Replace(with()),
        _ => Edit::Prepend(with()),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let step = usize::from(data[0]).max(1) * if data[1] & 0x80 != 0 { 1024 } else { 1 };
    let hold = match data[1] & 3 {
        0 => None,
        1 => Some((b'P', STREAM_OVER + 100)),
        2 => Some((b'P', 1 << 20)),
        _ => Some((b'Q', 1 << 24)),
    };
    let n = usize::from(data[2]).min(data.len() - 3);
    let (decisions, stream) = data[3..].split_at(n);
    // At most ~64 reads per input: long inputs (streamed frames) stay fast.
    let step = step.max(stream.len() / 64);
    let m = model(stream);

    // The header helpers agree with the model on the first frame.
    match (frame_header(stream, MAX_MESSAGE_LEN), m.frames.first()) {
        (Ok(Some(h)), Some(&(_, tag, len))) => assert_eq!((h.tag, h.frame_len), (tag, len)),
        (Ok(None), None) => assert!(stream.len() < 5),
        (Err(_), None) => assert_eq!(m.bad_at, Some(0)),
        other => panic!("frame_header disagrees with the model: {other:?}"),
    }
    if let Ok(Some(h)) = complete_frame(stream) {
        assert!(stream.len() >= h.frame_len);
    }
    let cap = usize::from(data[0]) * 64 + 4;
    if let Ok(Some(h)) = frame_header(stream, cap) {
        assert!(h.frame_len - 1 <= cap, "a length over the cap accepted");
    }

    let mut framer = Framer::new(BytesMut::new());
    if let Some((tag, max)) = hold {
        framer.hold_whole(tag, max);
    }
    let mut out: Vec<u8> = Vec::new();
    let mut expected: Vec<u8> = Vec::new();
    let mut shown = 0usize;
    let mut fed = 0usize;
    for chunk in stream.chunks(step) {
        framer.buf_mut().extend_from_slice(chunk);
        fed += chunk.len();
        let mut observe = |v: tenant_router::codec::FrameView<'_>| {
            let &(start, tag, len) = m
                .frames
                .get(shown)
                .expect("a frame the model does not have");
            assert_eq!((v.tag, v.len), (tag, len), "frame {shown}");
            assert_eq!(v.bytes, &stream[start..start + v.bytes.len()]);
            assert!(start + v.bytes.len() <= fed, "shown bytes not yet read");
            let held = len <= STREAM_OVER || hold.is_some_and(|(t, max)| t == tag && len <= max);
            if v.is_whole() {
                assert!(held || start + len <= fed);
                assert_eq!(v.body().map(<[u8]>::len), Some(len - 5));
            } else {
                assert!(!held, "a held frame shown in part");
                assert_eq!(v.bytes.len(), PEEK.min(len));
                assert!(v.body().is_none());
            }
            let d = decisions
                .get(shown % decisions.len().max(1))
                .copied()
                .unwrap_or(0);
            let e = edit(d);
            match &e {
                Edit::Replace(w) | Edit::Prepend(w) => expected.extend_from_slice(w),
                _ => {}
            }
            if matches!(e, Edit::Keep | Edit::Prepend(_)) {
                expected.extend_from_slice(&stream[start..(start + len).min(stream.len())]);
            }
            shown += 1;
            e
        };
        let r = framer.scan(&mut observe);
        out.extend_from_slice(framer.pending());
        framer.consume(framer.pending().len());
        if let Err(e) = r {
            let bad = m.bad_at.expect("an error where the model has none");
            assert_eq!(
                shown,
                m.frames.len(),
                "error before every good frame was shown: {e}"
            );
            assert!(bad + 5 <= fed);
            return;
        }
    }
    // Which frames the model says are shown by now.
    let showable = m
        .frames
        .iter()
        .take_while(|&&(start, tag, len)| {
            let held = len <= STREAM_OVER || hold.is_some_and(|(t, max)| t == tag && len <= max);
            start + len <= fed || (!held && fed - start >= PEEK.min(len))
        })
        .count();
    assert_eq!(shown, showable, "frames shown");
    assert!(m.bad_at.is_none(), "a bad length header passed unnoticed");
    // What was passed on is what the decisions say, streamed frames
    // included as far as their bytes arrived.
    assert_eq!(out.len(), expected.len(), "bytes passed on");
    assert!(out == expected, "bytes passed on differ from the decisions");
    // Nothing is lost: what is still buffered is the undecided rest.
    let undecided = match m.frames.get(shown) {
        Some(&(start, _, _)) => fed - start,
        None => match m.frames.last() {
            Some(&(start, _, len)) if start + len < fed => fed - (start + len),
            Some(_) => 0,
            None => fed,
        },
    };
    assert_eq!(framer.buffered(), undecided, "bytes buffered");
    assert_eq!(
        framer.is_empty(),
        undecided == 0 && m.frames.last().is_none_or(|&(s, _, l)| s + l <= fed)
    );
});
