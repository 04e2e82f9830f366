//! The gate of a tenant database (docs/src/isolation/database.md): a tenant
//! database has no row level security to fall back on, so an application
//! role that logs in straight to PostgreSQL with its password (no router,
//! no context) runs nothing there but the context call: no table, no
//! catalog read, no function (an inlined SQL function included), no COPY,
//! DO or EXPLAIN. Controls: the same role in the catalog database (no
//! gate), a superuser in the tenant database, and the tenant through the
//! router with its sealed context.
mod common;
use common::wire::psql_as;
use common::*;
use std::process::Command;

const SECRET: &str = "sk_gate_secret_41d2";

fn direct(db: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=rt_gate password={PASSWORD} dbname={db}",
        cluster().port
    )
}

#[tokio::test]
async fn an_application_role_runs_nothing_in_a_tenant_database_without_a_context() {
    cluster();
    scram_app_roles(&["rt_gate"]);
    sql_in("postgres", "DROP DATABASE IF EXISTS gate_db WITH (FORCE)");
    tenants(
        &["gate-t"],
        "isolation => 'database', database_name => 'gate_db', login_roles => '{rt_gate}'",
    );
    // The tenant read-only and disabled would change nothing for a direct
    // login; the gate refuses it whatever the row says.
    let c = cluster();
    let url = format!("host={} port={} user=postgres dbname={DB}", c.sock, c.port);
    let out = Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .args(["tenants", "provision", "--url", &url, "gate-t"])
        .output()
        .expect("provision");
    assert!(out.status.success(), "{out:?}");
    sql_in(
        "gate_db",
        &format!(
            "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL); \
             INSERT INTO items VALUES (1, 'one'); \
             GRANT SELECT, INSERT ON items TO rt_gate; \
             CREATE FUNCTION api_key() RETURNS text LANGUAGE sql AS $$ SELECT '{SECRET}' $$; \
             CREATE FUNCTION api_key_pl() RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN '{SECRET}'; END $$"
        ),
    );

    for sql in [
        "SELECT count(*) FROM items",
        "INSERT INTO items VALUES (2, 'two')",
        "SELECT prosrc FROM pg_catalog.pg_proc WHERE proname = 'api_key'",
        "SELECT pg_catalog.pg_get_functiondef('api_key'::regproc)",
        "SELECT api_key()",
        "SELECT api_key_pl()",
        "SELECT (SELECT 1)",
        "COPY items TO STDOUT",
        "DO $$ BEGIN PERFORM 1; END $$",
        "EXPLAIN SELECT * FROM items",
        "CREATE TEMP TABLE t (x int)",
    ] {
        let e = psql_as(&direct("gate_db"), sql).expect_err(sql);
        assert!(
            e.contains("this is a tenant database, and nothing runs in it before the tenant's context is set"),
            "{sql}: {e}"
        );
    }
    assert_eq!(
        sql_in("gate_db", "SELECT count(*) FROM items"),
        "1",
        "nothing was written"
    );
    // What stays allowed: a constant, SET/SHOW, transaction control.
    assert_eq!(psql_as(&direct("gate_db"), "SELECT 1"), Ok("1".into()));
    assert_eq!(
        psql_as(
            &direct("gate_db"),
            "SET search_path = public; SHOW search_path"
        ),
        Ok("SET\npublic".into())
    );

    // Controls: the same role in the catalog database is not gated (it
    // calls functions and reads its catalog, and sees no tenant's rows);
    // a superuser in the tenant database; the tenant through the router.
    assert_eq!(
        psql_as(
            &direct(DB),
            "SELECT pg_catalog.length('abc') OPERATOR(pg_catalog.+) \
             (SELECT count(*)::int FROM pg_catalog.pg_proc WHERE proname = 'api_key')"
        ),
        Ok("3".into())
    );
    assert_eq!(
        sql_in("gate_db", &format!("SELECT api_key() = '{SECRET}'")),
        "t"
    );
    let r = Router::start();
    let client = connect(&r.url("rt_gate.gate-t")).await.expect("gate-t");
    let row = client
        .query_one(
            "SELECT tenant.current_tenant_id(), (SELECT count(*) FROM items), api_key(), \
                    pg_catalog.current_database()::text",
            &[],
        )
        .await
        .expect("with its context");
    assert_eq!(row.get::<_, String>(0), "gate-t");
    assert_eq!(row.get::<_, i64>(1), 1);
    assert_eq!(row.get::<_, String>(2), SECRET);
    assert_eq!(row.get::<_, String>(3), "gate_db");
}
