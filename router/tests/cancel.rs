//! Cancel routing: a client's CancelRequest reaches its backend through the
//! router; a request with an unknown key is dropped. The router's counter
//! of forwarded and dropped requests tells the two apart (Postgres itself
//! would ignore a wrong key either way).
mod common;
use common::*;
use std::time::{Duration, Instant};

/// Wait until backend `pid` is running `pg_sleep`.
async fn wait_sleeping(pid: i32) {
    assert!(
        eventually(Duration::from_secs(5), || async move {
            admin_sql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active' \
                 AND query LIKE '%pg_sleep%'"
            ))
            .trim()
                == "1"
        })
        .await,
        "backend {pid} never started sleeping"
    );
}

const FORWARDED: &str = "tenant_router_cancel_requests_total{outcome=\"forwarded\"}";
const DROPPED: &str = "tenant_router_cancel_requests_total{outcome=\"dropped\"}";

#[tokio::test]
async fn pg_sleep_is_canceled_through_the_router() {
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    let pid = backend_pid(&c).await;
    let token = c.cancel_token();
    let sleeper = tokio::spawn(async move {
        let started = Instant::now();
        let res = c.batch_execute("SELECT pg_sleep(30)").await;
        (res, started.elapsed(), c)
    });
    wait_sleeping(pid).await;
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let (res, took, c) = sleeper.await.unwrap();
    let e = res.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    // The router counts the request once Postgres has taken it.
    assert!(
        eventually(Duration::from_secs(5), || async {
            sample(&r, FORWARDED).await == 1.0
        })
        .await
    );
    assert_eq!(sample(&r, DROPPED).await, 0.0);
    // The session is still usable and still the tenant's.
    assert_eq!(visible_notes(&c).await, 3);
}

#[tokio::test]
async fn unknown_cancel_key_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    let pid = backend_pid(&c).await;
    let sleeper = tokio::spawn(async move { c.batch_execute("SELECT pg_sleep(1)").await });
    wait_sleeping(pid).await;
    // The right pid with a guessed key: the router must not forward it.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", r.port))
        .await
        .unwrap();
    s.write_all(&tenant_router::protocol::cancel_request(pid, 12345))
        .await
        .unwrap();
    // The router closes the connection once it has dealt with the request.
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            sample(&r, DROPPED).await == 1.0
        })
        .await
    );
    assert_eq!(sample(&r, FORWARDED).await, 0.0);
    assert!(
        sleeper.await.unwrap().is_ok(),
        "the query ran to completion"
    );
}
