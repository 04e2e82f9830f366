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

const AUTH_OK: i32 = 0;
const CLEARTEXT: i32 = 3;
const MD5: i32 = 5;
const SASL: i32 = 10;
const SASL_CONTINUE: i32 = 11;
const SASL_FINAL: i32 = 12;

/// Relay until AuthenticationOk (which is forwarded too).
pub async fn relay(client: &mut Frontend, server: &mut Backend) -> Result<(), SessionError> {
    loop {
        let frame = server.read_frame().await?;
        match frame[0] {
            b'R' if frame.len() >= 9 => {
                let code = i32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
                client.send(&frame).await?;
                match code {
                    AUTH_OK => return Ok(()),
                    CLEARTEXT | MD5 | SASL | SASL_CONTINUE => {
                        let reply = client.read_frame(MAX_PREAUTH_LEN).await?;
                        if reply[0] != b'p' {
                            return Err(AuthError::UnexpectedClientMessage(reply[0] as char).into());
                        }
                        server.send(&reply).await?;
                    }
                    SASL_FINAL => {}
                    other => return Err(AuthError::Unsupported(other).into()),
                }
            }
            b'E' => {
                client.send(&frame).await?;
                return Err(AuthError::Refused(crate::protocol::error_summary(frame)).into());
            }
            // NegotiateProtocolVersion and notices pass through.
            b'v' | b'N' => client.send(&frame).await?,
            other => return Err(AuthError::UnexpectedServerMessage(other as char).into()),
        }
    }
}
