//! Every way around a limit that worked once, each tried next to a control
//! that shows the same path passes when no limit applies: a `COMMIT; `
//! prefix, extended protocol without Sync, many Executes per Sync, a
//! fast-path FunctionCall, COPY TO STDOUT.
mod common;
use common::raw::{self, Raw};
use common::*;
use std::time::{Duration, Instant};

/// At most what a bucket of `qps` (burst 1) allows over `elapsed`.
fn allowed(qps: f64, elapsed: Duration) -> usize {
    (qps + qps * elapsed.as_secs_f64()).ceil() as usize + 1
}

#[tokio::test]
async fn a_commit_prefix_does_not_skip_the_qps_check() {
    set_limits("commit-prefix", "qps_limit => 5, burst_multiplier => 1.0");
    let r = Router::start();
    let c = connect(&r.url("rt_app.commit-prefix")).await.unwrap();
    // Control: inside a transaction, with the bucket dry, a lone COMMIT
    // still passes.
    c.batch_execute("BEGIN").await.unwrap();
    let mut dry = false;
    for _ in 0..20 {
        if c.simple_query("SELECT 1").await.is_err() {
            dry = true;
            break;
        }
    }
    assert!(dry, "the bucket ran dry");
    c.batch_execute("COMMIT")
        .await
        .expect("a lone COMMIT is free");
    let started = Instant::now();
    let (mut ok, mut denied) = (0, 0);
    for _ in 0..40 {
        match c.simple_query("COMMIT; SELECT 1").await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(sqlstate(&e), "53400", "{e}");
                denied += 1;
            }
        }
    }
    assert!(ok <= allowed(5.0, started.elapsed()), "{ok} passed");
    assert!(denied >= 25, "{denied} denied");
}

/// Parse/Bind/Execute/Flush, `n` times, never a Sync (one after an error,
/// as a client must to go on). Returns (completed, denied) and the time.
async fn unsynced(c: &mut Raw, sql: &str, n: usize) -> (usize, usize, Duration) {
    let started = Instant::now();
    let (mut ok, mut denied) = (0, 0);
    for _ in 0..n {
        let mut m = raw::parse_bind_execute(sql, &[]);
        m.extend_from_slice(&raw::flush());
        c.send(&m).await;
        loop {
            let (tag, body) = c.recv().await;
            match tag {
                b'C' => {
                    ok += 1;
                    break;
                }
                b'E' => {
                    assert_eq!(raw::error_of(&body).0, "53400");
                    denied += 1;
                    c.send(&raw::sync()).await;
                    c.until(b'Z').await;
                    break;
                }
                _ => {}
            }
        }
    }
    (ok, denied, started.elapsed())
}

