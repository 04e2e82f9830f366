//! The extension's upgrade path: a database created with the frozen 0.1.0
//! install script keeps its tenants through `ALTER EXTENSION pg_tenant
//! UPDATE`, and ends with exactly the schema of a fresh install.
mod common;

use common::{cluster, psql};
use std::io::Write;
use std::process::Command;

fn sql(db: &str, q: &str) -> String {
    let out = psql(cluster(), db)
        .args(["-tA", "-c", q])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

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
    let out = Command::new("pg_dump")
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
    ];
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("-- "))
        .filter(|l| !volatile.iter().any(|v| l.contains(v)))
        .map(str::to_owned)
        .collect()
}

#[test]
fn update_from_0_1_0_keeps_tenants_and_matches_a_fresh_install() {
    fresh_db("upgrade_old");
    fresh_db("upgrade_new");
    sql("upgrade_old", "CREATE EXTENSION pg_tenant VERSION '0.1.0'");
    assert_eq!(
        sql(
            "upgrade_old",
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenant'"
        ),
        "0.1.0"
    );
    sql(
        "upgrade_old",
        "SELECT tenant.create_tenant('acme', 'Acme', max_connections => 7, qps_limit => 50); \
         SELECT tenant.create_tenant('globex', read_only => true, enabled => false); \
         SELECT tenant.set_defaults(max_query_ms => 900)",
    );
    // An application role set up by 0.1.0 (not yet marked as one).
    sql(
        "upgrade_old",
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'upgrade_app') THEN \
             CREATE ROLE upgrade_app LOGIN; END IF; \
           IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenant_app') THEN \
             REVOKE tenant_app FROM upgrade_app; END IF; END $$; \
         SELECT tenant.create_app_role('upgrade_app')",
    );
    sql("upgrade_old", "ALTER EXTENSION pg_tenant UPDATE");
    assert_eq!(
        sql(
            "upgrade_old",
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_tenant'"
        ),
        "0.2.0"
    );
    // The 0.1.0 application role is now confined without a context too.
    assert_eq!(
        sql(
            "upgrade_old",
            "SELECT pg_has_role('upgrade_app', 'tenant_app', 'MEMBER')"
        ),
        "t"
    );
    // Tenants and defaults kept, the new column at its default.
    assert_eq!(
        sql(
            "upgrade_old",
            "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', id, name, max_connections, qps_limit, \
             read_only, enabled, allow_large_objects), ';' ORDER BY id) FROM tenant.tenants"
        ),
        "acme|Acme|7|50|f|t|f;globex|globex|||t|f|f"
    );
    assert_eq!(
        sql(
            "upgrade_old",
            "SELECT max_query_ms FROM tenant.tenant_list WHERE id = 'acme'"
        ),
        "900"
    );
    // The updated functions work and take the new argument.
    assert_eq!(
        sql(
            "upgrade_old",
            "SELECT (tenant.alter_tenant('acme', allow_large_objects => true)).allow_large_objects"
        ),
        "t"
    );
    sql("upgrade_new", "CREATE EXTENSION pg_tenant");
    // The same application role as in the old database (its grants show in the dump).
    sql(
        "upgrade_new",
        "SELECT tenant.create_app_role('upgrade_app')",
    );
    let (old, new) = (
        extension_schema("upgrade_old"),
        extension_schema("upgrade_new"),
    );
    assert!(
        new.iter()
            .any(|l| l.contains("CREATE FUNCTION tenant.notify")),
        "the dump lists the extension's members"
    );
    let only_old: Vec<_> = old.iter().filter(|l| !new.contains(l)).collect();
    let only_new: Vec<_> = new.iter().filter(|l| !old.contains(l)).collect();
    assert!(
        old == new,
        "updated schema differs from a fresh install\nonly after update: {only_old:#?}\nonly in fresh install: {only_new:#?}"
    );
    sql("postgres", "DROP DATABASE upgrade_old WITH (FORCE)");
    sql("postgres", "DROP DATABASE upgrade_new WITH (FORCE)");
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
        Command::new("/usr/lib/postgresql/15/bin/pg_config")
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
