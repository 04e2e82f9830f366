//! The router logs into PostgreSQL itself, after it verified the client:
//! it answers PostgreSQL's authentication request with a `BackendLogin`
//! (SCRAM with a ClientKey or a password via postgres-protocol's SCRAM
//! client, md5 from a stored hash or a password, cleartext from a
//! password). AuthenticationOk is not forwarded: the session sends the
//! client its own. PostgreSQL's ErrorResponse reaches the client
//! unchanged.

use super::authenticated::BackendLogin;
use super::error::{AuthError, LoginError};
use super::scram::{ClientKeyClient, SCRAM_SHA_256};
use crate::backend::{Backend, BackendError};
use crate::protocol::typed;
use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

enum Scram {
    Key(ClientKeyClient),
    Password(ScramSha256),
}

/// Log in as `role` until AuthenticationOk.
pub async fn login(
    server: &mut Backend,
    login: &BackendLogin,
    role: &str,
) -> Result<(), LoginError> {
    let fail = |reason: String| -> LoginError {
        AuthError::Backend {
            role: role.to_owned(),
            reason,
        }
        .into()
    };
    let io = |e: std::io::Error| fail(e.to_string());
    let mut scram: Option<Scram> = None;
    loop {
        let frame = server.read_frame().await?;
        if frame[0] == b'v' || frame[0] == b'N' {
            continue;
        }
        let mut out = BytesMut::new();
        match typed(&frame) {
            Some(Message::AuthenticationOk) => return Ok(()),
            Some(Message::ErrorResponse(_)) => return Err(BackendError::Postgres(frame).into()),
            Some(Message::AuthenticationCleartextPassword) => match login {
                BackendLogin::Password(p) => frontend::password_message(p.as_bytes(), &mut out).map_err(io)?,
                _ => return Err(fail("PostgreSQL asks for a cleartext password, and the router holds no password for this role (use scram-sha-256 in pg_hba.conf, or list the role in auth.credentials_file)".into())),
            },
            Some(Message::AuthenticationMd5Password(body)) => {
                let hash = match login {
                    BackendLogin::Password(p) => {
                        postgres_protocol::authentication::md5_hash(role.as_bytes(), p.as_bytes(), body.salt())
                    }
                    BackendLogin::Md5Hash(stored) => md5_from_hash(stored, body.salt()),
                    _ => return Err(fail("PostgreSQL asks for md5, and the router holds a SCRAM key for this role (use scram-sha-256 in pg_hba.conf)".into())),
                };
                frontend::password_message(hash.as_bytes(), &mut out).map_err(io)?;
            }
            Some(Message::AuthenticationSasl(_)) => {
                let names = frame.get(9..).unwrap_or_default();
                if !names.split(|b| *b == 0).any(|m| m == SCRAM_SHA_256.as_bytes()) {
                    return Err(fail("PostgreSQL does not offer SCRAM-SHA-256".into()));
                }
                let (s, data) = match login {
                    BackendLogin::ClientKey {
                        client_key,
                        server_key,
                    } => {
                        let c = ClientKeyClient::new(*client_key, *server_key)
                            .map_err(|e| fail(e.to_string()))?;
                        let data = c.initial();
                        (Scram::Key(c), data)
                    }
                    BackendLogin::Password(p) => {
                        let c = ScramSha256::new(p.as_bytes(), ChannelBinding::unsupported());
                        let data = c.message().to_vec();
                        (Scram::Password(c), data)
                    }
                    _ => return Err(fail("PostgreSQL asks for SCRAM, and the router holds only an md5 hash for this role".into())),
                };
                scram = Some(s);
                frontend::sasl_initial_response(SCRAM_SHA_256, &data, &mut out).map_err(io)?;
            }
            Some(Message::AuthenticationSaslContinue(body)) => {
                let data = match scram.as_mut() {
                    Some(Scram::Key(c)) => c.respond(body.data()).map_err(|e| fail(e.to_string()))?,
                    Some(Scram::Password(c)) => {
                        c.update(body.data()).map_err(io)?;
                        c.message().to_vec()
                    }
                    None => return Err(AuthError::UnexpectedServerMessage('R').into()),
                };
                frontend::sasl_response(&data, &mut out).map_err(io)?;
            }
            Some(Message::AuthenticationSaslFinal(body)) => {
                match scram.take() {
                    Some(Scram::Key(c)) => c.finish(body.data()).map_err(|e| fail(e.to_string()))?,
                    Some(Scram::Password(mut c)) => c.finish(body.data()).map_err(io)?,
                    None => return Err(AuthError::UnexpectedServerMessage('R').into()),
                }
                continue;
            }
            Some(Message::AuthenticationGss | Message::AuthenticationGssContinue(_)) => {
                return Err(AuthError::Unsupported("GSSAPI").into())
            }
            Some(Message::AuthenticationSspi) => return Err(AuthError::Unsupported("SSPI").into()),
            _ => return Err(AuthError::UnexpectedServerMessage(frame[0] as char).into()),
        }
        server.send(&out).await?;
    }
}

/// The answer to an md5 challenge from the stored `md5<hex>` hash:
/// "md5" + hex(md5(hex || salt)).
pub fn md5_from_hash(stored: &str, salt: [u8; 4]) -> String {
    use md5::Digest;
    let mut h = md5::Md5::new();
    h.update(stored.strip_prefix("md5").unwrap_or(stored).as_bytes());
    h.update(salt);
    format!("md5{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_answer_from_the_hash_equals_the_one_from_the_password() {
        use md5::Digest;
        let stored = format!("md5{}", hex::encode(md5::Md5::digest(b"rt-secretrt_md5")));
        let salt = [1, 2, 3, 4];
        assert_eq!(
            md5_from_hash(&stored, salt),
            postgres_protocol::authentication::md5_hash(b"rt_md5", b"rt-secret", salt)
        );
    }
}
