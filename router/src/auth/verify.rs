//! The router checks the client itself, before any connection slot or
//! backend is taken:
//!
//! - against a SCRAM-SHA-256 verifier (a tenant secret, the login role's
//!   own, or a mock one for a name that has none): SCRAM-SHA-256, and
//!   SCRAM-SHA-256-PLUS with `tls-server-end-point` over the client's TLS;
//! - against an md5 verifier: a cleartext password (the md5 a client
//!   computes salts with the user name it sent, `app_user.acme`, which is
//!   not the role's), only over TLS or from a loopback peer unless
//!   `auth.allow_cleartext_without_tls`.
//!
//! Nothing is sent to the client after its last message until the
//! router has logged into PostgreSQL: the session then sends the SCRAM
//! server-final message (if any) and AuthenticationOk.

use super::authenticated::{Authenticated, BackendLogin};
use super::error::{AuthError, LoginError};
use super::failure::Failure;
use super::scram::{ScramError, ServerExchange, Verifier};
use crate::catalog::{Catalog, CatalogError, Secret, TenantInfo};
use crate::codec::MAX_PREAUTH_LEN;
use crate::config::{Config, LoginMode};
use crate::frontend::{Frontend, FrontendError};
use crate::limits::TenantCounters;
use crate::metrics::Metrics;
use bytes::{BufMut, BytesMut};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What the router's own check reads besides the client: the catalog
/// (login verifiers), the metrics (failures) and the mock verifiers.
pub struct Checker {
    pub catalog: Arc<Catalog>,
    pub metrics: Arc<Metrics>,
    /// Secret of mock SCRAM salts, derived from the context signing key:
    /// an unknown name sees the same salt on every attempt, after a
    /// restart, and from every router that shares the key (as PostgreSQL
    /// keeps its mock salts across restarts).
    pub mock_secret: [u8; 32],
    /// What mock exchanges for a login role look like (`mock_method`).
    pub mock_roles: moka::future::Cache<String, MockShape>,
}

impl Checker {
    /// Mock shapes are remembered for `negative_ttl` (at most 10,000 roles).
    pub fn new(
        catalog: Arc<Catalog>,
        metrics: Arc<Metrics>,
        mock_secret: [u8; 32],
        negative_ttl: std::time::Duration,
    ) -> Checker {
        Checker {
            catalog,
            metrics,
            mock_secret,
            mock_roles: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(negative_ttl)
                .build(),
        }
    }
}

/// Who asks to be let in.
pub struct Request<'a> {
    pub tenant: &'a str,
    /// The login role (the user name without the tenant).
    pub role: &'a str,
    /// The user name as the client sent it (`app_user.acme`).
    pub client_user: &'a str,
    /// The tenant's catalog row (None: unknown).
    pub known: Option<&'a TenantInfo>,
    /// The tenant's secret (`tenant.auth_secret`).
    pub secret: Option<String>,
}

/// A client the router verified: who, and what it still owes the client
/// once PostgreSQL accepted the login (SASLFinal, AuthenticationOk).
pub struct Verified {
    pub who: Authenticated,
    pub to_client: BytesMut,
}

/// What the client is checked against.
pub enum Method {
    Scram(Verifier),
    /// `md5<hex of md5(password || role)>` of `role`.
    Md5 {
        stored: String,
        role: String,
    },
    /// Mock only: PostgreSQL's md5 challenge (a random salt), which no
    /// answer passes.
    Md5Challenge,
}

/// What a successful check yields.
pub enum Proven {
    Scram {
        client_key: [u8; 32],
        /// The server-final-message, sent with AuthenticationOk.
        server_final: String,
    },
    /// The md5 verifier matched this cleartext password.
    Md5,
}

