//! Placement (docs/src/scaling-out/index.md): a tenant whose catalog `upstream`
//! names an `[upstreams.<name>]` lives on that server: its connections go
//! there with sealed contexts (rls and schema tenants too), its rows are
//! there and not on the main server; a fenced tenant is refused by the
//! server (55000) while others work; a down upstream affects only its
//! tenants; an unknown upstream is refused (08001); a catalog change of
//! the upstream moves new connections; a reload that removes an upstream
//! drains its pools. Each test runs a second cluster of its own
//! (`common::second`).
mod common;
use common::raw::{self, Raw};
use common::second::Second;
use common::*;
use std::time::Duration;

/// The shared table of rls tenants, on a second server.
const NOTES: &str =
    "CREATE TABLE notes (id serial PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL); \
     SELECT tenant.protect('notes'); \
     GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO rt_app; \
     GRANT USAGE ON SEQUENCE notes_id_seq TO rt_app";

/// `rt_app` keeps `role` (it may SET ROLE to it) without its privileges:
/// on 16+ the grant `WITH INHERIT FALSE`, on 15 (no per-grant option) the
/// login role NOINHERIT, as the refusal's hint says for each version.
fn stop_inheriting(second: &Second, role: &str) {
    let version: i32 = second
        .sql("SHOW server_version_num")
        .parse()
        .expect("a version number");
    if version >= 160000 {
        second.sql(&format!(
            "REVOKE {role} FROM rt_app; GRANT {role} TO rt_app WITH INHERIT FALSE"
        ));
    } else {
        second.sql("ALTER ROLE rt_app NOINHERIT");
    }
}

fn upstream_b(second: &Second) -> String {
    format!("[upstreams.b]\naddress = \"{}\"\n", second.address())
}

/// Where a client lands (the server's port), its tenant, and the notes it
/// sees.
async fn landing(url: &str) -> Result<(String, String, i64), tokio_postgres::Error> {
    let c = connect(url).await?;
    let row = c
        .query_one(
            "SELECT pg_catalog.current_setting('port'), tenant.current_tenant_id(), \
                    (SELECT count(*) FROM notes)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// A main-upstream tenant's landing: the port and its tenant.
async fn main_landing(r: &Router, tenant: &str) -> (String, String) {
    let (port, t, _) = landing(&r.url(&format!("rt_app.{tenant}")))
        .await
        .unwrap_or_else(|e| panic!("{tenant}: {e}"));
    (port, t)
}

fn on(port: u16, tenant: &str, rows: i64) -> (String, String, i64) {
    (port.to_string(), tenant.to_owned(), rows)
}

/// An error's (SQLSTATE, message).
fn refusal(r: Result<impl std::fmt::Debug, tokio_postgres::Error>) -> (String, String) {
    let e = r.expect_err("refused");
    (sqlstate(&e), db_message(&e))
}

#[tokio::test]
async fn a_tenant_on_a_second_server_reads_and_writes_its_rows_there_not_on_main() {
    let main = cluster().port;
    let second = Second::start(&["rt_app"], NOTES);
    tenants(&["plc-a"], "upstream => 'b'");
    let r = Router::start_with(&upstream_b(&second));
    let url = r.url("rt_app.plc-a");

    let c = connect(&url).await.expect("plc-a through the router");
    c.batch_execute("INSERT INTO notes (body) VALUES ('on b'), ('also on b')")
        .await
        .expect("insert on b");
    drop(c);
    assert_eq!(
        landing(&url).await.expect("plc-a"),
        on(second.port, "plc-a", 2)
    );
    // The rows are on the second server, none on the main one.
    assert_eq!(
        second.sql("SELECT count(*) FROM notes WHERE tenant_id = 'plc-a'"),
        "2"
    );
    assert_eq!(
        admin_sql("SELECT count(*) FROM notes WHERE tenant_id = 'plc-a'").trim(),
        "0"
    );
    // A tenant on the main upstream (control) lands there.
    assert_eq!(
        main_landing(&r, "acme").await,
        (main.to_string(), "acme".to_owned())
    );
    // A cancel request reaches the backend on the second server.
    let c = connect(&url).await.expect("plc-a again");
    let pid = backend_pid(&c).await;
    let token = c.cancel_token();
    let sleeper = tokio::spawn(async move { c.batch_execute("SELECT pg_sleep(30)").await });
    let sleeping = eventually(Duration::from_secs(5), || async {
        second.sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND wait_event = 'PgSleep'"
        )) == "1"
    })
    .await;
    assert!(sleeping, "pg_sleep on b");
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("cancel sent");
    let e = sleeper.await.expect("join").expect_err("canceled");
    assert_eq!(sqlstate(&e), "57014", "{e}");
    // The admin API shows each tenant's upstream.
    assert_eq!(router_row(&r, "plc-a").await["upstream"], "b");
    assert_eq!(router_row(&r, "acme").await["upstream"], "main");
    let page: serde_json::Value = reqwest::get(r.admin("/tenants?prefix=plc-a"))
        .await
        .expect("/tenants")
        .json()
        .await
        .expect("json");
    assert_eq!(page["tenants"][0]["upstream"], "b", "{page}");
}

