//! Reading the verification keys named by `[auth.jwt]`. Every key is bound
//! to exactly one algorithm when it is read, from its type (and a JWK's
//! `alg`); a token is only ever checked with keys of its own `alg`, so a
//! public key can never be used as an HMAC secret.

use super::config::{JwtConfig, JwtConfigError};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use std::path::{Path, PathBuf};

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;
/// Largest key or JWKS file read.
const MAX_KEY_FILE: u64 = 1 << 20;
/// Most keys in a JWKS (a token without `kid` is tried with each key of
/// its algorithm).
pub const MAX_JWKS_KEYS: usize = 64;

/// One verification key and the only algorithm it verifies.
#[derive(Clone)]
pub(crate) struct Key {
    pub alg: Algorithm,
    /// The JWK's `kid`; None for PEM keys and the HS256 secret.
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// Read from the JWKS file.
    pub from_jwks: bool,
}

/// Read every configured key; `cfg` is already validated.
pub(crate) fn load_keys(cfg: &JwtConfig) -> Result<Vec<Key>, JwtConfigError> {
    let mut keys = Vec::new();
    if let Some(path) = &cfg.hs256_secret_file {
        keys.push(Key {
            alg: Algorithm::HS256,
            kid: None,
            key: DecodingKey::from_secret(&read_secret(path)?),
            path: path.clone(),
            from_jwks: false,
        });
    }
    for path in &cfg.public_key_files {
        let pem = read_limited(path)?;
        keys.push(pem_key(path, &pem)?);
    }
    if let Some(path) = &cfg.jwks_file {
        keys.extend(jwks_keys(path, &read_limited(path)?)?);
    }
    Ok(keys)
}

fn read_limited(path: &Path) -> Result<Vec<u8>, JwtConfigError> {
    let read_err = |source| JwtConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let len = std::fs::metadata(path).map_err(read_err)?.len();
    if len > MAX_KEY_FILE {
        return Err(bad_key(
            path,
            format!("{len} bytes is too large for a key file"),
        ));
    }
    std::fs::read(path).map_err(read_err)
}

fn bad_key(path: &Path, reason: impl Into<String>) -> JwtConfigError {
    JwtConfigError::BadKey {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// The raw secret: mode 0600 or stricter, trailing newline trimmed, at
/// least 32 bytes.
fn read_secret(path: &Path) -> Result<Vec<u8>, JwtConfigError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| JwtConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(JwtConfigError::SecretPermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let mut secret = read_limited(path)?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(JwtConfigError::SecretTooShort {
            path: path.to_owned(),
            len: secret.len(),
        });
    }
    Ok(secret)
}

/// A PEM public key; its type decides its algorithm.
fn pem_key(path: &Path, pem: &[u8]) -> Result<Key, JwtConfigError> {
    let text = std::str::from_utf8(pem).map_err(|_| bad_key(path, "not a PEM file"))?;
    let tag = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"));
    match tag {
        Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {}
        Some(t) if t.contains("PRIVATE KEY") => {
            return Err(bad_key(
                path,
                "is a private key: give the public key (openssl pkey -in KEY -pubout)",
            ))
        }
        Some(t) => {
            return Err(bad_key(
                path,
                format!("holds a {t}, not a PEM public key (BEGIN PUBLIC KEY)"),
            ))
        }
        None => return Err(bad_key(path, "no PEM block (BEGIN PUBLIC KEY) found")),
    }
    let (alg, key) = if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        (Algorithm::RS256, k)
    } else if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        // The uncompressed point: 0x04 || x || y.
        match k.try_get_as_bytes().map(<[u8]>::len) {
            Ok(65) => (Algorithm::ES256, k),
            Ok(97) => (Algorithm::ES384, k),
            _ => {
                return Err(bad_key(
                    path,
                    "EC key on an unsupported curve (P-256 or P-384)",
                ))
            }
        }
    } else if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        (Algorithm::EdDSA, k)
    } else {
        return Err(bad_key(
            path,
            "not an RSA, EC (P-256, P-384) or Ed25519 public key",
        ));
    };
    check_usable(path, &key, alg)?;
    Ok(Key {
        alg,
        kid: None,
        key,
        path: path.to_owned(),
        from_jwks: false,
    })
}

