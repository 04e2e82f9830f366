//! Where a session's backend comes from: the backend-source seam.
//!
//! - `Source::Dedicated`: a backend of the session's own, opened for it:
//!   connect, log in (PostgreSQL's exchange relayed, or the router's
//!   login for a client it checked), inject the tenant context.
//! - `Source::Pooled`: a backend from the tenant's pool (`pooled`):
//!   checkout, switch to the client's context and settings, and the
//!   startup answer synthesized with a cancel key of the router's.
//!
//! Either way the handshake ends in one `Ready` (`ready`): the cancel key
//! registered, the tenant's limits watching, the startup answer sent,
//! counted and logged. An `Attached` backend knows whether it is the
//! session's own or holds a place in a pool.

use super::attached::Attached;
use super::conn::Conn;
use super::handshake::{self, Identified};
use super::phase::{Deadline, Phase};
use super::placement::upstream_for;
use super::pooled::PooledClient;
use crate::auth::error::LoginError;
use crate::auth::{self, Authenticated};
use crate::backend::{Backend, BackendError};
use crate::cancel::CancelGuard;
use crate::catalog::TenantInfo;
use crate::config::Config;
use crate::error::SessionError;
use crate::limits::{ConnectionSlot, StatementWatch};
use crate::protocol;
use bytes::BytesMut;
use std::sync::Arc;

/// What brings a session its backend.
pub enum Source {
    /// Its own, for its whole life.
    Dedicated,
    /// A pool's, for the session (session pooling) or for each
    /// transaction (transaction pooling).
    Pooled(Box<PooledClient>),
}

impl Source {
    pub fn transaction_pooling(&self) -> bool {
        matches!(self, Source::Pooled(p) if p.transaction_pooling())
    }

    pub fn pooled(&self) -> Option<&PooledClient> {
        match self {
            Source::Pooled(p) => Some(p),
            Source::Dedicated => None,
        }
    }
}

/// A session past its handshake: what the relay runs with.
pub struct Ready {
    pub source: Source,
    /// Who authenticated.
    pub who: Box<Authenticated>,
    /// Cancel requests for the session's backend are forwarded while it
    /// lives.
    pub cancel: CancelGuard,
    /// The tenant's limits on this session (None: a bypass user). Boxed: it
    /// moves between the session and its relay.
    pub watch: Option<Box<StatementWatch>>,
    /// The client's place under its tenant's `max_connections` (None: a
    /// bypass user), held until the session is over.
    pub _slot: Option<ConnectionSlot>,
}

/// The keys of a ready session: the one its client was given, and the
/// backend's.
pub enum Keys {
    /// The backend's own (a dedicated backend).
    Backend((i32, i32)),
    /// The router's, standing for the backend's (a pooled client).
    Router {
        client: (i32, i32),
        real: (i32, i32),
    },
}

/// Identified to Ready: the first backend, from the pool for a client the
/// router checked when pooling is on, else a dedicated one.
pub async fn attach_first(
    conn: &mut Conn,
    cfg: &Arc<Config>,
    identified: Identified,
    deadline: Deadline,
) -> Result<(Ready, Attached), SessionError> {
    let own_database = identified.tenant().and_then(|i| {
        let db = i
            .database_name
            .as_ref()
            .filter(|_| i.isolation == "database")?;
        Some((i.id.clone(), db.clone()))
    });
    attach(conn, cfg, identified, deadline)
        .await
        .map_err(|e| missing_database(e, own_database))
}

/// PostgreSQL's 3D000 for the database of a database-isolated tenant
/// becomes a FATAL that names the tenant and its database.
fn missing_database(e: SessionError, own: Option<(String, String)>) -> SessionError {
    match (e, own) {
        (SessionError::Postgres(frame), Some((tenant, database)))
            if protocol::error_fields(&frame).0 == "3D000" =>
        {
            SessionError::MissingDatabase { tenant, database }
        }
        (e, _) => e,
    }
}

