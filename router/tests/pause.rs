//! Per-tenant PAUSE / RESUME (admin API, docs/src/scaling-out/moving-a-tenant.md): a
//! paused tenant's new transactions and logins wait (transaction pooling
//! before a backend is checked out; session mode at rest), bounded by
//! `pause_timeout_ms` (then 55P03 naming the tenant and the pause); a
//! transaction running at pause time commits and the pause reports when
//! none runs; other tenants never wait.
mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

const TOKEN: &str = "pause-test-token-0123456789";

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&["rt_pz"]);
        tenants(
            &["pz_tx", "pz_tx2", "pz_tx3", "pz_tx4", "pz_other"],
            "pool_mode => 'transaction', max_connections => 0",
        );
        tenants(&["pz_sess", "pz_login"], "max_connections => 0");
        admin_sql(
            "GRANT SELECT, INSERT ON notes TO rt_pz; GRANT USAGE ON SEQUENCE notes_id_seq TO rt_pz",
        );
    });
}

/// A router with transaction pooling (verify logins) for `pool_mode =>
/// 'transaction'` tenants; others get a dedicated backend.
fn router(pause_timeout_ms: u64) -> Router {
    fixtures();
    Router::start_with(&format!(
        "admin_token = \"{TOKEN}\"\npause_timeout_ms = {pause_timeout_ms}\n\
         [auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 4\n"
    ))
}

