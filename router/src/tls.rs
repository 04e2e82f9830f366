//! TLS with rustls (ring provider, TLS 1.2 and 1.3 only): the `[tls]`
//! table (`TlsConfig`), and what `TlsSettings::load` builds from it: the
//! server configuration that terminates client TLS and the client
//! configuration for PostgreSQL. The files are read at start and on each
//! SIGHUP reload; sessions keep the configuration they started with.

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

/// Whether, and how strictly, the router's connections to PostgreSQL
/// (sessions and the catalog) use TLS, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamTls {
    #[default]
    Disable,
    /// TLS when PostgreSQL offers it, cleartext otherwise; no verification.
    Prefer,
    /// TLS or nothing; the certificate is not verified.
    Require,
    /// TLS, the certificate chain verified against `upstream_ca_file`.
    VerifyCa,
    /// As verify-ca, and the certificate must name the upstream host.
    VerifyFull,
}

/// The `[tls]` section as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain the router presents to clients (leaf first).
    pub cert_file: String,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// `disable`, `allow` or `require`; default `allow` when `cert_file`
    /// is set, else `disable`.
    pub client_tls: Option<ClientTls>,
    /// TLS to PostgreSQL: `disable` (default), `prefer`, `require`,
    /// `verify-ca`, `verify-full`; for the catalog connection too.
    pub upstream_tls: UpstreamTls,
    /// PEM CA certificates that sign PostgreSQL's certificate (needed by
    /// verify-ca and verify-full).
    pub upstream_ca_file: String,
    /// Optional client certificate chain and key presented to PostgreSQL.
    pub upstream_cert_file: String,
    pub upstream_key_file: String,
}

/// TLS in effect: the modes, and the configurations built from the files
/// of a `TlsConfig` by `load`.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    client_tls: ClientTls,
    /// TLS to PostgreSQL (`client` is None when `Disable`).
    pub upstream_tls: UpstreamTls,
    /// The server configuration for clients; None: client TLS is off.
    pub server: Option<Arc<rustls::ServerConfig>>,
    /// The client configuration for PostgreSQL.
    pub client: Option<Arc<rustls::ClientConfig>>,
    /// `tls-server-end-point` channel binding data of the leaf certificate
    /// (None: no client TLS, or a signature algorithm without a hash).
    pub end_point: Option<Vec<u8>>,
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

impl TlsConfig {
    /// The effective client TLS mode.
    pub fn client_mode(&self) -> ClientTls {
        self.client_tls.unwrap_or(if self.cert_file.is_empty() {
            ClientTls::Disable
        } else {
            ClientTls::Allow
        })
    }
}

impl TlsSettings {
    /// Check the settings and read the certificate files.
    pub fn load(cfg: &TlsConfig) -> Result<TlsSettings, TlsError> {
        let mode = cfg.client_mode();
        if cfg.cert_file.is_empty() != cfg.key_file.is_empty() {
            return Err(TlsError::Invalid(
                "set both tls.cert_file and tls.key_file, or neither".into(),
            ));
        }
        if mode != ClientTls::Disable && cfg.cert_file.is_empty() {
            return Err(TlsError::Invalid(format!(
                "tls.client_tls = \"{}\" needs tls.cert_file and tls.key_file",
                if mode == ClientTls::Allow {
                    "allow"
                } else {
                    "require"
                }
            )));
        }
        let mut end_point = None;
        let server = if mode == ClientTls::Disable {
            None
        } else {
            let chain = read_certs(Path::new(&cfg.cert_file), "certificate file")?;
            end_point = chain
                .first()
                .and_then(|leaf| crate::auth::scram::end_point(leaf));
            Some(server_config(
                Path::new(&cfg.cert_file),
                Path::new(&cfg.key_file),
            )?)
        };
        Ok(TlsSettings {
            client_tls: mode,
            upstream_tls: cfg.upstream_tls,
            server,
            client: upstream_client_config(cfg)?,
            end_point,
        })
    }

    /// The effective client TLS mode.
    pub fn client_mode(&self) -> ClientTls {
        self.client_tls
    }
}

/// The client configuration for a PostgreSQL server from the `upstream_*`
/// fields of `cfg` (None: `disable`); for a named upstream's own TLS.
pub fn upstream_client(cfg: &TlsConfig) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    upstream_client_config(cfg)
}

