//! The pg_tenant context token.
//!
//! The router proves to the extension that it, and only it, chose a
//! backend's tenant. The router holds an Ed25519 private key (its
//! `context_signing_key_file`); PostgreSQL holds only the matching public
//! keys (`pg_tenant.context_public_keys`), which are harmless to show: a
//! role that can read every setting, every file the server reads and every
//! log line still cannot mint a token. The token is
//!
//! ```text
//! token = "v2." nonce "." sig
//! nonce = decimal u64, 1..=u64::MAX, no sign, no leading zero
//! sig   = lower-case hex of Ed25519(private key, msg)          (128 characters)
//! msg   = "pg_tenant/v2" NUL action NUL tenant NUL pid NUL cancel_key NUL nonce
//!         action: "set" or "clear"; tenant is "" for "clear";
//!         pid, cancel_key (signed 32-bit) and nonce in decimal
//!       | "pg_tenant/v2" NUL "set-subject" NUL tenant NUL pid NUL cancel_key NUL nonce
//!         NUL subject NUL claims
//!         (the end user: subject 1..=256 bytes without NUL, claims the text
//!         of a JSON object of at most 8192 bytes)
//!       | "pg_tenant/v2" NUL "set-sealed" NUL tenant NUL pid NUL cancel_key NUL nonce
//!         NUL document
//!       | "pg_tenant/v2" NUL "set-subject-sealed" NUL tenant NUL pid NUL cancel_key
//!         NUL nonce NUL subject NUL claims NUL document
//!         (a sealed context for a tenant database: the document is the text
//!         of a JSON object of at most 16384 bytes without NUL, the tenant's
//!         catalog row as `tenant.context_document` builds it)
//! ```
//!
//! The verb separates the domains: a "set" token never verifies as a
//! "set-subject" token or the other way round, and subject and claims are
//! covered by the signature, so the token string keeps its length.
//!
//! The backend refuses a token whose nonce is not strictly greater than the
//! last nonce it accepted, so a token cannot be replayed in the backend it
//! was minted for. The pid and the backend's cancel key (both from
//! BackendKeyData, which only the backend's client sees; the key is random
//! per backend) stop it from being used in any other backend, including a
//! later one that reuses the pid. Verification uses `verify_strict` (no
//! malleable signatures, no small-order keys). Several public keys may be
//! configured at once: that is the rotation window (sign with the new key
//! once every server lists it, then drop the old one). This is the only
//! implementation of the format: the extension verifies with [`verify`],
//! the router mints with [`sign`].

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

/// Format version prefix of every token.
pub const VERSION_PREFIX: &str = "v2.";
/// Longest well-formed token: "v2." + 20 digits + "." + 128 hex digits.
pub const MAX_TOKEN_LEN: usize = 3 + 20 + 1 + 128;
/// Most public keys accepted at once (a rotation window needs two).
pub const MAX_PUBLIC_KEYS: usize = 4;
/// Longest subject (end user) in bytes.
pub const MAX_SUBJECT_LEN: usize = 256;
/// Longest claims text in bytes.
pub const MAX_CLAIMS_LEN: usize = 8192;
/// Longest context document (sealed actions) in bytes.
pub const MAX_DOCUMENT_LEN: usize = 16384;

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
    /// Set the backend's tenant and the end user within it: `subject`
    /// (1..=[`MAX_SUBJECT_LEN`] bytes, no NUL) and `claims` (the text of a
    /// JSON object, at most [`MAX_CLAIMS_LEN`] bytes; `"{}"` for none).
    SetSubject {
        tenant: &'a str,
        subject: &'a str,
        claims: &'a str,
    },
    /// Set the backend's tenant from a sealed context `document` (a tenant
    /// database has no catalog: the document is the tenant's row, checked
    /// with [`check_document`]).
    SetSealed { tenant: &'a str, document: &'a str },
    /// [`Action::SetSubject`] with a sealed context `document`.
    SetSubjectSealed {
        tenant: &'a str,
        subject: &'a str,
        claims: &'a str,
        document: &'a str,
    },
}

/// Check the limits of a context document: at most [`MAX_DOCUMENT_LEN`]
/// bytes, no NUL, shaped like a JSON object. Whether it parses is for the
/// verifier to check. The router checks before signing, [`verify`] again.
pub fn check_document(document: &str) -> Result<(), TokenError> {
    if document.len() > MAX_DOCUMENT_LEN || document.contains('\0') || !object_shaped(document) {
        return Err(TokenError::BadDocument);
    }
    Ok(())
}

