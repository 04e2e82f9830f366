//! Limits across several routers (docs/src/scaling-out/several-routers.md): with
//! `[fleet] shared_connection_limits = true`, a tenant's max_connections
//! holds for every router in front of the catalog server together, a
//! router that dies gives its slots back, a lost lease connection is
//! restored; with `fleet.routers = N` each router enforces its share of
//! qps_limit. Each test uses tenants of its own.
mod common;

use common::{
    admin_sql, backend_pid, connect, eventually, set_limits, sqlstate, CatalogSetup, Router,
};
use std::time::Duration;

const SHARED: &str = "[fleet]\nshared_connection_limits = true\n";

/// The catalog server's count of the tenant's connections (0 without).
fn fleet_count(tenant: &str) -> i64 {
    admin_sql(&format!(
        "SELECT coalesce((SELECT connections FROM tenant.fleet_counts() WHERE tenant = '{tenant}'), 0)"
    ))
    .trim()
    .parse()
    .expect("a count")
}

async fn expect_refused(r: &Router, user: &str, tenant: &str, max: i32) {
    let e = connect(&r.url(user)).await.expect_err("over the limit");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    assert_eq!(
        e.as_db_error().map(|d| d.message().to_string()),
        Some(format!(
            "too many connections for tenant \"{tenant}\": its max_connections is {max}"
        ))
    );
}

#[tokio::test]
async fn max_connections_hold_across_two_routers_and_a_killed_router_gives_its_slots_back() {
    set_limits("fleet_pair", "max_connections => 5");
    let r1 = Router::start_with(SHARED);
    let r2 = Router::start_with(SHARED);
    let user = "rt_app.fleet_pair";
    // Five connections spread over both routers are admitted.
    let mut on_r1 = Vec::new();
    for _ in 0..3 {
        on_r1.push(connect(&r1.url(user)).await.expect("under the limit (r1)"));
    }
    let mut on_r2 = Vec::new();
    for _ in 0..2 {
        on_r2.push(connect(&r2.url(user)).await.expect("under the limit (r2)"));
    }
    assert_eq!(fleet_count("fleet_pair"), 5);
    // The catalog server knows which backends are the tenant's (what a
    // move ends on its source server).
    let pid = backend_pid(&on_r2[0]).await;
    let pids =
        admin_sql("SELECT string_agg(p::text, ',') FROM tenant.tenant_backends('fleet_pair') p");
    assert_eq!(pids.trim().split(',').count(), 5, "{pids}");
    assert!(
        pids.trim().split(',').any(|p| p == pid.to_string()),
        "{pid} in {pids}"
    );
    // The sixth is refused whichever router it reaches; each router alone
    // holds fewer than 5, so only the shared count can refuse it.
    expect_refused(&r1, user, "fleet_pair", 5).await;
    expect_refused(&r2, user, "fleet_pair", 5).await;
    assert_eq!(fleet_count("fleet_pair"), 5, "a refusal takes nothing");
    // A control tenant is unaffected.
    let acme = connect(&r2.url("rt_app.acme")).await.expect("control");
    assert_eq!(
        acme.query_one("SELECT tenant.current_tenant_id()", &[])
            .await
            .unwrap()
            .get::<_, String>(0),
        "acme"
    );
    // Whoever leaves gives a place back, to any router.
    drop(on_r2.pop());
    assert!(
        eventually(Duration::from_secs(5), || async {
            fleet_count("fleet_pair") == 4
        })
        .await,
        "a closed session's lease is given back"
    );
    on_r2.push(connect(&r2.url(user)).await.expect("a place came free"));
    // r1 dies with three connections open: its lease connection's backend
    // sees the socket close and gives its leases back.
    r1.signal("KILL");
    assert!(
        eventually(Duration::from_secs(10), || async {
            fleet_count("fleet_pair") == 2
        })
        .await,
        "the killed router's slots came back: count {}",
        fleet_count("fleet_pair")
    );
    drop(on_r1);
    for _ in 0..3 {
        on_r2.push(
            connect(&r2.url(user))
                .await
                .expect("the dead router's places"),
        );
    }
    expect_refused(&r2, user, "fleet_pair", 5).await;
    drop(on_r2);
    assert!(
        eventually(Duration::from_secs(5), || async {
            fleet_count("fleet_pair") == 0
        })
        .await,
        "every lease given back"
    );
}

