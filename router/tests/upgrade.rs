//! The extension's upgrade path: a database created with the frozen 0.1.0,
//! 0.2.0, 0.3.0, 0.4.0, 0.5.0, 0.6.0, 0.7.0 or 0.8.0 install script keeps its tenants through
//! `ALTER EXTENSION pg_tenant UPDATE`, and ends with exactly the schema of
//! a fresh install. The router reads a catalog of any of them.
mod common;

use common::sql_in as sql;
use common::{cluster, psql};
use std::io::Write;
use std::process::Command;

fn fresh_db(name: &str) {
    sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
    sql("postgres", &format!("CREATE DATABASE {name}"));
}

/// `pg_dump --schema-only --binary-upgrade` lists every member object of
/// the extension (a plain dump shows only `CREATE EXTENSION`). Lines that
/// carry oids, xids or per-run keys are dropped.
fn extension_schema(db: &str) -> Vec<String> {
    let c = cluster();
    let out = Command::new(c.bin("pg_dump"))
        .args(["-h", &c.sock, "-p", &c.port.to_string(), "-U", "postgres"])
        .args(["--schema-only", "--binary-upgrade", db])
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let volatile = [
        "binary_upgrade_set_next",
        "binary_upgrade_create_empty_extension",
        "binary_upgrade_set_missing_value",
        "relfrozenxid",
        "WHERE oid = ",
        "\\restrict",
        "\\unrestrict",
        "pg_catalog.setval('tenant.lock_space_seq'",
    ];
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("-- "))
        .filter(|l| !volatile.iter().any(|v| l.contains(v)))
        .map(str::to_owned)
        .collect()
}

/// The version `CREATE EXTENSION pg_tenant` installs.
const CURRENT: &str = "0.9.0";

fn extversion(db: &str) -> String {
    sql(
        db,
        "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenant'",
    )
}