async fn attach(
    conn: &mut Conn,
    cfg: &Arc<Config>,
    identified: Identified,
    deadline: Deadline,
) -> Result<(Ready, Attached), SessionError> {
    // A paused tenant's login waits here, before it opens a backend.
    if let Some(info) = identified.tenant() {
        let gate = conn.shared.pauses.gate(&info.id);
        let running = deadline.within(gate.enter(cfg.pause_timeout())).await?;
        conn.pause = Some(super::conn::Pausable::new(gate, running));
    }
    match identified {
        Identified::Checked {
            info,
            verified,
            slot,
            upstream,
        } if cfg.pool.enabled => {
            let opened =
                PooledClient::attach_first(conn, cfg, &info, verified, &upstream, deadline).await?;
            let (client, attached, who, answer, real) = opened;
            let keys = Keys::Router {
                client: client.client_key(),
                real,
            };
            let address = client.upstream_address();
            let source = Source::Pooled(Box::new(client));
            let ready = ready(
                conn,
                &address,
                source,
                who,
                Some((&info, slot)),
                keys,
                answer,
            )
            .await?;
            Ok((ready, attached))
        }
        identified => dedicated(conn, cfg, identified, deadline).await,
    }
}

/// A backend of the session's own: connect, log in, PostAuth, inject.
/// A login step's error, a server that reset or closed the connection
/// without a word told to the client as FATAL 08006 naming the server
/// (instead of a connection closed with nothing).
fn told(e: LoginError, addr: &str) -> SessionError {
    match e {
        LoginError::Server(b @ (BackendError::ServerGone | BackendError::Io(_))) => {
            SessionError::Upstream {
                addr: addr.to_owned(),
                reason: b.to_string(),
            }
        }
        e => e.into(),
    }
}

async fn dedicated(
    conn: &mut Conn,
    cfg: &Arc<Config>,
    identified: Identified,
    deadline: Deadline,
) -> Result<(Ready, Attached), SessionError> {
    conn.phase = Phase::Authenticating;
    let info = identified.tenant().cloned();
    // A relayed authentication holds a backend while the client answers:
    // capped by auth.max_unauthenticated_backends, and per tenant by
    // auth.max_unauthenticated_per_tenant.
    let pending = match &identified {
        Identified::Checked { .. } => None,
        _ => Some(
            conn.shared
                .admit_unauthenticated(info.as_deref().map(|i| i.id.as_str()))?,
        ),
    };
    let up = upstream_for(cfg, info.as_deref())?;
    let mut server = deadline.within(Backend::connect(cfg, &up)).await?;
    let (who, slot) = match identified {
        Identified::Bypass { identity, upstream }
        | Identified::Relayed {
            identity, upstream, ..
        } => {
            let addr = up.address.as_str();
            let startup = protocol::startup_message(&upstream);
            let sent = server.send(&startup).await;
            sent.map_err(|e| told(LoginError::Server(e), addr))?;
            let cleartext_allowed = auth::cleartext_allowed(&conn.client, cfg);
            let relayed = auth::relay(&mut conn.client, &mut server, cleartext_allowed);
            deadline
                .within(async { relayed.await.map_err(|e| told(e, addr)) })
                .await?;
            (handshake::relayed(&identity), None)
        }
        Identified::Checked {
            verified,
            slot,
            upstream,
            ..
        } => {
            let addr = up.address.as_str();
            let startup = protocol::startup_message(&upstream);
            let sent = server.send(&startup).await;
            sent.map_err(|e| told(LoginError::Server(e), addr))?;
            let login =
                auth::login::login(&mut server, &verified.who.login, &verified.who.login_role);
            deadline
                .within(async { login.await.map_err(|e| told(e, addr)) })
                .await?;
            conn.client.send(&verified.to_client).await?;
            (verified.who, Some(slot))
        }
    };
    drop(pending);
    // A relayed client takes its place once PostgreSQL has accepted it.
    let slot = match (slot, &info) {
        (Some(slot), _) => Some(slot),
        (None, Some(info)) => {
            let mut slot = conn
                .shared
                .limits
                .acquire_connection(&info.id, info.max_connections)?;
            conn.hold(&slot);
            let fleet =
                conn.shared
                    .fleet
                    .admit(&mut slot, &info.id, info.max_connections, &cfg.fleet);
            fleet.await?;
            Some(slot)
        }
        (None, None) => None,
    };

    // PostAuth: forward ParameterStatus and BackendKeyData, hold
    // ReadyForQuery.
    conn.phase = Phase::PostAuth;
    let mut out = BytesMut::with_capacity(512);
    let post_auth = server.post_auth(&mut out);
    let (pid, key) = deadline
        .within(async {
            let r = post_auth.await;
            r.map_err(|e| told(LoginError::Server(e), &up.address))
        })
        .await?;
    conn.span.record("backend_pid", pid);
    // For a bypass user the held ReadyForQuery, last in `out`, goes as is.
    if let Some(info) = &info {
        conn.phase = Phase::Injecting;
        let backend = pg_tenant_token::Backend {
            pid,
            cancel_key: key,
        };
        let subject = who.subject.as_ref().map(|(s, c)| (s.as_str(), c.as_str()));
        let held = info.context_document.as_ref();
        let sealed = super::placement::sealed_now(conn, &info.id, held, &up.name).await?;
        let document = sealed.as_deref();
        let nonce = server.next_nonce();
        let action = crate::backend::context_action(&info.id, subject, document);
        let token = context_token(cfg.signing_key.as_ref(), action, backend, nonce)?;
        deadline
            .within(server.inject(&mut out, &info.id, &token, subject, document))
            .await?;
    }
    let tenant = match (&info, slot) {
        (Some(info), Some(slot)) => Some((info, slot)),
        _ => None,
    };
    let ready = ready(
        conn,
        &up.address,
        Source::Dedicated,
        who,
        tenant,
        Keys::Backend((pid, key)),
        out,
    )
    .await?;
    let attached = Attached {
        backend: server,
        lease: None,
    };
    Ok((ready, attached))
}

