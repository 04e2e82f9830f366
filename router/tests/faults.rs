//! The router under upstream faults (common/faults.rs puts a fault proxy
//! between the router and PostgreSQL): a connection cut in the middle of a
//! message, reset, stalled (half-open) or slow, in session and in
//! transaction pooling. Each test checks that the client gets a clear error
//! within a bound, that no tenant slot, pooled backend or server backend
//! is left behind, that `/ready` shows the fault where it should, and that
//! a fresh client succeeds once the fault is lifted.
mod common;
use common::faults::*;
use common::*;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// Pooled (verify mode), with short bounds so that faults show quickly.
const POOLED: &str = "connect_timeout_ms = 1000\nstartup_timeout_ms = 5000\n\
    [auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 4\ntimeout_ms = 2000\n";

const ROLES: [&str; 9] = [
    "rt_f1", "rt_f2", "rt_f3", "rt_f4", "rt_f5", "rt_f6", "rt_f7", "rt_f8", "rt_f9",
];

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        exclusive("faults");
        scram_app_roles(&ROLES);
        tenants(&["f_sess"], "pool_mode => 'session', max_connections => 0");
        tenants(
            &["f_tx"],
            "pool_mode => 'transaction', max_connections => 0",
        );
        tenants(
            &["f_slow"],
            "pool_mode => 'transaction', max_connections => 0, max_query_ms => 500",
        );
        // Long enough for a loaded machine to fill every buffer between
        // PostgreSQL and a client that reads nothing before the limit.
        tenants(
            &["f_unread"],
            "pool_mode => 'transaction', max_connections => 0, max_query_ms => 3000",
        );
    });
}

fn router(p: &FaultProxy) -> Router {
    fixtures();
    router_via(p, POOLED)
}

fn pool(role: &str) -> String {
    format!("{role}@{DB}")
}

/// A query that fails, within `within`: its error.
async fn fails_within(
    c: &tokio_postgres::Client,
    sql: &str,
    within: Duration,
) -> tokio_postgres::Error {
    let start = Instant::now();
    let e = timeout(within, c.simple_query(sql))
        .await
        .unwrap_or_else(|_| panic!("no answer to {sql} within {within:?}"))
        .expect_err("the fault fails the statement");
    assert!(start.elapsed() < within);
    e
}

/// The router's FATAL for a server connection lost under a client: 08006
/// naming the server, or (once the client read that FATAL) a closed
/// connection.
fn assert_server_lost(e: &tokio_postgres::Error) {
    assert_eq!(sqlstate(e), "08006", "{e:?}");
    let msg = db_message(e);
    assert!(msg.contains("server"), "{msg}");
}

