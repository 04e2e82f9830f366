//! Many tenants in the catalog: a tenant's row, once read, serves its new
//! connections without a query; a change drops it and re-reads only what
//! the router holds, in bulk, while logins go on.
mod common;
use common::*;
use std::time::Duration;

const STORM: usize = 3000;

/// Tenants `storm-1` … `storm-3000` (made once, kept between runs). Two
/// tests make them at once: the lock lets the second find the first's.
fn storm_tenants() {
    admin_sql(&format!(
        "SET client_min_messages = warning; DO $$BEGIN \
           PERFORM pg_advisory_xact_lock(hashtext('many_tenants storm')); \
           FOR i IN 1..{STORM} LOOP \
           IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'storm-' || i) THEN \
             PERFORM tenant.create_tenant('storm-' || i); \
           END IF; END LOOP; END$$"
    ));
}

#[tokio::test]
async fn a_kept_row_serves_new_connections_without_a_query() {
    set_limits("kept-row", "reset => '{max_query_ms}'");
    let r = Router::start();
    let first = connect(&r.url("rt_app.kept-row")).await.unwrap();
    drop(first);
    let queries = sample(&r, "tenant_router_catalog_queries_total").await;
    let hits = sample(&r, "tenant_router_catalog_cache_hits_total").await;
    for _ in 0..5 {
        let c = connect(&r.url("rt_app.kept-row")).await.unwrap();
        assert_eq!(
            first_value(&c, "SELECT tenant.current_tenant_id()").await,
            "kept-row"
        );
    }
    assert_eq!(
        sample(&r, "tenant_router_catalog_queries_total").await,
        queries,
        "five connections of a tenant read a moment ago ran no catalog query"
    );
    assert_eq!(
        sample(&r, "tenant_router_catalog_cache_hits_total").await,
        hits + 5.0
    );
    // Control: the kept row does not hide a change.
    admin_sql("SELECT tenant.alter_tenant('kept-row', max_query_ms => 200)");
    router_sees(&r, "kept-row", |t| t["max_query_ms"] == 200).await;
    let c = connect(&r.url("rt_app.kept-row")).await.unwrap();
    let e = c.batch_execute("SELECT pg_sleep(0.5)").await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    admin_sql("SELECT tenant.alter_tenant('kept-row', reset => '{max_query_ms}')");
}

/// One statement changes 3,000 tenants; the router holds three of them
/// (open sessions). It re-reads those three and no other, their sessions
/// get the new limit, and logins of other tenants go on during the storm.
#[tokio::test]
async fn a_storm_of_changes_rereads_only_held_tenants() {
    storm_tenants();
    admin_sql("SELECT count(tenant.alter_tenant(id, reset => '{max_query_ms}')) FROM tenant.tenants WHERE id LIKE 'storm-%'");
    let r = Router::start();
    let mut held = Vec::new();
    for i in 1..=3 {
        let c = connect(&r.url(&format!("rt_app.storm-{i}"))).await.unwrap();
        c.batch_execute("SELECT pg_sleep(0.25)")
            .await
            .expect("no limit yet");
        held.push(c);
    }
    let notified = sample(&r, "tenant_router_catalog_notifications_total").await;
    assert_eq!(sample(&r, "tenant_router_catalog_rereads_total").await, 0.0);
    let storm = std::thread::spawn(|| {
        admin_sql(
            "SELECT count(tenant.alter_tenant(id, max_query_ms => 200)) \
             FROM tenant.tenants WHERE id LIKE 'storm-%'",
        )
    });
    // Logins of a tenant the storm does not touch go on meanwhile.
    let mut logins = 0;
    while !storm.is_finished() || logins < 5 {
        let c = connect(&r.url("rt_app.globex"))
            .await
            .expect("a login during the storm");
        assert_eq!(
            first_value(&c, "SELECT tenant.current_tenant_id()").await,
            "globex"
        );
        logins += 1;
    }
    assert_eq!(storm.join().unwrap().trim(), STORM.to_string());
    assert!(
        eventually(Duration::from_secs(10), || async {
            sample(&r, "tenant_router_catalog_notifications_total").await >= notified + STORM as f64
                && sample(&r, "tenant_router_catalog_rereads_total").await >= 3.0
        })
        .await,
        "{}",
        prometheus(&r).await
    );
    // The open sessions have the new limit.
    for (i, c) in held.iter().enumerate() {
        assert!(
            eventually(Duration::from_secs(5), || async {
                c.batch_execute("SELECT pg_sleep(0.5)")
                    .await
                    .is_err_and(|e| sqlstate(&e) == "57014")
            })
            .await,
            "storm-{} did not get max_query_ms",
            i + 1
        );
    }
    assert_eq!(
        sample(&r, "tenant_router_catalog_rereads_total").await,
        3.0,
        "only the three tenants held were re-read"
    );
    // A tenant the router did not hold reads its new row on its first login.
    let c = connect(&r.url("rt_app.storm-2999")).await.unwrap();
    let e = c.batch_execute("SELECT pg_sleep(0.5)").await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
}