/// The one "ready" tail of both sources: the cancel key registered (for
/// the backend at `upstream`, host:port), the tenant's limits watching the
/// session, the startup answer (`answer`, ending in ReadyForQuery) sent,
/// the connection counted and logged.
async fn ready(
    conn: &mut Conn,
    upstream: &str,
    source: Source,
    who: Authenticated,
    tenant: Option<(&Arc<TenantInfo>, ConnectionSlot)>,
    keys: Keys,
    answer: BytesMut,
) -> Result<Ready, SessionError> {
    let cancels = &conn.shared.cancels;
    let (cancel, client_key) = match keys {
        Keys::Backend((pid, key)) => (cancels.register(pid, key, upstream), (pid, key)),
        Keys::Router { client, real } => (cancels.register_as(client, real, upstream), client),
    };
    let (watch, slot) = match tenant {
        Some((info, slot)) => (Some(conn.watch_limits(info, client_key)), Some(slot)),
        None => (None, None),
    };
    conn.client.send(&answer).await?;
    conn.traffic.to_client += answer.len() as u64;
    match conn.tenancy.counters() {
        Some(c) => c.metrics.connection(),
        None => conn.shared.metrics.bypass.inc(),
    }
    match &source {
        Source::Pooled(p) => {
            tracing::info!(pool = p.label(), "connection ready (pooled)")
        }
        Source::Dedicated => tracing::info!(login = ?Some(&who.login), "connection ready"),
    }
    Ok(Ready {
        source,
        who: Box::new(who),
        cancel,
        watch,
        _slot: slot,
    })
}

/// The token that lets this router take `action` (`context_action`: the
/// tenant, the subject and claims of a token login, the sealed context of
/// a database tenant) in `backend`. `nonce`: the backend's next
/// (`Backend::next_nonce`).
fn context_token(
    key: Option<&pg_tenant_token::SigningKey>,
    action: pg_tenant_token::Action<'_>,
    backend: pg_tenant_token::Backend,
    nonce: u64,
) -> Result<String, SessionError> {
    let key = key.ok_or_else(|| SessionError::Injection("no context signing key".into()))?;
    Ok(pg_tenant_token::sign(key, action, backend, nonce))
}
