//! The connection itself, whatever phase it is in: the client, the
//! router's shared state, the interrupt flag, the span, the byte counts,
//! and the tenant state the session holds (`Tenancy`), which advances as
//! the login does.

use super::idle::IdleTimer;
use super::phase::{fatal_frame, Fatal, Phase, Traffic};
use crate::catalog::TenantInfo;
use crate::error::SessionError;
use crate::frontend::Frontend;
use crate::interrupt::Interrupt;
use crate::limits::logins::LoginGuard;
use crate::limits::{ConnectionSlot, StatementWatch, TenantCounters};
use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The tenant state a session holds.
pub enum Tenancy {
    /// None: a bypass user, an unknown tenant, or not identified yet.
    None,
    /// A known tenant whose state the router does not hold, while its
    /// client has not authenticated: registered among the logins in
    /// progress, so an administrator's disconnect reaches it, and nothing
    /// else is made for it (a client that never proves itself creates no
    /// tenant state and no series).
    Login { _place: LoginGuard },
    /// The tenant's counters: at once when the router holds its state,
    /// else once the client has authenticated and holds a place.
    Counters(Arc<TenantCounters>),
}

impl Tenancy {
    pub fn counters(&self) -> Option<&Arc<TenantCounters>> {
        match self {
            Tenancy::Counters(c) => Some(c),
            _ => None,
        }
    }
}

/// One client connection.
pub struct Conn {
    pub shared: Arc<Shared>,
    pub client: Frontend,
    pub phase: Phase,
    pub traffic: Traffic,
    pub tenancy: Tenancy,
    /// Raised by the router (drain, stop), an administrator (disconnect of
    /// the tenant) and a token's expiry; registered where they reach it.
    pub interrupt: Arc<Interrupt>,
    /// The connection's span (peer, tenant, user, backend pid).
    pub span: tracing::Span,
    /// Its tenant's pause gate (a tenant session), and the token it holds
    /// while it may work on a backend (`crate::pause`).
    pub pause: Option<Pausable>,
}

/// A tenant session's side of its tenant's pause gate.
pub struct Pausable {
    pub gate: Arc<crate::pause::Gate>,
    /// Held while the session may work on a backend.
    pub running: Option<crate::pause::Running>,
    /// Woken when the tenant is paused (a session-mode relay parks).
    pub waker: Arc<futures_util::task::AtomicWaker>,
}

impl Pausable {
    pub fn new(gate: Arc<crate::pause::Gate>, running: crate::pause::Running) -> Pausable {
        let waker = Arc::new(futures_util::task::AtomicWaker::new());
        gate.register_relay(&waker);
        Pausable {
            gate,
            running: Some(running),
            waker,
        }
    }
}

impl Conn {
    /// The tenant's catalog row (None: unknown). A known tenant whose
    /// state the router holds (it has had an authenticated client) gets
    /// its counters now; others once the client has authenticated
    /// (`hold`).
    pub async fn known_tenant(
        &mut self,
        tenant: &str,
    ) -> Result<Option<Arc<TenantInfo>>, SessionError> {
        let info = self.shared.catalog.lookup(tenant).await?;
        if info.is_some() {
            // From here an administrator's disconnect of the tenant
            // reaches this session, authentication included.
            self.tenancy = match self.shared.limits.get(tenant) {
                Some(counters) => {
                    counters.register_session(&self.interrupt);
                    Tenancy::Counters(counters)
                }
                None => Tenancy::Login {
                    _place: self.shared.limits.logins.started(tenant, &self.interrupt),
                },
            };
        }
        Ok(info)
    }

    /// The client has authenticated and holds `slot`: the session keeps
    /// its tenant's counters (made now if the router held none), and an
    /// administrator's disconnect reaches it.
    pub fn hold(&mut self, slot: &ConnectionSlot) {
        if self.tenancy.counters().is_none() {
            let counters = slot.counters().clone();
            // Registered with the counters before the login's place goes:
            // no moment when a disconnect would miss it.
            counters.register_session(&self.interrupt);
            self.tenancy = Tenancy::Counters(counters);
        }
    }

    /// The tenant's limits watch this session, whose client knows `key`
    /// (the backend's own, or the router's for a pooled client).
    pub fn watch_limits(&self, info: &Arc<TenantInfo>, key: (i32, i32)) -> Box<StatementWatch> {
        let counters = self.shared.limits.counters(&info.id);
        // A re-read that found no counters yet (the tenant changed while
        // this login ran) left the newer row in the catalog's cache.
        counters.publish(self.shared.catalog.newest(info.clone()));
        Box::new(StatementWatch::new(
            &info.id,
            counters,
            self.shared.cancels.clone(),
            key,
        ))
    }

    /// The idle timer of a tenant session, with its tenant's
    /// `client_idle_timeout_ms` as the catalog says now (None: not a
    /// tenant session).
    pub fn idle_timer(&self) -> Option<IdleTimer> {
        let row = self.tenancy.counters()?.current().1?;
        Some(IdleTimer::new(row.client_idle_timeout_ms))
    }

    /// Close a client with FATAL `code` when nothing is owed to it (before
    /// or between transactions).
    pub async fn close_at_rest(&mut self, fatal: Fatal) {
        let msg = fatal_frame(fatal);
        let why = fatal.1;
        let _ =
            tokio::time::timeout(Duration::from_secs(1), self.client.stream.write_all(&msg)).await;
        tracing::info!(parent: &self.span, reason = why, "connection closed by the router");
    }
}
