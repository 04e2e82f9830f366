//! Every resource a client or tenant can take in the router is bounded
//! (issue #23): named prepared statements (per client, per backend, freed
//! when a client leaves, never colliding), pools (only for databases that
//! work, removed with their metric series when unused), a tenant's share
//! of a shared pool (a client that waits too long gets a per-statement
//! 53300 and keeps its session), idle clients (57P05), and a pooled
//! client's own notifications carry the pid it was given. Each attack
//! beside a control that keeps working.
mod common;
use bytes::BytesMut;
use common::raw::{self, Raw};
use common::*;
use std::sync::OnceLock;
use std::time::Duration;

const ROLES: [&str; 2] = ["rt_rb1", "rt_rb2"];

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&ROLES);
        tenants(
            &["rb_tx", "rb_hog", "rb_calm"],
            "pool_mode => 'transaction', max_connections => 0, pool_size => 10",
        );
        tenants(&["rb_sess", "rb_db"], "max_connections => 0");
        tenants(&["rb_idle", "rb_txidle"], "max_connections => 0");
        admin_sql(
            "SELECT tenant.alter_tenant('rb_idle', client_idle_timeout_ms => 300); \
             SELECT tenant.alter_tenant('rb_txidle', client_idle_timeout_ms => 300, \
                                        pool_mode => 'transaction'); \
             GRANT SELECT ON notes TO rt_rb1, rt_rb2",
        );
    });
}

fn pooled(extra: &str) -> Router {
    fixtures();
    Router::start_with(&format!(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\n{extra}\n"
    ))
}

