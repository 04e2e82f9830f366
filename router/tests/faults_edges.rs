//! The router under faults at its edges (common/faults.rs): the catalog
//! connection cut while a login waits on it, or slow; upstream TLS cut in
//! the middle of its handshake; and clients that vanish or go half-open
//! in the middle of a message, which must not keep a pooled backend beyond
//! the router's bounds.
mod common;
use common::faults::*;
use common::*;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

const POOLED: &str = "connect_timeout_ms = 1000\nstartup_timeout_ms = 5000\n\
    [auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 1\ntimeout_ms = 2000\n";

const ROLES: [&str; 7] = [
    "rt_e1", "rt_e2", "rt_e3", "rt_e4", "rt_e5", "rt_e6", "rt_e7",
];

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        exclusive("faults_edges");
        scram_app_roles(&ROLES);
        tenants(&["e_sess"], "pool_mode => 'session', max_connections => 0");
        tenants(
            &["e_tx"],
            "pool_mode => 'transaction', max_connections => 0, \
             idle_in_transaction_timeout_ms => 1000",
        );
        tenants(
            &["e_idle"],
            "pool_mode => 'session', max_connections => 0, client_idle_timeout_ms => 1000",
        );
        for t in ["e_cat1", "e_cat2", "e_cat3"] {
            tenants(&[t], "max_connections => 0");
        }
    });
}

fn pool(role: &str) -> String {
    format!("{role}@{DB}")
}

