//! Authentication relayed through the router for each method the cluster's
//! pg_hba.conf assigns by role-name suffix (scripts/cluster).
mod common;
use common::*;

async fn tenant_of(url: &str) -> Result<Option<String>, tokio_postgres::Error> {
    let c = connect(url).await?;
    Ok(c.query_one("SELECT tenant.current_tenant_id()", &[])
        .await?
        .get(0))
}

#[tokio::test]
async fn scram_sha_256_right_and_wrong_password() {
    let r = Router::start();
    assert_eq!(
        tenant_of(&r.url("rt_app.acme")).await.unwrap().as_deref(),
        Some("acme")
    );
    let bad = r.url("rt_app.acme").replace(PASSWORD, "wrong");
    let e = tenant_of(&bad).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "{e}");
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert_eq!(msg, "password authentication failed for user \"rt_app\"");
}

#[tokio::test]
async fn cleartext_password_right_and_wrong() {
    let r = Router::start();
    assert_eq!(
        tenant_of(&r.url("rt_password.globex"))
            .await
            .unwrap()
            .as_deref(),
        Some("globex")
    );
    let e = tenant_of(&r.url("rt_password.globex").replace(PASSWORD, "nope"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "{e}");
}

#[tokio::test]
async fn trust() {
    let r = Router::start();
    let url = format!(
        "host=127.0.0.1 port={} user=rt_trust.acme dbname={DB}",
        r.port
    );
    assert_eq!(tenant_of(&url).await.unwrap().as_deref(), Some("acme"));
}

/// md5 salts the hash with the user name, which the router rewrites: the
/// client hashes "rt_md5.acme", the server expects "rt_md5". Postgres'
/// own FATAL reaches the client (docs/src/router/index.md: use scram-sha-256). A bypass
/// user, whose name is not rewritten, authenticates with md5 fine.
#[tokio::test]
async fn md5_fails_for_rewritten_names_with_postgres_own_error() {
    let r = Router::start_with("bypass_users = [\"postgres\", \"rt_md5\"]");
    let e = tenant_of(&r.url("rt_md5.acme")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "{e}");
    // The bypass path: right password works, wrong one is refused.
    assert_eq!(tenant_of(&r.url("rt_md5")).await.unwrap(), None);
    let e = tenant_of(&r.url("rt_md5").replace(PASSWORD, "bad"))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "{e}");
}

/// When Postgres itself refuses the backend (here: the role's connection
/// limit, 53300, raised after authentication), its SQLSTATE and message
/// reach the client unchanged.
#[tokio::test]
async fn postgres_refusals_reach_the_client_unchanged() {
    admin_sql(
        "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_limited') THEN \
         CREATE ROLE rt_limited LOGIN PASSWORD 'rt-secret' CONNECTION LIMIT 0; END IF; END$$",
    );
    let r = Router::start();
    // Control: the same path with a role that may connect.
    assert_eq!(
        tenant_of(&r.url("rt_app.acme")).await.unwrap().as_deref(),
        Some("acme")
    );
    let e = tenant_of(&r.url("rt_limited.acme")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    let msg = e.as_db_error().map(|d| d.message().to_string());
    assert_eq!(
        msg.as_deref(),
        Some("too many connections for role \"rt_limited\"")
    );
}
