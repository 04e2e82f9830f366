//! The relay's memory stays bounded per connection whatever a tenant's
//! client sends: what the router adds to the stream (a statement prepared
//! again on another backend, a locally answered statement) counts against
//! the same high-water mark as what it relays. Each attack is measured by
//! the router's peak resident memory (VmHWM), beside a control: every
//! message is still answered, in order.
mod common;
use bytes::{BufMut, BytesMut};
use common::raw::{self, Raw};
use common::*;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

const ROLES: [&str; 2] = ["rt_rm1", "rt_rm2"];

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&ROLES);
        tenants(
            &["rm_tx"],
            "pool_mode => 'transaction', max_connections => 0",
        );
        tenants(&["rm_calm"], "max_connections => 0");
        set_limits(
            "rm_qps",
            "max_connections => 0, qps_limit => 1, burst_multiplier => 1",
        );
    });
}

fn pooled(extra: &str) -> Router {
    fixtures();
    Router::start_with(&format!(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\n{extra}\n"
    ))
}

/// A Bind of the unnamed portal to statement `stmt`, no parameters.
fn bind(stmt: &str) -> BytesMut {
    let mut body = BytesMut::new();
    body.put_u8(0); // portal ""
    body.put_slice(stmt.as_bytes());
    body.put_u8(0);
    body.put_u16(0); // parameter formats
    body.put_u16(0); // parameters
    body.put_u16(0); // result formats
    raw::message(b'B', &body)
}

/// Found attacking the relay's bounds: with transaction pooling, a Bind
/// of a statement the backend does not hold is preceded by the client's
/// Parse, prepared again. Two statements of 600 KiB on a backend that
/// keeps one, bound in turn with a Sync after each, made each 19-byte
/// Bind+Sync 600 KiB of Parse, and the router prepared the whole of what
/// one read brought at once (150 pairs: 90 MB; a 64 KiB read: 2 GB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_prepared_again_do_not_inflate_the_relay_buffer() {
    let r = pooled("size = 1\ntimeout_ms = 20000\nmax_prepared_statements = 1");
    let mut c = Raw::connect(r.port, "rt_rm1.rm_tx", DB)
        .await
        .expect("login");
    // Two statements of 600 KiB each (1.2 MB: within the client's 2 MiB),
    // each in a batch of its own: the backend keeps the second only.
    for name in ["a", "b"] {
        let text = format!("SELECT '{name}' /* {} */", "x".repeat(600 * 1024));
        let mut m = raw::parse(name, &text);
        m.extend_from_slice(&raw::sync());
        c.send(&m).await;
        let answers = c.until(b'Z').await;
        assert_eq!(raw::errors(&answers), Vec::<String>::new());
        assert_eq!(answers.iter().filter(|m| m.0 == b'1').count(), 1);
    }

    let before = r.memory_kib("VmHWM");
    const PAIRS: usize = 150;
    let mut m = BytesMut::new();
    for i in 0..PAIRS {
        m.extend_from_slice(&bind(if i % 2 == 0 { "a" } else { "b" }));
        m.extend_from_slice(&raw::sync());
    }
    c.send(&m).await;
    let mut bound = 0;
    for _ in 0..PAIRS {
        for (tag, body) in c.until(b'Z').await {
            match tag {
                b'2' => bound += 1,
                b'E' => panic!("{:?}", raw::error_of(&body)),
                _ => {}
            }
        }
    }
    let after = r.memory_kib("VmHWM");
    eprintln!("router peak RSS {before} -> {after} KiB");
    // Every Bind was answered: each was prepared again in turn.
    assert_eq!(bound, PAIRS);
    // 90 MB would have been prepared at once; the relay holds its
    // high-water mark (256 KiB) and one frame's Parse (600 KiB).
    assert!(
        after < before + 20 * 1024,
        "router peak RSS grew from {before} to {after} KiB"
    );
    // The session goes on: its statements still answer.
    let mut m = bind("b");
    m.extend_from_slice(&raw::message(b'E', b"\0\0\0\0\0"));
    m.extend_from_slice(&raw::sync());
    c.send(&m).await;
    let rows: Vec<_> = c
        .until(b'Z')
        .await
        .into_iter()
        .filter(|m| m.0 == b'D')
        .collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1.ends_with(b"b"), "{:?}", rows[0].1);
}

/// Found attacking the relay's bounds: a denied Query while nothing runs
/// is answered by the router itself (53400, ReadyForQuery) and never
/// reaches PostgreSQL, so nothing held the client back: a client sending
/// empty Queries over its tenant's qps_limit and reading nothing made the
/// router buffer about 150 bytes of answer for every 6 bytes it sent,
/// until the next token let a Query through (its answer then waited
/// behind the others and PostgreSQL held the client back): 8 MB in that
/// second here, a debug build on a loaded machine, and as much as the
/// router can answer in a second. The router now stops reading a client it
/// owes its high-water mark (what it takes then waits in the sockets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_answers_to_a_client_that_reads_nothing_stay_bounded() {
    let r = pooled("size = 2\ntimeout_ms = 20000");
    let mut c = Raw::connect(r.port, "rt_rm2.rm_qps", DB)
        .await
        .expect("login");
    let before = r.memory_kib("VmHWM");
    // 4 MB of empty Queries (700,000): about 100 MB of answers.
    let one = raw::query("");
    let all: BytesMut = one.iter().copied().cycle().take(4 << 20).collect();
    // Write until all are sent or the router and the sockets between take
    // no more (a write that makes no progress in 3 s).
    let mut sent = 0;
    while sent < all.len() {
        match timeout(Duration::from_secs(3), c.s.write(&all[sent..])).await {
            Ok(Ok(n)) => sent += n,
            Ok(Err(e)) => panic!("write: {e}"),
            Err(_) => break,
        }
    }
    let peak = r.memory_kib("VmHWM");
    eprintln!(
        "{sent} of {} bytes of Queries taken; router peak RSS {before} -> {peak} KiB",
        all.len()
    );
    assert!(
        peak < before + 6 * 1024,
        "router peak RSS grew from {before} to {peak} KiB"
    );

    // The control: a client of another tenant is served meanwhile.
    let calm = connect(&r.url("rt_rm1.rm_calm")).await.expect("calm");
    assert_eq!(first_value(&calm, "SELECT 41 + 1").await, "42");

    // The client reads now: its Queries are answered in order, refused
    // over the limit (the first may have had the token).
    let (mut refused, mut ready) = (0, 0);
    while ready < 100 {
        match c.recv().await {
            (b'Z', _) => ready += 1,
            (b'E', body) => {
                let (code, msg) = raw::error_of(&body);
                assert_eq!(code, "53400", "{msg}");
                assert!(msg.contains("qps_limit"), "{msg}");
                refused += 1;
            }
            (b'I', _) => {}
            (tag, body) => panic!("{} {body:?}", tag as char),
        }
    }
    assert!(refused >= 99, "{refused} of 100 refused");
}
