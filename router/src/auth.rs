//! Authenticating: relay Postgres' authentication exchange between client
//! and server, byte for byte, until AuthenticationOk. Works for trust,
//! cleartext password, md5 and SCRAM-SHA-256 (Postgres ignores the SCRAM
//! user name, so the rewritten user name does not matter there; md5 salts
//! with the user name, see the README). The client's messages are capped
//! at `codec::MAX_PREAUTH_LEN` bytes: nobody unauthenticated makes the
//! router buffer more.

use crate::backend::Backend;
use crate::codec::MAX_PREAUTH_LEN;
use crate::error::{AuthError, SessionError};
use crate::frontend::Frontend;
use crate::protocol::typed;
use postgres_protocol::message::backend::Message;

/// Relay until AuthenticationOk (which is forwarded too).
pub async fn relay(client: &mut Frontend, server: &mut Backend) -> Result<(), SessionError> {
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
            Some(
                Message::AuthenticationCleartextPassword
                | Message::AuthenticationMd5Password(_)
                | Message::AuthenticationSasl(_)
                | Message::AuthenticationSaslContinue(_),
            ) => {
                client.send(&frame).await?;
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
