//! The listener: accept connections, run one `Session` per connection in
//! its own task with a tracing span, and on shutdown stop accepting, tell
//! every session, and wait for them to finish (mini-redis style: a
//! broadcast for the signal, an mpsc sender held by each task as the drain
//! guard).

use crate::cancel::CancelRegistry;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::limits::Limits;
use crate::session::Session;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};

/// What every session shares.
pub struct Shared {
    pub cfg: Arc<Config>,
    pub catalog: Arc<Catalog>,
    pub cancels: Arc<CancelRegistry>,
    pub limits: Arc<Limits>,
}

impl Shared {
    pub fn new(cfg: Arc<Config>) -> Arc<Shared> {
        let catalog = Catalog::new(&cfg.catalog);
        let limits = Arc::new(Limits::default());
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
            cancels: CancelRegistry::new(cfg.upstream.clone()),
            limits,
            cfg,
        })
    }
}

/// Serve until `shutdown` completes, then drain for at most `grace`.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future,
    grace: Duration,
) {
    let (notify, _) = broadcast::channel::<()>(1);
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    tokio::select! {
        _ = accept_loop(&listener, &shared, &notify, &drain_tx) => {}
        _ = shutdown => tracing::info!("shutting down: no new connections"),
    }
    drop(listener);
    let _ = notify.send(());
    drop(drain_tx);
    if tokio::time::timeout(grace, drain_rx.recv()).await.is_err() {
        tracing::warn!("sessions still open after the grace period; exiting");
    }
}

async fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    notify: &broadcast::Sender<()>,
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