/// Install `from` from its frozen script, make tenants, update, check the
/// tenants, and compare the schema with a fresh install.
fn update_keeps_tenants_and_matches_a_fresh_install(from: &str, old_db: &str, new_db: &str) {
    fresh_db(old_db);
    fresh_db(new_db);
    // Roles are the cluster's: one per test, so parallel tests never race.
    let role = format!("upgrade_app_{}", from.replace('.', "_"));
    sql(
        old_db,
        &format!("CREATE EXTENSION pg_tenant VERSION '{from}'"),
    );
    assert_eq!(extversion(old_db), from);
    sql(
        old_db,
        "SELECT tenant.create_tenant('acme', 'Acme', max_connections => 7, qps_limit => 50); \
         SELECT tenant.create_tenant('globex', read_only => true, enabled => false); \
         SELECT tenant.set_defaults(max_query_ms => 900)",
    );
    // An application role set up by the old version (0.1.0 did not mark it).
    sql(
        old_db,
        &format!(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
                 CREATE ROLE {role} LOGIN; END IF; \
               IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenant_app') THEN \
                 REVOKE tenant_app FROM {role}; END IF; END $$; \
             SELECT tenant.create_app_role('{role}')"
        ),
    );
    // Tables the old version protected (a bigint tenant column, after a
    // dropped column), and a policy with protect's name that is not its.
    sql(
        old_db,
        "CREATE TABLE up_items (gone int, v int, org bigint); ALTER TABLE up_items DROP COLUMN gone; \
         SELECT tenant.protect('up_items', 'org'); \
         CREATE TABLE up_look (tenant_id text); ALTER TABLE up_look ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY pg_tenant_isolation ON up_look USING (true) WITH CHECK (true)",
    );
    // A schema tenant without a role, as every version before 0.8.0 took it
    // (0.8.0 and later take it only disabled).
    let enabled = if from >= "0.8.0" {
        ", enabled => false"
    } else {
        ""
    };
    sql(
        old_db,
        &format!("SELECT tenant.create_tenant('oldschema', isolation => 'schema', schema_name => 'oldschema_s'{enabled})"),
    );
    // One on schema public, which 0.8.0 reserves.
    sql(
        old_db,
        &format!("SELECT tenant.create_tenant('oldpublic', isolation => 'schema', schema_name => 'public'{enabled})"),
    );
    sql(old_db, "ALTER EXTENSION pg_tenant UPDATE");
    assert_eq!(extversion(old_db), CURRENT);
    // 0.8.0: the update recorded what protect protected (and only that).
    assert_eq!(
        sql(
            old_db,
            "SELECT string_agg(format('%s|%s|%s', relid, tenant_column, tenant._isolates(relid)), ';') \
             FROM tenant.protected; \
             SELECT tenant._isolates('up_look')"
        ),
        "up_items|org|t\nf"
    );
    sql(old_db, "DROP TABLE up_items, up_look");
    // 0.8.0: the row survives the update; it can be disabled, not enabled
    // again without a role (set_context refuses it meanwhile), and dropped.
    assert_eq!(
        sql(
            old_db,
            "SELECT format('%s|%s', (tenant.disable_tenant('oldschema')).enabled, \
             shared_schemas IS NULL) FROM tenant.tenant_list WHERE id = 'oldschema'"
        ),
        "f|t"
    );
    sql(old_db, "SELECT tenant.drop_tenant('oldschema')");
    // The one on public too (0.8.0 refused that while 0.7.0 still took
    // it); provision_tenant refuses it (22023) enabled or not, even with a
    // role, and public stays.
    assert_eq!(
        sql(
            old_db,
            &format!(
                "SELECT (tenant.disable_tenant('oldpublic')).enabled; \
                 UPDATE tenant.tenants SET role_name = '{role}' WHERE id = 'oldpublic'; \
                 DO $$ BEGIN PERFORM tenant.provision_tenant('oldpublic'); \
                   RAISE EXCEPTION 'provisioned a tenant on schema public'; \
                 EXCEPTION WHEN invalid_parameter_value THEN NULL; END $$; \
                 SELECT tenant.drop_tenant('oldpublic'); \
                 SELECT count(*) FROM pg_namespace WHERE nspname = 'public'"
            )
        ),
        "f\n\n1"
    );
    // The application role is now confined without a context too.
    assert_eq!(
        sql(
            old_db,
            &format!("SELECT pg_has_role('{role}', 'tenant_app', 'MEMBER')")
        ),
        "t"
    );
    // Tenants and defaults kept, the new columns at their defaults.
    assert_eq!(
        sql(
            old_db,
            "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s', id, name, max_connections, qps_limit, \
             read_only, enabled, allow_large_objects, login_roles, pool_mode), ';' ORDER BY id) FROM tenant.tenants"
        ),
        "acme|Acme|7|50|f|t|f||;globex|globex|||t|f|f||"
    );
    assert_eq!(
        sql(
            old_db,
            "SELECT format('%s|%s', max_query_ms, pool_mode) FROM tenant.defaults"
        ),
        "900|session"
    );
    assert_eq!(
        sql(
            old_db,
            "SELECT max_query_ms FROM tenant.tenant_list WHERE id = 'acme'"
        ),
        "900"
    );
    // 0.6.0: client_idle_timeout_ms, NULL for every tenant, 0 in the defaults.
    assert_eq!(
        sql(
            old_db,
            "SELECT format('%s|%s', (SELECT client_idle_timeout_ms FROM tenant.defaults), \
             (SELECT string_agg(coalesce(client_idle_timeout_ms::text, 'null'), ',' ORDER BY id) \
              FROM tenant.tenants))"
        ),
        "0|null,null"
    );
    // The updated functions work and take the new arguments.
    assert_eq!(
        sql(
            old_db,
            "SELECT (tenant.alter_tenant('acme', allow_large_objects => true)).allow_large_objects"
        ),
        "t"
    );
    assert_eq!(
        sql(
            old_db,
            &format!(
                "SELECT (tenant.alter_tenant('acme', login_roles => '{{{role}}}')).login_roles"
            )
        ),
        format!("{{{role}}}")
    );
    // 0.4.0: pool_mode, and the pool settings in the router's catalog.
    assert_eq!(
        sql(
            old_db,
            "SELECT (tenant.alter_tenant('acme', pool_mode => 'transaction', pool_size => 4)).pool_mode"
        ),
        "transaction"
    );
    // The re-created functions still tell routers (NOTIFY pg_tenant_catalog).
    let notified = sql(
        old_db,
        "LISTEN pg_tenant_catalog; SELECT (tenant.alter_tenant('acme', min_idle => 1)).min_idle; \
         SELECT (tenant.set_defaults(max_query_ms => 900)).pool_mode; \
         SELECT (tenant.alter_tenant('acme', reset => '{min_idle}')).min_idle IS NULL",
    );
    for payload in ["\"acme\"", "\"*\""] {
        assert!(
            notified.contains(&format!(
                "notification \"pg_tenant_catalog\" with payload {payload}"
            )),
            "{notified}"
        );
    }
    // 0.6.0: client_idle_timeout_ms, the tenant's or the default.
    assert_eq!(
        sql(
            old_db,
            "SELECT (tenant.alter_tenant('acme', client_idle_timeout_ms => 30000)).client_idle_timeout_ms; \
             SELECT (tenant.set_defaults(max_query_ms => 900, client_idle_timeout_ms => 600000)).client_idle_timeout_ms"
        ),
        "30000\n600000"
    );
    assert_eq!(
        sql(
            old_db,
            "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', id, max_query_ms, dedicated_pool, pool_size, \
             min_idle, pool_mode, client_idle_timeout_ms), ';' ORDER BY id) FROM tenant.router_catalog(NULL)"
        ),
        "acme|900|f|4|0|transaction|30000;globex|900|f|10|0|session|600000"
    );
    assert_eq!(
        sql(
            old_db,
            "SELECT (tenant.alter_tenant('acme', reset => '{client_idle_timeout_ms}')).client_idle_timeout_ms IS NULL; \
             SELECT client_idle_timeout_ms FROM tenant.tenant_list WHERE id = 'acme'"
        ),
        "t\n600000"
    );
    // 0.8.0: shared_schemas, taken by alter_tenant, shown by tenant_list.
    sql(old_db, "CREATE SCHEMA IF NOT EXISTS upgrade_ref");
    assert_eq!(
        sql(
            old_db,
            "SELECT (tenant.alter_tenant('acme', isolation => 'schema', schema_name => 'acme_s', \
             role_name => 'upgrade_acme_role', shared_schemas => '{upgrade_ref}')).shared_schemas; \
             SELECT shared_schemas FROM tenant.tenant_list WHERE id = 'acme'; \
             SELECT (tenant.alter_tenant('acme', isolation => 'rls', reset => '{shared_schemas,schema_name,role_name}')).shared_schemas IS NULL"
        ),
        "{upgrade_ref}\n{upgrade_ref}\nt"
    );
    sql(old_db, "DROP SCHEMA upgrade_ref");
    // 0.7.0: the admin API's pages and counts, in byte order.
    assert_eq!(
        sql(
            old_db,
            "SELECT string_agg(format('%s|%s|%s', id, enabled, pool_mode), ';') \
             FROM tenant.router_catalog_page(NULL, 1000)"
        ),
        "acme|t|transaction;globex|f|session"
    );
    assert_eq!(
        sql(
            old_db,
            "SELECT string_agg(id, ';') FROM tenant.router_catalog_page('acme', 1, 'g', false)"
        ),
        "globex"
    );
    assert_eq!(
        sql(
            old_db,
            "SELECT format('%s|%s|%s', tenants, enabled, disabled) FROM tenant.router_catalog_counts()"
        ),
        "2|1|1"
    );
    // 0.8.0: the sealed context of a database tenant, NULL for the others.
    assert_eq!(
        sql(
            old_db,
            "SELECT (tenant.create_tenant('dbt', isolation => 'database', database_name => 'dbt_db')).id; \
             SELECT string_agg(format('%s|%s', id, context_document::jsonb ->> 'database_name'), ';') \
               FROM tenant.router_catalog(NULL); \
             SELECT tenant.drop_tenant('dbt')"
        ),
        "dbt\nacme|;dbt|dbt_db;globex|"
    );
    sql(
        old_db,
        "SELECT tenant.set_password('acme', 'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$\
         WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=')",
    );
    assert_eq!(
        sql(old_db, "SELECT left(tenant.auth_secret('acme'), 19)"),
        "SCRAM-SHA-256$4096:"
    );
    sql(new_db, "CREATE EXTENSION pg_tenant");
    assert_eq!(extversion(new_db), CURRENT);
    // The same application role as in the old database (its grants show in the dump).
    sql(new_db, &format!("SELECT tenant.create_app_role('{role}')"));
    let (old, new) = (extension_schema(old_db), extension_schema(new_db));
    for member in [
        "CREATE FUNCTION tenant.notify",
        "CREATE FUNCTION tenant.router_catalog",
        "CREATE FUNCTION tenant.router_catalog_page",
        "CREATE FUNCTION tenant.router_catalog_counts",
        "CREATE INDEX tenants_id_bytewise",
        "CREATE INDEX tenants_disabled_id_bytewise",
        "CREATE TABLE tenant.defaults",
        "CREATE FUNCTION tenant.set_password",
        "CREATE TABLE tenant.tenant_secrets",
        "CREATE FUNCTION tenant._inherit_fix",
        "CREATE TABLE tenant.protected",
        "CREATE TABLE tenant._policy_reference",
        "CREATE POLICY c_int8 ON tenant._policy_reference",
        "CREATE FUNCTION tenant._is_protects_policy",
        "CREATE FUNCTION tenant._record_protected",
        "CREATE EVENT TRIGGER pg_tenant_forget_dropped",
        "CREATE TABLE tenant.schema_migrations",
        "GRANT SELECT ON TABLE tenant.schema_migrations TO tenant_admin",
        "CREATE FUNCTION tenant.provision_tenant",
        "CREATE FUNCTION tenant._check_schemas",
        "CREATE FUNCTION tenant._audit_schemas",
        "CREATE FUNCTION tenant._schema_on_foreign_path",
        "CREATE FUNCTION tenant._reserved_schema",
        "CREATE FUNCTION tenant._outside_dependent",
        "CREATE FUNCTION tenant.drop_tenant(id text, drop_objects boolean",
        "shared_schemas name[]",
        // 0.8.0: database isolation.
        "CREATE FUNCTION tenant.context_document",
        "CREATE TABLE tenant.database_binding",
        "CREATE FUNCTION tenant.bind_database",
        "CREATE FUNCTION tenant.set_context_sealed",
        "CREATE TRIGGER refuse_in_tenant_database",
    ] {
        assert!(
            new.iter().any(|l| l.contains(member)),
            "the dump lists the extension's members: {member}"
        );
    }
    let only_old: Vec<_> = old.iter().filter(|l| !new.contains(l)).collect();
    let only_new: Vec<_> = new.iter().filter(|l| !old.contains(l)).collect();
    assert!(
        old == new,
        "schema updated from {from} differs from a fresh install\nonly after update: {only_old:#?}\nonly in fresh install: {only_new:#?}"
    );
    sql("postgres", &format!("DROP DATABASE {old_db} WITH (FORCE)"));
    sql("postgres", &format!("DROP DATABASE {new_db} WITH (FORCE)"));
}