/// Refuse at load, not at the first token, a key that cannot verify
/// anything or is too weak: an Ed25519 key that is not 32 bytes, an RSA
/// modulus under 2048 bits; then build a verifier once.
fn check_usable(path: &Path, key: &DecodingKey, alg: Algorithm) -> Result<(), JwtConfigError> {
    match (alg.family(), key.kind()) {
        (AlgorithmFamily::Ed, DecodingKeyKind::SecretOrDer(b)) if b.len() != 32 => {
            return Err(bad_key(path, "Ed25519 public key is not 32 bytes"));
        }
        // PKCS#1 DER: the modulus alone is 256 bytes at 2048 bits.
        (AlgorithmFamily::Rsa, DecodingKeyKind::SecretOrDer(der)) if der.len() < 256 => {
            return Err(bad_key(path, "RSA key shorter than 2048 bits"));
        }
        (AlgorithmFamily::Rsa, DecodingKeyKind::RsaModulusExponent { n, .. })
            if n.iter().skip_while(|b| **b == 0).count() < 256 =>
        {
            return Err(bad_key(path, "RSA key shorter than 2048 bits"));
        }
        _ => {}
    }
    jsonwebtoken::crypto::verify("AAAA", b"probe", key, alg)
        .map(|_| ())
        .map_err(|e| bad_key(path, format!("unusable {alg:?} key: {e}")))
}

/// The usable signing keys of a JWKS document. Keys for encryption, or of
/// a type or curve not supported, are skipped; symmetric (`oct`) keys and
/// keys whose `alg` contradicts their type are errors.
fn jwks_keys(path: &Path, text: &[u8]) -> Result<Vec<Key>, JwtConfigError> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(text).map_err(|e| {
        bad_key(
            path,
            format!("not a JWKS document ({{\"keys\": [...]}}): {e}"),
        )
    })?;
    if set.keys.len() > MAX_JWKS_KEYS {
        return Err(bad_key(
            path,
            format!(
                "{} keys in the JWKS, at most {MAX_JWKS_KEYS}",
                set.keys.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, value) in set.keys.into_iter().enumerate() {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(j) => j,
            Err(e) => return Err(bad_key(path, format!("key {i}: {e}"))),
        };
        let at = |m: String| {
            let kid = jwk.common.key_id.as_deref().unwrap_or("-");
            bad_key(path, format!("key {i} (kid {kid}): {m}"))
        };
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        if matches!(&jwk.common.key_operations, Some(ops) if !ops.contains(&KeyOperations::Verify))
        {
            continue;
        }
        let derived = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => continue,
            },
            AlgorithmParameters::OctetKeyPair(p) => match p.curve {
                EllipticCurve::Ed25519 => Algorithm::EdDSA,
                _ => continue,
            },
            AlgorithmParameters::OctetKey(_) => {
                return Err(at(
                    "a symmetric (oct) key: HS256 secrets go in hs256_secret_file".into(),
                ))
            }
            _ => continue,
        };
        let alg = match jwk.common.key_algorithm {
            None => derived,
            Some(ka) => {
                let Ok(alg) = Algorithm::try_from(ka) else {
                    continue; // an encryption algorithm (RSA-OAEP...)
                };
                // Same family, and for EC the curve's own algorithm.
                let fits = alg.family() == derived.family()
                    && (derived.family() != AlgorithmFamily::Ec || alg == derived);
                if !fits {
                    return Err(at(format!("alg {alg:?} does not fit the key type")));
                }
                alg
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| at(e.to_string()))?;
        check_usable(path, &key, alg).map_err(|e| match e {
            JwtConfigError::BadKey { reason, .. } => at(reason),
            other => other,
        })?;
        out.push(Key {
            alg,
            kid: jwk.common.key_id.clone(),
            key,
            path: path.to_owned(),
            from_jwks: true,
        });
    }
    if out.is_empty() {
        return Err(bad_key(path, "no usable signing key in the JWKS"));
    }
    Ok(out)
}
