//! TLS ended at the router: SSLRequest and direct TLS, client_tls modes,
//! verifying clients (psql), the tenant from SNI, channel binding, and a
//! certificate swap on SIGHUP. Certificates are made at test time (rcgen).
mod common;
use bytes::BytesMut;
use common::*;
use postgres_protocol::message::frontend;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::rustls;

/// A private CA and a server certificate (localhost, 127.0.0.1,
/// *.db.example.com) in a fresh directory.
struct Pki {
    dir: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tenant-router-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: a client that trusts another test CA must see
        // an unknown issuer, not a bad signature.
        p.distinguished_name
            .push(DnType::CommonName, format!("test CA {}", dir.display()));
        let ca = p.self_signed(&ca_key).expect("CA");
        std::fs::write(dir.join("ca.crt"), ca.pem()).expect("write CA");
        Pki { dir, ca, ca_key }
    }

    /// Write `name.crt` / `name.key`, valid now or (expired) only in the past.
    fn server(&self, name: &str, expired: bool) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "*.db.example.com".to_string(),
        ])
        .expect("params");
        p.distinguished_name.push(DnType::CommonName, "localhost");
        let now = time::OffsetDateTime::now_utc();
        if expired {
            p.not_before = now - time::Duration::days(30);
            p.not_after = now - time::Duration::days(1);
        } else {
            p.not_before = now - time::Duration::days(1);
            p.not_after = now + time::Duration::days(30);
        }
        let cert = p.signed_by(&key, &self.ca, &self.ca_key).expect("sign");
        let (c, k) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `[tls]` (and any other section) lines for a router.
fn tls_section(cert: &Path, key: &Path, extra: &str) -> String {
    format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{extra}\n",
        cert.display(),
        key.display()
    )
}

