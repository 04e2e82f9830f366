//! The pooled way through a session (README "Pooling"): after the router
//! verified the client, a backend comes from the tenant's pool instead of
//! a new login, gets the client's context and settings (`pool::switch`),
//! and the client gets the startup answer PostgreSQL would have sent, with
//! a cancel key of the router's.
//!
//! Session pooling: when the client leaves with its conversation at rest,
//! the backend is reset and given back; otherwise it is closed.
//! Transaction pooling: at every point of rest the backend goes back with
//! its context (`detach`); the client's next message brings a backend
//! again (`between_transactions`), switched only as far as needed.

use super::idle::Idleness;
use super::{Phase, Session, EXPIRED, IDLE_TIMEOUT, KICKED, SHUTTING_DOWN};
use crate::auth::verify::Verified;
use crate::auth::BackendLogin;
use crate::backend::{Backend, ContextTag};
use crate::catalog::{PoolMode, TenantInfo};
use crate::config::Config;
use crate::error::SessionError;
use crate::identify;
use crate::interrupt::{Interrupt, Signal};
use crate::pool::{self, switch, Discard, Lease, Place, Pool};
use crate::protocol::{self, Severity};
use bytes::BytesMut;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
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
pub(super) struct PooledClient {
    mode: PoolMode,
    pool: Arc<Pool>,
    /// The tenant's share of the pool.
    share: usize,
    /// The context and settings its backend must have: its startup
    /// settings, then what it SET since (`session_sets`).
    wanted: Arc<ContextTag>,
    startup: Vec<(String, String)>,
    /// Settings the client SET (transaction pooling), carried to each
    /// backend that serves it.
    session_sets: Vec<(String, String)>,
    /// How to open a backend for it (as the pool's role, in its database).
    login: BackendLogin,
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

/// Bytes read ahead for a client between transactions (it holds no
/// backend and should hold no large buffers either).
const IDLE_READ: usize = 512;

/// A client's Terminate message.
const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

impl PooledClient {
    /// The cancel key the client was given.
    pub(super) fn client_key(&self) -> (i32, i32) {
        self.client_key
    }
}

impl Session {
    pub(super) fn transaction_pooling(&self) -> bool {
        self.pooled
            .as_ref()
            .is_some_and(|p| p.mode == PoolMode::Transaction)
    }

    /// Authenticating (pooled) to Transparent: a backend from the pool,
    /// switched to this client's tenant, and the startup answer. The pool
    /// wait is bounded by `pool.timeout_ms`; the rest by the startup
    /// deadline.
    pub(super) async fn attach_pooled(
        &mut self,
        cfg: &Arc<Config>,
        info: Arc<TenantInfo>,
        v: Verified,
        upstream_params: &[(String, String)],
        deadline: tokio::time::Instant,
    ) -> Result<Backend, SessionError> {
        self.phase = Phase::Authenticating;
        let role = v.who.login_role.clone();
        let database = identify::param(upstream_params, "database")
            .unwrap_or(&role)
            .to_owned();
        let terms = pool::terms_for(cfg, &info, &database, &role);
        let timeout = || SessionError::StartupTimeout(cfg.startup_timeout_ms);
        let place = self
            .shared
            .pools
            .place(&terms, &info.id, cfg.pool.timeout());
        // A pool is made only once its first backend logged in: a database
        // or role that does not work never gets one (nor metric series).
        let (pool, first) = match timeout_at(deadline, place).await.map_err(|_| timeout())?? {
            Place::Pool(pool) => (pool, None),
            Place::First(opening) => {
                let params = terms.key.login_params();
                let open = switch::open(cfg, &params, &v.who.login, &terms.key.role);
                let b = timeout_at(deadline, Box::pin(open))
                    .await
                    .map_err(|_| timeout())??;
                let lease = self.shared.pools.create(opening, &terms, &info.id);
                (lease.pool().clone(), Some((lease, b)))
            }
        };
        let client_key = self.shared.cancels.fresh_key();
        let startup = identify::settings(upstream_params);
        self.pooled = Some(Box::new(PooledClient {
            mode: info.pool.mode,
            pool,
            share: terms.share,
            wanted: Arc::new(ContextTag {
                tenant: info.id.clone(),
                subject: v.who.subject.clone(),
                settings: startup.clone(),
            }),
            startup,
            session_sets: Vec::new(),
            login: v.who.login.clone(),
            client_key,
        }));
        let backend = timeout_at(deadline, self.attach(first))
            .await
            .map_err(|_| timeout())??;
        let real = backend
            .key
            .ok_or_else(|| SessionError::Injection("the backend sent no BackendKeyData".into()))?;
        self.span.record("backend_pid", real.0);
        self.cancel = Some(
            self.shared
                .cancels
                .register_as(client_key, real, &cfg.upstream),
        );
        self.watch_limits(&info, client_key);

        // What PostgreSQL would have said after the password (pg_tenant's
        // own reports are the router's).
        let mut out = v.to_client;
        for (name, value) in &backend.params {
            if !name.starts_with("pg_tenant.") {
                protocol::parameter_status_frame(name, value, &mut out);
            }
        }
        protocol::backend_key_data(client_key.0, client_key.1, &mut out);
        out.extend_from_slice(&protocol::ready_for_query(b'I'));
        self.client.send(&out).await?;
        self.traffic.to_client += out.len() as u64;
        if let Some(c) = &self.counters {
            c.metrics.connection();
        }
        self.authenticated = Some(Box::new(v.who));
        let label = self.pooled.as_ref().map(|p| p.pool.label().to_owned());
        tracing::info!(pool = label, "connection ready (pooled)");
        Ok(backend)
    }

