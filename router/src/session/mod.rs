//! One client connection, as an explicit state machine:
//!
//! ```text
//! WaitStartup -> Authenticating -> PostAuth -> Injecting -> Transparent -> Draining
//!                                          \-> Transparent   (bypass users)
//! ```
//!
//! Authenticating is one of two ways (`auth`): the router checks the
//! client itself (verify mode, tenant secrets, and the mock exchange of
//! unknown or disabled tenants) before it takes a connection slot or opens
//! a backend, then logs into PostgreSQL; or PostgreSQL's exchange is
//! relayed, on a backend counted under `auth.max_unauthenticated_backends`
//! until it ends. Either way the session keeps one `Authenticated`.
//!
//! The client side is a `Frontend`, the server side a `Backend`; the
//! Transparent phase is the `Relay`, whose `Conversation` says when the
//! session is idle. Any failure before Transparent closes the client with a
//! FATAL (Postgres' own ErrorResponse when it refused the backend): there
//! is never a usable tenant connection without its context. Draining
//! (after SIGTERM) relays until the session is idle, then closes it with
//! 57P01.

use crate::auth::verify::{self, Verified};
use crate::auth::{self, Authenticated, BackendLogin, Failure};
use crate::backend::Backend;
use crate::cancel::CancelGuard;
use crate::catalog::TenantInfo;
use crate::config::LoginMode;
use crate::conversation::Conversation;
use crate::error::SessionError;
use crate::frontend::{Frontend, Opening};
use crate::identify::{self, Identity};
use crate::interrupt::{Interrupt, Signal};
use crate::limits::{ConnectionSlot, StatementWatch, TenantCounters};
use crate::pool::Lease;
use crate::protocol::{self, Severity};
use crate::relay::{Carried, End, Mode, Ownership, Relay};
use crate::shared::Shared;
use crate::transport::Stream;
use bytes::BytesMut;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::timeout_at;
use tracing::Instrument;

mod busy;
mod idle;
mod pooled;
use idle::{IdleTimer, Idleness, IDLE_TIMEOUT, UNSYNCED_TIMEOUT};
use pooled::MAX_SESSION_SETTINGS_BYTES;

/// The phases of a connection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    WaitStartup,
    Authenticating,
    PostAuth,
    Injecting,
    Transparent,
    /// SIGTERM: relaying until the session is idle.
    Draining,
}

/// Byte counts for the close log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Traffic {
    pub from_client: u64,
    pub to_client: u64,
}

/// Why the relay stopped.
enum Exit {
    Relay(Result<End, crate::relay::RelayError>),
    Stop,
    Kick,
    Expired,
    /// Idle longer than allowed (`session::idle`): the FATAL to send.
    Idle((&'static str, &'static str)),
}

/// The FATALs the router closes a session with.
const SHUTTING_DOWN: (&str, &str) = ("57P01", "tenant-router is shutting down");
const KICKED: (&str, &str) = (
    "57P01",
    "an administrator disconnected this tenant's connections",
);
const EXPIRED: (&str, &str) = ("28000", "the JWT this session logged in with has expired");
const OVERFLOW: (&str, &str) = (
    "54000",
    "more than 100000 Parse and Close messages wait for their answers (send Sync): with transaction pooling tenant-router tracks each of them",
);
const LOST: (&str, &str) = (
    "08P01",
    "a COPY failed with a Sync sent before its data, and which answers follow cannot be told: with transaction pooling the session ends (send Sync after the COPY's data, not before)",
);

/// Longest wait, when a session ends, for PostgreSQL to close its backend.
const BACKEND_EXIT_WAIT: Duration = Duration::from_secs(5);

/// Time a client over `max_client_connections` has to say what it wants
/// (a cancel request is still served) before it is refused.
const OVER_CAPACITY_GRACE: Duration = Duration::from_secs(1);

