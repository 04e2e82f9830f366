//! Forged notifications on the router's catalog channel (in a file of its
//! own: the flood reaches every router of the test binary, and would
//! empty the kept rows other tests count on).
mod common;
use common::*;
use std::time::Duration;

/// A role that reaches the catalog database but is no tenant (here a
/// monitoring role) floods the router's channel with forged notifications:
/// a thousand "anything changed" and 200,000 distinct names. Tenant
/// sessions cannot (their channels are namespaced); this role can, and it
/// may make the router read rows again, but never stop logins: each
/// notification costs the router constant work, and many "anything
/// changed" make one pass of re-reads. Every login during the flood
/// finishes within a startup timeout of 3 s.
#[tokio::test]
async fn a_flood_of_forged_notifications_does_not_stop_logins() {
    admin_sql(
        "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_notifier') THEN \
         CREATE ROLE rt_notifier LOGIN; END IF; END$$; GRANT pg_monitor TO rt_notifier",
    );
    let r = Router::start_with("startup_timeout_ms = 3000");
    let mut held = Vec::new();
    for t in ["acme", "globex", "initech"] {
        held.push(connect(&r.url(&format!("rt_app.{t}"))).await.unwrap());
    }
    let notified = sample(&r, "tenant_router_catalog_notifications_total").await;
    let c = cluster();
    let url = format!(
        "host={} port={} user=rt_notifier dbname={DB}",
        c.sock, c.port
    );
    let (flood, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let flooding = tokio::spawn(async move {
        let stars =
            (0..1000).map(|_| flood.execute("SELECT pg_notify('pg_tenant_catalog', '*')", &[]));
        futures_util::future::try_join_all(stars).await?;
        flood
            .execute(
                "SELECT count(pg_notify('pg_tenant_catalog', 'forged-' || g)) \
                 FROM generate_series(1, 200000) g",
                &[],
            )
            .await?;
        Ok::<_, tokio_postgres::Error>(())
    });
    let mut logins = 0;
    while !flooding.is_finished() || logins < 10 {
        let t = ["acme", "globex", "bench"][logins % 3];
        let c = connect(&r.url(&format!("rt_app.{t}")))
            .await
            .unwrap_or_else(|e| panic!("login {logins} of {t} during the flood: {e}"));
        assert_eq!(
            first_value(&c, "SELECT tenant.current_tenant_id()").await,
            t
        );
        logins += 1;
    }
    flooding.await.unwrap().expect("the flood ran");
    // Control: the flood reached the router.
    assert!(
        eventually(Duration::from_secs(20), || async {
            sample(&r, "tenant_router_catalog_notifications_total").await >= notified + 201_000.0
        })
        .await,
        "{}",
        prometheus(&r).await
    );
    // The held sessions still work, and so do new logins.
    for c in &held {
        c.simple_query("SELECT 1").await.unwrap();
    }
    connect(&r.url("rt_app.initech")).await.unwrap();
}
