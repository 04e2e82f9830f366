//! The pooled source (docs/src/pooling/index.md): after the router verified the
//! client, a backend comes from the tenant's pool instead of a new login,
//! gets the client's context and settings (`pool::switch`), and the client
//! gets the startup answer PostgreSQL would have sent, with a cancel key
//! of the router's.
//!
//! Session pooling: when the client leaves with its conversation at rest,
//! the backend is reset and given back; otherwise it is closed.
//! Transaction pooling: at every point of rest the backend goes back with
//! its context (`detach`); the client's next message brings a backend
//! again (`between_transactions`), switched only as far as needed.

use super::attached::Attached;
use super::busy;
use super::conn::Conn;
use super::paused::{self, Gate};
use super::phase::{Deadline, Phase};
use super::placement::{lives_on, moved, sealed_now};
use super::waiting::{wait_for_client, TERMINATE};
use crate::auth::verify::Verified;
use crate::auth::{Authenticated, BackendLogin};
use crate::backend::{Backend, ContextTag};
use crate::catalog::{PoolMode, TenantInfo};
use crate::config::Config;
use crate::error::SessionError;
use crate::identify;
use crate::pool::{self, switch, Discard, Lease, Place, Pool};
use crate::protocol;
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout_at;

/// A backend that was at rest in the pool, if it can serve: not closed by
/// PostgreSQL meanwhile, and checked with a round trip when it idled
/// longer than `check_after_idle_ms`; closed otherwise.
async fn usable(cfg: &Config, pool: &Pool, mut b: Backend, idle: Duration) -> Option<Backend> {
    let check_after = Duration::from_millis(cfg.pool.check_after_idle_ms);
    let reason = if b.unsolicited() {
        Discard::ClosedWhileIdle
    } else if idle < check_after || switch::check(cfg, &mut b).await.is_ok() {
        return Some(b);
    } else {
        Discard::CheckFailed
    };
    pool.discarded(reason);
    tokio::spawn(switch::close(b));
    None
}

/// What a pooled client needs to get a backend, again and again.
pub struct PooledClient {
    pub(super) mode: PoolMode,
    pub(super) pool: Arc<Pool>,
    /// The tenant's share of the pool.
    pub(super) share: usize,
    /// The context and settings its backend must have: its startup
    /// settings, then what it SET since (`session_sets`).
    pub(super) wanted: Arc<ContextTag>,
    startup: Vec<(String, String)>,
    /// Settings the client SET (transaction pooling), carried to each
    /// backend that serves it.
    session_sets: Vec<(String, String)>,
    /// How to open a backend for it (as the pool's role, in its database).
    pub(super) login: BackendLogin,
    /// The cancel key the client was given.
    client_key: (i32, i32),
}

/// Most settings a transaction-pooled client may SET (and the router carry
/// to each of its backends), and their total size.
pub const MAX_SESSION_SETTINGS: usize = 256;
pub const MAX_SESSION_SETTINGS_BYTES: usize = 64 * 1024;

/// Backends tried for one attach before the client gets the error.
const ATTACH_TRIES: usize = 3;

/// A failure of the backend itself (another one may do), not an answer
/// for the client.
fn backend_fault(e: &SessionError) -> bool {
    matches!(
        e,
        SessionError::ServerGone | SessionError::Io(_) | SessionError::Injection(_)
    )
}

/// A backend fault the client is told of (its tries are over): FATAL
/// 08006 naming the server, instead of a connection closed without a word.
fn told(e: SessionError, addr: &str) -> SessionError {
    if backend_fault(&e) && !matches!(e, SessionError::Injection(_)) {
        SessionError::Upstream {
            addr: addr.to_owned(),
            reason: e.to_string(),
        }
    } else {
        e
    }
}

/// A pooled client's first backend: the client, its backend, who it is,
/// the startup answer and the backend's real key.
pub type First = (PooledClient, Attached, Authenticated, BytesMut, (i32, i32));

impl PooledClient {
    /// The cancel key the client was given.
    pub fn client_key(&self) -> (i32, i32) {
        self.client_key
    }

    pub fn transaction_pooling(&self) -> bool {
        self.mode == PoolMode::Transaction
    }

    /// The address of its pool's upstream (host:port), for cancel routes.
    pub fn upstream_address(&self) -> String {
        self.pool.upstream.to_string()
    }

    /// The pool's name in logs and metrics.
    pub fn label(&self) -> &str {
        self.pool.label()
    }

