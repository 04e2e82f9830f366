//! JWT as a password: for the user name `[auth.jwt] user` the client's
//! password is a signed JWT, and the tenant, the login role and the end
//! user (subject) come from its claims. See `docs/src/authentication/jwt.md`.
//!
//! `JwtVerifier::load` reads the keys of a validated `JwtConfig` (at start
//! and on SIGHUP; the caller swaps the new value in atomically);
//! `JwtVerifier::verify` checks one token against a given clock.
//!
//! Signatures are checked by `jsonwebtoken` (pure-Rust `rust_crypto`
//! backend). Everything else is done here, in this order: size and shape,
//! the header's `alg` against the allowed list (`none` is never allowed),
//! the key (by `kid`, and only keys bound to that `alg`: a public key is
//! never an HMAC secret), the signature, then `exp`/`nbf` with the leeway,
//! `iss`, `aud`, tenant, role, subject and the passed claims. No message
//! repeats the token or a secret; values taken from an unverified header
//! (`alg`, `kid`) are shown only when short and printable.
//!
//! Wiring: the document's `[auth.jwt]` is a `JwtConfig`; `Config::build`
//! calls `JwtVerifier::load` (its errors are config errors) and keeps the
//! verifier in `Config::auth`, so a reload swaps a new one in. The session,
//! for a startup user equal to `JwtVerifier::user()`, asks for a cleartext
//! password, calls `verify(password, SystemTime::now())`, refuses with
//! `JwtError::sqlstate()` and counts `JwtError::reason()`, then proceeds
//! with `JwtIdentity`'s tenant and login role.

mod config;
mod keys;
#[cfg(test)]
mod tests;

pub use config::{JwtConfig, JwtConfigError, MAX_LEEWAY_S};
pub use jsonwebtoken::Algorithm;
pub use keys::MIN_SECRET_LEN;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest token accepted; longer ones are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Largest claims JSON carried into the session.
pub const MAX_CLAIMS_JSON: usize = 8192;
/// Longest subject.
pub const MAX_SUBJECT_LEN: usize = 256;

/// Who a verified token says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIdentity {
    /// A valid tenant id (`pg_tenant_token::valid_tenant_id`).
    pub tenant: String,
    /// One of `allowed_roles`: the PostgreSQL role to log in as.
    pub login_role: String,
    /// The end user, 1 to 256 bytes, no NUL.
    pub subject: String,
    /// Compact JSON object of the `pass_claims` present, keys sorted.
    pub claims_json: String,
    /// The token's `exp`.
    pub expires_at: SystemTime,
}

/// Why a token was refused. Messages never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    #[error("JWT algorithm {0} is not allowed")]
    AlgorithmNotAllowed(String),
    #[error("JWT signed with an unknown key (kid {0})")]
    UnknownKey(String),
    #[error("JWT signature does not verify")]
    BadSignature,
    #[error("JWT has expired")]
    Expired,
    #[error("JWT is not valid yet (nbf)")]
    NotYetValid,
    #[error("JWT issuer (iss) is missing or not the configured issuer")]
    WrongIssuer,
    #[error("JWT audience (aud) does not match the configured audience")]
    WrongAudience,
    #[error("JWT has no \"{0}\" claim")]
    MissingClaim(String),
    #[error("JWT claim \"{0}\" has the wrong type or value")]
    InvalidClaim(String),
    #[error("JWT claim \"{0}\" is not a valid tenant id")]
    BadTenant(String),
    #[error("JWT role {0} is not one of the allowed roles")]
    RoleNotAllowed(String),
    #[error("JWT subject (claim \"{0}\") must be 1 to 256 bytes without NUL")]
    BadSubject(String),
    #[error("JWT claims to pass are {0} bytes as JSON, more than 8192")]
    ClaimsTooLarge(usize),
}

