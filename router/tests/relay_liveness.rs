//! The relay's backpressure (no frame decided past its 256 KiB mark, a
//! client owed that mark not read) never stops a conversation: frames left
//! waiting undecided are decided once what is owed drains, each exactly
//! once and in order, whatever holds them (a backend busy and not reading,
//! a client slow to read, statements prepared again before each Bind).
//! Each test writes and reads at once, as a pipelining driver does, and
//! checks every answer, in order.
mod common;
use bytes::{Bytes, BytesMut};
use common::raw::{self, Raw};
use common::*;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::time::timeout;

const ROLE: &str = "rt_rl1";

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&[ROLE]);
        tenants(
            &["rl_tx"],
            "pool_mode => 'transaction', max_connections => 0",
        );
        tenants(&["rl_sess"], "max_connections => 0");
    });
}

fn pooled(extra: &str) -> Router {
    fixtures();
    Router::start_with(&format!(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\n{extra}\n"
    ))
}

/// The read half of a client, message by message (20 s at most each).
struct Reader {
    r: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    async fn recv(&mut self) -> (u8, Bytes) {
        loop {
            if let Some(m) = raw::take_message(&mut self.buf) {
                return m;
            }
            self.buf.reserve(64 * 1024);
            let n = timeout(Duration::from_secs(20), self.r.read_buf(&mut self.buf))
                .await
                .expect("a server message within 20 s")
                .expect("read");
            assert!(n > 0, "the router closed the connection");
        }
    }

    /// The single text value of a DataRow.
    fn value(body: &[u8]) -> &[u8] {
        assert_eq!(&body[..2], &[0, 1], "one column");
        &body[6..]
    }
}

