//! Per-tenant PAUSE / RESUME (admin API `POST /tenants/{id}/pause`,
//! `…/resume`): PgBouncer's PAUSE, for one tenant, so a mover
//! (`tenant-router tenants move`) can make the tenant quiet in this router.
//!
//! Every tenant session passes its tenant's `Gate` before it starts work on
//! a backend, and holds a `Running` token while it may: from its login on,
//! and then
//!
//! - transaction pooling: from the client's next message until the
//!   backend goes back to its pool (one token per transaction);
//! - session pooling and dedicated backends: until the relay parks at a
//!   point of rest (ReadyForQuery 'I') while the tenant is paused; the
//!   session takes a token again when the tenant is resumed, or when its
//!   client sends something (it then waits at the gate).
//!
//! Paused: the gate lets nobody in; a waiter gives up after
//! `pause_timeout_ms` with `PauseError::TimedOut` (SQLSTATE 55P03). Work that
//! holds a token finishes: `Gate::wait_quiet` waits until none is held.
//! Other tenants have gates of their own and never wait here.

use futures_util::task::AtomicWaker;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Context;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why a session did not get past its tenant's gate.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PauseError {
    #[error("tenant \"{tenant}\" is paused by an administrator (tenant-router admin API, POST /tenants/{tenant}/pause), and was not resumed within pause_timeout_ms ({waited_ms} ms): try again")]
    TimedOut { tenant: String, waited_ms: u64 },
}

impl PauseError {
    /// lock_not_available: what waited for the tenant to be resumed may be
    /// retried as it is.
    pub fn sqlstate(&self) -> &'static str {
        "55P03"
    }
}

#[derive(Debug, Default)]
struct State {
    /// Since when, while paused.
    paused: Option<Instant>,
    /// Tokens held (`Running`).
    running: usize,
    /// Resumes that asked parked sessions to reconnect (`resume`).
    reconnects: u64,
}

/// One tenant's gate.
#[derive(Debug)]
pub struct Gate {
    tenant: String,
    state: Mutex<State>,
    /// Whether `state.paused` is set, readable without the lock: a
    /// session-mode relay looks at it on every poll, and every session of a
    /// busy tenant would otherwise contend for `state` there. Written under
    /// the lock, before `changed` is bumped.
    paused_now: AtomicBool,
    /// Bumped on every change of `state`: waiters subscribe, then look.
    changed: watch::Sender<u64>,
    /// Session-mode relays, woken when the tenant is paused so they park
    /// at their next point of rest.
    relays: Mutex<Relays>,
}

/// Session-mode relays' wakers (weak: an ended session leaves a dead one),
/// pruned when the list reaches `prune_at`.
#[derive(Debug, Default)]
struct Relays {
    list: Vec<Weak<AtomicWaker>>,
    prune_at: usize,
}

/// Leave to work on a backend; given back on drop.
#[derive(Debug)]
pub struct Running(Arc<Gate>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.update(|s| s.running = s.running.saturating_sub(1));
    }
}