impl JwtError {
    /// Short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Malformed(_) => "malformed",
            JwtError::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            JwtError::UnknownKey(_) => "unknown_key",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::MissingClaim(_) => "missing_claim",
            JwtError::InvalidClaim(_) => "invalid_claim",
            JwtError::BadTenant(_) => "bad_tenant",
            JwtError::RoleNotAllowed(_) => "role_not_allowed",
            JwtError::BadSubject(_) => "bad_subject",
            JwtError::ClaimsTooLarge(_) => "claims_too_large",
        }
    }

    /// SQLSTATE of the FATAL: 28P01 (invalid_password) when the token
    /// itself is not acceptable, 28000 (invalid_authorization_specification)
    /// when a valid token's claims do not authorize a session.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            JwtError::Malformed(_)
            | JwtError::AlgorithmNotAllowed(_)
            | JwtError::UnknownKey(_)
            | JwtError::BadSignature
            | JwtError::Expired
            | JwtError::NotYetValid
            | JwtError::WrongIssuer
            | JwtError::WrongAudience => "28P01",
            JwtError::MissingClaim(_)
            | JwtError::InvalidClaim(_)
            | JwtError::BadTenant(_)
            | JwtError::RoleNotAllowed(_)
            | JwtError::BadSubject(_)
            | JwtError::ClaimsTooLarge(_) => "28000",
        }
    }
}

/// The keys and rules of one `[auth.jwt]`. A plain value: the router
/// keeps it behind an `Arc`/`ArcSwap` and replaces it on reload.
#[derive(Clone)]
pub struct JwtVerifier {
    cfg: JwtConfig,
    keys: Vec<keys::Key>,
    /// Accepted `alg` values; each has at least one key.
    allowed: Vec<Algorithm>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("user", &self.cfg.user)
            .field("keys", &self.keys.len())
            .field("algorithms", &self.allowed)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

impl JwtVerifier {
    /// Validate `cfg` and read its key files.
    pub fn load(cfg: &JwtConfig) -> Result<JwtVerifier, JwtConfigError> {
        cfg.validate()?;
        let mut keys = keys::load_keys(cfg)?;
        let allowed = if cfg.algorithms.is_empty() {
            let mut a: Vec<Algorithm> = Vec::new();
            for k in &keys {
                if !a.contains(&k.alg) {
                    a.push(k.alg);
                }
            }
            a
        } else {
            // A key named on its own must fit the list; a JWKS may hold
            // keys for other uses, which are left out.
            if let Some(k) = keys
                .iter()
                .find(|k| !k.from_jwks && !cfg.algorithms.contains(&k.alg))
            {
                return Err(JwtConfigError::BadKey {
                    path: k.path.clone(),
                    reason: format!("is an {:?} key, not in algorithms", k.alg),
                });
            }
            keys.retain(|k| cfg.algorithms.contains(&k.alg));
            if let Some(a) = cfg
                .algorithms
                .iter()
                .find(|a| !keys.iter().any(|k| k.alg == **a))
            {
                return Err(JwtConfigError::Invalid(format!(
                    "algorithms lists {a:?} but no configured key is an {a:?} key"
                )));
            }
            cfg.algorithms.clone()
        };
        Ok(JwtVerifier {
            cfg: cfg.clone(),
            keys,
            allowed,
        })
    }

    /// The configuration this verifier was loaded from.
    pub fn config(&self) -> &JwtConfig {
        &self.cfg
    }

    /// The startup user name that selects JWT authentication.
    pub fn user(&self) -> &str {
        &self.cfg.user
    }

    pub fn end_session_at_expiry(&self) -> bool {
        self.cfg.end_session_at_expiry
    }

    /// The accepted `alg` values.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.allowed
    }

