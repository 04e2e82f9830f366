//! What one tenant does on a pooled backend never reaches another tenant
//! (red-team findings, each with its attack and a control): a tenant's
//! cancels land before its backend changes hands; a message PostgreSQL
//! refuses, or a timeout a client left, never kills another tenant's
//! session; the random generator's state does not survive the switch.
mod common;
use common::raw::{self, Raw};
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A verifying router with one pooled backend per login role.
fn router() -> Router {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&["rt_hyg1", "rt_hyg2", "rt_hyg3", "rt_hyg4"]);
        tenants(
            &["hyg_ta", "hyg_tb"],
            "pool_mode => 'transaction', max_connections => 0",
        );
        tenants(&["hyg_sa", "hyg_sb"], "max_connections => 0");
    });
    Router::start_with(
        "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 1\ntimeout_ms = 20000\n",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenants_cancels_never_reach_another_tenants_work() {
    let r = router();
    let attacker = connect(&r.url("rt_hyg1.hyg_ta")).await.expect("attacker");
    let victim_url = r.url("rt_hyg1.hyg_tb");
    let done = Arc::new(AtomicBool::new(false));
    let stop = done.clone();
    // The victim shares the only backend, queued behind the attacker.
    let victim = tokio::spawn(async move {
        let c = connect(&victim_url).await.expect("victim");
        let (mut ok, mut errors) = (0u32, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            match c
                .simple_query("SELECT pg_sleep(0.01), tenant.current_tenant_id()")
                .await
            {
                Ok(_) => ok += 1,
                Err(e) => {
                    errors.push(format!("{} {e}", sqlstate(&e)));
                    break;
                }
            }
        }
        (ok, errors)
    });
    // The attacker cancels its own statement around its end, again and
    // again: before the fix, the cancel landed in the victim's statement
    // or in the victim's tenant switch.
    let token = attacker.cancel_token();
    let mut own_canceled = 0;
    for round in 0u64..300 {
        let q = attacker.simple_query("SELECT pg_sleep(0.02)");
        let t = token.clone();
        let delay = Duration::from_micros(18_000 + (round * 997 % 6_000));
        let cancel = async move {
            tokio::time::sleep(delay).await;
            let _ = t.cancel_query(tokio_postgres::NoTls).await;
        };
        let (res, _) = tokio::join!(q, cancel);
        if res.as_ref().is_err_and(|e| sqlstate(e) == "57014") {
            own_canceled += 1;
        }
    }
    done.store(true, Ordering::SeqCst);
    let (ok, errors) = victim.await.expect("join");
    assert!(errors.is_empty(), "the victim was hit: {errors:?}");
    assert!(ok > 10, "the victim ran alongside ({ok} statements)");
    // Control: the attacker's cancels did reach its own statements.
    assert!(own_canceled > 0, "no cancel ever landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_postgres_refuses_never_poisons_another_tenants_backend() {
    let r = router();
    let other = connect(&r.url("rt_hyg2.hyg_tb")).await.expect("other");
    assert_eq!(
        first_value(&other, "SELECT tenant.current_tenant_id()").await,
        "hyg_tb"
    );
    let mut a = Raw::connect(r.port, "rt_hyg2.hyg_ta", DB)
        .await
        .expect("raw login");
    let rows = a.query("SELECT tenant.current_tenant_id()").await;
    assert!(raw::errors(&rows).is_empty());
    // 'p' (a password message) after login: PostgreSQL ends the session.
    a.send(b"p\0\0\0\x06x\0").await;
    let (tag, body) = a.recv().await;
    assert_eq!(tag, b'E', "the client hears PostgreSQL's FATAL");
    assert_eq!(raw::error_of(&body).0, "08P01");
    // The other tenant goes on (on a backend that is not the dead one).
    assert_eq!(
        first_value(&other, "SELECT tenant.current_tenant_id()").await,
        "hyg_tb"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_left_on_a_backend_never_kills_another_tenants_session() {
    let r = router();
    let a = connect(&r.url("rt_hyg3.hyg_ta")).await.expect("a");
    let pid: i32 = first_value(&a, "SELECT pg_backend_pid()")
        .await
        .parse()
        .expect("pid");
    first_value(&a, "SELECT set_config('idle_session_timeout', '50', false)").await;
    // The backend, back in the pool, ends itself.
    wait_backend_gone(pid).await;
    let b = connect(&r.url("rt_hyg3.hyg_tb")).await.expect("b");
    assert_eq!(
        first_value(&b, "SELECT tenant.current_tenant_id()").await,
        "hyg_tb"
    );
    assert_eq!(
        first_value(&a, "SELECT tenant.current_tenant_id()").await,
        "hyg_ta"
    );
    // And a timeout left on a backend that changes tenant is reset.
    first_value(&a, "SELECT set_config('statement_timeout', '1', false)").await;
    assert_eq!(
        first_value(
            &b,
            "SELECT pg_sleep(0.05)::text || tenant.current_tenant_id()"
        )
        .await,
        "hyg_tb"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_random_generator_does_not_survive_a_tenant_switch() {
    let r = router();
    let seeded = admin_sql("SELECT random() FROM (SELECT setseed(0.42)) s")
        .trim()
        .to_owned();
    let a = connect(&r.url("rt_hyg4.hyg_sa")).await.expect("a");
    let pid = backend_pid(&a).await;
    first_value(&a, "SELECT setseed(0.42)").await;
    drop(a);
    let started = Instant::now();
    let b = loop {
        let b = connect(&r.url("rt_hyg4.hyg_sb")).await.expect("b");
        if backend_pid(&b).await == pid {
            break b;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the backend was not reused"
        );
    };
    assert_ne!(
        first_value(&b, "SELECT random()").await,
        seeded,
        "the seed survived"
    );
    // Control: the same seed on the same backend gives that value.
    first_value(&b, "SELECT setseed(0.42)").await;
    assert_eq!(first_value(&b, "SELECT random()").await, seeded);
}
