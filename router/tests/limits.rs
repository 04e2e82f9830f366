//! Per-tenant limits from the catalog, enforced by the router.
mod common;
use common::*;
use std::time::{Duration, Instant};

async fn wait_until_accepted(r: &Router, user: &str) -> tokio_postgres::Client {
    let start = Instant::now();
    loop {
        match connect(&r.url(user)).await {
            Ok(c) => return c,
            Err(e) if sqlstate(&e) == "53300" && start.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("not accepted again: {e}"),
        }
    }
}

#[tokio::test]
async fn max_connections_per_tenant() {
    admin_sql(
        "SELECT tenant.create_tenant('capped', max_connections => 2) \
         WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'capped')",
    );
    admin_sql("SELECT tenant.alter_tenant('capped', max_connections => 2)");
    let r = Router::start();
    let first = connect(&r.url("rt_app.capped")).await.unwrap();
    let (second, conn) = tokio_postgres::connect(&r.url("rt_app.capped"), tokio_postgres::NoTls)
        .await
        .unwrap();
    let second_task = tokio::spawn(conn);
    // The third is refused, naming the tenant and the limit.
    let e = connect(&r.url("rt_app.capped")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    let msg = e.as_db_error().unwrap().message().to_string();
    assert_eq!(
        msg,
        "too many connections for tenant \"capped\": its max_connections is 2"
    );
    // Other tenants are unaffected.
    assert_eq!(
        visible_notes(&connect(&r.url("rt_app.acme")).await.unwrap()).await,
        3
    );
    // A clean close frees a slot.
    drop(first);
    let third = wait_until_accepted(&r, "rt_app.capped").await;
    // Killing a client's socket (no Terminate) frees a slot too.
    second_task.abort();
    drop(second);
    let _fourth = wait_until_accepted(&r, "rt_app.capped").await;
    drop(third);
}

#[tokio::test]
async fn max_query_ms_cancels_long_statements() {
    set_limits("slowpoke", "max_query_ms => 500");
    let r = Router::start();
    let c = connect(&r.url("rt_app.slowpoke")).await.unwrap();
    // A 100 ms query passes.
    c.batch_execute("SELECT pg_sleep(0.1)")
        .await
        .expect("short query passes");
    let started = Instant::now();
    let e = c.batch_execute("SELECT pg_sleep(5)").await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    assert_eq!(
        e.as_db_error().unwrap().message(),
        "canceling statement: tenant \"slowpoke\" exceeded its max_query_ms of 500 ms"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "took {:?}",
        started.elapsed()
    );
    // Extended protocol too, and the connection stays usable.
    let e = c
        .query("SELECT pg_sleep($1::float8)", &[&3.0f64])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    let one: i32 = c.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // Other tenants have no limit.
    let a = connect(&r.url("rt_app.acme")).await.unwrap();
    a.batch_execute("SELECT pg_sleep(0.7)")
        .await
        .expect("acme has no max_query_ms");
}

#[tokio::test]
async fn max_result_bytes_cuts_large_results() {
    set_limits("bulky", "max_result_bytes => 1048576");
    let r = Router::start();
    let c = connect(&r.url("rt_app.bulky")).await.unwrap();
    // About 100 kB passes whole.
    let rows = c
        .query("SELECT repeat('x', 1000) FROM generate_series(1, 100)", &[])
        .await
        .expect("100 kB passes");
    assert_eq!(rows.len(), 100);
    // About 10 MB is cut.
    let e = c
        .query(
            "SELECT repeat('x', 1000) FROM generate_series(1, 10000)",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "54000", "{e}");
    assert_eq!(
        e.as_db_error().unwrap().message(),
        "result too large: tenant \"bulky\" exceeded its max_result_bytes of 1048576 bytes"
    );
    // Simple protocol too; then the connection is still usable.
    let e = c
        .simple_query("SELECT repeat('y', 1000) FROM generate_series(1, 10000)")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "54000", "{e}");
    let n: i64 = c
        .query_one("SELECT count(*) FROM generate_series(1, 5)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 5);
}

/// A cancel the router sends for a statement that has already finished
/// must not cancel the client's next statement: the next batch waits until
/// Postgres has taken the cancel (an idle backend ignores it).
#[tokio::test]
async fn a_late_cancel_never_hits_the_next_statement() {
    set_limits("late-cancel", "max_result_bytes => 20000");
    let r = Router::start();
    let c = connect(&r.url("rt_app.late-cancel")).await.unwrap();
    for round in 0..15 {
        // 100 kB: Postgres finishes before the cancel arrives.
        let e = c
            .simple_query("SELECT repeat('x', 1000) FROM generate_series(1, 100)")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "54000", "round {round}: {e}");
        // Control: the statement right after (long enough for a late
        // cancel to land in it) runs untouched.
        let rows = c
            .simple_query("SELECT 1 FROM pg_sleep(0.05)")
            .await
            .unwrap_or_else(|e| panic!("round {round}: the next statement failed: {e}"));
        let n = rows
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert_eq!(n, 1);
    }
}