impl Gate {
    fn new(tenant: &str) -> Gate {
        Gate {
            tenant: tenant.to_owned(),
            state: Mutex::new(State::default()),
            paused_now: AtomicBool::new(false),
            changed: watch::Sender::new(0),
            relays: Mutex::new(Relays::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        r
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn paused(&self) -> bool {
        self.paused_now.load(Ordering::Acquire)
    }

    /// Tokens held now.
    pub fn running(&self) -> usize {
        self.lock().running
    }

    /// A token at once when the tenant is not paused.
    pub fn try_enter(self: &Arc<Self>) -> Option<Running> {
        let mut s = self.lock();
        if s.paused.is_some() {
            return None;
        }
        s.running += 1;
        Some(Running(self.clone()))
    }

    /// A token, waiting while the tenant is paused, at most `timeout`.
    pub async fn enter(self: &Arc<Self>, timeout: Duration) -> Result<Running, PauseError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.changed.subscribe();
        loop {
            if let Some(r) = self.try_enter() {
                return Ok(r);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives as long as `self`.
                Ok(Err(_)) | Err(_) => {
                    if let Some(r) = self.try_enter() {
                        return Ok(r);
                    }
                    return Err(PauseError::TimedOut {
                        tenant: self.tenant.clone(),
                        waited_ms: timeout.as_millis() as u64,
                    });
                }
            }
        }
    }

    /// Wait until the tenant is not paused (no token taken).
    pub async fn resumed(&self) {
        let mut rx = self.changed.subscribe();
        while self.paused() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Wait until no token is held, at most `timeout`; the tokens still
    /// held then.
    pub async fn wait_quiet(&self, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.changed.subscribe();
        loop {
            let n = self.running();
            if n == 0 {
                return 0;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.running(),
            }
        }
    }

    /// A session-mode relay's check: registers `waker` (woken when the
    /// tenant is paused), then says whether it is.
    pub fn poll_paused(&self, waker: &AtomicWaker, cx: &mut Context<'_>) -> bool {
        waker.register(cx.waker());
        self.paused()
    }

    /// Make `waker` reached by the next pause. Ended sessions' entries are
    /// pruned when the list has doubled since the last pruning (64 at
    /// least), so a login costs O(1) amortized.
    pub fn register_relay(&self, waker: &Arc<AtomicWaker>) {
        let mut r = self.relays.lock().unwrap_or_else(|p| p.into_inner());
        if r.list.len() >= r.prune_at {
            r.list.retain(|w| w.strong_count() > 0);
            r.prune_at = (r.list.len() * 2).max(64);
        }
        r.list.push(Arc::downgrade(waker));
    }

    /// Resumes with `reconnect` so far: a session parked before one ends.
    pub fn reconnects(&self) -> u64 {
        self.lock().reconnects
    }

    fn set_paused(&self, on: bool, reconnect: bool) -> bool {
        let was = self.update(|s| {
            let was = s.paused.is_some();
            if reconnect && !on {
                s.reconnects += 1;
            }
            s.paused = match (on, s.paused) {
                (true, Some(t)) => Some(t),
                (true, None) => Some(Instant::now()),
                (false, _) => None,
            };
            self.paused_now.store(on, Ordering::Release);
            was
        });
        if on {
            let mut r = self.relays.lock().unwrap_or_else(|p| p.into_inner());
            r.list.retain(|w| match w.upgrade() {
                Some(w) => {
                    w.wake();
                    true
                }
                None => false,
            });
            r.prune_at = (r.list.len() * 2).max(64);
        }
        was
    }

    /// How long the tenant has been paused.
    pub fn paused_for(&self) -> Option<Duration> {
        self.lock().paused.map(|t| t.elapsed())
    }
}

/// Every tenant's gate: weak while only sessions hold it, strong while
/// the tenant is paused.
#[derive(Debug, Default)]
pub struct Pauses {
    gates: Mutex<Gates>,
}

#[derive(Debug, Default)]
struct Gates {
    all: HashMap<String, Weak<Gate>>,
    paused: HashMap<String, Arc<Gate>>,
    prune_at: usize,
}

impl Pauses {
    fn lock(&self) -> std::sync::MutexGuard<'_, Gates> {
        self.gates.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant's gate (made on first use).
    pub fn gate(&self, tenant: &str) -> Arc<Gate> {
        let mut g = self.lock();
        if let Some(gate) = g.all.get(tenant).and_then(Weak::upgrade) {
            return gate;
        }
        if g.all.len() >= g.prune_at {
            g.all.retain(|_, w| w.strong_count() > 0);
            g.prune_at = (g.all.len() * 2).max(64);
        }
        let gate = Arc::new(Gate::new(tenant));
        g.all.insert(tenant.to_owned(), Arc::downgrade(&gate));
        gate
    }

    /// Pause the tenant (again: no change); its gate.
    pub fn pause(&self, tenant: &str) -> Arc<Gate> {
        let gate = self.gate(tenant);
        self.lock().paused.insert(tenant.to_owned(), gate.clone());
        gate.set_paused(true, false);
        gate
    }

    /// Resume the tenant; whether it was paused. `reconnect`: its sessions
    /// parked at rest (session mode) end instead of going on (their
    /// backends are on the server the tenant left: `tenants move`).
    pub fn resume(&self, tenant: &str, reconnect: bool) -> bool {
        let held = self.lock().paused.remove(tenant);
        match held {
            Some(gate) => gate.set_paused(false, reconnect),
            None => false,
        }
    }

    /// The tenant's gate if some session or a pause holds it.
    pub fn find(&self, tenant: &str) -> Option<Arc<Gate>> {
        self.lock().all.get(tenant).and_then(Weak::upgrade)
    }

    pub fn is_paused(&self, tenant: &str) -> bool {
        self.lock().paused.contains_key(tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paused_gate_lets_nobody_in_until_resumed() {
        let p = Pauses::default();
        let gate = p.gate("a");
        let held = gate.try_enter().expect("open");
        p.pause("a");
        assert!(gate.try_enter().is_none());
        assert_eq!(gate.wait_quiet(Duration::from_millis(10)).await, 1);
        let err = gate.enter(Duration::from_millis(20)).await.unwrap_err();
        assert!(err.to_string().contains("\"a\" is paused"), "{err}");
        assert_eq!(err.sqlstate(), "55P03");
        drop(held);
        assert_eq!(gate.wait_quiet(Duration::from_millis(10)).await, 0);
        let g2 = gate.clone();
        let waiter = tokio::spawn(async move { g2.enter(Duration::from_secs(5)).await.is_ok() });
        assert!(p.resume("a", false));
        assert!(waiter.await.unwrap());
        assert!(
            !p.resume("a", false),
            "resuming twice says it was not paused"
        );
    }

    #[tokio::test]
    async fn another_tenants_gate_stays_open() {
        let p = Pauses::default();
        p.pause("a");
        assert!(p.gate("b").try_enter().is_some());
        assert!(p.is_paused("a") && !p.is_paused("b"));
    }
}
