//! A session's interrupts: the router's drain and stop, an administrator's
//! disconnect of the tenant and the expiry of a token login, raised into one
//! flag the relay reads with one atomic load per wake-up.
//!
//! The raisers reach the flags through registries (`Interrupts`): one for
//! every session (the listener's), one per tenant in its counters. A
//! session costs a registry one weak pointer and no task of its own.

use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Context;

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
    /// `Drain` when the router is `draining` and nothing stronger
    /// arrived: the router's flag is set before the sessions' own flags
    /// are raised, so a session never relays a client's next message once
    /// the drain has begun, even while the raise is still going through
    /// the registry.
    pub fn or_draining(self, draining: bool) -> Signal {
        match self {
            Signal::None if draining => Signal::Drain,
            s => s,
        }
    }
}

/// A session's interrupt flag. The router (drain, stop), an administrator
/// (a tenant's disconnect, through the tenant's registry) and a token's
/// expiry timer raise it; the relay checks it with one atomic load per
/// wake-up and is woken when it rises.
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

/// Raise `Expired` on `interrupt` at `at` (a token login's expiry); the
/// caller aborts the task when the session ends first.
pub async fn expire_at(interrupt: Weak<Interrupt>, at: tokio::time::Instant) {
    tokio::time::sleep_until(at).await;
    if let Some(i) = interrupt.upgrade() {
        i.raise(Signal::Expired);
    }
}

/// Sessions' interrupt flags that are raised together. Weak pointers: a
/// session that ended leaves a dead entry. `register` prunes them when the
/// list has grown to twice what was live at the last pruning (64 entries
/// at least), and `raise` drops them as it goes, so a list holds at most
/// about twice its peak of live sessions.
#[derive(Default)]
pub struct Interrupts {
    inner: Mutex<Registered>,
}

#[derive(Default)]
struct Registered {
    flags: Vec<Weak<Interrupt>>,
    /// Prune at this length.
    prune_at: usize,
}

impl std::fmt::Debug for Interrupts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupts").finish_non_exhaustive()
    }
}

impl Interrupts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a session's flag: the next `raise` reaches it.
    pub fn register(&self, interrupt: &Arc<Interrupt>) {
        let mut r = self.lock();
        if r.flags.len() >= r.prune_at {
            r.flags.retain(|w| w.strong_count() > 0);
            r.prune_at = (r.flags.len() * 2).max(64);
        }
        r.flags.push(Arc::downgrade(interrupt));
    }

    /// Raise `signal` on every live session registered here; returns how
    /// many were reached.
    pub fn raise(&self, signal: Signal) -> usize {
        let mut r = self.lock();
        let mut reached = 0;
        r.flags.retain(|w| match w.upgrade() {
            Some(i) => {
                i.raise(signal);
                reached += 1;
                true
            }
            None => false,
        });
        r.prune_at = (r.flags.len() * 2).max(64);
        reached
    }

    /// Drop ended sessions' entries and the spare room: the registry of a
    /// tenant with no session holds no memory.
    pub fn compact(&self) {
        let mut r = self.lock();
        r.flags.retain(|w| w.strong_count() > 0);
        r.flags.shrink_to_fit();
        r.prune_at = (r.flags.len() * 2).max(64);
    }

    /// Bytes of the list on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.lock().flags.capacity() * std::mem::size_of::<Weak<Interrupt>>()
    }

    /// Registered entries, dead ones included (tests).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.lock().flags.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::{Wake, Waker};

    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn raise_reaches_every_live_session_and_wakes_it() {
        let reg = Interrupts::default();
        let a = Arc::new(Interrupt::default());
        let b = Arc::new(Interrupt::default());
        reg.register(&a);
        reg.register(&b);
        let woken = Arc::new(Flag(Default::default()));
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(a.poll(&mut cx), Signal::None);
        assert_eq!(reg.raise(Signal::Drain), 2);
        assert!(woken.0.load(Ordering::SeqCst), "a waiting session is woken");
        assert_eq!(a.poll(&mut cx), Signal::Drain);
        assert_eq!(b.poll(&mut cx), Signal::Drain);
    }

    #[test]
    fn a_stronger_signal_wins_and_a_weaker_one_does_not_undo_it() {
        let reg = Interrupts::default();
        let a = Arc::new(Interrupt::default());
        reg.register(&a);
        reg.raise(Signal::Kick);
        reg.raise(Signal::Drain);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(a.poll(&mut cx), Signal::Kick);
    }

    #[test]
    fn ended_sessions_are_pruned_and_not_counted() {
        let reg = Interrupts::default();
        let live = Arc::new(Interrupt::default());
        reg.register(&live);
        for _ in 0..1000 {
            let gone = Arc::new(Interrupt::default());
            reg.register(&gone);
        }
        assert!(
            reg.entries() <= 130,
            "dead entries pruned as the list grows: {}",
            reg.entries()
        );
        assert_eq!(reg.raise(Signal::Stop), 1);
        assert_eq!(reg.entries(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_raises_expired_at_its_time_not_before() {
        let a = Arc::new(Interrupt::default());
        let at = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let timer = tokio::spawn(expire_at(Arc::downgrade(&a), at));
        tokio::task::yield_now().await;
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(a.poll(&mut cx), Signal::None);
        timer.await.expect("the timer task ends");
        assert!(tokio::time::Instant::now() >= at);
        assert_eq!(a.poll(&mut cx), Signal::Expired);
    }
}
