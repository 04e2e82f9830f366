//! Raw wire helpers for authentication tests: a StartupMessage, one
//! server message at a time, the fields of an ErrorResponse.

use super::DB;
use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn read_msg<S: AsyncRead + Unpin>(s: &mut S) -> (u8, Vec<u8>) {
    let read = async {
        let tag = s.read_u8().await?;
        let len = s.read_u32().await? as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        s.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>((tag, body))
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("a message within 20 s")
        .expect("a message")
}

pub fn startup(user: &str) -> BytesMut {
    let mut m = BytesMut::new();
    frontend::startup_message([("user", user), ("database", DB)], &mut m).unwrap();
    m
}

pub fn auth_code(body: &[u8]) -> i32 {
    i32::from_be_bytes([body[0], body[1], body[2], body[3]])
}

pub fn error_fields(body: &[u8]) -> (String, String) {
    let (mut code, mut msg) = (String::new(), String::new());
    for f in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let v = String::from_utf8_lossy(&f[1..]).into_owned();
        match f[0] {
            b'C' => code = v,
            b'M' => msg = v,
            _ => {}
        }
    }
    (code, msg)
}

/// A fresh private directory.
pub fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "tenant-auth-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Start a SCRAM exchange as `user` and return (mechanisms, server-first).
pub async fn scram_first<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    user: &str,
    client: &ScramSha256,
    mechanism: &str,
) -> (String, Vec<u8>) {
    s.write_all(&startup(user)).await.unwrap();
    let (tag, body) = read_msg(s).await;
    assert_eq!((tag, auth_code(&body)), (b'R', 10), "AuthenticationSASL");
    let mechs = String::from_utf8_lossy(&body[4..]).replace('\0', " ");
    let mut m = BytesMut::new();
    frontend::sasl_initial_response(mechanism, client.message(), &mut m).unwrap();
    s.write_all(&m).await.unwrap();
    let (tag, body) = read_msg(s).await;
    assert_eq!((tag, auth_code(&body)), (b'R', 11), "SASLContinue");
    (mechs.trim().to_owned(), body[4..].to_vec())
}

/// The salt and iterations of a SCRAM exchange as `user`.
pub async fn salt_and_iterations(port: u16, user: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let c = ScramSha256::new(b"x", ChannelBinding::unsupported());
    let (mechs, first) = scram_first(&mut s, user, &c, "SCRAM-SHA-256").await;
    assert_eq!(mechs, "SCRAM-SHA-256", "{user}");
    let first = String::from_utf8(first).unwrap();
    first.split_once(",s=").unwrap().1.to_owned()
}

/// The first authentication request a client gets as `user`.
pub async fn first_request(port: u16, user: &str) -> (u8, i32) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(&startup(user)).await.unwrap();
    let (tag, body) = read_msg(&mut s).await;
    (tag, if tag == b'R' { auth_code(&body) } else { -1 })
}

/// A self-signed CA and a leaf for localhost: (cert file, key file, CA
/// DER, leaf DER).
pub fn certificate() -> (PathBuf, PathBuf, Vec<u8>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let dir = temp_dir("tls");
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("auth CA {}", dir.display()),
    );
    let ca = p.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let (c, k) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&c, leaf.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, ca.der().to_vec(), leaf.der().to_vec())
}

pub fn psql_as(conninfo: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .args(["-X", "-tA", "-c", sql])
        .arg(conninfo)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// This host's first non-loopback IPv4 address, if it has one.
pub fn non_loopback_ipv4() -> Option<String> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_owned)
}

/// Backends of `role` PostgreSQL shows (authenticated sessions).
pub fn backends(role: &str) -> i64 {
    super::admin_sql(&format!(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}'"
    ))
    .trim()
    .parse()
    .unwrap()
}
