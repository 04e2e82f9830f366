//! The pg_tenant context token.
//!
//! The router proves to the extension that it, and only it, chose a
//! backend's tenant. Both sides hold the same secret (the router's key file,
//! the server's superuser-only `pg_tenant.context_key`). The token is
//!
//! ```text
//! token = "v1." nonce "." mac
//! nonce = decimal u64, 1..=u64::MAX, no sign, no leading zero
//! mac   = lower-case hex of HMAC-SHA256(key, msg)         (64 characters)
//! msg   = "pg_tenant/v1" NUL action NUL tenant NUL pid NUL nonce
//!         action: "set" or "clear"; tenant is "" for "clear";
//!         pid and nonce in decimal
//! ```
//!
//! The backend refuses a token whose nonce is not strictly greater than the
//! last nonce it accepted, so a token cannot be replayed in the backend it
//! was minted for, and the pid in the MAC stops it from being used in any
//! other backend. This is the only implementation of the format: the
//! extension verifies with [`verify`], the router mints with [`sign`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Format version prefix of every token.
pub const VERSION_PREFIX: &str = "v1.";
/// Longest well-formed token: "v1." + 20 digits + "." + 64 hex digits.
pub const MAX_TOKEN_LEN: usize = 3 + 20 + 1 + 64;
/// Shortest secret accepted by either side, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// Whether `id` is a tenant id: `^[a-z0-9][a-z0-9_-]{0,62}$`, the pattern
/// the catalog's CHECK constraint enforces too. Tenant ids appear in tokens
/// and messages, never interpolated into SQL.
pub fn valid_tenant_id(id: &str) -> bool {
    let b = id.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && ok(&b[0])
        && b[1..].iter().all(|c| ok(c) || *c == b'_' || *c == b'-')
}

/// What a token authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// Set the backend's tenant to this id.
    Set(&'a str),
    /// Clear the backend's tenant (a router reusing a backend).
    Clear,
}

/// Why a token was refused. Deliberately coarse: the caller reports
/// "invalid context token" and never echoes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// The key is shorter than [`MIN_KEY_LEN`].
    WeakKey,
    /// Not of the form `v1.<nonce>.<64 hex>`.
    Malformed,
    /// The MAC does not match (wrong key, tenant, pid or nonce).
    BadSignature,
    /// The nonce is not greater than the last one accepted.
    Replayed,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::WeakKey => "context key is shorter than 32 bytes",
            TokenError::Malformed => "context token is malformed",
            TokenError::BadSignature => "context token signature does not match",
            TokenError::Replayed => "context token nonce was already used",
        })
    }
}

impl std::error::Error for TokenError {}

fn mac(key: &[u8], action: Action<'_>, pid: i32, nonce: u64) -> Result<HmacSha256, TokenError> {
    if key.len() < MIN_KEY_LEN {
        return Err(TokenError::WeakKey);
    }
    let mut m = HmacSha256::new_from_slice(key).map_err(|_| TokenError::WeakKey)?;
    let (verb, tenant) = match action {
        Action::Set(t) => ("set", t),
        Action::Clear => ("clear", ""),
    };
    for part in [
        b"pg_tenant/v1".as_slice(),
        verb.as_bytes(),
        tenant.as_bytes(),
        pid.to_string().as_bytes(),
    ] {
        m.update(part);
        m.update(b"\0");
    }
    m.update(nonce.to_string().as_bytes());
    Ok(m)
}

/// Mint a token for `action` in backend `pid` with `nonce`.
pub fn sign(key: &[u8], action: Action<'_>, pid: i32, nonce: u64) -> Result<String, TokenError> {
    let tag = mac(key, action, pid, nonce)?.finalize().into_bytes();
    Ok(format!("{VERSION_PREFIX}{nonce}.{}", hex::encode(tag)))
}

