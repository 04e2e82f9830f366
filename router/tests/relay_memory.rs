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

const ROLES: [&str; 1] = ["rt_rm1"];

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

/// The router's peak resident memory so far (VmHWM), in KiB.
fn peak_kib(r: &Router) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", r.pid())).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
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

    let before = peak_kib(&r);
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
    let after = peak_kib(&r);
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