/// Connection string for `user` at `port` (a proxy in front of a router).
fn url_at(port: u16, user: &str) -> String {
    format!("host=127.0.0.1 port={port} user={user} password={PASSWORD} dbname={DB}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_waiting_on_a_catalog_cut_under_it_is_refused_57p03_then_recovers() {
    fixtures();
    let cp = FaultProxy::to_postgres().await;
    let r = router_with_catalog_via(&cp, "connect_timeout_ms = 1000\n");
    wait_ready(&r, 200, Duration::from_secs(10)).await;
    cp.stall();
    let before = cp.received(Dir::Up);
    let url = r.url("rt_app.e_cat1");
    let login = tokio::spawn(async move {
        let start = Instant::now();
        (connect(&url).await.map(|_| ()), start.elapsed())
    });
    // The login's catalog query reached the (stalled) catalog connection.
    assert!(
        eventually(Duration::from_secs(5), || async {
            cp.received(Dir::Up) > before
        })
        .await,
        "the login asked the catalog"
    );
    assert!(!login.is_finished(), "the login waits on the catalog");
    cp.cut_now();
    let (res, took) = timeout(Duration::from_secs(10), login)
        .await
        .expect("the login is answered")
        .expect("task");
    let e = res.expect_err("no catalog, no login");
    assert_eq!(sqlstate(&e), "57P03", "{e:?}");
    eprintln!("login refused {took:?} after it started");
    let body = wait_ready(&r, 503, Duration::from_secs(5)).await;
    assert_ne!(body["catalog"], "ok", "{body}");
    cp.lift();
    wait_ready(&r, 200, Duration::from_secs(15)).await;
    let c = connect(&r.url("rt_app.e_cat1"))
        .await
        .expect("a fresh login");
    assert_eq!(
        first_value(&c, "SELECT tenant.current_tenant_id()").await,
        "e_cat1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_catalog_slows_the_first_login_of_a_tenant_only() {
    fixtures();
    let cp = FaultProxy::to_postgres().await;
    let r = router_with_catalog_via(&cp, "connect_timeout_ms = 3000\n");
    wait_ready(&r, 200, Duration::from_secs(10)).await;
    let delay = Duration::from_millis(800);
    cp.latency(Dir::Down, delay);
    let start = Instant::now();
    let c = connect(&r.url("rt_app.e_cat2"))
        .await
        .expect("a slow login");
    let first = start.elapsed();
    assert!(first >= delay, "{first:?}");
    assert_eq!(
        first_value(&c, "SELECT tenant.current_tenant_id()").await,
        "e_cat2"
    );
    // The row is kept: the next login asks the catalog nothing.
    let asked = cp.received(Dir::Up);
    let start = Instant::now();
    let c2 = connect(&r.url("rt_app.e_cat2"))
        .await
        .expect("a second login");
    let second = start.elapsed();
    assert_eq!(first_value(&c2, "SELECT 1").await, "1");
    assert_eq!(cp.received(Dir::Up), asked, "no catalog query");
    eprintln!("slow catalog: first login {first:?}, second {second:?}");
    // 800 ms is within /ready's connect_timeout_ms (3 s).
    wait_ready(&r, 200, Duration::from_secs(5)).await;
    cp.lift();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cut_mid_message_in_a_transaction_frees_its_backend() {
    fixtures();
    let r = router_via_direct(POOLED);
    let cp = FaultProxy::start(([127, 0, 0, 1], r.port).into()).await;
    let c = connect(&url_at(cp.port(), "rt_e1.e_tx"))
        .await
        .expect("login");
    c.simple_query("BEGIN").await.expect("begin");
    let pid = backend_pid(&c).await;
    cp.cut_after(Dir::Up, 3);
    let e = timeout(Duration::from_secs(5), c.simple_query("SELECT 'never'"))
        .await
        .expect("answered")
        .expect_err("cut");
    assert!(c.is_closed(), "{e:?}");
    wait_backend_gone(pid).await;
    wait_slots_free(&r, "e_tx").await;
    wait_pool_settled(&r, &pool("rt_e1"), "rt_e1", 1).await;
    cp.lift();
    let fresh = connect(&url_at(cp.port(), "rt_e1.e_tx"))
        .await
        .expect("again");
    assert_eq!(first_value(&fresh, "SELECT 5").await, "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_client_in_a_transaction_holds_its_backend_only_until_idle_in_transaction_timeout(
) {
    fixtures();
    let r = router_via_direct(POOLED);
    let cp = FaultProxy::start(([127, 0, 0, 1], r.port).into()).await;
    let c = connect(&url_at(cp.port(), "rt_e2.e_tx"))
        .await
        .expect("login");
    c.simple_query("BEGIN").await.expect("begin");
    let pid = backend_pid(&c).await;
    cp.stall();
    let q = tokio::spawn(async move { c.simple_query("SELECT 'held'").await.map(|_| ()) });
    // The tenant's idle_in_transaction_timeout_ms (1 s) ends the backend.
    wait_backend_gone(pid).await;
    wait_pool_settled(&r, &pool("rt_e2"), "rt_e2", 1).await;
    // The pool's one backend serves the next client.
    let other = connect(&r.url("rt_e2.e_tx")).await.expect("another client");
    assert_eq!(first_value(&other, "SELECT 6").await, "6");
    cp.lift();
    let res = timeout(Duration::from_secs(5), q)
        .await
        .expect("answered once lifted")
        .expect("task");
    assert!(res.is_err(), "its transaction was ended: {res:?}");
}

/// Half of a Query's header, then nothing (the socket stays open), sent
/// once the client is at rest (a transaction-pooled one holds no backend).
async fn half_a_message(r: &Router, user: &str, transaction_pooled: bool) -> raw::Raw {
    part_of_a_message(r, user, transaction_pooled, &[b'Q', 0, 0]).await
}

/// `part` of a message, sent once the client is at rest.
async fn part_of_a_message(
    r: &Router,
    user: &str,
    transaction_pooled: bool,
    part: &[u8],
) -> raw::Raw {
    let mut c = raw::Raw::connect(r.port, user, DB)
        .await
        .expect("raw login");
    let answer = c.query("SELECT 1").await;
    assert!(raw::errors(&answer).is_empty(), "{answer:?}");
    let role = user.split('.').next().unwrap_or(user);
    if transaction_pooled {
        let rested = eventually(Duration::from_secs(5), || async {
            pool_of(r, &pool(role)).await["active"] == 0
        })
        .await;
        assert!(rested, "{}", pool_of(r, &pool(role)).await);
    }
    c.s.write_all(part).await.expect("send");
    c
}

/// Found by this test: the first bytes of a message made a
/// transaction-pooled client take a backend, which it then held for as
/// long as it kept the rest back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_message_at_rest_holds_no_pooled_backend_in_transaction_mode() {
    fixtures();
    let r = router_via_direct(POOLED);
    let _half = half_a_message(&r, "rt_e3.e_tx", true).await;
    // The pool has one backend: another client is served.
    let other = connect(&r.url("rt_e3.e_tx")).await.expect("another client");
    for i in 0..3 {
        assert_eq!(
            first_value(&other, &format!("SELECT {i}")).await,
            i.to_string()
        );
    }
    wait_pool_settled(&r, &pool("rt_e3"), "rt_e3", 1).await;
}

/// Found in review: the first bytes of a message larger than 64 KiB (its
/// header) made a transaction-pooled client take a backend at once; it
/// now waits for 64 KiB of it, as the docs say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_of_a_large_message_holds_no_pooled_backend_in_transaction_mode() {
    fixtures();
    let r = router_via_direct(POOLED);
    let mut part = vec![b'Q'];
    part.extend((200 * 1024u32 + 4).to_be_bytes());
    part.extend(std::iter::repeat_n(b' ', 1000));
    let _head = part_of_a_message(&r, "rt_e6.e_tx", true, &part).await;
    let other = connect(&r.url("rt_e6.e_tx")).await.expect("another client");
    for i in 0..3 {
        assert_eq!(
            first_value(&other, &format!("SELECT {i}")).await,
            i.to_string()
        );
    }
    wait_pool_settled(&r, &pool("rt_e6"), "rt_e6", 1).await;
}

/// A header no message can have (a length of 4 GiB) is refused at once,
/// not waited on as the head of a large message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_length_at_rest_is_refused_at_once() {
    fixtures();
    let r = router_via_direct(POOLED);
    let mut c = part_of_a_message(&r, "rt_e7.e_tx", true, b"Q\xff\xff\xff\xff").await;
    let answer = timeout(Duration::from_secs(5), c.try_recv())
        .await
        .expect("refused within 5 s");
    let (tag, body) = answer.expect("an error before the close");
    assert_eq!(tag, b'E');
    let (code, msg) = raw::error_of(&body);
    assert_eq!(code, "08P01", "{msg}");
    wait_pool_settled(&r, &pool("rt_e7"), "rt_e7", 1).await;
}

/// Found by this test: a client that stopped in the middle of a message
/// was never idle to the router, so client_idle_timeout_ms never closed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_message_in_session_mode_is_closed_by_client_idle_timeout() {
    fixtures();
    let r = router_via_direct(POOLED);
    let mut half = half_a_message(&r, "rt_e4.e_idle", false).await;
    let start = Instant::now();
    let answer = timeout(Duration::from_secs(10), half.try_recv())
        .await
        .expect("the router closes a client idle for 1 s");
    eprintln!("half a message: {answer:?} after {:?}", start.elapsed());
    let (tag, body) = answer.expect("a FATAL before the close");
    assert_eq!(tag, b'E');
    let (code, msg) = raw::error_of(&body);
    assert_eq!(code, "57P05", "{msg}");
    assert!(msg.contains("middle of a message"), "{msg}");
    wait_slots_free(&r, "e_idle").await;
    wait_pool_settled(&r, &pool("rt_e4"), "rt_e4", 1).await;
}

