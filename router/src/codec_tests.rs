//! The framer's tests: framing, streaming, edits, and the relay's
//! high-water rules (`may_read`, `owe_at_most`).
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