/// Split a token into its nonce and MAC bytes, checking only its form.
pub fn parse(token: &str) -> Result<(u64, [u8; 32]), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let rest = token
        .strip_prefix(VERSION_PREFIX)
        .ok_or(TokenError::Malformed)?;
    let (nonce_s, mac_s) = rest.split_once('.').ok_or(TokenError::Malformed)?;
    let digits_only = !nonce_s.is_empty() && nonce_s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || nonce_s.starts_with('0') || mac_s.len() != 64 {
        return Err(TokenError::Malformed);
    }
    if mac_s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(TokenError::Malformed);
    }
    let nonce: u64 = nonce_s.parse().map_err(|_| TokenError::Malformed)?;
    let mut tag = [0u8; 32];
    hex::decode_to_slice(mac_s, &mut tag).map_err(|_| TokenError::Malformed)?;
    Ok((nonce, tag))
}

/// Verify `token` for `action` in backend `pid`. `last_nonce` is the highest
/// nonce this backend accepted so far (0 for none). Returns the token's
/// nonce, which the caller must store as the new `last_nonce` once the
/// context change has taken effect.
pub fn verify(
    key: &[u8],
    action: Action<'_>,
    pid: i32,
    last_nonce: u64,
    token: &str,
) -> Result<u64, TokenError> {
    let (nonce, tag) = parse(token)?;
    let expected = mac(key, action, pid, nonce)?.finalize().into_bytes();
    if !bool::from(expected.as_slice().ct_eq(&tag)) {
        return Err(TokenError::BadSignature);
    }
    if nonce <= last_nonce {
        return Err(TokenError::Replayed);
    }
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// The test vector printed in the README.
    #[test]
    fn readme_test_vector() {
        let t = sign(KEY, Action::Set("acme"), 4242, 1).unwrap();
        assert_eq!(t, README_VECTOR);
    }

    const README_VECTOR: &str =
        "v1.1.fbda05bb4224dbf9a33c6c6730ad9fc1f7a920539f5dfe58c8f00eb4848fa231";

    #[test]
    fn round_trip_and_replay() {
        let t = sign(KEY, Action::Set("acme"), 7, 5).unwrap();
        assert_eq!(verify(KEY, Action::Set("acme"), 7, 0, &t), Ok(5));
        assert_eq!(verify(KEY, Action::Set("acme"), 7, 4, &t), Ok(5));
        assert_eq!(
            verify(KEY, Action::Set("acme"), 7, 5, &t),
            Err(TokenError::Replayed)
        );
        assert_eq!(
            verify(KEY, Action::Set("acme"), 7, 9, &t),
            Err(TokenError::Replayed)
        );
    }

    #[test]
    fn bound_to_tenant_pid_action_and_key() {
        let t = sign(KEY, Action::Set("acme"), 7, 5).unwrap();
        let bad = Err(TokenError::BadSignature);
        assert_eq!(verify(KEY, Action::Set("globex"), 7, 0, &t), bad);
        assert_eq!(verify(KEY, Action::Set("acme"), 8, 0, &t), bad);
        assert_eq!(verify(KEY, Action::Clear, 7, 0, &t), bad);
        let other = b"ffffffffffffffffffffffffffffffff";
        assert_eq!(verify(other, Action::Set("acme"), 7, 0, &t), bad);
    }

    #[test]
    fn malformed_tokens() {
        let m = Err(TokenError::Malformed);
        let good = sign(KEY, Action::Clear, 7, 5).unwrap();
        for t in [
            "",
            "v1.",
            "v1.5",
            "v2.5.00",
            &good.to_uppercase(),
            &good.replace("v1.5.", "v1.05."),
            &good.replace("v1.5.", "v1.-5."),
            &good.replace("v1.5.", "v1.99999999999999999999."),
            &format!("{good}0"),
            &"x".repeat(10_000),
        ] {
            assert_eq!(verify(KEY, Action::Clear, 7, 0, t), m, "{t}");
        }
    }

    #[test]
    fn tenant_id_pattern() {
        for ok in ["acme", "a", "0", "a-b_c", &"a".repeat(63)] {
            assert!(valid_tenant_id(ok), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "-a",
            "_a",
            "a.b",
            "a'b",
            "a b",
            &"a".repeat(64),
            "é",
        ] {
            assert!(!valid_tenant_id(bad), "{bad}");
        }
    }

    #[test]
    fn weak_key_refused() {
        assert_eq!(
            sign(b"short", Action::Clear, 1, 1),
            Err(TokenError::WeakKey)
        );
    }
}