/// A fresh client of `user` is served once the fault is lifted.
async fn fresh_client_served(r: &Router, user: &str) {
    let c = connect(&r.url(user)).await.expect("a fresh login");
    assert_eq!(first_value(&c, "SELECT 41 + 1").await, "42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_pooling_upstream_cut_mid_result() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    let c = connect(&r.url("rt_f1.f_sess")).await.expect("login");
    assert_eq!(first_value(&c, "SELECT 1").await, "1");
    // Inside the DataRow of a 20 kB result, which the router holds whole
    // (up to 64 kB): the client never sees half of it, and gets the
    // router's FATAL.
    p.cut_after(Dir::Down, 200);
    let e = fails_within(&c, "SELECT repeat('x', 20000)", Duration::from_secs(5)).await;
    assert_server_lost(&e);
    p.lift();
    wait_slots_free(&r, "f_sess").await;
    wait_pool_settled(&r, &pool("rt_f1"), "rt_f1", 4).await;
    // A 100 kB DataRow is streamed through as it arrives: cut inside it,
    // the client has half a message and then its connection closes (no
    // FATAL can follow half a message), and nothing is left behind.
    let c = connect(&r.url("rt_f1.f_sess")).await.expect("login");
    assert_eq!(first_value(&c, "SELECT 1").await, "1");
    p.cut_after(Dir::Down, 2000);
    let e = fails_within(&c, "SELECT repeat('x', 100000)", Duration::from_secs(5)).await;
    assert!(c.is_closed(), "{e:?}");
    p.lift();
    wait_slots_free(&r, "f_sess").await;
    wait_pool_settled(&r, &pool("rt_f1"), "rt_f1", 4).await;
    fresh_client_served(&r, "rt_f1.f_sess").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_pooling_upstream_reset_under_an_idle_client() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    let c = connect(&r.url("rt_f2.f_sess")).await.expect("login");
    assert_eq!(first_value(&c, "SELECT 1").await, "1");
    // A raw client too, to read what the router says unasked.
    let mut idle = common::raw::Raw::connect(r.port, "rt_f2.f_sess", DB)
        .await
        .expect("raw login");
    assert!(common::raw::errors(&idle.query("SELECT 1").await).is_empty());
    p.reset();
    assert!(p.wait_open_at_most(0, Duration::from_secs(5)).await);
    p.lift();
    // The client holds its backend (session mode): the backend is gone
    // (reset: the router's read fails), so is the session, with the
    // router's FATAL (review fix: a reset, unlike a close, got no word).
    let said = timeout(Duration::from_secs(5), idle.try_recv())
        .await
        .expect("told within 5 s");
    let (tag, body) = said.expect("a FATAL before the close");
    assert_eq!(tag, b'E');
    let (code, msg) = common::raw::error_of(&body);
    assert_eq!(code, "08006", "{msg}");
    assert!(msg.contains("connection to the server was lost"), "{msg}");
    let e = fails_within(&c, "SELECT 1", Duration::from_secs(5)).await;
    assert!(sqlstate(&e) == "08006" || c.is_closed(), "{e:?}");
    wait_slots_free(&r, "f_sess").await;
    wait_pool_settled(&r, &pool("rt_f2"), "rt_f2", 4).await;
    fresh_client_served(&r, "rt_f2.f_sess").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_pooling_replaces_backends_reset_between_transactions() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    let c = connect(&r.url("rt_f3.f_tx")).await.expect("login");
    assert_eq!(first_value(&c, "SELECT 1").await, "1");
    let before = p.accepted();
    p.reset();
    assert!(p.wait_open_at_most(0, Duration::from_secs(5)).await);
    p.lift();
    // Between transactions the client holds no backend: its next one gets
    // a new backend, without an error.
    for i in 0..5 {
        assert_eq!(first_value(&c, &format!("SELECT {i}")).await, i.to_string());
    }
    assert!(p.accepted() > before, "a new backend was opened");
    drop(c);
    wait_slots_free(&r, "f_tx").await;
    wait_pool_settled(&r, &pool("rt_f3"), "rt_f3", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_pooling_upstream_cut_mid_transaction() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    let c = connect(&r.url("rt_f4.f_tx")).await.expect("login");
    c.simple_query("BEGIN").await.expect("begin");
    assert_eq!(first_value(&c, "SELECT 1").await, "1");
    p.cut_after(Dir::Down, 200);
    let e = fails_within(&c, "SELECT repeat('y', 20000)", Duration::from_secs(5)).await;
    assert_server_lost(&e);
    p.lift();
    wait_slots_free(&r, "f_tx").await;
    wait_pool_settled(&r, &pool("rt_f4"), "rt_f4", 4).await;
    fresh_client_served(&r, "rt_f4.f_tx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_while_the_upstream_resets_fails_clearly_then_recovers() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    wait_ready(&r, 200, Duration::from_secs(5)).await;
    p.reset();
    for user in ["rt_f5.f_sess", "rt_f5.f_tx"] {
        let start = Instant::now();
        let e = timeout(Duration::from_secs(5), connect(&r.url(user)))
            .await
            .expect("an answer within 5 s")
            .expect_err("no server");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(sqlstate(&e), "08006", "{user}: {e:?}");
    }
    let body = wait_ready(&r, 503, Duration::from_secs(5)).await;
    assert_ne!(body["upstream"], "ok", "{body}");
    assert_eq!(body["catalog"], "ok", "{body}");
    p.lift();
    wait_ready(&r, 200, Duration::from_secs(5)).await;
    wait_slots_free(&r, "f_sess").await;
    wait_slots_free(&r, "f_tx").await;
    fresh_client_served(&r, "rt_f5.f_sess").await;
    fresh_client_served(&r, "rt_f5.f_tx").await;
    wait_pool_settled(&r, &pool("rt_f5"), "rt_f5", 4).await;
}

/// Found by this test: a relayed login (the default, auth.login = "relay")
/// whose server connection was reset or cut during the login saw its
/// connection closed without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_login_while_the_upstream_resets_or_cuts_gets_08006() {
    fixtures();
    let p = FaultProxy::to_postgres().await;
    let r = router_via(
        &p,
        "connect_timeout_ms = 1000
startup_timeout_ms = 5000
",
    );
    for fault in ["reset", "cut"] {
        match fault {
            "reset" => p.reset(),
            // Inside PostgreSQL's first answer (its SCRAM request).
            _ => p.cut_after(Dir::Down, 10),
        }
        let e = timeout(Duration::from_secs(5), connect(&r.url("rt_app.f_sess")))
            .await
            .expect("an answer within 5 s")
            .expect_err("no server");
        assert_eq!(sqlstate(&e), "08006", "{fault}: {e:?}");
        assert!(db_message(&e).contains("PostgreSQL at"), "{fault}: {e:?}");
        p.lift();
        wait_slots_free(&r, "f_sess").await;
        fresh_client_served(&r, "rt_app.f_sess").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_turns_ready_503_and_its_statement_completes_when_lifted() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    let c = connect(&r.url("rt_f6.f_sess")).await.expect("login");
    assert_eq!(first_value(&c, "SELECT 1").await, "1");
    wait_ready(&r, 200, Duration::from_secs(5)).await;
    p.stall();
    // A statement to a half-open server waits, as one PostgreSQL is slow to
    // answer would: nothing tells them apart.
    let q = tokio::spawn(async move {
        let v = first_value(&c, "SELECT 'after the stall'").await;
        (c, v)
    });
    let body = wait_ready(&r, 503, Duration::from_secs(5)).await;
    assert!(
        body["upstream"]
            .as_str()
            .unwrap_or("")
            .contains("timed out"),
        "{body}"
    );
    assert!(!q.is_finished());
    p.lift();
    let (c, v) = timeout(Duration::from_secs(5), q)
        .await
        .expect("answered once lifted")
        .expect("task");
    assert_eq!(v, "after the stall");
    wait_ready(&r, 200, Duration::from_secs(5)).await;
    assert_eq!(first_value(&c, "SELECT 2").await, "2");
}

/// Found by this test: the router canceled the statement and waited for
/// PostgreSQL's answer forever; now it waits 5 s, then ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_query_ms_ends_a_statement_stalled_upstream() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    let c = connect(&r.url("rt_f7.f_slow")).await.expect("login");
    assert_eq!(first_value(&c, "SELECT 1").await, "1");
    p.stall();
    let start = Instant::now();
    // max_query_ms (500 ms), the cancel, then 5 s for an answer.
    let e = fails_within(&c, "SELECT 'stalled'", Duration::from_secs(15)).await;
    let took = start.elapsed();
    eprintln!("stalled under max_query_ms: {e:?} after {took:?}");
    assert_eq!(sqlstate(&e), "08006", "{e:?}");
    assert!(db_message(&e).contains("did not answer"), "{e:?}");
    assert!(took >= Duration::from_secs(5), "{took:?}");
    p.lift();
    wait_slots_free(&r, "f_slow").await;
    wait_pool_settled(&r, &pool("rt_f7"), "rt_f7", 4).await;
    fresh_client_served(&r, "rt_f7.f_slow").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_slows_both_modes_and_a_cancel_still_lands() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    let s = connect(&r.url("rt_f8.f_sess")).await.expect("session");
    let t = connect(&r.url("rt_f8.f_tx")).await.expect("transaction");
    p.latency(Dir::Down, Duration::from_millis(300));
    p.latency(Dir::Up, Duration::from_millis(100));
    for c in [&s, &t] {
        let start = Instant::now();
        assert_eq!(first_value(c, "SELECT 'slow'").await, "slow");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(400), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    // /ready gives each check connect_timeout_ms (1 s): 400 ms is fine.
    wait_ready(&r, 200, Duration::from_secs(5)).await;
    for (c, name) in [(&s, "session"), (&t, "transaction")] {
        let sleeper = format!("SELECT pg_sleep(30) -- {name}");
        let token = c.cancel_token();
        let run = c.simple_query(&sleeper);
        let cancel = async {
            assert!(wait_running("rt_f8", &sleeper).await, "{name}: running");
            token
                .cancel_query(tokio_postgres::NoTls)
                .await
                .expect("cancel sent");
        };
        let start = Instant::now();
        let (res, ()) = timeout(
            Duration::from_secs(10),
            futures_util::future::join(run, cancel),
        )
        .await
        .expect("canceled within 10 s");
        let e = res.expect_err("canceled");
        assert_eq!(sqlstate(&e), "57014", "{name}: {e:?}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }
    p.lift();
    assert_eq!(first_value(&s, "SELECT 3").await, "3");
    assert_eq!(first_value(&t, "SELECT 4").await, "4");
}

/// Found in review: the 5 s wait for a canceled statement's answer ran
/// while the client itself held PostgreSQL back. A client that reads
/// nothing is still bounded (PostgreSQL, blocked writing to it, acts on
/// the cancel only once its socket takes writes), and what ends it names
/// the client; one that reads slowly is not cut (unit test
/// `a_canceled_unit_whose_answer_moves_is_waited_for_again`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_query_ms_bounds_a_client_that_reads_nothing() {
    let p = FaultProxy::to_postgres().await;
    let r = router(&p);
    let mut c = common::raw::Raw::connect(r.port, "rt_f9.f_unread", DB)
        .await
        .expect("raw login");
    assert!(common::raw::errors(&c.query("SELECT 1").await).is_empty());
    // 300 MB of rows, far more than the sockets and the router buffer.
    // (Its text names this process: another run may share the cluster.)
    let sql = format!(
        "SELECT repeat('x', 1000) FROM generate_series(1, 300000) -- unread {}",
        std::process::id()
    );
    let start = Instant::now();
    c.send(&common::raw::query(&sql)).await;
    let pid_sql = format!(
        "SELECT pid FROM pg_stat_activity WHERE usename = 'rt_f9' AND query = '{}'",
        sql.replace('\'', "''")
    );
    let mut pid = String::new();
    let running = eventually(Duration::from_secs(5), || {
        pid = admin_sql(&pid_sql).trim().to_owned();
        let found = !pid.is_empty();
        async move { found }
    })
    .await;
    assert!(running, "the statement runs");
    // What the test is about: PostgreSQL blocked writing to a client that
    // takes nothing, before the limit (3 s) fires. (Had the limit come
    // first, the router would drop the unit's rows and the statement
    // would end, canceled or done, with no one held back.)
    let blocked = eventually(Duration::from_secs(3), || async {
        admin_sql(&format!(
            "SELECT wait_event FROM pg_stat_activity WHERE pid = {pid}"
        ))
        .trim()
            == "ClientWrite"
    })
    .await;
    assert!(blocked, "PostgreSQL blocks writing to the unread client");
    // And it stays blocked: the router takes at most its high-water mark
    // from a server whose client reads nothing (it once took the whole
    // result into memory, and the statement simply finished).
    while start.elapsed() < Duration::from_millis(2500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        admin_sql(&format!(
            "SELECT state || ' ' || coalesce(wait_event, '-') FROM pg_stat_activity WHERE pid = {pid}"
        ))
        .trim(),
        "active ClientWrite",
        "after {:?}, {} bytes read from PostgreSQL",
        start.elapsed(),
        p.received(Dir::Down)
    );
    // max_query_ms (3 s), the cancel, then 5 s without a byte taken.
    let gone = eventually(Duration::from_secs(20), || async {
        admin_sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        ))
        .trim()
            == "0"
    })
    .await;
    let took = start.elapsed();
    assert!(
        gone,
        "backend {pid} still there after {took:?}; {} bytes read from PostgreSQL; router log:\n{}",
        p.received(Dir::Down),
        r.log_text()
    );
    assert!(took >= Duration::from_secs(8), "{took:?}");
    // The client reads now: rows, then (if its buffers had room for it)
    // the router's FATAL, then the end.
    let mut last = None;
    let drained = timeout(Duration::from_secs(10), async {
        while let Some(m) = c.try_recv().await {
            if m.0 != b'D' {
                last = Some(m);
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the connection ends");
    if let Some((b'E', body)) = &last {
        let (code, msg) = common::raw::error_of(body);
        assert_eq!(code, "57014", "{msg}");
        assert!(msg.contains("did not read"), "{msg}");
    }
    wait_slots_free(&r, "f_unread").await;
    wait_pool_settled(&r, &pool("rt_f9"), "rt_f9", 4).await;
    fresh_client_served(&r, "rt_f9.f_unread").await;
}