    /// Check `token` at time `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<JwtIdentity, JwtError> {
        if token.is_empty() {
            return Err(JwtError::Malformed("empty"));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed("longer than 16 KiB"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("not three dot-separated parts"));
        };
        let header: Header = decode_part(h).ok_or(JwtError::Malformed("bad header"))?;
        if header.crit.is_some() {
            return Err(JwtError::Malformed(
                "critical header extensions are not supported",
            ));
        }
        let alg = Algorithm::from_str(&header.alg)
            .ok()
            .filter(|a| self.allowed.contains(a))
            .ok_or_else(|| JwtError::AlgorithmNotAllowed(shown(&header.alg)))?;
        let candidates = self.keys_for(alg, header.kid.as_deref())?;
        let message = &token[..h.len() + 1 + p.len()];
        let mut verified = false;
        for key in candidates {
            match jsonwebtoken::crypto::verify(sig, message.as_bytes(), &key.key, alg) {
                Ok(true) => {
                    verified = true;
                    break;
                }
                Ok(false) => {}
                Err(_) => return Err(JwtError::Malformed("bad signature encoding")),
            }
        }
        if !verified {
            return Err(JwtError::BadSignature);
        }
        // A key said twice means different things to different readers
        // (serde_json keeps the last, others the first): refuse it.
        let _: UniqueKeys = decode_part(p).ok_or(JwtError::Malformed(
            "payload is not JSON, or an object in it repeats a key",
        ))?;
        let claims: Map<String, Value> =
            decode_part(p).ok_or(JwtError::Malformed("payload is not a JSON object"))?;
        self.check_claims(&claims, now)
    }

    /// The keys a token of `alg` (and `kid`) may be signed with.
    fn keys_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<Vec<&keys::Key>, JwtError> {
        let of_alg = self.keys.iter().filter(|k| k.alg == alg);
        let Some(kid) = kid else {
            // Without a kid: the keys configured without one (key files,
            // the secret), or the only key of that algorithm. Never every
            // JWKS key: one unauthenticated attempt costs at most the
            // operator's own key files, not up to 64 signature checks.
            let unnamed: Vec<&keys::Key> = of_alg.clone().filter(|k| k.kid.is_none()).collect();
            if !unnamed.is_empty() {
                return Ok(unnamed);
            }
            let all: Vec<&keys::Key> = of_alg.collect();
            return match all.len() {
                1 => Ok(all),
                0 => Err(JwtError::AlgorithmNotAllowed(format!("{alg:?}"))),
                _ => Err(JwtError::UnknownKey("none: the token names no kid".into())),
            };
        };
        let named: Vec<&keys::Key> = self
            .keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect();
        if !named.is_empty() {
            let fit: Vec<&keys::Key> = named.into_iter().filter(|k| k.alg == alg).collect();
            if fit.is_empty() {
                // The key of that kid is bound to another algorithm.
                return Err(JwtError::AlgorithmNotAllowed(format!("{alg:?}")));
            }
            return Ok(fit);
        }
        // No JWK of that kid: keys configured without one may still sign.
        let unnamed: Vec<&keys::Key> = of_alg.filter(|k| k.kid.is_none()).collect();
        if unnamed.is_empty() {
            return Err(JwtError::UnknownKey(shown(kid)));
        }
        Ok(unnamed)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now: SystemTime,
    ) -> Result<JwtIdentity, JwtError> {
        let cfg = &self.cfg;
        let now_s = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        let leeway = cfg.leeway_s as f64;

        let exp = match claims.get("exp") {
            None | Some(Value::Null) => return Err(JwtError::MissingClaim("exp".into())),
            Some(v) => numeric_date(v).ok_or_else(|| JwtError::InvalidClaim("exp".into()))?,
        };
        let expires_at = UNIX_EPOCH
            .checked_add(exp)
            .ok_or_else(|| JwtError::InvalidClaim("exp".into()))?;
        if now_s > exp.as_secs_f64() + leeway {
            return Err(JwtError::Expired);
        }
        match claims.get("nbf") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let nbf = numeric_date(v).ok_or_else(|| JwtError::InvalidClaim("nbf".into()))?;
                if now_s + leeway < nbf.as_secs_f64() {
                    return Err(JwtError::NotYetValid);
                }
            }
        }
        if let Some(iss) = &cfg.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(iss.as_str()) {
                return Err(JwtError::WrongIssuer);
            }
        }
        self.check_audience(claims.get("aud"))?;

        let tenant = match lookup(claims, &cfg.tenant_claim) {
            None => return Err(JwtError::MissingClaim(cfg.tenant_claim.clone())),
            Some(Value::String(t)) if pg_tenant_token::valid_tenant_id(t) => t.clone(),
            Some(_) => return Err(JwtError::BadTenant(cfg.tenant_claim.clone())),
        };
        let login_role = match lookup(claims, &cfg.role_claim) {
            None => cfg
                .default_role
                .clone()
                .ok_or_else(|| JwtError::MissingClaim(cfg.role_claim.clone()))?,
            Some(Value::String(r)) if cfg.allowed_roles.contains(r) => r.clone(),
            Some(Value::String(r)) => return Err(JwtError::RoleNotAllowed(shown(r))),
            Some(_) => return Err(JwtError::InvalidClaim(cfg.role_claim.clone())),
        };
        let subject = match claims.get(&cfg.subject_claim) {
            None | Some(Value::Null) => {
                return Err(JwtError::MissingClaim(cfg.subject_claim.clone()))
            }
            Some(Value::String(s))
                if !s.is_empty() && s.len() <= MAX_SUBJECT_LEN && !s.contains('\0') =>
            {
                s.clone()
            }
            Some(_) => return Err(JwtError::BadSubject(cfg.subject_claim.clone())),
        };
        let passed: BTreeMap<&str, &Value> = cfg
            .pass_claims
            .iter()
            .filter_map(|name| claims.get(name).map(|v| (name.as_str(), v)))
            .collect();
        let claims_json = serde_json::to_string(&passed)
            .map_err(|_| JwtError::Malformed("claims cannot be written as JSON"))?;
        if claims_json.len() > MAX_CLAIMS_JSON {
            return Err(JwtError::ClaimsTooLarge(claims_json.len()));
        }
        Ok(JwtIdentity {
            tenant,
            login_role,
            subject,
            claims_json,
            expires_at,
        })
    }

    /// With `audience` configured, `aud` (a string or a list of strings)
    /// must name one of it; without, a token that has an `aud` was meant
    /// for someone else.
    fn check_audience(&self, aud: Option<&Value>) -> Result<(), JwtError> {
        let wanted = &self.cfg.audience;
        let names: Vec<&str> = match aud {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => {
                let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                if names.len() != a.len() {
                    return Err(JwtError::WrongAudience);
                }
                names
            }
            Some(_) => return Err(JwtError::WrongAudience),
        };
        let ok = if wanted.is_empty() {
            names.is_empty()
        } else {
            names.iter().any(|n| wanted.iter().any(|w| w == n))
        };
        if ok {
            Ok(())
        } else {
            Err(JwtError::WrongAudience)
        }
    }
}

