//! A transaction-pooled client's own `SET`s (docs/src/pooling/index.md): pg_tenant
//! reports them (`pg_tenant.session_settings`, never passed on), the router
//! carries them to the client's next backends, `RESET ALL` drops them, and
//! more than 256 settings or 64 KiB end the session with 54000 instead of
//! slowing every transaction (red-team findings, each with a control).
mod common;
use common::raw::{self, Raw};
use common::*;
use std::sync::OnceLock;

fn router() -> Router {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&["rt_set1", "rt_set2", "rt_set3"]);
        tenants(
            &["set_a", "set_b"],
            "pool_mode => 'transaction', max_connections => 0",
        );
    });
    Router::start_with("[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 2\n")
}

/// End the client's backend between transactions, so its next one runs
/// on another.
async fn kill_backend(c: &tokio_postgres::Client) -> i32 {
    let pid: i32 = first_value(c, "SELECT pg_backend_pid()")
        .await
        .parse()
        .expect("pid");
    admin_sql(&format!("SELECT pg_terminate_backend({pid})"));
    wait_backend_gone(pid).await;
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_settings_follow_it_and_reset_all_drops_them() {
    let r = router();
    let c = connect(&r.url("rt_set1.set_a")).await.expect("set_a");
    // RESET ALL where the SETs were made drops them for good.
    c.batch_execute("SET work_mem = '6MB'").await.expect("SET");
    assert_eq!(first_value(&c, "SHOW work_mem").await, "6MB");
    c.batch_execute("RESET ALL").await.expect("RESET ALL");
    kill_backend(&c).await;
    assert_eq!(
        first_value(&c, "SHOW work_mem").await,
        "4MB",
        "not carried any more"
    );
    // A SET follows the client to its next backend.
    c.batch_execute("SET work_mem = '7MB'; SET extra_float_digits = 3")
        .await
        .expect("session SET is allowed");
    let old = kill_backend(&c).await;
    assert_eq!(
        first_value(&c, "SHOW work_mem").await,
        "7MB",
        "carried to the next backend"
    );
    assert_eq!(first_value(&c, "SHOW extra_float_digits").await, "3");
    assert_ne!(
        first_value(&c, "SELECT pg_backend_pid()").await,
        old.to_string()
    );
    // Control: another client of the same tenant never sees them.
    let other = connect(&r.url("rt_set1.set_a")).await.expect("other");
    assert_eq!(first_value(&other, "SHOW work_mem").await, "4MB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_settings_end_the_session_with_54000() {
    let r = router();
    let mut c = Raw::connect(r.port, "rt_set2.set_a", DB)
        .await
        .expect("set_a");
    let msgs = c
        .query(
            "DO $$BEGIN FOR i IN 1..300 LOOP \
               EXECUTE format('SET red.m%s = %L', i, 'x'); END LOOP; END$$",
        )
        .await;
    assert!(raw::errors(&msgs).is_empty(), "{:?}", raw::errors(&msgs));
    // At the end of that transaction the session ends: over 256 settings.
    let (tag, body) = c.recv().await;
    assert_eq!(tag, b'E');
    let (code, msg) = raw::error_of(&body);
    assert_eq!(code, "54000", "{msg}");
    assert!(msg.contains("256 settings"), "{msg}");
    // Control: the other tenant on the same pool is served.
    let other = connect(&r.url("rt_set2.set_b")).await.expect("set_b");
    assert_eq!(
        first_value(&other, "SELECT tenant.current_tenant_id()").await,
        "set_b"
    );
    // Under the cap, a client keeps its settings.
    let d = connect(&r.url("rt_set2.set_a")).await.expect("set_a again");
    d.batch_execute(
        "DO $$BEGIN FOR i IN 1..100 LOOP \
           EXECUTE format('SET red.m%s = %L', i, 'x'); END LOOP; END$$",
    )
    .await
    .expect("100 settings");
    kill_backend(&d).await;
    assert_eq!(first_value(&d, "SHOW red.m100").await, "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_too_large_to_hold_never_reaches_the_client() {
    let r = router();
    let mut a = Raw::connect(r.port, "rt_set3.set_a", DB)
        .await
        .expect("login");
    let msgs = a
        .query("DO $$BEGIN EXECUTE format('SET red.big = %L', repeat('x', 70000)); END$$")
        .await;
    // The statement ran; its report (over 64 KiB) is not passed on...
    assert!(
        !msgs
            .iter()
            .any(|m| m.0 == b'S' && m.1.starts_with(b"pg_tenant.")),
        "pg_tenant's report reached the client"
    );
    assert!(raw::errors(&msgs).is_empty(), "{:?}", raw::errors(&msgs));
    // ...and the session ends over the cap, before another transaction.
    let (tag, body) = a.recv().await;
    assert_eq!(tag, b'E');
    assert_eq!(raw::error_of(&body).0, "54000");
    // Control: a small SET is hidden from the client too, and kept.
    let mut b = Raw::connect(r.port, "rt_set3.set_b", DB)
        .await
        .expect("login");
    let msgs = b.query("SET work_mem = '5MB'").await;
    assert!(!msgs
        .iter()
        .any(|m| m.0 == b'S' && m.1.starts_with(b"pg_tenant.")));
    assert!(raw::errors(&msgs).is_empty());
}
