//! One pool: the rules that say which client gets a backend and when
//! (`State`, generic over the backend so they are unit-tested without
//! sockets), checkout, and the `Lease` a session holds. The types the
//! pool's other files share (`PoolKey`, `PoolError`, `Discard`) are in
//! `kinds`.

pub use super::kinds::{Discard, PoolError, PoolKey};

use crate::auth::authenticated::BackendLogin;
use crate::backend::Backend;
use crate::metrics::Metrics;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Whether a backend at rest already serves a tenant (its context is
/// kept between transactions): such a backend is handed to that tenant's
/// clients first.
pub trait Affine {
    fn serves(&self, tenant: &str) -> bool;
}

impl Affine for Backend {
    fn serves(&self, tenant: &str) -> bool {
        self.context.as_ref().is_some_and(|c| c.tenant == tenant)
    }
}

/// What a client in line is given (generic over the backend so the rules
/// are unit-tested without sockets).
enum Grant<B> {
    /// A backend at rest, and since when.
    Idle(B, Instant),
    /// A place: the client opens a backend.
    Open,
}

struct Waiter<B> {
    tenant: String,
    share: usize,
    tx: oneshot::Sender<Grant<B>>,
    /// Times it was passed over while first in line.
    skipped: u32,
}

/// A client first in line may be passed over, for a client of the tenant a
/// backend given back already serves (no switch: a tenant switch costs
/// PostgreSQL a `DISCARD ALL` and a `set_context`), at most this many
/// times, and only for clients this far behind it.
const AFFINITY_SKIPS: u32 = 32;
const AFFINITY_WINDOW: usize = 64;

struct Idle<B> {
    backend: B,
    since: Instant,
}

pub(super) struct State<B> {
    pub(super) size: usize,
    pub(super) min_idle: usize,
    /// A tenant past this many backends takes one more only while more
    /// than this many places stay free for the others (the reserve).
    pub(super) cap: usize,
    /// Backends at rest, most recently used last.
    idle: Vec<Idle<B>>,
    /// Backends open or being opened (idle ones included).
    pub(super) open: usize,
    /// Backends being opened to reach `min_idle`.
    prewarming: usize,
    /// Backends each tenant holds (leased).
    pub(super) held: HashMap<String, usize>,
    waiting: VecDeque<Waiter<B>>,
    /// How to open a backend without a client (prewarming `min_idle`),
    /// with the startup parameters: the last client's.
    login: Option<LoginMaterial>,
    /// When a backend was last handed out or given back (an unused pool
    /// is removed after `idle_timeout_ms`).
    last_used: Instant,
    /// Its upstream was removed (or readdressed) by a reload: no checkout,
    /// and backends given back are closed.
    pub(super) draining: bool,
}

/// How to log in without a client: the login and the startup parameters.
pub(super) type LoginMaterial = (BackendLogin, Vec<(String, String)>);

impl<B: Affine> State<B> {
    pub(super) fn new(size: usize, min_idle: usize) -> State<B> {
        State {
            size: size.max(1),
            min_idle: min_idle.min(size.max(1)),
            cap: size.max(1),
            idle: Vec::new(),
            open: 0,
            prewarming: 0,
            held: HashMap::new(),
            waiting: VecDeque::new(),
            login: None,
            last_used: Instant::now(),
            draining: false,
        }
    }

    fn held(&self, tenant: &str) -> usize {
        self.held.get(tenant).copied().unwrap_or(0)
    }

    /// Whether `tenant` may take one more backend now: under its share,
    /// and, past the pool's cap, only while the places left free (not
    /// held by any tenant) stay more than the cap, a reserve the tenants
    /// under it can always get into.
    fn may_take(&self, tenant: &str, share: usize) -> bool {
        let held = self.held(tenant);
        if held >= share {
            return false;
        }
        held < self.cap || self.size.saturating_sub(self.open) + self.idle.len() > self.cap
    }

    /// A backend or a place for `tenant`, if the rules allow one now.
    fn grant(&mut self, tenant: &str, share: usize) -> Option<Grant<B>> {
        if !self.may_take(tenant, share) {
            return None;
        }
        let g = if !self.idle.is_empty() {
            let at = self
                .idle
                .iter()
                .rposition(|i| i.backend.serves(tenant))
                .unwrap_or(self.idle.len() - 1);
            let i = self.idle.remove(at);
            Grant::Idle(i.backend, i.since)
        } else if self.open < self.size {
            self.open += 1;
            Grant::Open
        } else {
            return None;
        };
        *self.held.entry(tenant.to_owned()).or_default() += 1;
        self.last_used = Instant::now();
        Some(g)
    }

    /// Nothing open, nobody waiting, unused for `idle`.
    pub(super) fn unused_for(&self, idle: Duration) -> bool {
        self.open == 0
            && self.prewarming == 0
            && self.waiting.iter().all(|w| w.tx.is_closed())
            && self.last_used.elapsed() >= idle
    }

    fn ungrant(&mut self, tenant: &str, g: Grant<B>) {
        self.unhold(tenant);
        match g {
            Grant::Idle(backend, since) => self.idle.push(Idle { backend, since }),
            Grant::Open => self.open -= 1,
        }
    }

    fn unhold(&mut self, tenant: &str) {
        if let Some(n) = self.held.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(tenant);
            }
        }
    }

    /// Whether a waiting client can be served under the share rule.
    fn eligible(&self, w: &Waiter<B>) -> bool {
        !w.tx.is_closed() && self.may_take(&w.tenant, w.share)
    }

    /// Serve the clients in line, first come first served, skipping those
    /// whose tenant holds its share. One exception saves tenant switches:
    /// a backend at rest that already serves a tenant goes to a client of
    /// that tenant a little further in line (`AFFINITY_WINDOW`), at most
    /// `AFFINITY_SKIPS` times past the same first client (so no one
    /// starves: under load a client waits at most that many extra grants).
    pub(super) fn dispatch(&mut self) {
        loop {
            // Nothing to give: the rest wait (O(1) per release however
            // many clients wait).
            if self.idle.is_empty() && self.open >= self.size {
                return;
            }
            while self.waiting.front().is_some_and(|w| w.tx.is_closed()) {
                self.waiting.pop_front();
            }
            let Some(head) = self.waiting.iter().position(|w| self.eligible(w)) else {
                return;
            };
            let mut pick = head;
            if let Some(last) = self.idle.last() {
                let first = &self.waiting[head];
                if !last.backend.serves(&first.tenant) && first.skipped < AFFINITY_SKIPS {
                    if let Some(i) = self
                        .waiting
                        .iter()
                        .skip(head + 1)
                        .take(AFFINITY_WINDOW)
                        .position(|w| self.eligible(w) && last.backend.serves(&w.tenant))
                    {
                        pick = head + 1 + i;
                        self.waiting[head].skipped += 1;
                    }
                }
            }
            let Some(w) = self.waiting.remove(pick) else {
                return;
            };
            let Some(g) = self.grant(&w.tenant, w.share) else {
                self.waiting.insert(pick, w);
                return;
            };
            if let Err(g) = w.tx.send(g) {
                self.ungrant(&w.tenant, g);
            }
        }
    }
}

