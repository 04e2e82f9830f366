//! Bulk loading through the router with three real drivers: psycopg 3
//! (text and binary COPY), node-postgres with pg-copy-streams and pgjdbc's
//! CopyManager (CSV). Each tenant's rows land for that tenant only; a load
//! with one row of another tenant is refused whole (42501); an unprotected
//! table takes PostgreSQL's own COPY. Driver programs: router/tests/drivers/.
mod common;
use common::*;
use std::process::Command;

fn setup() {
    admin_sql(
        "CREATE TABLE IF NOT EXISTS cp_load (id bigint GENERATED ALWAYS AS IDENTITY, \
           tenant_id text NOT NULL, sku text NOT NULL, qty int, PRIMARY KEY (tenant_id, id)); \
         SELECT tenant.protect('cp_load'); \
         CREATE TABLE IF NOT EXISTS cp_plain_load (note text); \
         GRANT SELECT, INSERT ON cp_load, cp_plain_load TO rt_app; \
         TRUNCATE cp_load, cp_plain_load",
    );
}

/// Run a driver program against the router as `user`; its stdout lines.
fn run_driver(r: &Router, program: &str, args: &[&str], user: &str) -> Vec<String> {
    let port = r.port.to_string();
    let mut all = args.to_vec();
    all.extend(["127.0.0.1", port.as_str(), user, PASSWORD, DB]);
    run_program(program, &all)
}

fn count(sql_where: &str) -> i64 {
    admin_sql(&format!("SELECT count(*) FROM cp_load WHERE {sql_where}"))
        .trim()
        .parse()
        .expect("count")
}

#[test]
fn drivers_bulk_load_into_protected_tables_for_their_tenant_only() {
    setup();
    let r = Router::start();

    let py = run_driver(&r, "python3", &["copy_psycopg.py"], "rt_app.acme");
    let acme_before = count("tenant_id = 'acme' AND sku LIKE 'py-%'");
    assert_eq!(
        py,
        vec![
            "text 1000".to_string(),
            "binary 1000".into(),
            "foreign refused 42501".into(),
            "plain 1".into(),
            format!("visible {}", count("tenant_id = 'acme'")),
        ]
    );
    assert_eq!(acme_before, 2000);

    let node = run_driver(&r, "node", &["copy_node.js"], "rt_app.globex");
    assert_eq!(
        node,
        vec![
            "csv 1000".to_string(),
            "foreign refused 42501".into(),
            format!("visible {}", count("tenant_id = 'globex'")),
        ]
    );
    assert_eq!(count("tenant_id = 'globex' AND sku LIKE 'node-%'"), 1000);

    // pgjdbc from Debian's libpostgresql-jdbc-java, compiled here.
    let classes = tempdir();
    let jar = "/usr/share/java/postgresql.jar";
    let javac = Command::new("javac")
        .args(["-cp", jar, "-d", classes.as_str(), "CopyJdbc.java"])
        .current_dir(drivers_dir())
        .output()
        .expect("javac");
    assert!(
        javac.status.success(),
        "{}",
        String::from_utf8_lossy(&javac.stderr)
    );
    let cp = format!("{jar}:{classes}");
    let java = run_driver(&r, "java", &["-cp", &cp, "CopyJdbc"], "rt_app.initech");
    assert_eq!(
        java,
        vec![
            "csv 1000".to_string(),
            "foreign refused 42501".into(),
            format!("visible {}", count("tenant_id = 'initech'")),
        ]
    );
    assert_eq!(count("tenant_id = 'initech' AND sku LIKE 'jdbc-%'"), 1000);

    // Nothing of any refused load landed, for anyone.
    assert_eq!(count("sku LIKE '%-evil' OR sku LIKE '%-ok%'"), 0);
    assert!(admin_sql("SELECT count(*) FROM cp_plain_load WHERE note = 'plain'").trim() != "0");
    admin_sql("TRUNCATE cp_load, cp_plain_load");
}

fn tempdir() -> String {
    let dir = std::env::temp_dir().join(format!("pg_tenant_copy_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tempdir");
    dir.to_string_lossy().into_owned()
}
