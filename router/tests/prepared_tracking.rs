//! Transaction pooling keeps named statements right whatever the size or
//! shape of the messages (the cold review of issue #23): a Bind too large
//! to hold runs the client's own statement, a large simple Query or a
//! Query PostgreSQL ignores after an error never puts the tracking out of
//! step (a Query inside an unsynced batch is synced first), names PostgreSQL cuts to 63 bytes never run another client's
//! statement, and tokio-postgres' COPY (a Sync PostgreSQL ignores) gives
//! its backend back. Each on a pool of one backend, with a client of the
//! same tenant as the control.
mod common;
use bytes::BytesMut;
use common::raw::{self, Raw};
use common::*;
use std::sync::OnceLock;

fn router() -> Router {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&["rt_pt"]);
        tenants(
            &["pt_tx"],
            "pool_mode => 'transaction', max_connections => 0",
        );
        admin_sql(
            "CREATE TABLE IF NOT EXISTS pt_copy (id bigint GENERATED ALWAYS AS IDENTITY, \
               tenant_id text NOT NULL, n int, PRIMARY KEY (tenant_id, id)); \
             SELECT tenant.protect('pt_copy'); \
             GRANT SELECT, INSERT ON pt_copy TO rt_pt",
        );
    });
    Router::start_with(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 1\ntimeout_ms = 3000\n",
    )
}

async fn login(r: &Router) -> Raw {
    Raw::connect(r.port, "rt_pt.pt_tx", DB)
        .await
        .expect("login")
}