/// One pool.
pub struct Pool {
    pub key: PoolKey,
    /// `key.address`, shared with the cancel routes of its clients.
    pub upstream: Arc<str>,
    /// The upstream its backends are opened on (as when it was made).
    pub target: Arc<crate::config::Upstream>,
    pub(super) label: String,
    pub(super) state: Mutex<State<Backend>>,
    pub(super) metrics: Arc<Metrics>,
    /// This pool's series (looked up once, not per transaction).
    pub(super) wait: prometheus::Histogram,
    pub(crate) reused: prometheus::IntCounter,
    pub(crate) switches: prometheus::IntCounter,
}

/// A backend's place in its pool, held by one session.
pub struct Lease {
    pub(super) pool: Arc<Pool>,
    pub(super) tenant: String,
    /// Given back or not yet.
    pub(super) done: bool,
}

/// What `Pool::checkout` hands out.
pub struct Checkout {
    pub lease: Lease,
    /// A backend at rest and how long it was idle; None: open one.
    pub backend: Option<(Backend, Duration)>,
    /// Time spent waiting in line.
    pub waited: Duration,
}

impl Pool {
    pub(super) fn lock(&self) -> MutexGuard<'_, State<Backend>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// A backend (or a place to open one) for a client of `tenant`, which
    /// may hold `share` backends of this pool at once; waits up to `wait`.
    pub async fn checkout(
        self: &Arc<Self>,
        tenant: &str,
        share: usize,
        wait: Duration,
    ) -> Result<Checkout, PoolError> {
        let started = Instant::now();
        let rx = {
            let mut st = self.lock();
            if st.draining {
                return Err(PoolError::Drained {
                    pool: self.label.clone(),
                    upstream: self.key.upstream.clone(),
                });
            }
            st.dispatch();
            match st.grant(tenant, share) {
                Some(g) => return Ok(self.lease(tenant, g, started)),
                None => {
                    let (tx, rx) = oneshot::channel();
                    st.waiting.push_back(Waiter {
                        tenant: tenant.to_owned(),
                        share,
                        tx,
                        skipped: 0,
                    });
                    rx
                }
            }
        };
        let mut rx = rx;
        match tokio::time::timeout(wait, &mut rx).await {
            Ok(Ok(g)) => Ok(self.lease(tenant, g, started)),
            _ => {
                // A grant sent just before the deadline is still taken.
                rx.close();
                if let Ok(g) = rx.try_recv() {
                    return Ok(self.lease(tenant, g, started));
                }
                let size = self.lock().size;
                self.metrics
                    .pool_timeouts
                    .with_label_values(&[&self.label])
                    .inc();
                Err(PoolError::Timeout {
                    pool: self.label.clone(),
                    tenant: tenant.to_owned(),
                    waited_ms: wait.as_millis() as u64,
                    size,
                    share: share.min(size),
                })
            }
        }
    }

