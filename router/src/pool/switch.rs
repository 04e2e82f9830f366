//! What the router itself runs on a pooled backend: opening and logging
//! in, the tenant switch (`activate`: the client's context through the
//! signed-token path and its settings, in one round trip), the reset that
//! makes a backend fit for any tenant (`reset`: `clear_context` with a
//! signed token, then `DISCARD ALL`), a health check, closing.
//!
//! A failure of any step means the backend is closed, never reused: the
//! caller drops it (and its `Lease`).

use crate::auth::authenticated::BackendLogin;
use crate::auth::error::LoginError;
use crate::auth::login;
use crate::backend::{self, Backend, BackendError};
use crate::config::{Config, Upstream};
use crate::protocol;
use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::io::AsyncWriteExt;

/// Open a backend on `up` and log in as `role` with `login`; `params` are
/// the startup parameters (user, database). Bounded by
/// `startup_timeout_ms`. A pool keeps the upstream it was made for (its
/// name and address), but the TLS settings are `cfg`'s for that upstream:
/// a reload that hardens them (`disable` to `verify-full`, another CA)
/// applies to every backend opened after it, as before upstreams had
/// names.
pub async fn open(
    cfg: &Config,
    up: &Upstream,
    params: &[(String, String)],
    login: &BackendLogin,
    role: &str,
) -> Result<Backend, LoginError> {
    let up = current(cfg, up);
    let steps = async {
        let mut b = Backend::connect(cfg, up).await?;
        b.send(&protocol::startup_message(params)).await?;
        login::login(&mut b, login, role).await?;
        let mut out = BytesMut::new();
        b.post_auth(&mut out).await?;
        Ok(b)
    };
    tokio::time::timeout(cfg.startup_timeout(), steps)
        .await
        .map_err(|_| {
            LoginError::from(BackendError::Upstream {
                addr: up.address.clone(),
                reason: "opening a pooled backend timed out".into(),
            })
        })?
}

/// `up` as `cfg` has it (same name and address), with its TLS settings of
/// now; `up` itself when `cfg` no longer has it (a pool being drained).
fn current<'a>(cfg: &'a Config, up: &'a Upstream) -> &'a Upstream {
    match cfg.upstreams.get(Some(&up.name)) {
        Some(now) if **now == *up => now,
        _ => up,
    }
}

/// The signing key, or the error every step gives without one.
fn signing_key(cfg: &Config) -> Result<&pg_tenant_token::SigningKey, BackendError> {
    cfg.signing_key
        .as_ref()
        .ok_or_else(|| BackendError::Injection("no context signing key".into()))
}

fn token(
    cfg: &Config,
    b: &mut Backend,
    action: pg_tenant_token::Action<'_>,
) -> Result<String, BackendError> {
    let (pid, cancel_key) = b
        .key
        .ok_or_else(|| BackendError::Injection("the backend sent no BackendKeyData".into()))?;
    let nonce = b.next_nonce();
    Ok(pg_tenant_token::sign(
        signing_key(cfg)?,
        action,
        pg_tenant_token::Backend { pid, cancel_key },
        nonce,
    ))
}

/// The tenant switch: set the context `tag` names (its tenant, with the
/// subject and claims of a token login and the sealed context of a
/// database tenant) and then the client's settings
/// (`pg_catalog.set_config(name, value, false)`, bind parameters), as one
/// batch ending in one Sync. If `set_context` fails, PostgreSQL skips the
/// rest of the batch; any failure is returned and the backend must be
/// closed. 42501 (`set_context` refused: tenant disabled, role not
/// allowed...) is `ContextRefused`; any other error is PostgreSQL's own.
pub async fn activate(
    cfg: &Config,
    b: &mut Backend,
    tag: &backend::ContextTag,
) -> Result<(), BackendError> {
    let tenant = tag.tenant.as_str();
    let subject = tag.subject.as_ref().map(|(s, c)| (s.as_str(), c.as_str()));
    let document = tag.document.as_deref();
    let token = token(cfg, b, backend::context_action(tenant, subject, document))?;
    let mut req = BytesMut::with_capacity(512);
    backend::context_request(tenant, &token, subject, document, &mut req)?;
    let settings = &tag.settings;
    settings_request(settings, &mut req)?;
    frontend::sync(&mut req);
    let steps = b.exchange(&req, 1);
    let (failure, status) = tokio::time::timeout(cfg.connect_timeout(), steps)
        .await
        .map_err(|_| BackendError::Injection("the tenant switch timed out".into()))??;
    if let Some(f) = failure {
        let (code, msg) = protocol::error_fields(&f);
        return Err(if code == "42501" {
            BackendError::ContextRefused(msg)
        } else {
            BackendError::Postgres(f)
        });
    }
    if status != b'I' {
        return Err(BackendError::Injection(
            "the backend is not idle after the tenant switch".into(),
        ));
    }
    Ok(())
}