#[tokio::test]
async fn a_lost_lease_connection_is_restored_with_the_routers_counts() {
    set_limits("fleet_restore", "max_connections => 3");
    let r = Router::start_with(SHARED);
    let user = "rt_app.fleet_restore";
    let a = connect(&r.url(user)).await.expect("first");
    let b = connect(&r.url(user)).await.expect("second");
    assert_eq!(fleet_count("fleet_restore"), 2);
    // This router's lease connection only (the catalog URL of a test
    // router names it rt_catalog_<tag>).
    let killed = admin_sql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'rt_catalog_{} fleet leases'",
        r.tag
    ));
    assert_eq!(killed.trim(), "1", "one lease connection");
    // The router reconnects and restores its two leases (other tests'
    // routers restore theirs, of their own tenants).
    assert!(
        r.wait_log("fleet: lease connection lost", Duration::from_secs(10)),
        "{}",
        r.log_text()
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            r.log_text().matches("fleet: lease connection up").count() >= 2
                && fleet_count("fleet_restore") == 2
        })
        .await,
        "restored: count {}; log {}",
        fleet_count("fleet_restore"),
        r.log_text()
    );
    let c = connect(&r.url(user)).await.expect("third");
    expect_refused(&r, user, "fleet_restore", 3).await;
    drop((a, b, c));
    assert!(
        eventually(Duration::from_secs(5), || async {
            fleet_count("fleet_restore") == 0
        })
        .await,
        "every lease given back after the restore"
    );
}

#[tokio::test]
async fn without_shared_limits_each_router_counts_alone() {
    set_limits("fleet_alone", "max_connections => 1");
    let r1 = Router::start();
    let r2 = Router::start();
    let _a = connect(&r1.url("rt_app.fleet_alone")).await.expect("r1");
    let _b = connect(&r2.url("rt_app.fleet_alone"))
        .await
        .expect("r2 counts alone");
    assert_eq!(fleet_count("fleet_alone"), 0, "no lease taken");
    expect_refused(&r1, "rt_app.fleet_alone", "fleet_alone", 1).await;
}

/// Statements of `c` that pass in a quick burst of `n`.
async fn passed(c: &tokio_postgres::Client, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        match c.simple_query("SELECT 1").await {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(sqlstate(&e), "53400", "{e}"),
        }
    }
    ok
}

#[tokio::test]
async fn each_of_n_routers_enforces_its_share_of_qps_limit() {
    set_limits("fleet_qps", "qps_limit => 10, burst_multiplier => 1");
    let whole = Router::start();
    let half = Router::start_with("[fleet]\nrouters = 2\n");
    let c = connect(&whole.url("rt_app.fleet_qps"))
        .await
        .expect("whole");
    let d = connect(&half.url("rt_app.fleet_qps")).await.expect("half");
    // A full bucket holds qps * burst tokens; 40 statements take far less
    // than the 100 ms that would refill one more at 10/s... give or take
    // one token.
    let w = passed(&c, 40).await;
    let h = passed(&d, 40).await;
    assert!((10..=12).contains(&w), "one router: {w} of 40");
    assert!((5..=6).contains(&h), "one of two routers: {h} of 40");
}

/// A catalog role with what the catalog connection needs and not the
/// fleet's functions: its lease connection can never come up.
fn role_without_leases() -> CatalogSetup {
    admin_sql(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_nolease') THEN \
             CREATE ROLE rt_nolease LOGIN; \
           END IF; END $$; \
         GRANT USAGE ON SCHEMA tenant TO rt_nolease; \
         GRANT EXECUTE ON FUNCTION tenant.router_catalog(text), \
           tenant.router_catalog_page(text, integer, text, boolean), tenant.router_catalog_counts(), \
           tenant.auth_secret(text), tenant.login_verifier(text) TO rt_nolease",
    );
    CatalogSetup {
        user: "rt_nolease",
        ..CatalogSetup::default()
    }
}