    /// A backend from the client's pool with the client's context and
    /// settings: an idle one (checked if it idled long), else a new one;
    /// switched as far as needed. Sets `self.lease`. A backend that fails
    /// for its own reasons (closed by PostgreSQL, a reset that fails) is
    /// closed and another one tried; what the client must hear (its
    /// context refused, PostgreSQL refusing its settings) ends here.
    /// `first`: a backend the client already opened (its pool's first),
    /// with its place. Everything, retries included, within
    /// `pool.timeout_ms`: past it the client gets 53300.
    async fn attach(&mut self, first: Option<(Lease, Backend)>) -> Result<Backend, SessionError> {
        let cfg = self.shared.config();
        let deadline = tokio::time::Instant::now() + cfg.pool.timeout();
        let mut first = first;
        let mut tries = 0;
        loop {
            tries += 1;
            let once = timeout_at(deadline, self.attach_once(first.take(), deadline)).await;
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
                    tracing::info!(parent: &self.span, error = %crate::error::Escaped(&e), "a pooled backend failed; trying another");
                }
                r => return r,
            }
        }
    }

    /// The error of an attach that did not finish within `pool.timeout_ms`.
    fn attach_timeout(&self, cfg: &Config) -> pool::PoolError {
        let (pool, tenant, size, share) = match &self.pooled {
            Some(p) => {
                let size = p.pool.counts().size;
                (
                    p.pool.label().to_owned(),
                    p.wanted.tenant.clone(),
                    size,
                    p.share.min(size),
                )
            }
            None => (String::new(), String::new(), cfg.pool.size, 0),
        };
        pool::PoolError::Timeout {
            pool,
            tenant,
            waited_ms: cfg.pool.timeout_ms,
            size,
            share,
        }
    }

    async fn attach_once(
        &mut self,
        first: Option<(Lease, Backend)>,
        deadline: tokio::time::Instant,
    ) -> Result<Backend, SessionError> {
        let cfg = self.shared.config();
        let p = self
            .pooled
            .as_ref()
            .ok_or_else(|| SessionError::Injection("not a pooled session".into()))?;
        let pool = p.pool.clone();
        let (lease, got) = match first {
            Some((lease, b)) => (lease, Some(b)),
            None => {
                let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
                let checkout = pool.checkout(&p.wanted.tenant, p.share, wait).await?;
                let reused = match checkout.backend {
                    Some((b, idle)) => Box::pin(usable(&cfg, &pool, b, idle)).await,
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
                    &cfg,
                    &pool.login_params(),
                    &p.login,
                    &pool.key.role,
                ))
                .await?
            }
        };
        pool.learn_login(&p.login);
        self.phase = Phase::Injecting;
        let switched = self.switch(&cfg, &mut backend).await;
        if let Err(e) = switched {
            pool.discarded(Discard::SwitchFailed);
            tokio::spawn(switch::close(backend));
            return Err(e);
        }
        self.lease = Some(lease);
        Ok(backend)
    }

    /// Give `backend` this client's context and settings, as cheaply as
    /// its current ones allow: nothing when they are the same; a new set of
    /// settings for another client of the same tenant and end user; else
    /// a reset (when it has a context) and the full switch.
    async fn switch(&self, cfg: &Config, backend: &mut Backend) -> Result<(), SessionError> {
        let Some(p) = self.pooled.as_ref() else {
            return Ok(());
        };
        let wanted = &p.wanted;
        match &backend.context {
            Some(c) if Arc::ptr_eq(c, wanted) || c == wanted => return Ok(()),
            Some(c) if c.tenant == wanted.tenant && c.subject == wanted.subject => {
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
            p.pool.switches.inc();
        }
        let subject = wanted
            .subject
            .as_ref()
            .map(|(s, c)| (s.as_str(), c.as_str()));
        switch::activate(cfg, backend, &wanted.tenant, subject, &wanted.settings).await?;
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
    pub(super) fn settings_reported(
        &mut self,
        report: Vec<(String, Option<String>)>,
    ) -> Result<(), SessionError> {
        let Some(p) = self.pooled.as_mut() else {
            return Ok(());
        };
        if report.is_empty() {
            p.session_sets.clear();
        }
        for (name, value) in report {
            p.session_sets
                .retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
            if let Some(v) = value {
                p.session_sets.push((name, v));
            }
        }
        let bytes: usize = p.session_sets.iter().map(|(n, v)| n.len() + v.len()).sum();
        if p.session_sets.len() > MAX_SESSION_SETTINGS || bytes > MAX_SESSION_SETTINGS_BYTES {
            return Err(SessionError::TooManySettings(format!(
                "{} settings ({bytes} bytes)",
                p.session_sets.len()
            )));
        }
        let mut settings = p.startup.clone();
        for (name, value) in &p.session_sets {
            settings.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            settings.push((name.clone(), value.clone()));
        }
        Arc::make_mut(&mut p.wanted).settings = settings;
        Ok(())
    }

    /// Transaction pooling, at a point of rest: the backend goes back to
    /// its pool as it is (context, settings and statements kept: the next
    /// client of the same tenant needs no switch), and cancel requests
    /// find no backend until the next transaction (those already on their
    /// way are delivered first).
    pub(super) async fn detach(&mut self, backend: Backend) {
        if let Some(p) = &self.pooled {
            // A cancel this client sent must land before the backend
            // serves anyone else.
            self.shared.cancels.detach(p.client_key).await;
        }
        let mut backend = backend;
        if let Some(p) = &self.pooled {
            backend.context = Some(p.wanted.clone());
        }
        match self.lease.take() {
            Some(lease) => lease.give_back(backend),
            None => drop(backend),
        }
        self.client.buf = BytesMut::new();
        self.phase = Phase::Transparent;
    }

    /// Transaction pooling, between transactions: wait for the client's
    /// next bytes (or an interrupt, which closes the session here: nothing
    /// is in flight), then attach a backend. None: the session is over.
    pub(super) async fn between_transactions(
        &mut self,
        interrupt: &Interrupt,
    ) -> Result<Option<Backend>, SessionError> {
        loop {
            // What a turned-away client sent after its Sync is already here.
            if self.client.buf.is_empty() && !Box::pin(self.wait_for_client(interrupt)).await {
                return Ok(None);
            }
            if self.client.buf.starts_with(&TERMINATE) {
                return Ok(None);
            }
            // Boxed: a client between transactions holds none of its memory.
            let backend = match Box::pin(self.attach(None)).await {
                Ok(b) => b,
                // No backend within pool.timeout_ms (the pool busy with
                // other tenants' work): this client's statement fails with
                // 53300, its session goes on.
                Err(SessionError::Pool(e)) => {
                    if Box::pin(self.turn_away(&e)).await? {
                        continue;
                    }
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            self.phase = Phase::Transparent;
            if let (Some(p), Some(real)) = (&self.pooled, backend.key) {
                self.shared
                    .cancels
                    .retarget(p.client_key, (real, &p.pool.upstream));
            }
            return Ok(Some(backend));
        }
    }

    /// Wait for the client's next bytes; false: the session is over (the
    /// client left, an interrupt or its idle timeout closed it).
    async fn wait_for_client(&mut self, interrupt: &Interrupt) -> bool {
        enum Waited {
            Data,
            Gone,
            Close((&'static str, &'static str)),
        }
        let mut idle = self.idle_timer();
        let client = &mut self.client;
        let shared = &self.shared;
        let waited = std::future::poll_fn(|cx| {
            match interrupt.poll(cx).or_draining(shared.is_draining()) {
                Signal::Stop | Signal::Drain => return Poll::Ready(Waited::Close(SHUTTING_DOWN)),
                Signal::Kick => return Poll::Ready(Waited::Close(KICKED)),
                Signal::Expired => return Poll::Ready(Waited::Close(EXPIRED)),
                Signal::None => {}
            }
            if idle
                .as_mut()
                .is_some_and(|t| client.buf.is_empty() && t.expired(cx, Idleness::Rest, 0))
            {
                return Poll::Ready(Waited::Close(IDLE_TIMEOUT));
            }
            // An idle client holds no read buffer: on plain TCP the
            // socket's readiness is awaited first, and the buffer is
            // allocated only when there is something to read.
            if client.buf.is_empty() {
                match client.stream.poll_read_ready(cx) {
                    Some(Poll::Pending) => return Poll::Pending,
                    Some(Poll::Ready(Err(_))) => return Poll::Ready(Waited::Gone),
                    Some(Poll::Ready(Ok(()))) | None => {}
                }
            }
            if client.buf.capacity() == client.buf.len() {
                client.buf.reserve(IDLE_READ);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut client.stream), cx, &mut client.buf) {
                Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(Waited::Gone),
                Poll::Ready(Ok(_)) => Poll::Ready(Waited::Data),
                Poll::Pending => {
                    if client.buf.is_empty() {
                        client.buf = BytesMut::new();
                    }
                    Poll::Pending
                }
            }
        })
        .await;
        match waited {
            // A Terminate at rest needs no backend: the client is leaving.
            Waited::Data if self.client.buf[..] == TERMINATE => {
                self.traffic.from_client += TERMINATE.len() as u64;
                false
            }
            Waited::Data => true,
            Waited::Gone => false,
            Waited::Close((code, why)) => {
                // Boxed: the wait above is what an idle client holds, and
                // it stays small.
                Box::pin(self.close_at_rest(code, why)).await;
                false
            }
        }
    }

    /// Close a client between transactions with FATAL `code` (nothing is
    /// in flight).
    async fn close_at_rest(&mut self, code: &str, why: &str) {
        let msg = protocol::error_response(
            Severity::Fatal,
            code,
            &format!("terminating connection: {why}"),
        );
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.client.stream.write_all(&msg)).await;
        tracing::info!(parent: &self.span, reason = why, "connection closed by the router");
    }

    /// The client left with its conversation at rest. Session pooling:
    /// reset the backend (`clear_context`, `DISCARD ALL`) and give it back,
    /// or close it if the reset fails.
    /// `settings_changed`: the client SET something in its last transaction
    /// (transaction pooling), which the backend's context tag does not
    /// show: it is reset like a session-mode backend.
    pub(super) async fn give_back(
        &self,
        lease: Lease,
        mut backend: Backend,
        settings_changed: bool,
    ) {
        backend.buf = BytesMut::with_capacity(16 * 1024);
        if self.transaction_pooling() && !settings_changed {
            // At rest: as at any point of rest, it goes back as it is.
            return lease.give_back(backend);
        }
        let cfg = self.shared.config();
        match switch::reset(&cfg, &mut backend).await {
            Ok(()) => {
                backend.context = None;
                backend.statements.clear();
                lease.give_back(backend)
            }
            Err(e) => {
                lease.pool().discarded(Discard::ResetFailed);
                tracing::warn!(parent: &self.span, error = %crate::error::Escaped(&e), "closing a pooled backend whose reset failed");
                switch::close(backend).await;
                drop(lease);
            }
        }
    }
}