/// `{` ... `}` around optional JSON white space.
fn object_shaped(text: &str) -> bool {
    let json_ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let trimmed = text.trim_matches(json_ws);
    trimmed.len() >= 2 && trimmed.starts_with('{') && trimmed.ends_with('}')
}

/// Check the limits of a subject and its claims: subject 1..=256 bytes
/// without NUL; claims at most 8192 bytes, no NUL, and shaped like a JSON
/// object (`{` ... `}` around optional white space). Whether the claims
/// parse as JSON is for the verifier to check (the extension parses them
/// with PostgreSQL's own jsonb parser). The router checks before signing,
/// [`verify`] checks again.
pub fn check_subject(subject: &str, claims: &str) -> Result<(), TokenError> {
    if subject.is_empty()
        || subject.len() > MAX_SUBJECT_LEN
        || subject.contains('\0')
        || claims.len() > MAX_CLAIMS_LEN
        || claims.contains('\0')
        || !object_shaped(claims)
    {
        return Err(TokenError::BadSubject);
    }
    Ok(())
}

/// Why a token was refused. Deliberately coarse: the caller reports
/// "invalid context token" and never echoes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// No public key is configured.
    NoKey,
    /// Not of the form `v2.<nonce>.<128 hex>`.
    Malformed,
    /// The signature matches no configured key (wrong key, tenant, pid or nonce).
    BadSignature,
    /// The nonce is not greater than the last one accepted.
    Replayed,
    /// The subject or claims are outside the limits of [`check_subject`].
    BadSubject,
    /// The context document is outside the limits of [`check_document`].
    BadDocument,
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::NoKey => "no context public key is configured",
            TokenError::Malformed => "context token is malformed",
            TokenError::BadSignature => "context token signature does not match",
            TokenError::Replayed => "context token nonce was already used",
            TokenError::BadSubject => {
                "subject must be 1 to 256 bytes without NUL, claims the text of a JSON object of at most 8192 bytes"
            }
            TokenError::BadDocument => {
                "context document must be the text of a JSON object of at most 16384 bytes without NUL"
            }
        })
    }
}

impl std::error::Error for TokenError {}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The private key file is not an Ed25519 PKCS#8 PEM key.
    PrivateKey(String),
    /// A public key is not 64 hex digits of a valid Ed25519 point.
    PublicKey(String),
    /// More public keys than [`MAX_PUBLIC_KEYS`].
    TooManyKeys(usize),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::PrivateKey(e) => write!(
                f,
                "not an Ed25519 private key in PKCS#8 PEM form ({e}); create one with \
                 `openssl genpkey -algorithm ed25519`"
            ),
            KeyError::PublicKey(k) => write!(
                f,
                "public key \"{k}\" is not 64 hex digits of an Ed25519 public key"
            ),
            KeyError::TooManyKeys(n) => {
                write!(f, "{n} public keys listed, at most {MAX_PUBLIC_KEYS}")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// Read the router's signing key from PKCS#8 PEM (`openssl genpkey
/// -algorithm ed25519`).
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| KeyError::PrivateKey(e.to_string()))
}

/// The public key of `key` as PostgreSQL's `pg_tenant.context_public_keys`
/// expects it: 64 lower-case hex digits.
pub fn public_key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

/// Parse `pg_tenant.context_public_keys`: hex public keys separated by
/// commas and/or white space. An empty list is allowed (and refuses every
/// token).
pub fn parse_public_keys(list: &str) -> Result<Vec<VerifyingKey>, KeyError> {
    let keys: Vec<&str> = list
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .collect();
    if keys.len() > MAX_PUBLIC_KEYS {
        return Err(KeyError::TooManyKeys(keys.len()));
    }
    keys.into_iter()
        .map(|k| {
            let shown: String = k.chars().take(70).collect();
            let mut raw = [0u8; 32];
            if k.len() != 64 || k.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(KeyError::PublicKey(shown));
            }
            hex::decode_to_slice(k, &mut raw).map_err(|_| KeyError::PublicKey(shown.clone()))?;
            let vk =
                VerifyingKey::from_bytes(&raw).map_err(|_| KeyError::PublicKey(shown.clone()))?;
            if vk.is_weak() {
                return Err(KeyError::PublicKey(shown));
            }
            Ok(vk)
        })
        .collect()
}