/// Check the client as `req` says. Failures are counted (per known
/// tenant whose state the router holds, else in the aggregates; unknown
/// names in their one series) and logged, never with a secret or a
/// proof.
pub async fn authenticate(
    client: &mut Frontend,
    checker: &Checker,
    counters: Option<&TenantCounters>,
    cfg: &Config,
    req: Request<'_>,
) -> Result<Verified, LoginError> {
    let known = req.known.is_some();
    let result = check_request(client, checker, cfg, req).await;
    if let Err(e) = &result {
        let reason = match e {
            LoginError::Auth(AuthError::Failed { reason, .. }) => Some(*reason),
            LoginError::Auth(AuthError::CleartextRefused(_)) => Some(Failure::CleartextRefused),
            LoginError::Auth(AuthError::NoCredentials(_)) => Some(Failure::NoCredentials),
            LoginError::Auth(_) | LoginError::Client(FrontendError::Frame(_)) => {
                Some(Failure::Protocol)
            }
            LoginError::DisabledTenant(_) => Some(Failure::Disabled),
            _ => None,
        };
        if let Some(reason) = reason {
            match counters {
                Some(c) => c.metrics.auth_failed(reason),
                // A known tenant the router holds no state for: a client
                // that fails to authenticate creates none.
                None if known => checker.metrics.totals().auth_failed(reason),
                None => {
                    checker
                        .metrics
                        .unknown_auth_failures
                        .with_label_values(&[reason.label()])
                        .inc();
                    checker.metrics.unknown_tenant.inc();
                }
            }
            tracing::info!(reason = reason.label(), error = %crate::logtext::Escaped(e), "authentication failed");
        }
    }
    result
}

async fn check_request(
    client: &mut Frontend,
    checker: &Checker,
    cfg: &Config,
    req: Request<'_>,
) -> Result<Verified, LoginError> {
    let Request {
        tenant,
        role,
        client_user,
        known,
        secret,
    } = req;
    let tenant_secret = secret.is_some();
    // What the role's own verifier is (read now: never cached).
    let role_method = |v: Option<String>| match v {
        Some(v) if v.starts_with("SCRAM-SHA-256$") => Verifier::parse(&v).ok().map(Method::Scram),
        Some(v) if v.len() == 35 && v.starts_with("md5") => Some(Method::Md5 {
            stored: v,
            role: role.to_owned(),
        }),
        _ => None,
    };
    let (method, mocked) = match (known, secret) {
        (None, _) => (
            mock_method(checker, cfg, role).await,
            Some(Failure::UnknownTenant),
        ),
        (Some(_), Some(s)) => match Verifier::parse(&s) {
            Ok(v) => (Method::Scram(v), None),
            Err(_) => {
                tracing::warn!("the tenant's secret is not a SCRAM-SHA-256 verifier: refusing");
                (
                    mock_method(checker, cfg, role).await,
                    Some(Failure::WrongPassword),
                )
            }
        },
        // Relay mode sends only a tenant with a secret, or an unusable
        // one, here: a disabled tenant without a secret has no verifier.
        (Some(_), None) if cfg.auth.login == LoginMode::Relay => (
            mock_method(checker, cfg, role).await,
            Some(Failure::Disabled),
        ),
        (Some(_), None) => match role_method(checker.catalog.secret(Secret::Login, role).await?) {
            Some(m) => (m, None),
            None => (
                mock_method(checker, cfg, role).await,
                Some(Failure::RoleRefused),
            ),
        },
    };
    let cleartext_allowed = super::cleartext::cleartext_allowed(client, cfg);
    // In relay mode PostgreSQL answers a tenant without a secret: the mock
    // for an unknown or disabled one must look the same, without -PLUS
    // (stripped from a relay) and in PostgreSQL's words, which name the
    // login role, not the name the client sent.
    let as_relayed = cfg.auth.login == LoginMode::Relay && !tenant_secret;
    let end_point = if client.tls.is_some() && !as_relayed {
        cfg.tls.end_point.clone()
    } else {
        None
    };
    let shown_user = if as_relayed { role } else { client_user };
    let proven = check(
        client,
        &method,
        end_point,
        cleartext_allowed,
        shown_user,
        mocked,
    )
    .await?;
    if known.is_some_and(|i| !i.enabled) {
        return Err(LoginError::DisabledTenant(tenant.into()));
    }
    let mut to_client = BytesMut::new();
    if let Proven::Scram { server_final, .. } = &proven {
        to_client.extend_from_slice(&sasl_final(server_final));
    }
    to_client.extend_from_slice(&auth_ok());
    let login = match (&method, proven) {
        _ if tenant_secret => match cfg.auth.credentials.password(role) {
            Some(p) => BackendLogin::Password(p.to_owned()),
            None => {
                tracing::warn!(
                    role,
                    "no credentials for the login role in auth.credentials_file"
                );
                return Err(AuthError::NoCredentials(role.to_owned()).into());
            }
        },
        (Method::Scram(v), Proven::Scram { client_key, .. }) => BackendLogin::ClientKey {
            client_key,
            server_key: v.server_key,
        },
        (Method::Md5 { stored, .. }, _) => BackendLogin::Md5Hash(stored.clone()),
        (Method::Scram(_) | Method::Md5Challenge, _) => {
            return Err(AuthError::Malformed("unexpected authentication result").into())
        }
    };
    Ok(Verified {
        who: Authenticated {
            tenant: tenant.to_owned(),
            login_role: role.to_owned(),
            subject: None,
            expires_at: None,
            login,
        },
        to_client,
    })
}

