//! One client connection from accept to close: the handshake
//! (`handshake::identify`, then `source::attach_first`), the relay
//! (`relaying::serve`), and the close, which counts and logs why the
//! session ended and tells the client.

use super::attached::Attached;
use super::conn::{Conn, Tenancy};
use super::handshake;
use super::phase::{Deadline, Phase, Traffic, OVER_CAPACITY_GRACE};
use super::relaying;
use super::source::{self, Ready};
use crate::auth::Failure;
use crate::error::SessionError;
use crate::frontend::Frontend;
use crate::interrupt::Interrupt;
use crate::protocol::{self, Severity};
use crate::shared::Shared;
use crate::transport::Stream;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

/// A connection being served.
pub struct Session {
    conn: Conn,
    /// The client's place under `max_client_connections` (None: over it;
    /// it may still send a cancel request).
    permit: Option<OwnedSemaphorePermit>,
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
            conn: Conn {
                shared,
                client: Frontend::new(client),
                phase: Phase::WaitStartup,
                traffic: Traffic::default(),
                tenancy: Tenancy::None,
                interrupt,
                span: tracing::Span::none(),
                pause: None,
            },
            permit,
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
        self.conn.span = span.clone();
        // The handshake's futures are large (authentication, TLS, the
        // backend login): boxed, so a session waiting in its relay holds
        // none of that memory. What the relay waits with is kept small
        // too: the backend is boxed at once.
        let opened = Box::pin(self.handshake().instrument(span)).await;
        let (result, ready) = match opened {
            Ok(Some((mut ready, first))) => {
                self.conn.phase = Phase::Transparent;
                let served = Box::pin(relaying::serve(&mut self.conn, &mut ready, first)).await;
                (served, Some(ready))
            }
            Ok(None) => (Ok(()), None),
            Err(e) => (Err(e), None),
        };
        Box::pin(self.close(result, started)).await;
        // The tenant's place and the cancel key go last.
        drop(ready);
        drop(guard);
        self.conn.traffic
    }

    /// WaitStartup to Transparent: the client identified (and, when the
    /// router checks it, authenticated), its first backend attached and
    /// the startup answer sent. None: a cancel request.
    async fn handshake(&mut self) -> Result<Option<(Ready, Box<Attached>)>, SessionError> {
        let cfg = self.conn.shared.config();
        let over_capacity = self.permit.is_none();
        let limit = if over_capacity {
            OVER_CAPACITY_GRACE.min(cfg.startup_timeout())
        } else {
            cfg.startup_timeout()
        };
        let deadline = Deadline::new(tokio::time::Instant::now() + limit, cfg.startup_timeout_ms);
        let conn = &mut self.conn;
        let Some(identified) = handshake::identify(conn, &cfg, deadline, over_capacity).await?
        else {
            return Ok(None);
        };
        let (ready, first) = source::attach_first(conn, &cfg, identified, deadline).await?;
        Ok(Some((ready, Box::new(first))))
    }

    /// The session is over: count and log why, tell the client (a FATAL,
    /// or PostgreSQL's own refusal) and close its connection.
    async fn close(&mut self, result: Result<(), SessionError>, started: Instant) {
        let conn = &mut self.conn;
        if let Err(e) = &result {
            let refused = conn.phase < Phase::Transparent;
            if let (SessionError::ContextRefused(_), Some(c)) = (e, conn.tenancy.counters()) {
                c.metrics.auth_failed(Failure::RoleNotAllowed);
                tracing::info!(reason = Failure::RoleNotAllowed.label(), error = %crate::error::Escaped(e), "authentication failed");
            }
            match (&conn.tenancy, e.refusal()) {
                (Tenancy::Counters(c), Some(r)) if refused => c.metrics.refused(r),
                (Tenancy::None, _) if matches!(e, SessionError::UnknownTenant(_)) => {
                    conn.shared.metrics.unknown_tenant.inc()
                }
                // A known tenant without state here whose client never
                // authenticated: the aggregates only.
                (Tenancy::Login { .. }, Some(r)) if refused => {
                    conn.shared.metrics.totals().refused(r)
                }
                _ => {}
            }
            if let SessionError::Postgres(frame) = e {
                let _ = conn.client.stream.write_all(frame).await;
            } else if let Some(code) = e.sqlstate() {
                let msg = protocol::error_response(Severity::Fatal, code, &e.to_string());
                let _ = conn.client.stream.write_all(&msg).await;
            }
            tracing::info!(parent: &conn.span, phase = ?conn.phase, error = %crate::error::Escaped(e), "connection refused or failed");
        }
        let _ = conn.client.stream.shutdown().await;
        tracing::info!(
            parent: &conn.span,
            duration_ms = started.elapsed().as_millis() as u64,
            bytes_in = conn.traffic.from_client,
            bytes_out = conn.traffic.to_client,
            "connection closed"
        );
        drop(self.permit.take());
    }
}
