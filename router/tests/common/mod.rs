//! Integration harness: the real private cluster (scripts/cluster), the
//! real `tenant-router` binary, real clients. Each test binary sets up its
//! fixtures once (idempotently) in the database `router_test`.
#![allow(dead_code)]

pub mod faults;
pub mod raw;
pub mod second;
pub mod spawn;
pub mod wire;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use spawn::{spawn_router, unique_tag};

pub const DB: &str = "router_test";
/// Password of every password-authenticated test role.
pub const PASSWORD: &str = "rt-secret";

pub struct Cluster {
    pub port: u16,
    pub sock: String,
    pub key_file: String,
    /// The bin directory of the cluster's PostgreSQL (its major is
    /// scripts/cluster's PG_TENANT_PG): psql, pg_dump and pg_config of the
    /// same version as the server (pg_dump refuses a newer server).
    pub bin_dir: PathBuf,
    /// postgres's password over TCP (scripts/cluster: SCRAM; the Unix
    /// socket is trust).
    pub postgres_password: String,
}

impl Cluster {
    /// A program of the cluster's PostgreSQL (`pg_dump`, `pg_config`, ...).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bin_dir.join(program)
    }
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const FIXTURES: &str = r#"
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_tenant;
ALTER EXTENSION pg_tenant UPDATE;
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['rt_app', 'rt_trust', 'rt_password', 'rt_md5'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      IF r = 'rt_md5' THEN SET LOCAL password_encryption = 'md5'; END IF;
      EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r, 'rt-secret');
      SET LOCAL password_encryption = 'scram-sha-256';
    END IF;
    PERFORM tenant.create_app_role(r);
  END LOOP;
  GRANT hba_trust TO rt_trust;
  GRANT hba_password TO rt_password;
  GRANT hba_md5 TO rt_md5;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_router') THEN
    CREATE ROLE rt_router LOGIN IN ROLE tenant_router;
  END IF;
  FOREACH r IN ARRAY ARRAY['acme', 'globex', 'initech', 'bench'] LOOP
    IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = r) THEN
      PERFORM tenant.create_tenant(r);
    END IF;
  END LOOP;
END $$;
CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL);
SELECT tenant.protect('notes');
GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO rt_app, rt_trust, rt_password, rt_md5;
GRANT USAGE ON SEQUENCE notes_id_seq TO rt_app, rt_trust, rt_password, rt_md5;
INSERT INTO notes (tenant_id, body)
SELECT t, t || ' ' || g FROM unnest(ARRAY['acme', 'globex']) t, generate_series(1, 3) g
WHERE NOT EXISTS (SELECT 1 FROM notes);
"#;

/// Start (or reuse) the private cluster and load the fixtures, once.
pub fn cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let script = repo().join("scripts/cluster");
        run(Command::new(&script).arg("start"));
        let env = run(Command::new(&script).arg("env"));
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("export {k}=")).map(str::to_owned))
                .unwrap_or_else(|| panic!("{k} missing from scripts/cluster env"))
        };
        let c = Cluster {
            port: get("PGPORT").parse().expect("port"),
            sock: get("PG_TENANT_SOCK"),
            key_file: get("PG_TENANT_KEY_FILE"),
            bin_dir: PathBuf::from(get("PG_TENANT_PGBIN_DIR")),
            postgres_password: std::fs::read_to_string(get("PG_TENANT_POSTGRES_PASSWORD_FILE"))
                .expect("postgres's password file")
                .lines()
                .next()
                .expect("a password")
                .to_owned(),
        };
        let exists = run(psql(&c, "postgres").args([
            "-tAc",
            &format!("SELECT 1 FROM pg_database WHERE datname = '{DB}'"),
        ]));
        if exists.trim() != "1" {
            run(psql(&c, "postgres").args(["-c", &format!("CREATE DATABASE {DB}")]));
        }
        run(psql(&c, DB).args(["-c", FIXTURES]));
        c
    })
}

