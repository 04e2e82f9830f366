//! Running the router like a service: SIGHUP reloads the config without
//! dropping connections (and keeps the old one when the new one is
//! invalid); SIGTERM drains (open transactions finish, idle sessions
//! close, new connections are refused) and exits 0, closing what is left
//! after the grace period.
mod common;
use common::*;
use std::time::{Duration, Instant};

async fn current_tenant(c: &tokio_postgres::Client) -> String {
    c.query_one("SELECT tenant.current_tenant_id()", &[])
        .await
        .expect("current_tenant_id")
        .get(0)
}

async fn metrics(r: &Router) -> String {
    reqwest::get(r.admin("/metrics"))
        .await
        .expect("admin API")
        .text()
        .await
        .expect("body")
}

#[tokio::test]
async fn sighup_applies_a_new_config_without_dropping_connections() {
    let r = Router::start();
    let old = connect(&r.url("rt_app.acme")).await.unwrap();
    old.simple_query("BEGIN").await.unwrap();
    assert_eq!(current_tenant(&old).await, "acme");

    // New separator: "rt_app@acme".
    let text = std::fs::read_to_string(&r.config).unwrap();
    let reloaded = text.replace("[catalog]", "[identify]\nseparator = \"@\"\n\n[catalog]");
    std::fs::write(&r.config, &reloaded).unwrap();
    r.signal("HUP");
    assert!(
        r.wait_log("configuration reloaded", Duration::from_secs(5)),
        "{}",
        r.log_text()
    );
    let new = connect(&r.url("rt_app@globex"))
        .await
        .expect("new separator");
    assert_eq!(current_tenant(&new).await, "globex");
    let e = connect(&r.url("rt_app.acme")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28000", "old format refused: {e}");
    // The connection opened before the reload is still there, mid-transaction.
    assert_eq!(current_tenant(&old).await, "acme");
    old.simple_query("COMMIT").await.unwrap();
    assert!(metrics(&r)
        .await
        .contains("tenant_router_config_reloads_total{result=\"ok\"} 1"));

    // An invalid file changes nothing, and says why.
    std::fs::write(
        &r.config,
        reloaded.replace("separator = \"@\"", "separator = 7"),
    )
    .unwrap();
    r.signal("HUP");
    assert!(
        r.wait_log(
            "configuration reload failed; keeping the running configuration",
            Duration::from_secs(5)
        ),
        "{}",
        r.log_text()
    );
    // The reason may follow on the next log lines (TOML errors span
    // several): wait for it too.
    assert!(
        r.wait_log("invalid type: integer `7`", Duration::from_secs(5)),
        "{}",
        r.log_text()
    );
    let still = connect(&r.url("rt_app@acme")).await.expect("kept config");
    assert_eq!(current_tenant(&still).await, "acme");
    assert!(metrics(&r)
        .await
        .contains("tenant_router_config_reloads_total{result=\"error\"} 1"));
    assert!(!old.is_closed() && !new.is_closed());
}

#[tokio::test]
async fn sigterm_lets_an_open_transaction_finish_then_exits_0() {
    let mut r = Router::start_with("shutdown_grace_ms = 20000");
    let busy = connect(&r.url("rt_app.acme")).await.unwrap();
    let idle = connect(&r.url("rt_app.globex")).await.unwrap();
    let marker = format!("drain-{}", std::process::id());
    busy.simple_query("BEGIN").await.unwrap();
    let insert = "INSERT INTO notes (tenant_id, body) VALUES ('acme', $1)";
    busy.execute(insert, &[&marker]).await.unwrap();

    let start = Instant::now();
    r.signal("TERM");
    assert!(r.wait_log("draining sessions", Duration::from_secs(5)));
    // The idle session is closed at once, with 57P01.
    let why = assert_terminated(&idle).await;
    assert!(
        why.contains("shutting down") || why.contains("closed"),
        "{why}"
    );
    // New connections are refused.
    assert!(connect(&r.url("rt_app.acme")).await.is_err());
    // Not ready any more, though the admin API still answers.
    let ready = reqwest::get(r.admin("/ready")).await.unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready["draining"], true);

    // The transaction goes on and commits.
    busy.execute(insert, &[&marker]).await.unwrap();
    busy.simple_query("COMMIT").await.unwrap();
    // Then the session is closed, and the router exits 0, well within the grace.
    let status = r.wait_exit(Duration::from_secs(10)).expect("router exited");
    assert!(status.success(), "{status}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_terminated(&busy).await;
    assert_eq!(committed_notes(&marker), 2);
    admin_sql(&format!("DELETE FROM notes WHERE body = '{marker}'"));
}

#[tokio::test]
async fn sigterm_closes_what_is_left_after_the_grace_period() {
    let mut r = Router::start_with("shutdown_grace_ms = 500");
    let stuck = connect(&r.url("rt_app.acme")).await.unwrap();
    let marker = format!("grace-{}", std::process::id());
    let pid = backend_pid(&stuck).await;
    stuck.simple_query("BEGIN").await.unwrap();
    stuck
        .execute(
            "INSERT INTO notes (tenant_id, body) VALUES ('acme', $1)",
            &[&marker],
        )
        .await
        .unwrap();
    let start = Instant::now();
    r.signal("TERM");
    let status = r.wait_exit(Duration::from_secs(10)).expect("router exited");
    assert!(status.success(), "{status}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(r
        .log_text()
        .contains("sessions still open after the grace period"));
    // The client learns why; its transaction did not commit.
    assert_terminated(&stuck).await;
    wait_backend_gone(pid).await;
    assert_eq!(committed_notes(&marker), 0);
}

#[tokio::test]
async fn a_second_sigterm_closes_at_once() {
    let mut r = Router::start_with("shutdown_grace_ms = 60000");
    let stuck = connect(&r.url("rt_app.globex")).await.unwrap();
    stuck.simple_query("BEGIN").await.unwrap();
    r.signal("TERM");
    assert!(r.wait_log("draining sessions", Duration::from_secs(5)));
    // Control: the transaction keeps the router draining.
    assert!(r.wait_exit(Duration::from_millis(500)).is_none());
    assert_eq!(stuck.simple_query("SELECT 1").await.unwrap().len(), 3);
    let start = Instant::now();
    r.signal("TERM");
    let status = r.wait_exit(Duration::from_secs(5)).expect("router exited");
    assert!(status.success(), "{status}");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(
        r.wait_log("second stop signal", Duration::from_secs(5)),
        "{}",
        r.log_text()
    );
    assert_terminated(&stuck).await;
}
