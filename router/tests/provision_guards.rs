//! `tenant-router tenants provision` (docs/src/isolation/database.md,
//! Provisioning) opens a tenant database to the tenant's own login roles
//! and nothing else: it refuses a tenant without `login_roles` (CONNECT
//! would go to every application role, tenant_app), a database that is
//! another tenant's, the catalog's or a template, and a template that is
//! another tenant's database or the catalog; and it grants CONNECT only
//! once the database is bound to the tenant. Each refusal next to a
//! provisioning that succeeds.
mod common;
use common::*;
use std::process::Command;

/// `tenant-router tenants provision ID [--template T]`: (status, stdout, stderr).
/// The two tests make roles and tenants and grant on schema `tenant` in
/// the same catalog: run at once, their GRANTs collided ("tuple
/// concurrently updated") and one's setup undid the other's. Each holds
/// this while it runs.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn provision(tenant: &str, template: Option<&str>) -> (bool, String, String) {
    let c = cluster();
    let url = format!("host={} port={} user=postgres dbname={DB}", c.sock, c.port);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenant-router"));
    cmd.args(["tenants", "provision", "--url", &url, tenant]);
    if let Some(t) = template {
        cmd.args(["--template", t]);
    }
    let out = cmd.output().expect("run tenant-router tenants provision");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (CONNECT of `role` on `db`, whether `db` exists), as "t|t".
fn connect_and_exists(role: &str, db: &str) -> String {
    admin_sql(&format!(
        "SELECT coalesce((SELECT has_database_privilege('{role}', '{db}', 'CONNECT') \
                           FROM pg_database WHERE datname = '{db}'), false), \
                EXISTS (SELECT FROM pg_database WHERE datname = '{db}')"
    ))
    .trim()
    .to_owned()
}

