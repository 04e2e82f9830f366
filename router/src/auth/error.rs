//! What authenticating fails with: the router's refusals (`AuthError`,
//! told to the client in its own words) and `LoginError`, a refusal or
//! a failure of the client side, the server side, the catalog or the
//! identification underneath it. The session turns a `LoginError` into
//! the `SessionError` of the same words and SQLSTATE.

use super::failure::Failure;
use super::scram::ScramError;
use crate::backend::BackendError;
use crate::catalog::CatalogError;
use crate::frontend::FrontendError;
use crate::identify::IdentifyError;
use crate::jwt::JwtError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Postgres refused (wrong password, no such role...): its own
    /// ErrorResponse was already forwarded to the client.
    #[error("PostgreSQL refused authentication: {0}")]
    Refused(String),
    #[error("authentication method {0} is not supported through tenant-router")]
    Unsupported(&'static str),
    #[error("expected a password message from the client, got '{0}'")]
    UnexpectedClientMessage(char),
    #[error("unexpected message '{0}' from PostgreSQL during authentication")]
    UnexpectedServerMessage(char),
    /// The router's own check failed: the same words whatever the reason,
    /// so that a client learns nothing about tenants or roles.
    #[error("password authentication failed for user \"{user}\"")]
    Failed { user: String, reason: Failure },
    /// A malformed SCRAM message from the client.
    #[error("{0}")]
    Scram(ScramError),
    #[error("malformed authentication message: {0}")]
    Malformed(&'static str),
    #[error("the password of login role \"{0}\" is stored as md5, which tenant-router can check only with a cleartext password; it asks for one only over TLS or from a loopback address (auth.allow_cleartext_without_tls)")]
    CleartextRefused(String),
    #[error("no credentials for login role \"{0}\" (auth.credentials_file)")]
    NoCredentials(String),
    /// A token login's JWT was refused (never echoes the token).
    #[error("JWT authentication failed: {0}")]
    Jwt(JwtError),
    #[error("PostgreSQL asks this login for a cleartext password, which tenant-router passes on only over TLS or from a loopback address (auth.allow_cleartext_without_tls)")]
    CleartextRelayRefused,
    #[error("a JWT travels as a cleartext password: tenant-router accepts one only over TLS or from a loopback address (auth.allow_cleartext_without_tls)")]
    TokenNeedsProtection,
    /// Logging into PostgreSQL failed on the router's side.
    #[error("tenant-router cannot log into PostgreSQL as \"{role}\": {reason}")]
    Backend { role: String, reason: String },
}

impl AuthError {
    pub fn sqlstate(&self) -> Option<&'static str> {
        match self {
            AuthError::Refused(_) => None,
            AuthError::Failed { .. } => Some("28P01"),
            AuthError::Scram(e) => Some(e.sqlstate()),
            AuthError::Jwt(e) => Some(e.sqlstate()),
            AuthError::TokenNeedsProtection | AuthError::CleartextRelayRefused => Some("28000"),
            AuthError::Unsupported(_)
            | AuthError::CleartextRefused(_)
            | AuthError::NoCredentials(_)
            | AuthError::Backend { .. } => Some("28000"),
            AuthError::UnexpectedClientMessage(_)
            | AuthError::UnexpectedServerMessage(_)
            | AuthError::Malformed(_) => Some("08P01"),
        }
    }
}

/// Why authenticating did not succeed: a refusal, or a failure of what it
/// ran on.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Client(#[from] FrontendError),
    #[error(transparent)]
    Server(#[from] BackendError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Identify(#[from] IdentifyError),
    #[error("tenant \"{0}\" is disabled")]
    DisabledTenant(String),
}