    fn lease(self: &Arc<Self>, tenant: &str, g: Grant<Backend>, started: Instant) -> Checkout {
        let waited = started.elapsed();
        self.wait.observe(waited.as_secs_f64());
        let lease = Lease {
            pool: self.clone(),
            tenant: tenant.to_owned(),
            done: false,
        };
        let backend = match g {
            Grant::Idle(b, since) => Some((b, since.elapsed())),
            Grant::Open => None,
        };
        Checkout {
            lease,
            backend,
            waited,
        }
    }

    /// The startup parameters a backend of this pool logs in with.
    pub fn login_params(&self) -> Vec<(String, String)> {
        self.key.login_params()
    }

    /// Remember how to log in (for prewarming), from a client that did.
    pub fn learn_login(&self, login: &BackendLogin) {
        if matches!(login, BackendLogin::Relayed) {
            return;
        }
        let mut st = self.lock();
        if st.login.is_none() {
            st.login = Some((login.clone(), self.login_params()));
        }
    }

    /// Count a backend closed instead of reused, and why.
    pub fn discarded(&self, reason: Discard) {
        self.metrics
            .pool_discarded
            .with_label_values(&[&self.label, reason.label()])
            .inc();
    }

    /// (size, open, idle, held, waiting) now.
    pub fn counts(&self) -> PoolCounts {
        let st = self.lock();
        PoolCounts {
            pool: self.label.clone(),
            size: st.size,
            open: st.open,
            idle: st.idle.len(),
            active: st.held.values().sum(),
            waiting: st.waiting.iter().filter(|w| !w.tx.is_closed()).count(),
            tenants: st.held.len(),
            idle_statements: st.idle.iter().map(|i| i.backend.statements.len()).sum(),
            idle_statement_bytes: st.idle.iter().map(|i| i.backend.statements.memory()).sum(),
        }
    }