/// A connection being served.
pub struct Session {
    shared: Arc<Shared>,
    client: Frontend,
    /// The client's place under `max_client_connections` (None: over it).
    permit: Option<OwnedSemaphorePermit>,
    phase: Phase,
    traffic: Traffic,
    cancel: Option<CancelGuard>,
    /// The tenant's counters: at once when the router holds its state,
    /// else once the client has authenticated (`hold_counters`).
    counters: Option<Arc<TenantCounters>>,
    /// Until then, its place among the logins an administrator's
    /// disconnect reaches.
    login: Option<crate::limits::logins::LoginGuard>,
    slot: Option<ConnectionSlot>,
    /// The tenant's limits on this session (boxed: it moves between the
    /// session and its relay).
    watch: Option<Box<StatementWatch>>,
    /// Raised by the router (drain, stop), an administrator (disconnect of
    /// the tenant) and a token's expiry; registered where they reach it.
    interrupt: Arc<Interrupt>,
    /// The connection's span (peer, tenant, user, backend pid).
    span: tracing::Span,
    /// Who authenticated, once the handshake has said so.
    authenticated: Option<Box<Authenticated>>,
    /// The pooled backend's place in its pool (pooled sessions, while a
    /// backend is attached).
    lease: Option<Lease>,
    /// A pooled client: what brings it a backend.
    pooled: Option<Box<pooled::PooledClient>>,
}