/// The backend a token is for: the pid and cancel key of BackendKeyData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub pid: i32,
    pub cancel_key: i32,
}

fn message(action: Action<'_>, backend: Backend, nonce: u64) -> Vec<u8> {
    // The verb, the tenant, and what follows the nonce, in order.
    let (verb, tenant, tail): (&str, &str, Vec<&str>) = match action {
        Action::Set(t) => ("set", t, vec![]),
        Action::Clear => ("clear", "", vec![]),
        Action::SetSubject {
            tenant,
            subject,
            claims,
        } => ("set-subject", tenant, vec![subject, claims]),
        Action::SetSealed { tenant, document } => ("set-sealed", tenant, vec![document]),
        Action::SetSubjectSealed {
            tenant,
            subject,
            claims,
            document,
        } => (
            "set-subject-sealed",
            tenant,
            vec![subject, claims, document],
        ),
    };
    let Backend { pid, cancel_key } = backend;
    let mut msg = format!("pg_tenant/v2\0{verb}\0{tenant}\0{pid}\0{cancel_key}\0{nonce}");
    for part in tail {
        msg.push('\0');
        msg.push_str(part);
    }
    msg.into_bytes()
}

/// Check what an action carries besides the tenant: subject and claims
/// ([`check_subject`]), the document ([`check_document`]).
pub fn check_action(action: Action<'_>) -> Result<(), TokenError> {
    match action {
        Action::Set(_) | Action::Clear => Ok(()),
        Action::SetSubject {
            subject, claims, ..
        } => check_subject(subject, claims),
        Action::SetSealed { document, .. } => check_document(document),
        Action::SetSubjectSealed {
            subject,
            claims,
            document,
            ..
        } => {
            check_subject(subject, claims)?;
            check_document(document)
        }
    }
}

/// Mint a token for `action` in `backend` with `nonce`. Check what the
/// action carries with [`check_action`] first: a token outside the limits
/// is refused by [`verify`].
pub fn sign(key: &SigningKey, action: Action<'_>, backend: Backend, nonce: u64) -> String {
    let sig = key.sign(&message(action, backend, nonce));
    format!("{VERSION_PREFIX}{nonce}.{}", hex::encode(sig.to_bytes()))
}

/// Split a token into its nonce and signature, checking only its form.
pub fn parse(token: &str) -> Result<(u64, Signature), TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let rest = token
        .strip_prefix(VERSION_PREFIX)
        .ok_or(TokenError::Malformed)?;
    let (nonce_s, sig_s) = rest.split_once('.').ok_or(TokenError::Malformed)?;
    let digits_only = !nonce_s.is_empty() && nonce_s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || nonce_s.starts_with('0') || sig_s.len() != 128 {
        return Err(TokenError::Malformed);
    }
    if sig_s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(TokenError::Malformed);
    }
    let nonce: u64 = nonce_s.parse().map_err(|_| TokenError::Malformed)?;
    let mut raw = [0u8; 64];
    hex::decode_to_slice(sig_s, &mut raw).map_err(|_| TokenError::Malformed)?;
    Ok((nonce, Signature::from_bytes(&raw)))
}

