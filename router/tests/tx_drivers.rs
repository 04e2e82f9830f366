//! Real drivers in transaction pooling, the hardest case: two clients of
//! two tenants on a pool of one backend, so every transaction of one
//! follows one of the other, the backend is switched (`DISCARD ALL`) each
//! time, and every prepared statement must be prepared again, unseen by
//! the driver. psycopg 3 (`prepare=True`, pipeline mode), node-postgres
//! named queries, pgjdbc with `prepareThreshold=1`.
mod common;
use common::*;
use std::process::Command;
use std::sync::OnceLock;

const FIXTURES: &str = r#"
SET client_min_messages = warning;
GRANT SELECT ON notes TO rt_txd;
INSERT INTO notes (tenant_id, body)
SELECT t, t || ' ' || g FROM (VALUES ('txd_a', 3), ('txd_b', 4)) v(t, n), generate_series(1, n) g
WHERE NOT EXISTS (SELECT 1 FROM notes WHERE tenant_id = 'txd_a');
"#;

fn router() -> Router {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&["rt_txd"]);
        tenants(&["txd_a", "txd_b"], "pool_mode => 'transaction'");
        admin_sql(FIXTURES);
    });
    Router::start_with("[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 1\n")
}

/// Run a driver program with two users; its stdout lines.
fn run_with_two_users(r: &Router, program: &str, args: &[&str]) -> Vec<String> {
    let port = r.port.to_string();
    let mut all = args.to_vec();
    all.extend([
        "127.0.0.1",
        port.as_str(),
        "rt_txd.txd_a",
        "rt_txd.txd_b",
        PASSWORD,
        DB,
    ]);
    run_program(program, &all)
}

/// Statements prepared again on a backend by the router, from /metrics
/// (switches between the two tenants).
async fn switches(r: &Router) -> f64 {
    sample(
        r,
        "tenant_router_pool_tenant_switches_total{pool=\"rt_txd@router_test\"}",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_prepared_statements_and_pipelines_survive_every_switch() {
    let r = router();
    let out = run_with_two_users(&r, "python3", &["tx_psycopg.py"]);
    assert_eq!(
        out,
        vec![
            "prepared txd_a=3 txd_b=4",
            "pipeline 1275",
            "transaction same_backend=True"
        ]
    );
    assert!(switches(&r).await >= 40.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_postgres_named_queries_survive_every_switch() {
    let r = router();
    let out = run_with_two_users(&r, "node", &["tx_node.js"]);
    assert_eq!(out, vec!["named txd_a=3 txd_b=4"]);
    assert!(switches(&r).await >= 40.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgjdbc_server_prepared_statements_survive_every_switch() {
    let r = router();
    let classes = common::wire::temp_dir("txjdbc");
    let jar = "/usr/share/java/postgresql.jar";
    let javac = Command::new("javac")
        .args(["-cp", jar, "-d"])
        .arg(&classes)
        .arg("TxJdbc.java")
        .current_dir(drivers_dir())
        .output()
        .expect("javac");
    assert!(
        javac.status.success(),
        "{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let cp = format!("{jar}:{}", classes.display());
    let out = run_with_two_users(&r, "java", &["-cp", &cp, "TxJdbc"]);
    assert_eq!(out, vec!["prepared txd_a=3 txd_b=4"]);
    assert!(switches(&r).await >= 40.0);
}
