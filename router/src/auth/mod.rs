//! Authenticating. Two ways, chosen per connection:
//!
//! - **relayed** (`auth.login = "relay"`, tenants without a secret):
//!   PostgreSQL's own exchange is relayed between client and server, byte
//!   for byte, until AuthenticationOk (`relay`). Works for trust, cleartext
//!   password, md5 and SCRAM-SHA-256 (PostgreSQL ignores the SCRAM user
//!   name, so the rewritten user name does not matter there; md5 salts
//!   with the user name, see docs/src/router/index.md). The client's messages are capped
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
//! Every way ends in one `Authenticated` value (`authenticated`), or in a
//! `LoginError` (`error`), which the session turns into its own error.

pub mod authenticated;
pub mod cleartext;
pub mod credentials;
pub mod error;
pub mod failure;
pub mod jwt;
pub mod login;
pub mod scram;
pub mod verify;

pub use authenticated::{Authenticated, BackendLogin};
pub use cleartext::{cleartext_allowed, cleartext_password};
pub use error::{AuthError, LoginError};
pub use failure::Failure;

use crate::backend::Backend;
use crate::codec::MAX_PREAUTH_LEN;
use crate::frontend::Frontend;
use crate::protocol::typed;
use postgres_protocol::message::backend::Message;

/// Relay until AuthenticationOk (which is forwarded too). PostgreSQL's
/// request for a cleartext password is relayed only when
/// `cleartext_allowed` (client TLS, a loopback peer, or
/// `auth.allow_cleartext_without_tls`): PostgreSQL sees the router's
/// address, so its `hostssl` rules cannot protect the client's side.
pub async fn relay(
    client: &mut Frontend,
    server: &mut Backend,
    cleartext_allowed: bool,
) -> Result<(), LoginError> {
    loop {
        let frame = server.read_frame().await?;
        let tag = frame[0];
        // NegotiateProtocolVersion (not in postgres-protocol's enum) and
        // notices pass through.
        if tag == b'v' || tag == b'N' {
            client.send(&frame).await?;
            continue;
        }
        let unsupported = |m: &'static str| -> LoginError { AuthError::Unsupported(m).into() };
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
    use super::without_channel_binding;

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
