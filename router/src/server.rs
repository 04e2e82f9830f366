//! The listener: accept connections, run one `Session` per connection in
//! its own task with a tracing span, and on shutdown stop accepting, tell
//! every session, and wait for them to finish (mini-redis style: an mpsc
//! sender held by each task as the drain guard; the signal is raised on
//! every session's interrupt flag through `Shared::interrupts`).
//!
//! Shutdown has two steps: `Signal::Drain` (sessions close at their next
//! idle point: no statement running, no open transaction) and, after the
//! grace period, `Signal::Stop` (the rest are closed).

use crate::interrupt::Signal;
use crate::session::Session;
pub use crate::shared::Shared;
use crate::transport::Stream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Serve until the first message on `stop`, then drain: sessions close as
/// they become idle, and those still open after the configured grace
/// period (or a second message on `stop`) are closed.
pub async fn run(listener: TcpListener, shared: Arc<Shared>, mut stop: mpsc::Receiver<()>) {
    let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
    tokio::select! {
        _ = accept_loop(&listener, &shared, &drain_tx) => {}
        _ = stop.recv() => {}
    }
    drop(listener);
    let grace = shared.config().shutdown_grace();
    // Sessions read the flag at their next wake-up (a client's next
    // message is never relayed once it is set), raising their own flags
    // wakes the idle ones; the log line comes after both.
    shared.draining.store(true, Ordering::Release);
    shared.metrics.draining.set(1);
    shared.interrupts.raise(Signal::Drain);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: no new connections; draining sessions"
    );
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
        shared.interrupts.raise(Signal::Stop);
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

async fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, drain: &mpsc::Sender<()>) {
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
        let permit = shared.admit_client();
        if permit.is_none() {
            shared.metrics.clients_refused.inc();
        }
        // Boxed: the task holds a pointer, and the session is not copied
        // into the task's future.
        let session = Box::new(Session::new(shared.clone(), Stream::tcp(socket), permit));
        let guard = drain.clone();
        let span = tracing::info_span!(
            "conn",
            %peer,
            tenant = tracing::field::Empty,
            user = tracing::field::Empty,
            backend_pid = tracing::field::Empty,
            tls = tracing::field::Empty,
            sni_tenant = tracing::field::Empty
        );
        tokio::spawn(session.run(span, guard));
    }
}