#[test]
fn update_from_0_1_0_keeps_tenants_and_matches_a_fresh_install() {
    update_keeps_tenants_and_matches_a_fresh_install("0.1.0", "upgrade_old", "upgrade_new");
}

#[test]
fn update_from_0_2_0_keeps_tenants_and_matches_a_fresh_install() {
    update_keeps_tenants_and_matches_a_fresh_install("0.2.0", "upgrade_old2", "upgrade_new2");
}

#[test]
fn update_from_0_3_0_keeps_tenants_and_matches_a_fresh_install() {
    update_keeps_tenants_and_matches_a_fresh_install("0.3.0", "upgrade_old3", "upgrade_new3");
}

#[test]
fn update_from_0_4_0_keeps_tenants_and_matches_a_fresh_install() {
    update_keeps_tenants_and_matches_a_fresh_install("0.4.0", "upgrade_old4", "upgrade_new4");
}

#[test]
fn update_from_0_5_0_keeps_tenants_and_matches_a_fresh_install() {
    update_keeps_tenants_and_matches_a_fresh_install("0.5.0", "upgrade_old5", "upgrade_new5");
}

#[test]
fn update_from_0_6_0_keeps_tenants_and_matches_a_fresh_install() {
    update_keeps_tenants_and_matches_a_fresh_install("0.6.0", "upgrade_old6", "upgrade_new6");
}

