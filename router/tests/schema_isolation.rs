//! Schema isolation through the router (docs/src/isolation/schema.md): two
//! schema tenants, in session and in transaction pooling, on one pooled
//! backend: each sees only its schema (a qualified name of the other's is
//! refused 42501, the other's schema on its search_path finds nothing,
//! 42P01), a backend switched between them gets each tenant's path, and a
//! tenant's own `SET search_path` never reaches the next client.
mod common;
use common::*;
use std::sync::OnceLock;
use tokio_postgres::Client;

const LOGIN: &str = "rt_sch1";

/// Two session tenants and two transaction-pooled ones, provisioned with
/// `tenant.provision_tenant`, each with an `invoices` table of its own
/// (owned by its role) and the shared schema `rt_sch_ref` after its own.
fn router() -> Router {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&[LOGIN]);
        admin_sql(&format!(
            "ALTER ROLE {LOGIN} NOINHERIT; CREATE SCHEMA IF NOT EXISTS rt_sch_ref; \
             CREATE TABLE IF NOT EXISTS rt_sch_ref.rates (code text PRIMARY KEY); \
             INSERT INTO rt_sch_ref.rates VALUES ('EUR') ON CONFLICT DO NOTHING"
        ));
        for (id, mode) in [
            ("sch_ra", "session"),
            ("sch_rb", "session"),
            ("sch_ta", "transaction"),
            ("sch_tb", "transaction"),
        ] {
            tenants(
                &[id],
                &format!(
                    "isolation => 'schema', schema_name => 'rt_{id}', role_name => 'rt_{id}_role', \
                     login_roles => '{{{LOGIN}}}', shared_schemas => '{{rt_sch_ref}}', \
                     pool_mode => '{mode}', max_connections => 0"
                ),
            );
            admin_sql(&format!(
                "SET client_min_messages = warning; SELECT tenant.provision_tenant('{id}'); \
                 GRANT USAGE ON SCHEMA rt_sch_ref TO rt_{id}_role; \
                 GRANT SELECT ON rt_sch_ref.rates TO rt_{id}_role; \
                 CREATE TABLE IF NOT EXISTS rt_{id}.invoices (body text PRIMARY KEY); \
                 ALTER TABLE rt_{id}.invoices OWNER TO rt_{id}_role; \
                 INSERT INTO rt_{id}.invoices VALUES ('{id} secret') ON CONFLICT DO NOTHING"
            ));
        }
    });
    // One pooled backend for the login role: every tenant shares it.
    Router::start_with("[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 1\n")
}

fn path_of(id: &str) -> String {
    format!("rt_{id}, rt_sch_ref")
}

async fn tenant(r: &Router, id: &str) -> Client {
    connect(&r.url(&format!("{LOGIN}.{id}")))
        .await
        .unwrap_or_else(|e| panic!("{id}: {e}"))
}

/// The SQLSTATE of a statement that must fail.
async fn refused(c: &Client, sql: &str) -> String {
    match c.simple_query(sql).await {
        Ok(_) => panic!("{sql} succeeded"),
        Err(e) => sqlstate(&e),
    }
}

/// What a tenant sees, and what it cannot reach of `other`.
async fn confined(c: &Client, id: &str, other: &str) {
    assert_eq!(first_value(c, "SHOW search_path").await, path_of(id));
    assert_eq!(
        first_value(c, "SELECT current_user").await,
        format!("rt_{id}_role")
    );
    // Control: its own schema, unqualified and qualified, and the shared one.
    assert_eq!(
        first_value(c, "SELECT body FROM invoices").await,
        format!("{id} secret")
    );
    assert_eq!(
        first_value(c, &format!("SELECT count(*) FROM rt_{id}.invoices")).await,
        "1"
    );
    assert_eq!(first_value(c, "SELECT code FROM rates").await, "EUR");
    // The other's schema by a qualified name: no USAGE.
    assert_eq!(
        refused(c, &format!("SELECT body FROM rt_{other}.invoices")).await,
        "42501"
    );
    // The other's schema on its own search_path: nothing found there.
    c.batch_execute(&format!("SET search_path = rt_{other}"))
        .await
        .expect("SET search_path");
    assert_eq!(refused(c, "SELECT body FROM invoices").await, "42P01");
    c.batch_execute("RESET search_path").await.expect("RESET");
    assert_eq!(first_value(c, "SHOW search_path").await, path_of(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tenants_see_only_their_schema_and_a_reused_backend_switches_path() {
    let r = router();
    let a = tenant(&r, "sch_ra").await;
    confined(&a, "sch_ra", "sch_rb").await;
    let pid = backend_pid(&a).await;
    // A leaves its path changed; its backend goes back to the pool.
    a.batch_execute("SET search_path = rt_sch_ref")
        .await
        .expect("SET");
    drop(a);
    let b = tenant(&r, "sch_rb").await;
    assert_eq!(backend_pid(&b).await, pid, "one pooled backend, reused");
    confined(&b, "sch_rb", "sch_ra").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_pooled_tenants_share_a_backend_and_keep_their_own_path() {
    let r = router();
    let a = tenant(&r, "sch_ta").await;
    let b = tenant(&r, "sch_tb").await;
    let pid = backend_pid(&a).await;
    assert_eq!(backend_pid(&b).await, pid, "one backend serves both");
    confined(&a, "sch_ta", "sch_tb").await;
    confined(&b, "sch_tb", "sch_ta").await;
    // A's own SET search_path (even to B's schema) stays A's: B's next
    // transaction on the same backend has B's path and B's rows.
    a.batch_execute("SET search_path = rt_sch_tb, rt_sch_ref")
        .await
        .expect("SET");
    assert_eq!(refused(&a, "SELECT body FROM invoices").await, "42P01");
    assert_eq!(first_value(&b, "SHOW search_path").await, path_of("sch_tb"));
    assert_eq!(
        first_value(&b, "SELECT body FROM invoices").await,
        "sch_tb secret"
    );
    assert_eq!(backend_pid(&b).await, pid);
    // A gets its setting back on its next transaction (the router carries
    // a client's own settings), and still cannot reach B.
    assert_eq!(
        first_value(&a, "SHOW search_path").await,
        "rt_sch_tb, rt_sch_ref"
    );
    assert_eq!(
        refused(&a, "SELECT body FROM rt_sch_tb.invoices").await,
        "42501"
    );
    // RESET ALL drops it: the tenant's path again.
    a.batch_execute("RESET ALL").await.expect("RESET ALL");
    assert_eq!(first_value(&a, "SHOW search_path").await, path_of("sch_ta"));
    assert_eq!(
        first_value(&a, "SELECT body FROM invoices").await,
        "sch_ta secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_shows_isolation_and_schema() {
    let r = router();
    // The router reads a tenant's row when a connection needs it.
    let c = tenant(&r, "sch_ra").await;
    assert_eq!(first_value(&c, "SELECT 1").await, "1");
    let row = router_row(&r, "sch_ra").await;
    assert_eq!(row["isolation"], "schema", "{row}");
    assert_eq!(row["schema_name"], "rt_sch_ra", "{row}");
}
