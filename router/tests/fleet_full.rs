//! Limits across several routers when the catalog server's table of
//! tenants with leases is full (`pg_tenant.fleet_max_tenants`): a login of
//! one more tenant is admitted by this router's share (`local_share`), and
//! that must not cost every other tenant its shared count: the lease
//! connection stays up, and a reconnection restores every tenant that has
//! room. A test binary of its own: filling the table would refuse the
//! leases of any test running beside it.
mod common;

use common::{admin_sql, connect, eventually, postgres_tcp_url, set_limits, sqlstate, Router, DB};
use std::time::Duration;

/// The catalog server's count of the tenant's connections (0 without).
fn fleet_count(tenant: &str) -> i64 {
    admin_sql(&format!(
        "SELECT coalesce((SELECT connections FROM tenant.fleet_counts() WHERE tenant = '{tenant}'), 0)"
    ))
    .trim()
    .parse()
    .expect("a count")
}

async fn expect_refused(r: &Router, user: &str, tenant: &str, max: i32) {
    let e = connect(&r.url(user)).await.expect_err("over the limit");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    assert_eq!(
        e.as_db_error().map(|d| d.message().to_string()),
        Some(format!(
            "too many connections for tenant \"{tenant}\": its max_connections is {max}"
        ))
    );
}

#[tokio::test]
async fn a_full_lease_table_costs_only_the_tenant_without_room() {
    set_limits("full_b", "max_connections => 2");
    set_limits("full_c", "max_connections => 3");
    let r = Router::start_with("[fleet]\nshared_connection_limits = true\n");
    let b1 = connect(&r.url("rt_app.full_b"))
        .await
        .expect("first of full_b");
    assert_eq!(fleet_count("full_b"), 1);
    // Another router's place of full_b (a superuser backend's lease), then
    // leases of other tenants until the table is full.
    let other = connect(&postgres_tcp_url(DB))
        .await
        .expect("a superuser connection");
    let got: bool = other
        .query_one("SELECT tenant.fleet_acquire('full_b', 2)", &[])
        .await
        .expect("acquire")
        .get(0);
    assert!(got);
    let fill = "DO $$ BEGIN \
                  FOR n IN 1..2000000 LOOP PERFORM tenant.fleet_acquire('full-fill-' || n, 1); END LOOP; \
                EXCEPTION WHEN configuration_limit_exceeded THEN NULL; END $$";
    other.batch_execute(fill).await.expect("filled");
    let full: bool = other
        .query_one(
            "SELECT count(*) = current_setting('pg_tenant.fleet_max_tenants')::int FROM tenant.fleet_counts()",
            &[],
        )
        .await
        .expect("counts")
        .get(0);
    assert!(full, "the table is full");
    assert_eq!(fleet_count("full_b"), 2);

    // full_c has no room: admitted by this router's share (local_share).
    let c1 = connect(&r.url("rt_app.full_c"))
        .await
        .expect("admitted by the router's share");
    assert_eq!(fleet_count("full_c"), 0, "no room for it in the database");
    // full_b is still counted in the database for this router: its third
    // connection is refused by the shared count (this router alone holds
    // one, and its local share would be 2).
    expect_refused(&r, "rt_app.full_b", "full_b", 2).await;
    assert_eq!(fleet_count("full_b"), 2, "the router's lease stayed");

    // The lease connection is lost; meanwhile the table stays full. The
    // reconnection restores full_b (it has an entry) though full_c has
    // none.
    let ended = admin_sql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name LIKE '%fleet leases'",
    );
    assert_eq!(ended.trim(), "1");
    assert!(
        r.wait_log(
            "restoring every lease at once was refused",
            Duration::from_secs(15)
        ),
        "{}",
        r.log_text()
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            fleet_count("full_b") == 2
        })
        .await,
        "full_b restored: {}",
        fleet_count("full_b")
    );
    expect_refused(&r, "rt_app.full_b", "full_b", 2).await;

    // The uncounted session leaves: nothing to give back in the database;
    // the counted one leaves: its lease goes back.
    drop(c1);
    drop(b1);
    assert!(
        eventually(Duration::from_secs(5), || async {
            fleet_count("full_b") == 1
        })
        .await,
        "full_b's lease given back: {}",
        fleet_count("full_b")
    );
    assert_eq!(fleet_count("full_c"), 0);
    drop(other);
    assert!(
        eventually(Duration::from_secs(10), || async {
            fleet_count("full_b") == 0
        })
        .await
    );
}