#[tokio::test]
async fn extended_protocol_without_sync_is_charged_per_execute() {
    set_limits("flusher", "qps_limit => 5, burst_multiplier => 1.0");
    let r = Router::start();
    // Control: no limit, all 40 run.
    let mut free = Raw::connect(r.port, "rt_trust.acme", DB).await.unwrap();
    assert_eq!(unsynced(&mut free, "SELECT 1", 40).await.0, 40);
    let mut c = Raw::connect(r.port, "rt_trust.flusher", DB).await.unwrap();
    let (ok, denied, took) = unsynced(&mut c, "SELECT 1", 40).await;
    assert!(ok <= allowed(5.0, took), "{ok} ran in {took:?}");
    assert!(denied >= 25, "{denied} denied");
    // The connection is usable once tokens are back.
    let mut usable = false;
    for _ in 0..30 {
        if raw::errors(&c.query("SELECT 1").await).is_empty() {
            usable = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(usable);
}

#[tokio::test]
async fn every_execute_before_one_sync_costs_a_token() {
    set_limits("batcher", "qps_limit => 5, burst_multiplier => 1.0");
    let r = Router::start();
    let batch = || {
        let mut m = bytes::BytesMut::new();
        postgres_protocol::message::frontend::parse("", "SELECT 1", [], &mut m).unwrap();
        for _ in 0..20 {
            m.extend_from_slice(&raw::bind_execute());
        }
        m.extend_from_slice(&raw::sync());
        m
    };
    // Control: 20 executions.
    let mut free = Raw::connect(r.port, "rt_trust.acme", DB).await.unwrap();
    free.send(&batch()).await;
    let msgs = free.until(b'Z').await;
    assert_eq!(msgs.iter().filter(|m| m.0 == b'C').count(), 20);
    let mut c = Raw::connect(r.port, "rt_trust.batcher", DB).await.unwrap();
    c.send(&batch()).await;
    let msgs = c.until(b'Z').await;
    let done = msgs.iter().filter(|m| m.0 == b'C').count();
    assert!((1..=6).contains(&done), "{done} of 20 ran");
    assert_eq!(raw::errors(&msgs), vec!["53400"]);
    assert_eq!(msgs.last().map(|m| m.1[0]), Some(b'I'));
}

#[tokio::test]
async fn an_unsynced_execute_obeys_max_query_ms() {
    set_limits("slow-flusher", "max_query_ms => 500");
    let r = Router::start();
    let mut c = Raw::connect(r.port, "rt_trust.slow-flusher", DB)
        .await
        .unwrap();
    // Control: a short one completes.
    let mut m = raw::parse_bind_execute("SELECT pg_sleep(0.1)", &[]);
    m.extend_from_slice(&raw::flush());
    c.send(&m).await;
    assert!(c.until(b'C').await.iter().all(|m| m.0 != b'E'));
    // No Sync: still canceled at 500 ms.
    let started = Instant::now();
    let mut m = raw::parse_bind_execute("SELECT pg_sleep(3)", &[]);
    m.extend_from_slice(&raw::flush());
    c.send(&m).await;
    let msgs = c.until(b'E').await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let (code, msg) = raw::error_of(&msgs.last().unwrap().1);
    assert_eq!(code, "57014");
    assert!(msg.contains("max_query_ms of 500 ms"), "{msg}");
    c.send(&raw::sync()).await;
    c.until(b'Z').await;
}

async fn oid_of(proc: &str) -> u32 {
    admin_sql(&format!("SELECT '{proc}'::regprocedure::oid"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_function_call_obeys_max_query_ms_and_qps() {
    set_limits("caller", "max_query_ms => 500");
    set_limits("caller-qps", "qps_limit => 5, burst_multiplier => 1.0");
    let sleep = oid_of("pg_sleep(float8)").await;
    let r = Router::start();
    let mut c = Raw::connect(r.port, "rt_trust.caller", DB).await.unwrap();
    // Control: a short call returns.
    c.send(&raw::function_call(sleep, &[0.1])).await;
    let msgs = c.until(b'Z').await;
    assert!(msgs.iter().any(|m| m.0 == b'V'), "{msgs:?}");
    let started = Instant::now();
    c.send(&raw::function_call(sleep, &[3.0])).await;
    let msgs = c.until(b'Z').await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(raw::errors(&msgs), vec!["57014"]);

    let mut q = Raw::connect(r.port, "rt_trust.caller-qps", DB)
        .await
        .unwrap();
    let started = Instant::now();
    let (mut ok, mut denied) = (0, 0);
    for _ in 0..30 {
        q.send(&raw::function_call(sleep, &[0.0])).await;
        let msgs = q.until(b'Z').await;
        match raw::errors(&msgs).as_slice() {
            [] => ok += 1,
            [code] if code == "53400" => denied += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(ok <= allowed(5.0, started.elapsed()), "{ok} calls ran");
    assert!(denied >= 15, "{denied} denied");
}

#[tokio::test]
async fn copy_to_stdout_counts_toward_max_result_bytes() {
    use futures_util::StreamExt;
    set_limits("copy-out", "max_result_bytes => 10000");
    let r = Router::start();
    let c = connect(&r.url("rt_app.copy-out")).await.unwrap();
    async fn copy(c: &tokio_postgres::Client, rows: i32) -> Result<usize, tokio_postgres::Error> {
        let s = c
            .copy_out(&format!(
                "COPY (SELECT repeat('x', 1000) FROM generate_series(1, {rows})) TO STDOUT"
            ))
            .await?;
        futures_util::pin_mut!(s);
        let mut n = 0;
        while let Some(chunk) = s.next().await {
            n += chunk?.len();
        }
        Ok(n)
    }
    // Control: 5 kB pass.
    assert_eq!(copy(&c, 5).await.unwrap(), 5 * 1001);
    let e = copy(&c, 1000).await.expect_err("1 MB over a 10 kB limit");
    assert_eq!(sqlstate(&e), "54000", "{e}");
    // The connection stays usable.
    assert_eq!(copy(&c, 2).await.unwrap(), 2 * 1001);
}

/// A client that hangs up in the middle of a statement leaves nothing
/// running: the router cancels the statement and gives the tenant's place
/// back only once PostgreSQL has closed the backend (before, the statement
/// ran on, and a tenant with max_connections 1 could run any number).
#[tokio::test]
async fn hanging_up_mid_statement_leaves_nothing_running() {
    admin_sql(
        "SELECT tenant.create_tenant('lb-hangup', max_connections => 1) \
         WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'lb-hangup')",
    );
    let r = Router::start();
    // The statement carries this router's port, so no other run's can count.
    let sql = format!("SELECT pg_sleep(31) /* hangup {} */", r.port);
    let running = || {
        admin_sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE query = '{sql}' AND state = 'active'"
        ))
        .trim()
        .to_owned()
    };
    let mut raw = Raw::connect(r.port, "rt_trust.lb-hangup", DB)
        .await
        .unwrap();
    raw.send(&raw::query(&sql)).await;
    assert!(
        eventually(Duration::from_secs(5), || async { running() == "1" }).await,
        "the statement runs"
    );
    drop(raw);
    // The next client of the tenant gets its one place once the backend is
    // gone, and then nothing of the first is running.
    let start = Instant::now();
    let next = loop {
        match connect(&r.url("rt_trust.lb-hangup")).await {
            Ok(c) => break c,
            Err(e) => {
                assert_eq!(sqlstate(&e), "53300", "{e}");
                assert!(start.elapsed() < Duration::from_secs(10), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(running(), "0", "the hung-up statement was cancelled");
    drop(next);
}
