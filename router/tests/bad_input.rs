//! Hostile and malformed input: each gets its error or timeout, and a
//! well-behaved client connected at the same time is unaffected.
mod common;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send raw bytes as a client and return what the router answered
/// (everything until it closed the connection).
async fn raw(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    out
}

/// The SQLSTATE and message of the ErrorResponse in `reply`.
fn fatal(reply: &[u8]) -> (String, String) {
    assert_eq!(
        reply.first(),
        Some(&b'E'),
        "expected an ErrorResponse, got {reply:?}"
    );
    let body = bytes::Bytes::copy_from_slice(&reply[5..]);
    tenant_router::protocol::parse_error_fields(body)
}

fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let p: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tenant_router::protocol::startup_message(&p).to_vec()
}

#[tokio::test]
async fn malformed_startup_packets_get_08p01() {
    let r = Router::start();
    let well_behaved = connect(&r.url("rt_app.acme")).await.unwrap();
    let mut huge = 20_000u32.to_be_bytes().to_vec();
    huge.extend(vec![0u8; 64]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized", huge),
        ("length below 8", vec![0, 0, 0, 4]),
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("unterminated parameters", {
            let mut v = startup(&[("user", "rt_app.acme")]);
            v.truncate(v.len() - 1);
            let l = v.len() as u32;
            v[..4].copy_from_slice(&l.to_be_bytes());
            v
        }),
    ];
    for (name, bytes) in cases {
        let reply = raw(r.port, &bytes).await;
        let (code, msg) = fatal(&reply);
        assert_eq!(code, "08P01", "{name}: {msg}");
    }
    assert_eq!(visible_notes(&well_behaved).await, 3);
}

#[tokio::test]
async fn truncated_startup_packet_times_out() {
    let r = Router::start_with("startup_timeout_ms = 500");
    let v = startup(&[("user", "rt_app.acme")]);
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(&v[..v.len() - 3]).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let (code, msg) = fatal(&out);
    assert_eq!(code, "08006", "{msg}");
    assert!(msg.contains("within 500 ms"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn silent_client_times_out_without_harming_others() {
    let r = Router::start_with("startup_timeout_ms = 500");
    let silent = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    let well_behaved = connect(&r.url("rt_app.globex")).await.unwrap();
    assert_eq!(visible_notes(&well_behaved).await, 3);
    let mut silent = silent;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fatal(&out).0, "08006");
    assert_eq!(visible_notes(&well_behaved).await, 3);
}

#[tokio::test]
async fn wrong_protocol_version_is_refused() {
    let r = Router::start();
    let mut v = startup(&[("user", "rt_app.acme")]);
    v[4..8].copy_from_slice(&0x0002_0000u32.to_be_bytes());
    let (code, msg) = fatal(&raw(r.port, &v).await);
    assert_eq!(code, "0A000");
    assert!(msg.contains("unsupported frontend protocol 2.0"), "{msg}");
}

#[tokio::test]
async fn ssl_and_gss_requests_are_answered_n() {
    let r = Router::start();
    for code in [80_877_103u32, 80_877_104] {
        let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
        let mut req = 8u32.to_be_bytes().to_vec();
        req.extend(code.to_be_bytes());
        s.write_all(&req).await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"N");
    }
    // libpq with sslmode=prefer falls back to clear text.
    let out = std::process::Command::new("psql")
        .args(["-X", "-tA", "-c", "SELECT tenant.current_tenant_id()"])
        .arg(format!("{} sslmode=prefer", r.url("rt_app.acme")))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "acme");
}

#[tokio::test]
async fn unknown_and_malicious_tenants_get_28000_before_any_backend() {
    let r = Router::start();
    let before: i64 = admin_sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'rt_app'")
        .trim()
        .parse()
        .unwrap();
    for user in [
        "rt_app.nope",
        "rt_app.acme'--",
        "rt_app.ACME",
        "rt_app",
        "rt_app.a;b",
    ] {
        let e = connect(&r.url(user)).await.unwrap_err();
        assert_eq!(sqlstate(&e), "28000", "{user}: {e}");
    }
    let after: i64 = admin_sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'rt_app'")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(before, after, "no backend was opened for refused tenants");
    // A flood of random tenant names: each refused, the router stays up.
    for i in 0..200 {
        let e = connect(&r.url(&format!("rt_app.flood{i}")))
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "28000");
    }
    let ok = connect(&r.url("rt_app.acme")).await.unwrap();
    assert_eq!(visible_notes(&ok).await, 3);
}

#[tokio::test]
async fn disabled_tenant_is_refused_and_enabled_again() {
    let r = Router::start();
    admin_sql("SELECT tenant.disable_tenant('initech')");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = connect(&r.url("rt_app.initech")).await.unwrap_err();
    admin_sql("SELECT tenant.enable_tenant('initech')");
    assert_eq!(sqlstate(&e), "28000", "{e}");
    assert!(e.as_db_error().unwrap().message().contains("disabled"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    connect(&r.url("rt_app.initech"))
        .await
        .expect("enabled again");
}

#[tokio::test]
async fn abrupt_client_disconnect_frees_the_backend() {
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    let pid = backend_pid(&c).await;
    drop(c);
    wait_backend_gone(pid).await;
}
