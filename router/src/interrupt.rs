//! A session's interrupts: the router's stop broadcast, an administrator's
//! disconnect of the tenant and the expiry of a token login, raised by a
//! helper task into one flag the relay reads with one atomic load.

use crate::shared::Stop;
use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::Context;
use tokio::sync::{broadcast, watch};

/// What reached a session from outside, in rising order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Signal {
    None,
    /// SIGTERM: close at the next idle point.
    Drain,
    /// The grace period is over: close now.
    Stop,
    /// An administrator disconnected the tenant.
    Kick,
    /// The session's token expired.
    Expired,
}

impl Signal {
    /// `Drain` when the router is draining and nothing stronger arrived:
    /// the shared flag is set before the broadcast goes out, so a session
    /// never relays a client's next message once the drain has begun, even
    /// before its helper task has passed the broadcast on.
    pub fn or_draining(self, shared: &crate::shared::Shared) -> Signal {
        match self {
            Signal::None if shared.is_draining() => Signal::Drain,
            s => s,
        }
    }
}

/// A session's interrupt flag. A helper task waits on the router's stop
/// broadcast and the tenant's disconnect signal and raises it; the relay
/// checks it with one atomic load per wake-up, instead of polling a shared
/// broadcast receiver and watch channel (each takes a lock) every time.
#[derive(Default)]
pub struct Interrupt {
    state: AtomicU8,
    waker: AtomicWaker,
}

impl Interrupt {
    fn raise(&self, s: Signal) {
        self.state.fetch_max(s as u8, Ordering::AcqRel);
        self.waker.wake();
    }

    pub fn poll(&self, cx: &mut Context<'_>) -> Signal {
        self.waker.register(cx.waker());
        match self.state.load(Ordering::Acquire) {
            0 => Signal::None,
            1 => Signal::Drain,
            2 => Signal::Stop,
            3 => Signal::Kick,
            _ => Signal::Expired,
        }
    }
}

pub async fn watch_interrupts(
    interrupt: Arc<Interrupt>,
    mut shutdown: broadcast::Receiver<Stop>,
    mut kick: Option<watch::Receiver<u64>>,
    expires: Option<tokio::time::Instant>,
) {
    let expiry = async {
        match expires {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending::<()>().await,
        }
    };
    tokio::pin!(expiry);
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
            _ = &mut expiry => return interrupt.raise(Signal::Expired),
        }
    }
}