#[test]
fn update_from_0_7_0_keeps_tenants_and_matches_a_fresh_install() {
    update_keeps_tenants_and_matches_a_fresh_install("0.7.0", "upgrade_old7", "upgrade_new7");
}

#[test]
fn update_from_0_8_0_keeps_tenants_and_matches_a_fresh_install() {
    update_keeps_tenants_and_matches_a_fresh_install("0.8.0", "upgrade_old8", "upgrade_new8");
}

/// The router's catalog in a database still on 0.5.0 (no
/// client_idle_timeout_ms): every tenant reads as 0, no limit, and
/// sessions work; after `ALTER EXTENSION pg_tenant UPDATE` the router
/// reads the column without a restart.
#[tokio::test]
async fn the_router_reads_a_0_5_0_catalog_and_sees_the_update() {
    let db = "upgrade_cat050";
    fresh_db(db);
    sql(db, "CREATE EXTENSION pg_tenant VERSION '0.5.0'");
    sql(
        db,
        "SELECT tenant.create_tenant('acme', max_query_ms => 700); \
         SELECT tenant.create_app_role('rt_trust')",
    );
    let c = cluster();
    let catalog = format!(
        "host={} port={} user=rt_router dbname={db} application_name=rt_catalog_upgrade",
        c.sock, c.port
    );
    let router = common::Router::start_env("", &[("TENANT_ROUTER_CATALOG_URL", &catalog)]);
    let acme = || async {
        let body = reqwest::get(router.admin("/tenants"))
            .await
            .expect("admin API answers")
            .text()
            .await
            .expect("body");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v["tenants"]
            .as_array()
            .and_then(|l| l.iter().find(|t| t["id"] == "acme").cloned())
            .unwrap_or_else(|| panic!("acme listed: {body}"))
    };
    let before = acme().await;
    assert_eq!(before["max_query_ms"], 700, "{before}");
    assert_eq!(before["client_idle_timeout_ms"], 0, "{before}");
    let url = format!(
        "host=127.0.0.1 port={} user=rt_trust.acme dbname={db}",
        router.port
    );
    let client = common::connect(&url)
        .await
        .expect("connect through the router");
    assert_eq!(
        common::first_value(&client, "SELECT tenant.current_tenant_id()").await,
        "acme"
    );
    drop(client);
    sql(
        db,
        "ALTER EXTENSION pg_tenant UPDATE; \
         SELECT tenant.alter_tenant('acme', client_idle_timeout_ms => 45000)",
    );
    assert!(
        common::eventually(std::time::Duration::from_secs(5), || async {
            acme().await["client_idle_timeout_ms"] == 45000
        })
        .await,
        "the router reads client_idle_timeout_ms after the update: {}",
        acme().await
    );
    drop(router);
    sql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
}

