//! Authenticating: relay Postgres' authentication exchange between client
//! and server, byte for byte, until AuthenticationOk. Works for trust,
//! cleartext password, md5 and SCRAM-SHA-256 (Postgres ignores the SCRAM
//! user name, so the rewritten user name does not matter there; md5 salts
//! with the user name, see the README).

use crate::session::{read_frame, SessionError};
use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Postgres refused (wrong password, no such role...): its own
    /// ErrorResponse was already forwarded to the client.
    #[error("PostgreSQL refused authentication: {0}")]
    Refused(String),
    #[error("authentication method {0} is not supported through tenant-router")]
    Unsupported(i32),
    #[error("expected a password message from the client, got '{0}'")]
    UnexpectedClientMessage(char),
    #[error("unexpected message '{0}' from PostgreSQL during authentication")]
    UnexpectedServerMessage(char),
}

impl AuthError {
    pub fn sqlstate(&self) -> Option<&'static str> {
        match self {
            AuthError::Refused(_) => None,
            AuthError::Unsupported(_) => Some("28000"),
            AuthError::UnexpectedClientMessage(_) | AuthError::UnexpectedServerMessage(_) => {
                Some("08P01")
            }
        }
    }
}

const AUTH_OK: i32 = 0;
const CLEARTEXT: i32 = 3;
const MD5: i32 = 5;
const SASL: i32 = 10;
const SASL_CONTINUE: i32 = 11;
const SASL_FINAL: i32 = 12;

/// Relay until AuthenticationOk (which is forwarded too).
pub async fn relay(
    client: &mut TcpStream,
    cbuf: &mut BytesMut,
    server: &mut TcpStream,
    sbuf: &mut BytesMut,
) -> Result<(), SessionError> {
    loop {
        let frame = read_frame(server, sbuf)
            .await?
            .ok_or(SessionError::ServerGone)?;
        match frame[0] {
            b'R' if frame.len() >= 9 => {
                let code = i32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
                client.write_all(&frame).await?;
                match code {
                    AUTH_OK => return Ok(()),
                    CLEARTEXT | MD5 | SASL | SASL_CONTINUE => {
                        let reply = read_frame(client, cbuf)
                            .await?
                            .ok_or(SessionError::ClientGone)?;
                        if reply[0] != b'p' {
                            return Err(AuthError::UnexpectedClientMessage(reply[0] as char).into());
                        }
                        server.write_all(&reply).await?;
                    }
                    SASL_FINAL => {}
                    other => return Err(AuthError::Unsupported(other).into()),
                }
            }
            b'E' => {
                client.write_all(&frame).await?;
                return Err(AuthError::Refused(crate::protocol::error_summary(frame)).into());
            }
            // NegotiateProtocolVersion and notices pass through.
            b'v' | b'N' => client.write_all(&frame).await?,
            other => return Err(AuthError::UnexpectedServerMessage(other as char).into()),
        }
    }
}
