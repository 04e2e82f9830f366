//! The extension's catalog seen from outside: every change notifies
//! `pg_tenant_catalog`, a router picks changes up without restarting, and
//! pg_dump keeps tenants.
mod common;
use common::*;
use futures_util::StreamExt;
use std::process::Command;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

#[tokio::test]
async fn every_change_notifies_pg_tenant_catalog() {
    let c = cluster();
    let url = format!("host={} port={} user=postgres dbname={DB}", c.sock, c.port);
    let (client, mut conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = s.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    client
        .batch_execute("LISTEN pg_tenant_catalog")
        .await
        .unwrap();
    client
        .batch_execute(
            "SELECT tenant.drop_tenant(id) FROM tenant.tenants WHERE id = 'notify-me';
             SELECT tenant.create_tenant('notify-me');
             SELECT tenant.alter_tenant('notify-me', qps_limit => 5);
             SELECT tenant.disable_tenant('notify-me');
             SELECT tenant.enable_tenant('notify-me');
             SELECT tenant.drop_tenant('notify-me');
             SELECT tenant.set_defaults();
             DELETE FROM tenant.defaults;",
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        got.push(n.1);
        if got.len() == 6 {
            break;
        }
    }
    // Notifications from one transaction with the same payload are merged
    // by Postgres: one for the tenant, one for the defaults.
    assert!(got.contains(&"notify-me".to_string()), "{got:?}");
    assert!(got.contains(&"*".to_string()), "{got:?}");
    // One per transaction when changes are separate statements.
    got.clear();
    for sql in [
        "SELECT tenant.create_tenant('notify-me')",
        "SELECT tenant.alter_tenant('notify-me', max_connections => 3)",
        "SELECT tenant.disable_tenant('notify-me')",
        "SELECT tenant.enable_tenant('notify-me')",
        "SELECT tenant.drop_tenant('notify-me')",
    ] {
        client.batch_execute(sql).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("notified")
            .unwrap();
        assert_eq!(
            n,
            ("pg_tenant_catalog".to_string(), "notify-me".to_string()),
            "{sql}"
        );
    }
}

/// A router whose caches would hide every change for a minute: only the
/// LISTEN connection can tell it about a new tenant (it was refused, and
/// remembered as unknown) and about a disabled one (its row was kept). No
/// connection succeeds once the tenant is disabled: until the router has
/// the notification, PostgreSQL itself refuses the context of a disabled
/// tenant; after it, the router refuses like a wrong password.
#[tokio::test]
async fn new_tenants_arrive_by_listen_and_disabling_applies_at_once() {
    let r = Router::start_catalog(
        "",
        &CatalogSetup {
            cache_ttl_ms: 60_000,
            negative_ttl_ms: 60_000,
            ..CatalogSetup::default()
        },
    );
    admin_sql("SELECT tenant.drop_tenant(id) FROM tenant.tenants WHERE id = 'late-comer'");
    let e = connect(&r.url("rt_app.late-comer")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "unknown: like a wrong password");
    admin_sql("SELECT tenant.create_tenant('late-comer')");
    assert!(
        eventually(Duration::from_secs(5), || async {
            connect(&r.url("rt_app.late-comer")).await.is_ok()
        })
        .await,
        "the notification did not reach the router"
    );
    assert_eq!(router_row(&r, "late-comer").await["enabled"], true);
    admin_sql("SELECT tenant.disable_tenant('late-comer')");
    let e = connect(&r.url("rt_app.late-comer")).await.unwrap_err();
    assert!(
        matches!(sqlstate(&e).as_str(), "28P01" | "28000"),
        "refused on the next connection: {e}"
    );
    router_sees(&r, "late-comer", |t| t["enabled"] == false).await;
    let e = connect(&r.url("rt_app.late-comer")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "refused by the router: {e}");
    admin_sql("SELECT tenant.drop_tenant('late-comer')");
}

/// `alter_tenant` then connect: once the router has the notification,
/// every new connection has the new limit (the kept row was dropped and
/// re-read), ten times in a row.
#[tokio::test]
async fn new_connections_see_alter_tenant_once_notified() {
    set_limits("alter-ego", "reset => '{max_query_ms}'");
    let r = Router::start_catalog(
        "",
        &CatalogSetup {
            cache_ttl_ms: 60_000,
            ..CatalogSetup::default()
        },
    );
    for round in 0..10 {
        admin_sql("SELECT tenant.alter_tenant('alter-ego', max_query_ms => 200)");
        router_sees(&r, "alter-ego", |t| t["max_query_ms"] == 200).await;
        let c = connect(&r.url("rt_app.alter-ego")).await.unwrap();
        let e = c.batch_execute("SELECT pg_sleep(0.5)").await;
        assert_eq!(
            e.as_ref().err().map(sqlstate).as_deref(),
            Some("57014"),
            "round {round}: the 200 ms limit applies"
        );
        admin_sql("SELECT tenant.alter_tenant('alter-ego', reset => '{max_query_ms}')");
        router_sees(&r, "alter-ego", |t| t["max_query_ms"] == 0).await;
        let c = connect(&r.url("rt_app.alter-ego")).await.unwrap();
        c.batch_execute("SELECT pg_sleep(0.3)")
            .await
            .unwrap_or_else(|e| panic!("round {round}: the limit is gone: {e}"));
    }
}

/// The catalog connection is cut and cannot come back for a while; a limit
/// changes meanwhile (its notification is lost). When the catalog is back,
/// the router reconnects on its own (no lookup asks it to) and re-reads
/// the rows in use: the open session gets the new limit.
#[tokio::test]
async fn catalog_reconnects_on_its_own_and_rereads_rows_in_use() {
    admin_sql(
        "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_router_rc') THEN \
         CREATE ROLE rt_router_rc LOGIN IN ROLE tenant_router; END IF; END$$",
    );
    admin_sql("ALTER ROLE rt_router_rc LOGIN");
    set_limits("reread", "reset => '{qps_limit}'");
    let r = Router::start_catalog(
        "",
        &CatalogSetup {
            user: "rt_router_rc",
            cache_ttl_ms: 60_000,
            negative_ttl_ms: 60_000,
            ..CatalogSetup::default()
        },
    );
    let c = connect(&r.url("rt_app.reread")).await.unwrap();
    for _ in 0..20 {
        c.simple_query("SELECT 1").await.expect("no limit yet");
    }
    admin_sql("ALTER ROLE rt_router_rc NOLOGIN");
    admin_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rt_router_rc'",
    );
    assert!(
        r.wait_log("catalog connection failed", Duration::from_secs(10)),
        "{}",
        r.log_text()
    );
    admin_sql("SELECT tenant.alter_tenant('reread', qps_limit => 1, burst_multiplier => 1.0)");
    admin_sql("ALTER ROLE rt_router_rc LOGIN");
    assert!(
        eventually(Duration::from_secs(10), || async {
            r.log_text()
                .matches("catalog connection established")
                .count()
                >= 2
        })
        .await,
        "no reconnection: {}",
        r.log_text()
    );
    let mut denied = 0;
    for _ in 0..40 {
        match c.simple_query("SELECT 1").await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(sqlstate(&e), "53400", "{e}");
                denied += 1;
            }
        }
        if denied >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(denied >= 10, "the open session did not get the new limit");
    admin_sql("SELECT tenant.alter_tenant('reread', reset => '{qps_limit}')");
}