/// A catalog still on 0.7.0 has no sealed contexts: a database-isolated
/// tenant is refused at login with a FATAL that says to update, while an
/// rls tenant works (control); after `ALTER EXTENSION pg_tenant UPDATE`
/// the router reads the document and goes on to the tenant's database
/// (here missing: 3D000 naming it).
#[tokio::test]
async fn a_0_7_0_catalog_refuses_database_tenants_until_updated() {
    let db = "upgrade_cat070";
    fresh_db(db);
    sql(db, "CREATE EXTENSION pg_tenant VERSION '0.7.0'");
    sql(
        db,
        "SELECT tenant.create_tenant('acme'); \
         SELECT tenant.create_tenant('dbt', isolation => 'database', database_name => 'upgrade_dbt_db'); \
         SELECT tenant.create_app_role('rt_trust')",
    );
    let c = cluster();
    let catalog = format!(
        "host={} port={} user=rt_router dbname={db} application_name=rt_catalog_upgrade070",
        c.sock, c.port
    );
    let router = common::Router::start_env("", &[("TENANT_ROUTER_CATALOG_URL", &catalog)]);
    let url = |tenant: &str| {
        format!(
            "host=127.0.0.1 port={} user=rt_trust.{tenant} dbname={db}",
            router.port
        )
    };
    let Err(e) = common::connect(&url("dbt")).await else {
        panic!("a database tenant on a 0.7.0 catalog is refused");
    };
    assert_eq!(common::sqlstate(&e), "55000", "{e}");
    assert!(
        common::db_message(&e).contains("run ALTER EXTENSION pg_tenant UPDATE"),
        "{e}"
    );
    let acme = common::connect(&url("acme")).await.expect("an rls tenant");
    assert_eq!(
        common::first_value(&acme, "SELECT tenant.current_tenant_id()").await,
        "acme"
    );
    drop(acme);
    sql(db, "ALTER EXTENSION pg_tenant UPDATE");
    let missing = common::eventually(std::time::Duration::from_secs(5), || async {
        match common::connect(&url("dbt")).await {
            Err(e) => common::sqlstate(&e) == "3D000",
            Ok(_) => false,
        }
    })
    .await;
    assert!(missing, "after the update, the router seals dbt's context");
    drop(router);
    sql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
}

