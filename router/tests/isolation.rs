//! Two tenants through the router: each sees only its rows, inserts get
//! the right tenant, a bypass user sees everything.
mod common;
use common::*;

/// The tenant ids a client can see in `notes`.
async fn tenants_seen(c: &tokio_postgres::Client) -> Vec<String> {
    let rows = c
        .query("SELECT DISTINCT tenant_id FROM notes", &[])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn each_tenant_sees_only_its_rows() {
    let r = Router::start();
    let acme = connect(&r.url("rt_app.acme")).await.expect("acme connects");
    let globex = connect(&r.url("rt_app.globex"))
        .await
        .expect("globex connects");
    let row = acme
        .query_one("SELECT tenant.current_tenant_id(), current_user", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("acme"));
    assert_eq!(row.get::<_, String>(1), "rt_app");
    let tenants = tenants_seen(&acme).await;
    assert_eq!(tenants, vec!["acme".to_string()]);
    let g = tenants_seen(&globex).await;
    assert_eq!(g, vec!["globex".to_string()]);
}

#[tokio::test]
async fn inserts_get_the_tenant_automatically() {
    let r = Router::start();
    let mut acme = connect(&r.url("rt_app.acme")).await.unwrap();
    let tx = acme.transaction().await.unwrap();
    let row = tx
        .query_one(
            "INSERT INTO notes (body) VALUES ($1) RETURNING tenant_id",
            &[&"auto"],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "acme");
    let err = tx
        .execute(
            "INSERT INTO notes (tenant_id, body) VALUES ('globex', 'forged')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn bypass_user_sees_all_tenants() {
    let r = Router::start();
    // The bypass login needs postgres's password (scripts/cluster: SCRAM
    // over TCP): a wrong one is refused by PostgreSQL (28P01), none at all
    // never gets in.
    let wrong = r.url("postgres").replace(
        &format!("password={}", password_of("postgres")),
        "password=not-the-password",
    );
    let e = connect(&wrong).await.expect_err("a wrong password");
    assert_eq!(sqlstate(&e), "28P01", "{e}");
    let nopw = format!("host=127.0.0.1 port={} user=postgres dbname={DB}", r.port);
    let e = connect(&nopw).await.expect_err("no password");
    // PostgreSQL asked for one (SCRAM) and the client had none to give.
    assert!(format!("{e:?}").contains("password missing"), "{e:?}");
    // Control: with it, the bypass user is in.
    let pg = connect(&r.url("postgres")).await.unwrap();
    let n: i64 = pg
        .query_one(
            "SELECT count(DISTINCT tenant_id) FROM notes WHERE tenant_id IN ('acme', 'globex')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let t: Option<String> = pg
        .query_one("SELECT tenant.current_tenant_id()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(t, None);
    assert!(
        r.wait_log("bypass user", std::time::Duration::from_secs(5)),
        "{}",
        r.log_text()
    );
    // Counted, since a bypass user sees every tenant's rows.
    let metrics = reqwest::get(r.admin("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "tenant_router_bypass_connections_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn psql_through_the_router() {
    let r = Router::start();
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-tA",
            "-c",
            "SELECT tenant.current_tenant_id() || ':' || count(*) FROM notes",
        ])
        .arg(r.url("rt_app.globex"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "globex:3");
}

#[tokio::test]
async fn tenant_dot_user_order_and_separator() {
    let r = Router::start_with("[identify]\nusername_format = \"tenant.user\"\nseparator = \"__\"");
    let c = connect(&r.url("globex__rt_app")).await.expect("connects");
    let t: Option<String> = c
        .query_one("SELECT tenant.current_tenant_id()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(t.as_deref(), Some("globex"));
}

#[tokio::test]
async fn database_name_pattern_identifies_the_tenant() {
    let r = Router::start_with(&format!(
        "[identify]\nusername_format = \"none\"\ndatabase_pattern = \"{{tenant}}_db\"\ndefault_database = \"{DB}\""
    ));
    let url = format!(
        "host=127.0.0.1 port={} user=rt_app password={PASSWORD} dbname=acme_db",
        r.port
    );
    let c = connect(&url).await.expect("connects");
    let row = c
        .query_one("SELECT tenant.current_tenant_id(), current_database()", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("acme"));
    assert_eq!(row.get::<_, String>(1), DB);
    assert_eq!(visible_notes(&c).await, 3);
}