/// Verify `token` for `action` in `backend` against any of `keys`.
/// `last_nonce` is the highest nonce this backend accepted so far (0 for
/// none). Returns the token's nonce, which the caller must store as the new
/// `last_nonce` once the context change has taken effect.
pub fn verify(
    keys: &[VerifyingKey],
    action: Action<'_>,
    backend: Backend,
    last_nonce: u64,
    token: &str,
) -> Result<u64, TokenError> {
    if keys.is_empty() {
        return Err(TokenError::NoKey);
    }
    check_action(action)?;
    let (nonce, sig) = parse(token)?;
    let msg = message(action, backend, nonce);
    if !keys.iter().any(|k| k.verify_strict(&msg, &sig).is_ok()) {
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

    /// The test key of docs/src/concepts/context-token.md: seed bytes 0x00..=0x1f.
    fn key() -> SigningKey {
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        SigningKey::from_bytes(&seed)
    }

    fn be(pid: i32) -> Backend {
        Backend {
            pid,
            cancel_key: -123456789,
        }
    }

    fn keys() -> Vec<VerifyingKey> {
        parse_public_keys(&public_key_hex(&key())).unwrap()
    }

    /// The test vector printed in docs/src/concepts/context-token.md (Ed25519 is deterministic).
    #[test]
    fn readme_test_vector() {
        assert_eq!(public_key_hex(&key()), README_PUBLIC);
        let backend = Backend {
            pid: 4242,
            cancel_key: 987654321,
        };
        assert_eq!(sign(&key(), Action::Set("acme"), backend, 1), README_VECTOR);
    }

    const README_PUBLIC: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    const README_VECTOR: &str = "v2.1.9e060dfeab257efe91cc4554a8cdab279786cdf3cf66d4ffeefda5c09b898ab55502f5bf5ba53c4fc27f241388e0f915ae12b48cb8372e0a5450bd72f681a905";

    #[test]
    fn pem_key_round_trip() {
        // `openssl genpkey -algorithm ed25519` output for the seed above.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n\
                   -----END PRIVATE KEY-----\n";
        let k = signing_key_from_pem(pem).unwrap();
        assert_eq!(public_key_hex(&k), README_PUBLIC);
        assert!(matches!(
            signing_key_from_pem("not a key"),
            Err(KeyError::PrivateKey(_))
        ));
    }

    #[test]
    fn round_trip_and_replay() {
        let t = sign(&key(), Action::Set("acme"), be(7), 5);
        let k = keys();
        assert_eq!(verify(&k, Action::Set("acme"), be(7), 0, &t), Ok(5));
        assert_eq!(verify(&k, Action::Set("acme"), be(7), 4, &t), Ok(5));
        assert_eq!(
            verify(&k, Action::Set("acme"), be(7), 5, &t),
            Err(TokenError::Replayed)
        );
        assert_eq!(
            verify(&k, Action::Set("acme"), be(7), 9, &t),
            Err(TokenError::Replayed)
        );
    }

    #[test]
    fn bound_to_tenant_pid_action_and_key() {
        let t = sign(&key(), Action::Set("acme"), be(7), 5);
        let k = keys();
        let bad = Err(TokenError::BadSignature);
        assert_eq!(verify(&k, Action::Set("globex"), be(7), 0, &t), bad);
        assert_eq!(verify(&k, Action::Set("acme"), be(8), 0, &t), bad);
        assert_eq!(verify(&k, Action::Clear, be(7), 0, &t), bad);
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let other_keys = parse_public_keys(&public_key_hex(&other)).unwrap();
        assert_eq!(verify(&other_keys, Action::Set("acme"), be(7), 0, &t), bad);
        assert_eq!(
            verify(&[], Action::Set("acme"), be(7), 0, &t),
            Err(TokenError::NoKey)
        );
    }

    #[test]
    fn bound_to_the_cancel_key_of_the_backend() {
        // A later backend that reuses the pid has another cancel key.
        let t = sign(&key(), Action::Set("acme"), be(7), 5);
        let reused = Backend {
            pid: 7,
            cancel_key: 42,
        };
        assert_eq!(
            verify(&keys(), Action::Set("acme"), reused, 0, &t),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn rotation_window_accepts_either_key() {
        let old = key();
        let new = SigningKey::from_bytes(&[7u8; 32]);
        let both = format!("{}, {}", public_key_hex(&old), public_key_hex(&new));
        let k = parse_public_keys(&both).unwrap();
        assert_eq!(k.len(), 2);
        let t_old = sign(&old, Action::Set("acme"), be(7), 1);
        let t_new = sign(&new, Action::Set("acme"), be(7), 2);
        assert_eq!(verify(&k, Action::Set("acme"), be(7), 0, &t_old), Ok(1));
        assert_eq!(verify(&k, Action::Set("acme"), be(7), 1, &t_new), Ok(2));
        // Once the old key is dropped, its tokens are refused.
        let only_new = parse_public_keys(&public_key_hex(&new)).unwrap();
        assert_eq!(
            verify(&only_new, Action::Set("acme"), be(7), 0, &t_old),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn public_key_list_parsing() {
        let hex = public_key_hex(&key());
        assert_eq!(parse_public_keys("").unwrap().len(), 0);
        assert_eq!(parse_public_keys(&format!(" {hex} ")).unwrap().len(), 1);
        for bad in [
            "xyz".to_string(),
            hex.to_uppercase(),
            format!("{hex}00"),
            hex[..62].to_string(),
            // the identity point: a weak (small-order) key
            format!("01{}", "0".repeat(62)),
        ] {
            assert!(
                matches!(parse_public_keys(&bad), Err(KeyError::PublicKey(_))),
                "{bad}"
            );
        }
        let five = [hex.as_str(); 5].join(",");
        assert_eq!(parse_public_keys(&five), Err(KeyError::TooManyKeys(5)));
    }

    #[test]
    fn malformed_tokens() {
        let m = Err(TokenError::Malformed);
        let good = sign(&key(), Action::Clear, be(7), 5);
        let k = keys();
        for t in [
            "",
            "v2.",
            "v2.5",
            "v1.5.00",
            &good.to_uppercase(),
            &good.replace("v2.5.", "v1.5."),
            &good.replace("v2.5.", "v2.05."),
            &good.replace("v2.5.", "v2.-5."),
            &good.replace("v2.5.", "v2.99999999999999999999."),
            &format!("{good}0"),
            &"x".repeat(10_000),
        ] {
            assert_eq!(verify(&k, Action::Clear, be(7), 0, t), m, "{t}");
        }
    }

    /// The SetSubject test vector of docs/src/concepts/context-token.md (cross-checked with `openssl
    /// pkeyutl -sign -rawin` and Python's cryptography).
    #[test]
    fn readme_set_subject_test_vector() {
        let backend = Backend {
            pid: 4242,
            cancel_key: 987654321,
        };
        let action = Action::SetSubject {
            tenant: "acme",
            subject: "alice",
            claims: r#"{"role":"editor"}"#,
        };
        assert_eq!(sign(&key(), action, backend, 2), README_SUBJECT_VECTOR);
        assert_eq!(
            verify(&keys(), action, backend, 1, README_SUBJECT_VECTOR),
            Ok(2)
        );
    }

    const README_SUBJECT_VECTOR: &str = "v2.2.4db15ef617309b6ee127ab8f0dc8e9fe921a02f23f30ede494d4d088a2a67ae4e5c20325b4416b72604d2d4d91d3a5987099d4fadbdcf7fb7b7cb9c53d1ec10d";

    fn subj<'a>(tenant: &'a str, subject: &'a str, claims: &'a str) -> Action<'a> {
        Action::SetSubject {
            tenant,
            subject,
            claims,
        }
    }

    #[test]
    fn set_and_set_subject_are_separate_domains() {
        let k = keys();
        let bad = Err(TokenError::BadSignature);
        let plain = sign(&key(), Action::Set("acme"), be(7), 5);
        let with_subject = sign(&key(), subj("acme", "alice", "{}"), be(7), 5);
        // Controls: each verifies as what it was signed for.
        assert_eq!(verify(&k, Action::Set("acme"), be(7), 0, &plain), Ok(5));
        assert_eq!(
            verify(&k, subj("acme", "alice", "{}"), be(7), 0, &with_subject),
            Ok(5)
        );
        // Crossed: refused both ways, and for clear.
        assert_eq!(
            verify(&k, subj("acme", "alice", "{}"), be(7), 0, &plain),
            bad
        );
        assert_eq!(
            verify(&k, Action::Set("acme"), be(7), 0, &with_subject),
            bad
        );
        assert_eq!(verify(&k, Action::Clear, be(7), 0, &with_subject), bad);
        // Same length: nothing in the token string tells them apart.
        assert_eq!(plain.len(), with_subject.len());
    }

    #[test]
    fn set_subject_is_bound_to_every_byte_of_subject_and_claims() {
        let k = keys();
        let bad = Err(TokenError::BadSignature);
        let claims = r#"{"role":"editor","dept":7}"#;
        let t = sign(&key(), subj("acme", "alice", claims), be(7), 5);
        assert_eq!(
            verify(&k, subj("acme", "alice", claims), be(7), 0, &t),
            Ok(5)
        );
        for (i, _) in "alice".char_indices() {
            let mut s = "alice".as_bytes().to_vec();
            s[i] ^= 1;
            let s = String::from_utf8(s).unwrap();
            assert_eq!(verify(&k, subj("acme", &s, claims), be(7), 0, &t), bad);
        }
        for i in 1..claims.len() - 1 {
            let mut c = claims.as_bytes().to_vec();
            c[i] ^= 1;
            let c = String::from_utf8(c).unwrap();
            assert_eq!(
                verify(&k, subj("acme", "alice", &c), be(7), 0, &t),
                bad,
                "{c}"
            );
        }
        // Moving bytes between subject and claims changes the message too.
        assert_eq!(
            verify(
                &k,
                subj("acme", "alic", &format!("e\0{claims}")),
                be(7),
                0,
                &t
            ),
            Err(TokenError::BadSubject)
        );
        assert_eq!(
            verify(&k, subj("globex", "alice", claims), be(7), 0, &t),
            bad
        );
        assert_eq!(verify(&k, subj("acme", "alice", claims), be(8), 0, &t), bad);
        assert_eq!(
            verify(&k, subj("acme", "alice", claims), be(7), 5, &t),
            Err(TokenError::Replayed)
        );
    }

    #[test]
    fn subject_and_claims_limits() {
        let long_subject = "s".repeat(MAX_SUBJECT_LEN);
        let long_claims = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_CLAIMS_LEN - 8));
        assert_eq!(long_claims.len(), MAX_CLAIMS_LEN);
        for (s, c) in [
            ("alice", "{}"),
            ("a", " {\"k\": [1, 2]}\n"),
            (long_subject.as_str(), "{}"),
            ("alice", long_claims.as_str()),
        ] {
            assert_eq!(check_subject(s, c), Ok(()), "{s} {c}");
            let t = sign(&key(), subj("acme", s, c), be(7), 5);
            assert_eq!(verify(&keys(), subj("acme", s, c), be(7), 0, &t), Ok(5));
        }
        let too_long_subject = "s".repeat(MAX_SUBJECT_LEN + 1);
        let too_long_claims = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_CLAIMS_LEN - 7));
        for (s, c) in [
            ("", "{}"),
            ("al\0ice", "{}"),
            (too_long_subject.as_str(), "{}"),
            ("alice", ""),
            ("alice", "   "),
            ("alice", "[]"),
            ("alice", "null"),
            ("alice", "{"),
            ("alice", "{\"a\":\"\0\"}"),
            ("alice", too_long_claims.as_str()),
        ] {
            assert_eq!(
                check_subject(s, c),
                Err(TokenError::BadSubject),
                "{s:?} {c:?}"
            );
            // Signed anyway: the verifier refuses it before looking at the signature.
            let t = sign(&key(), subj("acme", s, c), be(7), 5);
            assert_eq!(
                verify(&keys(), subj("acme", s, c), be(7), 0, &t),
                Err(TokenError::BadSubject)
            );
        }
    }

    fn sealed<'a>(tenant: &'a str, document: &'a str) -> Action<'a> {
        Action::SetSealed { tenant, document }
    }

    fn subject_sealed<'a>(
        tenant: &'a str,
        subject: &'a str,
        claims: &'a str,
        document: &'a str,
    ) -> Action<'a> {
        Action::SetSubjectSealed {
            tenant,
            subject,
            claims,
            document,
        }
    }

    /// The SetSealed test vector of docs/src/concepts/context-token.md (cross-checked with Python's
    /// cryptography).
    #[test]
    fn readme_set_sealed_test_vector() {
        let backend = Backend {
            pid: 4242,
            cancel_key: 987654321,
        };
        let action = sealed("acme", r#"{"tenant":"acme","database_name":"acme_db"}"#);
        assert_eq!(sign(&key(), action, backend, 3), README_SEALED_VECTOR);
        assert_eq!(
            verify(&keys(), action, backend, 2, README_SEALED_VECTOR),
            Ok(3)
        );
    }

    const README_SEALED_VECTOR: &str = "v2.3.a461189b2c4fe5121299deb90be9b4e643a6c6d0fb50b243456288713ee4b6bbd8d69800b714e9490e28d5021ca4cea865fc4da191d84e954b5b89b2d4a7870c";

    #[test]
    fn sealed_message_bytes() {
        let doc = r#"{"enabled":true}"#;
        assert_eq!(
            message(sealed("acme", doc), be(7), 5),
            b"pg_tenant/v2\0set-sealed\0acme\x007\x00-123456789\x005\x00{\"enabled\":true}"
                .to_vec()
        );
        assert_eq!(
            message(subject_sealed("acme", "alice", "{}", doc), be(7), 5),
            b"pg_tenant/v2\0set-subject-sealed\0acme\x007\x00-123456789\x005\x00alice\0{}\0{\"enabled\":true}"
                .to_vec()
        );
    }

    #[test]
    fn sealed_actions_are_separate_domains() {
        let k = keys();
        let bad = Err(TokenError::BadSignature);
        let doc = r#"{"enabled":true,"read_only":false}"#;
        let actions = [
            Action::Set("acme"),
            Action::Clear,
            subj("acme", "alice", "{}"),
            sealed("acme", doc),
            subject_sealed("acme", "alice", "{}", doc),
        ];
        for (i, signed) in actions.iter().enumerate() {
            let t = sign(&key(), *signed, be(7), 5);
            for (j, tried) in actions.iter().enumerate() {
                let want = if i == j { Ok(5) } else { bad };
                assert_eq!(
                    verify(&k, *tried, be(7), 0, &t),
                    want,
                    "{signed:?} as {tried:?}"
                );
            }
        }
        // Bound to the tenant, the backend and the nonce as the others are.
        let t = sign(&key(), sealed("acme", doc), be(7), 5);
        assert_eq!(verify(&k, sealed("globex", doc), be(7), 0, &t), bad);
        assert_eq!(verify(&k, sealed("acme", doc), be(8), 0, &t), bad);
        assert_eq!(
            verify(&k, sealed("acme", doc), be(7), 5, &t),
            Err(TokenError::Replayed)
        );
    }

    #[test]
    fn sealed_tokens_are_bound_to_every_byte_of_the_document() {
        let k = keys();
        let doc = r#"{"enabled":true,"read_only":false,"allow_ddl":false}"#;
        let t = sign(&key(), sealed("acme", doc), be(7), 5);
        let ts = sign(&key(), subject_sealed("acme", "alice", "{}", doc), be(7), 6);
        for i in 1..doc.len() - 1 {
            let mut d = doc.as_bytes().to_vec();
            d[i] ^= 1;
            let d = String::from_utf8(d).unwrap();
            let bad = Err(TokenError::BadSignature);
            assert_eq!(verify(&k, sealed("acme", &d), be(7), 0, &t), bad, "{d}");
            assert_eq!(
                verify(&k, subject_sealed("acme", "alice", "{}", &d), be(7), 0, &ts),
                bad
            );
        }
        // Bytes moved between claims and document change the message.
        assert_eq!(
            verify(
                &k,
                subject_sealed("acme", "alice", "{} ", doc),
                be(7),
                0,
                &ts
            ),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn document_limits() {
        let longest = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_DOCUMENT_LEN - 8));
        assert_eq!(longest.len(), MAX_DOCUMENT_LEN);
        for ok in ["{}", " {\"a\": 1}\n", longest.as_str()] {
            assert_eq!(check_document(ok), Ok(()));
            let t = sign(&key(), sealed("acme", ok), be(7), 5);
            assert_eq!(verify(&keys(), sealed("acme", ok), be(7), 0, &t), Ok(5));
        }
        let too_long = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_DOCUMENT_LEN - 7));
        for bad in ["", "[]", "null", "{", "{\"a\":\"\0\"}", too_long.as_str()] {
            assert_eq!(check_document(bad), Err(TokenError::BadDocument), "{bad:?}");
            // Signed anyway: refused before the signature is looked at.
            let t = sign(&key(), sealed("acme", bad), be(7), 5);
            assert_eq!(
                verify(&keys(), sealed("acme", bad), be(7), 0, &t),
                Err(TokenError::BadDocument)
            );
            let t = sign(&key(), subject_sealed("acme", "alice", "{}", bad), be(7), 5);
            assert_eq!(
                verify(
                    &keys(),
                    subject_sealed("acme", "alice", "{}", bad),
                    be(7),
                    0,
                    &t
                ),
                Err(TokenError::BadDocument)
            );
        }
        // The subject limits hold in the sealed form too.
        let t = sign(&key(), subject_sealed("acme", "", "{}", "{}"), be(7), 5);
        assert_eq!(
            verify(
                &keys(),
                subject_sealed("acme", "", "{}", "{}"),
                be(7),
                0,
                &t
            ),
            Err(TokenError::BadSubject)
        );
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
}
