//! Token logins: for the user name `[auth.jwt] user` the client's password
//! is a JWT (docs/src/authentication/jwt.md). The router asks for a cleartext password (only
//! over TLS or from a loopback peer, unless
//! `auth.allow_cleartext_without_tls`), checks the token with
//! `crate::jwt::JwtVerifier`, and takes the tenant, the login role and the
//! end user from it. Nothing is taken or opened before the token verifies;
//! the backend login comes from the credentials file, and the context
//! carries the subject and the passed claims (`tenant.current_subject()`,
//! `tenant.current_claims()`).

use super::authenticated::{Authenticated, BackendLogin};
use super::error::{AuthError, LoginError};
use super::verify::{auth_message, auth_ok, read_password_message, Verified};
use crate::config::Config;
use crate::frontend::{Frontend, FrontendError};
use crate::identify::{self, IdentifyError};
use crate::jwt::{JwtError, JwtVerifier};
use crate::metrics::Metrics;
use std::time::{Duration, SystemTime};

/// Check the client's token; on success, who it is and what to send it
/// once the backend has accepted the router's login.
pub async fn authenticate(
    client: &mut Frontend,
    metrics: &Metrics,
    cfg: &Config,
    verifier: &JwtVerifier,
) -> Result<Verified, LoginError> {
    let result = check(client, cfg, verifier).await;
    if let Err(e) = &result {
        // Before the token verifies nothing names a tenant the router may
        // trust: failures are counted in the one series for unknown names.
        let reason = match e {
            LoginError::Auth(AuthError::Jwt(j)) => Some(j.reason()),
            LoginError::Auth(AuthError::TokenNeedsProtection) => Some("cleartext_refused"),
            LoginError::Auth(AuthError::NoCredentials(_)) => Some("no_credentials"),
            LoginError::Identify(_) => Some("sni_mismatch"),
            LoginError::Auth(_) | LoginError::Client(FrontendError::Frame(_)) => Some("protocol"),
            _ => None,
        };
        if let Some(reason) = reason {
            metrics
                .unknown_auth_failures
                .with_label_values(&[reason])
                .inc();
            tracing::info!(reason, error = %crate::logtext::Escaped(e), "token authentication failed");
        }
    }
    result
}

async fn check(
    client: &mut Frontend,
    cfg: &Config,
    verifier: &JwtVerifier,
) -> Result<Verified, LoginError> {
    if !super::cleartext::cleartext_allowed(client, cfg) {
        return Err(AuthError::TokenNeedsProtection.into());
    }
    client.send(&auth_message(3, &[])).await?;
    let body = read_password_message(client).await?;
    let token = std::str::from_utf8(super::cleartext::cleartext_password(&body)?)
        .map_err(|_| AuthError::Malformed("PasswordMessage"))?;
    let id = verifier
        .verify(token, SystemTime::now())
        .map_err(AuthError::Jwt)?;
    // PostgreSQL's JSON refuses \u0000: a claim holding one would fail
    // only after a backend is opened. Refuse it here, as a bad claim.
    if id.claims_json.contains("\\u0000") {
        return Err(AuthError::Jwt(JwtError::InvalidClaim(
            "pass_claims (a NUL character)".into(),
        ))
        .into());
    }
    // A TLS server name that names a tenant must name the token's.
    let sni = client.tls.as_ref().and_then(|t| t.sni.as_deref());
    if let Some(named) = sni.and_then(|s| identify::sni_tenant(&cfg.identify, s)) {
        if named != id.tenant {
            return Err(IdentifyError::SniMismatch(named.into(), id.tenant).into());
        }
    }
    let password = cfg
        .auth
        .credentials
        .password(&id.login_role)
        .ok_or_else(|| AuthError::NoCredentials(id.login_role.clone()))?;
    let leeway = Duration::from_secs(verifier.config().leeway_s);
    Ok(Verified {
        who: Authenticated {
            login: BackendLogin::Password(password.to_owned()),
            // An exp near the end of time never ends the session.
            expires_at: verifier
                .end_session_at_expiry()
                .then(|| id.expires_at.checked_add(leeway))
                .flatten(),
            subject: Some((id.subject, id.claims_json)),
            login_role: id.login_role,
            tenant: id.tenant,
        },
        to_client: auth_ok(),
    })
}