/// Any JSON value in which no object, at any depth, repeats a key.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
        Ok(UniqueKeys)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("repeated key"));
            }
            map.next_value::<UniqueKeys>()?;
        }
        Ok(UniqueKeys)
    }
}

/// A base64url (unpadded) JSON part of the token.
fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A NumericDate (seconds since the epoch, possibly fractional, not
/// negative).
fn numeric_date(v: &Value) -> Option<Duration> {
    let n = v.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(Duration::from_secs(u));
    }
    let f = n.as_f64()?;
    if f < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(f).ok()
}

/// The claim at `path`: the top-level claim of that exact name if there is
/// one, else the dotted path walked through nested objects. JSON null is
/// absent.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let found = match claims.get(path) {
        Some(v) => Some(v),
        None if path.contains('.') => {
            let mut names = path.split('.');
            let first = claims.get(names.next()?);
            names.try_fold(first?, |cur, name| cur.as_object()?.get(name))
        }
        None => None,
    };
    found.filter(|v| !v.is_null())
}

/// A value from the token for a message: itself when short and printable,
/// else a placeholder (no log injection, no long echoes).
fn shown(s: &str) -> String {
    if s.len() <= 64 && s.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        format!("\"{s}\"")
    } else {
        "(not shown)".into()
    }
}
