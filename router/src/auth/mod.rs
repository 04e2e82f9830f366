//! Authenticating. Two ways, chosen per connection:
//!
//! - **relayed** (`auth.login = "relay"`, tenants without a secret):
//!   PostgreSQL's own exchange is relayed between client and server, byte
//!   for byte, until AuthenticationOk (`relay`). Works for trust, cleartext
//!   password, md5 and SCRAM-SHA-256 (PostgreSQL ignores the SCRAM user
//!   name, so the rewritten user name does not matter there; md5 salts
//!   with the user name, see the README). The client's messages are capped
//!   at `codec::MAX_PREAUTH_LEN` bytes. SCRAM channel binding
//!   (`SCRAM-SHA-256-PLUS`) binds to the certificate of the connection the
//!   client sees, which ends at the router: it can never succeed through a
//!   relay, so it is removed from the mechanisms PostgreSQL offers, and a
//!   client that demands it fails on its own side with libpq's "channel
//!   binding is required, but server did not offer an authentication
//!   method that supports channel binding".
//! - **verified by the router** (`auth.login = "verify"`, or a tenant with
//!   a secret): the router checks the client itself (`verify`, SCRAM in
//!   `scram`) before any connection slot or backend is taken, then logs
//!   into PostgreSQL with what the proof yields (`login`).
//!
//! - **token logins** (`[auth.jwt]`, for the user name `auth.jwt.user`):
//!   the client's cleartext password is a JWT, checked by the router
//!   (`jwt`, keys and rules in `crate::jwt`); it fills
//!   `Authenticated::subject` and `expires_at`, and the backend login comes
//!   from the credentials file (`BackendLogin::Password`).
//!
//! Every way ends in one `Authenticated` value.

pub mod credentials;
pub mod jwt;
pub mod login;
pub mod scram;
pub mod verify;

use crate::backend::Backend;
use crate::codec::MAX_PREAUTH_LEN;
use crate::error::SessionError;
use crate::frontend::Frontend;
use crate::protocol::typed;
use postgres_protocol::message::backend::Message;

/// Who authenticated, and how the router logs into PostgreSQL for them.
/// The one value the handshake produces (JWT logins will fill `subject`
/// and `expires_at`).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub tenant: String,
    /// The role PostgreSQL sees (the user name without the tenant).
    pub login_role: String,
    /// (subject, claims as JSON) of a token login.
    pub subject: Option<(String, String)>,
    /// When the credential stops being valid (token logins).
    pub expires_at: Option<std::time::SystemTime>,
    pub login: BackendLogin,
}

/// What the router answers PostgreSQL's authentication request with.
#[derive(Clone)]
pub enum BackendLogin {
    /// PostgreSQL's exchange was relayed to the client.
    Relayed,
    /// SCRAM with the client's ClientKey (and the ServerKey that checks
    /// PostgreSQL's signature), from a verified SCRAM exchange.
    ClientKey {
        client_key: [u8; 32],
        server_key: [u8; 32],
    },
    /// An md5 challenge answered from the stored `md5<hex>` hash.
    Md5Hash(String),
    /// A password (credentials file): cleartext, md5 or SCRAM.
    Password(String),
}

impl std::fmt::Debug for BackendLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendLogin::Relayed => "Relayed",
            BackendLogin::ClientKey { .. } => "ClientKey",
            BackendLogin::Md5Hash(_) => "Md5Hash",
            BackendLogin::Password(_) => "Password",
        })
    }
}