async fn post(r: &Router, path: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(r.admin(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin API answers");
    (resp.status(), resp.json().await.expect("JSON body"))
}

async fn tenant_view(r: &Router, id: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(r.admin(&format!("/tenants/{id}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin API answers");
    resp.json().await.expect("JSON body")
}

async fn count(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("count")
        .get(0)
}

/// Whether `task` is still waiting after `for_`: the statement has not
/// come back (it waits at the gate).
async fn still_waiting<T>(task: &mut tokio::task::JoinHandle<T>, for_: Duration) -> bool {
    tokio::time::timeout(for_, task).await.is_err()
}

#[tokio::test]
async fn a_paused_tenants_transaction_waits_and_completes_after_resume() {
    let r = router(20_000);
    let c = connect(&r.url("rt_pz.pz_tx")).await.expect("pz_tx");
    let before = count(&c).await;
    let (status, v) = post(&r, "/tenants/pz_tx/pause").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["paused"].as_bool(), v["running"].as_u64()),
        (Some(true), Some(0))
    );
    assert_eq!(tenant_view(&r, "pz_tx").await["paused"], true);
    let mut task = tokio::spawn(async move {
        let n = c
            .execute("INSERT INTO notes (body) VALUES ('while paused')", &[])
            .await;
        (c, n)
    });
    assert!(still_waiting(&mut task, Duration::from_millis(300)).await);
    let (status, v) = post(&r, "/tenants/pz_tx/resume").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["was_paused"], true);
    let (c, n) = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the insert finishes once resumed")
        .expect("task");
    assert_eq!(n.expect("insert"), 1);
    assert_eq!(count(&c).await, before + 1);
    assert_eq!(tenant_view(&r, "pz_tx").await["paused"], false);
}

#[tokio::test]
async fn a_paused_tenants_transaction_fails_with_55p03_after_the_timeout_and_its_session_goes_on() {
    let r = router(300);
    let c = connect(&r.url("rt_pz.pz_tx2")).await.expect("pz_tx2");
    post(&r, "/tenants/pz_tx2/pause").await;
    let e = c
        .simple_query("SELECT 1")
        .await
        .expect_err("refused after pause_timeout_ms");
    assert_eq!(sqlstate(&e), "55P03");
    let msg = db_message(&e);
    assert!(
        msg.contains("tenant \"pz_tx2\" is paused") && msg.contains("pause_timeout_ms (300 ms)"),
        "{msg}"
    );
    post(&r, "/tenants/pz_tx2/resume").await;
    assert_eq!(first_value(&c, "SELECT 41 + 1").await, "42");
}

#[tokio::test]
async fn another_tenant_runs_while_one_is_paused() {
    let r = router(20_000);
    let paused = connect(&r.url("rt_pz.pz_tx3")).await.expect("pz_tx3");
    let other = connect(&r.url("rt_pz.pz_other")).await.expect("pz_other");
    post(&r, "/tenants/pz_tx3/pause").await;
    let mut waiting = tokio::spawn(async move { paused.simple_query("SELECT 1").await.is_ok() });
    for i in 0..20 {
        assert_eq!(
            first_value(&other, &format!("SELECT {i}")).await,
            i.to_string()
        );
    }
    // A new login of another tenant too.
    let late = connect(&r.url("rt_pz.pz_other")).await.expect("login");
    assert_eq!(first_value(&late, "SELECT 'ok'").await, "ok");
    assert!(still_waiting(&mut waiting, Duration::from_millis(100)).await);
    post(&r, "/tenants/pz_tx3/resume").await;
    assert!(tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("resumed")
        .expect("task"));
}

#[tokio::test]
async fn a_transaction_running_at_pause_time_commits_and_the_pause_reports_it() {
    let r = router(20_000);
    let c = connect(&r.url("rt_pz.pz_tx4")).await.expect("pz_tx4");
    let before = count(&c).await;
    c.batch_execute("BEGIN; INSERT INTO notes (body) VALUES ('open at pause')")
        .await
        .expect("begin");
    let (_, v) = post(&r, "/tenants/pz_tx4/pause?wait_ms=0").await;
    assert_eq!(
        (v["running"].as_u64(), v["quiet"].as_bool()),
        (Some(1), Some(false)),
        "{v}"
    );
    // A pause that waits answers once the transaction is over.
    let r2 = r.admin("/tenants/pz_tx4/pause?wait_ms=10000");
    let quiet = tokio::spawn(async move {
        let v: Value = reqwest::Client::new()
            .post(r2)
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin")
            .json()
            .await
            .expect("json");
        v
    });
    c.batch_execute("INSERT INTO notes (body) VALUES ('still in it'); COMMIT")
        .await
        .expect("the open transaction goes on and commits");
    let v = tokio::time::timeout(Duration::from_secs(5), quiet)
        .await
        .expect("pause answered")
        .expect("task");
    assert_eq!(
        (v["running"].as_u64(), v["quiet"].as_bool()),
        (Some(0), Some(true)),
        "{v}"
    );
    post(&r, "/tenants/pz_tx4/resume").await;
    assert_eq!(count(&c).await, before + 2);
}

#[tokio::test]
async fn a_dedicated_session_parks_at_rest_and_its_open_transaction_commits() {
    let r = router(20_000);
    let idle = connect(&r.url("rt_pz.pz_sess"))
        .await
        .expect("idle session");
    let busy = connect(&r.url("rt_pz.pz_sess"))
        .await
        .expect("busy session");
    let before = count(&busy).await;
    busy.batch_execute("BEGIN; INSERT INTO notes (body) VALUES ('session, open')")
        .await
        .expect("begin");
    let (_, v) = post(&r, "/tenants/pz_sess/pause?wait_ms=0").await;
    // The idle session parks at once (it may take a moment to notice);
    // the open transaction still runs.
    assert!(v["running"].as_u64().is_some_and(|n| n >= 1), "{v}");
    let mut parked = tokio::spawn(async move {
        let v = first_value(&idle, "SELECT 'after resume'").await;
        (idle, v)
    });
    busy.batch_execute("INSERT INTO notes (body) VALUES ('session, still'); COMMIT")
        .await
        .expect("the open transaction commits");
    let (_, v) = post(&r, "/tenants/pz_sess/pause?wait_ms=10000").await;
    assert_eq!(v["running"].as_u64(), Some(0), "{v}");
    assert!(still_waiting(&mut parked, Duration::from_millis(300)).await);
    post(&r, "/tenants/pz_sess/resume").await;
    let (_, said) = tokio::time::timeout(Duration::from_secs(5), parked)
        .await
        .expect("the parked session goes on")
        .expect("task");
    assert_eq!(said, "after resume");
    assert_eq!(count(&busy).await, before + 2);
}

#[tokio::test]
async fn a_paused_tenants_login_waits_then_times_out_or_goes_on() {
    let r = router(400);
    post(&r, "/tenants/pz_login/pause").await;
    let e = connect(&r.url("rt_pz.pz_login"))
        .await
        .expect_err("a login waits at most pause_timeout_ms");
    assert_eq!(sqlstate(&e), "55P03", "{e}");
    assert!(db_message(&e).contains("\"pz_login\" is paused"), "{e}");
    let url = r.url("rt_pz.pz_login");
    let mut login = tokio::spawn(async move { connect(&url).await.is_ok() });
    assert!(still_waiting(&mut login, Duration::from_millis(100)).await);
    post(&r, "/tenants/pz_login/resume").await;
    assert!(tokio::time::timeout(Duration::from_secs(5), login)
        .await
        .expect("login answered")
        .expect("task"));
}

#[tokio::test]
async fn pause_refuses_bad_input_and_unknown_tenants() {
    let r = router(1_000);
    let (status, v) = post(&r, "/tenants/pz_tx/pause?wait_ms=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap_or("").contains("wait_ms"), "{v}");
    let (status, _) = post(&r, "/tenants/pz_tx/pause?nope=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(&r, "/tenants/no-such-tenant/pause").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post(&r, "/tenants/Bad%20Id/resume").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let resp = reqwest::Client::new()
        .post(r.admin("/tenants/pz_tx/pause"))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        tenant_view(&r, "pz_tx").await["paused"],
        false,
        "nothing paused"
    );
}
