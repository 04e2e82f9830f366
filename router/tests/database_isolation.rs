//! Database isolation (docs/src/isolation/database.md): a tenant with
//! `isolation => 'database'` runs in a database of its own, provisioned by
//! `tenant-router tenants provision`, and gets a sealed context there (its
//! catalog row signed into the token, `tenant.set_context_sealed`): each
//! tenant sees its own data, and nothing of another tenant's database,
//! its system catalog included (a secret in a function body). A sealed
//! context works only in the database bound to its tenant; a tampered
//! document, the plain `set_context` in a tenant database and a missing
//! database are refused, each next to a control that succeeds.
mod common;
use common::raw::{self, Raw};
use common::*;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SECRET: &str = "sk_live_tenant_a_7f3c9e";

/// The provisioning command's output lines (status, stdout, stderr).
fn provision(tenant: &str) -> (bool, String, String) {
    let c = cluster();
    let url = format!("host={} port={} user=postgres dbname={DB}", c.sock, c.port);
    let out = Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .args(["tenants", "provision", "--url", &url, tenant])
        .output()
        .expect("run tenant-router tenants provision");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The first provisioning's report of each tenant.
fn fixtures() -> &'static [(String, String); 2] {
    static F: OnceLock<[(String, String); 2]> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        scram_app_roles(&["rt_dbi_a", "rt_dbi_b"]);
        // From scratch each run: the first provisioning does every step.
        for db in ["dbi_a_db", "dbi_b_db"] {
            sql_in(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            );
        }
        tenants(&["dbi-a"], "isolation => 'database', database_name => 'dbi_a_db'");
        tenants(&["dbi-b"], "isolation => 'database', database_name => 'dbi_b_db'");
        tenants(
            &["dbi-missing"],
            "isolation => 'database', database_name => 'dbi_missing_db'",
        );
        admin_sql(
            "SELECT tenant.alter_tenant('dbi-a', login_roles => '{rt_dbi_a}', pool_mode => 'session'); \
             SELECT tenant.alter_tenant('dbi-b', login_roles => '{rt_dbi_b}', pool_mode => 'transaction', \
                                       read_only => false, reset => '{qps_limit}'); \
             SELECT tenant.alter_tenant('dbi-missing', login_roles => '{rt_dbi_a}')",
        );
        let mut reports = Vec::new();
        for t in ["dbi-a", "dbi-b"] {
            let (ok, out, err) = provision(t);
            assert!(ok, "provision {t}: {out}{err}");
            reports.push((out, err));
        }
        sql_in(
            "dbi_a_db",
            &format!(
                "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL); \
                 INSERT INTO items VALUES (1, 'a-one'), (2, 'a-two'); \
                 GRANT SELECT, INSERT ON items TO rt_dbi_a; \
                 CREATE FUNCTION api_key() RETURNS text LANGUAGE sql AS $$ SELECT '{SECRET}' $$"
            ),
        );
        sql_in(
            "dbi_b_db",
            "CREATE TABLE items (id int PRIMARY KEY, body text NOT NULL); \
             INSERT INTO items VALUES (1, 'b-one'), (2, 'b-two'), (3, 'b-three'); \
             GRANT SELECT, INSERT ON items TO rt_dbi_b",
        );
        let [a, b]: [(String, String); 2] = reports.try_into().expect("two reports");
        [a, b]
    })
}

/// A router that checks clients itself and pools backends (dbi-a: session
/// pooling, dbi-b: transaction pooling).
fn pooled_router() -> Router {
    Router::start_with("[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 4\n")
}