/// Found in review: a client that stopped in the middle of a message
/// larger than 64 KiB, which the relay streams on, was busy to the router
/// (and PostgreSQL waits for the rest without a timeout): it held its
/// backend for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_streamed_message_is_closed_by_client_idle_timeout() {
    fixtures();
    let r = router_via_direct(POOLED);
    let mut c = raw::Raw::connect(r.port, "rt_e5.e_idle", DB)
        .await
        .expect("raw login");
    assert!(raw::errors(&c.query("SELECT 1").await).is_empty());
    let pid = backend_pid_of(&mut c).await;
    // A 200 KiB Query, of which 100 KiB (past the 64 KiB held whole).
    let mut part = vec![b'Q'];
    part.extend((200 * 1024u32 + 4).to_be_bytes());
    part.extend(std::iter::repeat_n(b' ', 100 * 1024));
    c.s.write_all(&part).await.expect("send");
    let answer = timeout(Duration::from_secs(10), c.try_recv())
        .await
        .expect("the router closes a client idle for 1 s");
    let (tag, body) = answer.expect("a FATAL before the close");
    assert_eq!(tag, b'E');
    let (code, msg) = raw::error_of(&body);
    assert_eq!(code, "57P05", "{msg}");
    assert!(msg.contains("middle of a message"), "{msg}");
    wait_backend_gone(pid).await;
    wait_slots_free(&r, "e_idle").await;
    wait_pool_settled(&r, &pool("rt_e5"), "rt_e5", 1).await;
    fresh_client_served_at(&r, "rt_e5.e_idle").await;
}