/// Named statements on the backend serving `c` (a transaction-pooled
/// client of a one-backend pool: the pool's only backend).
async fn prepared_on_backend(c: &tokio_postgres::Client) -> i64 {
    let rows = c
        .simple_query("SELECT count(*) FROM pg_prepared_statements")
        .await
        .expect("count");
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(|v| v.parse().unwrap()),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_parse_flood_is_refused_past_the_client_budget_and_freed_when_it_leaves() {
    let r = pooled("size = 1\ntimeout_ms = 20000");
    let control = connect(&r.url("rt_rb1.rb_tx")).await.expect("control");
    assert_eq!(prepared_on_backend(&control).await, 0);
    let before = r.memory_kib("VmRSS");

    // 1,500 named statements of 60 KiB (90 MB), 50 per batch, never closed.
    let mut attacker = Raw::connect(r.port, "rt_rb1.rb_tx", DB)
        .await
        .expect("attacker");
    let filler = format!("SELECT 1 /* {} */", "x".repeat(60 * 1024));
    let (mut refused, mut prepared) = (Vec::new(), 0);
    let mut peak = before;
    for batch in 0..30 {
        let mut m = BytesMut::new();
        for i in 0..50 {
            m.extend_from_slice(&raw::parse(&format!("m{}", batch * 50 + i), &filler));
        }
        m.extend_from_slice(&raw::sync());
        attacker.send(&m).await;
        for (tag, body) in attacker.until(b'Z').await {
            match tag {
                b'1' => prepared += 1,
                b'E' => refused.push(raw::error_of(&body)),
                _ => {}
            }
        }
        peak = peak.max(r.memory_kib("VmRSS"));
    }
    // 2 MiB per client: 34 statements of 60 KiB, then one 53400 per batch
    // (PostgreSQL skips the rest of a batch after an error).
    assert_eq!(prepared, 34, "{refused:?}");
    assert_eq!(refused.len(), 30, "{refused:?}");
    assert!(refused
        .iter()
        .all(|(code, msg)| code == "53400" && msg.contains("pool.max_client_prepared_statements")));
    assert!(
        peak < before + 40 * 1024,
        "router RSS grew from {before} to {peak} KiB"
    );
    // The control tenant's client, on the same backend, works meanwhile
    // and sees the attacker's statements there.
    assert_eq!(prepared_on_backend(&control).await, 34);

    // The attacker leaves: its statements are closed at the backend's next
    // use, before the control's query runs. Its session is over once the
    // router logs one more closed connection (the router's start-up probe
    // logged one already).
    let closed = || r.log_text().matches("connection closed").count();
    let before_leaving = closed();
    drop(attacker);
    assert!(
        eventually(Duration::from_secs(10), || async {
            closed() > before_leaving
        })
        .await
    );
    assert_eq!(prepared_on_backend(&control).await, 0);
    let pools: serde_json::Value = reqwest::get(r.admin("/pools"))
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(pools["pools"][0]["idle_statements"], 0, "{pools}");
    eprintln!(
        "RSS before {before} peak {peak} after {} KiB",
        r.memory_kib("VmRSS")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_clients_large_statement_never_collides_or_leaks_to_another_client() {
    let r = pooled("size = 1\ntimeout_ms = 20000");
    // A 110 KB statement named as psycopg names its first: tracked whole.
    let big = format!(
        "SELECT count(*) FROM notes WHERE id IN ({})",
        (1..=20_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert!(big.len() > 100_000);
    let mut first = Raw::connect(r.port, "rt_rb1.rb_tx", DB)
        .await
        .expect("first");
    let mut m = raw::parse("_pg3_0", &big);
    m.extend_from_slice(&raw::run("_pg3_0", &[]));
    first.send(&m).await;
    let answers = first.until(b'Z').await;
    assert!(raw::errors(&answers).is_empty(), "{answers:?}");
    drop(first);

    // The next client of the tenant on the same backend: its own _pg3_0
    // prepares without 42P05, and runs its own text.
    let mut next = Raw::connect(r.port, "rt_rb1.rb_tx", DB)
        .await
        .expect("next");
    let mut m = raw::parse("_pg3_0", "SELECT 42");
    m.extend_from_slice(&raw::run("_pg3_0", &[]));
    next.send(&m).await;
    let answers = next.until(b'Z').await;
    assert!(raw::errors(&answers).is_empty(), "{answers:?}");
    let row = answers.iter().find(|m| m.0 == b'D').expect("a row");
    assert!(row.1.ends_with(b"42"), "{row:?}");

    // A client that never prepared it cannot run it: 26000, as alone.
    let mut other = Raw::connect(r.port, "rt_rb2.rb_tx", DB)
        .await
        .expect("other");
    other.send(&raw::run("_pg3_0", &[])).await;
    let answers = other.until(b'Z').await;
    assert_eq!(raw::errors(&answers), vec!["26000".to_owned()]);
    // ...while its owner still can (prepared again for it).
    next.send(&raw::run("_pg3_0", &[])).await;
    let answers = next.until(b'Z').await;
    assert!(raw::errors(&answers).is_empty(), "{answers:?}");
}

/// `prepared_churn.py MODE` through a one-backend transaction pool.
fn churn(r: &Router, mode: &str) -> Vec<String> {
    let port = r.port.to_string();
    run_program(
        "python3",
        &[
            "prepared_churn.py",
            mode,
            "127.0.0.1",
            &port,
            "rt_rb2.rb_tx",
            PASSWORD,
            DB,
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_and_asyncpg_short_lived_clients_never_collide_and_leave_nothing_behind() {
    let r = pooled(
        "size = 1
timeout_ms = 20000",
    );
    // psycopg names its first prepared statement _pg3_0 on every
    // connection: 42P05 for every later client if a departed one's stayed.
    assert_eq!(
        churn(&r, "psycopg"),
        vec!["psycopg runs=35 errors=[] held=0"]
    );
    // asyncpg names every statement uniquely: 200 statements of 40
    // departed clients, none left on the backend (the last client's own
    // statement is the one it counts with).
    assert_eq!(
        churn(&r, "asyncpg"),
        vec!["asyncpg runs=200 errors=[] held=1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_database_names_get_no_pool_and_unused_pools_go_with_their_series() {
    let r = pooled("size = 2\nidle_timeout_ms = 300\ntimeout_ms = 5000");
    let base = prometheus(&r).await.len();
    for i in 0..40 {
        let db = format!("nope_{i}_{}", "d".repeat(2000));
        let e = Raw::connect(r.port, "rt_rb1.rb_db", &db)
            .await
            .err()
            .expect("refused");
        assert!(e.contains("does not exist"), "{e}");
    }
    let metrics = prometheus(&r).await;
    assert!(!metrics.contains("nope_"), "no series for made-up names");
    assert!(
        metrics.len() < base + 8 * 1024,
        "/metrics grew from {base} to {}",
        metrics.len()
    );
    let pools = reqwest::get(r.admin("/pools"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!pools.contains("nope_"), "{pools}");

    // Control: the real database gets its pool and series...
    let c = connect(&r.url("rt_rb1.rb_db")).await.expect("login");
    c.simple_query("SELECT 1").await.expect("query");
    assert!(prometheus(&r).await.contains("pool=\"rt_rb1@router_test\""));
    drop(c);
    // ...removed once unused past idle_timeout_ms (its backend closed
    // first).
    assert!(
        eventually(Duration::from_secs(15), || async {
            !prometheus(&r).await.contains("pool=\"rt_rb1@router_test\"")
        })
        .await,
        "the unused pool's series are gone"
    );
    let pools = reqwest::get(r.admin("/pools"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pools, r#"{"pools":[]}"#);
    // And made again on the next login.
    let c = connect(&r.url("rt_rb1.rb_db")).await.expect("again");
    c.simple_query("SELECT 1").await.expect("query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_hold_a_shared_pool_and_its_waiting_client_keeps_its_session() {
    // 8 backends, a cap of a quarter (2): past it a tenant borrows only
    // while more than 2 places stay free, so it holds at most 6.
    let r = pooled("size = 8\nmax_tenant_share = 0.25\ntimeout_ms = 600");
    let waiting = connect(&r.url("rt_rb1.rb_hog")).await.expect("waiting");
    let mut hogs = Vec::new();
    for _ in 0..6 {
        let h = connect(&r.url("rt_rb1.rb_hog")).await.expect("hog");
        h.batch_execute("BEGIN; SELECT 1")
            .await
            .expect("holds a backend");
        hogs.push(h);
    }
    // The next client of the hog tenant waits past pool.timeout_ms: its
    // statement fails with 53300, its connection stays.
    let e = waiting
        .simple_query("SELECT 1")
        .await
        .expect_err("no backend");
    assert_eq!(sqlstate(&e), "53300");
    assert!(db_message(&e).contains("rb_hog"), "{}", db_message(&e));
    // The calm tenant is served at once from the reserve, two clients at
    // a time.
    let mut calm = Vec::new();
    for _ in 0..2 {
        let c = connect(&r.url("rt_rb2.rb_calm")).await.expect("calm");
        c.batch_execute("BEGIN; SELECT 1").await.expect("calm runs");
        calm.push(c);
    }
    // The calm clients finish, a hog commits: the waiting client's next
    // statement runs.
    for c in &calm {
        c.batch_execute("COMMIT").await.expect("commit");
    }
    hogs[0].batch_execute("COMMIT").await.expect("commit");
    let rows = waiting.simple_query("SELECT 7").await.expect("served now");
    let seven = rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    assert_eq!(seven.as_deref(), Some("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_closed_with_57p05_at_their_tenants_timeout() {
    let r = pooled("size = 4");
    for user in ["rt_rb1.rb_idle", "rt_rb1.rb_txidle"] {
        let idle = connect(&r.url(user)).await.expect("idle");
        let busy = connect(&r.url(user)).await.expect("busy");
        busy.batch_execute("BEGIN").await.expect("in a transaction");
        // Control: a tenant without the timeout.
        let free = connect(&r.url("rt_rb2.rb_sess")).await.expect("free");
        assert!(
            eventually(Duration::from_secs(10), || async { idle.is_closed() }).await,
            "{user}: the idle client is closed"
        );
        let e = idle.simple_query("SELECT 1").await.expect_err("closed");
        assert!(e.is_closed() || sqlstate(&e) == "57P05", "{e}");
        assert!(r.log_text().contains("client_idle_timeout_ms"));
        // Inside a transaction a client is not idle (that bound is the
        // extension's idle_in_transaction_timeout_ms).
        busy.batch_execute("SELECT 1; COMMIT")
            .await
            .expect("busy works");
        free.simple_query("SELECT 1").await.expect("free works");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_clients_own_notification_carries_the_pid_it_was_given() {
    let r = pooled("size = 2");
    let mut c = Raw::connect(r.port, "rt_rb1.rb_sess", DB)
        .await
        .expect("login");
    let (given, _) = c.key.expect("BackendKeyData");
    let real = c.query("SELECT pg_backend_pid()").await;
    let row = real.iter().find(|m| m.0 == b'D').expect("pid row");
    let real: i32 = std::str::from_utf8(&row.1[6..]).unwrap().parse().unwrap();
    assert_ne!(real, given, "the router's pid, not the backend's");
    let answers = c.query("LISTEN jobs; NOTIFY jobs, 'p1'").await;
    let note = answers.iter().find(|m| m.0 == b'A').expect("notification");
    let pid = i32::from_be_bytes([note.1[0], note.1[1], note.1[2], note.1[3]]);
    assert_eq!(pid, given);
    assert!(note.1[4..].starts_with(b"jobs\0p1\0"), "{note:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_left_without_sync_does_not_hold_a_pooled_backend() {
    let r = pooled("size = 1\ntimeout_ms = 20000");
    let mut holder = Raw::connect(r.port, "rt_rb1.rb_txidle", DB)
        .await
        .expect("holder");
    // Parse and Flush, no Sync: PostgreSQL answers and arms no timer.
    let mut m = raw::parse("", "SELECT 1");
    m.extend_from_slice(&raw::flush());
    holder.send(&m).await;
    assert_eq!(holder.recv().await.0, b'1');
    // Quiet from here: closed at the tenant's client_idle_timeout_ms...
    let (tag, body) = holder.recv().await;
    assert_eq!(tag, b'E');
    let (code, msg) = raw::error_of(&body);
    assert_eq!(code, "57P05");
    assert!(msg.contains("without Sync"), "{msg}");
    // ...and the pool's one backend serves the tenant's next client.
    let next = connect(&r.url("rt_rb1.rb_txidle")).await.expect("served");
    next.simple_query("SELECT 1").await.expect("query");
}
