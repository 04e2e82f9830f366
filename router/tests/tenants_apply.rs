//! `tenant-router tenants apply FILE` and `tenants export`, the real binary
//! against the real cluster. The catalog connection comes from a router
//! config file (`-c`, its [catalog] url names the router's own role,
//! rt_router, a member of tenant_router) with `--user postgres` over that
//! role. Each test works in a database of its own (`apply_<test>`); the
//! catalog is compared as a whole (rows with updated_at, the defaults row,
//! the secrets) before and after whatever must change nothing.
mod common;
use common::sql_in as sql;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use tenant_router::tools::declare::catalog::APPLY_LOCK;
use tenant_router::tools::declare::fields::{CATALOG_OWN, DEFAULTS_FIELDS, TENANT_FIELDS};
use tenant_router::tools::declare::secret::matches;
use tenant_router::tools::declare::spec::Secret;

struct Db {
    name: String,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// Cluster-wide roles the files name (created once per test binary).
fn roles() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        sql(
            "postgres",
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_user') THEN CREATE ROLE app_user LOGIN; END IF; \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'apply_login') THEN CREATE ROLE apply_login LOGIN; END IF; \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'apply_admin') THEN CREATE ROLE apply_admin LOGIN IN ROLE tenant_admin; END IF; \
             END $$",
        );
    });
}