    /// Close idle backends past `idle_timeout` (keeping `min_idle`) or
    /// `server_lifetime`; returns them, to be closed outside the lock.
    pub(super) fn expire(&self, cfg: &crate::config::Pool) -> Vec<Backend> {
        let mut st = self.lock();
        let keep = st.min_idle;
        let idle_timeout = Duration::from_millis(cfg.idle_timeout_ms);
        let lifetime = Duration::from_millis(cfg.server_lifetime_ms);
        let mut gone = Vec::new();
        let mut i = 0;
        while i < st.idle.len() {
            let old = cfg.server_lifetime_ms > 0 && st.idle[i].backend.opened.elapsed() > lifetime;
            let unused = cfg.idle_timeout_ms > 0
                && st.idle[i].since.elapsed() > idle_timeout
                && st.idle.len() > keep;
            if old || unused {
                gone.push(st.idle.remove(i).backend);
                st.open -= 1;
                self.discarded(if old {
                    Discard::Lifetime
                } else {
                    Discard::IdleTimeout
                });
            } else {
                i += 1;
            }
        }
        if !gone.is_empty() {
            st.dispatch();
        }
        gone
    }

    /// Drain the pool: no more checkouts, its idle backends returned (to
    /// be closed outside the lock), the ones in use closed when given back.
    pub(super) fn drain(&self) -> Vec<Backend> {
        let mut st = self.lock();
        st.draining = true;
        st.min_idle = 0;
        let gone: Vec<Backend> = st.idle.drain(..).map(|i| i.backend).collect();
        st.open -= gone.len();
        // Clients waiting in line get no backend: they time out.
        st.waiting.clear();
        drop(st);
        for _ in &gone {
            self.discarded(Discard::Drained);
        }
        gone
    }

    /// Places to prewarm now (`min_idle` not reached), counted as open.
    pub(super) fn prewarm_places(&self) -> Option<(usize, LoginMaterial)> {
        let mut st = self.lock();
        let (login, params) = st.login.clone()?;
        let n = st
            .min_idle
            .saturating_sub(st.idle.len() + st.prewarming)
            .min(st.size.saturating_sub(st.open));
        if n == 0 {
            return None;
        }
        st.open += n;
        st.prewarming += n;
        Some((n, (login, params)))
    }

    /// A prewarmed backend (None: it could not be opened).
    pub(super) fn put_idle(&self, b: Option<Backend>) {
        let mut st = self.lock();
        st.prewarming -= 1;
        match b {
            Some(backend) => st.idle.push(Idle {
                backend,
                since: Instant::now(),
            }),
            None => st.open -= 1,
        }
        st.dispatch();
    }
}

/// A pool's numbers (admin API `/pools`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct PoolCounts {
    pub pool: String,
    pub size: usize,
    pub open: usize,
    pub idle: usize,
    pub active: usize,
    pub waiting: usize,
    /// Tenants holding backends now.
    pub tenants: usize,
    /// Named statements the idle backends hold (transaction pooling), and
    /// what tracking them costs the router in bytes.
    pub idle_statements: usize,
    pub idle_statement_bytes: usize,
}

impl Lease {
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The backend is at rest with no context (`switch::reset` succeeded):
    /// it goes back to the pool.
    pub fn give_back(mut self, backend: Backend) {
        self.done = true;
        let mut st = self.pool.lock();
        st.unhold(&self.tenant);
        if st.draining {
            // Its upstream is gone: closed, never reused.
            st.open -= 1;
            drop(st);
            self.pool.discarded(Discard::Drained);
            tokio::spawn(super::switch::close(backend));
            return;
        }
        st.idle.push(Idle {
            backend,
            since: Instant::now(),
        });
        st.last_used = Instant::now();
        st.dispatch();
    }
}

impl Drop for Lease {
    /// Not given back: the backend was closed; its place is free.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut st = self.pool.lock();
        st.unhold(&self.tenant);
        st.open -= 1;
        st.dispatch();
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
