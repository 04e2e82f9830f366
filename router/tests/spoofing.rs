//! Through the router, every attempt to change the tenant fails and the
//! tenant's rows stay what they were; the control (a legitimate query)
//! always succeeds.
mod common;
use common::*;

#[tokio::test]
async fn sql_cannot_change_the_tenant() {
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    assert_eq!(visible_notes(&c).await, 3);
    for attempt in [
        "SET pg_tenant.tenant_id = 'globex'",
        "SET LOCAL pg_tenant.tenant_id = 'globex'",
        "RESET pg_tenant.tenant_id",
        "SELECT set_config('pg_tenant.tenant_id', 'globex', false)",
        "SELECT set_config('pg_tenant.tenant_id', 'globex', true)",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
    ] {
        let e = c.batch_execute(attempt).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{attempt}: {e}");
        assert_eq!(visible_notes(&c).await, 3, "after {attempt}");
    }
    // These succeed but must not touch the tenant.
    for harmless in ["RESET ALL", "DISCARD ALL"] {
        c.batch_execute(harmless).await.unwrap();
        let t: Option<String> = c
            .query_one("SELECT tenant.current_tenant_id()", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(t.as_deref(), Some("acme"), "after {harmless}");
        assert_eq!(visible_notes(&c).await, 3, "after {harmless}");
    }
}

#[tokio::test]
async fn forged_context_call_is_refused() {
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    let e = c
        .query_one(
            "SELECT tenant.set_context('globex', 'v1.99999999999999.' || repeat('0', 64))",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    assert_eq!(visible_notes(&c).await, 3);
}

#[tokio::test]
async fn startup_options_cannot_set_the_context() {
    let r = Router::start();
    for opts in [
        "-c pg_tenant.tenant_id=globex",
        "--pg_tenant.tenant_id=globex",
        "-c role=postgres",
        "-c session_authorization=postgres",
    ] {
        let url = format!("{} options='{opts}'", r.url("rt_app.acme"));
        let e = connect(&url).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{opts}: {e}");
    }
    // An ordinary option passes through.
    let url = format!("{} options='-c search_path=public'", r.url("rt_app.acme"));
    let c = connect(&url).await.expect("ordinary options pass");
    assert_eq!(visible_notes(&c).await, 3);
}

#[tokio::test]
async fn pgoptions_on_a_direct_connection_is_refused_by_postgres() {
    let c = cluster();
    let url = format!(
        "host=127.0.0.1 port={} user=rt_app password={PASSWORD} dbname={DB} options='-c pg_tenant.tenant_id=globex'",
        c.port
    );
    let e = connect(&url).await.unwrap_err();
    assert_eq!(sqlstate(&e), "42501", "{e}");
    // Control: the same connection without the option works, with no tenant.
    let plain = url.split(" options").next().unwrap().to_string();
    let direct = connect(&plain).await.expect("direct connection");
    assert_eq!(visible_notes(&direct).await, 0);
}

#[tokio::test]
async fn replication_is_refused() {
    let r = Router::start();
    let out = std::process::Command::new("psql")
        .args(["-X", "-c", "IDENTIFY_SYSTEM"])
        .arg(format!("{} replication=database", r.url("rt_app.acme")))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("replication connections are not allowed through tenant-router"),
        "{err}"
    );
    // Control: the same user without replication connects.
    assert!(connect(&r.url("rt_app.acme")).await.is_ok());
}
