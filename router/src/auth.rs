//! Authenticating: relay Postgres' authentication exchange between client
//! and server, byte for byte, until AuthenticationOk. Works for trust,
//! cleartext password, md5 and SCRAM-SHA-256 (Postgres ignores the SCRAM
//! user name, so the rewritten user name does not matter there; md5 salts
//! with the user name, see the README). The client's messages are capped
//! at `codec::MAX_PREAUTH_LEN` bytes: nobody unauthenticated makes the
//! router buffer more.
//!
//! SCRAM channel binding (`SCRAM-SHA-256-PLUS`) binds to the TLS
//! certificate of the connection the client sees, which ends at the router,
//! not at Postgres: it can never succeed through a relay, so it is removed
//! from the mechanisms Postgres offers. A client that demands it
//! (`channel_binding=require`) then fails on its own side, with libpq's
//! "channel binding is required, but server did not offer an
//! authentication method that supports channel binding".

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
