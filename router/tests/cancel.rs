//! Cancel routing: a client's CancelRequest reaches its backend through the
//! router; a request with an unknown key is dropped.
mod common;
use common::*;
use std::time::{Duration, Instant};

#[tokio::test]
async fn pg_sleep_is_canceled_through_the_router() {
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    let token = c.cancel_token();
    let started = Instant::now();
    let sleeper = tokio::spawn(async move {
        let res = c.batch_execute("SELECT pg_sleep(30)").await;
        (res, c)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let (res, c) = sleeper.await.unwrap();
    let e = res.unwrap_err();
    assert_eq!(sqlstate(&e), "57014", "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(1300),
        "took {:?}",
        started.elapsed()
    );
    // The session is still usable and still the tenant's.
    assert_eq!(visible_notes(&c).await, 3);
}

#[tokio::test]
async fn unknown_cancel_key_is_dropped() {
    use tokio::io::AsyncWriteExt;
    let r = Router::start();
    let c = connect(&r.url("rt_app.acme")).await.unwrap();
    let pid = backend_pid(&c).await;
    let sleeper = tokio::spawn(async move { c.batch_execute("SELECT pg_sleep(1.5)").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The right pid with a guessed key: the router must not forward it.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", r.port))
        .await
        .unwrap();
    s.write_all(&tenant_router::protocol::cancel_request(pid, 12345))
        .await
        .unwrap();
    drop(s);
    assert!(
        sleeper.await.unwrap().is_ok(),
        "the query ran to completion"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(r
        .log_text()
        .contains("cancel request with an unknown key dropped"));
}
