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

#[tokio::test]
async fn router_sees_new_and_disabled_tenants_within_a_second() {
    let r = Router::start_with("");
    admin_sql("SELECT tenant.drop_tenant(id) FROM tenant.tenants WHERE id = 'late-comer'");
    let e = connect(&r.url("rt_app.late-comer")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28000");
    admin_sql("SELECT tenant.create_tenant('late-comer')");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let c = connect(&r.url("rt_app.late-comer"))
        .await
        .expect("new tenant accepted");
    assert_eq!(visible_notes(&c).await, 0);
    admin_sql("SELECT tenant.disable_tenant('late-comer')");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let e = connect(&r.url("rt_app.late-comer")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "28000");
    admin_sql("SELECT tenant.drop_tenant('late-comer')");
}

#[tokio::test]
async fn catalog_connection_killed_router_reconnects() {
    let r = Router::start();
    connect(&r.url("rt_app.acme"))
        .await
        .expect("first lookup opens the catalog connection");
    admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rt_router'");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Cached tenant: still served. Another tenant forces a reconnect.
    let mut ok = false;
    for _ in 0..20 {
        if connect(&r.url("rt_app.globex")).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        ok,
        "router did not reconnect to the catalog: {}",
        r.log_text()
    );
    assert!(r.log_text().contains("catalog connection"));
}

#[test]
fn pg_dump_and_restore_keep_every_tenant() {
    let c = cluster();
    let port = c.port.to_string();
    let pg = |args: &[&str]| {
        let out = Command::new(args[0])
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
         SELECT tenant.set_defaults(max_connections => 42);",
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
    let q = "SELECT string_agg(format('%s|%s|%s|%s|%s', id, qps_limit, read_only, isolation, enabled), ',' ORDER BY id) \
             || ';' || (SELECT max_connections FROM tenant.defaults) FROM tenant.tenants";
    let src = pg(&["psql", "-X", "-tA", "-d", "rt_dump_src", "-c", q]);
    let dst = pg(&["psql", "-X", "-tA", "-d", "rt_dump_dst", "-c", q]);
    assert_eq!(src.trim(), "a1|7|f|rls|t,b2||t|rls|t,c3||f|schema|f;42");
    assert_eq!(src, dst);
}