/// A fresh database `apply_<name>` with pg_tenant, and a router config
/// whose catalog is that database.
fn fresh(name: &str) -> Db {
    let c = cluster();
    roles();
    let db = format!("apply_{name}");
    sql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    sql("postgres", &format!("CREATE DATABASE {db}"));
    sql(
        &db,
        "SET client_min_messages = warning; CREATE EXTENSION pg_tenant",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tenant-router.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"127.0.0.1:{}\"\n[catalog]\nurl = \"host={} port={} user=rt_router dbname={db}\"\n",
            c.port, c.sock, c.port
        ),
    )
    .expect("write config");
    Db {
        name: db,
        dir,
        config,
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn last_line(o: &Output) -> String {
    stdout(o).lines().last().unwrap_or_default().to_string()
}

impl Db {
    fn sql(&self, q: &str) -> String {
        sql(&self.name, q)
    }

    /// `tenant-router tenants <args> -c <config>`, with `user` over the
    /// config's role (None: the router's own catalog role).
    fn tool(&self, args: &[&str], user: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenant-router"));
        cmd.arg("tenants")
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .env_remove("TENANT_ROUTER_CONFIG")
            .env_remove("TENANT_ROUTER_CATALOG_URL")
            .env_remove("PG_TENANT_ADMIN_URL")
            .env_remove("PG_TENANT_ADMIN_USER")
            .env_remove("PG_TENANT_ADMIN_PASSWORD")
            .envs(env.iter().copied());
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        cmd.output().expect("run tenant-router")
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(file);
        std::fs::write(&p, text).expect("write file");
        p
    }

    fn apply_path(&self, path: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut all = vec!["apply", path.to_str().expect("path")];
        all.extend_from_slice(args);
        self.tool(&all, Some("postgres"), env)
    }

    /// Apply `text` as tenants.toml.
    fn apply(&self, text: &str, args: &[&str]) -> Output {
        let p = self.write("tenants.toml", text);
        self.apply_path(&p, args, &[])
    }

    /// The whole catalog: rows (with updated_at), defaults, secrets.
    fn snapshot(&self) -> String {
        self.sql(
            "SELECT coalesce((SELECT json_agg(t ORDER BY t.id)::text FROM tenant.tenants t), '[]') \
             || ' ' || coalesce((SELECT json_agg(d)::text FROM tenant.defaults d), 'no defaults') \
             || ' ' || coalesce((SELECT json_agg(s ORDER BY s.tenant_id)::text FROM tenant.tenant_secrets s), 'no secrets')",
        )
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

#[test]
fn apply_creates_changes_and_with_prune_drops_field_by_field() {
    let db = fresh("diff");
    db.sql(
        "SELECT tenant.create_tenant('alpha', max_connections => 5, read_only => true); \
         SELECT tenant.create_tenant('bravo', name => 'Bravo'); \
         SELECT tenant.create_tenant('charlie')",
    );
    let file = "[[tenants]]\nid = \"alpha\"\nmax_connections = 7\nlogin_roles = [\"app_user\"]\n\
                [[tenants]]\nid = \"bravo\"\nname = \"Bravo\"\n\
                [[tenants]]\nid = \"delta\"\nqps_limit = 9\n";
    // Without --prune, a tenant missing from the file stays.
    let o = db.apply(file, &[]);
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("~ tenant \"alpha\""), "{out}");
    assert!(out.contains("    max_connections: 5 -> 7"), "{out}");
    assert!(out.contains("    read_only: true -> false"), "{out}");
    assert!(
        out.contains("    login_roles: (default) -> [\"app_user\"]"),
        "{out}"
    );
    assert!(
        out.contains("+ tenant \"delta\"\n    qps_limit: 9"),
        "{out}"
    );
    assert!(
        !out.contains("bravo"),
        "unchanged tenants are only counted: {out}"
    );
    assert_eq!(
        last_line(&o),
        "1 created, 1 changed, 0 dropped, 1 unchanged"
    );
    assert_eq!(
        db.sql("SELECT string_agg(id || ':' || coalesce(max_connections::text, '-') || ':' || read_only || ':' || coalesce(qps_limit::text, '-') || ':' || coalesce(login_roles::text, '-'), ' ' ORDER BY id) FROM tenant.tenants"),
        "alpha:7:false:-:{app_user} bravo:-:false:-:- charlie:-:false:-:- delta:-:false:9:-"
    );
    // With --prune: charlie goes, the rest is unchanged.
    let o = db.apply(file, &["--prune"]);
    ok(&o);
    assert!(
        stdout(&o).contains("- tenant \"charlie\""),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        last_line(&o),
        "0 created, 0 changed, 1 dropped, 3 unchanged"
    );
    assert_eq!(
        db.sql("SELECT string_agg(id, ' ' ORDER BY id) FROM tenant.tenants"),
        "alpha bravo delta"
    );
    // A field back to NULL is reset (the defaults row applies again).
    let o = db.apply(
        "[[tenants]]\nid = \"alpha\"\n[[tenants]]\nid = \"bravo\"\nname = \"Bravo\"\n[[tenants]]\nid = \"delta\"\nqps_limit = 9\n",
        &["--format", "json"],
    );
    ok(&o);
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json report");
    assert_eq!(report["changed"][0]["id"], "alpha");
    let changes = report["changed"][0]["changes"].as_array().expect("changes");
    assert!(
        changes.contains(&serde_json::json!({"field": "max_connections", "old": 7, "new": null}))
    );
    assert_eq!(report["unchanged"], serde_json::json!(["bravo", "delta"]));
    assert_eq!(
        db.sql("SELECT max_connections IS NULL AND login_roles IS NULL FROM tenant.tenants WHERE id = 'alpha'"),
        "t"
    );
}

#[test]
fn a_dry_run_changes_nothing_and_a_second_apply_is_a_no_op() {
    let db = fresh("idempotent");
    db.sql("SELECT tenant.create_tenant('keep', max_connections => 3)");
    let file = "[defaults]\nmax_connections = 40\n\
                [[tenants]]\nid = \"keep\"\nmax_connections = 4\nburst_multiplier = 1.1\n\
                [[tenants]]\nid = \"made\"\nname = \"Made Here\"\nallowed_operations = [\"select\"]\n";
    let before = db.snapshot();
    let o = db.apply(file, &["--dry-run", "--prune"]);
    ok(&o);
    assert!(stdout(&o).contains("+ tenant \"made\""), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("~ defaults\n    max_connections: (no row) -> 40\n"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("    burst_multiplier: (default) -> 1.1\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        last_line(&o),
        "1 created, 1 changed, 0 dropped, 0 unchanged, defaults changed (dry run: nothing applied)"
    );
    assert_eq!(db.snapshot(), before, "a dry run changed the catalog");

    ok(&db.apply(file, &["--prune"]));
    let applied = db.snapshot();
    assert_ne!(applied, before);
    assert_eq!(db.sql("SELECT max_connections FROM tenant.defaults"), "40");
    // Again: nothing to do, in one line, and no row is written (updated_at
    // is part of the snapshot).
    let o = db.apply(file, &["--prune", "--dry-run"]);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "0 created, 0 changed, 0 dropped, 2 unchanged (dry run: nothing applied)\n"
    );
    let o = db.apply(file, &["--prune"]);
    ok(&o);
    assert_eq!(stdout(&o), "0 created, 0 changed, 0 dropped, 2 unchanged\n");
    assert_eq!(db.snapshot(), applied, "a second apply wrote the catalog");
}

#[test]
fn export_then_apply_is_a_no_op() {
    let db = fresh("export");
    db.sql(
        "CREATE SCHEMA reference; \
         SELECT tenant.set_defaults(max_connections => 42, pool_mode => 'transaction', burst_multiplier => 1.5); \
         SELECT tenant.create_tenant('plain'); \
         SELECT tenant.create_tenant('full', name => 'Full \"Quoted\" Name', max_connections => 9, qps_limit => 8, \
             burst_multiplier => 1.3, max_query_ms => 1000, max_result_bytes => 1099511627776, allow_ddl => true, \
             read_only => true, allowed_operations => '{select,update}', dedicated_pool => true, pool_size => 5, \
             min_idle => 1, enabled => false, allow_large_objects => true, login_roles => '{app_user,apply_login}', \
             pool_mode => 'session', statement_timeout_ms => 0, idle_in_transaction_timeout_ms => 5, work_mem_kb => 6, \
             maintenance_work_mem_kb => 7, temp_file_limit_kb => 8, max_advisory_locks => 9, client_idle_timeout_ms => 10); \
         SELECT tenant.create_tenant('schemed', isolation => 'schema', schema_name => 'schemed', role_name => 'schemed_role', \
             shared_schemas => '{reference}'); \
         SELECT tenant.create_tenant('own-db', isolation => 'database', database_name => 'own_db_x')",
    );
    let before = db.snapshot();
    for (format, file) in [("toml", "export.toml"), ("json", "export.json")] {
        let o = db.tool(&["export", "--format", format], Some("postgres"), &[]);
        ok(&o);
        let text = stdout(&o);
        assert!(text.contains("Quoted"), "{text}");
        let path = db.write(file, &text);
        let o = db.apply_path(&path, &["--prune", "--dry-run"], &[]);
        ok(&o);
        assert_eq!(
            stdout(&o),
            "0 created, 0 changed, 0 dropped, 4 unchanged (dry run: nothing applied)\n",
            "{format}:\n{text}"
        );
        let o = db.apply_path(&path, &["--prune"], &[]);
        ok(&o);
        assert_eq!(
            db.snapshot(),
            before,
            "{format}: applying the export changed the catalog"
        );
    }
    // Exported and applied elsewhere, the file makes the same catalog.
    let o = db.tool(&["export"], Some("postgres"), &[]);
    let other = fresh("export_copy");
    other.sql("CREATE SCHEMA reference");
    let path = other.write("copy.toml", &stdout(&o));
    ok(&other.apply_path(&path, &[], &[]));
    let strip = "SELECT json_agg(x ORDER BY x->>'id')::text FROM (SELECT to_jsonb(t) - 'created_at' - 'updated_at' - 'lock_space' AS x FROM tenant.tenants t) s";
    assert_eq!(other.sql(strip), db.sql(strip));
    assert_eq!(
        other.sql("SELECT row_to_json(d)::text FROM tenant.defaults d"),
        db.sql("SELECT row_to_json(d)::text FROM tenant.defaults d")
    );
}

#[test]
fn the_field_table_covers_every_catalog_column() {
    let db = fresh("columns");
    let columns = |table: &str| -> Vec<String> {
        let mut v: Vec<String> = db
            .sql(&format!(
                "SELECT string_agg(attname, ' ') FROM pg_attribute WHERE attrelid = 'tenant.{table}'::regclass AND attnum > 0 AND NOT attisdropped"
            ))
            .split(' ')
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    let mut declared: Vec<String> = TENANT_FIELDS
        .iter()
        .map(|f| f.name.to_string())
        .chain(CATALOG_OWN.iter().map(|s| s.to_string()))
        .collect();
    declared.sort();
    assert_eq!(
        columns("tenants"),
        declared,
        "a tenant.tenants column is missing from TENANT_FIELDS"
    );
    let mut defaults: Vec<String> = DEFAULTS_FIELDS
        .iter()
        .map(|f| f.name.to_string())
        .chain(["singleton".to_string()])
        .collect();
    defaults.sort();
    assert_eq!(
        columns("defaults"),
        defaults,
        "a tenant.defaults column is missing from DEFAULTS_FIELDS"
    );
}

#[test]
fn invalid_files_name_the_tenant_and_the_field_and_change_nothing() {
    let db = fresh("invalid");
    db.sql("SELECT tenant.create_tenant('acme', max_connections => 3)");
    let before = db.snapshot();
    let good = "[[tenants]]\nid = \"acme\"\nmax_connections = 4\n";
    let cases: &[(&str, &str, i32)] = &[
        (
            "max_conections = 5",
            "tenant \"beta\", field max_conections: unknown field",
            2,
        ),
        (
            "max_connections = \"ten\"",
            "tenant \"beta\", field max_connections: expected an integer",
            2,
        ),
        (
            "read_only = \"yes\"",
            "tenant \"beta\", field read_only: expected true or false",
            2,
        ),
        (
            "password = \"hunter2\"",
            "tenant \"beta\", field password: secrets are never written inline",
            2,
        ),
        (
            "password_env = \"APPLY_TEST_UNSET\"",
            "tenant \"beta\", field password_env: environment variable APPLY_TEST_UNSET is not set",
            2,
        ),
        // The catalog's own checks, after acme's change: rolled back.
        (
            "max_connections = -1",
            "tenant \"beta\", field max_connections: max_connections must be >= 0",
            1,
        ),
        (
            "isolation = \"cluster\"",
            "tenant \"beta\", field isolation: unknown isolation \"cluster\"",
            1,
        ),
    ];
    for (line, message, code) in cases {
        let o = db.apply(
            &format!("{good}[[tenants]]\nid = \"beta\"\n{line}\n"),
            &["--prune"],
        );
        assert_eq!(o.status.code(), Some(*code), "{line}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{line}: {}", stderr(&o));
        assert!(!stderr(&o).contains("hunter2") && !stdout(&o).contains("hunter2"));
        assert_eq!(db.snapshot(), before, "{line} changed the catalog");
    }
    let o = db.apply(&format!("{good}{good}"), &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("tenant \"acme\", field id: declared twice"),
        "{}",
        stderr(&o)
    );
    let o = db.apply("[tenant]\nid = \"x\"\n", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown top-level key `tenant`"),
        "{}",
        stderr(&o)
    );
    // An empty file with --prune would drop every tenant: refused.
    let o = db.apply("# nothing\n", &["--prune"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--prune would drop every tenant"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.snapshot(), before);
    // Control: the valid part alone applies.
    ok(&db.apply(good, &[]));
    assert_eq!(
        db.sql("SELECT max_connections FROM tenant.tenants WHERE id = 'acme'"),
        "4"
    );
}

#[test]
fn a_refusal_in_the_middle_rolls_back_everything() {
    let db = fresh("rollback");
    db.sql(
        "SELECT tenant.create_tenant('stay', qps_limit => 1); SELECT tenant.create_tenant('gone')",
    );
    let before = db.snapshot();
    // Drop gone, change stay, create one, then a login role that does not
    // exist: the catalog refuses the last statement.
    let file = "[[tenants]]\nid = \"stay\"\nqps_limit = 2\n\
                [[tenants]]\nid = \"first\"\n\
                [[tenants]]\nid = \"zulu\"\nmax_connections = 3\nlogin_roles = [\"no_such_role_x\"]\n";
    let o = db.apply(file, &["--prune"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("tenant \"zulu\", field login_roles: role \"no_such_role_x\" in login_roles does not exist (SQLSTATE 42704); nothing was changed (rolled back)"),
        "{err}"
    );
    assert_eq!(db.snapshot(), before);
    // The dry run sees the same refusal (it runs the same transaction).
    let o = db.apply(file, &["--prune", "--dry-run"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(db.snapshot(), before);
    // Control: without the bad tenant everything applies.
    ok(&db.apply(
        &file.replace("login_roles = [\"no_such_role_x\"]", ""),
        &["--prune"],
    ));
    assert_eq!(
        db.sql("SELECT string_agg(id || ':' || coalesce(qps_limit::text, '-'), ' ' ORDER BY id) FROM tenant.tenants"),
        "first:- stay:2 zulu:-"
    );
}

#[test]
fn secrets_by_file_and_environment_reach_the_catalog_and_are_never_printed() {
    let db = fresh("secrets");
    let secret_file = db.write("acme.secret", "file-secret-1\n");
    let file = format!(
        "[[tenants]]\nid = \"acme\"\npassword_file = \"{}\"\n[[tenants]]\nid = \"beta\"\npassword_env = \"APPLY_BETA_PW\"\n[[tenants]]\nid = \"gamma\"\n",
        secret_file.display()
    );
    let path = db.write("tenants.toml", &file);
    let verifier = |id: &str| db.sql(&format!("SELECT tenant.auth_secret('{id}')"));
    let o = db.apply_path(&path, &[], &[("APPLY_BETA_PW", "env-secret-1")]);
    ok(&o);
    let shown = format!("{}{}", stdout(&o), stderr(&o));
    assert!(shown.contains("password: (secret set)"), "{shown}");
    for s in ["file-secret-1", "env-secret-1", "SCRAM-SHA-256"] {
        assert!(!shown.contains(s), "{s} was printed: {shown}");
    }
    let acme = verifier("acme");
    let beta = verifier("beta");
    assert!(matches(&Secret("file-secret-1".into()), &acme), "{acme}");
    assert!(matches(&Secret("env-secret-1".into()), &beta), "{beta}");
    assert!(!matches(&Secret("env-secret-1".into()), &acme));
    assert_eq!(verifier("gamma"), "");
    // Same secrets: nothing to do (the verifiers are not replaced).
    let o = db.apply_path(&path, &[], &[("APPLY_BETA_PW", "env-secret-1")]);
    ok(&o);
    assert_eq!(stdout(&o), "0 created, 0 changed, 0 dropped, 3 unchanged\n");
    assert_eq!(
        (verifier("acme"), verifier("beta")),
        (acme.clone(), beta.clone())
    );
    // A new value replaces only that secret.
    let o = db.apply_path(&path, &[], &[("APPLY_BETA_PW", "env-secret-2")]);
    ok(&o);
    assert!(
        stdout(&o).contains("~ tenant \"beta\"\n    password: (secret replaced)\n"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("env-secret"));
    assert!(matches(&Secret("env-secret-2".into()), &verifier("beta")));
    assert_eq!(verifier("acme"), acme);
    // A file without the references leaves the secrets alone.
    let o = db.apply(
        "[[tenants]]\nid = \"acme\"\n[[tenants]]\nid = \"beta\"\n[[tenants]]\nid = \"gamma\"\n",
        &[],
    );
    ok(&o);
    assert_eq!(stdout(&o), "0 created, 0 changed, 0 dropped, 3 unchanged\n");
    assert_eq!(verifier("acme"), acme);
    // Export names the tenants that have a secret, never the secret.
    let o = db.tool(&["export"], Some("postgres"), &[]);
    ok(&o);
    assert!(stdout(&o).contains("have one (add password_file or\n# password_env to manage it; without, apply leaves it as it is): acme, beta"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("SCRAM"));
}

#[test]
fn the_routers_own_catalog_role_cannot_apply() {
    let db = fresh("router_role");
    let before = db.snapshot();
    let path = db.write("t.toml", "[[tenants]]\nid = \"acme\"\n");
    // The router config's role (tenant_router) may read router_catalog(),
    // not the catalog tables, and not write.
    let o = db.tool(&["apply", path.to_str().unwrap()], None, &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
    assert!(stderr(&o).contains("SQLSTATE 42501"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("run as an administrator (--user ROLE"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.snapshot(), before);
    // Control: the same file, the same config, with --user.
    ok(&db.tool(&["apply", path.to_str().unwrap()], Some("postgres"), &[]));
    assert_eq!(db.sql("SELECT id FROM tenant.tenants"), "acme");
    // A member of tenant_admin (no superuser) manages tenants, but may not
    // read secrets to compare them: a file with secrets is refused.
    let path = db.write(
        "t2.toml",
        "[[tenants]]\nid = \"acme\"\n[[tenants]]\nid = \"beta\"\nqps_limit = 3\n",
    );
    let o = db.tool(&["apply", path.to_str().unwrap()], Some("apply_admin"), &[]);
    ok(&o);
    assert_eq!(
        last_line(&o),
        "1 created, 0 changed, 0 dropped, 1 unchanged"
    );
    let with_secret = db.write(
        "t3.toml",
        "[[tenants]]\nid = \"acme\"\npassword_env = \"APPLY_ADMIN_PW\"\n",
    );
    let before = db.snapshot();
    let o = db.tool(
        &["apply", with_secret.to_str().unwrap()],
        Some("apply_admin"),
        &[("APPLY_ADMIN_PW", "pw")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("may not read the stored ones"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.snapshot(), before);
    // PG_TENANT_ADMIN_URL replaces the config's connection whole.
    let c = cluster();
    let o = db.tool(
        &["export"],
        None,
        &[(
            "PG_TENANT_ADMIN_URL",
            &format!(
                "host={} port={} user=postgres dbname={}",
                c.sock, c.port, db.name
            ),
        )],
    );
    ok(&o);
    assert!(stdout(&o).contains("id = \"acme\""), "{}", stdout(&o));
}

#[test]
fn the_example_file_applies_and_stays_applied() {
    let db = fresh("example");
    db.sql("CREATE SCHEMA reference");
    let example = repo().join("examples/tenants.toml");
    let env = [("ACME_PASSWORD", "example-secret")];
    let before = db.snapshot();
    let o = db.apply_path(&example, &["--dry-run"], &env);
    ok(&o);
    assert_eq!(
        last_line(&o),
        "4 created, 0 changed, 0 dropped, 0 unchanged, defaults changed (dry run: nothing applied)"
    );
    assert_eq!(db.snapshot(), before);
    let o = db.apply_path(&example, &[], &env);
    ok(&o);
    assert_eq!(
        db.sql("SELECT string_agg(id || ':' || isolation || ':' || enabled, ' ' ORDER BY id) FROM tenant.tenants"),
        "acme:rls:true globex:rls:true initech:schema:true umbrella:database:false"
    );
    assert_eq!(
        db.sql("SELECT pool_mode || ' ' || pool_size || ' ' || qps_limit || ' ' || burst_multiplier FROM tenant.tenant_list WHERE id = 'acme'"),
        "transaction 20 500 2"
    );
    assert!(matches(
        &Secret("example-secret".into()),
        &db.sql("SELECT tenant.auth_secret('acme')")
    ));
    let o = db.apply_path(&example, &["--dry-run", "--prune"], &env);
    ok(&o);
    assert_eq!(
        stdout(&o),
        "0 created, 0 changed, 0 dropped, 4 unchanged (dry run: nothing applied)\n"
    );
}

#[tokio::test]
async fn concurrent_applies_wait_for_each_other() {
    let db = fresh("concurrent");
    let c = cluster();
    let holder = connect(&format!(
        "host={} port={} user=postgres dbname={}",
        c.sock, c.port, db.name
    ))
    .await
    .expect("connect");
    // Another apply run holds the lock.
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&APPLY_LOCK])
        .await
        .expect("lock");
    let path = db.write("t.toml", "[[tenants]]\nid = \"late\"\n");
    let child = Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .args([
            "tenants",
            "apply",
            path.to_str().unwrap(),
            "--user",
            "postgres",
            "-c",
        ])
        .arg(&db.config)
        .env_remove("PG_TENANT_ADMIN_URL")
        .env_remove("TENANT_ROUTER_CATALOG_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let waiting = eventually(std::time::Duration::from_secs(20), || async {
        let n: i64 = holder
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        n == 1
    })
    .await;
    assert!(waiting, "the second apply does not wait for the first");
    let n: i64 = holder
        .query_one("SELECT count(*) FROM tenant.tenants", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "applied while another run held the lock");
    holder
        .execute("SELECT pg_advisory_unlock($1)", &[&APPLY_LOCK])
        .await
        .expect("unlock");
    let o = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    ok(&o);
    assert_eq!(
        last_line(&o),
        "1 created, 0 changed, 0 dropped, 0 unchanged"
    );
    assert_eq!(db.sql("SELECT id FROM tenant.tenants"), "late");
}

/// A `real` the catalog may hold and JSON cannot: before 0.9.0 the CHECK
/// (>= 1) let NaN and Infinity into burst_multiplier, for tenants and the
/// defaults row, and a catalog updated from 0.8.0 may still hold them.
/// Before, one such row stopped every export and every apply ("expected a
/// number, got \"NaN\"", exit 1). Now it exports and round-trips; declaring
/// one is refused by 0.9.0's catalog (22023, nothing changed) and a finite
/// value replaces it.
#[test]
fn reals_that_json_cannot_hold_export_and_apply() {
    let db = fresh("nonfinite");
    // As a 0.8.0 catalog stored them (0.9.0's create_tenant and
    // set_defaults refuse them; the table's CHECK still takes them).
    db.sql(
        "SELECT tenant.set_defaults(burst_multiplier => 2); \
         SELECT tenant.create_tenant('nan'); \
         SELECT tenant.create_tenant('inf'); \
         SELECT tenant.create_tenant('two', burst_multiplier => 2); \
         UPDATE tenant.defaults SET burst_multiplier = 'Infinity'; \
         UPDATE tenant.tenants SET burst_multiplier = 'NaN' WHERE id = 'nan'; \
         UPDATE tenant.tenants SET burst_multiplier = 'Infinity' WHERE id = 'inf'",
    );
    let before = db.snapshot();
    for (format, file) in [("toml", "export.toml"), ("json", "export.json")] {
        let o = db.tool(&["export", "--format", format], Some("postgres"), &[]);
        ok(&o);
        let path = db.write(file, &stdout(&o));
        let o = db.apply_path(&path, &["--prune"], &[]);
        ok(&o);
        assert_eq!(
            stdout(&o),
            "0 created, 0 changed, 0 dropped, 3 unchanged\n",
            "{format}"
        );
        assert_eq!(db.snapshot(), before, "{format}");
    }
    // TOML's own nan declares one: the catalog refuses it, nothing changes.
    let o = db.apply(
        "[defaults]\nburst_multiplier = 3\n\
         [[tenants]]\nid = \"nan\"\nburst_multiplier = 1.5\n\
         [[tenants]]\nid = \"inf\"\n\
         [[tenants]]\nid = \"two\"\nburst_multiplier = nan\n",
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("burst_multiplier must be a finite number >= 1"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.snapshot(), before, "a refused apply changed the catalog");
    // Control: finite values replace them.
    let o = db.apply(
        "[defaults]\nburst_multiplier = 3\n\
         [[tenants]]\nid = \"nan\"\nburst_multiplier = 1.5\n\
         [[tenants]]\nid = \"inf\"\nburst_multiplier = 4\n\
         [[tenants]]\nid = \"two\"\nburst_multiplier = 2\n",
        &[],
    );
    ok(&o);
    let out = stdout(&o);
    assert!(
        out.contains("    burst_multiplier: \"NaN\" -> 1.5\n"),
        "{out}"
    );
    assert_eq!(
        last_line(&o),
        "0 created, 2 changed, 0 dropped, 1 unchanged, defaults changed"
    );
    assert_eq!(
        db.sql(
            "SELECT string_agg(id || '=' || burst_multiplier, ' ' ORDER BY id) FROM tenant.tenants"
        ),
        "inf=4 nan=1.5 two=2"
    );
    assert_eq!(db.sql("SELECT burst_multiplier FROM tenant.defaults"), "3");
}

/// A file that does not parse is reported by line and column, never by
/// quoting the line: an inline secret with a typo reached stderr (and the
/// CI log) through the toml crate's message. A JSON key given twice is
/// refused (serde_json kept the last: the reader of the file saw another
/// value than the one applied).
#[test]
fn a_broken_file_is_located_not_quoted_and_json_keys_count_once() {
    let db = fresh("broken");
    db.sql("SELECT tenant.create_tenant('acme', read_only => true)");
    let before = db.snapshot();
    for (text, message) in [
        (
            "[[tenants]]\nid = \"acme\"\npassword = \"hunter2\n",
            "TOML parse error at line 3, column 20: invalid basic string",
        ),
        (
            "[[tenants]]\nid = \"acme\"\npassword = \"hunter2\"\npassword = \"hunter2\"\n",
            "TOML parse error at line 4, column 1: duplicate key",
        ),
    ] {
        let o = db.apply(text, &[]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(message), "{}", stderr(&o));
        let shown = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!shown.contains("hunter2"), "{shown}");
    }
    let path = db.write(
        "dup.json",
        r#"{"tenants": [{"id": "acme", "read_only": true, "read_only": false}]}"#,
    );
    let o = db.apply_path(&path, &[], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("key `read_only` given twice in one object"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.snapshot(), before);
    // Control: the key once applies.
    let path = db.write("once.json", r#"{"tenants": [{"id": "acme"}]}"#);
    ok(&db.apply_path(&path, &[], &[]));
    assert_eq!(
        db.sql("SELECT read_only FROM tenant.tenants WHERE id = 'acme'"),
        "f"
    );
}

/// A tenant another session changes after apply read the catalog: before,
/// apply (READ COMMITTED) waited for that session's row lock, then wrote
/// only its own diff over the other session's change and reported success,
/// leaving a field the file declares (judged unchanged) at the other value.
/// Now the transaction is REPEATABLE READ: the write is refused (40001),
/// nothing is applied, and a second run applies the file.
#[tokio::test]
async fn a_row_changed_under_apply_is_refused_not_half_applied() {
    let db = fresh("changed_under");
    db.sql("SELECT tenant.create_tenant('t', max_connections => 3)");
    let c = cluster();
    let other = connect(&format!(
        "host={} port={} user=postgres dbname={}",
        c.sock, c.port, db.name
    ))
    .await
    .expect("connect");
    other
        .batch_execute("BEGIN; SELECT tenant.alter_tenant('t', max_connections => 9)")
        .await
        .expect("alter");
    let path = db.write(
        "t.toml",
        "[[tenants]]\nid = \"t\"\nmax_connections = 3\nread_only = true\n",
    );
    let child = Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .args([
            "tenants",
            "apply",
            path.to_str().unwrap(),
            "--user",
            "postgres",
            "-c",
        ])
        .arg(&db.config)
        .env_remove("PG_TENANT_ADMIN_URL")
        .env_remove("TENANT_ROUTER_CATALOG_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // apply has read the catalog (max_connections 3: unchanged) and waits
    // for the row the other session holds (watched from a third session:
    // the other one's open transaction would see a cached pg_stat_activity).
    let watcher = connect(&format!(
        "host={} port={} user=postgres dbname={}",
        c.sock, c.port, db.name
    ))
    .await
    .expect("connect");
    let waiting = eventually(std::time::Duration::from_secs(20), || async {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        n == 1
    })
    .await;
    assert!(waiting, "apply does not wait for the row");
    other.batch_execute("COMMIT").await.expect("commit");
    let o = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("could not serialize access due to concurrent update (another session changed the catalog while apply ran: run it again) (SQLSTATE 40001); nothing was changed (rolled back)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        db.sql("SELECT max_connections || ' ' || read_only FROM tenant.tenants"),
        "9 false"
    );
    // Control: run again, the file is applied whole.
    let o = db.apply_path(&path, &[], &[]);
    ok(&o);
    assert!(
        stdout(&o).contains("    max_connections: 9 -> 3\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        db.sql("SELECT max_connections || ' ' || read_only FROM tenant.tenants"),
        "3 true"
    );
}

/// What a file or the catalog holds and an error repeats (a key, a value
/// the catalog refused) reached stderr raw: an escape sequence drove the
/// operator's terminal and a newline forged a line of the report. Now
/// control characters are escaped and the error is one line.
#[test]
fn errors_repeating_the_file_print_no_control_characters() {
    let db = fresh("control");
    for (text, shown) in [
        (
            "[[tenants]]\nid = \"acme\"\nisolation = \"\\u001b[2J\\n0 created, 0 changed, 0 dropped, 1 unchanged\"\n",
            "unknown isolation \"\\u{1b}[2J\\u{a}0 created",
        ),
        (
            "[[tenants]]\nid = \"acme\"\n\"\\u001b]0;owned\\u0007\" = 1\n",
            "field \\u{1b}]0;owned\\u{7}: unknown field",
        ),
    ] {
        let o = db.apply(text, &[]);
        assert_ne!(o.status.code(), Some(0), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            !err.bytes().any(|b| b == 0x1b || b == 0x07),
            "raw control characters: {err:?}"
        );
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(err.contains(shown), "{err:?}");
    }
    // Control: a plain refusal reads as before.
    let o = db.apply("[[tenants]]\nid = \"acme\"\nisolation = \"cluster\"\n", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("tenant \"acme\", field isolation: unknown isolation \"cluster\""),
        "{}",
        stderr(&o)
    );
}

/// stdout closed (`| head` that has quit): `print!` panicked (exit 101),
/// after the commit when it was the summary. Now the diff that cannot be
/// shown applies nothing (exit 2), a report that cannot be written after
/// the commit is said on stderr (exit 0), and export exits 2.
#[test]
fn a_closed_stdout_is_reported_not_a_panic() {
    let db = fresh("closed_stdout");
    let run = |args: &[&str]| {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        Command::new(env!("CARGO_BIN_EXE_tenant-router"))
            .arg("tenants")
            .args(args)
            .args(["--user", "postgres", "-c"])
            .arg(&db.config)
            .env_remove("PG_TENANT_ADMIN_URL")
            .env_remove("TENANT_ROUTER_CATALOG_URL")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run")
    };
    let path = db.write("t.toml", "[[tenants]]\nid = \"shown\"\n");
    let p = path.to_str().unwrap();
    let o = run(&["apply", p]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot write the diff to stdout"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert_eq!(db.sql("SELECT count(*) FROM tenant.tenants"), "0");
    // JSON: the report comes after the commit.
    let o = run(&["apply", p, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("applied, but the report could not be written to stdout"),
        "{}",
        stderr(&o)
    );
    assert_eq!(db.sql("SELECT id FROM tenant.tenants"), "shown");
    let o = run(&["export"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot write to stdout"),
        "{}",
        stderr(&o)
    );
    // Control: with a reader, the same run prints its report.
    let o = db.tool(&["export"], Some("postgres"), &[]);
    ok(&o);
    assert!(stdout(&o).contains("id = \"shown\""), "{}", stdout(&o));
}

/// The catalog's reals are read as text: with `extra_float_digits = 0` (a
/// role's or a database's setting) PostgreSQL writes 6 digits, so a real
/// of 1.0000001 read as 1 and a file declaring 1 was "unchanged" while the
/// catalog differed. The tool now sets its own.
#[test]
fn the_sessions_float_format_does_not_hide_a_difference() {
    let db = fresh("float_digits");
    db.sql(&format!(
        "ALTER DATABASE {} SET extra_float_digits = 0",
        db.name
    ));
    db.sql("SELECT tenant.create_tenant('t', burst_multiplier => 1.0000001)");
    let o = db.apply("[[tenants]]\nid = \"t\"\nburst_multiplier = 1\n", &[]);
    ok(&o);
    assert!(
        stdout(&o).contains("    burst_multiplier: 1.0000001 -> 1.0\n"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        db.sql("SET extra_float_digits = 1; SELECT burst_multiplier FROM tenant.tenants"),
        "1"
    );
    // Control: applied again, nothing to do.
    let o = db.apply("[[tenants]]\nid = \"t\"\nburst_multiplier = 1\n", &[]);
    ok(&o);
    assert_eq!(stdout(&o), "0 created, 0 changed, 0 dropped, 1 unchanged\n");
}

/// Export reads the tenants and the defaults row in one snapshot. Before,
/// two statements: a change of both committed between them gave a file of
/// the old tenants and the new defaults, a catalog that never was. The
/// second read is held back by a lock on tenant.defaults while another
/// session changes a tenant and the defaults and commits.
#[tokio::test]
async fn export_is_one_snapshot() {
    let db = fresh("export_snapshot");
    db.sql(
        "SELECT tenant.set_defaults(max_connections => 10); \
         SELECT tenant.create_tenant('t', max_connections => 1)",
    );
    let c = cluster();
    let url = format!(
        "host={} port={} user=postgres dbname={}",
        c.sock, c.port, db.name
    );
    let other = connect(&url).await.expect("connect");
    let watcher = connect(&url).await.expect("connect");
    other
        .batch_execute("BEGIN; LOCK TABLE tenant.defaults IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let child = Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .args(["tenants", "export", "--user", "postgres", "-c"])
        .arg(&db.config)
        .env_remove("PG_TENANT_ADMIN_URL")
        .env_remove("TENANT_ROUTER_CATALOG_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Export has read the tenants and waits to read the defaults.
    let waiting = eventually(std::time::Duration::from_secs(20), || async {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND wait_event = 'relation' \
                 AND query LIKE '%tenant.defaults%'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        n == 1
    })
    .await;
    assert!(waiting, "export does not wait for tenant.defaults");
    other
        .batch_execute(
            "SELECT tenant.alter_tenant('t', max_connections => 2); \
             SELECT tenant.set_defaults(max_connections => 20); COMMIT",
        )
        .await
        .expect("change");
    let o = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    ok(&o);
    let text = stdout(&o);
    // The state before the change, whole (not tenant 1 with defaults 20).
    assert!(
        text.contains("[defaults]\nmax_connections = 10\n"),
        "{text}"
    );
    assert!(text.contains("id = \"t\"\nmax_connections = 1\n"), "{text}");
    // Control: exported again, the state after the change.
    let o = db.tool(&["export"], Some("postgres"), &[]);
    ok(&o);
    assert!(
        stdout(&o).contains("[defaults]\nmax_connections = 20\n")
            && stdout(&o).contains("id = \"t\"\nmax_connections = 2\n"),
        "{}",
        stdout(&o)
    );
}

/// `--user` replaces the role of `--url` too: it was ignored there, and
/// the run went on as the url's role without a word.
#[test]
fn user_applies_over_url_too() {
    let db = fresh("user_over_url");
    db.sql("SELECT tenant.create_tenant('acme')");
    let c = cluster();
    let url = format!(
        "host={} port={} user=rt_router dbname={}",
        c.sock, c.port, db.name
    );
    let run = |user: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenant-router"));
        cmd.args(["tenants", "export", "--url", &url])
            .env_remove("TENANT_ROUTER_CONFIG")
            .env_remove("PG_TENANT_ADMIN_URL")
            .env_remove("PG_TENANT_ADMIN_USER")
            .env_remove("PG_TENANT_ADMIN_PASSWORD");
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        cmd.output().expect("run")
    };
    let o = run(Some("postgres"));
    ok(&o);
    assert!(stdout(&o).contains("id = \"acme\""), "{}", stdout(&o));
    // Control: without --user, the url's role (the router's) is refused.
    let o = run(None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("permission denied"), "{}", stderr(&o));
}

/// `-c` with `[catalog] password_file`: the router's own runs read it
/// (here a file others can read: refused, naming it), `--user` runs as
/// another role and do not read it (its password would not be sent).
#[test]
fn user_does_not_read_the_routers_catalog_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let db = fresh("pwfile_user");
    db.sql("SELECT tenant.create_tenant('acme')");
    let pw = db.write("catalog.password", "x\n");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let text = std::fs::read_to_string(&db.config).expect("config");
    std::fs::write(
        &db.config,
        format!("{text}password_file = \"{}\"\n", pw.display()),
    )
    .expect("config");
    let o = db.tool(&["export"], Some("postgres"), &[]);
    ok(&o);
    assert!(stdout(&o).contains("id = \"acme\""), "{}", stdout(&o));
    // Control: as the router's role, the file is read and refused.
    let o = db.tool(&["export"], None, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("catalog.password_file") && stderr(&o).contains("mode 0644"),
        "{}",
        stderr(&o)
    );
}
