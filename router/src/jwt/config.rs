//! `[auth.jwt]`: which user name selects JWT authentication, where the
//! keys are, and which claims carry the tenant, the login role and the end
//! user. Checked by `validate` (no file is read there); `JwtVerifier::load`
//! reads the key files.

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use std::path::PathBuf;

/// Most leeway accepted for `exp`/`nbf`: clock skew, not a grace period.
pub const MAX_LEEWAY_S: u64 = 600;
/// Longest PostgreSQL identifier (NAMEDATALEN - 1).
const MAX_NAME: usize = 63;

/// The router's `[auth.jwt]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// The startup user name that selects JWT authentication; the password
    /// is then the token.
    pub user: String,
    /// File holding the raw HS256 secret (at least 32 bytes after a
    /// trailing newline is trimmed); mode 0600 or stricter.
    pub hs256_secret_file: Option<PathBuf>,
    /// PEM public keys (`-----BEGIN PUBLIC KEY-----`, or PKCS#1 `RSA PUBLIC
    /// KEY`), one per file. The algorithm follows from the key: RSA →
    /// RS256, EC P-256 → ES256, EC P-384 → ES384, Ed25519 → EdDSA.
    pub public_key_files: Vec<PathBuf>,
    /// A JWKS document (`{"keys": [...]}`) saved to a file. A token with a
    /// `kid` is checked with the keys of that `kid`. Each key's algorithm is
    /// its `alg`, or follows from `kty`/`crv` when it has none.
    pub jwks_file: Option<PathBuf>,
    /// Accepted `alg` values. Empty: those of the configured keys. `none`
    /// is never accepted; HS256 only with `hs256_secret_file`.
    pub algorithms: Vec<Algorithm>,
    /// When set, the token's `iss` must be exactly this.
    pub issuer: Option<String>,
    /// When non-empty, the token's `aud` (a string or a list) must contain
    /// one of these. When empty, a token that has an `aud` is refused
    /// (RFC 7519 §4.1.3: it was meant for someone else).
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    /// Claim with the tenant id. A dotted path (`app_metadata.tenant`)
    /// walks into objects when there is no top-level claim of that exact
    /// name (so `https://example.com/tenant` still names one claim).
    pub tenant_claim: String,
    /// Claim with the PostgreSQL login role; dotted like `tenant_claim`.
    pub role_claim: String,
    /// Login roles a token may name. Must not be empty.
    pub allowed_roles: Vec<String>,
    /// Login role when the token has no role claim; one of `allowed_roles`.
    pub default_role: Option<String>,
    /// Top-level claim with the end user (required in every token).
    pub subject_claim: String,
    /// Top-level claims copied into the session's claims JSON (those
    /// present, keys sorted, at most 8192 bytes).
    pub pass_claims: Vec<String>,
    /// Close the session when the token's `exp` passes.
    pub end_session_at_expiry: bool,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            user: "jwt".into(),
            hs256_secret_file: None,
            public_key_files: Vec::new(),
            jwks_file: None,
            algorithms: Vec::new(),
            issuer: None,
            audience: Vec::new(),
            leeway_s: 30,
            tenant_claim: "tenant".into(),
            role_claim: "role".into(),
            allowed_roles: Vec::new(),
            default_role: None,
            subject_claim: "sub".into(),
            pass_claims: Vec::new(),
            end_session_at_expiry: true,
        }
    }
}

/// Why `[auth.jwt]` or one of its files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("auth.jwt: {0}")]
    Invalid(String),
    #[error("auth.jwt: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("auth.jwt: hs256_secret_file {path} is mode {mode:04o}: it must not be readable or writable by group or others (chmod 600)")]
    SecretPermissions { path: PathBuf, mode: u32 },
    #[error(
        "auth.jwt: hs256_secret_file {path} holds {len} bytes: an HS256 secret needs at least 32"
    )]
    SecretTooShort { path: PathBuf, len: usize },
    #[error("auth.jwt: {path}: {reason}")]
    BadKey { path: PathBuf, reason: String },
}

