//! When a cleartext password may be asked of a client, and reading one.

use super::error::AuthError;
use crate::config::Config;
use crate::frontend::Frontend;

/// Whether a cleartext password may be asked of this client: over TLS,
/// from a loopback peer, or anywhere with `auth.allow_cleartext_without_tls`.
pub fn cleartext_allowed(client: &Frontend, cfg: &Config) -> bool {
    client.tls.is_some() || client.stream.peer_is_loopback() || cfg.auth.allow_cleartext_without_tls
}

/// The password of a PasswordMessage body: NUL-terminated, no NUL inside.
pub fn cleartext_password(body: &[u8]) -> Result<&[u8], AuthError> {
    body.strip_suffix(&[0])
        .filter(|p| !p.contains(&0))
        .ok_or(AuthError::Malformed("PasswordMessage"))
}