#[tokio::test]
async fn rls_and_schema_tenants_get_sealed_contexts_on_the_second_server() {
    let second = Second::start(
        &["rt_app"],
        &format!(
            "{NOTES}; \
             CREATE ROLE plc_s_role NOLOGIN IN ROLE tenant_app; \
             GRANT plc_s_role TO rt_app; \
             CREATE SCHEMA plc_s; REVOKE ALL ON SCHEMA plc_s FROM PUBLIC; \
             GRANT USAGE, CREATE ON SCHEMA plc_s TO plc_s_role; \
             CREATE TABLE plc_s.items (id int PRIMARY KEY, body text); \
             INSERT INTO plc_s.items VALUES (1, 'one'), (2, 'two'); \
             ALTER TABLE plc_s.items OWNER TO plc_s_role; \
             INSERT INTO notes (tenant_id, body) VALUES ('plc-r', 'r1'), ('other', 'x')"
        ),
    );
    tenants(&["plc-r"], "upstream => 'b'");
    tenants(
        &["plc-s"],
        "isolation => 'schema', schema_name => 'plc_s', role_name => 'plc_s_role', upstream => 'b'",
    );
    let r = Router::start_with(&upstream_b(&second));
    // The shared login role inherits the schema tenant's role: an rls
    // tenant's session as that login role would reach the schema tenant's
    // objects, and this server has no catalog to say whose role it is: any
    // other application role's privileges are refused (42501).
    let (code, msg) = refusal(landing(&r.url("rt_app.plc-r")).await);
    assert_eq!(code, "28000", "{msg}");
    assert!(
        msg.contains("role \"rt_app\" has the privileges of application role \"plc_s_role\""),
        "{msg}"
    );
    stop_inheriting(&second, "plc_s_role");
    // rls: its own row only (control, once the login role stops
    // inheriting).
    assert_eq!(
        landing(&r.url("rt_app.plc-r")).await.expect("plc-r"),
        on(second.port, "plc-r", 1)
    );
    // schema: its schema first on the search_path, running as its role.
    let c = connect(&r.url("rt_app.plc-s")).await.expect("plc-s");
    let row = c
        .query_one(
            "SELECT tenant.current_tenant_id(), current_user::text, \
                    (SELECT count(*) FROM items), current_schemas(false)::text",
            &[],
        )
        .await
        .expect("plc-s query");
    let got: (String, String, i64, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(got.0, "plc-s");
    assert_eq!(got.1, "plc_s_role");
    assert_eq!(got.2, 2);
    assert!(got.3.starts_with("{plc_s"), "{}", got.3);
    // Its role stays locked (a check set_context_sealed applied from the
    // document).
    let e = c
        .batch_execute("RESET ROLE")
        .await
        .expect_err("role locked");
    assert_eq!(sqlstate(&e), "42501", "{}", db_message(&e));
}

#[tokio::test]
async fn a_fenced_tenant_is_refused_and_an_unfenced_one_works() {
    let second = Second::start(&["rt_app"], NOTES);
    tenants(&["plc-f", "plc-g"], "upstream => 'b'");
    let r = Router::start_with(&upstream_b(&second));
    assert_eq!(
        second.sql("SELECT tenant.fence_tenant('plc-f', 'moved to c')"),
        "t"
    );
    let (code, msg) = refusal(landing(&r.url("rt_app.plc-f")).await);
    assert_eq!(code, "55000", "{msg}");
    assert!(
        msg.contains("tenant \"plc-f\" does not live on this server (fenced: moved to c)"),
        "{msg}"
    );
    // The other tenant on the same server (control) works.
    assert_eq!(
        landing(&r.url("rt_app.plc-g")).await.expect("plc-g"),
        on(second.port, "plc-g", 0)
    );
    // Unfenced, the tenant works again.
    assert_eq!(second.sql("SELECT tenant.unfence_tenant('plc-f')"), "t");
    assert_eq!(
        landing(&r.url("rt_app.plc-f"))
            .await
            .expect("plc-f unfenced"),
        on(second.port, "plc-f", 0)
    );
    // The catalog server refuses a tenant it places elsewhere (55000),
    // whatever reaches it: a context set straight on the main server.
    let mut d = Direct::open(cluster().port).await;
    let token = d.token(pg_tenant_token::Action::Set("plc-f"));
    let (code, msg) = d
        .call("SELECT tenant.set_context($1, $2)", &["plc-f", &token])
        .await
        .expect_err("plc-f on main");
    assert_eq!(code, "55000");
    assert!(msg.contains("upstream \"b\""), "{msg}");
    let token = d.token(pg_tenant_token::Action::Set("acme"));
    assert_eq!(
        d.call("SELECT tenant.set_context($1, $2)", &["acme", &token])
            .await,
        Ok("acme".into())
    );
}

/// A backend straight to a server (the router's place), with tokens
/// signed by the router's key for it.
struct Direct {
    raw: Raw,
    key: pg_tenant_token::SigningKey,
    nonce: u64,
}

impl Direct {
    async fn open(port: u16) -> Direct {
        Direct::open_db(port, DB).await
    }

    async fn open_db(port: u16, db: &str) -> Direct {
        let raw = Raw::connect(port, "rt_app", db)
            .await
            .unwrap_or_else(|e| panic!("rt_app on {port}: {e}"));
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

    async fn call(&mut self, sql: &str, params: &[&str]) -> Result<String, (String, String)> {
        let mut m = raw::parse_bind_execute(sql, params);
        m.extend_from_slice(&raw::sync());
        self.raw.send(&m).await;
        let msgs = self.raw.until(b'Z').await;
        if let Some(e) = msgs.iter().find(|m| m.0 == b'E') {
            return Err(raw::error_of(&e.1));
        }
        let row = msgs.iter().find(|m| m.0 == b'D').expect("a row");
        Ok(String::from_utf8_lossy(&row.1[6..]).into_owned())
    }

    /// `set_context_sealed(tenant, token, sent)` with a token signed over
    /// `signed` for `signer`.
    async fn sealed(
        &mut self,
        signer: &str,
        signed: &str,
        tenant: &str,
        sent: &str,
    ) -> Result<String, (String, String)> {
        let token = self.token(pg_tenant_token::Action::SetSealed {
            tenant: signer,
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
async fn a_sealed_context_of_one_tenant_cannot_be_used_for_another() {
    let second = Second::start(&["rt_app"], NOTES);
    tenants(&["plc-x", "plc-y"], "upstream => 'b'");
    tenants(&["plc-main"], "");
    let (doc_x, doc_y) = (document("plc-x"), document("plc-y"));
    let mut d = Direct::open(second.port).await;
    // X's document signed for X, presented as Y's: the signature covers
    // the tenant.
    let (code, _) = d
        .sealed("plc-x", &doc_x, "plc-y", &doc_x)
        .await
        .expect_err("X's token for Y");
    assert_eq!(code, "42501");
    // Y's token over X's document: the document is not Y's.
    let (code, msg) = d
        .sealed("plc-y", &doc_x, "plc-y", &doc_x)
        .await
        .expect_err("X's document for Y");
    assert_eq!(code, "42501");
    assert!(msg.contains("is not tenant \"plc-y\"'s"), "{msg}");
    // A main-upstream tenant's document is not accepted sealed here.
    let doc_main = document("plc-main");
    let (code, msg) = d
        .sealed("plc-main", &doc_main, "plc-main", &doc_main)
        .await
        .expect_err("a main tenant sealed");
    assert_eq!(code, "42501");
    assert!(msg.contains("lives on the main upstream"), "{msg}");
    // In a database bound to a database tenant, an rls tenant's document
    // is refused.
    second.sql("CREATE DATABASE plc_bound");
    let bound = second.sql_in(
        "plc_bound",
        "SET client_min_messages = warning; CREATE EXTENSION pg_tenant; \
         SELECT tenant.bind_database('plc-dbt')",
    );
    assert_eq!(bound, "t");
    let mut b = Direct::open_db(second.port, "plc_bound").await;
    let (code, msg) = b
        .sealed("plc-x", &doc_x, "plc-x", &doc_x)
        .await
        .expect_err("rls tenant in a bound database");
    assert_eq!(code, "42501");
    assert!(
        msg.contains("is the tenant database of tenant \"plc-dbt\""),
        "{msg}"
    );
    // Each document as signed, for its own tenant (control).
    assert_eq!(
        d.sealed("plc-y", &doc_y, "plc-y", &doc_y).await,
        Ok("plc-y".into())
    );
    assert_eq!(
        d.call("SELECT tenant.current_tenant_id()", &[]).await,
        Ok("plc-y".into())
    );
}

#[tokio::test]
async fn a_down_upstream_affects_only_its_tenants_and_ready_says_which() {
    let main = cluster().port;
    let second = Second::start(&["rt_app"], NOTES);
    tenants(&["plc-d"], "upstream => 'b'");
    let r = Router::start_with(&upstream_b(&second));
    assert_eq!(
        landing(&r.url("rt_app.plc-d")).await.expect("plc-d"),
        on(second.port, "plc-d", 0)
    );
    let ready = || async {
        let resp = reqwest::get(r.admin("/ready")).await.expect("/ready");
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.expect("json");
        (status, body)
    };
    let (status, body) = ready().await;
    assert_eq!(
        (status, &body["upstreams"]["b"]),
        (200, &"ok".into()),
        "{body}"
    );

    second.stop();
    // Its tenant is refused (the server is gone), naming the upstream's
    // address; the main upstream's tenant works on.
    let (code, msg) = refusal(landing(&r.url("rt_app.plc-d")).await);
    assert_eq!(code, "08006", "{msg}");
    assert!(msg.contains(&second.address()), "{msg}");
    assert_eq!(
        main_landing(&r, "acme").await,
        (main.to_string(), "acme".to_owned())
    );
    // /ready: still ready (the main upstream and the catalog answer), b
    // reported down; the metric says so too.
    let reported = eventually(Duration::from_secs(5), || async {
        let (status, body) = ready().await;
        status == 200 && body["upstreams"]["b"] != "ok" && body["upstreams"]["main"] == "ok"
    })
    .await;
    assert!(reported, "{:?}", ready().await);
    let m = prometheus(&r).await;
    assert!(
        m.contains("tenant_router_upstream_up{upstream=\"b\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("tenant_router_upstream_up{upstream=\"main\"} 1"),
        "{m}"
    );

    // Back up: its tenant works again.
    second.restart();
    let back = eventually(Duration::from_secs(10), || async {
        landing(&r.url("rt_app.plc-d")).await.is_ok()
    })
    .await;
    assert!(back, "plc-d after b came back");
    let (_, body) = ready().await;
    let ok = eventually(Duration::from_secs(5), || async {
        ready().await.1["upstreams"]["b"] == "ok"
    })
    .await;
    assert!(ok, "{body}");
}

#[tokio::test]
async fn an_unknown_upstream_is_refused_with_08001_naming_tenant_and_upstream() {
    tenants(&["plc-u"], "upstream => 'nowhere'");
    let r = Router::start();
    let (code, msg) = refusal(landing(&r.url("rt_app.plc-u")).await);
    assert_eq!(code, "08001", "{msg}");
    assert!(
        msg.contains("tenant \"plc-u\" lives on upstream \"nowhere\""),
        "{msg}"
    );
    // Nothing else is affected (control).
    assert_eq!(
        main_landing(&r, "acme").await,
        (cluster().port.to_string(), "acme".to_owned())
    );
}

#[tokio::test]
async fn a_catalog_upstream_change_moves_new_connections() {
    let main = cluster().port;
    let second = Second::start(&["rt_app"], NOTES);
    tenants(&["plc-m"], "");
    admin_sql("SELECT tenant.alter_tenant('plc-m', reset => '{upstream}')");
    let r = Router::start_with(&upstream_b(&second));
    assert_eq!(
        landing(&r.url("rt_app.plc-m")).await.expect("on main"),
        on(main, "plc-m", 0)
    );
    // A session open before the change stays where it is.
    let before = connect(&r.url("rt_app.plc-m")).await.expect("before");
    admin_sql("SELECT tenant.alter_tenant('plc-m', upstream => 'b')");
    router_sees(&r, "plc-m", |row| row["upstream"] == "b").await;
    assert_eq!(
        landing(&r.url("rt_app.plc-m")).await.expect("on b"),
        on(second.port, "plc-m", 0)
    );
    assert_eq!(
        first_value(&before, "SELECT pg_catalog.current_setting('port')").await,
        main.to_string()
    );
    // And back.
    admin_sql("SELECT tenant.alter_tenant('plc-m', upstream => 'main')");
    router_sees(&r, "plc-m", |row| row["upstream"] == "main").await;
    assert_eq!(
        landing(&r.url("rt_app.plc-m"))
            .await
            .expect("on main again"),
        on(main, "plc-m", 0)
    );
}

#[tokio::test]
async fn a_reload_that_removes_an_upstream_drains_its_pools() {
    let second = Second::start(&["rt_app"], NOTES);
    tenants(&["plc-p"], "upstream => 'b'");
    let r = Router::start_with(&format!(
        "{}[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 4\n",
        upstream_b(&second)
    ));
    let pools = || async {
        let v: serde_json::Value = reqwest::get(r.admin("/pools"))
            .await
            .expect("/pools")
            .json()
            .await
            .expect("json");
        v["pools"].as_array().cloned().unwrap_or_default()
    };
    let on_b = |p: &serde_json::Value| p["pool"].as_str().is_some_and(|l| l.starts_with("b:"));
    // A pooled session on b, then at rest in its pool.
    assert_eq!(
        landing(&r.url("rt_app.plc-p")).await.expect("plc-p pooled"),
        on(second.port, "plc-p", 0)
    );
    let idle_on_b = eventually(Duration::from_secs(5), || async {
        pools().await.iter().any(|p| on_b(p) && p["idle"] == 1)
    })
    .await;
    assert!(idle_on_b, "{:?}", pools().await);
    let backends_on_b =
        || second.sql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'rt_app'");
    assert_eq!(backends_on_b(), "1");
    // A client of a main tenant holds a pooled backend through the reload
    // (control: its pool is not drained).
    let acme = connect(&r.url("rt_app.acme")).await.expect("acme pooled");

    let text = std::fs::read_to_string(&r.config).expect("config");
    std::fs::write(&r.config, text.replace(&upstream_b(&second), "")).expect("rewrite");
    r.signal("HUP");
    assert!(
        r.wait_log("pool drained", Duration::from_secs(5)),
        "{}",
        r.log_text()
    );
    assert!(!pools().await.iter().any(on_b), "{:?}", pools().await);
    let closed = eventually(Duration::from_secs(5), || async { backends_on_b() == "0" }).await;
    assert!(closed, "b's backend still open: {}", backends_on_b());
    // The tenant now names an upstream the router does not have.
    let (code, msg) = refusal(landing(&r.url("rt_app.plc-p")).await);
    assert_eq!(code, "08001", "{msg}");
    assert_eq!(
        first_value(&acme, "SELECT tenant.current_tenant_id()").await,
        "acme"
    );
}

#[tokio::test]
async fn transaction_pooled_clients_use_their_upstreams_pool_and_follow_a_move() {
    let main = cluster().port;
    let second = Second::start(&["rt_app"], NOTES);
    tenants(&["plc-t"], "upstream => 'b', pool_mode => 'transaction'");
    admin_sql("SELECT tenant.alter_tenant('plc-t', upstream => 'b')");
    let r = Router::start_with(&format!(
        "{}[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 2\n",
        upstream_b(&second)
    ));
    let c = connect(&r.url("rt_app.plc-t")).await.expect("plc-t");
    for i in 0..20 {
        c.batch_execute(&format!("INSERT INTO notes (body) VALUES ('t{i}')"))
            .await
            .expect("a transaction on b");
    }
    assert_eq!(
        first_value(&c, "SELECT pg_catalog.current_setting('port')").await,
        second.port.to_string()
    );
    assert_eq!(
        second.sql("SELECT count(*) FROM notes WHERE tenant_id = 'plc-t'"),
        "20"
    );
    // Moved to the main upstream: the session follows, its next
    // transaction runs on main (`tenants move` copies the rows first), and
    // a new one lands on main too.
    admin_sql("SELECT tenant.alter_tenant('plc-t', upstream => 'main')");
    router_sees(&r, "plc-t", |row| row["upstream"] == "main").await;
    assert_eq!(
        first_value(&c, "SELECT pg_catalog.current_setting('port')").await,
        main.to_string(),
        "the session's next transaction runs on main"
    );
    // And the other way: a session on main, whose backend at rest keeps
    // the tenant's context, follows the tenant to b at its next
    // transaction (never runs on main again).
    let m = connect(&r.url("rt_app.plc-t"))
        .await
        .expect("plc-t on main");
    for _ in 0..3 {
        assert_eq!(
            first_value(&m, "SELECT pg_catalog.current_setting('port')").await,
            main.to_string()
        );
    }
    admin_sql("SELECT tenant.alter_tenant('plc-t', upstream => 'b')");
    router_sees(&r, "plc-t", |row| row["upstream"] == "b").await;
    assert_eq!(
        first_value(&m, "SELECT pg_catalog.current_setting('port')").await,
        second.port.to_string(),
        "the session on main follows the tenant to b"
    );
    assert_eq!(
        first_value(&c, "SELECT pg_catalog.current_setting('port')").await,
        second.port.to_string(),
        "and so does the first one"
    );
    assert_eq!(
        landing(&r.url("rt_app.plc-t"))
            .await
            .expect("plc-t on b again"),
        on(second.port, "plc-t", 20)
    );
}

/// A named upstream that accepts connections and never answers (a dead
/// host behind a load balancer, a black-holed route) holds neither
/// `/ready` nor `/metrics` for `connect_timeout_ms`: readiness answers
/// at once, naming it "timed out", and the router stays ready (an
/// orchestrator's probe timing out would take the router, and every
/// tenant on it, out of service). Control: the main tenant works.
#[tokio::test]
async fn an_upstream_that_never_answers_holds_neither_ready_nor_metrics() {
    // Connections complete in the kernel's backlog; nothing ever answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("address");
    let r = Router::start_with(&format!(
        "connect_timeout_ms = 60000\n[upstreams.silent]\naddress = \"{addr}\"\n"
    ));
    // Far below connect_timeout_ms: a probe waiting for it fails this.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let resp = http
        .get(r.admin("/ready"))
        .send()
        .await
        .expect("/ready answers before connect_timeout_ms");
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["upstreams"]["main"], "ok", "{body}");
    assert_eq!(
        body["upstreams"]["silent"],
        format!("{addr}: timed out"),
        "{body}"
    );
    let m = http
        .get(r.admin("/metrics"))
        .send()
        .await
        .expect("/metrics answers before connect_timeout_ms")
        .text()
        .await
        .expect("body");
    assert!(
        m.contains("tenant_router_upstream_up{upstream=\"silent\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("tenant_router_upstream_up{upstream=\"main\"} 1"),
        "{m}"
    );
    assert_eq!(
        main_landing(&r, "acme").await,
        (cluster().port.to_string(), "acme".to_owned())
    );
    drop(silent);
}

/// A reload that makes upstream TLS stricter applies to the backends a
/// pool opens after it, as it did before pools were keyed by upstream:
/// the pool made before the reload does not keep opening backends with
/// the TLS settings it was made with. The test cluster has no TLS, so
/// `upstream_tls = "require"` refuses a new backend. Control: the backend
/// opened before the reload, at rest in the pool, is reused.
#[tokio::test]
async fn a_reload_requiring_upstream_tls_applies_to_an_existing_pool() {
    let r = Router::start_with("[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 4\n");
    let url = r.url("rt_app.acme");
    let first = connect(&url).await.expect("acme pooled");
    assert_eq!(
        first_value(&first, "SELECT tenant.current_tenant_id()").await,
        "acme"
    );
    drop(first);
    let at_rest = eventually(Duration::from_secs(5), || async {
        let v: serde_json::Value = reqwest::get(r.admin("/pools"))
            .await
            .expect("/pools")
            .json()
            .await
            .expect("json");
        v["pools"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["idle"] == 1))
    })
    .await;
    assert!(at_rest, "no idle pooled backend");

    let text = std::fs::read_to_string(&r.config).expect("config");
    std::fs::write(
        &r.config,
        format!("{text}\n[tls]\nupstream_tls = \"require\"\n"),
    )
    .expect("rewrite");
    r.signal("HUP");
    assert!(
        r.wait_log("configuration reloaded", Duration::from_secs(10)),
        "{}",
        r.log_text()
    );
    // The backend at rest is reused (control)...
    let reused = connect(&url).await.expect("the backend at rest");
    assert_eq!(
        first_value(&reused, "SELECT tenant.current_tenant_id()").await,
        "acme"
    );
    // ...and a new one, while it is in use, needs TLS: refused by this
    // server, which has none; or, when another suite running beside this
    // one (tls.rs) has turned TLS on in the shared server meanwhile, opened
    // over TLS. Either way never in cleartext.
    match connect(&url).await {
        Err(err) => assert!(
            db_message(&err).contains("does not accept TLS"),
            "{}",
            db_message(&err)
        ),
        Ok(c) => {
            let pid = backend_pid(&c).await;
            assert_eq!(
                admin_sql(&format!("SELECT ssl FROM pg_stat_ssl WHERE pid = {pid}")).trim(),
                "t",
                "a new pooled backend opened in cleartext after upstream_tls = require"
            );
        }
    }
    drop(reused);
}

/// On a server without the catalog, a session whose role inherits another
/// application role is refused whether that role can log in or not: the
/// catalog accepts a LOGIN member of tenant_app as a tenant's `role_name`
/// (and checks it against every tenant's role on the catalog server), so
/// a LOGIN tenant role's objects would be open to an rls tenant's session
/// here. Control: once the login role stops inheriting it, the tenant
/// works and cannot read them.
#[tokio::test]
async fn a_login_application_role_inherited_is_refused_on_the_second_server() {
    let second = Second::start(
        &["rt_app"],
        &format!(
            "{NOTES}; \
             CREATE ROLE plc_l_role LOGIN IN ROLE tenant_app; \
             GRANT plc_l_role TO rt_app; \
             CREATE SCHEMA plc_l AUTHORIZATION plc_l_role; \
             CREATE TABLE plc_l.secrets (id int PRIMARY KEY, body text); \
             INSERT INTO plc_l.secrets VALUES (1, 'theirs'); \
             ALTER TABLE plc_l.secrets OWNER TO plc_l_role"
        ),
    );
    tenants(&["plc-lr"], "upstream => 'b'");
    let r = Router::start_with(&upstream_b(&second));
    let url = r.url("rt_app.plc-lr");
    let (code, msg) = refusal(landing(&url).await);
    assert_eq!(code, "28000", "{msg}");
    assert!(
        msg.contains("role \"rt_app\" has the privileges of application role \"plc_l_role\""),
        "{msg}"
    );
    stop_inheriting(&second, "plc_l_role");
    assert_eq!(
        landing(&url).await.expect("plc-lr"),
        on(second.port, "plc-lr", 0)
    );
    let c = connect(&url).await.expect("plc-lr");
    let e = c
        .query_one("SELECT count(*) FROM plc_l.secrets", &[])
        .await
        .expect_err("another role's table");
    assert_eq!(sqlstate(&e), "42501", "{}", db_message(&e));
}

/// A tenant's cap in a shared pool of a named upstream is
/// `pool.max_tenant_share` of that upstream's `pool_size`, not of
/// `pool.size`: with a cap of `pool.size`'s share (10 of 20) clamped to
/// the upstream's 4 backends, one tenant took all of them and the other
/// tenants of that server waited out `pool.timeout_ms`. Control: the
/// other tenant is served from the reserve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_cap_in_a_named_upstreams_pool_is_a_share_of_its_pool_size() {
    let second = Second::start(&["rt_app"], NOTES);
    tenants(&["plc-hog"], "upstream => 'b', pool_size => 10");
    tenants(&["plc-calm"], "upstream => 'b'");
    let r = Router::start_with(&format!(
        "{}pool_size = 4\n[auth]\nlogin = \"verify\"\n\
         [pool]\nenabled = true\nsize = 20\nmax_tenant_share = 0.5\ntimeout_ms = 600\n",
        upstream_b(&second)
    ));
    // Its cap on b is 2 of 4; past it, it borrows only while more than 2
    // places stay free: it holds 2.
    let mut hogs = Vec::new();
    for _ in 0..2 {
        hogs.push(connect(&r.url("rt_app.plc-hog")).await.expect("hog"));
    }
    let e = connect(&r.url("rt_app.plc-hog"))
        .await
        .expect_err("past its cap on b");
    assert_eq!(sqlstate(&e), "53300", "{}", db_message(&e));
    assert!(db_message(&e).contains("b:rt_app@"), "{}", db_message(&e));
    let calm = connect(&r.url("rt_app.plc-calm")).await.expect("calm");
    assert_eq!(
        first_value(&calm, "SELECT tenant.current_tenant_id()").await,
        "plc-calm"
    );
    assert_eq!(hogs.len(), 2);
}