/// `SELECT FROM pg_catalog.set_config(name, value, false)` for each of
/// `settings` (bind parameters; nothing sent back, so a batch of large
/// settings never fills both directions at once); the caller adds Sync.
fn settings_request(settings: &[(String, String)], req: &mut BytesMut) -> Result<(), BackendError> {
    if settings.is_empty() {
        return Ok(());
    }
    frontend::parse(
        "",
        "SELECT FROM pg_catalog.set_config($1, $2, false)",
        [25u32, 25],
        req,
    )
    .map_err(|e| BackendError::Injection(e.to_string()))?;
    for (name, value) in settings {
        backend::bind_execute(&[0], &[name, value], req)?;
    }
    Ok(())
}

/// Another client of the same tenant and end user (transaction pooling):
/// its settings instead of the last client's. `RESET ALL` (the context is
/// not a resettable setting) and `set_config` for each of `settings`.
pub async fn resettle(
    cfg: &Config,
    b: &mut Backend,
    settings: &[(String, String)],
) -> Result<(), BackendError> {
    let mut req = protocol::query("RESET ALL");
    let mut readies = 1;
    if !settings.is_empty() {
        settings_request(settings, &mut req)?;
        frontend::sync(&mut req);
        readies = 2;
    }
    let steps = b.exchange(&req, readies);
    let (failure, status) = tokio::time::timeout(cfg.connect_timeout(), steps)
        .await
        .map_err(|_| {
            BackendError::Injection("applying the client's settings timed out".into())
        })??;
    if let Some(f) = failure {
        return Err(BackendError::Postgres(f));
    }
    if status != b'I' {
        return Err(BackendError::Injection(
            "the backend is not idle after applying the client's settings".into(),
        ));
    }
    Ok(())
}

/// Make the backend fit for any tenant: `DISCARD ALL` (settings, among
/// them any timeout the last client left, temporary objects, prepared
/// statements, cursors, LISTEN, advisory locks, plans, sequences), then
/// `tenant.clear_context(token)` (unlocks and resets the role, clears
/// tenant, subject and claims) and `setseed()` with a value from the
/// router's random source (`DISCARD ALL` keeps the random generator's state,
/// which the last client could have seeded to predict the next one's
/// `random()`). Ok only if every step succeeded and the backend is idle;
/// bounded by `connect_timeout_ms`.
pub async fn reset(cfg: &Config, b: &mut Backend) -> Result<(), BackendError> {
    let token = token(cfg, b, pg_tenant_token::Action::Clear)?;
    let mut req = protocol::query("DISCARD ALL");
    frontend::parse("", "SELECT tenant.clear_context($1)", [25u32], &mut req)
        .map_err(|e| BackendError::Injection(e.to_string()))?;
    backend::bind_execute(&[0], &[&token], &mut req)?;
    let seed = fresh_seed();
    frontend::parse(
        "",
        "SELECT pg_catalog.setseed($1::pg_catalog.float8)",
        [25u32],
        &mut req,
    )
    .map_err(|e| BackendError::Injection(e.to_string()))?;
    backend::bind_execute(&[0], &[&seed], &mut req)?;
    frontend::sync(&mut req);
    let steps = b.exchange(&req, 2);
    let (failure, status) = tokio::time::timeout(cfg.connect_timeout(), steps)
        .await
        .map_err(|_| BackendError::Injection("resetting the backend timed out".into()))??;
    if let Some(f) = failure {
        return Err(BackendError::Injection(format!(
            "resetting the backend failed: {}",
            protocol::error_summary(f)
        )));
    }
    if status != b'I' {
        return Err(BackendError::Injection(
            "the backend is not idle after its reset".into(),
        ));
    }
    Ok(())
}

/// A seed for `setseed()` in [-1, 1] from the OS random source.
fn fresh_seed() -> String {
    let b = crate::random::bytes::<8>().unwrap_or([7; 8]);
    let n = u64::from_le_bytes(b) >> 11; // 53 bits
    format!("{}", (n as f64 / (1u64 << 52) as f64) - 1.0)
}

/// One round trip (Sync, answered by ReadyForQuery 'I') before reusing a
/// backend that was idle a while: a backend PostgreSQL closed meanwhile
/// fails here, not under a client.
pub async fn check(cfg: &Config, b: &mut Backend) -> Result<(), BackendError> {
    let mut req = BytesMut::with_capacity(5);
    frontend::sync(&mut req);
    let steps = b.exchange(&req, 1);
    match tokio::time::timeout(cfg.connect_timeout(), steps).await {
        Ok(Ok((None, b'I'))) => Ok(()),
        Ok(Err(e)) => Err(e),
        _ => Err(BackendError::ServerGone),
    }
}

/// Close a backend: Terminate, then the connection.
pub async fn close(mut b: Backend) {
    let mut req = BytesMut::with_capacity(5);
    frontend::terminate(&mut req);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = b.stream.write_all(&req).await;
        let _ = b.stream.shutdown().await;
    })
    .await;
}