/// psql as postgres over the cluster's socket.
pub fn psql(c: &Cluster, db: &str) -> Command {
    let mut cmd = Command::new(c.bin("psql"));
    cmd.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        &c.sock,
        "-p",
        &c.port.to_string(),
        "-U",
        "postgres",
        "-d",
        db,
    ]);
    cmd
}

/// Run SQL as postgres in database `db`; its output (`-tA`), trimmed.
pub fn sql_in(db: &str, sql: &str) -> String {
    let out = psql(cluster(), db)
        .args(["-tA", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Run SQL as postgres in the test database.
pub fn admin_sql(sql: &str) -> String {
    run(psql(cluster(), DB).args(["-tA", "-c", sql]))
}

/// Create the tenant if missing, then set its limits (`args`: named
/// arguments of tenant.alter_tenant, e.g. `qps_limit => 5`).
pub fn set_limits(tenant: &str, args: &str) {
    admin_sql(&format!(
        "SELECT tenant.create_tenant('{tenant}') WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = '{tenant}')"
    ));
    admin_sql(&format!("SELECT tenant.alter_tenant('{tenant}', {args})"));
}

/// A SQL array of text literals (test constants).
fn text_array(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|i| format!("'{}'", i.replace('\'', "''")))
        .collect();
    format!("ARRAY[{}]::text[]", quoted.join(", "))
}

/// Login roles with the SCRAM password `PASSWORD`, marked as application
/// roles (`tenant.create_app_role`); those that exist are kept.
pub fn scram_app_roles(roles: &[&str]) {
    admin_sql(&format!(
        "SET client_min_messages = warning; DO $$ DECLARE r text; BEGIN \
           FOREACH r IN ARRAY {} LOOP \
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN \
               SET LOCAL password_encryption = 'scram-sha-256'; \
               EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r, '{PASSWORD}'); \
             END IF; \
             PERFORM tenant.create_app_role(r); \
           END LOOP; END $$",
        text_array(roles)
    ));
}

/// Tenants made with `tenant.create_tenant(id, <args>)` (`args`: named
/// arguments, e.g. `pool_mode => 'transaction'`, or ""); those that exist
/// are kept as they are.
pub fn tenants(ids: &[&str], args: &str) {
    let args = if args.is_empty() {
        String::new()
    } else {
        format!(", {args}")
    };
    admin_sql(&format!(
        "SET client_min_messages = warning; DO $$ DECLARE r text; BEGIN \
           FOREACH r IN ARRAY {} LOOP \
             IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = r) THEN \
               PERFORM tenant.create_tenant(r{args}); \
             END IF; \
           END LOOP; END $$",
        text_array(ids)
    ));
}

/// Wait (up to 5 s) until `role` runs `query` in PostgreSQL.
pub async fn wait_running(role: &str, query: &str) -> bool {
    eventually(Duration::from_secs(5), || async {
        admin_sql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}' \
             AND query = '{}' AND state = 'active'",
            query.replace('\'', "''")
        ))
        .trim()
            == "1"
    })
    .await
}

/// Where the driver programs live.
pub fn drivers_dir() -> PathBuf {
    repo().join("router/tests/drivers")
}

