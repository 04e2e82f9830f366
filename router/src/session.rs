//! One client connection, as an explicit state machine:
//!
//! ```text
//! WaitStartup -> Authenticating -> PostAuth -> Injecting -> Transparent -> Draining
//!                                          \-> Transparent   (bypass users)
//! ```
//!
//! Any failure before Transparent closes the client with a FATAL: there is
//! never a usable tenant connection without its context. Draining (after
//! SIGTERM) relays until the session is idle, then closes it with 57P01.

use crate::auth;
use crate::cancel::CancelGuard;
use crate::catalog::{CatalogError, TenantInfo};
use crate::identify::{self, IdentifyError, Identity};
use crate::limits::{ConnectionSlot, LimitError, StatementWatch, TenantCounters};
use crate::metrics::Refusal;
use crate::protocol::{self, FrameError, Severity, Startup};
use crate::relay::{End, Mode, Relay};
use crate::server::{Shared, Stop};
use bytes::{BufMut, BytesMut};
use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tokio::time::timeout_at;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Identify(#[from] IdentifyError),
    #[error("tenant \"{0}\" does not exist")]
    UnknownTenant(String),
    #[error("tenant \"{0}\" is disabled")]
    DisabledTenant(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Limit(#[from] LimitError),
    #[error("cannot connect to PostgreSQL at {addr}: {reason}")]
    Upstream { addr: String, reason: String },
    #[error("startup and authentication did not finish within {0} ms")]
    StartupTimeout(u64),
    #[error("could not set the tenant context: {0}")]
    Injection(String),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("client closed the connection")]
    ClientGone,
    #[error("PostgreSQL closed the connection")]
    ServerGone,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl SessionError {
    /// The SQLSTATE of the FATAL the client gets, or None when there is no
    /// one left to tell (or Postgres already told it).
    fn sqlstate(&self) -> Option<&'static str> {
        Some(match self {
            SessionError::Frame(FrameError::UnsupportedProtocol(..)) => "0A000",
            SessionError::Frame(_) => "08P01",
            SessionError::Identify(e) => e.sqlstate(),
            SessionError::UnknownTenant(_) | SessionError::DisabledTenant(_) => "28000",
            SessionError::Catalog(_) => "57P03",
            SessionError::Limit(e) => e.sqlstate(),
            SessionError::Upstream { .. } => "08006",
            SessionError::StartupTimeout(_) => "08006",
            SessionError::Injection(_) => "08006",
            SessionError::Auth(e) => e.sqlstate()?,
            SessionError::ClientGone | SessionError::ServerGone | SessionError::Io(_) => {
                return None
            }
        })
    }

    /// How a refused connection of a known tenant is counted (None: the
    /// client went away, nobody refused it).
    fn refusal(&self) -> Option<Refusal> {
        Some(match self {
            SessionError::Limit(_) => Refusal::MaxConnections,
            SessionError::DisabledTenant(_) => Refusal::Disabled,
            SessionError::Auth(auth::AuthError::Refused(_) | auth::AuthError::Unsupported(_)) => {
                Refusal::Auth
            }
            SessionError::ClientGone | SessionError::Io(_) => return None,
            _ => Refusal::Error,
        })
    }
}

/// The phases of a connection (DESIGN.md, "The router").
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

const BUF: usize = 16 * 1024;

/// A connection being served.
pub struct Session {
    shared: Arc<Shared>,
    client: TcpStream,
    cbuf: BytesMut,
    phase: Phase,
    traffic: Traffic,
    cancel: Option<CancelGuard>,
    /// The tenant's counters, once the catalog knows the tenant.
    counters: Option<Arc<TenantCounters>>,
    slot: Option<ConnectionSlot>,
    watch: Option<StatementWatch>,
    /// Fires when an administrator disconnects the tenant.
    kick: Option<watch::Receiver<u64>>,
    /// The connection's span (peer, tenant, user, backend pid).
    span: tracing::Span,
}

/// What the startup phase produced.
enum Opening {
    Cancel { pid: i32, key: i32 },
    Startup(Vec<(String, String)>),
}

/// Read one frame from `stream` into `buf`, returning it whole (header
/// included).
pub(crate) async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Option<BytesMut>, SessionError> {
    loop {
        if let Some(h) = protocol::complete_frame(buf)? {
            return Ok(Some(buf.split_to(h.frame_len)));
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

impl Session {
    pub fn new(shared: Arc<Shared>, client: TcpStream) -> Session {
        Session {
            shared,
            client,
            cbuf: BytesMut::with_capacity(BUF),
            phase: Phase::WaitStartup,
            traffic: Traffic::default(),
            cancel: None,
            counters: None,
            slot: None,
            watch: None,
            kick: None,
            span: tracing::Span::none(),
        }
    }

    /// Serve the connection to its end. The handshake runs inside `span`;
    /// the relay does not (entering a span on every wake-up costs more than
    /// the relay itself), and its log lines name `span` as their parent.
    pub async fn run(
        mut self,
        shutdown: broadcast::Receiver<Stop>,
        span: tracing::Span,
    ) -> Traffic {
        let started = Instant::now();
        self.span = span.clone();
        let result = match self.handshake().instrument(span.clone()).await {
            Ok(Some((mut server, sbuf))) => {
                self.phase = Phase::Transparent;
                self.relay(&mut server, sbuf, shutdown).await
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            match (&self.counters, e.refusal()) {
                (Some(c), Some(r)) if self.phase < Phase::Transparent => c.metrics.refused(r),
                (None, _) if matches!(e, SessionError::UnknownTenant(_)) => {
                    self.shared.metrics.unknown_tenant.inc()
                }
                _ => {}
            }
            if let Some(code) = e.sqlstate() {
                let msg = protocol::error_response(Severity::Fatal, code, &e.to_string());
                let _ = self.client.write_all(&msg).await;
            }
            tracing::info!(parent: &span, phase = ?self.phase, error = %e, "connection refused or failed");
        }
        let _ = self.client.shutdown().await;
        tracing::info!(
            parent: &span,
            duration_ms = started.elapsed().as_millis() as u64,
            bytes_in = self.traffic.from_client,
            bytes_out = self.traffic.to_client,
            "connection closed"
        );
        self.traffic
    }

    /// WaitStartup to Injecting. Returns the upstream connection and what is
    /// already buffered from it, or None for a cancel request.
    async fn handshake(&mut self) -> Result<Option<(TcpStream, BytesMut)>, SessionError> {
        let cfg = self.shared.config();
        let deadline = tokio::time::Instant::now() + cfg.startup_timeout();
        let timeout = || SessionError::StartupTimeout(cfg.startup_timeout_ms);

        // WaitStartup
        let params = match timeout_at(deadline, self.read_opening())
            .await
            .map_err(|_| timeout())??
        {
            Opening::Cancel { pid, key } => {
                self.shared.cancels.forward(pid, key).await;
                return Ok(None);
            }
            Opening::Startup(p) => p,
        };
        let identity = identify::identify(&cfg.identify, &cfg.bypass_users, &params)?;
        let span = tracing::Span::current();
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
                let info = self.tenant_info(tenant).await?;
                self.slot = Some(
                    self.shared
                        .limits
                        .acquire_connection(tenant, info.max_connections)?,
                );
                self.kick = self.counters.as_ref().map(|c| c.disconnect_signal());
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

        // Authenticating
        self.phase = Phase::Authenticating;
        let mut server = timeout_at(deadline, connect_upstream(&cfg))
            .await
            .map_err(|_| timeout())??;
        server
            .write_all(&protocol::startup_message(&upstream_params))
            .await?;
        let mut sbuf = BytesMut::with_capacity(BUF);
        timeout_at(
            deadline,
            auth::relay(&mut self.client, &mut self.cbuf, &mut server, &mut sbuf),
        )
        .await
        .map_err(|_| timeout())??;

        // PostAuth: forward ParameterStatus and BackendKeyData, hold ReadyForQuery.
        self.phase = Phase::PostAuth;
        let mut out = BytesMut::with_capacity(512);
        let (pid, key) = timeout_at(deadline, post_auth(&mut server, &mut sbuf, &mut out))
            .await
            .map_err(|_| timeout())??;
        span.record("backend_pid", pid);
        // Cancel requests for this backend are forwarded while the session lives.
        self.cancel = Some(self.shared.cancels.register(pid, key, &cfg.upstream));

        // For a bypass user the held ReadyForQuery, last in `out`, goes as is.
        if let Some(info) = tenant {
            let counters = self.shared.limits.counters(&info.id);
            counters.publish(info.clone());
            self.watch = Some(StatementWatch::new(
                &info.id,
                counters,
                self.shared.cancels.clone(),
                (pid, key),
            ));
            self.phase = Phase::Injecting;
            timeout_at(
                deadline,
                inject(
                    &mut server,
                    &mut sbuf,
                    &mut out,
                    &info.id,
                    pg_tenant_token::Backend {
                        pid,
                        cancel_key: key,
                    },
                    cfg.signing_key.as_ref(),
                ),
            )
            .await
            .map_err(|_| timeout())??;
        }
        self.client.write_all(&out).await?;
        self.traffic.to_client += out.len() as u64;
        match &self.counters {
            Some(c) => c.metrics.connections.inc(),
            None => self.shared.metrics.bypass.inc(),
        }
        tracing::info!("connection ready");

        Ok(Some((server, sbuf)))
    }

    async fn read_opening(&mut self) -> Result<Opening, SessionError> {
        loop {
            match protocol::read_startup(&mut self.cbuf)? {
                Some(Startup::Ssl) | Some(Startup::GssEnc) => {
                    // No TLS or GSS encryption here (yet): the client may go on in clear text.
                    self.client.write_all(b"N").await?;
                }
                Some(Startup::Cancel { pid, key }) => return Ok(Opening::Cancel { pid, key }),
                Some(Startup::Startup { params }) => return Ok(Opening::Startup(params)),
                None => {
                    if self.client.read_buf(&mut self.cbuf).await? == 0 {
                        return Err(SessionError::ClientGone);
                    }
                }
            }
        }
    }

    /// The tenant's catalog row; a known tenant gets its counters.
    async fn tenant_info(&mut self, tenant: &str) -> Result<Arc<TenantInfo>, SessionError> {
        let info = self
            .shared
            .catalog
            .lookup(tenant)
            .await?
            .ok_or_else(|| SessionError::UnknownTenant(tenant.into()))?;
        self.counters = Some(self.shared.limits.counters(tenant));
        if !info.enabled {
            return Err(SessionError::DisabledTenant(tenant.into()));
        }
        Ok(info)
    }

    /// Transparent (and Draining): the framed relay (see `relay`), until
    /// either side ends, the router shuts down, or an administrator
    /// disconnects the tenant.
    async fn relay(
        &mut self,
        server: &mut TcpStream,
        sbuf: BytesMut,
        shutdown: broadcast::Receiver<Stop>,
    ) -> Result<(), SessionError> {
        let mut watch = self.watch.take();
        let mut relay = Relay::new(std::mem::take(&mut self.cbuf), sbuf, watch.as_mut())?;
        let interrupt = Arc::new(Interrupt::default());
        let helper = tokio::spawn(watch_interrupts(
            interrupt.clone(),
            shutdown,
            self.kick.take(),
        ));
        /// Why the relay ended.
        enum Exit {
            Relay(Result<End, SessionError>),
            Stop,
            Kick,
        }
        let mut mode = Mode::Serve;
        let client = &mut self.client;
        let phase = &mut self.phase;
        let exit = std::future::poll_fn(|cx| {
            match interrupt.poll(cx) {
                Signal::Stop => return Poll::Ready(Exit::Stop),
                Signal::Kick => return Poll::Ready(Exit::Kick),
                Signal::Drain if mode == Mode::Serve => {
                    *phase = Phase::Draining;
                    mode = Mode::StopWhenIdle;
                }
                Signal::Drain | Signal::None => {}
            }
            relay
                .poll(cx, client, server, watch.as_mut(), mode)
                .map(Exit::Relay)
        })
        .await;
        helper.abort();
        self.traffic.from_client += relay.up.bytes;
        self.traffic.to_client += relay.down.bytes;
        let why = match exit {
            Exit::Relay(r) => match r? {
                End::Client => return Ok(()),
                End::Server => return Err(SessionError::ServerGone),
                End::Idle => "tenant-router is shutting down",
            },
            Exit::Stop => "tenant-router is shutting down",
            Exit::Kick => "an administrator disconnected this tenant's connections",
        };
        self.close_with(&relay, why).await;
        Ok(())
    }

    /// Close the client with FATAL 57P01, after the whole frames already
    /// owed to it (so the FATAL starts at a frame boundary).
    async fn close_with(&mut self, relay: &Relay, why: &str) {
        let msg = protocol::error_response(
            Severity::Fatal,
            "57P01",
            &format!("terminating connection: {why}"),
        );
        let write = async {
            self.client.write_all(relay.down.pending()).await?;
            self.client.write_all(&msg).await
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), write).await;
        tracing::info!(parent: &self.span, reason = why, "connection closed by the router");
    }
}

async fn connect_upstream(cfg: &crate::config::Config) -> Result<TcpStream, SessionError> {
    let addr = &cfg.upstream;
    let fail = |reason: String| SessionError::Upstream {
        addr: addr.clone(),
        reason,
    };
    let s = tokio::time::timeout(cfg.connect_timeout(), TcpStream::connect(addr))
        .await
        .map_err(|_| fail("timed out".into()))?
        .map_err(|e| fail(e.to_string()))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// What reached a session from outside, in rising order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Signal {
    None,
    /// SIGTERM: close at the next idle point.
    Drain,
    /// The grace period is over: close now.
    Stop,
    /// An administrator disconnected the tenant.
    Kick,
}

/// A session's interrupt flag. A helper task waits on the router's stop
/// broadcast and the tenant's disconnect signal and raises it; the relay
/// checks it with one atomic load per wake-up, instead of polling a shared
/// broadcast receiver and watch channel (each takes a lock) every time.
#[derive(Default)]
struct Interrupt {
    state: AtomicU8,
    waker: AtomicWaker,
}

impl Interrupt {
    fn raise(&self, s: Signal) {
        self.state.fetch_max(s as u8, Ordering::AcqRel);
        self.waker.wake();
    }

    fn poll(&self, cx: &mut Context<'_>) -> Signal {
        self.waker.register(cx.waker());
        match self.state.load(Ordering::Acquire) {
            0 => Signal::None,
            1 => Signal::Drain,
            2 => Signal::Stop,
            _ => Signal::Kick,
        }
    }
}

async fn watch_interrupts(
    interrupt: Arc<Interrupt>,
    mut shutdown: broadcast::Receiver<Stop>,
    mut kick: Option<watch::Receiver<u64>>,
) {
    loop {
        let kicked = async {
            let fired = match kick.as_mut() {
                Some(k) => k.changed().await.is_ok(),
                None => false,
            };
            if !fired {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            stop = shutdown.recv() => match stop {
                Ok(Stop::Drain) => interrupt.raise(Signal::Drain),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Ok(Stop::Now) | Err(broadcast::error::RecvError::Closed) => {
                    return interrupt.raise(Signal::Stop)
                }
            },
            _ = kicked => return interrupt.raise(Signal::Kick),
        }
    }
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

/// Read Postgres' messages after AuthenticationOk up to ReadyForQuery:
/// ParameterStatus, BackendKeyData and notices go into `out`, and so does
/// the ReadyForQuery (the caller decides when to send it).
async fn post_auth(
    server: &mut TcpStream,
    sbuf: &mut BytesMut,
    out: &mut BytesMut,
) -> Result<(i32, i32), SessionError> {
    let mut key = None;
    loop {
        let frame = read_frame(server, sbuf)
            .await?
            .ok_or(SessionError::ServerGone)?;
        match frame[0] {
            b'K' if frame.len() == 13 => {
                let pid = i32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
                let k = i32::from_be_bytes([frame[9], frame[10], frame[11], frame[12]]);
                key = Some((pid, k));
                out.extend_from_slice(&frame);
            }
            b'Z' => {
                out.extend_from_slice(&frame);
                return key.ok_or(SessionError::Injection(
                    "PostgreSQL sent no BackendKeyData".into(),
                ));
            }
            b'E' => return Err(SessionError::Injection(protocol::error_summary(frame))),
            _ => out.extend_from_slice(&frame),
        }
    }
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

/// Injecting: `SELECT tenant.set_context($1, $2)` with bind parameters, in
/// one round trip; replace the held ReadyForQuery in `out` with the one
/// that follows. Any error fails the connection.
async fn inject(
    server: &mut TcpStream,
    sbuf: &mut BytesMut,
    out: &mut BytesMut,
    tenant: &str,
    backend: pg_tenant_token::Backend,
    key: Option<&pg_tenant_token::SigningKey>,
) -> Result<(), SessionError> {
    use postgres_protocol::message::frontend;
    use postgres_protocol::IsNull;
    let key = key.ok_or_else(|| SessionError::Injection("no context signing key".into()))?;
    let token = pg_tenant_token::sign(key, pg_tenant_token::Action::Set(tenant), backend, nonce());
    let mut req = BytesMut::with_capacity(256);
    let fail = |e: std::io::Error| SessionError::Injection(e.to_string());
    frontend::parse(
        "",
        "SELECT tenant.set_context($1, $2)",
        [25u32, 25u32],
        &mut req,
    )
    .map_err(fail)?;
    frontend::bind(
        "",
        "",
        [0i16],
        [tenant, token.as_str()],
        |v, buf| {
            buf.put_slice(v.as_bytes());
            Ok(IsNull::No)
        },
        [0i16],
        &mut req,
    )
    .map_err(|_| SessionError::Injection("cannot encode Bind".into()))?;
    frontend::execute("", 0, &mut req).map_err(fail)?;
    frontend::sync(&mut req);
    server.write_all(&req).await?;
    // Drop the held ReadyForQuery (the last frame in `out`).
    out.truncate(out.len() - 6);
    let mut failure = None;
    loop {
        let frame = read_frame(server, sbuf)
            .await?
            .ok_or(SessionError::ServerGone)?;
        match frame[0] {
            b'E' => failure = Some(protocol::error_summary(frame)),
            b'S' => out.extend_from_slice(&frame),
            b'Z' => {
                if let Some(f) = failure {
                    return Err(SessionError::Injection(f));
                }
                out.extend_from_slice(&frame);
                return Ok(());
            }
            // ParseComplete, BindComplete, DataRow, CommandComplete, notices.
            _ => {}
        }
    }
}
