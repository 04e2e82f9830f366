//! Pooled backends (docs/src/pooling/index.md), session mode: a backend serves one
//! client at a time and goes back to its pool when the client leaves; the
//! next tenant on it gets its own context through the signed-token path
//! and nothing of the last one's session; the pool's size, a tenant's share
//! and the wait are enforced with 53300; a client that leaves busy never
//! hands its backend on; cancel requests reach the pooled backend through
//! the router's own key.
mod common;
use common::*;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ROLES: [&str; 6] = [
    "rt_pool", "rt_pool2", "rt_pool3", "rt_pool4", "rt_pool5", "rt_pool6",
];

const FIXTURES: &str = r#"
SET client_min_messages = warning;
GRANT SELECT, INSERT ON notes TO rt_pool, rt_pool2, rt_pool3, rt_pool4, rt_pool5, rt_pool6;
GRANT USAGE ON SEQUENCE notes_id_seq TO rt_pool, rt_pool2, rt_pool3, rt_pool4, rt_pool5, rt_pool6;
SELECT tenant.alter_tenant('pl_small', pool_size => 1);
SELECT tenant.alter_tenant('pl_ded', dedicated_pool => true, pool_size => 3, min_idle => 2);
SELECT tenant.alter_tenant('pl_a', allow_ddl => true);
INSERT INTO notes (tenant_id, body)
SELECT t, t || ' ' || g FROM (VALUES ('pl_a', 2), ('pl_b', 5)) v(t, n), generate_series(1, n) g
WHERE NOT EXISTS (SELECT 1 FROM notes WHERE tenant_id = 'pl_a');
"#;

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&ROLES);
        tenants(&["pl_a", "pl_b", "pl_small", "pl_ded"], "");
        admin_sql(FIXTURES);
    });
}

/// A router that verifies passwords itself and pools: `size` backends per
/// shared pool, a wait of `wait_ms`.
fn pooled_router(size: usize, wait_ms: u64) -> Router {
    fixtures();
    Router::start_with(&format!(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = {size}\ntimeout_ms = {wait_ms}\n"
    ))
}

async fn tenant_of(c: &tokio_postgres::Client) -> String {
    c.query_one("SELECT tenant.current_tenant_id()", &[])
        .await
        .expect("current_tenant_id")
        .get::<_, Option<String>>(0)
        .unwrap_or_default()
}

async fn one_i64(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.expect(sql).get(0)
}