/// What a client is checked against when nothing real can be (unknown or
/// disabled tenant, role without a usable verifier): what a real tenant
/// of `role` would show, so that no tenant name stands out. A role with
/// a SCRAM verifier: its salt and iterations, with keys no proof matches;
/// an md5 role: the cleartext request; any other name: a mock salt
/// derived from the role name and the per-process secret. Cached per role
/// (`catalog.negative_ttl_ms`), so a flood of names costs one read.
async fn mock_method(checker: &Checker, cfg: &Config, role: &str) -> Method {
    let mock = Verifier::mock(&checker.mock_secret, role);
    let read = async {
        match checker.catalog.secret(Secret::Login, role).await {
            Ok(Some(v)) if v.starts_with("SCRAM-SHA-256$") => Some(match Verifier::parse(&v) {
                Ok(real) => MockShape::Scram {
                    salt: real.salt,
                    iterations: real.iterations,
                },
                Err(_) => MockShape::Own,
            }),
            Ok(Some(v)) if v.starts_with("md5") => Some(MockShape::Md5),
            Ok(_) | Err(CatalogError::NoFunction(_)) => Some(MockShape::Own),
            // Not known now: answer, but do not remember it.
            Err(_) => None,
        }
    };
    // Concurrent attempts for one role share one read.
    let shape = checker
        .mock_roles
        .optionally_get_with(role.to_owned(), read)
        .await
        .unwrap_or(MockShape::Own);
    match shape {
        MockShape::Scram { salt, iterations } => Method::Scram(Verifier {
            salt,
            iterations,
            ..mock
        }),
        // Verify mode asks an md5 role for its cleartext password;
        // relayed, PostgreSQL would send an md5 challenge.
        MockShape::Md5 if cfg.auth.login == LoginMode::Verify => Method::Md5 {
            stored: String::new(),
            role: role.to_owned(),
        },
        MockShape::Md5 => Method::Md5Challenge,
        MockShape::Own => Method::Scram(mock),
    }
}

/// How a role's mock exchange looks (see `mock_method`).
#[derive(Debug, Clone)]
pub enum MockShape {
    Scram { salt: Vec<u8>, iterations: u32 },
    Md5,
    Own,
}

/// An authentication request ('R') with `code` and `data`.
pub fn auth_message(code: i32, data: &[u8]) -> BytesMut {
    let mut m = BytesMut::with_capacity(9 + data.len());
    m.put_u8(b'R');
    m.put_i32(8 + data.len() as i32);
    m.put_i32(code);
    m.put_slice(data);
    m
}

/// AuthenticationOk.
pub fn auth_ok() -> BytesMut {
    auth_message(0, &[])
}

/// AuthenticationSASLFinal with the server-final-message.
pub fn sasl_final(server_final: &str) -> BytesMut {
    auth_message(12, server_final.as_bytes())
}

/// The body of the client's next password-type message ('p').
pub(super) async fn read_password_message(client: &mut Frontend) -> Result<BytesMut, LoginError> {
    let mut frame = client.read_frame(MAX_PREAUTH_LEN).await?;
    // Terminate: the client gave up (no password to give, say).
    if frame.first() == Some(&b'X') {
        return Err(FrontendError::ClientGone.into());
    }
    if frame.first() != Some(&b'p') {
        return Err(
            AuthError::UnexpectedClientMessage(frame.first().map_or('?', |b| *b as char)).into(),
        );
    }
    Ok(frame.split_off(5))
}

/// Split a SASLInitialResponse body into (mechanism, data).
fn initial_response(body: &[u8]) -> Result<(String, &[u8]), AuthError> {
    let bad = || AuthError::Malformed("SASLInitialResponse");
    let end = body.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let mechanism = std::str::from_utf8(&body[..end])
        .map_err(|_| bad())?
        .to_owned();
    let len = body.get(end + 1..end + 5).ok_or_else(bad)?;
    let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
    let data = body.get(end + 5..).ok_or_else(bad)?;
    if len < 0 || len as usize != data.len() {
        return Err(bad());
    }
    Ok((mechanism, data))
}

