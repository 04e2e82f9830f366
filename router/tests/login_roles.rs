//! A tenant's `login_roles` (pg_tenant 0.3.0) through the router: a login
//! role not listed gets no context, so its connection fails closed; a
//! listed one, and any role once the list is reset, gets the tenant.
mod common;
use common::*;

async fn tenant_of(url: &str) -> Result<Option<String>, tokio_postgres::Error> {
    let c = connect(url).await?;
    let row = c
        .query_one("SELECT tenant.current_tenant_id()", &[])
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn only_listed_login_roles_get_the_tenant() {
    admin_sql(
        "SELECT tenant.create_tenant('lr-only') \
         WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'lr-only'); \
         SELECT tenant.alter_tenant('lr-only', login_roles => '{rt_app}')",
    );
    let r = Router::start();
    // Not listed: refused, no session.
    let refused = tenant_of(&r.url("rt_trust.lr-only")).await;
    let e = refused.expect_err("rt_trust is not among lr-only's login_roles");
    let text = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string());
    assert!(
        text.contains("is not among the login_roles of tenant \"lr-only\""),
        "{text}"
    );
    // Listed: the tenant.
    assert_eq!(
        tenant_of(&r.url("rt_app.lr-only")).await.expect("rt_app"),
        Some("lr-only".into())
    );
    // Reset: any login role again.
    admin_sql("SELECT tenant.alter_tenant('lr-only', reset => '{login_roles}')");
    assert_eq!(
        tenant_of(&r.url("rt_trust.lr-only"))
            .await
            .expect("rt_trust after reset"),
        Some("lr-only".into())
    );
    admin_sql("SELECT tenant.drop_tenant('lr-only')");
}

/// The case: a tenant whose role_name is a login role of its own
/// (`rt_login_a`). Logging in as `rt_login_a.<another tenant>` with that
/// role's password must not open the other tenant: the session would run
/// as a role that holds the first tenant's privileges. Controls: the role
/// opens its own tenant, and the shared application role opens the other.
#[tokio::test]
async fn a_tenant_role_cannot_open_another_tenant() {
    admin_sql(
        "SELECT tenant.create_app_role('rt_login_a', 'rt-secret') \
         WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_login_a'); \
         GRANT SELECT ON notes TO rt_login_a; \
         SELECT tenant.create_tenant('la-own', role_name => 'rt_login_a') \
         WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'la-own'); \
         SELECT tenant.create_tenant('la-other') \
         WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'la-other')",
    );
    let r = Router::start();
    let e = tenant_of(&r.url("rt_login_a.la-other"))
        .await
        .expect_err("rt_login_a holds la-own's privileges");
    assert_eq!(sqlstate(&e), "28000", "{e}");
    assert_eq!(
        tenant_of(&r.url("rt_login_a.la-own"))
            .await
            .expect("own tenant"),
        Some("la-own".into())
    );
    assert_eq!(
        tenant_of(&r.url("rt_app.la-other"))
            .await
            .expect("shared role"),
        Some("la-other".into())
    );
}
