//! The router's context signing key (`context_signing_key_file`): an
//! Ed25519 private key, PKCS#8 PEM, read at start and on SIGHUP. It signs
//! the context tokens; PostgreSQL holds only its public key.

use std::path::{Path, PathBuf};

pub use pg_tenant_token::SigningKey;

#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("cannot read context signing key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("context signing key file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: pg_tenant_token::KeyError,
    },
}

/// Read and parse the key file.
pub fn load(path: &Path) -> Result<SigningKey, SigningKeyError> {
    let pem = std::fs::read_to_string(path).map_err(|source| SigningKeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    pg_tenant_token::signing_key_from_pem(&pem).map_err(|source| SigningKeyError::Parse {
        path: path.to_owned(),
        source,
    })
}
