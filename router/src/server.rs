//! The listener: accept connections, run one `Session` per connection in
//! its own task with a tracing span, and on shutdown stop accepting, tell
//! every session, and wait for them to finish (mini-redis style: a
//! broadcast for the signal, an mpsc sender held by each task as the drain
//! guard).
//!
//! Shutdown has two steps: `Stop::Drain` (sessions close at their next
//! idle point: no statement running, no open transaction) and, after the
//! grace period, `Stop::Now` (the rest are closed).

use crate::cancel::CancelRegistry;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::session::Session;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

/// What the listener tells sessions at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Finish what is running, then close.
    Drain,
    /// The grace period is over: close now.
    Now,
}

/// What every session shares.
pub struct Shared {
    /// The current configuration (replaced by a reload).
    cfg: RwLock<Arc<Config>>,
    pub catalog: Arc<Catalog>,
    pub cancels: Arc<CancelRegistry>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<Metrics>,
    draining: AtomicBool,
}

impl Shared {
    pub fn new(cfg: Arc<Config>) -> Arc<Shared> {
        let catalog = Catalog::new(&cfg.catalog);
        let metrics = Arc::new(Metrics::new());
        let limits = Arc::new(Limits::new(metrics.clone()));
        // A catalog change reaches live sessions' limits within a round trip.
        let (cat, lim) = (Arc::downgrade(&catalog), Arc::downgrade(&limits));
        catalog.set_listener(Box::new(move |id| {
            let (cat, lim, id) = (cat.clone(), lim.clone(), id.to_owned());
            tokio::spawn(async move {
                if let (Some(cat), Some(lim)) = (cat.upgrade(), lim.upgrade()) {
                    lim.refresh(&cat, &id).await;
                }
            });
        }));
        Arc::new(Shared {
            catalog,
            cancels: CancelRegistry::new(),
            limits,
            metrics,
            cfg: RwLock::new(cfg),
            draining: AtomicBool::new(false),
        })
    }

    /// The configuration now; a session keeps the one it started with.
    pub fn config(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Apply a reloaded configuration. Settings that only a restart can
    /// change keep their running values; returns their names.
    pub fn reload(&self, mut new: Config) -> Vec<&'static str> {
        let mut cfg = self.cfg.write().unwrap_or_else(|p| p.into_inner());
        let kept = new.keep_restart_only(&cfg);
        *cfg = Arc::new(new);
        kept
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

/// Serve until the first message on `stop`, then drain: sessions close as
/// they become idle, and those still open after the configured grace
/// period (or a second message on `stop`) are closed.
pub async fn run(listener: TcpListener, shared: Arc<Shared>, mut stop: mpsc::Receiver<()>) {
    let (notify, _) = broadcast::channel::<Stop>(2);
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    tokio::select! {
        _ = accept_loop(&listener, &shared, &notify, &drain_tx) => {}
        _ = stop.recv() => {}
    }
    drop(listener);
    let grace = shared.config().shutdown_grace();
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: no new connections; draining sessions"
    );
    shared.draining.store(true, Ordering::Release);
    shared.metrics.draining.set(1);
    let _ = notify.send(Stop::Drain);
    drop(drain_tx);
    let drained = tokio::select! {
        r = tokio::time::timeout(grace, drain_rx.recv()) => {
            if r.is_err() {
                tracing::warn!("sessions still open after the grace period; closing them");
            }
            r.is_ok()
        }
        Some(()) = stop.recv() => {
            tracing::warn!("second stop signal; closing the sessions still open");
            false
        }
    };
    if !drained {
        let _ = notify.send(Stop::Now);
        // Sessions still in their handshake end within the startup timeout;
        // do not wait that long.
        if tokio::time::timeout(Duration::from_secs(2), drain_rx.recv())
            .await
            .is_err()
        {
            tracing::warn!("exiting with sessions still in their handshake");
        }
    }
    tracing::info!("drained; exiting");
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    notify: &broadcast::Sender<Stop>,
    drain: &mpsc::Sender<()>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(c) => {
                backoff = Duration::from_millis(10);
                c
            }
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let session = Session::new(shared.clone(), socket);
        let shutdown = notify.subscribe();
        let guard = drain.clone();
        let span = tracing::info_span!(
            "conn",
            %peer,
            tenant = tracing::field::Empty,
            user = tracing::field::Empty,
            backend_pid = tracing::field::Empty
        );
        tokio::spawn(async move {
            session.run(shutdown, span).await;
            drop(guard);
        });
    }
}