/// Split a logged-in client: its reader and writer. Its receive buffer
/// is fixed at 128 KiB (no autotuning), so what it does not read stays
/// with the router rather than in the sockets.
fn split(c: Raw) -> (Reader, tokio::net::tcp::OwnedWriteHalf) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 128 * 1024;
    // SAFETY: a valid socket and an int option of the right size.
    let rc = unsafe {
        libc::setsockopt(
            c.s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_RCVBUF");
    let (r, w) = c.s.into_split();
    (
        Reader {
            r,
            buf: BytesMut::new(),
        },
        w,
    )
}

/// A backend busy (pg_sleep) reads nothing while the client pipelines
/// 4 MB of Queries: the relay owes it its mark and the rest of each read
/// waits undecided; every Query is answered, once, in order, in session
/// and in transaction pooling (where each Query comes to rest).
async fn queries_behind_a_busy_backend(user: &str) {
    let r = pooled("size = 2\ntimeout_ms = 20000");
    let c = Raw::connect(r.port, user, DB).await.expect("login");
    let (mut rd, mut wr) = split(c);
    const N: usize = 4000;
    let pad = "x".repeat(1000);
    let mut all = BytesMut::new();
    all.extend_from_slice(&raw::query("SELECT pg_sleep(0.5)"));
    for i in 0..N {
        all.extend_from_slice(&raw::query(&format!("SELECT {i} /* {pad} */")));
    }
    let writer = tokio::spawn(async move { wr.write_all(&all).await.map(|_| wr) });
    let expect = |tag: u8, got: (u8, Bytes)| {
        assert_eq!(got.0 as char, tag as char, "{:?}", got.1);
        got.1
    };
    for t in [b'T', b'D', b'C', b'Z'] {
        expect(t, rd.recv().await);
    }
    for i in 0..N {
        expect(b'T', rd.recv().await);
        let row = expect(b'D', rd.recv().await);
        assert_eq!(Reader::value(&row), i.to_string().as_bytes(), "answer {i}");
        expect(b'C', rd.recv().await);
        expect(b'Z', rd.recv().await);
    }
    let _wr = timeout(Duration::from_secs(20), writer)
        .await
        .expect("all written")
        .expect("writer")
        .expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_behind_a_busy_backend_are_all_answered_in_order_session_pooling() {
    queries_behind_a_busy_backend(&format!("{ROLE}.rl_sess")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_behind_a_busy_backend_are_all_answered_in_order_transaction_pooling() {
    queries_behind_a_busy_backend(&format!("{ROLE}.rl_tx")).await;
}

/// Transaction pooling on a backend that keeps one statement: each Bind
/// brings its statement's 100 KiB Parse back, so frames wait undecided
/// past the mark, while each result (50 KB) fills what is owed to a
/// client that reads slowly, so the client is not read either. Every
/// Bind is prepared again exactly once: no ParseComplete reaches the
/// client (it sent no Parse), every result is its statement's, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_prepared_again_behind_large_results_to_a_slow_reader() {
    let r = pooled("size = 1\ntimeout_ms = 20000\nmax_prepared_statements = 1");
    let mut c = Raw::connect(r.port, &format!("{ROLE}.rl_tx"), DB)
        .await
        .expect("login");
    for name in ["a", "b"] {
        let text = format!(
            "SELECT repeat('{name}', 50000) /* {} */",
            "x".repeat(100 * 1024)
        );
        let mut m = raw::parse(name, &text);
        m.extend_from_slice(&raw::sync());
        c.send(&m).await;
        let answers = c.until(b'Z').await;
        assert_eq!(raw::errors(&answers), Vec::<String>::new());
    }
    let (mut rd, mut wr) = split(c);
    const PAIRS: usize = 120;
    let mut all = BytesMut::new();
    for i in 0..PAIRS {
        all.extend_from_slice(&raw::run(if i % 2 == 0 { "a" } else { "b" }, &[]));
    }
    let writer = tokio::spawn(async move { wr.write_all(&all).await.map(|_| wr) });
    for i in 0..PAIRS {
        let want = if i % 2 == 0 { b'a' } else { b'b' };
        let mut rows = 0;
        loop {
            let (tag, body) = rd.recv().await;
            match tag {
                b'2' | b'C' => {}
                b'D' => {
                    let v = Reader::value(&body);
                    assert_eq!(v.len(), 50_000, "pair {i}");
                    assert!(v.iter().all(|&b| b == want), "pair {i}: another's result");
                    rows += 1;
                    // A slow reader: PostgreSQL's results fill what the
                    // router owes it.
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                b'Z' => break,
                b'E' => panic!("pair {i}: {:?}", raw::error_of(&body)),
                t => panic!("pair {i}: unexpected {}", t as char),
            }
        }
        assert_eq!(rows, 1, "pair {i}");
    }
    let mut wr = timeout(Duration::from_secs(20), writer)
        .await
        .expect("all written")
        .expect("writer")
        .expect("write");
    // The session goes on.
    wr.write_all(&raw::query("SELECT 41 + 1"))
        .await
        .expect("send");
    let mut v = None;
    loop {
        match rd.recv().await {
            (b'D', body) => v = Some(Reader::value(&body).to_vec()),
            (b'Z', _) => break,
            (b'E', body) => panic!("{:?}", raw::error_of(&body)),
            _ => {}
        }
    }
    assert_eq!(v.as_deref(), Some(&b"42"[..]));
}

/// A listener that reads nothing while its own transaction sends it 16 MB
/// of notifications: the router stops reading PostgreSQL and the client
/// (a Query it sends meanwhile waits in the socket); once it reads, every
/// notification arrives once, in order, with the pid the router gave the
/// client (each frame seen by the observers exactly once), then the
/// answer to the Query sent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_to_a_client_that_reads_late_all_arrive_in_order() {
    let r = pooled("size = 2\ntimeout_ms = 20000");
    let c = Raw::connect(r.port, &format!("{ROLE}.rl_sess"), DB)
        .await
        .expect("login");
    let (pid, _) = c.key.expect("BackendKeyData");
    let (mut rd, mut wr) = split(c);
    const N: usize = 2000;
    wr.write_all(&raw::query(&format!(
        "LISTEN rl; SELECT count(tenant.notify('rl', lpad(i::text, 7999, '0'))) \
         FROM generate_series(1, {N}) i"
    )))
    .await
    .expect("send");
    wr.write_all(&raw::query("SELECT 41 + 1"))
        .await
        .expect("send");
    let (mut notes, mut ready, mut values) = (0usize, 0, Vec::new());
    while ready < 2 || notes < N {
        match rd.recv().await {
            (b'A', body) => {
                let from = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                assert_eq!(from, pid, "notification {notes}: the client's pid");
                let rest = &body[4..];
                assert!(rest.starts_with(b"rl\0"), "{rest:?}");
                let payload = &rest[3..rest.len() - 1];
                notes += 1;
                assert_eq!(payload, format!("{notes:0>7999}").as_bytes());
            }
            (b'D', body) => values.push(Reader::value(&body).to_vec()),
            (b'Z', _) => ready += 1,
            (b'E', body) => panic!("{:?}", raw::error_of(&body)),
            _ => {}
        }
    }
    assert_eq!(values, vec![N.to_string().into_bytes(), b"42".to_vec()]);
}