/// Run a driver program of `drivers_dir()` with `args`; its stdout lines
/// (panics, with its output, unless it succeeds).
pub fn run_program(program: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new(program)
        .args(args)
        .current_dir(drivers_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The password of a test login role: `PASSWORD`, or the cluster's
/// postgres password for postgres (a bypass user: its TCP login is SCRAM).
pub fn password_of(user: &str) -> String {
    if user == "postgres" {
        cluster().postgres_password.clone()
    } else {
        PASSWORD.to_owned()
    }
}

/// postgres over TCP to PostgreSQL itself (`host=127.0.0.1`), with its
/// password, in database `db`.
pub fn postgres_tcp_url(db: &str) -> String {
    let c = cluster();
    format!(
        "host=127.0.0.1 port={} user=postgres password={} dbname={db}",
        c.port, c.postgres_password
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `tenant-router` process, killed on drop.
pub struct Router {
    child: Child,
    pub port: u16,
    /// Port of the admin HTTP API.
    pub admin_port: u16,
    /// The config file it was started with (tests may rewrite it and
    /// send SIGHUP).
    pub config: PathBuf,
    /// Unique to this router: its catalog connection's application_name
    /// is `rt_catalog_<tag>`.
    pub tag: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// The config file of a test router: `extra` holds top-level TOML lines.
pub fn router_config(port: u16, admin_port: u16, extra: &str) -> String {
    router_config_with(
        port,
        admin_port,
        &port.to_string(),
        extra,
        &CatalogSetup::default(),
    )
}

/// How a test router reaches the catalog.
pub struct CatalogSetup {
    pub user: &'static str,
    /// A TCP host for the catalog URL (with `PASSWORD`); None: the
    /// cluster's Unix socket.
    pub tcp_host: Option<&'static str>,
    pub cache_ttl_ms: u64,
    pub negative_ttl_ms: u64,
    /// With `tcp_host`: `[catalog] password_file` names this file instead
    /// of a `password=` in the URL.
    pub password_file: Option<PathBuf>,
}

impl Default for CatalogSetup {
    fn default() -> Self {
        CatalogSetup {
            user: "rt_router",
            tcp_host: None,
            cache_ttl_ms: 200,
            negative_ttl_ms: 200,
            password_file: None,
        }
    }
}

/// `tag` names the catalog connection: application_name `rt_catalog_<tag>`.
pub fn router_config_with(
    port: u16,
    admin_port: u16,
    tag: &str,
    extra: &str,
    cat: &CatalogSetup,
) -> String {
    let c = cluster();
    let (host, password_file) = match (cat.tcp_host, &cat.password_file) {
        (Some(h), Some(f)) => (
            h.to_owned(),
            format!("password_file = \"{}\"\n", f.display()),
        ),
        (Some(h), None) => (format!("{h} password={PASSWORD}"), String::new()),
        (None, _) => (c.sock.clone(), String::new()),
    };
    // The router has no bypass users by default; the tests use postgres.
    let bypass = if extra.contains("bypass_users") {
        ""
    } else {
        "bypass_users = [\"postgres\"]\n"
    };
    format!(
        "listen = \"127.0.0.1:{port}\"\nupstream = \"127.0.0.1:{}\"\ncontext_signing_key_file = \"{}\"\n\
         admin_listen = \"127.0.0.1:{admin_port}\"\n{bypass}{extra}\n\
         [catalog]\nurl = \"host={} port={} user={} dbname={DB} application_name=rt_catalog_{tag}\"\n\
         cache_ttl_ms = {}\nnegative_ttl_ms = {}\n{password_file}",
        c.port,
        c.key_file,
        host,
        c.port,
        cat.user,
        cat.cache_ttl_ms,
        cat.negative_ttl_ms
    )
}

impl Router {
    pub fn start() -> Router {
        Router::start_with("")
    }

    /// Start with extra top-level TOML lines (e.g. `startup_timeout_ms = 500`).
    pub fn start_with(extra: &str) -> Router {
        Router::start_env(extra, &[])
    }

    /// Start with extra TOML lines and environment variables.
    pub fn start_env(extra: &str, env: &[(&str, &str)]) -> Router {
        Router::start_full(extra, env, &CatalogSetup::default())
    }

    /// Start with a catalog setup of its own.
    pub fn start_catalog(extra: &str, cat: &CatalogSetup) -> Router {
        Router::start_full(extra, &[], cat)
    }

    /// Start listening on every address (0.0.0.0), so that clients can
    /// come from a non-loopback address of this host.
    pub fn start_on_all_addresses(extra: &str) -> Router {
        Router::start_listening(extra, &[], &CatalogSetup::default(), "0.0.0.0")
    }

    pub fn start_full(extra: &str, env: &[(&str, &str)], cat: &CatalogSetup) -> Router {
        Router::start_listening(extra, env, cat, "127.0.0.1")
    }

    /// Start with a config file `edit` rewrote (e.g. to put a proxy on
    /// the `upstream` address or the catalog's port).
    pub fn start_edited(
        extra: &str,
        cat: &CatalogSetup,
        edit: &dyn Fn(String) -> String,
    ) -> Router {
        Router::start_inner(extra, &[], cat, "127.0.0.1", edit)
    }

    fn start_listening(
        extra: &str,
        env: &[(&str, &str)],
        cat: &CatalogSetup,
        listen_host: &str,
    ) -> Router {
        Router::start_inner(extra, env, cat, listen_host, &|text| text)
    }

    fn start_inner(
        extra: &str,
        env: &[(&str, &str)],
        cat: &CatalogSetup,
        listen_host: &str,
        edit: &dyn Fn(String) -> String,
    ) -> Router {
        let tag = unique_tag();
        let dir = std::env::temp_dir().join(format!("tenant-router-test-{tag}"));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let cfg = dir.join("router.toml");
        let text = router_config_with(0, 0, &tag, extra, cat).replacen(
            "listen = \"127.0.0.1:",
            &format!("listen = \"{listen_host}:"),
            1,
        );
        std::fs::write(&cfg, edit(text)).expect("write config");
        let started = spawn_router(&cfg, env);
        Router {
            child: started.child,
            port: started.port,
            admin_port: started.admin_port,
            tag,
            config: cfg,
            log: started.log,
        }
    }

    /// `http://127.0.0.1:<admin port><path>`.
    pub fn admin(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Send a signal (`"HUP"`, `"TERM"`) to the router process.
    pub fn signal(&self, sig: &str) {
        run(Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string()));
    }

    /// Wait for the process to exit; None if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Wait until a log line contains `text`.
    pub fn wait_log(&self, text: &str, within: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.log_text().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A connection string as `user` with its password (`PASSWORD`, or
    /// postgres's for postgres).
    pub fn url(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={} dbname={DB}",
            self.port,
            password_of(user)
        )
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A memory figure of the router process from /proc/<pid>/status, in
    /// KiB: `VmRSS` (resident now) or `VmHWM` (its peak so far).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connect with tokio-postgres, driving the connection in a task.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

/// The SQLSTATE of an error, or "" when it has none.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// The message of PostgreSQL's (or the router's) ErrorResponse, or "" when
/// the error has none.
pub fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_default()
}

/// Count rows of the protected `notes` table as the client sees it.
pub async fn visible_notes(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT count(*) FROM notes", &[])
        .await
        .expect("count")
        .get(0)
}

/// The first column of the first row of a simple query, as text ("NULL"
/// for a null, "" without rows).
pub async fn first_value(c: &tokio_postgres::Client, sql: &str) -> String {
    for m in c.simple_query(sql).await.expect(sql) {
        if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
            return r.get(0).unwrap_or("NULL").to_owned();
        }
    }
    String::new()
}

/// The backend pid behind a client.
/// The pid of the backend that serves `c`'s next statement. A simple
/// query: `query_one` would prepare a statement whose Close tokio-postgres
/// sends in the background once it is dropped, a batch of its own that
/// (under transaction pooling) holds a backend again after this returns,
/// so a test killing the pid could hit that batch instead of an idle
/// backend (the flake of `a_backend_killed_between_transactions_...` on a
/// loaded machine).
pub async fn backend_pid(c: &tokio_postgres::Client) -> i32 {
    let rows = c
        .simple_query("SELECT pg_backend_pid()")
        .await
        .expect("pg_backend_pid");
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0),
            _ => None,
        })
        .expect("a row")
        .parse()
        .expect("a pid")
}

/// Wait until a backend has exited (its transaction, if any, rolled back).
pub async fn wait_backend_gone(pid: i32) {
    let start = Instant::now();
    while admin_sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
    ))
    .trim()
        != "0"
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "backend {pid} still open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A connection the router closed: the next statement fails with the
/// router's FATAL 57P01 (or "connection closed" once the client saw EOF).
/// Returns the error text.
pub async fn assert_terminated(c: &tokio_postgres::Client) -> String {
    let e = c
        .simple_query("SELECT 1")
        .await
        .expect_err("the router closed this connection");
    assert!(sqlstate(&e) == "57P01" || c.is_closed(), "{e}");
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

/// Committed `notes` rows with this body (read as postgres).
pub fn committed_notes(body: &str) -> i64 {
    admin_sql(&format!("SELECT count(*) FROM notes WHERE body = '{body}'"))
        .trim()
        .parse()
        .expect("a count")
}

/// `GET /tenants/{id}/metrics` of a router, as JSON.
pub async fn tenant_metrics(r: &Router, tenant: &str) -> serde_json::Value {
    reqwest::get(r.admin(&format!("/tenants/{tenant}/metrics")))
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON")
}

/// The Prometheus text of a router.
pub async fn prometheus(r: &Router) -> String {
    reqwest::get(r.admin("/metrics"))
        .await
        .expect("admin API")
        .text()
        .await
        .expect("body")
}

/// The value of one Prometheus sample (`name{labels}`), 0 when absent.
pub async fn sample(r: &Router, series: &str) -> f64 {
    prometheus(r)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// `GET /tenants/{id}` of a router (no admin token): the row its new
/// connections of the tenant get now, `has_secret`, counters; or
/// `{"error": ...}`.
pub async fn router_row(r: &Router, tenant: &str) -> serde_json::Value {
    reqwest::get(r.admin(&format!("/tenants/{tenant}")))
        .await
        .expect("admin API")
        .json()
        .await
        .expect("JSON")
}

/// Wait (up to 5 s) until the router's row of `tenant` satisfies `ok`: a
/// catalog change reaches new connections once its notification reached
/// the router.
pub async fn router_sees(r: &Router, tenant: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let seen = eventually(Duration::from_secs(5), || async {
        ok(&router_row(r, tenant).await)
    })
    .await;
    assert!(
        seen,
        "the router did not see the change of {tenant}: {}",
        router_row(r, tenant).await
    );
}

/// Wait until the tenant has no open connection in the router.
pub async fn wait_slots_free(r: &Router, tenant: &str) {
    let start = Instant::now();
    loop {
        let m = tenant_metrics(r, tenant).await;
        if m["active_connections"] == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{tenant} still holds slots: {m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll `f` every 50 ms until it returns true; false after `within`.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A SCRAM-SHA-256 exchange as `user` with a made-up proof (no key
/// derivation on this side, so a flood of them is cheap): the SQLSTATE and
/// message of the ErrorResponse that ends it.
pub async fn scram_refusal(port: u16, user: &str) -> (String, String) {
    use bytes::BytesMut;
    use postgres_protocol::message::frontend;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut m = BytesMut::new();
    frontend::startup_message([("user", user), ("database", DB)], &mut m).expect("startup");
    s.write_all(&m).await.expect("send");
    loop {
        let tag = s.read_u8().await.expect("a message");
        let len = s.read_u32().await.expect("a length") as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).await.expect("a body");
        let code = body
            .get(..4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        let mut out = BytesMut::new();
        match (tag, code) {
            (b'R', Some(10)) => {
                frontend::sasl_initial_response(
                    "SCRAM-SHA-256",
                    b"n,,n=,r=fakeclientnonce",
                    &mut out,
                )
                .expect("encode");
            }
            (b'R', Some(11)) => {
                let first = String::from_utf8_lossy(&body[4..]).into_owned();
                let nonce = first
                    .split(',')
                    .find_map(|a| a.strip_prefix("r="))
                    .expect("a nonce");
                let fin =
                    format!("c=biws,r={nonce},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
                frontend::sasl_response(fin.as_bytes(), &mut out).expect("encode");
            }
            (b'E', _) => return raw::error_of(&body),
            other => panic!("unexpected message {other:?} in a SCRAM exchange"),
        }
        s.write_all(&out).await.expect("send");
    }
}