#[test]
fn provisioning_opens_a_database_to_its_tenants_login_roles_only() {
    let _serial = one_at_a_time();
    cluster();
    scram_app_roles(&["rt_pg_own", "rt_pg_other"]);
    for db in ["pg_own_db", "pg_copy_db"] {
        sql_in(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        );
    }
    admin_sql(
        "SET client_min_messages = warning; \
         SELECT tenant.drop_tenant(id) FROM tenant.tenants WHERE id LIKE 'pg-%'",
    );
    tenants(
        &["pg-own"],
        "isolation => 'database', database_name => 'pg_own_db'",
    );
    tenants(
        &["pg-copy"],
        "isolation => 'database', database_name => 'pg_copy_db', login_roles => '{rt_pg_other}'",
    );
    tenants(
        &["pg-tpl"],
        "isolation => 'database', database_name => 'template1', login_roles => '{rt_pg_other}'",
    );
    tenants(
        &["pg-cat"],
        &format!(
            "isolation => 'database', database_name => '{DB}', login_roles => '{{rt_pg_other}}'"
        ),
    );

    // No login_roles: refused before anything is created (it granted
    // CONNECT to tenant_app, so every application role of every tenant
    // could log in to it directly and read its catalog and tables).
    let (ok, out, err) = provision("pg-own", None);
    assert!(!ok, "{out}");
    assert!(
        err.contains("tenant \"pg-own\" has no login_roles"),
        "{err}"
    );
    assert_eq!(connect_and_exists("rt_pg_other", "pg_own_db"), "f|f");
    // Control: with its login role, provisioned, and open to that role only.
    admin_sql("SELECT tenant.alter_tenant('pg-own', login_roles => '{rt_pg_own}')");
    let (ok, out, err) = provision("pg-own", None);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("grant CONNECT on \"pg_own_db\" to \"rt_pg_own\": done"),
        "{out}"
    );
    assert_eq!(connect_and_exists("rt_pg_own", "pg_own_db"), "t|t");
    assert_eq!(connect_and_exists("rt_pg_other", "pg_own_db"), "f|t");

    // Another tenant (tenant_admin's doing) naming the same database:
    // refused, and its login role gets no CONNECT on it (it was granted
    // before the binding failed). While both name it, neither is
    // provisioned: the catalog is ambiguous.
    tenants(
        &["pg-thief"],
        "isolation => 'database', database_name => 'pg_own_db', login_roles => '{rt_pg_other}'",
    );
    let (ok, out, err) = provision("pg-thief", None);
    assert!(!ok, "{out}");
    assert!(
        err.contains("database \"pg_own_db\" cannot be tenant \"pg-thief\"'s database: it is the database of tenant \"pg-own\""),
        "{err}"
    );
    assert_eq!(connect_and_exists("rt_pg_other", "pg_own_db"), "f|t");
    let (ok, _, err) = provision("pg-own", None);
    assert!(!ok);
    assert!(
        err.contains("it is the database of tenant \"pg-thief\""),
        "{err}"
    );

    // A template database or the catalog database as the tenant's database.
    let (ok, _, err) = provision("pg-tpl", None);
    assert!(!ok);
    assert!(
        err.contains(
            "\"template1\" cannot be tenant \"pg-tpl\"'s database: it is a template database"
        ),
        "{err}"
    );
    assert_eq!(
        sql_in(
            "template1",
            "SELECT count(*) FROM pg_extension WHERE extname = 'pg_tenant'"
        ),
        "0"
    );
    let (ok, _, err) = provision("pg-cat", None);
    assert!(!ok);
    assert!(err.contains("it is the catalog database"), "{err}");
    assert_eq!(
        admin_sql("SELECT count(*) FROM tenant.database_binding").trim(),
        "0"
    );

    // Another tenant's database or the catalog as the template: refused,
    // nothing created; control: template0.
    for (template, why) in [
        ("pg_own_db", "it is the database of tenant \"pg-own\""),
        (DB, "it is the catalog database"),
    ] {
        let (ok, out, err) = provision("pg-copy", Some(template));
        assert!(!ok, "{template}: {out}");
        assert!(
            err.contains(&format!(
                "template \"{template}\" cannot be used for tenant \"pg-copy\"'s database: {why}"
            )),
            "{err}"
        );
        assert_eq!(connect_and_exists("rt_pg_other", "pg_copy_db"), "f|f");
    }
    let (ok, out, err) = provision("pg-copy", Some("template0"));
    assert!(ok, "{out}{err}");
    assert_eq!(connect_and_exists("rt_pg_other", "pg_copy_db"), "t|t");
}

/// A database tenant the catalog places on a named upstream lives on
/// another server: provisioning through the catalog's server would create
/// and bind its database where its sessions never go (and the router's
/// hint for its missing database points here). Refused before anything
/// is created, naming the upstream; control: placed back on the main
/// upstream, it is provisioned.
#[test]
fn a_tenant_placed_on_another_upstream_is_not_provisioned_on_the_catalogs_server() {
    let _serial = one_at_a_time();
    cluster();
    scram_app_roles(&["rt_pg_far"]);
    sql_in("postgres", "DROP DATABASE IF EXISTS pg_far_db WITH (FORCE)");
    admin_sql(
        "SET client_min_messages = warning; \
         SELECT tenant.drop_tenant('pg-far') FROM tenant.tenants WHERE id = 'pg-far'",
    );
    tenants(
        &["pg-far"],
        "isolation => 'database', database_name => 'pg_far_db', login_roles => '{rt_pg_far}', upstream => 'b'",
    );
    let (ok, out, err) = provision("pg-far", None);
    assert!(!ok, "{out}");
    assert!(
        err.contains("tenant \"pg-far\" lives on upstream \"b\""),
        "{err}"
    );
    assert_eq!(connect_and_exists("rt_pg_far", "pg_far_db"), "f|f");
    admin_sql("SELECT tenant.alter_tenant('pg-far', upstream => 'main')");
    let (ok, out, err) = provision("pg-far", None);
    assert!(ok, "{out}{err}");
    assert_eq!(connect_and_exists("rt_pg_far", "pg_far_db"), "t|t");
}
