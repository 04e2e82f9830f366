//! `tenant-router tenants migrate`, the real binary against the real
//! cluster: one script applied to many tenant schemas, each in its own
//! transaction as the tenant's role, recorded per schema, so a re-run is a
//! no-op. Each test works in a database of its own (`migrate_<test>`), so
//! "every schema tenant" means the tenants that test made.
mod common;
use common::sql_in as sql;
use common::*;
use std::process::{Command, Output};
use std::time::Duration;

/// A fresh database `migrate_<name>` with pg_tenant and `n` schema tenants
/// `<prefix>01`.. (schema = id, role `<id>_role`, owning table `items` with
/// 20 rows).
fn schema_tenants(name: &str, prefix: &str, n: usize) -> String {
    let db = format!("migrate_{name}");
    sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    sql("postgres", &format!("CREATE DATABASE {db}"));
    sql(&db, "CREATE EXTENSION pg_tenant");
    sql(
        &db,
        &format!(
            "SET client_min_messages = warning; DO $$ DECLARE i int; t text; r text; BEGIN \
               FOR i IN 1..{n} LOOP \
                 t := '{prefix}' || lpad(i::text, 2, '0'); r := t || '_role'; \
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN \
                   EXECUTE format('CREATE ROLE %I NOLOGIN', r); \
                 END IF; \
                 PERFORM tenant.create_app_role(r); \
                 EXECUTE format('CREATE SCHEMA %I; GRANT USAGE, CREATE ON SCHEMA %I TO %I', t, t, r); \
                 EXECUTE format('CREATE TABLE %I.items (id int PRIMARY KEY, body text)', t); \
                 EXECUTE format('INSERT INTO %I.items SELECT g, ''row '' || g FROM generate_series(1, 20) g', t); \
                 EXECUTE format('ALTER TABLE %I.items OWNER TO %I', t, r); \
                 PERFORM tenant.create_tenant(t, isolation => 'schema', schema_name => t, role_name => r); \
               END LOOP; END $$"
        ),
    );
    db
}

fn url(db: &str) -> String {
    let c = cluster();
    format!("host={} port={} user=postgres dbname={db}", c.sock, c.port)
}

/// Run `tenant-router tenants migrate --url <db> --name <name> <script> <args>`.
fn migrate_with_url(url: &str, name: &str, script: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("migration.sql");
    std::fs::write(&file, script).expect("write script");
    Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .args(["tenants", "migrate", "--url", url, "--name", name])
        .arg(&file)
        .args(args)
        .env_remove("PG_TENANT_ADMIN_URL")
        .output()
        .expect("run tenant-router")
}

fn migrate(db: &str, name: &str, script: &str, args: &[&str]) -> Output {
    migrate_with_url(&url(db), name, script, args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The summary line's counts: (applied, skipped, failed, not run).
fn summary(o: &Output, name: &str) -> (u32, u32, u32, u32) {
    let out = stdout(o);
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("migrate {name}: ")))
        .unwrap_or_else(|| panic!("no summary line in {out}\n{}", stderr(o)));
    let nums: Vec<u32> = line
        .split([' ', ','])
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums.len() >= 4, "{line}");
    (nums[0], nums[1], nums[2], nums[3])
}

const ADD_NOTE: &str =
    "ALTER TABLE items ADD COLUMN note text;\nCREATE INDEX items_note ON items (note);\n";

