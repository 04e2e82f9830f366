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
