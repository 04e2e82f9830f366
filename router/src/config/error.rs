//! Why a configuration cannot be used: the file, the document, a check
//! that serde cannot make, or a file a setting names (key, certificates,
//! credentials, JWT keys).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error(transparent)]
    SigningKey(#[from] crate::signing_key::SigningKeyError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Credentials(#[from] crate::auth::credentials::CredentialsError),
    #[error("auth.jwt: {0}")]
    Jwt(#[from] crate::jwt::JwtConfigError),
}
