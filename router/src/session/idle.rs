//! `client_idle_timeout_ms` (catalog, per tenant): a client idle outside
//! a transaction longer than this is closed with FATAL 57P05, as
//! PostgreSQL's `idle_session_timeout` would. The router owns it: with
//! transaction pooling an idle client holds no backend, so PostgreSQL's
//! timer never sees it. (Idle *in* a transaction is the extension's
//! `idle_in_transaction_timeout_ms`, enforced by PostgreSQL on every path;
//! the router does not time it a second time.)

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// The FATAL an idle client is closed with.
pub const IDLE_TIMEOUT: (&str, &str) = (
    "57P05",
    "the client was idle longer than its tenant's client_idle_timeout_ms",
);

/// A timer over a client's idle time: armed while the conversation is at
/// rest, restarted by each byte the client sends.
pub struct IdleTimer {
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Client bytes seen when it was armed (None: not armed).
    armed_at: Option<u64>,
}

impl IdleTimer {
    /// None when `limit_ms` is 0 (no limit).
    pub fn new(limit_ms: i32) -> Option<IdleTimer> {
        (limit_ms > 0).then(|| {
            let limit = Duration::from_millis(limit_ms as u64);
            IdleTimer {
                limit,
                sleep: Box::pin(tokio::time::sleep(limit)),
                armed_at: None,
            }
        })
    }

    /// Whether the client has now been idle past the limit. `at_rest`: the
    /// conversation is at rest with nothing buffered; `activity`: bytes
    /// the client has sent so far. Registers the waker while armed.
    pub fn expired(&mut self, cx: &mut Context<'_>, at_rest: bool, activity: u64) -> bool {
        if !at_rest {
            self.armed_at = None;
            return false;
        }
        if self.armed_at != Some(activity) {
            self.sleep.as_mut().reset(Instant::now() + self.limit);
            self.armed_at = Some(activity);
        }
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context<'static> {
        Context::from_waker(futures_util::task::noop_waker_ref())
    }

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_the_limit_at_rest_and_restarts_on_activity() {
        assert!(IdleTimer::new(0).is_none(), "0: no limit");
        let mut t = IdleTimer::new(100).unwrap();
        assert!(!t.expired(&mut cx(), true, 0));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert!(!t.expired(&mut cx(), true, 0));
        // The client sent something: the clock starts again.
        assert!(!t.expired(&mut cx(), true, 10));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert!(!t.expired(&mut cx(), true, 10));
        // Busy (a transaction open): never fires, and restarts after.
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!t.expired(&mut cx(), false, 10));
        assert!(!t.expired(&mut cx(), true, 10));
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(t.expired(&mut cx(), true, 10));
    }
}