/// Where a client of `user` lands and what it sees: database, tenant,
/// rows of `items`.
async fn landing(url: &str) -> Result<(String, String, i64), tokio_postgres::Error> {
    let c = connect(url).await?;
    let row = c
        .query_one(
            "SELECT pg_catalog.current_database()::text, tenant.current_tenant_id(), \
                    (SELECT count(*) FROM items)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

fn tuple(db: &str, tenant: &str, rows: i64) -> (String, String, i64) {
    (db.to_owned(), tenant.to_owned(), rows)
}

#[tokio::test]
async fn provisioning_does_each_step_once_and_a_second_run_finds_them_done() {
    let [(a, _), (b, _)] = fixtures();
    for (report, db) in [(a, "dbi_a_db"), (b, "dbi_b_db")] {
        for step in [
            format!("create database \"{db}\": done"),
            format!("revoke CONNECT on \"{db}\" from PUBLIC: done"),
            format!("install pg_tenant in \"{db}\": done"),
        ] {
            assert!(report.contains(&step), "{step} in {report}");
        }
        assert!(!report.contains("already done"), "{report}");
    }
    assert!(
        a.contains("grant CONNECT on \"dbi_a_db\" to \"rt_dbi_a\": done"),
        "{a}"
    );
    assert!(
        a.contains("bind \"dbi_a_db\" to tenant \"dbi-a\": done"),
        "{a}"
    );
    // Again: every step already done, nothing changed.
    let (ok, again, err) = provision("dbi-a");
    assert!(ok, "{again}{err}");
    let steps: Vec<&str> = again.lines().filter(|l| l.contains(": ")).collect();
    assert_eq!(steps.len(), 5, "{again}");
    assert!(
        steps.iter().all(|l| l.ends_with(": already done")),
        "{again}"
    );
    assert_eq!(
        sql_in("dbi_a_db", "SELECT tenant_id FROM tenant.database_binding"),
        "dbi-a"
    );
    // CONNECT: only the tenant's login role (and the owner/superusers).
    assert_eq!(
        sql_in(
            "postgres",
            "SELECT has_database_privilege('rt_dbi_a', 'dbi_a_db', 'CONNECT'), \
                    has_database_privilege('rt_dbi_b', 'dbi_a_db', 'CONNECT')"
        ),
        "t|f"
    );
    // Refusals: a tenant that is not database-isolated, an unknown one.
    let (ok, out, err) = provision("acme");
    assert!(!ok, "{out}");
    assert!(err.contains("uses rls isolation"), "{err}");
    let (ok, _, err) = provision("no-such-tenant");
    assert!(!ok);
    assert!(
        err.contains("tenant \"no-such-tenant\" does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn each_tenant_runs_in_its_own_database_dedicated_and_pooled() {
    fixtures();
    let dedicated = Router::start();
    let pooled = pooled_router();
    for r in [&dedicated, &pooled] {
        // The client asks for the catalog database (dbname=router_test):
        // the router takes it to the tenant's own.
        assert_eq!(
            landing(&r.url("rt_dbi_a.dbi-a")).await.expect("dbi-a"),
            tuple("dbi_a_db", "dbi-a", 2)
        );
        assert_eq!(
            landing(&r.url("rt_dbi_b.dbi-b")).await.expect("dbi-b"),
            tuple("dbi_b_db", "dbi-b", 3)
        );
        // An rls tenant, through the same router: the catalog database.
        let c = connect(&r.url("rt_app.acme")).await.expect("acme");
        assert_eq!(visible_notes(&c).await, 3);
    }
    // Transaction pooling: a backend per transaction, the context sealed
    // again on each one; a write of one transaction is read by the next.
    let c = connect(&pooled.url("rt_dbi_b.dbi-b")).await.expect("dbi-b");
    for i in 0..5 {
        let row = c
            .query_one(
                "SELECT pg_catalog.current_database()::text, tenant.current_tenant_id()",
                &[],
            )
            .await
            .expect("query");
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, String>(1)),
            ("dbi_b_db".into(), "dbi-b".into()),
            "transaction {i}"
        );
    }
    // The admin API shows each tenant's isolation and database.
    let row = router_row(&pooled, "dbi-a").await;
    assert_eq!(row["isolation"], "database", "{row}");
    assert_eq!(row["database_name"], "dbi_a_db", "{row}");
    assert!(row.get("context_document").is_none(), "{row}");
    // Pools are per database: their labels name it.
    let metrics = prometheus(&pooled).await;
    assert!(metrics.contains("rt_dbi_a@dbi_a_db"), "{metrics}");
    assert!(metrics.contains("rt_dbi_b@dbi_b_db"), "{metrics}");
}

/// A catalog change reaches a transaction-pooled client of a database
/// tenant at its next transaction: the router seals each transaction's
/// context from the row it holds, which the change's notification replaced.
#[tokio::test]
async fn a_catalog_change_reaches_the_next_transaction_of_a_pooled_client() {
    fixtures();
    let r = pooled_router();
    let c = connect(&r.url("rt_dbi_b.dbi-b")).await.expect("dbi-b");
    let write = "BEGIN; INSERT INTO items VALUES (1000, 'x'); ROLLBACK";
    // Control: the tenant may write.
    c.batch_execute(write)
        .await
        .expect("a write before the change");
    admin_sql("SELECT tenant.alter_tenant('dbi-b', read_only => true, qps_limit => 100000)");
    router_sees(&r, "dbi-b", |v| v["qps_limit"] == 100000).await;
    let e = c
        .batch_execute(write)
        .await
        .expect_err("read_only reaches the open client");
    c.batch_execute("ROLLBACK").await.expect("rollback");
    admin_sql("SELECT tenant.alter_tenant('dbi-b', read_only => false, reset => '{qps_limit}')");
    assert!(db_message(&e).contains("read"), "{e}");
    router_sees(&r, "dbi-b", |v| v["qps_limit"] != 100000).await;
    c.batch_execute(write)
        .await
        .expect("a write after the change is undone");
}

/// The case: a secret in a function body of tenant A's database.
/// Tenant B cannot reach A's database (the client's `database` is
/// overridden), and B's own database has no trace of it; A reads it.
#[tokio::test]
async fn a_function_body_in_one_tenants_database_is_unreadable_by_another() {
    fixtures();
    let r = Router::start();
    let query = "SELECT count(*), coalesce(string_agg(prosrc, ''), '') FROM pg_catalog.pg_proc \
                 WHERE proname = 'api_key'";
    // Control: A's own session sees its function and its source.
    let a = connect(&r.url("rt_dbi_a.dbi-a")).await.expect("dbi-a");
    let row = a.query_one(query, &[]).await.expect("pg_proc");
    assert_eq!(row.get::<_, i64>(0), 1);
    assert!(row.get::<_, String>(1).contains(SECRET));
    // B asks for A's database by name: it lands in its own, where
    // pg_proc has no such function.
    let url = format!(
        "host=127.0.0.1 port={} user=rt_dbi_b.dbi-b password={PASSWORD} dbname=dbi_a_db",
        r.port
    );
    let b = connect(&url).await.expect("dbi-b");
    let db: String = b
        .query_one("SELECT pg_catalog.current_database()::text", &[])
        .await
        .expect("db")
        .get(0);
    assert_eq!(db, "dbi_b_db");
    let row = b.query_one(query, &[]).await.expect("pg_proc");
    assert_eq!(row.get::<_, i64>(0), 0);
    let e = b
        .query_one("SELECT api_key()", &[])
        .await
        .expect_err("no api_key in B's database");
    assert_eq!(sqlstate(&e), "42883");
    // And B's login role cannot connect to A's database at all.
    let direct = Raw::connect(cluster().port, "rt_dbi_b", "dbi_a_db").await;
    let e = direct.err().expect("CONNECT revoked");
    assert!(e.contains("permission denied for database"), "{e}");
}

/// A backend straight to PostgreSQL (the router's place), and a token
/// signed with the router's key for it.
struct Direct {
    raw: Raw,
    key: pg_tenant_token::SigningKey,
    nonce: u64,
}

impl Direct {
    async fn open(user: &str, db: &str) -> Direct {
        let raw = Raw::connect(cluster().port, user, db)
            .await
            .unwrap_or_else(|e| panic!("{user}@{db}: {e}"));
        let pem = std::fs::read_to_string(&cluster().key_file).expect("key file");
        Direct {
            raw,
            key: pg_tenant_token::signing_key_from_pem(&pem).expect("key"),
            nonce: 0,
        }
    }

    fn token(&mut self, action: pg_tenant_token::Action<'_>) -> String {
        let (pid, cancel_key) = self.raw.key.expect("BackendKeyData");
        self.nonce += 1;
        pg_tenant_token::sign(
            &self.key,
            action,
            pg_tenant_token::Backend { pid, cancel_key },
            self.nonce,
        )
    }

    /// Run `sql` with `params`: Ok(first column of the row) or the
    /// error's (SQLSTATE, message).
    async fn call(&mut self, sql: &str, params: &[&str]) -> Result<String, (String, String)> {
        let mut m = raw::parse_bind_execute(sql, params);
        m.extend_from_slice(&raw::sync());
        self.raw.send(&m).await;
        let msgs = self.raw.until(b'Z').await;
        if let Some(e) = msgs.iter().find(|m| m.0 == b'E') {
            return Err(raw::error_of(&e.1));
        }
        let row = msgs.iter().find(|m| m.0 == b'D').expect("a row");
        // One column: count (2), length (4), value.
        Ok(String::from_utf8_lossy(&row.1[6..]).into_owned())
    }

    async fn sealed(
        &mut self,
        tenant: &str,
        signed: &str,
        sent: &str,
    ) -> Result<String, (String, String)> {
        let token = self.token(pg_tenant_token::Action::SetSealed {
            tenant,
            document: signed,
        });
        self.call(
            "SELECT tenant.set_context_sealed($1, $2, $3)",
            &[tenant, &token, sent],
        )
        .await
    }
}

fn document(tenant: &str) -> String {
    admin_sql(&format!("SELECT tenant.context_document('{tenant}')::text"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn a_sealed_context_works_only_in_its_tenants_database() {
    fixtures();
    let (doc_a, doc_b) = (document("dbi-a"), document("dbi-b"));
    // In B's database (bound to B): A's sealed context is refused...
    let mut b = Direct::open("rt_dbi_b", "dbi_b_db").await;
    let (code, msg) = b
        .sealed("dbi-a", &doc_a, &doc_a)
        .await
        .expect_err("A in B's db");
    assert_eq!(code, "42501");
    assert!(
        msg.contains("database \"dbi_b_db\" serves tenant \"dbi-b\", not tenant \"dbi-a\""),
        "{msg}"
    );
    // ...and B's is accepted (control), with its row's settings.
    assert_eq!(b.sealed("dbi-b", &doc_b, &doc_b).await, Ok("dbi-b".into()));
    assert_eq!(
        b.call("SELECT tenant.current_tenant_id()", &[]).await,
        Ok("dbi-b".into())
    );

    // In the catalog database: a sealed context is refused; the plain
    // set_context of an rls tenant is accepted (control).
    let mut cat = Direct::open("rt_dbi_a", DB).await;
    let (code, msg) = cat
        .sealed("dbi-a", &doc_a, &doc_a)
        .await
        .expect_err("sealed in the catalog");
    assert_eq!(code, "42501");
    assert!(
        msg.contains(&format!("database \"{DB}\" is not a tenant database")),
        "{msg}"
    );
    let token = cat.token(pg_tenant_token::Action::Set("acme"));
    assert_eq!(
        cat.call("SELECT tenant.set_context($1, $2)", &["acme", &token])
            .await,
        Ok("acme".into())
    );

    // In A's database: the plain set_context is refused (the tenant
    // database has no catalog row), a tampered document is refused, a
    // document for another database is refused even when signed; the
    // document as signed is accepted (control).
    let mut a = Direct::open("rt_dbi_a", "dbi_a_db").await;
    let token = a.token(pg_tenant_token::Action::Set("dbi-a"));
    let (code, msg) = a
        .call("SELECT tenant.set_context($1, $2)", &["dbi-a", &token])
        .await
        .expect_err("plain set_context in a tenant database");
    assert_eq!(
        (code.as_str(), msg.as_str()),
        ("42501", "tenant \"dbi-a\" does not exist")
    );
    let tampered = doc_a.replace("\"read_only\": false", "\"read_only\": true");
    assert_ne!(tampered, doc_a);
    let (code, msg) = a
        .sealed("dbi-a", &doc_a, &tampered)
        .await
        .expect_err("tampered");
    assert_eq!(code, "42501");
    assert!(msg.contains("signature does not match"), "{msg}");
    let elsewhere = doc_a.replace("\"dbi_a_db\"", "\"dbi_b_db\"");
    let (code, msg) = a
        .sealed("dbi-a", &elsewhere, &elsewhere)
        .await
        .expect_err("another database's document");
    assert_eq!(code, "42501");
    assert!(
        msg.contains("is for database \"dbi_b_db\", not \"dbi_a_db\""),
        "{msg}"
    );
    // B's document under A's tenant id, signed: refused too.
    let (code, _) = a
        .sealed("dbi-a", &doc_b, &doc_b)
        .await
        .expect_err("B's document");
    assert_eq!(code, "42501");
    assert_eq!(a.sealed("dbi-a", &doc_a, &doc_a).await, Ok("dbi-a".into()));
    assert_eq!(
        a.call("SELECT count(*)::text FROM items", &[]).await,
        Ok("2".into())
    );
    // A replayed token (same nonce) is refused: the nonce is spent.
    a.nonce -= 1;
    let (code, msg) = a.sealed("dbi-a", &doc_a, &doc_a).await.expect_err("replay");
    assert_eq!(code, "42501");
    assert!(msg.contains("already used"), "{msg}");
}

#[tokio::test]
async fn a_database_cannot_be_both_catalog_and_tenant_database() {
    fixtures();
    // A bound database refuses tenants; it cannot be rebound.
    let out = psql(cluster(), "dbi_a_db")
        .args([
            "-tA",
            "-c",
            "SELECT tenant.create_tenant('zz-in-tenant-db')",
        ])
        .output()
        .expect("psql");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("is the tenant database of tenant \"dbi-a\""),
        "{err}"
    );
    let out = psql(cluster(), "dbi_a_db")
        .args(["-tA", "-c", "SELECT tenant.bind_database('dbi-b')"])
        .output()
        .expect("psql");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is bound to tenant \"dbi-a\" and cannot serve tenant \"dbi-b\""),
        "{err}"
    );
    // The catalog cannot be bound.
    let out = psql(cluster(), DB)
        .args(["-tA", "-c", "SELECT tenant.bind_database('dbi-a')"])
        .output()
        .expect("psql");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is a tenant catalog"), "{err}");
    // Control: binding again to its own tenant is a no-op.
    assert_eq!(
        sql_in("dbi_a_db", "SELECT tenant.bind_database('dbi-a')"),
        "f"
    );
}

#[tokio::test]
async fn a_missing_database_is_a_clear_fatal_naming_the_tenant() {
    fixtures();
    for r in [Router::start(), pooled_router()] {
        let started = Instant::now();
        let Err(e) = connect(&r.url("rt_dbi_a.dbi-missing")).await else {
            panic!("dbi-missing has no database");
        };
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(sqlstate(&e), "3D000", "{e}");
        assert_eq!(
            db_message(&e),
            "database \"dbi_missing_db\" of tenant \"dbi-missing\" does not exist: \
             create it with `tenant-router tenants provision dbi-missing`"
        );
        // Control: the same login opens its own tenant through this router.
        assert_eq!(
            landing(&r.url("rt_dbi_a.dbi-a")).await.expect("dbi-a").0,
            "dbi_a_db"
        );
    }
}