/// Why an authentication failed: a label the metrics own (the `reason`
/// of `tenant_router_auth_failures_total`), named here as auth uses it.
pub use crate::metrics::Failure;

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
    Scram(scram::ScramError),
    #[error("malformed authentication message: {0}")]
    Malformed(&'static str),
    #[error("the password of login role \"{0}\" is stored as md5, which tenant-router can check only with a cleartext password; it asks for one only over TLS or from a loopback address (auth.allow_cleartext_without_tls)")]
    CleartextRefused(String),
    #[error("no credentials for login role \"{0}\" (auth.credentials_file)")]
    NoCredentials(String),
    /// A token login's JWT was refused (never echoes the token).
    #[error("JWT authentication failed: {0}")]
    Jwt(crate::jwt::JwtError),
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

/// Whether a cleartext password may be asked of this client: over TLS,
/// from a loopback peer, or anywhere with `auth.allow_cleartext_without_tls`.
pub fn cleartext_allowed(client: &Frontend, cfg: &crate::config::Config) -> bool {
    client.tls.is_some() || client.stream.peer_is_loopback() || cfg.auth.allow_cleartext_without_tls
}

/// The password of a PasswordMessage body: NUL-terminated, no NUL inside.
pub fn cleartext_password(body: &[u8]) -> Result<&[u8], AuthError> {
    body.strip_suffix(&[0])
        .filter(|p| !p.contains(&0))
        .ok_or(AuthError::Malformed("PasswordMessage"))
}

/// Relay until AuthenticationOk (which is forwarded too). PostgreSQL's
/// request for a cleartext password is relayed only when
/// `cleartext_allowed` (client TLS, a loopback peer, or
/// `auth.allow_cleartext_without_tls`): PostgreSQL sees the router's
/// address, so its `hostssl` rules cannot protect the client's side.
pub async fn relay(
    client: &mut Frontend,
    server: &mut Backend,
    cleartext_allowed: bool,
) -> Result<(), SessionError> {
    loop {
        let frame = server.read_frame().await?;
        let tag = frame[0];
        // NegotiateProtocolVersion (not in postgres-protocol's enum) and
        // notices pass through.
        if tag == b'v' || tag == b'N' {
            client.send(&frame).await?;
            continue;
        }
        let unsupported = |m: &'static str| -> SessionError { AuthError::Unsupported(m).into() };
        match typed(&frame) {
            Some(Message::AuthenticationOk) => {
                client.send(&frame).await?;
                return Ok(());
            }
            Some(Message::AuthenticationCleartextPassword) if !cleartext_allowed => {
                return Err(AuthError::CleartextRelayRefused.into());
            }
            Some(
                Message::AuthenticationCleartextPassword
                | Message::AuthenticationMd5Password(_)
                | Message::AuthenticationSasl(_)
                | Message::AuthenticationSaslContinue(_),
            ) => {
                match without_channel_binding(&frame) {
                    Some(stripped) => client.send(&stripped).await?,
                    None => client.send(&frame).await?,
                }
                let reply = client.read_frame(MAX_PREAUTH_LEN).await?;
                if reply[0] != b'p' {
                    return Err(AuthError::UnexpectedClientMessage(reply[0] as char).into());
                }
                server.send(&reply).await?;
            }
            Some(Message::AuthenticationSaslFinal(_)) => client.send(&frame).await?,
            Some(Message::ErrorResponse(_)) => {
                client.send(&frame).await?;
                return Err(AuthError::Refused(crate::protocol::error_summary(frame)).into());
            }
            Some(Message::AuthenticationGss | Message::AuthenticationGssContinue(_)) => {
                return Err(unsupported("GSSAPI"))
            }
            Some(Message::AuthenticationSspi) => return Err(unsupported("SSPI")),
            Some(Message::AuthenticationKerberosV5) => return Err(unsupported("Kerberos V5")),
            Some(Message::AuthenticationScmCredential) => {
                return Err(unsupported("SCM credential"))
            }
            _ => return Err(AuthError::UnexpectedServerMessage(tag as char).into()),
        }
    }
}

/// For an AuthenticationSASL message that offers `*-PLUS` mechanisms, the
/// same message without them (None: nothing to strip, or not that message).
pub fn without_channel_binding(frame: &[u8]) -> Option<Vec<u8>> {
    // 'R', length, 10 (AuthenticationSASL), names each NUL-ended, then NUL.
    let body = frame.get(9..)?;
    if frame.first() != Some(&b'R') || frame.get(5..9)? != 10i32.to_be_bytes() {
        return None;
    }
    let names: Vec<&[u8]> = body.split(|b| *b == 0).filter(|n| !n.is_empty()).collect();
    if !names.iter().any(|n| n.ends_with(b"-PLUS")) {
        return None;
    }
    let mut out = vec![b'R', 0, 0, 0, 0];
    out.extend_from_slice(&10i32.to_be_bytes());
    for n in names.iter().filter(|n| !n.ends_with(b"-PLUS")) {
        out.extend_from_slice(n);
        out.push(0);
    }
    out.push(0);
    let len = (out.len() - 1) as i32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{without_channel_binding, Failure};

    #[test]
    fn failure_labels_index_their_counters() {
        for (i, f) in Failure::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i, "{}", f.label());
        }
    }

    fn sasl(names: &[&str]) -> Vec<u8> {
        let mut body = 10i32.to_be_bytes().to_vec();
        for n in names {
            body.extend_from_slice(n.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut f = vec![b'R'];
        f.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        f.extend_from_slice(&body);
        f
    }

    #[test]
    fn plus_mechanisms_are_stripped() {
        let offered = sasl(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
        assert_eq!(
            without_channel_binding(&offered),
            Some(sasl(&["SCRAM-SHA-256"]))
        );
        assert_eq!(without_channel_binding(&sasl(&["SCRAM-SHA-256"])), None);
        // Not AuthenticationSASL (SASLContinue, code 11): untouched.
        let mut cont = offered.clone();
        cont[8] = 11;
        assert_eq!(without_channel_binding(&cont), None);
        assert_eq!(without_channel_binding(b"R"), None);
    }
}