/// Run the check. `user` is the user name as the client sent it (for the
/// failure message); `mock` is the reason when the verifier is a mock (the
/// exchange runs as for a real one, and fails as a wrong password does).
pub async fn check(
    client: &mut Frontend,
    method: &Method,
    end_point: Option<Vec<u8>>,
    cleartext_allowed: bool,
    user: &str,
    mock: Option<Failure>,
) -> Result<Proven, LoginError> {
    let failed = |reason| AuthError::Failed {
        user: user.to_owned(),
        reason,
    };
    match method {
        Method::Scram(v) => {
            let mut ex = ServerExchange::new(v.clone(), end_point);
            let mut offer = Vec::new();
            for m in ex.mechanisms() {
                offer.extend_from_slice(m.as_bytes());
                offer.push(0);
            }
            offer.push(0);
            client.send(&auth_message(10, &offer)).await?;
            let body = read_password_message(client).await?;
            let (mechanism, data) = initial_response(&body)?;
            let first = ex.first(&mechanism, data).map_err(AuthError::Scram)?;
            client.send(&auth_message(11, first.as_bytes())).await?;
            let body = read_password_message(client).await?;
            match ex.finish(&body) {
                // A mock verifier matches no proof; should one ever match,
                // it still fails.
                Ok(_) | Err(ScramError::WrongProof) if mock.is_some() => {
                    Err(failed(mock.unwrap_or(Failure::WrongPassword)).into())
                }
                Ok((server_final, client_key)) => Ok(Proven::Scram {
                    client_key,
                    server_final,
                }),
                Err(ScramError::WrongProof) => Err(failed(Failure::WrongPassword).into()),
                Err(e) => Err(AuthError::Scram(e).into()),
            }
        }
        Method::Md5Challenge => {
            let salt = super::scram::random_bytes::<4>().map_err(AuthError::Scram)?;
            client.send(&auth_message(5, &salt)).await?;
            read_password_message(client).await?;
            Err(failed(mock.unwrap_or(Failure::WrongPassword)).into())
        }
        Method::Md5 { stored, role } => {
            if !cleartext_allowed {
                return Err(AuthError::CleartextRefused(role.clone()).into());
            }
            client.send(&auth_message(3, &[])).await?;
            let body = read_password_message(client).await?;
            let password = super::cleartext::cleartext_password(&body)?;
            match mock {
                Some(reason) => Err(failed(reason).into()),
                None if md5_matches(stored, password, role) => Ok(Proven::Md5),
                None => Err(failed(Failure::WrongPassword).into()),
            }
        }
    }
}

/// "md5" + hex(md5(password || role)) == stored, in constant time.
pub fn md5_matches(stored: &str, password: &[u8], role: &str) -> bool {
    use md5::Digest;
    let mut h = md5::Md5::new();
    h.update(password);
    h.update(role.as_bytes());
    let computed = format!("md5{}", hex::encode(h.finalize()));
    computed.as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_verifier_check() {
        // md5('rt-secret' || 'rt_md5'), as PostgreSQL stores it.
        let stored = format!("md5{}", {
            use md5::Digest;
            hex::encode(md5::Md5::digest(b"rt-secretrt_md5"))
        });
        assert!(md5_matches(&stored, b"rt-secret", "rt_md5"));
        assert!(!md5_matches(&stored, b"rt-secret", "rt_md5.acme"));
        assert!(!md5_matches(&stored, b"wrong", "rt_md5"));
        assert!(!md5_matches("", b"", ""));
    }

    #[test]
    fn initial_response_parsing() {
        let mut b = b"SCRAM-SHA-256\0".to_vec();
        b.extend_from_slice(&3i32.to_be_bytes());
        b.extend_from_slice(b"abc");
        let (m, d) = initial_response(&b).unwrap();
        assert_eq!((m.as_str(), d), ("SCRAM-SHA-256", &b"abc"[..]));
        for bad in [
            &b""[..],
            b"SCRAM",
            b"SCRAM\0\0\0",
            b"SCRAM\0\0\0\0\x09abc",
            b"S\0\xff\xff\xff\xff",
        ] {
            assert!(initial_response(bad).is_err(), "{bad:?}");
        }
    }
}
