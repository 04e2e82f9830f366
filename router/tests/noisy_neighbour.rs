//! No tenant can exhaust what all tenants share (docs/src/limits/index.md),
//! through the router: a lock flood from one tenant (the attack that filled
//! PostgreSQL's shared lock table and stopped every tenant's writes and
//! logins) is refused past the tenant's budget while another tenant keeps
//! writing and logging in, unpooled and pooled per session and per
//! transaction; tenants never share an advisory lock; PostgreSQL itself
//! ends a tenant's idle transaction and statement at the tenant's
//! ceilings, which the tenant cannot lift.
mod common;
use common::*;
use std::sync::OnceLock;
use std::time::Duration;

const ROLES: [&str; 2] = ["rt_nn1", "rt_nn2"];

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&ROLES);
        tenants(&["nn_flood", "nn_calm"], "max_connections => 0");
        tenants(&["nn_sflood", "nn_scalm"], "max_connections => 0");
        tenants(
            &["nn_txflood", "nn_txcalm"],
            "pool_mode => 'transaction', max_connections => 0",
        );
        tenants(&["nn_idle"], "idle_in_transaction_timeout_ms => 300");
        tenants(&["nn_slow"], "statement_timeout_ms => 300");
        admin_sql(
            "GRANT SELECT, INSERT ON notes TO rt_nn1, rt_nn2; \
             GRANT USAGE ON SEQUENCE notes_id_seq TO rt_nn1, rt_nn2",
        );
    });
}

fn unpooled() -> Router {
    fixtures();
    Router::start()
}

/// A router with pooling on (`login = "verify"`): tenants with pool_mode
/// transaction are pooled per transaction, the others per session.
fn pooled() -> Router {
    fixtures();
    Router::start_with(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 12\ntimeout_ms = 20000\n",
    )
}

/// The tenant advisory locks of `tenant` held in the server's shared lock
/// table right now (user locks in its lock space).
fn tenant_locks(tenant: &str) -> i64 {
    admin_sql(&format!(
        "SELECT count(*) FROM pg_locks l JOIN tenant.tenants t ON t.id = '{tenant}' \
         WHERE l.locktype = 'userlock' AND l.classid::bigint = t.lock_space"
    ))
    .trim()
    .parse()
    .expect("count")
}