/// Run `n` statements; (accepted, denied with 53400). Anything else fails.
async fn hammer(c: &tokio_postgres::Client, n: usize) -> (usize, usize) {
    let (mut ok, mut denied) = (0, 0);
    for _ in 0..n {
        match c.simple_query("SELECT 1").await {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(sqlstate(&e), "53400", "{e}");
                assert_eq!(
                    e.as_db_error().unwrap().message(),
                    "too many statements: tenant \"chatty\" exceeded its qps_limit of 20 per second"
                );
                denied += 1;
            }
        }
    }
    (ok, denied)
}

#[tokio::test]
async fn qps_limit_with_burst() {
    set_limits("chatty", "qps_limit => 20, burst_multiplier => 1.5");
    let r = Router::start();
    let c = connect(&r.url("rt_app.chatty")).await.unwrap();
    // Simple protocol: the burst (30) plus 20/s of refill, the rest refused.
    let started = Instant::now();
    let (ok, denied) = hammer(&c, 200).await;
    let allowed = 30.0 + 20.0 * started.elapsed().as_secs_f64();
    assert!(
        ok >= 29 && ok as f64 <= allowed + 2.0,
        "accepted {ok}, expected about {allowed:.0}"
    );
    assert_eq!(ok + denied, 200);
    // Other tenants are unaffected meanwhile.
    let acme = connect(&r.url("rt_app.acme")).await.unwrap();
    for _ in 0..50 {
        acme.simple_query("SELECT 1")
            .await
            .expect("acme has no qps_limit");
    }

    // Pipelined extended protocol: 200 executions (Bind/Execute/Sync, one
    // batch each) in flight at once. The prepare is a batch too.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let st = c.prepare("SELECT $1::int").await.unwrap();
    let started = Instant::now();
    let results = futures_util::future::join_all((0..200).map(|i| {
        let (c, st) = (&c, &st);
        async move { c.query_one(st, &[&i]).await }
    }))
    .await;
    let allowed = 30.0 + 20.0 * started.elapsed().as_secs_f64();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(sqlstate(e), "53400", "{e}");
    }
    assert!(
        ok >= 29 && ok as f64 <= allowed + 2.0,
        "pipelined: accepted {ok}, expected about {allowed:.0}"
    );
    // The connection is still usable once tokens are back.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        c.query_one("SELECT 7", &[]).await.unwrap().get::<_, i32>(0),
        7
    );
}

#[tokio::test]
async fn qps_denial_inside_a_transaction_fails_the_transaction() {
    set_limits("chatty-tx", "qps_limit => 20, burst_multiplier => 1.0");
    let r = Router::start();
    let c = connect(&r.url("rt_app.chatty-tx")).await.unwrap();
    c.batch_execute("BEGIN").await.unwrap();
    c.batch_execute("INSERT INTO notes (body) VALUES ('qps-txn')")
        .await
        .unwrap();
    let mut refused = None;
    for _ in 0..200 {
        if let Err(e) = c.simple_query("SELECT 1").await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("the bucket ran dry");
    assert_eq!(sqlstate(&e), "53400", "{e}");
    // COMMIT always passes the bucket; Postgres turns it into a ROLLBACK.
    c.batch_execute("COMMIT")
        .await
        .expect("COMMIT is not rate-limited");
    let n = admin_sql("SELECT count(*) FROM notes WHERE body = 'qps-txn'");
    assert_eq!(
        n.trim(),
        "0",
        "the transaction's insert must not be committed"
    );
}

/// Limit changes reach an open connection through the catalog's LISTEN
/// connection alone: the cache would hide them for a minute, and no other
/// connection of the tenant is opened.
#[tokio::test]
async fn limit_changes_reach_open_connections_by_listen() {
    set_limits("tuned", "reset => '{qps_limit,max_query_ms}'");
    let r = Router::start_catalog(
        "",
        &CatalogSetup {
            cache_ttl_ms: 60_000,
            negative_ttl_ms: 60_000,
            ..CatalogSetup::default()
        },
    );
    let c = connect(&r.url("rt_app.tuned")).await.unwrap();
    for _ in 0..40 {
        c.simple_query("SELECT 1").await.expect("no limit yet");
    }
    admin_sql("SELECT tenant.alter_tenant('tuned', qps_limit => 5, burst_multiplier => 1.0)");
    let started = Instant::now();
    let mut denied = 0;
    while denied < 10 {
        if let Err(e) = c.simple_query("SELECT 1").await {
            assert_eq!(sqlstate(&e), "53400", "{e}");
            denied += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new qps_limit did not reach the open connection"
        );
    }
    admin_sql("SELECT tenant.alter_tenant('tuned', max_query_ms => 300, reset => '{qps_limit}')");
    let started = Instant::now();
    loop {
        match c.batch_execute("SELECT pg_sleep(0.6)").await {
            Err(e) if sqlstate(&e) == "57014" => break,
            Err(e) if sqlstate(&e) == "53400" => {}
            Err(e) => panic!("{e}"),
            Ok(()) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new max_query_ms did not reach the open connection"
        );
    }
    admin_sql("SELECT tenant.alter_tenant('tuned', reset => '{max_query_ms}')");
}
