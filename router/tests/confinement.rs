//! Through the router, a tenant session stays inside its tenant: the
//! caller's search_path never reaches set_context's privileged catalog read,
//! a superuser login gets no tenant, other tenants' sessions are invisible
//! and unreachable, and notifications never cross tenants. Each refusal
//! sits next to a control that succeeds.
mod common;
use common::*;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// A client whose notifications arrive on a channel: (channel, payload).
async fn listener(
    url: &str,
) -> (
    tokio_postgres::Client,
    mpsc::UnboundedReceiver<(String, String)>,
) {
    let (client, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    (client, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification within 10 s")
        .expect("listener alive")
}

fn pair(c: &str, p: &str) -> (String, String) {
    (c.to_owned(), p.to_owned())
}

#[tokio::test]
async fn caller_search_path_never_runs_in_set_context() {
    // A planted "=" for text, first on the search_path the client asks for.
    admin_sql(
        "DROP SCHEMA IF EXISTS rt_trap CASCADE; CREATE SCHEMA rt_trap; \
         GRANT USAGE ON SCHEMA rt_trap TO PUBLIC; \
         CREATE FUNCTION rt_trap.eq(text, text) RETURNS boolean LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'planted operator ran as %', current_user; END $$; \
         CREATE OPERATOR rt_trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = rt_trap.eq)",
    );
    let r = Router::start();
    let url = format!(
        "{} options='-c search_path=rt_trap,pg_catalog,public'",
        r.url("rt_app.acme")
    );
    let c = connect(&url)
        .await
        .expect("the context is set despite the trap");
    assert_eq!(visible_notes(&c).await, 3);
    let tenant: String = c
        .query_one("SELECT tenant.current_tenant_id()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tenant, "acme");
    // Control: in this session "=" on text really is the planted operator.
    let e = c
        .batch_execute("SELECT 'a'::text = 'a'::text")
        .await
        .unwrap_err();
    let msg = format!("{e:?}");
    assert!(msg.contains("planted operator ran as rt_app"), "{msg}");
    admin_sql("DROP SCHEMA rt_trap CASCADE");
}

#[tokio::test]
async fn a_superuser_login_gets_no_tenant_context() {
    let r = Router::start();
    let e = connect(&r.url("postgres.acme")).await.unwrap_err();
    let msg = format!("{e:?}");
    assert!(msg.contains("SUPERUSER"), "{msg}");
    // Control: the bypass user, without a tenant, connects and sees all.
    let c = connect(&r.url("postgres")).await.unwrap();
    assert!(visible_notes(&c).await >= 6);
}

#[tokio::test]
async fn other_tenants_sessions_are_invisible_and_unreachable() {
    let r = Router::start();
    let acme = connect(&r.url("rt_app.acme")).await.unwrap();
    let globex = connect(&r.url("rt_app.globex")).await.unwrap();
    let globex_pid = backend_pid(&globex).await;
    for attempt in [
        "SELECT query FROM pg_stat_activity".to_string(),
        "SELECT count(*) FROM pg_locks".to_string(),
        format!("SELECT pg_cancel_backend({globex_pid})"),
        format!("SELECT pg_terminate_backend({globex_pid})"),
        "SELECT lo_create(0)".to_string(),
    ] {
        let e = acme.batch_execute(&attempt).await.unwrap_err();
        assert_eq!(sqlstate(&e), "42501", "{attempt}: {e}");
    }
    // globex is untouched, and a bypass session still sees it.
    assert_eq!(visible_notes(&globex).await, 3);
    let admin = connect(&r.url("postgres")).await.unwrap();
    let seen: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1",
            &[&globex_pid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 1);
}

#[tokio::test]
async fn notifications_never_cross_tenants() {
    let r = Router::start();
    let (acme_listen, mut acme_rx) = listener(&r.url("rt_app.acme")).await;
    let (globex_listen, mut globex_rx) = listener(&r.url("rt_app.globex")).await;
    let (admin_listen, mut admin_rx) = listener(&r.url("postgres")).await;
    // A bypass session sees the namespaced names as they are.
    let (raw_listen, mut raw_rx) = listener(&r.url("postgres")).await;
    raw_listen
        .batch_execute("LISTEN \"acme:jobs\"")
        .await
        .unwrap();
    acme_listen.batch_execute("LISTEN jobs").await.unwrap();
    globex_listen.batch_execute("LISTEN jobs").await.unwrap();
    admin_listen
        .batch_execute("LISTEN jobs; LISTEN pg_tenant_catalog")
        .await
        .unwrap();

    // acme notifies its own jobs channel and tries the router's channel.
    let acme = connect(&r.url("rt_app.acme")).await.unwrap();
    acme.batch_execute("NOTIFY jobs, 'a1'").await.unwrap();
    acme.batch_execute("NOTIFY pg_tenant_catalog, '*'")
        .await
        .unwrap();
    acme.batch_execute("SELECT tenant.notify('jobs', 'a2')")
        .await
        .unwrap();
    let e = acme
        .batch_execute("SELECT pg_notify('jobs', 'a3')")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "42501");
    // Markers, queued after acme's notifications: each listener's first
    // notification on a channel is its marker unless acme's crossed over.
    let globex = connect(&r.url("rt_app.globex")).await.unwrap();
    globex.batch_execute("NOTIFY jobs, 'g1'").await.unwrap();
    admin_sql("NOTIFY pg_tenant_catalog, 'marker'; NOTIFY jobs, 'marker'");

    // Each tenant hears its own channel under the name it listened on (the
    // router takes off the `<tenant>:` prefix pg_tenant put on).
    assert_eq!(next(&mut acme_rx).await, pair("jobs", "a1"));
    assert_eq!(next(&mut acme_rx).await, pair("jobs", "a2"));
    assert_eq!(next(&mut globex_rx).await, pair("jobs", "g1"));
    assert_eq!(next(&mut raw_rx).await, pair("acme:jobs", "a1"));
    let mut admin_seen = vec![next(&mut admin_rx).await, next(&mut admin_rx).await];
    admin_seen.sort();
    assert_eq!(
        admin_seen,
        vec![pair("jobs", "marker"), pair("pg_tenant_catalog", "marker")]
    );
}
