//! `max_query_ms`: a timer on the unit Postgres is running now (a Query,
//! a Bind, which plans the statement, an Execute, a FunctionCall; its
//! clock starts when the units before it are answered and stops at its
//! answer). When it fires the watch cancels the backend. Postgres sends a
//! Bind's or an Execute's answer only at a Flush or Sync (or when its
//! output buffer fills), so in a pipeline a unit's clock runs on through
//! the ones after it until that answer comes: Bind and Execute are timed
//! together, and the cancel stops whichever of them runs (the watch names
//! the limit in either's error).

use crate::conversation::Conversation;
use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

#[derive(Default)]
pub struct QueryTimer {
    /// Made when a unit is first timed: a session whose tenant has no
    /// `max_query_ms` never holds one.
    timer: Option<Pin<Box<Sleep>>>,
    /// The unit the timer is set for.
    armed_for: Option<u64>,
    /// The last unit that ran out of time (it is not timed again).
    fired_for: Option<u64>,
}

impl QueryTimer {
    /// Follow the conversation: time the running unit, if it runs
    /// something real (not a denied stand-in).
    pub fn follow(&mut self, conv: &Conversation, limit: Option<Duration>) {
        let running = conv.running().filter(|(p, _)| !p.denied);
        match (running, limit) {
            (Some((p, since)), Some(limit)) if Some(p.seq) != self.fired_for => {
                if self.armed_for != Some(p.seq) {
                    let deadline = Instant::from_std(since) + limit;
                    match self.timer.as_mut() {
                        Some(t) => t.as_mut().reset(deadline),
                        None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    self.armed_for = Some(p.seq);
                }
            }
            _ => self.armed_for = None,
        }
    }

    /// The unit whose time ran out, once (registers the waker while armed).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Option<u64> {
        let seq = self.armed_for?;
        if self.timer.as_mut()?.as_mut().poll(cx).is_ready() {
            self.armed_for = None;
            self.fired_for = Some(seq);
            return Some(seq);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::FrameView;

    fn noop_cx() -> Context<'static> {
        Context::from_waker(futures_util::task::noop_waker_ref())
    }

    #[tokio::test(start_paused = true)]
    async fn times_the_running_unit_once() {
        let mut conv = Conversation::default();
        let mut t = QueryTimer::default();
        let limit = Some(Duration::from_millis(100));
        t.follow(&conv, limit);
        assert_eq!(t.poll_expired(&mut noop_cx()), None, "nothing runs");
        conv.client_sent(b'E', false);
        conv.client_sent(b'H', false);
        t.follow(&conv, limit);
        assert_eq!(t.poll_expired(&mut noop_cx()), None);
        tokio::time::advance(Duration::from_millis(150)).await;
        assert_eq!(
            t.poll_expired(&mut noop_cx()),
            Some(0),
            "an unsynced Execute is timed"
        );
        t.follow(&conv, limit);
        assert_eq!(t.poll_expired(&mut noop_cx()), None, "fires once");
        let z = crate::protocol::error_response(crate::protocol::Severity::Error, "57014", "x");
        conv.on_server(FrameView {
            tag: b'E',
            len: z.len(),
            bytes: &z,
        });
        t.follow(&conv, limit);
        assert_eq!(t.poll_expired(&mut noop_cx()), None);
        t.follow(&conv, None);
        conv.client_sent(b'F', false);
        t.follow(&conv, None);
        tokio::time::advance(Duration::from_millis(150)).await;
        assert_eq!(t.poll_expired(&mut noop_cx()), None, "no limit");
    }
}
