//! Relayed authentication (`auth.login = "relay"`) under attack: clients
//! that never answer hold no tenant place; PostgreSQL's cleartext password
//! request reaches only protected clients; an unknown tenant's mock looks
//! like PostgreSQL's own answer (its words, no -PLUS); mock salts survive
//! a restart.
mod common;
use common::wire::*;
use common::*;
use std::sync::OnceLock;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        admin_sql(
            "SELECT tenant.create_tenant('ra_five', max_connections => 5) \
             WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'ra_five'); \
             INSERT INTO notes (tenant_id, body) SELECT 'ra_five', 'five' \
             WHERE NOT EXISTS (SELECT 1 FROM notes WHERE tenant_id = 'ra_five')",
        );
    });
}

/// Five clients that send a StartupMessage and never answer PostgreSQL's
/// challenge hold backends (capped by max_unauthenticated_backends), but
/// not the tenant's places: its five sessions still connect.
#[tokio::test]
async fn silent_relayed_clients_hold_no_tenant_place() {
    fixtures();
    let r = Router::start();
    let mut silent = Vec::new();
    for _ in 0..5 {
        let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
        s.write_all(&startup("rt_app.ra_five")).await.unwrap();
        let (tag, body) = read_msg(&mut s).await;
        assert_eq!(
            (tag, auth_code(&body)),
            (b'R', 10),
            "PostgreSQL's challenge"
        );
        silent.push(s);
    }
    let mut sessions = Vec::new();
    for _ in 0..5 {
        let c = connect(&r.url("rt_app.ra_five")).await.unwrap();
        assert_eq!(visible_notes(&c).await, 1);
        sessions.push(c);
    }
    // The limit still holds for authenticated clients.
    let e = connect(&r.url("rt_app.ra_five")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    drop(silent);
}

/// PostgreSQL sees the router's loopback address, so its `hostssl` rules
/// cannot protect a client's cleartext password: the router passes the
/// request on only over TLS or to a loopback peer.
#[tokio::test]
async fn relayed_cleartext_only_over_tls_or_loopback() {
    fixtures();
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("skipped: this host has no non-loopback IPv4 address");
        return;
    };
    let (cert, key, _, _) = certificate();
    let r = Router::start_on_all_addresses(&format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    // rt_password is a `password` (cleartext) role in pg_hba.conf.
    let from = |host: &str, ssl: &str| {
        format!(
            "host={host} port={} user=rt_password.acme password={PASSWORD} dbname={DB} sslmode={ssl}",
            r.port
        )
    };
    let e = psql_as(&from(&ip, "disable"), "SELECT 1").unwrap_err();
    assert!(
        e.contains("asks this login for a cleartext password")
            && e.contains("auth.allow_cleartext_without_tls"),
        "{e}"
    );
    // Controls: over TLS from the same address, and from loopback.
    assert_eq!(
        psql_as(&from(&ip, "require"), "SELECT count(*) FROM notes").unwrap(),
        "3"
    );
    assert_eq!(
        psql_as(&from("127.0.0.1", "disable"), "SELECT count(*) FROM notes").unwrap(),
        "3"
    );
}

/// An unknown tenant of a relayed role is answered by the router's mock,
/// a known one by PostgreSQL: same words (PostgreSQL names the login
/// role), and over TLS neither offers SCRAM-SHA-256-PLUS.
#[tokio::test]
async fn relay_mocks_answer_in_postgres_words() {
    fixtures();
    let (cert, key, _, _) = certificate();
    let r = Router::start_with(&format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    ));
    let refused = |user: &str| {
        let url = r.url(user).replace(PASSWORD, "wrong");
        async move {
            let e = connect(&url).await.unwrap_err();
            (
                sqlstate(&e),
                e.as_db_error().map(|d| d.message().to_owned()),
            )
        }
    };
    let postgres = refused("rt_app.acme").await;
    assert_eq!(
        postgres,
        (
            "28P01".into(),
            Some("password authentication failed for user \"rt_app\"".into())
        )
    );
    assert_eq!(refused("rt_app.nosuch").await, postgres);
    // channel_binding=require: libpq refuses on its own side in both cases
    // (before the fix the mock offered -PLUS and failed at the proof).
    let bound = |tenant: &str| {
        format!(
            "host=127.0.0.1 port={} user=rt_app.{tenant} password={PASSWORD} dbname={DB} \
             sslmode=require channel_binding=require",
            r.port
        )
    };
    let known = psql_as(&bound("acme"), "SELECT 1").unwrap_err();
    let unknown = psql_as(&bound("nosuch"), "SELECT 1").unwrap_err();
    let words = "server did not offer an authentication method that supports channel binding";
    assert!(known.contains(words), "{known}");
    assert!(unknown.contains(words), "{unknown}");
}

/// The mock salt of a name nobody knows is derived from the router's
/// signing key: the same after a restart and on every router sharing the
/// key, as PostgreSQL keeps its own mock salts.
#[tokio::test]
async fn mock_salts_survive_a_restart() {
    fixtures();
    let first = Router::start();
    let salt = salt_and_iterations(first.port, "nosuchrole.nosuch").await;
    drop(first);
    let second = Router::start();
    assert_eq!(
        salt_and_iterations(second.port, "nosuchrole.nosuch").await,
        salt
    );
    // Control: another name, another salt.
    assert_ne!(
        salt_and_iterations(second.port, "otherrole.nosuch").await,
        salt
    );
}