/// Wait until the pool `label` has `idle` idle backends (a client that
/// left gives its backend back after the reset round trip).
async fn wait_idle(r: &Router, label: &str, idle: u64) {
    let ok = eventually(Duration::from_secs(5), || async {
        let v = pools(r).await;
        v["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["pool"] == label && p["idle"] == idle)
    })
    .await;
    assert!(ok, "pool {label} never had {idle} idle: {}", pools(r).await);
}

/// `GET /pools`.
async fn pools(r: &Router) -> serde_json::Value {
    reqwest::get(r.admin("/pools"))
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_tenant_on_a_backend_finds_nothing_of_the_last() {
    let r = pooled_router(1, 5_000);
    let a = connect(&r.url("rt_pool.pl_a"))
        .await
        .expect("pl_a connects");
    assert_eq!(tenant_of(&a).await, "pl_a");
    assert_eq!(visible_notes(&a).await, 2);
    let pid = backend_pid(&a).await;
    a.batch_execute(
        "CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1); \
         SET search_path = pg_temp, public; SET application_name = 'left behind'; \
         PREPARE left_behind AS SELECT 1; LISTEN left_behind; \
         DECLARE held CURSOR WITH HOLD FOR SELECT 1; SELECT tenant.advisory_lock(4242);",
    )
    .await
    .expect("session state on pl_a");
    // Control: the state is really there while pl_a holds the backend.
    assert_eq!(
        admin_sql(&format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'userlock' AND pid = {pid}"
        ))
        .trim(),
        "1"
    );
    assert_eq!(
        one_i64(
            &a,
            "SELECT count(*) FROM pg_prepared_statements WHERE name = 'left_behind'"
        )
        .await,
        1
    );
    drop(a);
    wait_idle(&r, "rt_pool@router_test", 1).await;

    let b = connect(&r.url("rt_pool.pl_b"))
        .await
        .expect("pl_b connects");
    assert_eq!(
        backend_pid(&b).await,
        pid,
        "the pool of one reused the backend"
    );
    assert_eq!(tenant_of(&b).await, "pl_b");
    assert_eq!(visible_notes(&b).await, 5, "only pl_b's rows");
    let leftovers = b
        .query_one(
            "SELECT to_regclass('pg_temp.scratch') IS NULL, current_setting('search_path'), \
             current_setting('application_name'), \
             (SELECT count(*) FROM pg_prepared_statements WHERE name = 'left_behind'), \
             (SELECT count(*) FROM pg_listening_channels()), \
             (SELECT count(*) FROM pg_cursors WHERE name = 'held')",
            &[],
        )
        .await
        .expect("leftovers");
    assert!(leftovers.get::<_, bool>(0), "temp table gone");
    assert_eq!(leftovers.get::<_, String>(1), "\"$user\", public");
    assert_eq!(leftovers.get::<_, String>(2), "");
    assert_eq!(leftovers.get::<_, i64>(3), 0, "prepared statements gone");
    assert_eq!(leftovers.get::<_, i64>(4), 0, "LISTEN gone");
    assert_eq!(leftovers.get::<_, i64>(5), 0, "cursors gone");
    assert_eq!(
        admin_sql(&format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'userlock' AND pid = {pid}"
        ))
        .trim(),
        "0",
        "advisory lock released"
    );
    // The router counted the switch and the reuse.
    let m = prometheus(&r).await;
    assert!(
        m.contains("tenant_router_pool_tenant_switches_total{pool=\"rt_pool@router_test\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waits_for_a_backend_then_gets_53300_naming_the_pool() {
    let r = pooled_router(1, 300);
    let a = connect(&r.url("rt_pool2.pl_a"))
        .await
        .expect("first client");
    let started = Instant::now();
    let e = connect(&r.url("rt_pool2.pl_b"))
        .await
        .expect_err("the only backend is taken");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    let msg = db_message(&e);
    assert!(
        msg.contains("pool rt_pool2@router_test") && msg.contains("300 ms"),
        "{msg}"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Control: once the first client leaves, the second gets its backend.
    drop(a);
    let b = connect(&r.url("rt_pool2.pl_b"))
        .await
        .expect("backend free again");
    assert_eq!(tenant_of(&b).await, "pl_b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_holds_no_more_than_its_share_of_a_shared_pool() {
    let r = pooled_router(3, 300);
    let first = connect(&r.url("rt_pool3.pl_small"))
        .await
        .expect("within share");
    let e = connect(&r.url("rt_pool3.pl_small"))
        .await
        .expect_err("pl_small's pool_size is 1");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    let msg = db_message(&e);
    assert!(msg.contains("\"pl_small\" may hold 1"), "{msg}");
    // Control: another tenant still gets a backend of the same pool.
    let other = connect(&r.url("rt_pool3.pl_a"))
        .await
        .expect("pl_a connects");
    assert_eq!(visible_notes(&other).await, 2);
    assert_eq!(visible_notes(&first).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_transaction_leaves_nothing_behind() {
    let r = pooled_router(1, 5_000);
    let a = connect(&r.url("rt_pool4.pl_a")).await.expect("connects");
    let pid = backend_pid(&a).await;
    a.batch_execute(
        "BEGIN; INSERT INTO notes (tenant_id, body) VALUES ('pl_a', 'never committed')",
    )
    .await
    .expect("open transaction");
    drop(a);
    // The backend is closed, not reused: its transaction rolled back.
    wait_backend_gone(pid).await;
    let b = connect(&r.url("rt_pool4.pl_a")).await.expect("reconnects");
    assert_ne!(backend_pid(&b).await, pid, "a busy backend is never reused");
    assert_eq!(
        one_i64(
            &b,
            "SELECT count(*) FROM notes WHERE body = 'never committed'"
        )
        .await,
        0
    );
    assert_eq!(
        admin_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'rt_pool4' \
             AND state LIKE 'idle in transaction%'"
        )
        .trim(),
        "0"
    );
    let m = prometheus(&r).await;
    assert!(
        m.contains("tenant_router_pool_discarded_total{pool=\"rt_pool4@router_test\",reason=\"client_left_busy\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_with_the_routers_key_reaches_the_pooled_backend() {
    let r = pooled_router(2, 5_000);
    let c = connect(&r.url("rt_pool5.pl_b")).await.expect("connects");
    let token = c.cancel_token();
    let sleeper = tokio::spawn(async move {
        let started = Instant::now();
        let r = c.simple_query("SELECT pg_sleep(30)").await;
        (r.map(|_| ()), started.elapsed())
    });
    // Wait until the statement runs, then cancel with the key the router
    // gave the client (not the backend's own).
    let running = wait_running("rt_pool5", "SELECT pg_sleep(30)").await;
    assert!(running);
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let (result, took) = sleeper.await.expect("join");
    let e = result.expect_err("canceled");
    assert_eq!(sqlstate(&e), "57014", "{e}");
    assert!(took < Duration::from_secs(20));
}

/// The numbers of one pool in `/pools`, if it exists.
async fn pool_counts(r: &Router, label: &str) -> Option<serde_json::Value> {
    pools(r).await["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["pool"] == label)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_pool_keeps_min_idle_and_shared_idle_backends_time_out() {
    fixtures();
    let r = Router::start_with(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 4\nidle_timeout_ms = 200\n",
    );
    // The dedicated pool learns how to log in from its first client, then
    // keeps min_idle = 2 backends open, idle timeout or not.
    let c = connect(&r.url("rt_pool6.pl_ded")).await.expect("pl_ded");
    assert_eq!(tenant_of(&c).await, "pl_ded");
    drop(c);
    let label = "rt_pool6@router_test/pl_ded";
    let warm = eventually(Duration::from_secs(10), || async {
        pool_counts(&r, label)
            .await
            .is_some_and(|p| p["idle"] == 2 && p["size"] == 3)
    })
    .await;
    assert!(warm, "min_idle not reached: {}", pools(&r).await);
    // A shared pool has no min_idle: its idle backend is closed after
    // idle_timeout_ms.
    let s = connect(&r.url("rt_pool6.pl_a")).await.expect("pl_a");
    let pid = backend_pid(&s).await;
    drop(s);
    wait_backend_gone(pid).await;
    let m = prometheus(&r).await;
    assert!(
        m.contains("tenant_router_pool_discarded_total{pool=\"rt_pool6@router_test\",reason=\"idle_timeout\"} 1"),
        "{m}"
    );
    // Control: the dedicated pool still holds its two.
    assert_eq!(
        pool_counts(&r, label).await.map(|p| p["idle"].clone()),
        Some(2.into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_past_their_lifetime_are_closed() {
    fixtures();
    let r = Router::start_with(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 2\n\
         idle_timeout_ms = 0\nserver_lifetime_ms = 300\n",
    );
    let c = connect(&r.url("rt_pool6.pl_b")).await.expect("pl_b");
    let pid = backend_pid(&c).await;
    drop(c);
    wait_backend_gone(pid).await;
    let m = prometheus(&r).await;
    assert!(
        m.contains("tenant_router_pool_discarded_total{pool=\"rt_pool6@router_test\",reason=\"lifetime\"} 1"),
        "{m}"
    );
    // Control: the next client gets a new backend.
    let c = connect(&r.url("rt_pool6.pl_b")).await.expect("pl_b again");
    assert_ne!(backend_pid(&c).await, pid);
    assert_eq!(tenant_of(&c).await, "pl_b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_a_client_ends_that_session_and_frees_its_place() {
    let r = pooled_router(1, 5_000);
    let c = connect(&r.url("rt_pool5.pl_a")).await.expect("pl_a");
    let pid = backend_pid(&c).await;
    admin_sql(&format!("SELECT pg_terminate_backend({pid})"));
    let e = c
        .simple_query("SELECT 1")
        .await
        .expect_err("its backend is gone");
    assert!(sqlstate(&e) == "57P01" || c.is_closed(), "{e}");
    // The pool of one is free again: the next client gets a new backend.
    let d = connect(&r.url("rt_pool5.pl_b")).await.expect("pl_b");
    assert_ne!(backend_pid(&d).await, pid);
    assert_eq!(tenant_of(&d).await, "pl_b");
}
