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

fn set_limits(tenant: &str, args: &str) {
    admin_sql(&format!(
        "SELECT tenant.create_tenant('{tenant}') WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = '{tenant}')"
    ));
    admin_sql(&format!("SELECT tenant.alter_tenant('{tenant}', {args})"));
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
