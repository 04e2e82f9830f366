//! Randomised (structure-aware) fuzzing of the startup parser and the
//! codec, on stable Rust with no extra crate. Every execution checks, not
//! just "no panic":
//!
//! - startup: parsing stops with a packet, `Ok(None)` or an error, never
//!   reads past its length, and `Ok(None)` leaves the buffer untouched;
//! - codec: a stream of frames (some over `STREAM_OVER`, some with broken
//!   lengths) cut into random chunks gives, with the same keep / drop /
//!   replace decisions, exactly what the whole stream gives at once, and a
//!   conversation fed the same frames never panics.
//!
//! `FUZZ_ITERS` executions per target (default 20 000 and 2 000: about a
//! second in the normal suite);
//! the long run (see docs/src/development/reading-the-code.md) is
//! `FUZZ_ITERS=5000000 cargo test --release -p tenant-router --test fuzz -- --nocapture`
//! (two targets: 10 million executions).
use bytes::{BufMut, BytesMut};
use tenant_router::codec::{Edit, FrameView, Framer, PEEK, STREAM_OVER};
use tenant_router::conversation::Conversation;
use tenant_router::protocol::{self, FrameError};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn iterations(default: u64) -> u64 {
    std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
}

fn startup_input(rng: &mut Rng) -> Vec<u8> {
    let mut v = match rng.below(4) {
        0 => {
            let n = rng.below(40);
            rng.bytes(n)
        }
        1 => {
            let code = [
                protocol::SSL_REQUEST,
                protocol::GSSENC_REQUEST,
                protocol::CANCEL_REQUEST,
                protocol::PROTOCOL_3_0,
                0x0002_0000,
            ][rng.below(5)];
            let mut b = Vec::new();
            let n = rng.below(24);
            let body = rng.bytes(n);
            b.extend(((8 + body.len()) as u32).to_be_bytes());
            b.extend(code.to_be_bytes());
            b.extend(body);
            b
        }
        _ => {
            let n = rng.below(5);
            let params: Vec<(String, String)> = (0..n)
                .map(|i| {
                    let k = ["user", "database", "options", "application_name", "x"][i % 5];
                    let v: String = (0..rng.below(12))
                        .map(|_| (b'a' + rng.below(26) as u8) as char)
                        .collect();
                    (k.to_string(), v)
                })
                .collect();
            protocol::startup_message(&params).to_vec()
        }
    };
    // Mutations: flip bytes, truncate, rewrite the length, add junk.
    for _ in 0..rng.below(3) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 if v.len() >= 4 => {
                let len = [0u32, 3, 4, 8, 9, 10_000, 10_001, u32::MAX][rng.below(8)];
                v[..4].copy_from_slice(&len.to_be_bytes());
            }
            _ => {
                let n = rng.below(8);
                v.extend(rng.bytes(n))
            }
        }
    }
    v
}

fn fuzz_startup_once(rng: &mut Rng) {
    let input = startup_input(rng);
    let mut buf = BytesMut::from(&input[..]);
    loop {
        let before = buf.clone();
        match protocol::read_startup(&mut buf) {
            Ok(Some(_)) => {
                let used = before.len() - buf.len();
                let declared =
                    u32::from_be_bytes([before[0], before[1], before[2], before[3]]) as usize;
                assert_eq!(used, declared, "consumed exactly one packet: {input:?}");
            }
            Ok(None) => {
                assert_eq!(buf, before, "incomplete input left untouched: {input:?}");
                return;
            }
            Err(_) => return,
        }
    }
}

/// A stream of frames; sometimes a broken length.
fn frame_stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(12) {
        let tag = b"QPBESHXDCZEdcfVTGHI1234"[rng.below(23)];
        let body_len = if rng.chance(3) {
            STREAM_OVER - 10 + rng.below(3 * STREAM_OVER)
        } else {
            rng.below(300)
        };
        let mut len = (body_len + 4) as u32;
        if rng.chance(2) {
            len = [0, 1, 3, u32::MAX, (1 << 30) + 1][rng.below(5)];
        }
        out.push(tag);
        out.extend(len.to_be_bytes());
        if tag == b'Z' && body_len > 0 {
            out.push(b"ITE?"[rng.below(4)]);
            out.extend(std::iter::repeat_n(0u8, body_len - 1));
        } else {
            out.extend(std::iter::repeat_n(tag, body_len));
        }
    }
    out
}

/// The decision for a frame, from what every observer may rely on.
fn decide(v: FrameView<'_>, salt: u64) -> Edit {
    match (v.tag as u64 + v.len as u64 + salt) % 5 {
        0 => Edit::Drop,
        1 => {
            let mut r = BytesMut::new();
            r.put_u8(b'N');
            r.put_u32(4 + (v.len % 7) as u32);
            r.put_slice(&vec![b'r'; v.len % 7]);
            Edit::Replace(r)
        }
        _ => Edit::Keep,
    }
}

/// Run a framer over `chunks`; the output and how it ended.
fn run(chunks: &[&[u8]], salt: u64) -> (Vec<u8>, Option<FrameError>) {
    let mut f = Framer::new(BytesMut::new());
    let mut conv = Conversation::default();
    let mut out = Vec::new();
    for c in chunks {
        f.buf_mut().extend_from_slice(c);
        let r = f.scan(&mut |v| {
            assert!(
                v.bytes.len() == v.len || (v.bytes.len() == PEEK.min(v.len) && v.len > STREAM_OVER)
            );
            conv.on_server(v);
            conv.client_sent(v.tag, false);
            decide(v, salt)
        });
        out.extend_from_slice(f.pending());
        let n = f.pending().len();
        f.consume(n);
        if let Err(e) = r {
            return (out, Some(e));
        }
    }
    let _ = conv.at_rest();
    (out, None)
}

fn fuzz_codec_once(rng: &mut Rng) {
    let input = frame_stream(rng);
    let salt = rng.next();
    let (whole, whole_err) = run(&[&input], salt);
    let mut chunks = Vec::new();
    let mut rest = &input[..];
    while !rest.is_empty() {
        let max = if rng.chance(50) { 16 } else { 40_000 };
        let n = 1 + rng.below(max);
        let (a, b) = rest.split_at(n.min(rest.len()));
        chunks.push(a);
        rest = b;
    }
    let (pieces, pieces_err) = run(&chunks, salt);
    assert_eq!(whole_err, pieces_err, "same error either way");
    assert!(pieces == whole, "chunking changed the output");
}

fn fuzz(name: &str, default: u64, once: fn(&mut Rng)) {
    let n = iterations(default);
    let mut rng = Rng(seed() ^ name.len() as u64);
    let started = std::time::Instant::now();
    for _ in 0..n {
        once(&mut rng);
    }
    println!("fuzz {name}: {n} executions in {:?}", started.elapsed());
}

#[test]
fn fuzz_startup_parser() {
    fuzz("startup", 20_000, fuzz_startup_once);
}

#[test]
fn fuzz_codec_and_conversation() {
    fuzz("codec", 2_000, fuzz_codec_once);
}
