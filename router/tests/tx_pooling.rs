//! Transaction pooling (docs/src/pooling/index.md): a backend per transaction,
//! switched between tenants through the signed-token path; a failed switch
//! never runs the client's statement; named statements follow the client
//! from backend to backend; session-only features are refused; a client
//! that vanishes mid-transaction leaves nothing behind; cancel keys reach
//! the backend of the moment; many clients share a small pool without
//! errors.
mod common;
use common::*;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ROLES: [&str; 8] = [
    "rt_tx1", "rt_tx2", "rt_tx3", "rt_tx4", "rt_tx5", "rt_tx6", "rt_tx7", "rt_tx8",
];

const FIXTURES: &str = r#"
SET client_min_messages = warning;
GRANT SELECT, INSERT ON notes TO rt_tx1, rt_tx2, rt_tx3, rt_tx4, rt_tx5, rt_tx6, rt_tx7, rt_tx8;
GRANT USAGE ON SEQUENCE notes_id_seq TO rt_tx1, rt_tx2, rt_tx3, rt_tx4, rt_tx5, rt_tx6, rt_tx7, rt_tx8;
INSERT INTO notes (tenant_id, body)
SELECT 'tx' || i, 'tx' || i || ' row ' || g FROM generate_series(0, 9) i, generate_series(1, i + 1) g
WHERE NOT EXISTS (SELECT 1 FROM notes WHERE tenant_id = 'tx0');
"#;

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&ROLES);
        let ten: Vec<String> = (0..10).map(|i| format!("tx{i}")).collect();
        let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
        tenants(&ten, "pool_mode => 'transaction', max_connections => 0");
        tenants(&["tx_off"], "pool_mode => 'transaction'");
        tenants(
            &["tx_kick", "tx_kick2", "tx_stay", "tx_quit"],
            "pool_mode => 'transaction', max_connections => 0",
        );
        tenants(
            &["tx_lim"],
            "pool_mode => 'transaction', max_connections => 2, qps_limit => 5, max_query_ms => 300",
        );
        admin_sql(FIXTURES);
    });
}

fn tx_router(size: usize) -> Router {
    fixtures();
    // A thousand clients log in at once (SCRAM on both sides): give them
    // time.
    Router::start_with(&format!(
        "max_client_connections = 2000\nstartup_timeout_ms = 60000\n[auth]\nlogin = \"verify\"\n\
         [pool]\nenabled = true\nsize = {size}\ntimeout_ms = 20000\n"
    ))
}

/// Rows of tenant `txN`: N + 1.
fn rows_of(i: usize) -> i64 {
    i as i64 + 1
}