/// One tenant floods the lock table from `attackers` connections, each
/// holding its whole budget in an open transaction; every way past the
/// budget is refused, and the other tenant's INSERTs and new logins work
/// throughout.
async fn lock_flood_leaves_the_other_tenant_working(r: &Router, flood: &str, calm: &str) {
    assert_eq!(tenant_locks(flood), 0);
    let mut held = Vec::new();
    // Distinct keys per connection: the same key of the same tenant is one
    // lock, and a second session would wait for it.
    for k in 0..4 {
        let base = k * 10_000;
        let a = connect(&r.url(&format!("rt_nn1.{flood}")))
            .await
            .expect("attacker connects");
        a.batch_execute("BEGIN; SET LOCAL search_path = public")
            .await
            .expect("BEGIN");
        // The raw functions: refused, whichever form.
        for raw in [
            "SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, 1000) g",
            "SELECT count(pg_advisory_lock(g)) FROM generate_series(1, 1000) g",
            "SELECT count(pg_try_advisory_xact_lock(g, g)) FROM generate_series(1, 1000) g",
        ] {
            a.batch_execute("SAVEPOINT s").await.expect("savepoint");
            let e = a.simple_query(raw).await.expect_err(raw);
            assert_eq!(sqlstate(&e), "42501", "{raw}: {e}");
            a.batch_execute("ROLLBACK TO SAVEPOINT s")
                .await
                .expect("rollback to");
        }
        // The tenant-scoped ones: the budget (64 by default), then 53400.
        a.batch_execute("SAVEPOINT s").await.expect("savepoint");
        let e = a
            .simple_query(&format!(
                "SELECT count(tenant.advisory_xact_lock({base} + g)) FROM generate_series(1, 1000) g"
            ))
            .await
            .expect_err("past the budget");
        assert_eq!(sqlstate(&e), "53400", "{e}");
        assert!(db_message(&e).contains("max_advisory_locks"), "{e}");
        a.batch_execute("ROLLBACK TO SAVEPOINT s")
            .await
            .expect("rollback to");
        // Up to the budget: held, in a transaction left open.
        assert_eq!(
            first_value(
                &a,
                &format!(
                    "SELECT count(tenant.advisory_xact_lock({base} + g)) FROM generate_series(1, 64) g"
                )
            )
            .await,
            "64"
        );
        held.push(a);
    }
    // What the flood holds: its budget per connection, no more.
    assert_eq!(tenant_locks(flood), 4 * 64);
    // The other tenant writes, and logs in anew, while the flood is held.
    for i in 0..5 {
        let c = connect(&r.url(&format!("rt_nn2.{calm}")))
            .await
            .expect("the other tenant logs in during the flood");
        let n = first_value(
            &c,
            &format!(
                "WITH w AS (INSERT INTO notes (body) VALUES ('calm {i}') RETURNING tenant_id) \
                 SELECT tenant_id FROM w"
            ),
        )
        .await;
        assert_eq!(n, calm);
        assert_eq!(
            first_value(
                &c,
                "SELECT count(tenant.advisory_xact_lock(g)) FROM generate_series(1, 10) g"
            )
            .await,
            "10",
            "the other tenant's own locks work"
        );
    }
    // The attackers' sessions are fine too, once they let go.
    for a in &held {
        a.batch_execute("COMMIT").await.expect("COMMIT");
        assert_eq!(
            first_value(a, "SELECT tenant.try_advisory_xact_lock(1)::text").await,
            "true"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_flood_is_held_to_its_budget_and_other_tenants_keep_working() {
    let r = unpooled();
    lock_flood_leaves_the_other_tenant_working(&r, "nn_flood", "nn_calm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_flood_is_held_to_its_budget_under_session_pooling_too() {
    // The same pooled router: these two tenants are pooled per session.
    let r = pooled();
    lock_flood_leaves_the_other_tenant_working(&r, "nn_sflood", "nn_scalm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_flood_is_held_to_its_budget_under_transaction_pooling_too() {
    let r = pooled();
    lock_flood_leaves_the_other_tenant_working(&r, "nn_txflood", "nn_txcalm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_share_an_advisory_lock_and_a_tenant_contends_with_itself() {
    let r = unpooled();
    let a1 = connect(&r.url("rt_nn1.nn_flood")).await.expect("a1");
    let a2 = connect(&r.url("rt_nn1.nn_flood")).await.expect("a2");
    let b = connect(&r.url("rt_nn2.nn_calm")).await.expect("b");
    assert_eq!(
        first_value(&a1, "SELECT tenant.try_advisory_lock(4242)::text").await,
        "true"
    );
    // The same key of the same tenant is taken (control: locks lock) ...
    assert_eq!(
        first_value(&a2, "SELECT tenant.try_advisory_lock(4242)::text").await,
        "false"
    );
    // ... while another tenant's equal key is another lock.
    assert_eq!(
        first_value(&b, "SELECT tenant.try_advisory_lock(4242)::text").await,
        "true"
    );
    assert_eq!(
        first_value(&a1, "SELECT tenant.advisory_unlock(4242)::text").await,
        "true"
    );
    assert_eq!(
        first_value(&a2, "SELECT tenant.try_advisory_lock(4242)::text").await,
        "true"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_ends_a_tenants_idle_transaction_at_its_ceiling_and_no_one_elses() {
    let r = unpooled();
    let (idle, conn) = tokio_postgres::connect(&r.url("rt_nn1.nn_idle"), tokio_postgres::NoTls)
        .await
        .expect("nn_idle connects");
    let (tx, ended) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = tx.send(conn.await);
    });
    let calm = connect(&r.url("rt_nn2.nn_calm")).await.expect("nn_calm");
    // The tenant cannot lift its ceiling.
    let e = idle
        .batch_execute("SET idle_in_transaction_session_timeout = 0")
        .await
        .expect_err("lifting the ceiling");
    assert_eq!(sqlstate(&e), "42501", "{e}");
    calm.batch_execute("BEGIN").await.expect("calm BEGIN");
    idle.batch_execute("BEGIN; SELECT 1").await.expect("BEGIN");
    // PostgreSQL ends the idle transaction (FATAL 25P03), and the router
    // passes the error on: wait for that event, bounded.
    let result = tokio::time::timeout(Duration::from_secs(20), ended)
        .await
        .expect("the idle transaction is ended within 20 s")
        .expect("connection result");
    let e = result.expect_err("the connection ends with an error");
    assert_eq!(sqlstate(&e), "25P03", "{e}");
    // The other tenant's transaction (default ceiling: 60 s) is still open.
    assert_eq!(
        first_value(&calm, "SELECT tenant.current_tenant_id()").await,
        "nn_calm"
    );
    calm.batch_execute("COMMIT").await.expect("calm COMMIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_statement_ceiling_holds_through_the_router() {
    let r = unpooled();
    let slow = connect(&r.url("rt_nn1.nn_slow")).await.expect("nn_slow");
    for lift in [
        "SET statement_timeout = 0",
        "SET statement_timeout = '1h'",
        "SELECT set_config('statement_timeout', '10s', false)",
    ] {
        let e = slow.batch_execute(lift).await.expect_err(lift);
        assert_eq!(sqlstate(&e), "42501", "{lift}: {e}");
    }
    let e = slow
        .batch_execute("SELECT pg_sleep(5)")
        .await
        .expect_err("past the ceiling");
    assert_eq!(sqlstate(&e), "57014", "{e}");
    // Below the ceiling (and for another tenant) statements run.
    slow.batch_execute("SELECT pg_sleep(0.05)")
        .await
        .expect("below the ceiling");
    let calm = connect(&r.url("rt_nn2.nn_calm")).await.expect("nn_calm");
    calm.batch_execute("SELECT pg_sleep(0.5)")
        .await
        .expect("another tenant's longer statement");
}
