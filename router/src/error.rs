//! Why a session ended early, and what the client is told (every error
//! type of the handshake, so that no module needs another's).

pub use crate::auth::AuthError;
use crate::catalog::CatalogError;
use crate::codec::ReadError;
use crate::identify::IdentifyError;
use crate::limits::LimitError;
use crate::metrics::Refusal;
use crate::protocol::{self, FrameError};
use crate::relay::RelayError;
use bytes::BytesMut;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Identify(#[from] IdentifyError),
    #[error("tenant \"{0}\" does not exist")]
    UnknownTenant(String),
    #[error("tenant \"{0}\" is disabled")]
    DisabledTenant(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("too many client connections: tenant-router's max_client_connections is {0}")]
    TooManyClients(usize),
    #[error("too many clients are authenticating: tenant-router's auth.max_unauthenticated_backends is {0}")]
    TooManyUnauthenticated(usize),
    /// One tenant's (or, for `who` = "bypass users", the bypass users')
    /// share of the backends held by clients still authenticating is full.
    #[error("too many clients are authenticating for {who}: tenant-router's auth.max_unauthenticated_per_tenant is {limit}")]
    TooManyUnauthenticatedFor { who: String, limit: usize },
    #[error("cannot connect to PostgreSQL at {addr}: {reason}")]
    Upstream { addr: String, reason: String },
    /// Postgres refused the backend (too many clients, no such database,
    /// shutting down...): its ErrorResponse goes to the client unchanged.
    #[error("PostgreSQL refused the connection: {}", protocol::error_summary(.0.clone()))]
    Postgres(BytesMut),
    #[error("startup and authentication did not finish within {0} ms")]
    StartupTimeout(u64),
    #[error("could not set the tenant context: {0}")]
    Injection(String),
    /// pg_tenant refused the context for this login (42501 from
    /// set_context: not among the tenant's login_roles, superuser...).
    #[error("{0}")]
    ContextRefused(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("tenant-router accepts only TLS connections (tls.client_tls = require): connect with sslmode=require or stronger")]
    TlsRequired,
    #[error("TLS: {0}")]
    Tls(String),
    /// A direct TLS handshake while client TLS is disabled: the client
    /// speaks TLS, so it cannot read a FATAL; the connection is closed.
    #[error("direct TLS connection refused: tls.client_tls = disable")]
    DirectTlsRefused,
    #[error(transparent)]
    Pool(#[from] crate::pool::PoolError),
    #[error("this client SET {0}: a transaction-pooled client may SET at most 256 settings of 64 KiB in all (each is carried to every backend that serves it); use fewer, or SET LOCAL")]
    TooManySettings(String),
    #[error("client closed the connection")]
    ClientGone,
    #[error("PostgreSQL closed the connection")]
    ServerGone,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<ReadError> for SessionError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Frame(f) => SessionError::Frame(f),
            ReadError::Io(i) => SessionError::Io(i),
        }
    }
}

impl From<RelayError> for SessionError {
    fn from(e: RelayError) -> Self {
        match e {
            RelayError::Frame(f) => SessionError::Frame(f),
            RelayError::Io(i) => SessionError::Io(i),
        }
    }
}

impl SessionError {
    /// The SQLSTATE of the FATAL the client gets, or None when there is no
    /// one left to tell (or Postgres already told it).
    pub fn sqlstate(&self) -> Option<&'static str> {
        Some(match self {
            SessionError::Frame(FrameError::UnsupportedProtocol(..)) => "0A000",
            SessionError::Frame(_) => "08P01",
            SessionError::Identify(e) => e.sqlstate(),
            SessionError::UnknownTenant(_) | SessionError::DisabledTenant(_) => "28000",
            SessionError::Catalog(_) => "57P03",
            SessionError::Limit(e) => e.sqlstate(),
            SessionError::TooManyClients(_)
            | SessionError::TooManyUnauthenticated(_)
            | SessionError::TooManyUnauthenticatedFor { .. } => "53300",
            SessionError::Upstream { .. } => "08006",
            SessionError::StartupTimeout(_) => "08006",
            SessionError::Injection(_) => "08006",
            SessionError::ContextRefused(_) => "28000",
            SessionError::TlsRequired => "28000",
            SessionError::Tls(_) => "08P01",
            SessionError::Pool(e) => e.sqlstate(),
            SessionError::TooManySettings { .. } => "54000",
            SessionError::Auth(e) => e.sqlstate()?,
            SessionError::Postgres(_)
            | SessionError::DirectTlsRefused
            | SessionError::ClientGone
            | SessionError::ServerGone
            | SessionError::Io(_) => return None,
        })
    }

    /// How a refused connection of a known tenant is counted (None: the
    /// client went away, nobody refused it).
    pub fn refusal(&self) -> Option<Refusal> {
        Some(match self {
            SessionError::Limit(_) => Refusal::MaxConnections,
            SessionError::DisabledTenant(_) => Refusal::Disabled,
            SessionError::Auth(AuthError::Failed {
                reason: crate::auth::Failure::Disabled,
                ..
            }) => Refusal::Disabled,
            SessionError::Auth(_) | SessionError::ContextRefused(_) => Refusal::Auth,
            SessionError::ClientGone | SessionError::Io(_) => return None,
            _ => Refusal::Error,
        })
    }
}

/// A value's text for a log line, quoted, with quotes, backslashes and
/// control characters escaped (`\"`, `\n`, `\u{1b}`): error messages
/// carry names a client chose (user names, a JWT header's `alg` or `kid`,
/// PostgreSQL's words about them), and a raw newline, terminal escape or
/// `key="value"` text would forge or garble log lines.
pub struct Escaped<'a, T: std::fmt::Display>(pub &'a T);

impl<T: std::fmt::Display> std::fmt::Display for Escaped<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0.to_string())
    }
}

#[cfg(test)]
mod escaped_tests {
    use super::Escaped;

    #[test]
    fn log_text_is_quoted_and_escaped() {
        let forged = "user\"\n2026-11-25T00:00:00Z INFO forged reason=\"ok\"\u{1b}[2J";
        assert_eq!(
            Escaped(&forged).to_string(),
            "\"user\\\"\\n2026-11-25T00:00:00Z INFO forged reason=\\\"ok\\\"\\u{1b}[2J\""
        );
        assert_eq!(Escaped(&"plain é").to_string(), "\"plain é\"");
    }
}