/// This library with a database still on the 0.2.0 schema (other databases
/// of the server may be updated later, or never): the router's contexts
/// work as before.
#[tokio::test]
async fn the_library_runs_a_0_2_0_schema() {
    the_library_runs_an_old_schema("0.2.0", "upgrade_lib020").await;
}

/// The same with a 0.3.0 schema (no pool_mode column: every tenant is in
/// session mode).
#[tokio::test]
async fn the_library_runs_a_0_3_0_schema() {
    the_library_runs_an_old_schema("0.3.0", "upgrade_lib030").await;
}

async fn the_library_runs_an_old_schema(version: &str, db: &str) {
    fresh_db(db);
    sql(
        db,
        &format!("CREATE EXTENSION pg_tenant VERSION '{version}'"),
    );
    sql(
        db,
        "SELECT tenant.create_tenant('acme'); SELECT tenant.create_app_role('rt_trust')",
    );
    let router = common::Router::start();
    let url = format!(
        "host=127.0.0.1 port={} user=rt_trust.acme dbname={db}",
        router.port
    );
    let client = common::connect(&url)
        .await
        .expect("connect through the router");
    let row = client
        .query_one(
            "SELECT tenant.current_tenant_id(), (SELECT extversion FROM pg_extension \
             WHERE extname = 'pg_tenant')",
            &[],
        )
        .await
        .expect("query");
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("acme"));
    assert_eq!(row.get::<_, String>(1), version);
    // No pool_mode column yet: every tenant is in session mode, so what
    // transaction mode refuses works.
    client
        .batch_execute("LISTEN upgrade_jobs; SET work_mem = '8MB'; PREPARE q AS SELECT 1")
        .await
        .expect("session-only features on an old schema");
    drop(client);
    drop(router);
    sql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
}

/// Installing the extension renames new files over the old ones: a running
/// server that has the library mapped keeps working.
#[test]
fn reinstalling_the_extension_never_crashes_a_running_server() {
    if std::env::var("PG_TENANT_NO_INSTALL").as_deref() == Ok("1") {
        // A second work tree sharing this machine's PostgreSQL must not
        // reinstall the extension (scripts/cluster honours the same switch).
        eprintln!("skipped: PG_TENANT_NO_INSTALL=1");
        return;
    }
    let c = cluster();
    let before = sql(
        "postgres",
        "SELECT pg_postmaster_start_time()::text || ' ' || (SELECT count(*) FROM pg_stat_activity)",
    );
    let libdir = String::from_utf8(
        Command::new(c.bin("pg_config"))
            .arg("--pkglibdir")
            .output()
            .expect("pg_config")
            .stdout,
    )
    .expect("utf8");
    let lib = std::path::Path::new(libdir.trim()).join("pg_tenant.so");
    let inode_before = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&lib).expect("lib"));
    // A session whose backend has the library mapped across the reinstall.
    let mut held = psql(c, common::DB)
        .args(["-tA"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("psql");
    let mut stdin = held.stdin.take().expect("stdin");
    writeln!(stdin, "SELECT 'before';").expect("write");
    let out = Command::new(common::repo().join("scripts/install-extension"))
        .env("PG_CONFIG", c.bin("pg_config"))
        .output()
        .expect("install-extension");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inode_after = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&lib).expect("lib"));
    assert_ne!(
        inode_before, inode_after,
        "the library was renamed into place, not rewritten"
    );
    writeln!(stdin, "SELECT tenant.current_tenant_id() IS NULL;").expect("write");
    drop(stdin);
    let held = held.wait_with_output().expect("psql");
    assert!(held.status.success());
    assert_eq!(String::from_utf8_lossy(&held.stdout), "before\nt\n");
    // Same postmaster (no crash, no restart), and new backends still load the
    // preloaded library and answer.
    let after = sql("postgres", "SELECT pg_postmaster_start_time()::text");
    assert!(before.starts_with(&after), "{before} vs {after}");
    assert_eq!(
        sql(common::DB, "SELECT tenant.current_tenant_id() IS NULL"),
        "t"
    );
}