/// A change made by hand (an UPDATE of the catalog's tables, not through
/// alter_tenant or set_password) notifies too (pg_tenant 0.7.0's statement
/// triggers): the kept row is dropped, and new connections get the change.
#[tokio::test]
async fn a_change_made_by_hand_reaches_the_kept_row() {
    set_limits("by-hand", "reset => '{max_query_ms}'");
    admin_sql("SELECT tenant.set_password('by-hand', NULL)");
    let r = Router::start();
    drop(connect(&r.url("rt_app.by-hand")).await.unwrap());
    router_sees(&r, "by-hand", |t| t["max_query_ms"] == 0).await;
    admin_sql("UPDATE tenant.tenants SET max_query_ms = 200 WHERE id = 'by-hand'");
    router_sees(&r, "by-hand", |t| t["max_query_ms"] == 200).await;
    let c = connect(&r.url("rt_app.by-hand")).await.unwrap();
    let e = c.batch_execute("SELECT pg_sleep(0.5)").await.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    // A secret written by hand, then removed by hand.
    admin_sql(
        "INSERT INTO tenant.tenant_secrets (tenant_id, verifier) \
         SELECT 'by-hand', tenant._scram_verifier('by-hand-secret')",
    );
    router_sees(&r, "by-hand", |t| t["has_secret"] == true).await;
    admin_sql("DELETE FROM tenant.tenant_secrets WHERE tenant_id = 'by-hand'");
    router_sees(&r, "by-hand", |t| t["has_secret"] == false).await;
    // Back to the default, by hand.
    admin_sql("UPDATE tenant.tenants SET max_query_ms = NULL WHERE id = 'by-hand'");
    router_sees(&r, "by-hand", |t| t["max_query_ms"] == 0).await;
}

/// A client that names a known tenant but never authenticates makes no
/// state and no series for it (the bound is the tenants in use, not the
/// catalog): 300 failed logins over 300 known tenants leave the router
/// holding nothing, and are counted in the aggregates (tenant_auth.rs
/// checks the same for logins the router verifies itself). Control: one
/// login that authenticates makes its tenant's state.
#[tokio::test]
async fn failed_logins_make_no_tenant_state() {
    storm_tenants();
    let r = Router::start();
    for i in 1..=300 {
        let user = format!("rt_app.storm-{i}");
        let (code, msg) = scram_refusal(r.port, &user).await;
        assert_eq!(code, "28P01", "{user}: {msg}");
    }
    let text = prometheus(&r).await;
    assert_eq!(
        sample(&r, "tenant_router_tenants_tracked").await,
        0.0,
        "{text}"
    );
    assert!(!text.contains("tenant=\"storm-"), "{text}");
    // Relayed logins: PostgreSQL refused the password.
    assert_eq!(
        sample(
            &r,
            "tenant_router_all_tenants_connections_refused_total{reason=\"auth\"}"
        )
        .await,
        300.0,
        "counted in the aggregates: {text}"
    );
    // Control.
    let c = connect(&r.url("rt_app.storm-1")).await.unwrap();
    assert_eq!(
        first_value(&c, "SELECT tenant.current_tenant_id()").await,
        "storm-1"
    );
    assert_eq!(sample(&r, "tenant_router_tenants_tracked").await, 1.0);
}
