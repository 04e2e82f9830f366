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

/// Unknown and malformed tenant names get the same SCRAM exchange as a
/// real tenant and end in the same 28P01 as a wrong password (a mock
/// exchange: nothing tells an unknown tenant apart), before any backend.
#[tokio::test]
async fn unknown_and_malicious_tenants_look_like_a_wrong_password_before_any_backend() {
    // A role of this test's own: the backend counts are not mixed with
    // the other tests of this file, which run at the same time.
    admin_sql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_badin') THEN \
           CREATE ROLE rt_badin LOGIN PASSWORD 'rt-secret'; END IF; END $$; \
         SELECT tenant.create_app_role('rt_badin'); GRANT SELECT ON notes TO rt_badin",
    );
    let r = Router::start();
    let before = common::wire::backends("rt_badin");
    // Control: PostgreSQL's own answer to a wrong password for a real tenant.
    let e = connect(&r.url("rt_badin.acme").replace(PASSWORD, "wrong"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "{e}");
    let e = connect(&r.url("rt_badin.nope")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "{e}");
    // In PostgreSQL's words, which name the login role (as for acme above).
    assert_eq!(
        e.as_db_error().map(|d| d.message()),
        Some("password authentication failed for user \"rt_badin\"")
    );
    // Names that cannot be tenant ids, or no tenant at all: refused by
    // identification (28000), which says nothing about the catalog.
    for user in [
        "rt_badin.acme'--",
        "rt_badin.ACME",
        "rt_badin",
        "rt_badin.a;b",
    ] {
        let e = connect(&r.url(user)).await.unwrap_err();
        assert_eq!(sqlstate(&e), "28000", "{user}: {e}");
    }
    let after = common::wire::backends("rt_badin");
    assert_eq!(before, after, "no backend was opened for refused tenants");
    // A flood of random tenant names: each refused, the router stays up.
    for i in 0..200 {
        let user = format!("rt_app.flood{i}");
        let (code, msg) = scram_refusal(r.port, &user).await;
        assert_eq!(code, "28P01", "{msg}");
    }
    let ok = connect(&r.url("rt_app.acme")).await.unwrap();
    assert_eq!(visible_notes(&ok).await, 3);
}

#[tokio::test]
async fn disabled_tenant_is_refused_and_enabled_again() {
    let r = Router::start();
    admin_sql("SELECT tenant.disable_tenant('initech')");
    // No wait: this router has not read initech yet. A disabled tenant
    // looks like a wrong password (nothing to learn about it), in
    // PostgreSQL's words for a relayed login, which name the login role.
    let e = connect(&r.url("rt_app.initech")).await.unwrap_err();
    admin_sql("SELECT tenant.enable_tenant('initech')");
    assert_eq!(sqlstate(&e), "28P01", "{e}");
    assert_eq!(
        e.as_db_error().unwrap().message(),
        "password authentication failed for user \"rt_app\""
    );
    // The row kept says disabled until the notification arrives.
    router_sees(&r, "initech", |t| t["enabled"] == true).await;
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

/// A password message is capped before it is read: a client announcing
/// 100 MB is refused at once.
#[tokio::test]
async fn oversized_password_message_is_refused_before_it_is_read() {
    let r = Router::start();
    // Control: the right password in a normal message.
    connect(&r.url("rt_password.acme"))
        .await
        .expect("cleartext password");
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(&startup(&[("user", "rt_password.acme"), ("database", DB)]))
        .await
        .unwrap();
    let mut first = [0u8; 9];
    s.read_exact(&mut first).await.unwrap();
    assert_eq!(
        first, *b"R\0\0\0\x08\0\0\0\x03",
        "cleartext password requested"
    );
    let mut p = vec![b'p'];
    p.extend(100_000_000u32.to_be_bytes());
    p.extend(vec![b'x'; 1000]);
    s.write_all(&p).await.unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let (code, msg) = fatal(&out);
    assert_eq!(code, "08P01");
    assert!(msg.contains("exceeds the limit of 16384 bytes"), "{msg}");
}

#[tokio::test]
async fn max_client_connections_refuses_with_a_clear_error() {
    let r = Router::start_with("max_client_connections = 3");
    let open = |n: f64| {
        let r = &r;
        async move {
            eventually(Duration::from_secs(5), || async {
                sample(r, "tenant_router_client_connections").await == n
            })
            .await
        }
    };
    // Three clients that never finish their startup hold every place. They
    // come one at a time, each once the last holds its place: the harness's
    // readiness probe may still be waiting in the listen queue, and it would
    // take a place for a moment when accepted.
    let mut idle = Vec::new();
    for n in 1..=3 {
        idle.push(TcpStream::connect(("127.0.0.1", r.port)).await.unwrap());
        assert!(open(n as f64).await, "{n} idle clients hold their places");
    }
    assert_eq!(
        sample(&r, "tenant_router_client_connections_refused_total").await,
        0.0,
        "no idle client was refused"
    );
    let e = connect(&r.url("rt_app.acme")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    let msg = e.as_db_error().map(|d| d.message().to_string());
    assert_eq!(
        msg.as_deref(),
        Some("too many client connections: tenant-router's max_client_connections is 3")
    );
    // One leaves: the next client gets its place.
    drop(idle.pop());
    let mut ok = None;
    for _ in 0..50 {
        if let Ok(c) = connect(&r.url("rt_app.acme")).await {
            ok = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = ok.expect("accepted once a place is free");
    assert_eq!(visible_notes(&c).await, 3);
}

/// Unknown names are looked up in batches: a flood of distinct names costs
/// fewer catalog queries than names, the same names again cost none, and a
/// known tenant connects meanwhile.
#[tokio::test]
async fn unknown_tenant_lookups_are_coalesced() {
    let r = Router::start_catalog(
        "",
        &CatalogSetup {
            negative_ttl_ms: 60_000,
            ..CatalogSetup::default()
        },
    );
    let queries = || sample(&r, "tenant_router_catalog_queries_total");
    let names: Vec<String> = (0..300)
        .map(|i| format!("rt_app.nobody-{i}-{}", r.port))
        .collect();
    let flood = |names: Vec<String>| {
        let port = r.port;
        async move {
            let tasks: Vec<_> = names
                .into_iter()
                .map(|n| tokio::spawn(async move { scram_refusal(port, &n).await.0 }))
                .collect();
            for t in tasks {
                assert_eq!(t.await.unwrap(), "28P01");
            }
        }
    };
    let before = queries().await;
    let control = tokio::spawn({
        let url = r.url("rt_app.acme");
        async move { visible_notes(&connect(&url).await.unwrap()).await }
    });
    flood(names.clone()).await;
    assert_eq!(control.await.unwrap(), 3);
    let first = queries().await - before;
    println!("300 unknown names: {first} catalog queries");
    assert!(first < 100.0, "{first} queries for 300 names");
    let before = queries().await;
    flood(names).await;
    assert_eq!(queries().await - before, 0.0, "known to be unknown");
}
