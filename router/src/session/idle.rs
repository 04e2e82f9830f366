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

/// The FATAL a transaction-pooled client is closed with when it holds its
/// backend with an extended-protocol batch left without Sync.
pub const UNSYNCED_TIMEOUT: (&str, &str) = (
    "57P05",
    "the client left an extended-protocol batch without Sync, holding a pooled backend, idle longer than its tenant's client_idle_timeout_ms (60 s when that is 0)",
);

/// The FATAL a client is closed with when it stopped in the middle of a
/// message (its backend, pooled or its own, waits for the rest).
pub const MID_MESSAGE_TIMEOUT: (&str, &str) = (
    "57P05",
    "the client stopped in the middle of a message, holding a backend, longer than its tenant's client_idle_timeout_ms (60 s when that is 0)",
);

/// How long a transaction-pooled client may hold its backend idle with a
/// batch left without Sync when its tenant has no `client_idle_timeout_ms`
/// (PostgreSQL arms no timer there: it has sent no ReadyForQuery).
pub const UNSYNCED_DEFAULT: Duration = Duration::from_secs(60);

/// Where a client is idle, as far as its timers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idleness {
    /// Something is in flight, or a transaction is open: not idle here.
    Busy,
    /// At rest (`client_idle_timeout_ms`).
    Rest,
    /// Transaction pooling: nothing in flight and no transaction, but an
    /// extended batch left without Sync keeps the backend.
    Unsynced,
    /// Nothing in flight and no transaction, but the client sent part of
    /// a message and stopped: its backend waits for the rest.
    MidMessage,
}

/// A timer over a client's idle time: armed while the client is idle in
/// one of the ways above, restarted by each byte it sends.
pub struct IdleTimer {
    /// The limit at rest (None: none).
    rest: Option<Duration>,
    /// Made when the timer is first armed: a session that never goes idle
    /// in a timed way (every transaction of a tenant without a limit)
    /// allocates nothing.
    sleep: Option<Pin<Box<Sleep>>>,
    /// (client bytes, idleness) when it was armed (None: not armed).
    armed_at: Option<(u64, Idleness)>,
}

impl IdleTimer {
    /// `limit_ms`: the tenant's `client_idle_timeout_ms` (0: none).
    pub fn new(limit_ms: i32) -> IdleTimer {
        let rest = (limit_ms > 0).then(|| Duration::from_millis(limit_ms as u64));
        IdleTimer {
            rest,
            sleep: None,
            armed_at: None,
        }
    }

    fn limit(&self, how: Idleness) -> Option<Duration> {
        match how {
            Idleness::Busy => None,
            Idleness::Rest => self.rest,
            Idleness::Unsynced | Idleness::MidMessage => {
                Some(self.rest.unwrap_or(UNSYNCED_DEFAULT))
            }
        }
    }

    /// Whether the client has now been idle past its limit; `activity`:
    /// bytes the client has sent so far. Registers the waker while armed.
    pub fn expired(&mut self, cx: &mut Context<'_>, how: Idleness, activity: u64) -> bool {
        let Some(limit) = self.limit(how) else {
            self.armed_at = None;
            return false;
        };
        if self.armed_at != Some((activity, how)) {
            let deadline = Instant::now() + limit;
            match self.sleep.as_mut() {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed_at = Some((activity, how));
        }
        self.sleep
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> Context<'static> {
        Context::from_waker(futures_util::task::noop_waker_ref())
    }

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_the_limit_when_idle_and_restarts_on_activity() {
        let mut t = IdleTimer::new(100);
        assert!(!t.expired(&mut cx(), Idleness::Rest, 0));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert!(!t.expired(&mut cx(), Idleness::Rest, 0));
        // The client sent something: the clock starts again.
        assert!(!t.expired(&mut cx(), Idleness::Rest, 10));
        tokio::time::advance(Duration::from_millis(60)).await;
        assert!(!t.expired(&mut cx(), Idleness::Rest, 10));
        // Busy (a transaction open): never fires, and restarts after.
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!t.expired(&mut cx(), Idleness::Busy, 10));
        assert!(!t.expired(&mut cx(), Idleness::Rest, 10));
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(t.expired(&mut cx(), Idleness::Rest, 10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unsynced_batch_is_bounded_even_without_a_tenant_limit() {
        let mut t = IdleTimer::new(0);
        assert!(!t.expired(&mut cx(), Idleness::Rest, 0));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(
            !t.expired(&mut cx(), Idleness::Rest, 0),
            "0: no limit at rest"
        );
        assert!(!t.expired(&mut cx(), Idleness::Unsynced, 0));
        tokio::time::advance(UNSYNCED_DEFAULT).await;
        assert!(t.expired(&mut cx(), Idleness::Unsynced, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn half_a_message_is_bounded_even_without_a_tenant_limit() {
        let mut t = IdleTimer::new(0);
        assert!(!t.expired(&mut cx(), Idleness::MidMessage, 3));
        tokio::time::advance(UNSYNCED_DEFAULT - Duration::from_millis(1)).await;
        assert!(!t.expired(&mut cx(), Idleness::MidMessage, 3));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(t.expired(&mut cx(), Idleness::MidMessage, 3));
        let mut t = IdleTimer::new(100);
        assert!(!t.expired(&mut cx(), Idleness::MidMessage, 3));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(t.expired(&mut cx(), Idleness::MidMessage, 3));
    }
}