fn upstream_client_config(cfg: &TlsConfig) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    let mode = cfg.upstream_tls;
    if cfg.upstream_cert_file.is_empty() != cfg.upstream_key_file.is_empty() {
        return Err(TlsError::Invalid(
            "set both tls.upstream_cert_file and tls.upstream_key_file, or neither".into(),
        ));
    }
    let verify = matches!(mode, UpstreamTls::VerifyCa | UpstreamTls::VerifyFull);
    if verify && cfg.upstream_ca_file.is_empty() {
        return Err(TlsError::Invalid(
            "tls.upstream_tls = verify-ca or verify-full needs tls.upstream_ca_file".into(),
        ));
    }
    if mode == UpstreamTls::Disable {
        return Ok(None);
    }
    let provider = provider();
    let inner = if verify {
        let mut roots = rustls::RootCertStore::empty();
        for c in read_certs(Path::new(&cfg.upstream_ca_file), "upstream CA file")? {
            roots
                .add(c)
                .map_err(|e| TlsError::Invalid(format!("upstream_ca_file: {e}")))?;
        }
        Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Invalid(format!("upstream_ca_file: {e}")))?,
        )
    } else {
        None
    };
    let verifier = Arc::new(Verifier {
        inner,
        check_name: mode == UpstreamTls::VerifyFull,
        provider: provider.clone(),
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let client = if cfg.upstream_cert_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = read_certs(
            Path::new(&cfg.upstream_cert_file),
            "upstream certificate file",
        )?;
        let key = read_key(Path::new(&cfg.upstream_key_file))?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| TlsError::Invalid(format!("upstream_cert_file: {e}")))?
    };
    Ok(Some(Arc::new(client)))
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

/// PostgreSQL's certificate check, by `upstream_tls`: none (prefer,
/// require), the chain (verify-ca), the chain and the host name
/// (verify-full). Handshake signatures are always checked.
#[derive(Debug)]
struct Verifier {
    inner: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        let Some(inner) = &self.inner else {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// "1.2" / "1.3" for logs and metrics.
pub fn version_label(v: Option<rustls::ProtocolVersion>) -> &'static str {
    match v {
        Some(rustls::ProtocolVersion::TLSv1_3) => "1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "other",
    }
}

/// The host part of `host:port` (brackets of an IPv6 address removed).
pub fn upstream_host(upstream: &str) -> &str {
    let host = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_tls_defaults_and_needs_files() {
        let mut t = TlsConfig::default();
        assert_eq!(t.client_mode(), ClientTls::Disable);
        let loaded = TlsSettings::load(&t).unwrap();
        assert!(loaded.server.is_none());
        assert_eq!(loaded.client_mode(), ClientTls::Disable);
        t.client_tls = Some(ClientTls::Require);
        let e = TlsSettings::load(&t).unwrap_err().to_string();
        assert!(e.contains("needs tls.cert_file"), "{e}");
        t.cert_file = "/nonexistent.crt".into();
        assert_eq!(t.client_mode(), ClientTls::Require);
        let e = TlsSettings::load(&t).unwrap_err().to_string();
        assert!(e.contains("set both"), "{e}");
        t.key_file = "/nonexistent.key".into();
        let e = TlsSettings::load(&t).unwrap_err().to_string();
        assert!(
            e.contains("cannot read certificate file /nonexistent.crt"),
            "{e}"
        );
        t.client_tls = None;
        assert_eq!(t.client_mode(), ClientTls::Allow);
    }

    #[test]
    fn upstream_settings_are_checked() {
        let mut t = TlsConfig {
            upstream_tls: UpstreamTls::VerifyFull,
            ..TlsConfig::default()
        };
        let e = TlsSettings::load(&t).unwrap_err().to_string();
        assert!(e.contains("needs tls.upstream_ca_file"), "{e}");
        t.upstream_tls = UpstreamTls::Require;
        assert!(TlsSettings::load(&t).unwrap().client.is_some());
        t.upstream_cert_file = "/x.crt".into();
        let e = TlsSettings::load(&t).unwrap_err().to_string();
        assert!(e.contains("upstream_key_file"), "{e}");
        t.upstream_cert_file.clear();
        t.upstream_tls = UpstreamTls::Disable;
        assert!(TlsSettings::load(&t).unwrap().client.is_none());
        assert_eq!(upstream_host("db.internal:5432"), "db.internal");
        assert_eq!(upstream_host("[::1]:5432"), "::1");
    }
}
