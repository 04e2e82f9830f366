//! Why a session ended early, and what the client is told: the session's
//! error. Each layer below the session has its own error type (the client
//! side's `FrontendError`, a server connection's `BackendError`,
//! authentication's `LoginError`, the pool's `PoolError`, ...); they are
//! turned into `SessionError` here, at the session boundary, each into
//! the variant of the same words and SQLSTATE. No layer imports this file.

pub use crate::auth::AuthError;
use crate::auth::LoginError;
use crate::backend::BackendError;
use crate::catalog::CatalogError;
use crate::codec::ReadError;
use crate::frontend::FrontendError;
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
    /// A database-isolated tenant whose catalog predates sealed contexts
    /// (pg_tenant 0.8.0).
    #[error("tenant \"{0}\" uses database isolation, which needs pg_tenant 0.8.0 or later in the catalog database: run ALTER EXTENSION pg_tenant UPDATE there")]
    SealedContextUnsupported(String),
    /// PostgreSQL has no database of that name for a database-isolated
    /// tenant (3D000 at its login).
    #[error("database \"{database}\" of tenant \"{tenant}\" does not exist: create it with `tenant-router tenants provision {tenant}`")]
    MissingDatabase { tenant: String, database: String },
    /// The catalog places the tenant on an upstream this router has no
    /// `[upstreams.<name>]` for.
    #[error("tenant \"{tenant}\" lives on upstream \"{upstream}\", which this router does not know: add [upstreams.{upstream}] to its configuration (and reload), or place the tenant on a configured upstream (tenant.alter_tenant('{tenant}', upstream => ...))")]
    UnknownUpstream { tenant: String, upstream: String },
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
    /// The tenant stayed paused (admin API) longer than `pause_timeout_ms`.
    #[error(transparent)]
    Paused(#[from] crate::pause::PauseError),
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

impl From<FrontendError> for SessionError {
    fn from(e: FrontendError) -> Self {
        match e {
            FrontendError::Frame(f) => SessionError::Frame(f),
            FrontendError::TlsRequired => SessionError::TlsRequired,
            FrontendError::Tls(t) => SessionError::Tls(t),
            FrontendError::DirectTlsRefused => SessionError::DirectTlsRefused,
            FrontendError::ClientGone => SessionError::ClientGone,
            FrontendError::Io(i) => SessionError::Io(i),
        }
    }
}

impl From<BackendError> for SessionError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Upstream { addr, reason } => SessionError::Upstream { addr, reason },
            BackendError::Postgres(frame) => SessionError::Postgres(frame),
            BackendError::Injection(m) => SessionError::Injection(m),
            BackendError::ContextRefused(m) => SessionError::ContextRefused(m),
            BackendError::Frame(f) => SessionError::Frame(f),
            BackendError::ServerGone => SessionError::ServerGone,
            BackendError::Io(i) => SessionError::Io(i),
        }
    }
}

impl From<LoginError> for SessionError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Auth(a) => SessionError::Auth(a),
            LoginError::Client(f) => f.into(),
            LoginError::Server(b) => b.into(),
            LoginError::Catalog(c) => SessionError::Catalog(c),
            LoginError::Identify(i) => SessionError::Identify(i),
            LoginError::DisabledTenant(t) => SessionError::DisabledTenant(t),
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
            SessionError::SealedContextUnsupported(_) => "55000",
            SessionError::MissingDatabase { .. } => "3D000",
            SessionError::UnknownUpstream { .. } => "08001",
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
            SessionError::Paused(e) => e.sqlstate(),
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

/// The log sanitizer, where it always was (it lives in `logtext`).
pub use crate::logtext::Escaped;

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer's error says what the session's says, and the session's
    /// made from it has the same words and SQLSTATE as before.
    #[test]
    fn layer_errors_keep_their_words_and_sqlstate() {
        let io = || std::io::Error::other("boom");
        let frame = || FrameError::UnsupportedProtocol(2, 0);
        let cases: Vec<(String, SessionError, SessionError)> = vec![
            (
                FrontendError::TlsRequired.to_string(),
                FrontendError::TlsRequired.into(),
                SessionError::TlsRequired,
            ),
            (
                FrontendError::Tls("x".into()).to_string(),
                FrontendError::Tls("x".into()).into(),
                SessionError::Tls("x".into()),
            ),
            (
                FrontendError::DirectTlsRefused.to_string(),
                FrontendError::DirectTlsRefused.into(),
                SessionError::DirectTlsRefused,
            ),
            (
                FrontendError::ClientGone.to_string(),
                LoginError::from(FrontendError::ClientGone).into(),
                SessionError::ClientGone,
            ),
            (
                FrontendError::Frame(frame()).to_string(),
                FrontendError::Frame(frame()).into(),
                SessionError::Frame(frame()),
            ),
            (
                FrontendError::Io(io()).to_string(),
                FrontendError::Io(io()).into(),
                SessionError::Io(io()),
            ),
            (
                BackendError::ServerGone.to_string(),
                BackendError::ServerGone.into(),
                SessionError::ServerGone,
            ),
            (
                BackendError::Injection("x".into()).to_string(),
                LoginError::from(BackendError::Injection("x".into())).into(),
                SessionError::Injection("x".into()),
            ),
            (
                BackendError::ContextRefused("no".into()).to_string(),
                BackendError::ContextRefused("no".into()).into(),
                SessionError::ContextRefused("no".into()),
            ),
            (
                BackendError::Upstream {
                    addr: "a".into(),
                    reason: "r".into(),
                }
                .to_string(),
                BackendError::Upstream {
                    addr: "a".into(),
                    reason: "r".into(),
                }
                .into(),
                SessionError::Upstream {
                    addr: "a".into(),
                    reason: "r".into(),
                },
            ),
            (
                LoginError::DisabledTenant("acme".into()).to_string(),
                LoginError::DisabledTenant("acme".into()).into(),
                SessionError::DisabledTenant("acme".into()),
            ),
            (
                LoginError::from(AuthError::Malformed("m")).to_string(),
                LoginError::from(AuthError::Malformed("m")).into(),
                SessionError::Auth(AuthError::Malformed("m")),
            ),
        ];
        for (layer, got, want) in cases {
            assert_eq!(layer, want.to_string());
            assert_eq!(got.to_string(), want.to_string());
            assert_eq!(got.sqlstate(), want.sqlstate(), "{want}");
            assert_eq!(got.refusal(), want.refusal(), "{want}");
        }
    }
}