    /// Authenticating (pooled) to Injecting: a backend from the pool,
    /// switched to this client's tenant, and the startup answer. The pool
    /// wait is bounded by `pool.timeout_ms`; the rest by the startup
    /// deadline.
    pub async fn attach_first(
        conn: &mut Conn,
        cfg: &Arc<Config>,
        info: &Arc<TenantInfo>,
        v: Verified,
        upstream_params: &[(String, String)],
        deadline: Deadline,
    ) -> Result<First, SessionError> {
        conn.phase = Phase::Authenticating;
        let role = v.who.login_role.clone();
        let database = identify::param(upstream_params, "database")
            .unwrap_or(&role)
            .to_owned();
        let up = super::placement::upstream_for(cfg, Some(info))?;
        let terms = pool::terms_for(cfg, &up, info, &database, &role);
        let place = conn
            .shared
            .pools
            .place(&terms, &info.id, cfg.pool.timeout());
        // A pool is made only once its first backend logged in: a database
        // or role that does not work never gets one (nor metric series).
        let (pool, first) = match deadline.within(place).await? {
            Place::Pool(pool) => (pool, None),
            Place::First(opening) => {
                let params = terms.key.login_params();
                let open =
                    switch::open(cfg, &terms.upstream, &params, &v.who.login, &terms.key.role);
                let b = deadline
                    .within(Box::pin(open))
                    .await
                    .map_err(|e| told(e, &terms.upstream.address))?;
                let lease = conn.shared.pools.create(opening, &terms, &info.id);
                (lease.pool().clone(), Some((lease, b)))
            }
        };
        let client_key = conn.shared.cancels.fresh_key();
        let startup = identify::settings(upstream_params);
        let mut client = PooledClient {
            mode: info.pool.mode,
            pool,
            share: terms.share,
            wanted: Arc::new(ContextTag {
                tenant: info.id.clone(),
                subject: v.who.subject.clone(),
                settings: startup.clone(),
                document: info.context_document.clone(),
            }),
            startup,
            session_sets: Vec::new(),
            login: v.who.login.clone(),
            client_key,
        };
        client.reseal(conn).await?;
        let attached = deadline.within(client.attach(conn, first)).await?;
        let real = attached
            .backend
            .key
            .ok_or_else(|| SessionError::Injection("the backend sent no BackendKeyData".into()))?;
        conn.span.record("backend_pid", real.0);

        // What PostgreSQL would have said after the password (pg_tenant's
        // own reports are the router's).
        let mut out = v.to_client;
        for (name, value) in &attached.backend.params {
            if !name.starts_with("pg_tenant.") {
                protocol::parameter_status_frame(name, value, &mut out);
            }
        }
        protocol::backend_key_data(client_key.0, client_key.1, &mut out);
        out.extend_from_slice(&protocol::ready_for_query(b'I'));
        Ok((client, attached, v.who, out, real))
    }

    /// A backend from the client's pool with the client's context and
    /// settings: an idle one (checked if it idled long), else a new one;
    /// switched as far as needed. A backend that fails for its own reasons
    /// (closed by PostgreSQL, a reset that fails) is closed and another one
    /// tried; what the client must hear (its context refused, PostgreSQL
    /// refusing its settings) ends here. `first`: a backend the client
    /// already opened (its pool's first), with its place. Everything,
    /// retries included, within `pool.timeout_ms`: past it the client gets
    /// 53300.
    pub(super) async fn attach(
        &self,
        conn: &mut Conn,
        first: Option<(Lease, Backend)>,
    ) -> Result<Attached, SessionError> {
        let cfg = conn.shared.config();
        let deadline = tokio::time::Instant::now() + cfg.pool.timeout();
        let mut first = first;
        let mut tries = 0;
        loop {
            tries += 1;
            let once = timeout_at(
                deadline,
                self.attach_once(conn, &cfg, first.take(), deadline),
            )
            .await;
            let once = match once {
                // The wait was what was left of pool.timeout_ms: the error
                // names the whole.
                Ok(Err(SessionError::Pool(_))) | Err(_) => {
                    Err(SessionError::Pool(self.attach_timeout(&cfg)))
                }
                Ok(r) => r,
            };
            match once {
                Err(e)
                    if tries < ATTACH_TRIES
                        && backend_fault(&e)
                        && tokio::time::Instant::now() < deadline =>
                {
                    tracing::info!(parent: &conn.span, error = %crate::error::Escaped(&e), "a pooled backend failed; trying another");
                }
                r => return r.map_err(|e| told(e, &self.pool.upstream)),
            }
        }
    }

    /// The error of an attach that did not finish within `pool.timeout_ms`.
    fn attach_timeout(&self, cfg: &Config) -> pool::PoolError {
        let size = self.pool.counts().size;
        pool::PoolError::Timeout {
            pool: self.pool.label().to_owned(),
            tenant: self.wanted.tenant.clone(),
            waited_ms: cfg.pool.timeout_ms,
            size,
            share: self.share.min(size),
        }
    }