/// psql with a libpq connection string; Ok(stdout) or Err(stderr).
fn psql_at(conninfo: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args(["-X", "-tA", "-v", "ON_ERROR_STOP=1", conninfo, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn conninfo(r: &Router, user: &str, host: &str, ssl: &str) -> String {
    format!(
        "host={host} hostaddr=127.0.0.1 port={} user={user} password={PASSWORD} dbname={DB} {ssl}",
        r.port
    )
}

const TENANT: &str = "SELECT tenant.current_tenant_id()";
/// The session's own view of its encryption is the router's; psql's
/// \conninfo shows the client side.
const CONNINFO: &str = "\\conninfo";

#[test]
fn psql_require_verify_ca_and_verify_full() {
    let pki = Pki::new();
    let (c, k) = pki.server("server", false);
    let r = Router::start_with(&tls_section(&c, &k, ""));
    let ca = pki.ca_file();
    let root = format!("sslrootcert={}", ca.display());
    let url = |host: &str, mode: &str| {
        conninfo(&r, "rt_trust.acme", host, &format!("sslmode={mode} {root}"))
    };
    for mode in ["require", "verify-ca", "verify-full"] {
        assert_eq!(
            psql_at(&url("localhost", mode), TENANT).as_deref(),
            Ok("acme")
        );
        let info = psql_at(&url("localhost", mode), CONNINFO).expect("conninfo");
        assert!(info.contains("SSL connection"), "{mode}: {info}");
    }
    let e = psql_at(&url("wrong.example.org", "verify-full"), TENANT).unwrap_err();
    assert!(e.contains("does not match host name"), "{e}");
    // client_tls defaults to allow: cleartext still works.
    let info = psql_at(&url("localhost", "disable"), CONNINFO).expect("cleartext");
    assert!(!info.contains("SSL connection"), "{info}");
}

#[tokio::test]
async fn cleartext_client_refused_under_require() {
    let pki = Pki::new();
    let (c, k) = pki.server("server", false);
    let r = Router::start_with(&tls_section(&c, &k, "client_tls = \"require\""));
    let e = psql_at(
        &conninfo(&r, "rt_trust.acme", "localhost", "sslmode=disable"),
        TENANT,
    )
    .unwrap_err();
    assert!(e.contains("tls.client_tls = require"), "{e}");
    let ok = psql_at(
        &conninfo(&r, "rt_trust.acme", "localhost", "sslmode=require"),
        TENANT,
    );
    assert_eq!(ok.as_deref(), Ok("acme"));
    assert!(sample(&r, "tenant_router_connections_tls_total{version=\"1.3\"}").await >= 1.0);
}

#[test]
fn expired_certificate_refused_by_a_verifying_client() {
    let pki = Pki::new();
    let (c, k) = pki.server("expired", true);
    let r = Router::start_with(&tls_section(&c, &k, ""));
    let root = format!("sslrootcert={}", pki.ca_file().display());
    let e = psql_at(
        &conninfo(
            &r,
            "rt_trust.acme",
            "localhost",
            &format!("sslmode=verify-ca {root}"),
        ),
        TENANT,
    )
    .unwrap_err();
    // libpq says only "certificate verify failed"; the controls show the
    // expiry is why: the same certificate without verification, and a
    // current certificate of the same CA, both pass.
    assert!(e.contains("certificate verify failed"), "{e}");
    let ok = psql_at(
        &conninfo(&r, "rt_trust.acme", "localhost", "sslmode=require"),
        TENANT,
    );
    assert_eq!(ok.as_deref(), Ok("acme"));
    let (c, k) = pki.server("current", false);
    let current = Router::start_with(&tls_section(&c, &k, ""));
    let ok = psql_at(
        &conninfo(
            &current,
            "rt_trust.acme",
            "localhost",
            &format!("sslmode=verify-ca {root}"),
        ),
        TENANT,
    );
    assert_eq!(ok.as_deref(), Ok("acme"));
}

#[test]
fn sni_selects_the_tenant_and_a_mismatch_is_refused() {
    let pki = Pki::new();
    let (c, k) = pki.server("server", false);
    let extra = format!(
        "[identify]\nsni_pattern = \"{{tenant}}.db.example.com\"\n{}",
        tls_section(&c, &k, "")
    );
    let r = Router::start_env(&extra, &[("NO_COLOR", "1")]);
    let root = format!(
        "sslmode=verify-full sslrootcert={}",
        pki.ca_file().display()
    );
    let globex = "globex.db.example.com";
    assert_eq!(
        psql_at(&conninfo(&r, "rt_trust", globex, &root), TENANT).as_deref(),
        Ok("globex")
    );
    assert_eq!(
        psql_at(&conninfo(&r, "rt_trust.globex", globex, &root), TENANT).as_deref(),
        Ok("globex")
    );
    let e = psql_at(&conninfo(&r, "rt_trust.acme", globex, &root), TENANT).unwrap_err();
    assert!(
        e.contains("TLS server name names tenant \"globex\"") && e.contains("\"acme\""),
        "{e}"
    );
    assert!(r.wait_log("sni_tenant=true", Duration::from_secs(5)));
    // A host name outside the pattern: the user name decides.
    assert_eq!(
        psql_at(&conninfo(&r, "rt_trust.acme", "localhost", &root), TENANT).as_deref(),
        Ok("acme")
    );
}

#[test]
fn channel_binding_require_gets_a_clear_error() {
    let pki = Pki::new();
    let (c, k) = pki.server("server", false);
    let r = Router::start_with(&tls_section(&c, &k, ""));
    let url = |cb: &str| {
        conninfo(
            &r,
            "rt_app.acme",
            "localhost",
            &format!("sslmode=require channel_binding={cb}"),
        )
    };
    let e = psql_at(&url("require"), TENANT).unwrap_err();
    assert!(e.contains("channel binding is required"), "{e}");
    assert_eq!(psql_at(&url("prefer"), TENANT).as_deref(), Ok("acme"));
}

/// A TLS client that trusts `ca`, with ALPN `postgresql` or none.
fn client_config(ca: &Path, alpn: bool) -> Arc<rustls::ClientConfig> {
    client_config_versions(ca, alpn, rustls::DEFAULT_VERSIONS)
}

fn client_config_versions(
    ca: &Path,
    alpn: bool,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in tenant_router::tls::read_certs(ca, "CA").expect("CA") {
        roots.add(c).expect("add CA");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    if alpn {
        cfg.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    Arc::new(cfg)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// PostgreSQL 17 `sslnegotiation=direct`: TLS from the first byte.
async fn direct_tls(port: u16, ca: &Path, alpn: bool) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tls_over(tcp, client_config(ca, alpn)).await
}

async fn tls_over(
    tcp: tokio::net::TcpStream,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<Tls> {
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
}

fn ssl_request() -> Vec<u8> {
    let mut req = 8i32.to_be_bytes().to_vec();
    req.extend_from_slice(&80877103i32.to_be_bytes());
    req
}

#[tokio::test]
async fn tls_1_2_and_a_large_result_over_tls() {
    let pki = Pki::new();
    let (c, k) = pki.server("server", false);
    let r = Router::start_with(&tls_section(&c, &k, ""));
    let cfg = client_config_versions(&pki.ca_file(), true, &[&rustls::version::TLS12]);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", r.port))
        .await
        .expect("connect");
    let mut s = tls_over(tcp, cfg).await.expect("TLS 1.2 handshake");
    assert_eq!(
        s.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    start(&mut s, "rt_trust.acme").await.expect("startup");
    let big = query(&mut s, "SELECT repeat('x', 3000000)")
        .await
        .expect("row");
    assert_eq!(big.len(), 3_000_000);
    assert_eq!(query(&mut s, TENANT).await.as_deref(), Ok("acme"));
    assert!(sample(&r, "tenant_router_connections_tls_total{version=\"1.2\"}").await >= 1.0);
}

#[tokio::test]
async fn sslrequest_with_trailing_bytes_is_refused_and_gssenc_gets_n() {
    let pki = Pki::new();
    let (c, k) = pki.server("server", false);
    let r = Router::start_with(&tls_section(&c, &k, ""));
    // GSSENCRequest: 'N', then SSLRequest: 'S' and a handshake (control).
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", r.port))
        .await
        .expect("connect");
    let mut gss = 8i32.to_be_bytes().to_vec();
    gss.extend_from_slice(&80877104i32.to_be_bytes());
    tcp.write_all(&gss).await.expect("send");
    assert_eq!(tcp.read_u8().await.expect("answer"), b'N');
    tcp.write_all(&ssl_request()).await.expect("send");
    assert_eq!(tcp.read_u8().await.expect("answer"), b'S');
    let mut s = tls_over(tcp, client_config(&pki.ca_file(), false))
        .await
        .expect("handshake");
    start(&mut s, "rt_trust.acme").await.expect("startup");
    // Bytes after the SSLRequest, before the handshake: refused
    // (CVE-2021-23222), never read as if they came through TLS.
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", r.port))
        .await
        .expect("connect");
    let mut req = ssl_request();
    req.extend_from_slice(b"Q\0\0\0\x0dSELECT 1\0");
    tcp.write_all(&req).await.expect("send");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert_eq!(rest.first(), Some(&b'S'));
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("data received after SSLRequest"), "{text}");
}

/// Read one message (tag, body); None at EOF.
async fn recv<S: AsyncRead + Unpin>(s: &mut S) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).await.ok()?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.checked_sub(4)?];
    s.read_exact(&mut body).await.ok()?;
    Some((head[0], body))
}

/// Run `sql` (simple query) and return the first column of the first row,
/// or the error message.
async fn query<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, sql: &str) -> Result<String, String> {
    let mut m = BytesMut::new();
    frontend::query(sql, &mut m).expect("query");
    s.write_all(&m).await.map_err(|e| e.to_string())?;
    let mut out = Err("no row".to_string());
    loop {
        match tokio::time::timeout(Duration::from_secs(20), recv(s)).await {
            Ok(Some((b'D', body))) => {
                let len = i32::from_be_bytes([body[2], body[3], body[4], body[5]]) as usize;
                out = Ok(String::from_utf8_lossy(&body[6..6 + len]).into_owned());
            }
            Ok(Some((b'E', body))) => out = Err(String::from_utf8_lossy(&body).into_owned()),
            Ok(Some((b'Z', _))) => return out,
            Ok(Some(_)) => {}
            Ok(None) => return Err("connection closed".into()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

/// StartupMessage for a trust user, up to ReadyForQuery.
async fn start<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, user: &str) -> Result<(), String> {
    let mut m = BytesMut::new();
    frontend::startup_message([("user", user), ("database", DB)], &mut m).expect("startup");
    s.write_all(&m).await.map_err(|e| e.to_string())?;
    loop {
        match tokio::time::timeout(Duration::from_secs(20), recv(s)).await {
            Ok(Some((b'Z', _))) => return Ok(()),
            Ok(Some((b'E', body))) => return Err(String::from_utf8_lossy(&body).into_owned()),
            Ok(Some(_)) => {}
            Ok(None) => return Err("connection closed".into()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

#[tokio::test]
async fn direct_tls_handshake_with_alpn() {
    let pki = Pki::new();
    let (c, k) = pki.server("server", false);
    let r = Router::start_with(&tls_section(&c, &k, "client_tls = \"require\""));
    let mut s = direct_tls(r.port, &pki.ca_file(), true)
        .await
        .expect("direct TLS handshake");
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"postgresql"[..]));
    start(&mut s, "rt_trust.acme").await.expect("startup");
    assert_eq!(query(&mut s, TENANT).await.as_deref(), Ok("acme"));
    // Without ALPN the router refuses after the handshake.
    let refused = match direct_tls(r.port, &pki.ca_file(), false).await {
        Ok(mut s) => start(&mut s, "rt_trust.acme").await.unwrap_err(),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains("ALPN") || refused.contains("closed"),
        "{refused}"
    );
    // A router without TLS closes a direct TLS connection.
    let plain = Router::start();
    let e = match direct_tls(plain.port, &pki.ca_file(), true).await {
        Ok(mut s) => start(&mut s, "rt_trust.acme").await.unwrap_err(),
        Err(e) => e.to_string(),
    };
    assert!(!e.is_empty());
}

#[tokio::test]
async fn certificate_swap_on_sighup_keeps_open_sessions() {
    let old = Pki::new();
    let (c, k) = old.server("server", false);
    let r = Router::start_with(&tls_section(&c, &k, ""));
    let mut open = direct_tls(r.port, &old.ca_file(), true)
        .await
        .expect("TLS under the old certificate");
    start(&mut open, "rt_trust.acme").await.expect("startup");
    // New CA, new certificate, same file names.
    let new = Pki::new();
    let (nc, nk) = new.server("server", false);
    std::fs::copy(nc, &c).expect("swap cert");
    std::fs::copy(nk, &k).expect("swap key");
    r.signal("HUP");
    assert!(r.wait_log("configuration reloaded", Duration::from_secs(10)));
    let verify = |ca: &Path| {
        conninfo(
            &r,
            "rt_trust.acme",
            "localhost",
            &format!("sslmode=verify-full sslrootcert={}", ca.display()),
        )
    };
    assert_eq!(
        psql_at(&verify(&new.ca_file()), TENANT).as_deref(),
        Ok("acme")
    );
    let e = psql_at(&verify(&old.ca_file()), TENANT).unwrap_err();
    assert!(e.contains("certificate verify failed"), "{e}");
    // The session opened before the swap still works.
    assert_eq!(query(&mut open, TENANT).await.as_deref(), Ok("acme"));
}

/// Whether PostgreSQL at `port` answers an SSLRequest with 'S'.
async fn postgres_offers_tls(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut req = 8i32.to_be_bytes().to_vec();
    req.extend_from_slice(&80877103i32.to_be_bytes());
    if s.write_all(&req).await.is_err() {
        return false;
    }
    matches!(s.read_u8().await, Ok(b'S'))
}

/// Turn TLS on in the test cluster with a certificate of `pki` (files kept
/// next to the cluster, so a restart finds them), or off again.
async fn cluster_tls(pki: Option<&Pki>) {
    let c = cluster();
    match pki {
        Some(pki) => {
            let dir = Path::new(&c.key_file)
                .parent()
                .expect("cluster dir")
                .join("upstream-tls");
            std::fs::create_dir_all(&dir).expect("dir");
            let (cert, key) = pki.server("postgres", false);
            let (pc, pk) = (dir.join("server.crt"), dir.join("server.key"));
            std::fs::copy(cert, &pc).expect("cert");
            std::fs::copy(key, &pk).expect("key");
            for args in [
                vec!["postgres:postgres", dir.to_str().expect("utf-8")],
                vec!["postgres:postgres", pc.to_str().expect("utf-8")],
                vec!["postgres:postgres", pk.to_str().expect("utf-8")],
            ] {
                assert!(Command::new("chown")
                    .args(args)
                    .status()
                    .expect("chown")
                    .success());
            }
            assert!(Command::new("chmod")
                .args(["600", pk.to_str().expect("utf-8")])
                .status()
                .expect("chmod")
                .success());
            admin_sql(&format!(
                "ALTER SYSTEM SET ssl_cert_file = '{}'",
                pc.display()
            ));
            admin_sql(&format!(
                "ALTER SYSTEM SET ssl_key_file = '{}'",
                pk.display()
            ));
            admin_sql("ALTER SYSTEM SET ssl = on");
        }
        None => {
            admin_sql("ALTER SYSTEM RESET ssl");
        }
    }
    admin_sql("SELECT pg_reload_conf()");
    let want = pki.is_some();
    assert!(
        eventually(Duration::from_secs(10), || async {
            postgres_offers_tls(c.port).await == want
        })
        .await,
        "PostgreSQL TLS is not {}",
        if want { "on" } else { "off" }
    );
}

#[tokio::test]
async fn upstream_verify_full_against_postgres_with_tls() {
    let pki = Pki::new();
    cluster_tls(Some(&pki)).await;
    let upstream = |ca: &Path| {
        format!(
            "[tls]\nupstream_tls = \"verify-full\"\nupstream_ca_file = \"{}\"\n",
            ca.display()
        )
    };
    admin_sql(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rt_router_tcp') THEN \
         CREATE ROLE rt_router_tcp LOGIN PASSWORD '{PASSWORD}' IN ROLE tenant_router; END IF; END $$"
    ));
    // The catalog over TCP, so that it uses upstream_tls too.
    let r = Router::start_catalog(
        &upstream(&pki.ca_file()),
        &CatalogSetup {
            user: "rt_router_tcp",
            tcp_host: Some("localhost"),
            ..CatalogSetup::default()
        },
    );
    let result = async {
        let c = connect(&r.url("rt_trust.acme"))
            .await
            .map_err(|e| format!("{e:?}"))?;
        let tenant: Option<String> = c
            .query_one(TENANT, &[])
            .await
            .map_err(|e| format!("{e:?}"))?
            .get(0);
        // Tenant sessions cannot read pg_stat_ssl: ask as postgres.
        let pid = backend_pid(&c).await;
        let ssl = admin_sql(&format!("SELECT ssl FROM pg_stat_ssl WHERE pid = {pid}"));
        let catalog_ssl = admin_sql(&format!(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'rt_catalog_{}'",
            r.tag
        ));
        Ok::<(bool, bool, Option<String>), String>((
            ssl.trim() == "t",
            catalog_ssl.trim() == "t",
            tenant,
        ))
    }
    .await;
    // TLS on both sides with SCRAM: libpq's default channel_binding=prefer
    // sends the "y" flag, which PostgreSQL on a TLS link refuses (docs/src/authentication/tls.md,
    // known limit); channel_binding=disable works.
    let (cert, key) = pki.server("router", false);
    let both = Router::start_with(&format!(
        "{}upstream_tls = \"verify-full\"\nupstream_ca_file = \"{}\"\n",
        tls_section(&cert, &key, ""),
        pki.ca_file().display()
    ));
    let scram = |cb: &str| {
        conninfo(
            &both,
            "rt_app.acme",
            "localhost",
            &format!("sslmode=require channel_binding={cb}"),
        )
    };
    let prefer = psql_at(&scram("prefer"), TENANT);
    let disable = psql_at(&scram("disable"), TENANT);
    // When the router checks the client itself (auth.login = "verify") it
    // logs into PostgreSQL on its own ("n" flag): libpq's defaults work,
    // and channel binding to the router's certificate too.
    let verified = Router::start_with(&format!(
        "{}upstream_tls = \"verify-full\"\nupstream_ca_file = \"{}\"\n\n[auth]\nlogin = \"verify\"\n",
        tls_section(&cert, &key, ""),
        pki.ca_file().display()
    ));
    let verified_scram = |cb: &str| {
        conninfo(
            &verified,
            "rt_app.acme",
            "localhost",
            &format!("sslmode=require channel_binding={cb}"),
        )
    };
    let verified_prefer = psql_at(&verified_scram("prefer"), TENANT);
    let verified_require = psql_at(&verified_scram("require"), TENANT);
    // Control: a CA that did not sign PostgreSQL's certificate.
    let other = Pki::new();
    let wrong = Router::start_with(&upstream(&other.ca_file()));
    let refused = connect(&wrong.url("rt_trust.acme")).await.err();
    cluster_tls(None).await;
    // PostgreSQL without TLS: prefer goes on in cleartext, require refuses.
    let prefers = Router::start_with("[tls]\nupstream_tls = \"prefer\"\n");
    let c = connect(&prefers.url("rt_trust.acme"))
        .await
        .expect("prefer");
    assert_eq!(
        c.query_one(TENANT, &[])
            .await
            .expect("query")
            .get::<_, Option<String>>(0)
            .as_deref(),
        Some("acme")
    );
    let require = Router::start_with("[tls]\nupstream_tls = \"require\"\n");
    let Err(e) = connect(&require.url("rt_trust.acme")).await else {
        panic!("upstream_tls = require connected to a PostgreSQL without TLS");
    };
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("does not accept TLS"), "{e:?}");
    assert_eq!(result, Ok((true, true, Some("acme".to_string()))));
    assert_eq!(disable.as_deref(), Ok("acme"));
    let e = prefer.unwrap_err();
    assert!(e.contains("channel binding negotiation error"), "{e}");
    assert_eq!(verified_prefer.as_deref(), Ok("acme"));
    assert_eq!(verified_require.as_deref(), Ok("acme"));
    let e = refused.expect("an unknown CA is refused");
    assert_eq!(sqlstate(&e), "08006", "{e:?}");
    let msg = e
        .as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default();
    assert!(msg.contains("TLS"), "{msg}");
}