#[test]
fn pg_dump_and_restore_keep_every_tenant() {
    let c = cluster();
    let port = c.port.to_string();
    let pg = |args: &[&str]| {
        let out = Command::new(c.bin(args[0]))
            .args(&args[1..])
            .args(["-h", &c.sock, "-p", &port, "-U", "postgres"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for db in ["rt_dump_src", "rt_dump_dst"] {
        pg(&[
            "psql",
            "-X",
            "-q",
            "-d",
            "postgres",
            "-c",
            &format!("DROP DATABASE IF EXISTS {db}"),
        ]);
        pg(&[
            "psql",
            "-X",
            "-q",
            "-d",
            "postgres",
            "-c",
            &format!("CREATE DATABASE {db}"),
        ]);
    }
    pg(&[
        "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "rt_dump_src", "-c",
        "CREATE EXTENSION pg_tenant;
         SELECT tenant.create_tenant('a1', qps_limit => 7);
         SELECT tenant.create_tenant('b2', read_only => true, allowed_operations => '{select}');
         SELECT tenant.create_tenant('c3', isolation => 'schema', schema_name => 's3', enabled => false);
         SELECT tenant.set_defaults(max_connections => 42);
         SELECT tenant.alter_tenant('a1', login_roles => '{postgres}');
         SELECT tenant.set_password('b2', 'SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=');
         CREATE TABLE dump_items (gone int, org uuid); ALTER TABLE dump_items DROP COLUMN gone;
         SELECT tenant.protect('dump_items', 'org');",
    ]);
    let dump = std::env::temp_dir().join("rt_dump.sql");
    pg(&["pg_dump", "-d", "rt_dump_src", "-f", dump.to_str().unwrap()]);
    pg(&[
        "psql",
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        "rt_dump_dst",
        "-f",
        dump.to_str().unwrap(),
    ]);
    let q = "SELECT string_agg(format('%s|%s|%s|%s|%s|%s', id, qps_limit, read_only, isolation, enabled, login_roles), ',' ORDER BY id) \
             || ';' || (SELECT max_connections FROM tenant.defaults) \
             || ';' || (SELECT string_agg(tenant_id || ':' || left(verifier, 19), ',') FROM tenant.tenant_secrets) \
             FROM tenant.tenants";
    let src = pg(&["psql", "-X", "-tA", "-d", "rt_dump_src", "-c", q]);
    let dst = pg(&["psql", "-X", "-tA", "-d", "rt_dump_dst", "-c", q]);
    assert_eq!(
        src.trim(),
        "a1|7|f|rls|t|{postgres},b2||t|rls|t|,c3||f|schema|f|;42;b2:SCRAM-SHA-256$4096:"
    );
    assert_eq!(src, dst);
    // 0.8.0: what protect protected is restored with the new oids and column
    // numbers, and the restored policy is still recognised as protect's.
    let q = "SELECT string_agg(format('%s|%s|%s', relid, tenant_column, tenant._isolates(relid)), ',') \
             FROM tenant.protected";
    let src = pg(&["psql", "-X", "-tA", "-d", "rt_dump_src", "-c", q]);
    let dst = pg(&["psql", "-X", "-tA", "-d", "rt_dump_dst", "-c", q]);
    assert_eq!(src.trim(), "dump_items|org|t");
    assert_eq!(src, dst);
}

/// The catalog role's password from `[catalog] password_file` (SCRAM over
/// TCP, no password in the URL): with the right one the router reads the
/// catalog; with a wrong one it cannot (logins fail closed, 57P03); a file
/// others can read is refused at start, naming it.
#[tokio::test]
async fn the_catalog_password_is_read_from_its_file() {
    use std::os::unix::fs::PermissionsExt;
    admin_sql(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_router_pwfile') THEN \
         SET LOCAL password_encryption = 'scram-sha-256'; \
         CREATE ROLE rt_router_pwfile LOGIN PASSWORD '{PASSWORD}' IN ROLE tenant_router; END IF; END $$"
    ));
    let dir = tempfile::tempdir().expect("tmp dir");
    let file = |name: &str, text: &str, mode: u32| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    };
    let setup = |f: std::path::PathBuf| CatalogSetup {
        user: "rt_router_pwfile",
        tcp_host: Some("127.0.0.1"),
        password_file: Some(f),
        ..CatalogSetup::default()
    };
    // Control: the right password, from the file.
    let good = Router::start_catalog("", &setup(file("good", &format!("{PASSWORD}\n"), 0o600)));
    let c = connect(&good.url("rt_app.acme"))
        .await
        .expect("the catalog answers");
    assert_eq!(visible_notes(&c).await, 3);
    let config = std::fs::read_to_string(&good.config).expect("config");
    assert!(
        !config.contains(PASSWORD),
        "no password in the config: {config}"
    );
    // A wrong password: the catalog connection is refused, so are logins.
    let bad = Router::start_catalog("", &setup(file("bad", "not-the-password\n", 0o600)));
    let e = connect(&bad.url("rt_app.acme"))
        .await
        .expect_err("no catalog");
    assert_eq!(sqlstate(&e), "57P03", "{e}");
    assert!(
        bad.wait_log("password authentication failed", Duration::from_secs(10)),
        "{}",
        bad.log_text()
    );
    // Readable by others: the configuration is refused, naming the file.
    let open = file("open", &format!("{PASSWORD}\n"), 0o644);
    let cfg = dir.path().join("router.toml");
    std::fs::write(
        &cfg,
        router_config_with(0, 0, "open", "", &setup(open.clone())),
    )
    .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .arg("-c")
        .arg(&cfg)
        .arg("--check")
        .output()
        .expect("tenant-router --check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("catalog.password_file") && err.contains("mode 0644"),
        "{err}"
    );
    assert!(err.contains(&open.display().to_string()), "{err}");
}