#[tokio::test]
async fn without_the_lease_connection_a_router_follows_on_lease_loss() {
    set_limits("fleet_loss", "max_connections => 4");
    set_limits("fleet_free", "max_connections => 0");
    let cat = role_without_leases();
    let share = Router::start_catalog(
        "[fleet]\nshared_connection_limits = true\nrouters = 2\nlease_timeout_ms = 500\n",
        &cat,
    );
    assert!(
        share.wait_log("cannot open the lease connection", Duration::from_secs(10)),
        "{}",
        share.log_text()
    );
    // local_share (the default): this router admits ceil(4 / 2) = 2.
    let user = "rt_app.fleet_loss";
    let a = connect(&share.url(user)).await.expect("first of the share");
    let b = connect(&share.url(user))
        .await
        .expect("second of the share");
    expect_refused(&share, user, "fleet_loss", 4).await;
    assert_eq!(
        fleet_count("fleet_loss"),
        0,
        "nothing reached the catalog server"
    );
    drop((a, b));
    // refuse: no login of a limited tenant; others are unaffected.
    let closed = Router::start_catalog(
        "[fleet]\nshared_connection_limits = true\non_lease_loss = \"refuse\"\nlease_timeout_ms = 500\n",
        &cat,
    );
    let e = connect(&closed.url(user)).await.expect_err("fail-closed");
    assert_eq!(sqlstate(&e), "53300", "{e}");
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(
        msg.starts_with("tenant \"fleet_loss\" cannot connect now: its max_connections is counted for all routers"),
        "{msg}"
    );
    set_limits("fleet_free", "max_connections => 0");
    let free = connect(&closed.url("rt_app.fleet_free"))
        .await
        .expect("an unlimited tenant needs no lease");
    let one: i32 = free.query_one("SELECT 1", &[]).await.expect("runs").get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn pooled_clients_hold_their_lease_while_connected_not_their_backends() {
    common::scram_app_roles(&["rt_fleetpool"]);
    common::tenants(&["fleet_pool"], "pool_mode => 'transaction'");
    set_limits("fleet_pool", "max_connections => 2");
    let pooled = "[auth]\nlogin = \"verify\"\n[pool]\nenabled = true\nsize = 4\n\
                  [fleet]\nshared_connection_limits = true\n";
    let r1 = Router::start_with(pooled);
    let r2 = Router::start_with(pooled);
    let user = "rt_fleetpool.fleet_pool";
    let a = connect(&r1.url(user)).await.expect("first (r1)");
    let b = connect(&r2.url(user)).await.expect("second (r2)");
    // Transactions run on whichever backend is free; the places stay taken.
    for c in [&a, &b] {
        let t: String = c
            .query_one("SELECT tenant.current_tenant_id()", &[])
            .await
            .expect("runs")
            .get(0);
        assert_eq!(t, "fleet_pool");
    }
    assert_eq!(fleet_count("fleet_pool"), 2);
    expect_refused(&r1, user, "fleet_pool", 2).await;
    expect_refused(&r2, user, "fleet_pool", 2).await;
    drop(a);
    assert!(
        eventually(Duration::from_secs(5), || async {
            fleet_count("fleet_pool") == 1
        })
        .await,
        "the client's lease went with it, not with its backend"
    );
    let _c = connect(&r2.url(user))
        .await
        .expect("the freed place, through the other router");
    assert_eq!(fleet_count("fleet_pool"), 2);
}

/// A TCP relay to the cluster that keeps the startup packet of every
/// connection through it.
async fn recording_relay() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("relay");
    let port = listener.local_addr().expect("addr").port();
    let kept = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 4];
                client.read_exact(&mut len).await.ok()?;
                let mut rest = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
                client.read_exact(&mut rest).await.ok()?;
                kept.lock().ok()?.push(rest.clone());
                let mut server =
                    tokio::net::TcpStream::connect(("127.0.0.1", common::cluster().port))
                        .await
                        .ok()?;
                server.write_all(&len).await.ok()?;
                server.write_all(&rest).await.ok()?;
                tokio::io::copy_bidirectional(&mut client, &mut server)
                    .await
                    .ok()
            });
        }
    });
    (port, seen)
}

#[tokio::test]
async fn the_lease_connection_asks_the_server_to_notice_a_vanished_router() {
    set_limits("fleet_ka", "max_connections => 2");
    admin_sql(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_router_ka') THEN \
         CREATE ROLE rt_router_ka LOGIN PASSWORD '{}' IN ROLE tenant_router; END IF; END $$",
        common::PASSWORD
    ));
    let (relay, seen) = recording_relay().await;
    let url = format!(
        "host=127.0.0.1 port={relay} user=rt_router_ka password={} dbname={} application_name=rt_ka",
        common::PASSWORD,
        common::DB
    );
    let r = Router::start_env(SHARED, &[("TENANT_ROUTER_CATALOG_URL", &url)]);
    // The lease connection is up when a login is counted by the server.
    assert!(
        eventually(Duration::from_secs(10), || async {
            match connect(&r.url("rt_app.fleet_ka")).await {
                Ok(c) => {
                    let n = fleet_count("fleet_ka");
                    drop(c);
                    n == 1
                }
                Err(_) => false,
            }
        })
        .await,
        "{}",
        r.log_text()
    );
    let packets = seen.lock().expect("packets").clone();
    let text = |p: &Vec<u8>| String::from_utf8_lossy(p).replace('\0', " ");
    let lease = packets
        .iter()
        .map(text)
        .find(|p| p.contains("rt_ka fleet leases"))
        .unwrap_or_else(|| panic!("no lease connection in {packets:?}"));
    for setting in [
        "-c tcp_keepalives_idle=5",
        "-c tcp_keepalives_interval=5",
        "-c tcp_keepalives_count=3",
        "-c tcp_user_timeout=20000",
    ] {
        assert!(lease.contains(setting), "{setting} in {lease}");
    }
    // The catalog connection is left as the URL says.
    let catalog = packets
        .iter()
        .map(text)
        .find(|p| p.contains("rt_ka ") && !p.contains("fleet leases"))
        .unwrap_or_else(|| panic!("no catalog connection in {packets:?}"));
    assert!(!catalog.contains("tcp_keepalives_idle"), "{catalog}");
}
