//! TLS with rustls (ring provider, TLS 1.2 and 1.3 only): the `[tls]`
//! settings, and the server configuration that terminates client TLS.
//! The certificate chain and key are read by `Config::load`, so a SIGHUP
//! reload re-reads them; sessions keep the configuration they started with.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;

/// ALPN protocol name of PostgreSQL (required for direct TLS).
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Whether clients may, or must, use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTls {
    /// SSLRequest gets 'N'; a direct TLS handshake is refused.
    Disable,
    /// TLS when the client asks for it, cleartext otherwise.
    Allow,
    /// A cleartext StartupMessage is refused with FATAL 28000.
    Require,
}

/// The `[tls]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM certificate chain the router presents to clients (leaf first).
    pub cert_file: String,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// `disable`, `allow` or `require`; default `allow` when `cert_file`
    /// is set, else `disable`.
    pub client_tls: Option<ClientTls>,
    /// The server configuration built from the files by `load`.
    #[serde(skip)]
    pub server: Option<Arc<rustls::ServerConfig>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    File {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("tls: {0}")]
    Invalid(String),
}

impl TlsSettings {
    /// The effective client TLS mode.
    pub fn client_mode(&self) -> ClientTls {
        self.client_tls.unwrap_or(if self.cert_file.is_empty() {
            ClientTls::Disable
        } else {
            ClientTls::Allow
        })
    }

    /// Check the settings and read the certificate files.
    pub fn load(&mut self) -> Result<(), TlsError> {
        let mode = self.client_mode();
        if self.cert_file.is_empty() != self.key_file.is_empty() {
            return Err(TlsError::Invalid(
                "set both tls.cert_file and tls.key_file, or neither".into(),
            ));
        }
        if mode != ClientTls::Disable && self.cert_file.is_empty() {
            return Err(TlsError::Invalid(format!(
                "tls.client_tls = \"{}\" needs tls.cert_file and tls.key_file",
                if mode == ClientTls::Allow {
                    "allow"
                } else {
                    "require"
                }
            )));
        }
        self.server = if mode == ClientTls::Disable {
            None
        } else {
            Some(server_config(
                Path::new(&self.cert_file),
                Path::new(&self.key_file),
            )?)
        };
        Ok(())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration: TLS 1.2 and 1.3, ALPN `postgresql`, no client
/// certificates.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certs(cert, "certificate file")?;
    let key = read_key(key)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Invalid(format!("{}: {e}", cert.display())))?;
    cfg.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Arc::new(cfg))
}

pub fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    let fail = |reason: String| TlsError::File {
        what,
        path: path.to_owned(),
        reason,
    };
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(certs)
}

pub fn read_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        what: "key file",
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// "1.2" / "1.3" for logs and metrics.
pub fn version_label(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tls_defaults_and_needs_files() {
        let mut t = TlsSettings::default();
        assert_eq!(t.client_mode(), ClientTls::Disable);
        t.load().unwrap();
        assert!(t.server.is_none());
        t.client_tls = Some(ClientTls::Require);
        let e = t.load().unwrap_err().to_string();
        assert!(e.contains("needs tls.cert_file"), "{e}");
        t.cert_file = "/nonexistent.crt".into();
        assert_eq!(t.client_mode(), ClientTls::Require);
        let e = t.load().unwrap_err().to_string();
        assert!(e.contains("set both"), "{e}");
        t.key_file = "/nonexistent.key".into();
        let e = t.load().unwrap_err().to_string();
        assert!(
            e.contains("cannot read certificate file /nonexistent.crt"),
            "{e}"
        );
        t.client_tls = None;
        assert_eq!(t.client_mode(), ClientTls::Allow);
    }
}