#[test]
fn fifty_schemas_one_failing_the_others_applied_then_rerun_skips() {
    let db = schema_tenants("fifty", "mf", 50);
    // mf17 already has the column: the script fails there.
    sql(&db, "ALTER TABLE mf17.items ADD COLUMN note text");
    let o = migrate(
        &db,
        "add_note",
        ADD_NOTE,
        &["--on-error", "continue", "--parallel", "4"],
    );
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(summary(&o, "add_note"), (49, 0, 1, 0));
    let out = stdout(&o);
    assert!(
        out.contains(
            "tenant mf17 (schema mf17): FAILED 42701: column \"note\" of relation \"items\" already exists"
        ),
        "{out}"
    );
    assert_eq!(out.matches(": applied (").count(), 49, "{out}");
    // In the 49 others: the column, the index (owned by the tenant's role)
    // and the record; in mf17 neither the index nor a record.
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
              WHERE c.relname = 'items' AND a.attname = 'note' AND NOT a.attisdropped"
        ),
        "50"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM pg_class i JOIN pg_namespace n ON n.oid = i.relnamespace \
              WHERE i.relname = 'items_note' AND i.relkind = 'i' \
                AND pg_get_userbyid(i.relowner) = n.nspname || '_role'"
        ),
        "49"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname = 'items_note' AND relnamespace = 'mf17'::regnamespace"
        ),
        "0"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT count(*), count(*) FILTER (WHERE schema_name = 'mf17'), count(DISTINCT checksum), \
                    bool_and(checksum ~ '^[0-9a-f]{64}$' AND applied_by = 'postgres') \
               FROM tenant.schema_migrations WHERE migration = 'add_note'"
        ),
        "49|0|1|t"
    );
    // The rows are still there, and the new column is usable.
    assert_eq!(
        sql(&db, "SELECT count(*), count(note) FROM mf03.items"),
        "20|0"
    );

    // A re-run: the 49 are skipped without running anything, mf17 is tried
    // again (and fails again).
    let o = migrate(&db, "add_note", ADD_NOTE, &["--on-error", "continue"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(summary(&o, "add_note"), (0, 49, 1, 0));
    assert!(stdout(&o).contains("tenant mf17 (schema mf17): FAILED 42701"));
    // Fixed by hand, mf17 is applied; then everything is a no-op.
    sql(&db, "ALTER TABLE mf17.items DROP COLUMN note");
    let o = migrate(&db, "add_note", ADD_NOTE, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(summary(&o, "add_note"), (1, 49, 0, 0));
    assert!(stdout(&o).contains("tenant mf17 (schema mf17): applied ("));
    let o = migrate(&db, "add_note", ADD_NOTE, &["--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("json report");
    assert_eq!(v["skipped"], 50);
    assert_eq!(v["applied"], 0);
    assert_eq!(v["failed"], 0);
    assert_eq!(v["tenants"].as_array().map(Vec::len), Some(50));
    assert_eq!(v["tenants"][16]["tenant"], "mf17");
    assert_eq!(v["tenants"][16]["status"], "skipped");
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM tenant.schema_migrations WHERE migration = 'add_note'"
        ),
        "50"
    );
}

#[test]
fn on_error_stop_stops_starting_new_tenants() {
    let db = schema_tenants("stop", "ms", 6);
    // ms01 comes first (byte order) and fails.
    sql(&db, "ALTER TABLE ms01.items ADD COLUMN note text");
    let o = migrate(&db, "add_note", ADD_NOTE, &["--parallel", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(summary(&o, "add_note"), (0, 0, 1, 5));
    assert_eq!(
        stdout(&o)
            .matches("not run (stopped after a failure)")
            .count(),
        5
    );
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname = 'items_note'"
        ),
        "0"
    );
    assert_eq!(
        sql(&db, "SELECT count(*) FROM tenant.schema_migrations"),
        "0"
    );
    // The control: --on-error continue runs the other five.
    let o = migrate(
        &db,
        "add_note",
        ADD_NOTE,
        &["--parallel", "1", "--on-error", "continue"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(summary(&o, "add_note"), (5, 0, 1, 0));
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname = 'items_note'"
        ),
        "5"
    );
}

#[test]
fn named_tenants_only_and_unknown_or_rls_tenants_refused_before_anything_runs() {
    let db = schema_tenants("subset", "mn", 4);
    sql(&db, "SELECT tenant.create_tenant('plain')");
    let o = migrate(
        &db,
        "add_note",
        ADD_NOTE,
        &["--tenant", "mn01", "--tenant", "mn03"],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(summary(&o, "add_note"), (2, 0, 0, 0));
    assert_eq!(
        sql(
            &db,
            "SELECT string_agg(schema_name, ',' ORDER BY schema_name) FROM tenant.schema_migrations"
        ),
        "mn01,mn03"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT string_agg(relnamespace::regnamespace::text, ',' ORDER BY relnamespace::regnamespace::text) FROM pg_class WHERE relname = 'items_note'"
        ),
        "mn01,mn03"
    );
    for (named, why) in [
        ("nosuch", "unknown tenant \"nosuch\""),
        (
            "plain",
            "tenant \"plain\" is not schema-isolated (isolation \"rls\")",
        ),
    ] {
        let o = migrate(
            &db,
            "add_note",
            ADD_NOTE,
            &["--tenant", "mn02", "--tenant", named],
        );
        assert_eq!(o.status.code(), Some(2), "{named}");
        assert!(stderr(&o).contains(why), "{named}: {}", stderr(&o));
        assert_eq!(stdout(&o), "", "nothing ran");
    }
    assert_eq!(
        sql(&db, "SELECT count(*) FROM tenant.schema_migrations"),
        "2"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname = 'items_note'"
        ),
        "2"
    );
}

#[test]
fn a_changed_migration_is_refused_where_it_was_applied() {
    let db = schema_tenants("changed", "mc", 3);
    let o = migrate(&db, "add_note", ADD_NOTE, &["--tenant", "mc01"]);
    assert_eq!(o.status.code(), Some(0));
    let changed = format!("{ADD_NOTE}CREATE TABLE extra (id int);\n");
    let o = migrate(&db, "add_note", &changed, &["--on-error", "continue"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(summary(&o, "add_note"), (2, 0, 1, 0));
    assert!(
        stdout(&o).contains(
            "tenant mc01 (schema mc01): FAILED 55000: migration add_note changed since it was applied to schema mc01"
        ),
        "{}",
        stdout(&o)
    );
    // Nothing of the changed script ran in mc01; the two others got it all.
    assert_eq!(
        sql(
            &db,
            "SELECT string_agg(relnamespace::regnamespace::text, ',' ORDER BY relnamespace::regnamespace::text) FROM pg_class WHERE relname = 'extra'"
        ),
        "mc02,mc03"
    );
    assert_eq!(
        sql(
            &db,
            "SELECT count(DISTINCT checksum) FROM tenant.schema_migrations"
        ),
        "2"
    );
}

#[test]
fn objects_belong_to_the_tenant_role_and_functions_are_not_public() {
    let db = schema_tenants("owner", "mo", 2);
    let script = "CREATE TABLE audit_log (at timestamptz DEFAULT now(), what text);\n\
                  CREATE VIEW recent AS SELECT * FROM audit_log;\n\
                  CREATE FUNCTION log_it(w text) RETURNS void LANGUAGE sql AS $$ INSERT INTO audit_log (what) VALUES (w) $$;\n\
                  SELECT log_it(current_user);\n";
    let o = migrate(&db, "audit", script, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        sql(
            &db,
            "SELECT string_agg(n.nspname || '.' || c.relname || '=' || pg_get_userbyid(c.relowner), ',' ORDER BY n.nspname, c.relname) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relname IN ('audit_log', 'recent')"
        ),
        "mo01.audit_log=mo01_role,mo01.recent=mo01_role,mo02.audit_log=mo02_role,mo02.recent=mo02_role"
    );
    // The script ran as the tenant's role, with its schema first.
    assert_eq!(sql(&db, "SELECT what FROM mo02.audit_log"), "mo02_role");
    // The record: readable by tenant_admin, not writable by it, not
    // readable by a tenant role.
    assert_eq!(
        sql(
            &db,
            "SELECT has_table_privilege('tenant_admin', 'tenant.schema_migrations', 'SELECT'), \
                    has_table_privilege('tenant_admin', 'tenant.schema_migrations', 'INSERT, UPDATE, DELETE, TRUNCATE'), \
                    has_table_privilege('mo01_role', 'tenant.schema_migrations', 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')"
        ),
        "t|f|f"
    );
    assert_eq!(
        sql(
            &db,
            "SET ROLE tenant_admin; SELECT string_agg(schema_name || ':' || migration, ',' ORDER BY schema_name) FROM tenant.schema_migrations"
        ),
        "mo01:audit,mo02:audit"
    );
    // pg_tenant's rule for what tenant roles create: not executable by PUBLIC.
    assert_eq!(
        sql(
            &db,
            "SELECT has_function_privilege('mo01_role', 'mo01.log_it(text)', 'EXECUTE'), \
                    has_function_privilege('mo02_role', 'mo01.log_it(text)', 'EXECUTE')"
        ),
        "t|f"
    );
}

#[test]
fn a_script_that_commits_is_reported() {
    let db = schema_tenants("commit", "mx", 1);
    let o = migrate(&db, "sneaky", "CREATE TABLE a (id int); COMMIT;", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(
            "tenant mx01 (schema mx01): FAILED 25000: the script ended the tenant's transaction"
        ),
        "{}",
        stdout(&o)
    );
    // The control: the same without COMMIT.
    let o = migrate(&db, "plain", "CREATE TABLE b (id int);", &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        sql(
            &db,
            "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'b'"
        ),
        "mx01_role"
    );
}

#[tokio::test]
async fn two_runners_at_once_apply_a_migration_once_per_schema() {
    let db = schema_tenants("race", "mr", 10);
    // Hold both runners at their first INSERT into the record table, then
    // let them go together: they contend for every schema.
    let (holder, conn) = tokio_postgres::connect(&url(&db), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    holder
        .batch_execute("BEGIN; LOCK TABLE tenant.schema_migrations IN EXCLUSIVE MODE")
        .await
        .expect("lock");
    let run = |db: String| {
        std::thread::spawn(move || {
            migrate(
                &db,
                "add_note",
                "ALTER TABLE items ADD COLUMN note text;",
                &["--parallel", "1"],
            )
        })
    };
    let (a, b) = (run(db.clone()), run(db.clone()));
    let waiting = format!(
        "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid \
          WHERE NOT l.granted AND l.relation = 'tenant.schema_migrations'::regclass \
            AND s.datname = '{db}'"
    );
    assert!(
        eventually(Duration::from_secs(30), || async {
            sql(&db, &waiting).parse::<u32>().unwrap_or(0) >= 2
        })
        .await,
        "both runners wait for the record table"
    );
    holder.batch_execute("COMMIT").await.expect("commit");
    let (a, b) = (a.join().expect("runner a"), b.join().expect("runner b"));
    for o in [&a, &b] {
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(o), stderr(o));
    }
    let (sa, sb) = (summary(&a, "add_note"), summary(&b, "add_note"));
    assert_eq!((sa.0 + sb.0, sa.1 + sb.1, sa.2 + sb.2), (10, 10, 0));
    assert_eq!(
        sql(&db, "SELECT count(*) FROM tenant.schema_migrations"),
        "10"
    );
}

#[test]
fn bad_url_refused_login_missing_extension_and_non_superusers_are_clear() {
    let c = cluster();
    let db = schema_tenants("errors", "me", 1);
    let o = migrate_with_url("postgres://h:notaport/x", "m", ADD_NOTE, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid connection string: invalid value for option `port`"),
        "{}",
        stderr(&o)
    );
    let wrong = format!(
        "host=127.0.0.1 port={} user=rt_app password=wrong dbname={db}",
        c.port
    );
    let o = migrate_with_url(&wrong, "m", ADD_NOTE, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("password authentication failed for user \"rt_app\" (SQLSTATE 28P01)"),
        "{}",
        stderr(&o)
    );
    sql(
        "postgres",
        "DROP DATABASE IF EXISTS migrate_noext WITH (FORCE)",
    );
    sql("postgres", "CREATE DATABASE migrate_noext");
    let o = migrate("migrate_noext", "m", ADD_NOTE, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "pg_tenant is not installed in database \"migrate_noext\" (CREATE EXTENSION pg_tenant)"
        ),
        "{}",
        stderr(&o)
    );
    // An operator that is a member of the tenant roles is an application
    // role through them: refused up front, nothing runs.
    sql(
        &db,
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'me_operator') THEN \
           CREATE ROLE me_operator LOGIN; END IF; END $$; \
         GRANT me01_role TO me_operator; GRANT hba_trust TO me_operator",
    );
    let op = format!(
        "host=127.0.0.1 port={} user=me_operator dbname={db}",
        c.port
    );
    let o = migrate_with_url(&op, "m", ADD_NOTE, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("role \"me_operator\" is not a superuser"),
        "{}",
        stderr(&o)
    );
    // ... which is the extension's rule, not the runner's: the same role
    // may not SET ROLE to the tenant role without a tenant context.
    let refused = psql(c, &db)
        .args([
            "-c",
            "SET SESSION AUTHORIZATION me_operator; BEGIN; SET LOCAL ROLE me01_role;",
        ])
        .output()
        .expect("psql");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(
            "application role \"me_operator\" may not change its role without a tenant context"
        ),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    // A login role in tenant_app would show in other databases' audits.
    sql(&db, "DROP ROLE me_operator");
    // The control: the superuser URL works.
    let o = migrate(&db, "m", ADD_NOTE, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(summary(&o, "m"), (1, 0, 0, 0));
}

#[test]
fn the_path_is_the_tenants_own_schema_then_its_shared_schemas() {
    let db = schema_tenants("shared", "mh", 2);
    sql(
        &db,
        "CREATE SCHEMA mref; CREATE TABLE mref.countries (code text); \
         INSERT INTO mref.countries VALUES ('fr'), ('de'); \
         GRANT USAGE ON SCHEMA mref TO mh01_role, mh02_role; \
         GRANT SELECT ON mref.countries TO mh01_role, mh02_role; \
         SELECT tenant.alter_tenant('mh01', shared_schemas => '{mref}')",
    );
    let o = migrate(
        &db,
        "codes",
        "CREATE TABLE codes AS SELECT code FROM countries;",
        &["--on-error", "continue"],
    );
    // mh01 finds the shared table as its sessions would; mh02 has no
    // shared schema on its path (the table is not found there).
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(summary(&o, "codes"), (1, 0, 1, 0));
    assert!(
        stdout(&o).contains(
            "tenant mh02 (schema mh02): FAILED 42P01: relation \"countries\" does not exist"
        ),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        sql(&db, "SELECT count(*), pg_get_userbyid((SELECT relowner FROM pg_class WHERE oid = 'mh01.codes'::regclass)) FROM mh01.codes"),
        "2|mh01_role"
    );
}

/// The runner's session is a superuser's. A tenant's own code that runs
/// during its migration (here a trigger its role owns, fired by the
/// script's UPDATE) tries to get back to that superuser with `RESET ROLE`,
/// `SET SESSION AUTHORIZATION` and `set_config('role', ...)`: each is
/// refused (the role is locked for the transaction), the tenant's
/// migration fails and rolls back, and its role gains nothing. Control: the
/// same migration in a tenant without the trigger applies, and after the
/// run the runner's role is its own again (a plain SET LOCAL ROLE would
/// have let the trigger through).
#[test]
fn a_tenants_code_run_by_its_migration_cannot_become_the_superuser() {
    let db = schema_tenants("escalate", "mx", 2);
    for (n, attempt) in [
        "RESET ROLE",
        "SET SESSION AUTHORIZATION postgres",
        "PERFORM pg_catalog.set_config('role', 'none', true)",
    ]
    .iter()
    .enumerate()
    {
        sql(
            &db,
            &format!(
                "SET ROLE mx01_role; \
                 CREATE OR REPLACE FUNCTION mx01.grab() RETURNS trigger LANGUAGE plpgsql AS $f$ \
                 BEGIN {attempt}; \
                   ALTER ROLE mx01_role SUPERUSER; RETURN NEW; END $f$; \
                 DROP TRIGGER IF EXISTS grab ON mx01.items; \
                 CREATE TRIGGER grab BEFORE UPDATE ON mx01.items \
                   FOR EACH ROW EXECUTE FUNCTION mx01.grab()"
            ),
        );
        let name = format!("touch{n}");
        let o = migrate(
            &db,
            &name,
            "UPDATE items SET body = body || '!';",
            &["--on-error", "continue"],
        );
        assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
        assert_eq!(summary(&o, &name), (1, 0, 1, 0), "{attempt}");
        assert!(
            stdout(&o).contains("tenant mx01 (schema mx01): FAILED 42501"),
            "{attempt}: {}",
            stdout(&o)
        );
        assert!(
            stdout(&o).contains("within security-definer function"),
            "{attempt}: {}",
            stdout(&o)
        );
        assert_eq!(
            sql(
                &db,
                "SELECT rolsuper FROM pg_roles WHERE rolname = 'mx01_role'"
            ),
            "f",
            "{attempt}"
        );
        // The failed tenant's rows are as they were; the control's changed.
        assert_eq!(
            sql(
                &db,
                &format!(
                    "SELECT count(*) FILTER (WHERE body LIKE '%!') FROM mx01.items; \
                     SELECT count(*) FILTER (WHERE body LIKE '{}') FROM mx02.items",
                    "%".to_string() + &"!".repeat(n + 1)
                )
            ),
            "0\n20",
            "{attempt}"
        );
    }
}

/// A schema tenant the catalog places on a named upstream lives on another
/// server: the copy of its schema left here is not migrated (nor recorded
/// as migrated) while its live schema stays as it was. Named, it is
/// refused before anything runs; with every tenant, it is left out and
/// said so. Control: the tenants of this server are migrated.
#[test]
fn a_tenant_placed_on_another_upstream_is_not_migrated_here() {
    let db = schema_tenants("placed", "mp", 3);
    sql(&db, "SELECT tenant.alter_tenant('mp02', upstream => 'b')");
    let o = migrate(&db, "add_note", ADD_NOTE, &["--tenant", "mp02"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("tenant \"mp02\" lives on upstream \"b\""),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "", "nothing ran");
    let o = migrate(&db, "add_note", ADD_NOTE, &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(summary(&o, "add_note"), (2, 0, 0, 0));
    assert!(stderr(&o).contains("mp02 (upstream b)"), "{}", stderr(&o));
    assert_eq!(
        sql(
            &db,
            "SELECT string_agg(schema_name, ',' ORDER BY schema_name) FROM tenant.schema_migrations"
        ),
        "mp01,mp03"
    );
}