impl JwtConfig {
    /// Parse the body of an `[auth.jwt]` table (used by the tests; the
    /// router reads it as part of its own config).
    pub fn from_toml(text: &str) -> Result<JwtConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Check what serde cannot; reads no file.
    pub fn validate(&self) -> Result<(), JwtConfigError> {
        let bad = |m: String| Err(JwtConfigError::Invalid(m));
        if !is_name(&self.user) {
            return bad(format!(
                "user must be 1 to {MAX_NAME} bytes without NUL, got {:?}",
                self.user
            ));
        }
        if self.hs256_secret_file.is_none()
            && self.public_key_files.is_empty()
            && self.jwks_file.is_none()
        {
            return bad("no key: set hs256_secret_file, public_key_files or jwks_file".into());
        }
        for alg in &self.algorithms {
            match alg {
                Algorithm::HS256 if self.hs256_secret_file.is_none() => {
                    return bad("algorithms lists HS256 but no hs256_secret_file is set".into())
                }
                Algorithm::HS384 | Algorithm::HS512 => {
                    return bad(format!(
                        "algorithm {alg:?} is not supported: shared secrets use HS256"
                    ))
                }
                _ => {}
            }
        }
        if self.leeway_s > MAX_LEEWAY_S {
            return bad(format!(
                "leeway_s is {}: at most {MAX_LEEWAY_S} (it allows for clock skew)",
                self.leeway_s
            ));
        }
        if self.issuer.as_deref() == Some("") {
            return bad("issuer is empty (leave it out to accept any issuer)".into());
        }
        if self.audience.iter().any(String::is_empty) {
            return bad("audience has an empty entry".into());
        }
        for (field, path) in [
            ("tenant_claim", &self.tenant_claim),
            ("role_claim", &self.role_claim),
        ] {
            if path.is_empty() || path.split('.').any(str::is_empty) {
                return bad(format!(
                    "{field} {path:?} must be a claim name or a dotted path of names"
                ));
            }
        }
        if self.subject_claim.is_empty() {
            return bad("subject_claim is empty".into());
        }
        if self.allowed_roles.is_empty() {
            return bad("allowed_roles is empty: list the login roles a token may name".into());
        }
        if let Some(r) = self.allowed_roles.iter().find(|r| !is_name(r)) {
            return bad(format!(
                "allowed_roles entry {r:?} is not a role name (1 to {MAX_NAME} bytes, no NUL)"
            ));
        }
        if let Some(d) = &self.default_role {
            if !self.allowed_roles.contains(d) {
                return bad(format!("default_role {d:?} is not in allowed_roles"));
            }
        }
        if self.pass_claims.iter().any(String::is_empty) {
            return bad("pass_claims has an empty entry".into());
        }
        Ok(())
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && !s.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> JwtConfig {
        JwtConfig {
            public_key_files: vec!["/k.pem".into()],
            allowed_roles: vec!["app_user".into()],
            ..JwtConfig::default()
        }
    }

    #[test]
    fn toml_snippet_parses_with_defaults() {
        let c = JwtConfig::from_toml(
            r#"
            public_key_files = ["/etc/tenant-router/idp.pem"]
            allowed_roles = ["app_user", "app_admin"]
            default_role = "app_user"
            issuer = "https://idp.example.com/"
            audience = ["tenant-router"]
            algorithms = ["RS256", "EdDSA"]
            tenant_claim = "app_metadata.tenant"
            pass_claims = ["email", "groups"]
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.user, "jwt");
        assert_eq!(c.leeway_s, 30);
        assert_eq!(c.role_claim, "role");
        assert_eq!(c.subject_claim, "sub");
        assert!(c.end_session_at_expiry);
        assert_eq!(c.algorithms, vec![Algorithm::RS256, Algorithm::EdDSA]);
        assert_eq!(c.tenant_claim, "app_metadata.tenant");
    }

    #[test]
    fn unknown_fields_and_algorithms_are_refused() {
        let e = JwtConfig::from_toml("allowed_role = ['a']").unwrap_err();
        assert!(
            e.to_string().contains("unknown field `allowed_role`"),
            "{e}"
        );
        for alg in ["none", "None", "HS257"] {
            let e = JwtConfig::from_toml(&format!("algorithms = ['{alg}']")).unwrap_err();
            assert!(e.to_string().contains("unknown variant"), "{alg}: {e}");
        }
    }

    #[test]
    fn validation_names_the_problem() {
        valid().validate().unwrap();
        let check = |c: JwtConfig, want: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        };
        check(
            JwtConfig {
                public_key_files: vec![],
                ..valid()
            },
            "no key",
        );
        check(
            JwtConfig {
                allowed_roles: vec![],
                ..valid()
            },
            "allowed_roles is empty",
        );
        check(
            JwtConfig {
                default_role: Some("admin".into()),
                ..valid()
            },
            "not in allowed_roles",
        );
        check(
            JwtConfig {
                algorithms: vec![Algorithm::HS256],
                ..valid()
            },
            "no hs256_secret_file",
        );
        check(
            JwtConfig {
                hs256_secret_file: Some("/s".into()),
                algorithms: vec![Algorithm::HS512],
                ..valid()
            },
            "not supported",
        );
        check(
            JwtConfig {
                leeway_s: 3600,
                ..valid()
            },
            "leeway_s",
        );
        check(
            JwtConfig {
                tenant_claim: "app_metadata..tenant".into(),
                ..valid()
            },
            "dotted path",
        );
        check(
            JwtConfig {
                user: String::new(),
                ..valid()
            },
            "user must be",
        );
        check(
            JwtConfig {
                issuer: Some(String::new()),
                ..valid()
            },
            "issuer is empty",
        );
        check(
            JwtConfig {
                allowed_roles: vec!["a\0b".into()],
                ..valid()
            },
            "not a role name",
        );
        check(
            JwtConfig {
                pass_claims: vec![String::new()],
                ..valid()
            },
            "pass_claims",
        );
    }
}