/// The tags of `msgs`, and the text of the first column of the first row.
fn tags_and_value(msgs: &[raw::Msg]) -> (String, String) {
    let tags = msgs.iter().map(|m| m.0 as char).collect();
    let value = msgs
        .iter()
        .find(|m| m.0 == b'D')
        .map(|m| String::from_utf8_lossy(&m.1[6..]).into_owned())
        .unwrap_or_default();
    (tags, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_too_large_to_hold_runs_the_clients_own_statement() {
    let r = router();
    let mut y = login(&r).await;
    let mut x = login(&r).await;
    let mut m = raw::parse("S_1", "SELECT 'Y:' || length($1::text)");
    m.extend_from_slice(&raw::sync());
    y.send(&m).await;
    y.until(b'Z').await;
    let mut m = raw::parse("S_1", "SELECT 'X-secret:' || length($1::text)");
    m.extend_from_slice(&raw::run("S_1", &["abc"]));
    x.send(&m).await;
    assert_eq!(tags_and_value(&x.until(b'Z').await).1, "X-secret:3");
    // Y's Bind carries a 200 KB parameter (streamed through the router).
    let big = "p".repeat(200_000);
    y.send(&raw::run("S_1", &[&big])).await;
    let (tags, value) = tags_and_value(&y.until(b'Z').await);
    assert_eq!((tags.as_str(), value.as_str()), ("2DCZ", "Y:200000"));
    // Control: a small Bind of Y's runs Y's too.
    y.send(&raw::run("S_1", &["ab"])).await;
    assert_eq!(tags_and_value(&y.until(b'Z').await).1, "Y:2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_simple_query_leaves_prepared_statements_in_step() {
    let r = router();
    let mut c = login(&r).await;
    let big = format!("SELECT 1 /* {} */", "x".repeat(1 << 20));
    let answers = c.query(&big).await;
    assert!(raw::errors(&answers).is_empty());
    let mut m = raw::parse("s2", "SELECT 2");
    m.extend_from_slice(&raw::run("s2", &[]));
    c.send(&m).await;
    assert_eq!(tags_and_value(&c.until(b'Z').await).0, "12DCZ");
    // Run again: no extra answers, no 26000.
    c.send(&raw::run("s2", &[])).await;
    assert_eq!(
        tags_and_value(&c.until(b'Z').await),
        ("2DCZ".to_owned(), "2".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_postgresql_ignores_after_an_error_does_not_keep_the_backend() {
    let r = router();
    let mut c = login(&r).await;
    // A Query inside an unsynced batch whose Parse fails: the router
    // syncs the batch before the Query (alone, PostgreSQL would skip the
    // Query and the Parse after it, and which of its answers belong to
    // what could not be told), so each part is answered on its own.
    let mut m = raw::parse("", "SELECT 1/0 FROM nowhere_at_all");
    m.extend_from_slice(&raw::query("SELECT 1"));
    m.extend_from_slice(&raw::parse("x", "SELECT 2"));
    m.extend_from_slice(&raw::sync());
    c.send(&m).await;
    let mut tags = String::new();
    for _ in 0..3 {
        tags.push_str(&tags_and_value(&c.until(b'Z').await).0);
    }
    assert_eq!(tags, "EZTDCZ1Z");
    // The client is at rest: the pool's one backend serves another client.
    let other = connect(&r.url("rt_pt.pt_tx")).await.expect("served");
    other.simple_query("SELECT 1").await.expect("query");
    // And the first one's next statements are answered in step.
    let mut m = raw::parse("x", "SELECT 3");
    m.extend_from_slice(&raw::run("x", &[]));
    c.send(&m).await;
    assert_eq!(
        tags_and_value(&c.until(b'Z').await),
        ("12DCZ".to_owned(), "3".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_postgresql_cuts_to_63_bytes_never_run_another_clients_statement() {
    let r = router();
    let stem = "q".repeat(63);
    let (a_name, b_name) = (format!("{stem}_a"), format!("{stem}_b"));
    let mut a = login(&r).await;
    let mut b = login(&r).await;
    let mut m = raw::parse(&a_name, "SELECT 'A'");
    m.extend_from_slice(&raw::sync());
    a.send(&m).await;
    assert!(raw::errors(&a.until(b'Z').await).is_empty());
    let mut m = raw::parse(&b_name, "SELECT 'B'");
    m.extend_from_slice(&raw::run(&b_name, &[]));
    b.send(&m).await;
    let answers = b.until(b'Z').await;
    assert!(raw::errors(&answers).is_empty(), "no 42P05: {answers:?}");
    assert_eq!(tags_and_value(&answers).1, "B");
    a.send(&raw::run(&a_name, &[])).await;
    assert_eq!(tags_and_value(&a.until(b'Z').await).1, "A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_copy_in_gives_its_backend_back() {
    use futures_util::SinkExt;
    let r = router();
    let c = connect(&r.url("rt_pt.pt_tx")).await.expect("copy client");
    let sink = c
        .copy_in("COPY pt_copy (tenant_id, n) FROM STDIN")
        .await
        .expect("copy_in");
    let mut sink = std::pin::pin!(sink);
    sink.send(bytes::Bytes::from_static(b"pt_tx\t1\npt_tx\t2\n"))
        .await
        .expect("data");
    assert_eq!(sink.as_mut().finish().await.expect("finish"), 2);
    // The copy client stays connected, at rest: another client is served
    // by the pool's one backend.
    let other = connect(&r.url("rt_pt.pt_tx")).await.expect("served");
    let rows = other
        .simple_query("SELECT count(*) FROM pt_copy")
        .await
        .expect("query");
    assert!(rows.len() >= 2);
    c.simple_query("SELECT 1")
        .await
        .expect("copy client goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_sent_during_a_failing_copy_never_gives_the_backend_back_early() {
    let r = router();
    let mut a = login(&r).await;
    // COPY whose data fails, a Sync before CopyDone, then Queries and a
    // Sync. PostgreSQL would answer that Sync only because the COPY failed;
    // the router never sends it on (as PostgreSQL ignores it when a COPY
    // goes well), and syncs the unsynced batch before the first Query:
    // every answer is counted, and stays with this client.
    let mut m = raw::parse("", "COPY pt_copy (tenant_id, n) FROM STDIN");
    m.extend_from_slice(&raw::message(b'B', b"\0\0\0\0\0\0\0\0"));
    m.extend_from_slice(&raw::message(b'E', b"\0\0\0\0\0"));
    m.extend_from_slice(&raw::message(b'd', b"pt_tx\tnot-an-int\n"));
    m.extend_from_slice(&raw::sync());
    m.extend_from_slice(&raw::message(b'c', b""));
    m.extend_from_slice(&raw::query("SELECT 'stale1', pg_sleep(0.3)"));
    m.extend_from_slice(&raw::query("SELECT 'stale2'"));
    m.extend_from_slice(&raw::sync());
    a.send(&m).await;
    let answers = a.until(b'Z').await;
    let tags: String = answers.iter().map(|m| m.0 as char).collect();
    assert!(tags.ends_with("EZ"), "{tags}");
    assert_eq!(raw::errors(&answers), vec!["22P02".to_owned()]);
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.extend(a.until(b'Z').await);
    }
    let rows: Vec<String> = rest
        .iter()
        .filter(|m| m.0 == b'D')
        .map(|m| String::from_utf8_lossy(&m.1[6..12]).into_owned())
        .collect();
    assert_eq!(rows, vec!["stale1", "stale2"], "its own answers, in order");
    // Another client of the tenant, on the pool's one backend, gets its
    // own answer, and so does the first client next.
    let mut b = login(&r).await;
    let own = b.query("SELECT 'b-own'").await;
    assert_eq!(
        tags_and_value(&own),
        ("TDCZ".to_owned(), "b-own".to_owned())
    );
    let own = a.query("SELECT 'a-own'").await;
    assert_eq!(
        tags_and_value(&own),
        ("TDCZ".to_owned(), "a-own".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_failing_before_its_data_with_a_sync_pending_ends_the_session_and_nothing_goes_astray(
) {
    let r = router();
    let mut a1 = login(&r).await;
    // COPY ... (FREEZE) fails right after CopyInResponse, before reading
    // anything: PostgreSQL then answers the Sync sent before the data (had
    // it failed on data, it would have ignored it). The router cannot tell
    // which answers follow: the session ends and its backend is closed.
    let mut m = raw::query("COPY pt_copy (tenant_id, n) FROM STDIN (FREEZE)");
    m.extend_from_slice(&raw::sync());
    m.extend_from_slice(&raw::query("SELECT 'LATE-FROM-A1', pg_sleep(0.3)"));
    a1.send(&m).await;
    let mut got = Vec::new();
    while let Ok(Some(msg)) =
        tokio::time::timeout(std::time::Duration::from_secs(20), a1.try_recv()).await
    {
        got.push(msg);
    }
    let codes = raw::errors(&got);
    assert_eq!(
        codes.first().map(String::as_str),
        Some("55000"),
        "{codes:?}"
    );
    assert_eq!(codes.last().map(String::as_str), Some("08P01"), "{codes:?}");
    // The tenant's next client, on the pool's one backend, gets its own
    // answer.
    let mut a2 = login(&r).await;
    let own = a2.query("SELECT 'a2-own'").await;
    assert_eq!(
        tags_and_value(&own),
        ("TDCZ".to_owned(), "a2-own".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_without_end_and_without_sync_end_the_session_not_the_router() {
    let r = router();
    let mut c = login(&r).await;
    // A failing Parse (PostgreSQL now skips to a Sync), then Close
    // messages without end and no Sync: each would be tracked.
    let mut m = raw::parse("", "SELEC 1");
    m.extend_from_slice(&raw::flush());
    c.send(&m).await;
    let mut got = vec![c.recv().await];
    let mut m = BytesMut::new();
    for _ in 0..100_001 {
        m.extend_from_slice(&raw::message(b'C', b"Sx\0"));
    }
    c.send(&m).await;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(20), c.try_recv()).await {
            Ok(Some(msg)) => got.push(msg),
            Ok(None) => break,
            Err(_) => panic!("the session did not end: {:?}", raw::errors(&got)),
        }
    }
    // The FATAL 54000 may be lost to the reset of a socket closed with the
    // client's messages unread; the session ends either way.
    let errors = raw::errors(&got);
    assert_eq!(
        errors.first().map(String::as_str),
        Some("42601"),
        "{errors:?}"
    );
    assert!(errors[1..].iter().all(|e| e == "54000"), "{errors:?}");
    // The tenant's next client is served by the pool's one backend.
    let mut next = login(&r).await;
    let own = next.query("SELECT 'next'").await;
    assert_eq!(tags_and_value(&own), ("TDCZ".to_owned(), "next".to_owned()));
}
