//! The router authenticates clients itself (docs/src/authentication/index.md):
//! tenant secrets, `auth.login = "verify"` (SCRAM with the ClientKey
//! passed on to PostgreSQL, md5 via a cleartext password), channel
//! binding to the router's certificate, answers that do not reveal whether
//! a tenant or role exists, no backend before authentication, the cap on
//! relayed unauthenticated backends, and the credentials file's checks.
//! Needs pg_tenant 0.3.0 (tenant.set_password, tenant.auth_secret,
//! tenant.login_verifier).
mod common;
use bytes::BytesMut;
use common::wire::*;
use common::*;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SA_FIXTURES: &str = r#"
SET client_min_messages = warning;
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['sa_one', 'sa_two', 'sa_plain', 'sa_off', 'sa_flood', 'sa_roles'] LOOP
    IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = r) THEN
      PERFORM tenant.create_tenant(r);
    END IF;
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_flood') THEN
    SET LOCAL password_encryption = 'scram-sha-256';
    CREATE ROLE rt_flood LOGIN PASSWORD 'rt-secret';
  END IF;
  PERFORM tenant.create_app_role('rt_flood');
  -- One role per test that counts backends, so parallel tests do not mix.
  FOREACH r IN ARRAY ARRAY['rt_probe', 'rt_pending'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      SET LOCAL password_encryption = 'scram-sha-256';
      EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', r, 'rt-secret');
    END IF;
    PERFORM tenant.create_app_role(r);
  END LOOP;
END $$;
GRANT SELECT ON notes TO rt_flood, rt_probe;
SELECT tenant.alter_tenant('sa_flood', max_connections => 5);
SELECT tenant.alter_tenant('sa_roles', login_roles => ARRAY['rt_md5']);
INSERT INTO notes (tenant_id, body) SELECT 'sa_roles', 'roles 1'
WHERE NOT EXISTS (SELECT 1 FROM notes WHERE tenant_id = 'sa_roles');
SELECT tenant.disable_tenant('sa_off') FROM tenant.tenants WHERE id = 'sa_off' AND enabled;
INSERT INTO notes (tenant_id, body)
SELECT t, t || ' ' || g FROM (VALUES ('sa_one', 2), ('sa_two', 1), ('sa_plain', 4), ('sa_flood', 2)) v(t, n),
     generate_series(1, n) g
WHERE NOT EXISTS (SELECT 1 FROM notes WHERE tenant_id = 'sa_one');
SELECT tenant.set_password('sa_one', 'one-secret'), tenant.set_password('sa_two', 'two-secret'),
       tenant.set_password('sa_off', 'off-secret');
"#;

fn fixtures() {
    static F: OnceLock<()> = OnceLock::new();
    F.get_or_init(|| {
        cluster();
        admin_sql(SA_FIXTURES);
    });
}

/// A credentials file (rt_app and rt_flood with their passwords).
fn credentials(mode: u32) -> PathBuf {
    let p = temp_dir("creds").join("credentials.toml");
    std::fs::write(
        &p,
        "[roles]\nrt_app = \"rt-secret\"\nrt_flood = \"rt-secret\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn auth_section(login: &str, extra: &str) -> String {
    format!(
        "[auth]\nlogin = \"{login}\"\ncredentials_file = \"{}\"\n{extra}\n",
        credentials(0o600).display()
    )
}

fn with_password(r: &Router, user: &str, password: &str) -> String {
    r.url(user).replace(PASSWORD, password)
}

/// (SQLSTATE, message) of a refused connection.
fn refusal(e: &tokio_postgres::Error) -> (String, String) {
    (
        sqlstate(e),
        e.as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string()),
    )
}

fn wrong_password(user: &str) -> (String, String) {
    (
        "28P01".into(),
        format!("password authentication failed for user \"{user}\""),
    )
}

async fn tenant_and_rows(url: &str) -> Result<(String, i64), tokio_postgres::Error> {
    let c = connect(url).await?;
    let t: Option<String> = c
        .query_one("SELECT tenant.current_tenant_id()", &[])
        .await?
        .get(0);
    Ok((t.unwrap_or_default(), visible_notes(&c).await))
}

/// Backends of `role` still authenticating. PostgreSQL 15 shows them in
/// no view, only in their process title ("postgres: ROLE DB HOST(PORT)
/// authentication").
fn preauth_backends(role: &str) -> usize {
    let out = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .unwrap();
    let needle = format!("postgres: {role} {DB} ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(&needle) && l.ends_with("authentication"))
        .count()
}

// ------------------------------------------------------------------ tests

/// Relayed, an unknown tenant's mock exchange looks like PostgreSQL's for
/// the role: SCRAM with the role's own salt, or an md5 challenge.
#[tokio::test]
async fn relay_mode_mocks_look_like_postgres() {
    // rt_app: the roles other tests here count (rt_probe, rt_flood) are
    // left alone.
    fixtures();
    let r = Router::start();
    assert_eq!(
        salt_and_iterations(r.port, "rt_app.nosuch").await,
        salt_and_iterations(r.port, "rt_app.acme").await,
        "the role's own salt, from PostgreSQL and from the mock"
    );
    assert_eq!(first_request(r.port, "rt_md5.acme").await, (b'R', 5));
    assert_eq!(first_request(r.port, "rt_md5.nosuch").await, (b'R', 5));
    let e = connect(&r.url("rt_md5.nosuch")).await.unwrap_err();
    assert_eq!(
        refusal(&e),
        wrong_password("rt_md5"),
        "in PostgreSQL's words"
    );
    // Control: a known tenant of a SCRAM role connects.
    assert_eq!(
        tenant_and_rows(&r.url("rt_app.acme")).await.unwrap(),
        ("acme".into(), 3)
    );
}

#[tokio::test]
async fn a_tenant_secret_opens_only_its_tenant() {
    fixtures();
    let r = Router::start_with(&auth_section("relay", ""));
    assert_eq!(
        tenant_and_rows(&with_password(&r, "rt_app.sa_one", "one-secret"))
            .await
            .unwrap(),
        ("sa_one".into(), 2)
    );
    // acme's... sa_one's secret does not open sa_two; sa_two's own does.
    let e = tenant_and_rows(&with_password(&r, "rt_app.sa_two", "one-secret"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&e), wrong_password("rt_app.sa_two"));
    assert_eq!(
        tenant_and_rows(&with_password(&r, "rt_app.sa_two", "two-secret"))
            .await
            .unwrap(),
        ("sa_two".into(), 1)
    );
    // The role's own password no longer opens a tenant with a secret...
    let e = tenant_and_rows(&r.url("rt_app.sa_one")).await.unwrap_err();
    assert_eq!(refusal(&e), wrong_password("rt_app.sa_one"));
    // ...and still opens one without (relayed to PostgreSQL).
    assert_eq!(
        tenant_and_rows(&r.url("rt_app.sa_plain")).await.unwrap(),
        ("sa_plain".into(), 4)
    );
    // The secret is right, but the router has no password for the role.
    let e = tenant_and_rows(&with_password(&r, "rt_trust.sa_one", "one-secret"))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        (
            "28000".into(),
            "no credentials for login role \"rt_trust\" (auth.credentials_file)".into()
        )
    );
    assert!(r.wait_log("no credentials for the login role", Duration::from_secs(5)));
}

#[tokio::test]
async fn verify_mode_scram_and_md5() {
    fixtures();
    let r = Router::start_with(&auth_section("verify", ""));
    // SCRAM: the router checks the proof, then PostgreSQL (scram-sha-256
    // in pg_hba.conf) accepts the ClientKey it passes on.
    assert_eq!(
        tenant_and_rows(&r.url("rt_app.acme")).await.unwrap(),
        ("acme".into(), 3)
    );
    let e = tenant_and_rows(&with_password(&r, "rt_app.acme", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&e), wrong_password("rt_app.acme"));
    // md5 (pg_hba md5, md5 verifier): broken through a relay (auth.rs),
    // works when the router checks a cleartext password (loopback peer).
    assert_eq!(
        tenant_and_rows(&r.url("rt_md5.acme")).await.unwrap(),
        ("acme".into(), 3)
    );
    let e = tenant_and_rows(&with_password(&r, "rt_md5.globex", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(refusal(&e), wrong_password("rt_md5.globex"));
    // pg_hba `password` for the role: a ClientKey cannot answer a request
    // for the cleartext password. A clear 28000, no AuthenticationOk.
    let e = tenant_and_rows(&r.url("rt_password.acme"))
        .await
        .unwrap_err();
    let (code, msg) = refusal(&e);
    assert_eq!(code, "28000", "{msg}");
    assert!(
        msg.starts_with("tenant-router cannot log into PostgreSQL as \"rt_password\""),
        "{msg}"
    );
    // A tenant secret wins over the role's password in verify mode too.
    assert_eq!(
        tenant_and_rows(&with_password(&r, "rt_app.sa_one", "one-secret"))
            .await
            .unwrap(),
        ("sa_one".into(), 2)
    );
    let e = tenant_and_rows(&r.url("rt_app.sa_one")).await.unwrap_err();
    assert_eq!(refusal(&e), wrong_password("rt_app.sa_one"));
}

#[tokio::test]
async fn unknown_disabled_and_refused_names_look_like_a_wrong_password() {
    fixtures();
    let r = Router::start_with(&auth_section("verify", ""));
    // Control: right password works (the session stays open: the count
    // below is 1), wrong one is refused.
    let control = connect(&r.url("rt_probe.acme")).await.unwrap();
    assert_eq!(visible_notes(&control).await, 3);
    assert_eq!(backends("rt_probe"), 1);
    for (user, password) in [
        ("rt_probe.acme", "wrong"),
        ("rt_probe.nosuch", PASSWORD),
        ("rt_probe.nosuch", "wrong"),
        ("rt_probe.sa_off", "wrong"),
        ("rt_probe.sa_off", PASSWORD),
        ("nosuchrole.acme", PASSWORD),
        // Not a member of tenant_app: tenant.login_verifier refuses it.
        ("rt_router.acme", PASSWORD),
    ] {
        let e = tenant_and_rows(&with_password(&r, user, password))
            .await
            .unwrap_err();
        assert_eq!(refusal(&e), wrong_password(user), "{user}");
    }
    // After a successful authentication, a precise answer.
    let e = tenant_and_rows(&with_password(&r, "rt_probe.sa_off", "off-secret"))
        .await
        .unwrap_err();
    assert_eq!(
        refusal(&e),
        ("28000".into(), "tenant \"sa_off\" is disabled".into())
    );
    assert_eq!(
        backends("rt_probe"),
        1,
        "no backend opened for refused clients"
    );
    assert_eq!(visible_notes(&control).await, 3);

    // Mock exchanges look like real ones: the same mechanisms, and what a
    // real tenant of the role shows. For a role with a SCRAM verifier, its
    // own salt and iterations whatever the tenant name; for a name that is
    // no usable role, a mock salt of its own, the same on every attempt.
    let real = salt_and_iterations(r.port, "rt_probe.acme").await;
    for user in ["rt_probe.nosuch", "rt_probe.nosuch2"] {
        assert_eq!(salt_and_iterations(r.port, user).await, real, "{user}");
    }
    let nobody = salt_and_iterations(r.port, "nobody.acme").await;
    assert_eq!(salt_and_iterations(r.port, "nobody.nosuch").await, nobody);
    assert_ne!(nobody, real);
    assert_ne!(salt_and_iterations(r.port, "nobody2.acme").await, nobody);
    assert!(nobody.ends_with(",i=4096"), "{nobody}");

    // Counted per known tenant whose state the router holds (acme: its
    // client authenticated), with a reason; a tenant no client ever
    // authenticated for (sa_off, disabled) gets no state and no series,
    // only the aggregates; unknown names in one series.
    let metrics = reqwest::get(r.admin("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("tenant=\"sa_off\""),
        "no series for a tenant nobody authenticated for:\n{metrics}"
    );
    for line in [
        "tenant_router_auth_failures_total{reason=\"wrong_password\",tenant=\"acme\"}",
        "tenant_router_auth_failures_total{reason=\"role_refused\",tenant=\"acme\"}",
        "tenant_router_all_tenants_auth_failures_total{reason=\"wrong_password\"}",
        "tenant_router_all_tenants_auth_failures_total{reason=\"disabled\"}",
        "tenant_router_unknown_tenant_auth_failures_total{reason=\"unknown_tenant\"}",
    ] {
        let n: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        assert!(n >= 1, "{line} missing or 0 in\n{metrics}");
    }
    assert!(!metrics.contains("nosuch"), "no series per unknown name");
    assert!(!r.log_text().contains("rt-secret"), "no secret in the log");
}

/// SCRAM-SHA-256-PLUS over TLS as `user`, binding to `end_point`: the
/// message after the client's final one.
async fn plus_exchange(port: u16, ca: &[u8], user: &str, end_point: Vec<u8>) -> (u8, Vec<u8>) {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.to_vec().into()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut req = BytesMut::new();
    frontend::ssl_request(&mut req);
    tcp.write_all(&req).await.unwrap();
    assert_eq!(tcp.read_u8().await.unwrap(), b'S');
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap();
    let mut c = ScramSha256::new(
        PASSWORD.as_bytes(),
        ChannelBinding::tls_server_end_point(end_point),
    );
    let (mechs, first) = scram_first(&mut s, user, &c, "SCRAM-SHA-256-PLUS").await;
    assert_eq!(mechs, "SCRAM-SHA-256-PLUS SCRAM-SHA-256");
    c.update(&first).unwrap();
    let mut m = BytesMut::new();
    frontend::sasl_response(c.message(), &mut m).unwrap();
    s.write_all(&m).await.unwrap();
    read_msg(&mut s).await
}

#[tokio::test]
async fn channel_binding_to_the_router_certificate() {
    use sha2::Digest;
    fixtures();
    let (cert, key, ca, leaf) = certificate();
    let tls = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let r = Router::start_with(&format!("{}{tls}", auth_section("verify", "")));
    let conninfo = |r: &Router, cb: &str| {
        format!(
            "{} sslmode=require channel_binding={cb}",
            r.url("rt_app.acme")
        )
    };
    // libpq binds to the router's certificate: router-verified, it works.
    assert_eq!(
        psql_as(&conninfo(&r, "require"), "SELECT count(*) FROM notes").unwrap(),
        "3"
    );
    // Relayed (PostgreSQL's exchange), channel binding still cannot work:
    // the clear error of before.
    let relay = Router::start_with(&format!("{}{tls}", auth_section("relay", "")));
    let e = psql_as(&conninfo(&relay, "require"), "SELECT 1").unwrap_err();
    assert!(
        e.contains("channel binding is required, but server did not offer an authentication method that supports channel binding"),
        "{e}"
    );
    assert_eq!(
        psql_as(&conninfo(&relay, "disable"), "SELECT count(*) FROM notes").unwrap(),
        "3"
    );
    // Raw: the right end point (SHA-256 of the leaf) authenticates, a
    // tampered one is refused.
    let right: Vec<u8> = sha2::Sha256::digest(&leaf).to_vec();
    let (tag, body) = plus_exchange(r.port, &ca, "rt_app.acme", right.clone()).await;
    assert_eq!((tag, auth_code(&body)), (b'R', 12), "SASLFinal");
    let mut wrong = right;
    wrong[0] ^= 1;
    let (tag, body) = plus_exchange(r.port, &ca, "rt_app.acme", wrong).await;
    assert_eq!(tag, b'E');
    assert_eq!(
        error_fields(&body),
        ("08P01".into(), "SCRAM channel binding check failed".into())
    );
}

#[tokio::test]
async fn a_flood_of_silent_clients_takes_no_backend_in_verify_mode() {
    fixtures();
    let r = Router::start_with(&auth_section("verify", ""));
    let mut silent = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
        s.write_all(&startup("rt_flood.sa_flood")).await.unwrap();
        let (tag, body) = read_msg(&mut s).await;
        assert_eq!((tag, auth_code(&body)), (b'R', 10), "challenged");
        silent.push(s);
    }
    assert_eq!(backends("rt_flood"), 0, "no backend for a silent client");
    assert_eq!(
        preauth_backends("rt_flood"),
        0,
        "not even one authenticating"
    );
    // sa_flood's max_connections is 5: all five are still there.
    let mut clients = Vec::new();
    for _ in 0..5 {
        let c = connect(&r.url("rt_flood.sa_flood")).await.unwrap();
        assert_eq!(visible_notes(&c).await, 2);
        clients.push(c);
    }
    assert_eq!(backends("rt_flood"), 5);
    let e = connect(&r.url("rt_flood.sa_flood")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    drop(silent);
}

#[tokio::test]
async fn relayed_unauthenticated_backends_are_capped() {
    fixtures();
    let r = Router::start_with(&auth_section("relay", "max_unauthenticated_backends = 3"));
    let before = connect(&r.url("rt_app.acme")).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
        s.write_all(&startup("rt_pending.sa_plain")).await.unwrap();
        // PostgreSQL's challenge, relayed: a backend is held.
        let (tag, body) = read_msg(&mut s).await;
        assert_eq!((tag, auth_code(&body)), (b'R', 10));
        pending.push(s);
    }
    assert_eq!(
        preauth_backends("rt_pending"),
        3,
        "PostgreSQL holds their backends"
    );
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(&startup("rt_pending.sa_plain")).await.unwrap();
    let (tag, body) = read_msg(&mut s).await;
    assert_eq!(tag, b'E');
    assert_eq!(
        error_fields(&body),
        (
            "53300".into(),
            "too many clients are authenticating: tenant-router's auth.max_unauthenticated_backends is 3".into()
        )
    );
    let e = connect(&r.url("rt_app.acme")).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");
    assert_eq!(
        preauth_backends("rt_pending"),
        3,
        "the refused client opened nothing"
    );
    // Nothing else is harmed: an open session works, and a client the
    // router authenticates itself (tenant secret) still connects.
    assert_eq!(visible_notes(&before).await, 3);
    assert_eq!(
        tenant_and_rows(&with_password(&r, "rt_app.sa_one", "one-secret"))
            .await
            .unwrap(),
        ("sa_one".into(), 2)
    );
    // The pending clients leave: relayed clients connect again.
    drop(pending);
    let start = Instant::now();
    loop {
        match connect(&r.url("rt_app.acme")).await {
            Ok(c) => {
                assert_eq!(visible_notes(&c).await, 3);
                break;
            }
            Err(e) => {
                assert_eq!(sqlstate(&e), "53300", "{e}");
                assert!(start.elapsed() < Duration::from_secs(5), "{e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn credentials_file_must_be_private() {
    fixtures();
    let loose = credentials(0o644);
    let dir = temp_dir("loose");
    let cfg = dir.join("router.toml");
    std::fs::write(
        &cfg,
        router_config(
            1,
            2,
            &format!("[auth]\ncredentials_file = \"{}\"", loose.display()),
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tenant-router"))
        .arg("-c")
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("tenant-router started with a world-readable credentials file");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "credentials file {} has mode 0644: it must be 0600 or stricter",
            loose.display()
        )),
        "{err}"
    );

    // A reload with a loosened file is refused; the running one stays.
    let good = credentials(0o600);
    let r = Router::start_with(&format!(
        "[auth]\ncredentials_file = \"{}\"",
        good.display()
    ));
    // Control (and the router is serving, so it has its SIGHUP handler).
    assert_eq!(
        tenant_and_rows(&with_password(&r, "rt_app.sa_one", "one-secret"))
            .await
            .unwrap(),
        ("sa_one".into(), 2)
    );
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o644)).unwrap();
    r.signal("HUP");
    assert!(r.wait_log("configuration reload failed", Duration::from_secs(10)));
    assert!(
        r.log_text().contains("0600 or stricter"),
        "{}",
        r.log_text()
    );
    assert_eq!(
        tenant_and_rows(&with_password(&r, "rt_app.sa_one", "one-secret"))
            .await
            .unwrap(),
        ("sa_one".into(), 2)
    );
}

/// After authentication, a login role the tenant may not use
/// (`login_roles`, enforced by tenant.set_context) gets a precise 28000.
#[tokio::test]
async fn a_role_outside_login_roles_gets_a_precise_refusal() {
    fixtures();
    let r = Router::start_with(&auth_section("verify", ""));
    assert_eq!(
        tenant_and_rows(&r.url("rt_md5.sa_roles")).await.unwrap(),
        ("sa_roles".into(), 1)
    );
    let e = tenant_and_rows(&r.url("rt_app.sa_roles"))
        .await
        .unwrap_err();
    let (code, msg) = refusal(&e);
    assert_eq!(code, "28000", "{msg}");
    assert!(
        msg.contains("\"rt_app\" is not among the login_roles of tenant \"sa_roles\""),
        "{msg}"
    );
    let metrics = reqwest::get(r.admin("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "tenant_router_auth_failures_total{reason=\"role_not_allowed\",tenant=\"sa_roles\"} 1"
        ),
        "{metrics}"
    );
}

/// An md5 role needs the client's cleartext password: asked for over TLS
/// or from a loopback peer only, unless allow_cleartext_without_tls.
#[tokio::test]
async fn cleartext_for_md5_only_over_tls_or_loopback() {
    fixtures();
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("skipped: this host has no non-loopback IPv4 address");
        return;
    };
    let (cert, key, _, _) = certificate();
    let tls = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let r = Router::start_on_all_addresses(&format!("{}{tls}", auth_section("verify", "")));
    let from = |host: &str, ssl: &str| {
        format!(
            "host={host} port={} user=rt_md5.acme password={PASSWORD} dbname={DB} sslmode={ssl}",
            r.port
        )
    };
    // Loopback, no TLS: allowed.
    assert_eq!(
        psql_as(&from("127.0.0.1", "disable"), "SELECT count(*) FROM notes").unwrap(),
        "3"
    );
    // Another address, no TLS: refused, naming the setting.
    let e = psql_as(&from(&ip, "disable"), "SELECT 1").unwrap_err();
    assert!(
        e.contains("is stored as md5") && e.contains("auth.allow_cleartext_without_tls"),
        "{e}"
    );
    // Another address over TLS: allowed.
    assert_eq!(
        psql_as(&from(&ip, "require"), "SELECT count(*) FROM notes").unwrap(),
        "3"
    );
    // SCRAM roles are not affected: no cleartext needed.
    let scram = from(&ip, "disable").replace("rt_md5.acme", "rt_app.acme");
    assert_eq!(psql_as(&scram, "SELECT count(*) FROM notes").unwrap(), "3");
    // With the setting, cleartext is asked for anywhere.
    let open = Router::start_on_all_addresses(&auth_section(
        "verify",
        "allow_cleartext_without_tls = true",
    ));
    let url = format!(
        "host={ip} port={} user=rt_md5.acme password={PASSWORD} dbname={DB} sslmode=disable",
        open.port
    );
    assert_eq!(psql_as(&url, "SELECT count(*) FROM notes").unwrap(), "3");
}

/// A secret set or removed while the router runs applies to every
/// connection after its notification reached the router (the kept row,
/// secret included, is dropped and read again), and the admin API never
/// shows it.
#[tokio::test]
async fn a_secret_applies_once_notified_and_is_never_shown() {
    fixtures();
    admin_sql(
        "SELECT tenant.create_tenant('sa_late') WHERE NOT EXISTS \
         (SELECT 1 FROM tenant.tenants WHERE id = 'sa_late'); \
         SELECT tenant.set_password('sa_late', NULL)",
    );
    let r = Router::start_with(&auth_section("relay", ""));
    assert_eq!(
        tenant_and_rows(&r.url("rt_app.sa_late")).await.unwrap().0,
        "sa_late"
    );
    admin_sql("SELECT tenant.set_password('sa_late', 'late-secret')");
    router_sees(&r, "sa_late", |t| t["has_secret"] == true).await;
    let e = tenant_and_rows(&r.url("rt_app.sa_late")).await.unwrap_err();
    assert_eq!(refusal(&e), wrong_password("rt_app.sa_late"));
    assert_eq!(
        tenant_and_rows(&with_password(&r, "rt_app.sa_late", "late-secret"))
            .await
            .unwrap()
            .0,
        "sa_late"
    );
    let listed = reqwest::get(r.admin("/tenants?prefix=sa_late"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("\"sa_late\""), "{listed}");
    assert!(!listed.contains("SCRAM-SHA-256"), "{listed}");
    let one = router_row(&r, "sa_late").await.to_string();
    assert!(
        !one.contains("SCRAM-SHA-256") && !one.contains("late-secret"),
        "{one}"
    );
    admin_sql("SELECT tenant.set_password('sa_late', NULL)");
    router_sees(&r, "sa_late", |t| t["has_secret"] == false).await;
    assert_eq!(
        tenant_and_rows(&r.url("rt_app.sa_late")).await.unwrap().0,
        "sa_late"
    );
    assert!(!r.log_text().contains("late-secret"));
}

/// When PostgreSQL refuses the router's own login (here: a wrong password
/// in the credentials file), its ErrorResponse reaches the client
/// unchanged; a malformed SCRAM message from the client is 08P01.
#[tokio::test]
async fn postgres_refusing_the_router_login_and_malformed_scram() {
    fixtures();
    let p = temp_dir("wrong-creds").join("credentials.toml");
    std::fs::write(&p, "[roles]\nrt_app = \"not-the-password\"\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = Router::start_with(&format!("[auth]\ncredentials_file = \"{}\"", p.display()));
    let e = tenant_and_rows(&with_password(&r, "rt_app.sa_one", "one-secret"))
        .await
        .unwrap_err();
    // PostgreSQL's words: the login role, not the name the client sent.
    assert_eq!(refusal(&e), wrong_password("rt_app"));
    // Control: a tenant without a secret is relayed and works.
    assert_eq!(
        tenant_and_rows(&r.url("rt_app.sa_plain")).await.unwrap().1,
        4
    );
    // Malformed SASLInitialResponse data: 08P01, no panic, router serves on.
    let mut s = TcpStream::connect(("127.0.0.1", r.port)).await.unwrap();
    s.write_all(&startup("rt_app.sa_one")).await.unwrap();
    let (tag, body) = read_msg(&mut s).await;
    assert_eq!((tag, auth_code(&body)), (b'R', 10));
    let mut m = BytesMut::new();
    frontend::sasl_initial_response("SCRAM-SHA-256", b"n,,garbage", &mut m).unwrap();
    s.write_all(&m).await.unwrap();
    let (tag, body) = read_msg(&mut s).await;
    assert_eq!(tag, b'E');
    let (code, msg) = error_fields(&body);
    assert_eq!(code, "08P01", "{msg}");
    assert_eq!(
        tenant_and_rows(&r.url("rt_app.sa_plain")).await.unwrap().1,
        4
    );
}