async fn backend_pid_of(c: &mut raw::Raw) -> i32 {
    let rows = c.query("SELECT pg_backend_pid()").await;
    let (_, row) = rows.iter().find(|(t, _)| *t == b'D').expect("a row");
    // DataRow: field count (2), length (4), the text.
    std::str::from_utf8(&row[6..])
        .expect("utf8")
        .parse()
        .expect("pid")
}

async fn fresh_client_served_at(r: &Router, user: &str) {
    let c = connect(&r.url(user)).await.expect("a fresh login");
    assert_eq!(first_value(&c, "SELECT 8").await, "8");
}

/// A router straight to the cluster (for the client-side tests).
fn router_via_direct(extra: &str) -> Router {
    Router::start_with(extra)
}

/// TLS on in the test cluster (a fresh certificate), off again on drop.
struct ClusterTls;

impl ClusterTls {
    async fn on() -> ClusterTls {
        let c = cluster();
        let (cert, key, _, _) = wire::certificate();
        let cluster_dir = std::path::Path::new(&c.key_file)
            .parent()
            .expect("cluster dir");
        let dir = cluster_dir.join("faults-tls");
        std::fs::create_dir_all(&dir).expect("dir");
        let (pc, pk) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::copy(cert, &pc).expect("cert");
        std::fs::copy(key, &pk).expect("key");
        for path in [&dir, &pc, &pk] {
            let ok = std::process::Command::new("chown")
                .arg("postgres:postgres")
                .arg(path)
                .status()
                .expect("chown")
                .success();
            assert!(ok, "chown {}", path.display());
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pk, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        admin_sql(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            pc.display()
        ));
        admin_sql(&format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            pk.display()
        ));
        admin_sql("ALTER SYSTEM SET ssl = on");
        admin_sql("SELECT pg_reload_conf()");
        let on = eventually(Duration::from_secs(10), || async {
            admin_sql("SHOW ssl").trim() == "on"
        })
        .await;
        assert!(on, "PostgreSQL TLS did not turn on");
        ClusterTls
    }
}

impl Drop for ClusterTls {
    fn drop(&mut self) {
        admin_sql("ALTER SYSTEM RESET ssl");
        admin_sql("SELECT pg_reload_conf()");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_cut_mid_handshake_fails_the_login_clearly_then_recovers() {
    fixtures();
    let _tls = ClusterTls::on().await;
    let p = FaultProxy::to_postgres().await;
    let r = router_via(
        &p,
        "connect_timeout_ms = 1000\n[tls]\nupstream_tls = \"require\"\n",
    );
    // Control: the login goes over TLS through the proxy.
    {
        let url = format!("{} application_name=faults_tls", r.url("rt_app.e_sess"));
        let c = connect(&url).await.expect("a TLS login");
        assert_eq!(first_value(&c, "SELECT 1").await, "1");
        let tls = admin_sql(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'faults_tls'",
        );
        assert_eq!(tls.trim(), "t", "the backend is on TLS");
    }
    wait_slots_free(&r, "e_sess").await;
    // PostgreSQL's 'S', then part of its ServerHello.
    p.cut_after(Dir::Down, 1 + 60);
    let start = Instant::now();
    let e = timeout(Duration::from_secs(5), connect(&r.url("rt_app.e_sess")))
        .await
        .expect("answered within 5 s")
        .expect_err("no TLS, no login");
    let took = start.elapsed();
    eprintln!("TLS cut mid-handshake: {e:?} after {took:?}");
    assert_eq!(sqlstate(&e), "08006", "{e:?}");
    assert!(db_message(&e).contains("TLS"), "{e:?}");
    wait_slots_free(&r, "e_sess").await;
    p.lift();
    let c = connect(&r.url("rt_app.e_sess"))
        .await
        .expect("a fresh TLS login");
    assert_eq!(first_value(&c, "SELECT 7").await, "7");
}