/// The update from 0.2.0 drops and re-creates create_tenant, alter_tenant,
/// enable_tenant and disable_tenant (a new trailing argument), and the one
/// to 0.4.0 those again with set_defaults and router_catalog: what an
/// operator granted or revoked on them is kept, functions the update does
/// not re-create keep their privileges untouched, and pg_dump still dumps
/// the operator's changes (the extension's initial privileges stay those
/// of a fresh install).
#[test]
fn update_keeps_the_privileges_an_operator_changed() {
    let db = "upgrade_acl";
    fresh_db(db);
    sql(db, "CREATE EXTENSION pg_tenant VERSION '0.2.0'");
    sql(
        db,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'upgrade_ops') THEN \
           CREATE ROLE upgrade_ops NOLOGIN; END IF; END $$; \
         REVOKE EXECUTE ON FUNCTION tenant.create_tenant(text, text, text, name, name, name, integer, \
           integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, \
           boolean) FROM tenant_admin; \
         REVOKE EXECUTE ON FUNCTION tenant.drop_tenant(text), \
           tenant.set_defaults(integer, integer, real, integer, bigint, integer, integer) FROM tenant_admin; \
         GRANT EXECUTE ON FUNCTION tenant.disable_tenant(text), tenant.router_catalog(text) \
           TO upgrade_ops",
    );
    let privileges = || {
        sql(
            db,
            "SELECT string_agg(format('%s/%s=%s', p.proname, r, has_function_privilege(r, p.oid, 'EXECUTE')), \
             ' ' ORDER BY p.proname, r) FROM pg_proc p, unnest('{tenant_admin,upgrade_ops}'::text[]) r \
             WHERE p.pronamespace = 'tenant'::regnamespace AND p.proname IN \
             ('create_tenant', 'alter_tenant', 'drop_tenant', 'enable_tenant', 'disable_tenant', 'set_defaults', \
             'router_catalog')",
        )
    };
    let before = privileges();
    assert_eq!(
        before,
        "alter_tenant/tenant_admin=t alter_tenant/upgrade_ops=f \
         create_tenant/tenant_admin=f create_tenant/upgrade_ops=f \
         disable_tenant/tenant_admin=t disable_tenant/upgrade_ops=t \
         drop_tenant/tenant_admin=f drop_tenant/upgrade_ops=f \
         enable_tenant/tenant_admin=t enable_tenant/upgrade_ops=f \
         router_catalog/tenant_admin=f router_catalog/upgrade_ops=t \
         set_defaults/tenant_admin=f set_defaults/upgrade_ops=f"
    );
    sql(db, "ALTER EXTENSION pg_tenant UPDATE");
    assert_eq!(extversion(db), CURRENT);
    assert_eq!(privileges(), before, "the update changed privileges");
    // A plain dump carries the operator's changes (restored over a fresh
    // install's grants, they give the same privileges again).
    let c = cluster();
    let out = Command::new(c.bin("pg_dump"))
        .args(["-h", &c.sock, "-p", &c.port.to_string(), "-U", "postgres"])
        .args(["--schema-only", db])
        .output()
        .expect("pg_dump");
    assert!(out.status.success());
    let dump = String::from_utf8_lossy(&out.stdout);
    let has = |prefix: &str, suffix: &str| {
        dump.lines()
            .any(|l| l.starts_with(prefix) && l.ends_with(suffix))
    };
    assert!(
        has(
            "REVOKE ALL ON FUNCTION tenant.create_tenant(",
            "FROM tenant_admin;"
        ),
        "{dump}"
    );
    assert!(
        has(
            "GRANT ALL ON FUNCTION tenant.disable_tenant(",
            "TO upgrade_ops;"
        ),
        "{dump}"
    );
    assert!(
        has(
            "GRANT ALL ON FUNCTION tenant.router_catalog(",
            "TO upgrade_ops;"
        ),
        "{dump}"
    );
    assert!(
        has(
            "REVOKE ALL ON FUNCTION tenant.set_defaults(",
            "FROM tenant_admin;"
        ),
        "{dump}"
    );
    assert!(
        !has(
            "GRANT ALL ON FUNCTION tenant.create_tenant(",
            "TO tenant_admin;"
        ),
        "{dump}"
    );
    sql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
}