    async fn attach_once(
        &self,
        conn: &mut Conn,
        cfg: &Config,
        first: Option<(Lease, Backend)>,
        deadline: tokio::time::Instant,
    ) -> Result<Attached, SessionError> {
        let pool = &self.pool;
        let (lease, got) = match first {
            Some((lease, b)) => (lease, Some(b)),
            None => {
                let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
                let checkout = pool.checkout(&self.wanted.tenant, self.share, wait).await?;
                let reused = match checkout.backend {
                    Some((b, idle)) => Box::pin(usable(cfg, pool, b, idle)).await,
                    None => None,
                };
                if reused.is_some() {
                    pool.reused.inc();
                }
                (checkout.lease, reused)
            }
        };
        let mut backend = match got {
            Some(b) => b,
            // Boxed: opening a backend is rare next to reusing one.
            None => {
                Box::pin(switch::open(
                    cfg,
                    &pool.target,
                    &pool.login_params(),
                    &self.login,
                    &pool.key.role,
                ))
                .await?
            }
        };
        pool.learn_login(&self.login);
        conn.phase = Phase::Injecting;
        if let Err(e) = self.switch(cfg, &mut backend).await {
            pool.discarded(Discard::SwitchFailed);
            tokio::spawn(switch::close(backend));
            return Err(e);
        }
        Ok(Attached {
            backend,
            lease: Some(lease),
        })
    }

    /// Give `backend` this client's context and settings, as cheaply as
    /// its current ones allow: nothing when they are the same; a new set of
    /// settings for another client of the same tenant and end user; else
    /// a reset (when it has a context) and the full switch.
    async fn switch(&self, cfg: &Config, backend: &mut Backend) -> Result<(), SessionError> {
        let wanted = &self.wanted;
        match &backend.context {
            Some(c) if Arc::ptr_eq(c, wanted) || c == wanted => return Ok(()),
            // Same tenant, end user and sealed context (a database
            // tenant's row): only the settings differ.
            Some(c)
                if c.tenant == wanted.tenant
                    && c.subject == wanted.subject
                    && c.document == wanted.document =>
            {
                switch::resettle(cfg, backend, &wanted.settings).await?;
                backend.context = Some(wanted.clone());
                return Ok(());
            }
            Some(_) => {
                switch::reset(cfg, backend).await?;
                backend.context = None;
                backend.statements.clear();
            }
            None => {}
        }
        if backend
            .served
            .as_deref()
            .is_some_and(|t| t != wanted.tenant)
        {
            self.pool.switches.inc();
        }
        switch::activate(cfg, backend, wanted).await?;
        backend.served = Some(wanted.tenant.clone());
        backend.context = Some(wanted.clone());
        Ok(())
    }

    /// pg_tenant reported the settings the client SET on the backend that
    /// served it (since the router last applied the client's settings
    /// there): they join the settings carried to its next backends, and
    /// the backend, when it goes back, is known to have them. An empty
    /// report is a `RESET ALL` or `DISCARD ALL`: nothing is carried any
    /// more. Over `MAX_SESSION_SETTINGS` settings or
    /// `MAX_SESSION_SETTINGS_BYTES` the client's session ends (54000):
    /// every transaction would replay them all.
    pub fn settings_reported(
        &mut self,
        report: Vec<(String, Option<String>)>,
    ) -> Result<(), SessionError> {
        if report.is_empty() {
            self.session_sets.clear();
        }
        for (name, value) in report {
            self.session_sets
                .retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            if let Some(v) = value {
                self.session_sets.push((name, v));
            }
        }
        let sets = &self.session_sets;
        let bytes: usize = sets.iter().map(|(n, v)| n.len() + v.len()).sum();
        if sets.len() > MAX_SESSION_SETTINGS || bytes > MAX_SESSION_SETTINGS_BYTES {
            return Err(SessionError::TooManySettings(format!(
                "{} settings ({bytes} bytes)",
                sets.len()
            )));
        }
        let mut settings = self.startup.clone();
        for (name, value) in sets {
            settings.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            settings.push((name.clone(), value.clone()));
        }
        Arc::make_mut(&mut self.wanted).settings = settings;
        Ok(())
    }