async fn tenant_and_count(c: &tokio_postgres::Client) -> (String, i64) {
    let r = c
        .query_one(
            "SELECT tenant.current_tenant_id(), (SELECT count(*) FROM notes WHERE body LIKE $1)",
            &[&"%"],
        )
        .await
        .expect("query");
    (r.get::<_, Option<String>>(0).unwrap_or_default(), r.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_interleaving_on_one_backend_each_see_only_their_own_rows() {
    let r = tx_router(1);
    let a = connect(&r.url("rt_tx1.tx1")).await.expect("tx1");
    let b = connect(&r.url("rt_tx1.tx2")).await.expect("tx2");
    let pid = backend_pid(&a).await;
    for i in 0..1000 {
        assert_eq!(
            tenant_and_count(&a).await,
            ("tx1".into(), rows_of(1)),
            "round {i}"
        );
        assert_eq!(
            tenant_and_count(&b).await,
            ("tx2".into(), rows_of(2)),
            "round {i}"
        );
    }
    assert_eq!(backend_pid(&b).await, pid, "one backend served both");
    let m = prometheus(&r).await;
    let switches = m
        .lines()
        .find_map(|l| {
            l.strip_prefix("tenant_router_pool_tenant_switches_total{pool=\"rt_tx1@router_test\"} ")
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(switches >= 2000, "a switch per transaction: {switches}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_switch_never_runs_the_statement() {
    admin_sql("SELECT tenant.enable_tenant('tx_off')");
    let r = tx_router(1);
    let off = connect(&r.url("rt_tx2.tx_off")).await.expect("tx_off");
    let other = connect(&r.url("rt_tx2.tx3")).await.expect("tx3");
    // The only backend now serves tx3.
    assert_eq!(tenant_and_count(&other).await.0, "tx3");
    admin_sql("SELECT tenant.disable_tenant('tx_off')");
    let e = off
        .simple_query("INSERT INTO notes (tenant_id, body) VALUES ('tx_off', 'must not run')")
        .await
        .expect_err("the switch to a disabled tenant fails");
    let msg = db_message(&e);
    assert!(msg.contains("tx_off") && msg.contains("disabled"), "{e}");
    assert_eq!(
        admin_sql("SELECT count(*) FROM notes WHERE body = 'must not run'").trim(),
        "0"
    );
    // Control: the other tenant goes on, on a backend that is not the failed one.
    assert_eq!(tenant_and_count(&other).await, ("tx3".into(), rows_of(3)));
    admin_sql("SELECT tenant.enable_tenant('tx_off')");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statements_follow_the_client_to_another_backend() {
    let r = tx_router(2);
    let c = connect(&r.url("rt_tx3.tx4")).await.expect("tx4");
    let st = c
        .prepare("SELECT count(*), pg_backend_pid() FROM notes WHERE body LIKE $1")
        .await
        .expect("prepare");
    let first: i32 = c.query_one(&st, &[&"tx4%"]).await.expect("run").get(1);
    // Another client holds the backend `c` used, inside a transaction, so
    // c's next transaction runs on the other one.
    let holder = connect(&r.url("rt_tx3.tx5")).await.expect("tx5");
    let mut seen = std::collections::HashSet::new();
    seen.insert(first);
    holder.batch_execute("BEGIN").await.expect("begin");
    let held = backend_pid(&holder).await;
    for _ in 0..20 {
        let row = c
            .query_one(&st, &[&"tx4%"])
            .await
            .expect("prepared statement runs");
        assert_eq!(row.get::<_, i64>(0), rows_of(4));
        let pid: i32 = row.get(1);
        assert_ne!(pid, held, "the held backend is busy");
        seen.insert(pid);
    }
    holder.batch_execute("COMMIT").await.expect("commit");
    // Same name, other query, other client, on the backend that has c's.
    let other = connect(&r.url("rt_tx3.tx4")).await.expect("tx4 again");
    let st2 = other
        .prepare("SELECT 42::bigint, pg_backend_pid()")
        .await
        .expect("prepare");
    for _ in 0..10 {
        assert_eq!(
            other
                .query_one(&st2, &[])
                .await
                .expect("runs")
                .get::<_, i64>(0),
            42
        );
        assert_eq!(
            c.query_one(&st, &[&"tx4%"])
                .await
                .expect("runs")
                .get::<_, i64>(0),
            rows_of(4)
        );
    }
    assert!(seen.len() >= 2, "ran on two backends: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_only_features_are_refused_with_a_clear_error() {
    let r = tx_router(2);
    let c = connect(&r.url("rt_tx4.tx6")).await.expect("tx6");
    for sql in [
        "LISTEN things",
        "PREPARE p AS SELECT 1",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "SELECT tenant.advisory_lock(1)",
    ] {
        let e = c.simple_query(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&e), "0A000", "{sql}: {e}");
        let msg = db_message(&e);
        assert!(msg.contains("pool_mode is transaction"), "{sql}: {msg}");
    }
    // Controls: the transaction-scoped forms work.
    c.batch_execute(
        "BEGIN; SET LOCAL search_path = public; SELECT tenant.advisory_xact_lock(1); COMMIT",
    )
    .await
    .expect("transaction-scoped forms");
    assert_eq!(tenant_and_count(&c).await, ("tx6".into(), rows_of(6)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_mid_transaction_leaves_no_open_transaction() {
    let r = tx_router(1);
    let a = connect(&r.url("rt_tx5.tx7")).await.expect("tx7");
    a.batch_execute("BEGIN; INSERT INTO notes (tenant_id, body) VALUES ('tx7', 'left open')")
        .await
        .expect("open transaction");
    let pid = backend_pid(&a).await;
    drop(a);
    wait_backend_gone(pid).await;
    // The pool's place is free again: another client gets a new backend.
    let b = connect(&r.url("rt_tx5.tx7")).await.expect("reconnects");
    assert_ne!(backend_pid(&b).await, pid);
    assert_eq!(
        admin_sql("SELECT count(*) FROM notes WHERE body = 'left open'").trim(),
        "0"
    );
    assert_eq!(
        admin_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'rt_tx5' \
             AND state LIKE 'idle in transaction%'"
        )
        .trim(),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_backend_of_the_moment_and_none_between_transactions() {
    let r = tx_router(2);
    let c = connect(&r.url("rt_tx6.tx8")).await.expect("tx8");
    let token = c.cancel_token();
    // Between transactions the client holds no backend: the cancel is
    // dropped and the next statement is unaffected.
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("sent");
    let dropped = eventually(Duration::from_secs(5), || async {
        sample(
            &r,
            "tenant_router_cancel_requests_total{outcome=\"dropped\"}",
        )
        .await
            >= 1.0
    })
    .await;
    assert!(dropped);
    assert_eq!(tenant_and_count(&c).await, ("tx8".into(), rows_of(8)));
    let sleeper = tokio::spawn(async move {
        let started = Instant::now();
        let r = c.simple_query("SELECT pg_sleep(30)").await;
        (r.map(|_| ()), started.elapsed())
    });
    let running = wait_running("rt_tx6", "SELECT pg_sleep(30)").await;
    assert!(running);
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("sent");
    let (result, took) = sleeper.await.expect("join");
    assert_eq!(sqlstate(&result.expect_err("canceled")), "57014");
    assert!(took < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_of_ten_tenants_share_twenty_backends_without_errors() {
    let r = tx_router(20);
    let url = r.url("rt_tx7.tx0");
    let mut tasks = Vec::new();
    for n in 0..1000usize {
        let url = url.replace(".tx0", &format!(".tx{}", n % 10));
        tasks.push(tokio::spawn(async move {
            let c = connect(&url).await.map_err(|e| {
                format!(
                    "connect: {e} {:?}",
                    e.as_db_error()
                        .map(|d| (d.code().code().to_owned(), d.message().to_owned()))
                )
            })?;
            for _ in 0..5 {
                let (t, n_rows) = {
                    let r = c
                        .query_one(
                            "SELECT tenant.current_tenant_id(), (SELECT count(*) FROM notes)",
                            &[],
                        )
                        .await
                        .map_err(|e| format!("query: {e}"))?;
                    (
                        r.get::<_, Option<String>>(0).unwrap_or_default(),
                        r.get::<_, i64>(1),
                    )
                };
                let want = format!("tx{}", n % 10);
                if t != want || n_rows != rows_of(n % 10) {
                    return Err(format!("client {n} saw {t} with {n_rows} rows"));
                }
            }
            Ok::<_, String>(c)
        }));
    }
    let mut clients = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await.expect("join") {
            Ok(c) => clients.push(c),
            Err(e) => errors.push(e),
        }
    }
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        errors.first()
    );
    assert_eq!(clients.len(), 1000);
    let backends: i64 = admin_sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'rt_tx7'")
        .trim()
        .parse()
        .expect("count");
    assert!(backends <= 20, "{backends} backends for 1000 clients");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_limits_hold_across_pooled_transactions() {
    let r = tx_router(4);
    let url = r.url("rt_tx8.tx_lim");
    // max_connections counts client connections, pooled or not.
    let a = connect(&url).await.expect("first");
    let _b = connect(&url).await.expect("second");
    let e = connect(&url).await.expect_err("max_connections is 2");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    // max_query_ms stops a statement on whichever backend runs it.
    let e = a
        .simple_query("SELECT pg_sleep(5)")
        .await
        .expect_err("over max_query_ms");
    assert_eq!(sqlstate(&e), "57014", "{e}");
    let msg = db_message(&e);
    assert!(msg.contains("max_query_ms"), "{msg}");
    // qps_limit 5 (burst 1): 20 statements at once, most refused.
    let mut refused = 0;
    for _ in 0..20 {
        match a.simple_query("SELECT 1").await {
            Ok(_) => {}
            Err(e) if sqlstate(&e) == "53400" => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused >= 10, "only {refused} of 20 refused");
    // Control: another tenant on the same pool is not limited.
    let other = connect(&r.url("rt_tx8.tx9")).await.expect("tx9");
    for _ in 0..20 {
        other.simple_query("SELECT 1").await.expect("unlimited");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_between_transactions_is_replaced_unseen() {
    let r = tx_router(1);
    let c = connect(&r.url("rt_tx8.tx5")).await.expect("tx5");
    let pid = backend_pid(&c).await;
    admin_sql(&format!("SELECT pg_terminate_backend({pid})"));
    wait_backend_gone(pid).await;
    // Between transactions the client held no backend: its next
    // transaction gets another one.
    assert_eq!(tenant_and_count(&c).await, ("tx5".into(), rows_of(5)));
    assert_ne!(backend_pid(&c).await, pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_disconnect_reaches_its_clients_waiting_between_transactions() {
    let r = tx_router(2);
    let kicked = connect(&r.url("rt_tx2.tx_kick")).await.expect("tx_kick");
    let stays = connect(&r.url("rt_tx2.tx_stay")).await.expect("tx_stay");
    // Both now wait between transactions, holding no backend.
    assert_eq!(tenant_and_count(&kicked).await.0, "tx_kick");
    assert_eq!(tenant_and_count(&stays).await.0, "tx_stay");
    let resp = reqwest::Client::new()
        .post(r.admin("/tenants/tx_kick/disconnect"))
        .send()
        .await
        .expect("admin API answers");
    assert!(resp.status().is_success(), "{}", resp.status());
    let msg = assert_terminated(&kicked).await;
    assert!(
        msg.contains("administrator disconnected") || kicked.is_closed(),
        "{msg}"
    );
    // Control: the other tenant's idle client is untouched.
    assert_eq!(tenant_and_count(&stays).await.0, "tx_stay");
}

/// Checkouts of pool `label` so far: every lease the pool handed out
/// (`tenant_router_pool_wait_seconds_count`, observed once per checkout),
/// whether it reused an idle backend, replaced one found unusable or
/// opened a new one. Counted before the transaction runs, so a client that
/// has its answer is counted.
async fn pool_checkouts(r: &Router, label: &str) -> f64 {
    sample(
        r,
        &format!("tenant_router_pool_wait_seconds_count{{pool=\"{label}\"}}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_between_transactions_takes_no_backend_to_say_goodbye() {
    let r = tx_router(1);
    let c = connect(&r.url("rt_tx2.tx_quit")).await.expect("tx_quit");
    assert_eq!(tenant_and_count(&c).await.0, "tx_quit");
    // tokio-postgres closes the statement query_one prepared in the
    // background (Close, Sync) once it is dropped: a statement answered
    // after it makes sure that batch is over before counting, or the
    // SELECT below could ride on its checkout (one checkout, two batches:
    // the flake seen on loaded machines).
    c.simple_query("SELECT 1").await.expect("after the Close");
    // Control: a statement takes one checkout, however it is served (the
    // idle backend reused, or replaced when found unusable, or a new one:
    // on a loaded machine any may happen), and the count says so.
    let before = pool_checkouts(&r, "rt_tx2@router_test").await;
    c.simple_query("SELECT 1").await.expect("a transaction");
    let after_statement = pool_checkouts(&r, "rt_tx2@router_test").await;
    assert_eq!(
        after_statement,
        before + 1.0,
        "one checkout per transaction"
    );
    // Dropping the client sends Terminate: the session ends without one.
    drop(c);
    wait_slots_free(&r, "tx_quit").await;
    assert_eq!(
        pool_checkouts(&r, "rt_tx2@router_test").await,
        after_statement,
        "the Terminate took a backend from the pool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_disconnect_during_a_login_closes_that_session_once_it_is_in() {
    use common::wire::{error_fields, read_msg, scram_first};
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    use postgres_protocol::message::frontend;
    use tokio::io::AsyncWriteExt;
    let r = tx_router(2);
    // A client of tx_kick2 halfway through its SCRAM exchange: the router
    // knows the tenant, the client has not proved itself yet.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", r.port))
        .await
        .expect("connect");
    let mut scram = ScramSha256::new(PASSWORD.as_bytes(), ChannelBinding::unsupported());
    let (_, server_first) = scram_first(&mut s, "rt_tx2.tx_kick2", &scram, "SCRAM-SHA-256").await;
    let resp = reqwest::Client::new()
        .post(r.admin("/tenants/tx_kick2/disconnect"))
        .send()
        .await
        .expect("admin API answers");
    assert!(resp.status().is_success(), "{}", resp.status());
    // The login completes; the session is closed before its first statement runs.
    scram.update(&server_first).expect("server-first");
    let mut m = bytes::BytesMut::new();
    frontend::sasl_response(scram.message(), &mut m).expect("client-final");
    s.write_all(&m).await.expect("send proof");
    loop {
        let (tag, body) = read_msg(&mut s).await;
        match tag {
            b'Z' => break,
            b'E' => panic!("login refused: {:?}", error_fields(&body)),
            _ => {}
        }
    }
    let mut q = bytes::BytesMut::new();
    frontend::query("SELECT 1", &mut q).expect("query");
    let _ = s.write_all(&q).await;
    let (tag, body) = read_msg(&mut s).await;
    assert_eq!(tag, b'E', "the statement must not run");
    let (code, msg) = error_fields(&body);
    assert_eq!(code, "57P01", "{msg}");
    assert!(msg.contains("administrator disconnected"), "{msg}");
    // Control: a login of the tenant after the disconnect is served.
    let c = connect(&r.url("rt_tx2.tx_kick2"))
        .await
        .expect("a later login");
    assert_eq!(tenant_and_count(&c).await.0, "tx_kick2");
}