impl Session {
    pub fn new(
        shared: Arc<Shared>,
        client: Stream,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Session {
        let interrupt = Arc::new(Interrupt::default());
        shared.interrupts.register(&interrupt);
        Session {
            shared,
            client: Frontend::new(client),
            permit,
            phase: Phase::WaitStartup,
            traffic: Traffic::default(),
            cancel: None,
            counters: None,
            login: None,
            slot: None,
            watch: None,
            interrupt,
            span: tracing::Span::none(),
            authenticated: None,
            lease: None,
            pooled: None,
        }
    }

    /// Serve the connection to its end. The handshake runs inside `span`;
    /// the relay does not (entering a span on every wake-up costs more than
    /// the relay itself), and its log lines name `span` as their parent.
    /// `guard` (the listener's drain guard) is held until the end.
    ///
    /// The task's own future stays small (what an idle client costs): the
    /// handshake, the relay and the closing are each boxed while they run.
    pub async fn run<G: Send>(mut self: Box<Self>, span: tracing::Span, guard: G) -> Traffic {
        let started = Instant::now();
        self.span = span.clone();
        // The handshake's futures are large (authentication, TLS, the
        // backend login): boxed, so a session waiting in its relay holds
        // none of that memory.
        // What the relay waits with is kept small too: the backend is boxed
        // at once (a future keeps what it matched on until it ends).
        let opened = Box::pin(self.handshake().instrument(span))
            .await
            .map(|server| server.map(Box::new));
        let result = match opened {
            Ok(Some(server)) => {
                self.phase = Phase::Transparent;
                Box::pin(self.relay(server)).await
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        Box::pin(self.close(result, started)).await;
        drop(guard);
        self.traffic
    }

    /// The session is over: count and log why, tell the client (a FATAL,
    /// or PostgreSQL's own refusal) and close its connection.
    async fn close(&mut self, result: Result<(), SessionError>, started: Instant) {
        if let Err(e) = &result {
            if let (SessionError::ContextRefused(_), Some(c)) = (e, &self.counters) {
                c.metrics.auth_failed(Failure::RoleNotAllowed);
                tracing::info!(reason = Failure::RoleNotAllowed.label(), error = %crate::error::Escaped(e), "authentication failed");
            }
            match (&self.counters, e.refusal()) {
                (Some(c), Some(r)) if self.phase < Phase::Transparent => c.metrics.refused(r),
                (None, _) if matches!(e, SessionError::UnknownTenant(_)) => {
                    self.shared.metrics.unknown_tenant.inc()
                }
                // A known tenant without state here whose client never
                // authenticated (`login` is set for exactly those): the
                // aggregates only.
                (None, Some(r)) if self.login.is_some() && self.phase < Phase::Transparent => {
                    self.shared.metrics.totals().refused(r)
                }
                _ => {}
            }
            if let SessionError::Postgres(frame) = e {
                let _ = self.client.stream.write_all(frame).await;
            } else if let Some(code) = e.sqlstate() {
                let msg = protocol::error_response(Severity::Fatal, code, &e.to_string());
                let _ = self.client.stream.write_all(&msg).await;
            }
            tracing::info!(parent: &self.span, phase = ?self.phase, error = %crate::error::Escaped(e), "connection refused or failed");
        }
        let _ = self.client.stream.shutdown().await;
        tracing::info!(
            parent: &self.span,
            duration_ms = started.elapsed().as_millis() as u64,
            bytes_in = self.traffic.from_client,
            bytes_out = self.traffic.to_client,
            "connection closed"
        );
        drop(self.permit.take());
    }

    /// WaitStartup to Injecting. Returns the backend, with what is already
    /// buffered from it, or None for a cancel request.
    async fn handshake(&mut self) -> Result<Option<Backend>, SessionError> {
        let cfg = self.shared.config();
        let over_capacity = self.permit.is_none();
        let deadline = tokio::time::Instant::now()
            + if over_capacity {
                OVER_CAPACITY_GRACE.min(cfg.startup_timeout())
            } else {
                cfg.startup_timeout()
            };
        let timeout = || SessionError::StartupTimeout(cfg.startup_timeout_ms);

        // WaitStartup
        let params = match timeout_at(deadline, self.client.read_opening(&cfg.tls))
            .await
            .map_err(|_| timeout())??
        {
            Opening::Cancel { pid, key } => {
                let forwarded = self.shared.cancels.forward(pid, key).await;
                let outcome = if forwarded { "forwarded" } else { "dropped" };
                self.shared
                    .metrics
                    .cancel_requests
                    .with_label_values(&[outcome])
                    .inc();
                return Ok(None);
            }
            Opening::Startup(_) if over_capacity => {
                return Err(SessionError::TooManyClients(self.shared.max_clients()))
            }
            Opening::Startup(p) => p,
        };
        let span = tracing::Span::current();
        let sni_owned = self.client.tls.as_ref().and_then(|t| t.sni.clone());
        let sni = sni_owned.as_deref();
        if let Some(tls) = &self.client.tls {
            span.record("tls", tls.version);
            self.shared
                .metrics
                .connections_tls
                .with_label_values(&[tls.version])
                .inc();
        }
        // A token login: the JWT names the tenant and the role, so it is
        // checked before anything else (nothing is looked up for a client
        // whose token does not verify).
        let token_login = cfg
            .auth
            .jwt_verifier
            .as_ref()
            .filter(|v| identify::param(&params, "user") == Some(v.user()));
        let mut verified: Option<Verified> = None;
        let identity = match token_login {
            Some(v) => {
                self.phase = Phase::Authenticating;
                let checked =
                    auth::jwt::authenticate(&mut self.client, &self.shared.metrics, &cfg, v);
                let checked = timeout_at(deadline, checked)
                    .await
                    .map_err(|_| timeout())??;
                let identity = Identity::Tenant {
                    tenant: checked.who.tenant.clone(),
                    user: checked.who.login_role.clone(),
                    from_database: false,
                };
                verified = Some(checked);
                identity
            }
            None => identify::identify(&cfg.identify, &cfg.bypass_users, &params, sni)?,
        };
        let sni_tenant = matches!(&identity, Identity::Tenant { tenant, .. }
            if sni.is_some_and(|s| identify::sni_names(&cfg.identify, s, tenant)));
        span.record("sni_tenant", sni_tenant);
        let (upstream_params, tenant) = match &identity {
            Identity::Bypass { user } => {
                span.record("user", user.as_str());
                tracing::info!("bypass user: forwarding without a tenant context");
                (params, None)
            }
            Identity::Tenant {
                tenant,
                user,
                from_database,
            } => {
                span.record("tenant", tenant.as_str());
                span.record("user", user.as_str());
                identify::screen(&params)?;
                let known = timeout_at(deadline, self.known_tenant(tenant))
                    .await
                    .map_err(|_| timeout())??;
                let secret = known
                    .as_ref()
                    .and_then(|i| i.auth_secret.as_ref())
                    .map(|s| s.0.clone());
                // The router checks the client itself: nothing is taken
                // or opened for it before it has proved who it is. An
                // unknown or disabled tenant of a relayed login gets the
                // same (mock) exchange: nothing tells it apart from a
                // wrong password.
                let unusable = known.as_ref().is_none_or(|i| !i.enabled);
                let must_verify =
                    secret.is_some() || cfg.auth.login == LoginMode::Verify || unusable;
                if verified.is_none() && must_verify {
                    self.phase = Phase::Authenticating;
                    let client_user = identify::param(&params, "user").unwrap_or_default();
                    let request = verify::Request {
                        tenant,
                        role: user,
                        client_user,
                        known: known.as_deref(),
                        secret,
                    };
                    let checked = verify::authenticate(
                        &mut self.client,
                        &self.shared.checker,
                        self.counters.as_deref(),
                        &cfg,
                        request,
                    );
                    let v = timeout_at(deadline, checked)
                        .await
                        .map_err(|_| timeout())??;
                    verified = Some(v);
                }
                let info = known.ok_or_else(|| SessionError::UnknownTenant(tenant.into()))?;
                if !info.enabled {
                    return Err(SessionError::DisabledTenant(tenant.into()));
                }
                // A client the router checked has proved itself: it takes
                // its place now, before a backend is opened. A relayed one
                // takes it once PostgreSQL has accepted it (below), so
                // clients that never answer cannot hold a tenant's places.
                if verified.is_some() {
                    self.slot = Some(
                        self.shared
                            .limits
                            .acquire_connection(tenant, info.max_connections)?,
                    );
                    self.hold_counters();
                }
                let rewritten = rewrite(
                    &params,
                    user,
                    *from_database,
                    &info,
                    &cfg.identify.default_database,
                );
                (rewritten, Some(info))
            }
        };

        // A client the router checked itself can be served by a pooled
        // backend (a relayed login needs a backend of its own).
        if cfg.pool.enabled {
            if let (Some(info), Some(v)) = (&tenant, verified.take()) {
                let attach = self.attach_pooled(&cfg, info.clone(), v, &upstream_params, deadline);
                return attach.await.map(Some);
            }
        }

        // Authenticating
        self.phase = Phase::Authenticating;
        // A relayed authentication holds a backend while the client
        // answers: capped by auth.max_unauthenticated_backends, and per
        // tenant by auth.max_unauthenticated_per_tenant.
        let pending = match verified {
            Some(_) => None,
            None => Some(
                self.shared
                    .admit_unauthenticated(tenant.as_deref().map(|i| i.id.as_str()))?,
            ),
        };
        let mut server = timeout_at(deadline, Backend::connect(&cfg))
            .await
            .map_err(|_| timeout())??;
        server
            .send(&protocol::startup_message(&upstream_params))
            .await?;
        let authenticated = match verified {
            None => {
                let cleartext_allowed = auth::cleartext_allowed(&self.client, &cfg);
                let relayed = auth::relay(&mut self.client, &mut server, cleartext_allowed);
                timeout_at(deadline, relayed)
                    .await
                    .map_err(|_| timeout())??;
                identity_authenticated(&identity, BackendLogin::Relayed)
            }
            Some(v) => {
                timeout_at(
                    deadline,
                    auth::login::login(&mut server, &v.who.login, &v.who.login_role),
                )
                .await
                .map_err(|_| timeout())??;
                self.client.send(&v.to_client).await?;
                v.who
            }
        };
        drop(pending);
        if let (None, Some(info)) = (&self.slot, &tenant) {
            self.slot = Some(
                self.shared
                    .limits
                    .acquire_connection(&info.id, info.max_connections)?,
            );
            self.hold_counters();
        }
        self.authenticated = Some(Box::new(authenticated));

        // PostAuth: forward ParameterStatus and BackendKeyData, hold ReadyForQuery.
        self.phase = Phase::PostAuth;
        let mut out = BytesMut::with_capacity(512);
        let (pid, key) = timeout_at(deadline, server.post_auth(&mut out))
            .await
            .map_err(|_| timeout())??;
        span.record("backend_pid", pid);
        // Cancel requests for this backend are forwarded while the session lives.
        self.cancel = Some(self.shared.cancels.register(pid, key, &cfg.upstream));

        // For a bypass user the held ReadyForQuery, last in `out`, goes as is.
        if let Some(info) = tenant {
            self.watch_limits(&info, (pid, key));
            self.phase = Phase::Injecting;
            let backend = pg_tenant_token::Backend {
                pid,
                cancel_key: key,
            };
            let subject = self
                .authenticated
                .as_ref()
                .and_then(|a| a.subject.as_ref())
                .map(|(s, c)| (s.as_str(), c.as_str()));
            let token = context_token(cfg.signing_key.as_ref(), &info.id, subject, backend)?;
            timeout_at(deadline, server.inject(&mut out, &info.id, &token, subject))
                .await
                .map_err(|_| timeout())??;
        }
        self.client.send(&out).await?;
        self.traffic.to_client += out.len() as u64;
        match &self.counters {
            Some(c) => c.metrics.connection(),
            None => self.shared.metrics.bypass.inc(),
        }
        let login = self.authenticated.as_ref().map(|a| &a.login);
        tracing::info!(login = ?login, "connection ready");
        Ok(Some(server))
    }

    /// The tenant's limits watch this session, whose client knows `key`
    /// (the backend's own, or the router's for a pooled client).
    fn watch_limits(&mut self, info: &Arc<TenantInfo>, key: (i32, i32)) {
        let counters = self.shared.limits.counters(&info.id);
        // A re-read that found no counters yet (the tenant changed while
        // this login ran) left the newer row in the catalog's cache.
        counters.publish(self.shared.catalog.newest(info.clone()));
        self.watch = Some(Box::new(StatementWatch::new(
            &info.id,
            counters,
            self.shared.cancels.clone(),
            key,
        )));
    }

    /// The idle timer of a tenant session, with its tenant's
    /// `client_idle_timeout_ms` as the catalog says now (None: not a
    /// tenant session).
    fn idle_timer(&self) -> Option<IdleTimer> {
        let row = self.counters.as_ref()?.current().1?;
        Some(IdleTimer::new(row.client_idle_timeout_ms))
    }

    /// The tenant's catalog row (None: unknown). A known tenant whose
    /// state the router holds (it has had an authenticated client) gets
    /// its counters now; others once the client has authenticated
    /// (`hold_counters`): a client that never proves itself creates no
    /// tenant state and no series, whatever tenant it names.
    async fn known_tenant(
        &mut self,
        tenant: &str,
    ) -> Result<Option<Arc<TenantInfo>>, SessionError> {
        let info = self.shared.catalog.lookup(tenant).await?;
        if info.is_some() {
            // From here an administrator's disconnect of the tenant
            // reaches this session, authentication included.
            match self.shared.limits.get(tenant) {
                Some(counters) => {
                    counters.register_session(&self.interrupt);
                    self.counters = Some(counters);
                }
                None => {
                    self.login = Some(self.shared.limits.logins.started(tenant, &self.interrupt));
                }
            }
        }
        Ok(info)
    }

    /// The client has authenticated and holds a place (`slot`): the
    /// session keeps its tenant's counters (made now if the router held
    /// none), and an administrator's disconnect reaches it.
    fn hold_counters(&mut self) {
        if self.counters.is_none() {
            if let Some(slot) = &self.slot {
                let counters = slot.counters().clone();
                counters.register_session(&self.interrupt);
                self.counters = Some(counters);
                // Registered with the counters first: no moment when a
                // disconnect would miss it.
                self.login = None;
            }
        }
    }

    /// Transparent (and Draining): the relay (see `relay`), until either
    /// side ends, the router shuts down, or an administrator disconnects
    /// the tenant. With transaction pooling, one relay per transaction: at
    /// each point of rest the backend goes back to its pool, and the next
    /// message of the client brings one (`pooled`).
    async fn relay(&mut self, first: Box<Backend>) -> Result<(), SessionError> {
        let mut watch = self.watch.take();
        let interrupt = self.interrupt.clone();
        // A token login ends when its token does (auth.jwt.end_session_at_expiry).
        let expiry = self
            .authenticated
            .as_ref()
            .and_then(|a| a.expires_at)
            .map(|at| {
                let left = at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                tokio::spawn(crate::interrupt::expire_at(
                    Arc::downgrade(&interrupt),
                    tokio::time::Instant::now() + left,
                ))
            });
        let transactions = self.transaction_pooling();
        let mut conv = Conversation::default();
        let budget = self.shared.config().pool.statement_budget();
        let mut statements = transactions.then(|| Carried::new(budget));
        let mut attached = Some(first);
        let result = loop {
            let backend = match attached.take() {
                Some(b) => *b,
                None => match Box::pin(self.between_transactions(&interrupt)).await {
                    Ok(Some(b)) => b,
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                },
            };
            // Boxed: between transactions a client holds none of the
            // relay's memory.
            let mode = if transactions {
                Mode::DetachAtRest
            } else {
                Mode::Serve
            };
            let one = Box::pin(self.relay_once(
                backend,
                &mut conv,
                &mut statements,
                &mut watch,
                &interrupt,
                mode,
            ));
            match one.await {
                None => continue,
                Some(end) => break end,
            }
        };
        if let Some(timer) = expiry {
            timer.abort();
        }
        result
    }

    /// One relay on `backend`: until the session ends (Some), or, with
    /// transaction pooling, until the conversation is at rest and the
    /// backend went back to its pool (None).
    async fn relay_once(
        &mut self,
        mut backend: Backend,
        conv: &mut Conversation,
        statements: &mut Option<Carried>,
        watch: &mut Option<Box<StatementWatch>>,
        interrupt: &Interrupt,
        mode: Mode,
    ) -> Option<Result<(), SessionError>> {
        if let Some(st) = statements.as_mut() {
            st.backend = std::mem::take(&mut backend.statements);
        }
        let ownership = match self.lease {
            Some(_) => Ownership::Pooled,
            None => Ownership::Own,
        };
        if let Some(w) = watch.as_mut() {
            w.restart_accounting();
        }
        // A pooled client knows the router's pid, not the backend's.
        let pid = match (&self.pooled, backend.key) {
            (Some(p), Some((real, _))) => Some((real, p.client_key().0)),
            _ => None,
        };
        let relay = Relay::resume(
            std::mem::take(conv),
            statements.take(),
            pid,
            std::mem::take(&mut self.client.buf),
            std::mem::take(&mut backend.buf),
            watch.as_deref_mut(),
            ownership,
        );
        let mut relay = match relay {
            Ok(r) => r,
            Err(e) => return Some(Err(e.into())),
        };
        let mut idle = self.idle_timer();
        let exit = self
            .run_relay(&mut relay, &mut backend, watch, interrupt, &mut idle, mode)
            .await;
        self.traffic.from_client += relay.up.bytes;
        self.traffic.to_client += relay.down.bytes;
        if matches!(exit, Exit::Relay(Ok(End::Rest))) {
            // Transaction pooling: the backend goes back, context and
            // statements kept; the client keeps its conversation.
            *conv = std::mem::take(&mut relay.conv);
            // The backend keeps its read buffer (backends are few); the
            // client's goes, an idle client holds none.
            if let Some(buf) = relay.down.framer.take_buf() {
                backend.buf = buf;
            }
            if let Some(mut st) = relay.statements.take() {
                backend.statements = std::mem::take(&mut st.backend);
                let reported = match (st.settings_overflow, st.settings.take()) {
                    (true, _) => Err(SessionError::TooManySettings(format!(
                        "settings of more than {} bytes",
                        MAX_SESSION_SETTINGS_BYTES
                    ))),
                    (false, Some(report)) => self.settings_reported(report),
                    (false, None) => Ok(()),
                };
                if let Err(e) = reported {
                    // The backend holds settings the router will not
                    // carry: it is closed, and the client told why.
                    if let Some(lease) = self.lease.take() {
                        lease
                            .pool()
                            .discarded(crate::pool::Discard::TooManySettings);
                    }
                    tokio::spawn(crate::pool::switch::close(backend));
                    return Some(Err(e));
                }
                *statements = Some(st);
            }
            self.detach(backend).await;
            return None;
        }
        // Boxed: closing is rare and its futures are large; this future is
        // made anew for every transaction, so it stays small.
        Some(Box::pin(self.end_relay(relay, backend, watch, exit)).await)
    }

    /// Relay until the relay stops (`mode`) or an interrupt arrives.
    async fn run_relay(
        &mut self,
        relay: &mut Relay,
        backend: &mut Backend,
        watch: &mut Option<Box<StatementWatch>>,
        interrupt: &Interrupt,
        idle: &mut Option<IdleTimer>,
        mut mode: Mode,
    ) -> Exit {
        let client = &mut self.client.stream;
        let server = &mut backend.stream;
        let phase = &mut self.phase;
        let shared = &self.shared;
        std::future::poll_fn(|cx| {
            match interrupt.poll(cx).or_draining(shared.is_draining()) {
                Signal::Stop => return Poll::Ready(Exit::Stop),
                Signal::Kick => return Poll::Ready(Exit::Kick),
                Signal::Expired => return Poll::Ready(Exit::Expired),
                Signal::Drain if mode == Mode::Serve => {
                    *phase = Phase::Draining;
                    mode = Mode::StopWhenIdle;
                }
                Signal::Drain => *phase = Phase::Draining,
                Signal::None => {}
            }
            let polled = relay.poll(cx, client, server, watch.as_deref_mut(), mode);
            if polled.is_pending() {
                // Checked after the relay went as far as it could: the
                // timer is armed (its waker registered) as soon as the
                // conversation comes to rest.
                if let Some(t) = idle.as_mut() {
                    let activity = relay.up.bytes + relay.up.framer.buffered() as u64;
                    let how = if relay.idle(watch.as_deref()) {
                        Idleness::Rest
                    } else if mode == Mode::DetachAtRest
                        && relay.conv.unsynced_idle()
                        && relay.up.framer.is_empty()
                        && relay.down.pending().is_empty()
                    {
                        Idleness::Unsynced
                    } else {
                        Idleness::Busy
                    };
                    if t.expired(cx, how, activity) {
                        return Poll::Ready(Exit::Idle(match how {
                            Idleness::Unsynced => UNSYNCED_TIMEOUT,
                            _ => IDLE_TIMEOUT,
                        }));
                    }
                }
            }
            polled.map(Exit::Relay)
        })
        .await
    }

    /// The relay ended for good: tell the client why (if it is still
    /// there), and give the backend back (a pooled one whose client left at
    /// rest) or let it go.
    async fn end_relay(
        &mut self,
        mut relay: Relay,
        mut backend: Backend,
        watch: &Option<Box<StatementWatch>>,
        exit: Exit,
    ) -> Result<(), SessionError> {
        let in_flight = !relay.idle(watch.as_deref());
        // A pooled backend goes back only from a client that left with the
        // conversation at rest and nothing of the server's half read.
        let reusable = matches!(exit, Exit::Relay(Ok(End::Client)) | Exit::Idle(_))
            && !in_flight
            && relay.down.framer.is_empty();
        let closing = match exit {
            Exit::Relay(Err(e)) => Err(e.into()),
            Exit::Relay(Ok(End::Client)) => Ok(None),
            Exit::Relay(Ok(End::Server)) => Err(SessionError::ServerGone),
            Exit::Relay(Ok(End::Idle | End::Rest)) | Exit::Stop => Ok(Some(SHUTTING_DOWN)),
            Exit::Relay(Ok(End::Lost)) => Ok(Some(LOST)),
            Exit::Relay(Ok(End::Overflow)) => Ok(Some(OVERFLOW)),
            Exit::Kick => Ok(Some(KICKED)),
            Exit::Expired => Ok(Some(EXPIRED)),
            Exit::Idle(fatal) => Ok(Some(fatal)),
        };
        if let Ok(Some((code, why))) = closing {
            self.close_with(&relay, code, why).await;
        }
        match self.lease.take() {
            Some(lease) if reusable => {
                // Transaction pooling: the backend's statements go back
                // with it; if an answer about them is still due (or the
                // client SET something the backend's tag does not show),
                // it is reset first.
                let mut needs_reset = false;
                if let Some(c) = relay.statements.as_mut() {
                    needs_reset = c.settings.take().is_some() || !c.client.settled();
                    backend.statements = std::mem::take(&mut c.backend);
                }
                self.give_back(lease, backend, needs_reset).await
            }
            Some(lease) => {
                lease.pool().discarded(crate::pool::Discard::ClientLeftBusy);
                self.let_backend_go(&mut backend.stream, in_flight).await;
            }
            None => self.let_backend_go(&mut backend.stream, in_flight).await,
        }
        closing.map(|_| ())
    }

    /// The session is over but its backend may still be working: a
    /// statement in flight when the client vanished, the token expired or
    /// an administrator disconnected the tenant. Cancel that work, close
    /// the router's side, and wait (up to `BACKEND_EXIT_WAIT`) until
    /// PostgreSQL has closed the connection: the tenant's connection slot
    /// is given back only then, so a client that hangs up cannot leave work
    /// running beyond its limits (`max_connections`, `max_query_ms`).
    async fn let_backend_go(&self, server: &mut Stream, in_flight: bool) {
        use tokio::io::AsyncReadExt;
        if in_flight {
            if let Some((pid, key)) = self.cancel.as_ref().map(|c| c.key()) {
                self.shared.cancels.forward(pid, key).await;
            }
        }
        let _ = server.shutdown().await;
        let mut sink = vec![0u8; 8192];
        let gone = async { while server.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
        if tokio::time::timeout(BACKEND_EXIT_WAIT, gone).await.is_err() {
            tracing::warn!(parent: &self.span, "the backend did not close within {} s; its slot is given back anyway", BACKEND_EXIT_WAIT.as_secs());
        }
    }

    /// Close the client with FATAL `code`, after the bytes already owed to
    /// it, when they end at a frame boundary (otherwise the FATAL is not
    /// sent: the client sees the connection close).
    async fn close_with(&mut self, relay: &Relay, code: &str, why: &str) {
        let msg = protocol::error_response(
            Severity::Fatal,
            code,
            &format!("terminating connection: {why}"),
        );
        let whole = relay.down.framer.owes_whole_frames();
        let client = &mut self.client.stream;
        let write = async {
            client.write_all(relay.down.pending()).await?;
            if whole {
                client.write_all(&msg).await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
        tracing::info!(parent: &self.span, reason = why, "connection closed by the router");
    }
}

/// Who a relayed authentication let in.
fn identity_authenticated(identity: &Identity, login: BackendLogin) -> Authenticated {
    let (tenant, role) = match identity {
        Identity::Bypass { user } => (String::new(), user.clone()),
        Identity::Tenant { tenant, user, .. } => (tenant.clone(), user.clone()),
    };
    Authenticated {
        tenant,
        login_role: role,
        subject: None,
        expires_at: None,
        login,
    }
}

/// The token that lets this router set `tenant`'s context in `backend`.
/// With a subject (token logins), the token also binds the subject and
/// the claims JSON.
fn context_token(
    key: Option<&pg_tenant_token::SigningKey>,
    tenant: &str,
    subject: Option<(&str, &str)>,
    backend: pg_tenant_token::Backend,
) -> Result<String, SessionError> {
    let key = key.ok_or_else(|| SessionError::Injection("no context signing key".into()))?;
    let action = crate::backend::context_action(tenant, subject);
    Ok(pg_tenant_token::sign(key, action, backend, nonce()))
}

/// The startup parameters Postgres gets: the tenant-free user name, and the
/// database the catalog names for database-isolated tenants.
fn rewrite(
    params: &[(String, String)],
    user: &str,
    from_database: bool,
    info: &TenantInfo,
    default_db: &str,
) -> Vec<(String, String)> {
    let catalog_db = info
        .database_name
        .as_deref()
        .filter(|_| from_database || info.isolation == "database");
    let db = catalog_db.or(from_database.then_some(default_db));
    let mut out: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| match k.as_str() {
            "user" => (k.clone(), user.to_string()),
            "database" => (k.clone(), db.unwrap_or(v).to_string()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    if let Some(db) = db {
        if identify::param(params, "database").is_none() {
            out.push(("database".into(), db.into()));
        }
    }
    out
}

/// The nonce of a fresh token: microseconds since the epoch, which only
/// grows for a backend the router has just opened.
fn nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(1)
        .max(1)
}