    /// A database tenant's sealed context as the router holds its row now
    /// (`sealed_now`), for the backend of the client's next transaction:
    /// each transaction's context is no older than the router's row, as a
    /// catalog tenant's is the catalog's row at each switch. A backend
    /// sealed with an older document is switched again (`switch`).
    async fn reseal(&mut self, conn: &Conn) -> Result<(), SessionError> {
        let held = self.wanted.document.clone();
        if held.is_none() {
            // A tenant of the main upstream (no sealed context) that the
            // catalog moved to a named one: a backend at rest here may
            // still hold its context, which no switch would check again.
            let tenant = &self.wanted.tenant;
            if let Ok(Some(info)) = conn.shared.catalog.lookup(tenant).await {
                if lives_on(&info) != self.pool.key.upstream {
                    return Err(moved(tenant, &info, &self.pool.key.upstream));
                }
            }
            return Ok(());
        }
        let now = sealed_now(
            conn,
            &self.wanted.tenant,
            held.as_ref(),
            &self.pool.key.upstream,
        )
        .await?;
        if now != held {
            Arc::make_mut(&mut self.wanted).document = now;
        }
        Ok(())
    }

    /// Transaction pooling, at a point of rest: the backend goes back to
    /// its pool as it is (context, settings and statements kept: the next
    /// client of the same tenant needs no switch), and cancel requests
    /// find no backend until the next transaction (those already on their
    /// way are delivered first).
    pub async fn detach(&self, conn: &mut Conn, attached: Attached) {
        // A cancel this client sent must land before the backend serves
        // anyone else.
        conn.shared.cancels.detach(self.client_key).await;
        // Between transactions the session holds no place at its gate.
        if let Some(p) = conn.pause.as_mut() {
            p.running = None;
        }
        let Attached { mut backend, lease } = attached;
        backend.context = Some(self.wanted.clone());
        match lease {
            Some(lease) => lease.give_back(backend),
            None => drop(backend),
        }
        conn.client.buf = BytesMut::new();
        conn.phase = Phase::Transparent;
    }

    /// Transaction pooling, between transactions: wait for the client's
    /// next bytes (or an interrupt, which closes the session here: nothing
    /// is in flight), then attach a backend. None: the session is over.
    pub async fn between_transactions(
        &mut self,
        conn: &mut Conn,
    ) -> Result<Option<Attached>, SessionError> {
        loop {
            // What a turned-away client sent after its Sync is already here.
            if conn.client.buf.is_empty() && !Box::pin(wait_for_client(conn)).await {
                return Ok(None);
            }
            if conn.client.buf.starts_with(&TERMINATE) {
                return Ok(None);
            }
            // A paused tenant's transaction waits here, before a backend
            // is checked out.
            match Box::pin(paused::pass_gate(conn)).await {
                Gate::Passed => {}
                Gate::Refused(e) => {
                    if Box::pin(busy::turn_away(conn, &e)).await? {
                        continue;
                    }
                    return Ok(None);
                }
                Gate::Closed => return Ok(None),
            }
            // Its tenant moved to another upstream (`tenants move`): the
            // client's next transaction runs there.
            let first = Box::pin(self.follow_move(conn)).await?;
            self.reseal(conn).await?;
            // Boxed: a client between transactions holds none of its memory.
            let attached = match Box::pin(self.attach(conn, first)).await {
                Ok(a) => a,
                // No backend within pool.timeout_ms (the pool busy with
                // other tenants' work): this client's statement fails with
                // 53300, its session goes on.
                Err(SessionError::Pool(e)) => {
                    if Box::pin(busy::turn_away(conn, &e)).await? {
                        continue;
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            conn.phase = Phase::Transparent;
            if let Some(real) = attached.backend.key {
                conn.shared
                    .cancels
                    .retarget(self.client_key, (real, &self.pool.upstream));
            }
            return Ok(Some(attached));
        }
    }

    /// The client left with its conversation at rest. Session pooling:
    /// reset the backend (`clear_context`, `DISCARD ALL`) and give it back,
    /// or close it if the reset fails.
    /// `settings_changed`: the client SET something in its last transaction
    /// (transaction pooling), which the backend's context tag does not
    /// show: it is reset like a session-mode backend.
    pub async fn give_back(
        &self,
        conn: &Conn,
        lease: Lease,
        mut backend: Backend,
        settings_changed: bool,
    ) {
        backend.buf = BytesMut::with_capacity(16 * 1024);
        if self.transaction_pooling() && !settings_changed {
            // At rest: as at any point of rest, it goes back as it is.
            return lease.give_back(backend);
        }
        let cfg = conn.shared.config();
        match switch::reset(&cfg, &mut backend).await {
            Ok(()) => {
                backend.context = None;
                backend.statements.clear();
                lease.give_back(backend)
            }
            Err(e) => {
                lease.pool().discarded(Discard::ResetFailed);
                tracing::warn!(parent: &conn.span, error = %crate::error::Escaped(&e), "closing a pooled backend whose reset failed");
                switch::close(backend).await;
                drop(lease);
            }
        }
    }
}
