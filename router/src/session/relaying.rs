//! Transparent (and Draining): attach → relay → release, until either side
//! ends, the router shuts down, or an administrator disconnects the
//! tenant. A dedicated session relays once, on its own backend. With
//! transaction pooling, one relay per transaction: at each point of rest
//! the backend goes back to its pool (`PooledClient::detach`), and the
//! client's next message brings one (`between_transactions`).

use super::attached::Attached;
use super::conn::Conn;
use super::idle::{IdleTimer, Idleness, IDLE_TIMEOUT, MID_MESSAGE_TIMEOUT, UNSYNCED_TIMEOUT};
use super::paused::Parked;
use super::phase::{
    fatal_frame, Fatal, Phase, BACKEND_EXIT_WAIT, EXPIRED, KICKED, LOST, OVERFLOW, SERVER_LOST,
    SHUTTING_DOWN, UNREAD, UNRESPONSIVE,
};
use super::pooled::MAX_SESSION_SETTINGS_BYTES;
use super::source::{Ready, Source};
use crate::cancel::CancelGuard;
use crate::conversation::Conversation;
use crate::error::SessionError;
use crate::interrupt::Signal;
use crate::limits::StatementWatch;
use crate::relay::{Carried, End, Mode, Ownership, Relay, RelayError, Rest};
use crate::transport::Stream;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Why a relay stopped.
enum Exit {
    Relay(Result<End, RelayError>),
    Stop,
    Kick,
    Expired,
    /// Idle longer than allowed (`session::idle`): the FATAL to send.
    Idle(Fatal),
}

/// What one relay on one backend came to.
enum Once {
    /// Transaction pooling: at rest, the backend went back to its pool.
    Rest,
    /// The session is over.
    Over(Result<(), SessionError>),
    /// Session mode: at rest while the tenant is paused; the backend is
    /// kept for the relay that follows the resume.
    Parked(Attached),
}

/// Relay from `first` on, to the end of the session.
pub async fn serve(
    conn: &mut Conn,
    ready: &mut Ready,
    first: Box<Attached>,
) -> Result<(), SessionError> {
    let Ready {
        source,
        who,
        cancel,
        watch,
        ..
    } = ready;
    // A token login ends when its token does (auth.jwt.end_session_at_expiry).
    let expiry = who.expires_at.map(|at| {
        let left = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        tokio::spawn(crate::interrupt::expire_at(
            Arc::downgrade(&conn.interrupt),
            tokio::time::Instant::now() + left,
        ))
    });
    let transactions = source.transaction_pooling();
    let mut conv = Conversation::default();
    let budget = conn.shared.config().pool.statement_budget();
    let mut statements = transactions.then(|| Carried::new(budget));
    let mode = if transactions {
        Mode::DetachAtRest
    } else {
        Mode::Serve
    };
    let mut attached = Some(first);
    let result = loop {
        let backend = match (attached.take(), &mut *source) {
            (Some(b), _) => b,
            (None, Source::Pooled(p)) => match Box::pin(p.between_transactions(conn)).await {
                Ok(Some(b)) => Box::new(b),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            },
            (None, Source::Dedicated) => break Ok(()),
        };
        // Boxed: between transactions a client holds none of the relay's
        // memory.
        let mut on = On {
            conn: &mut *conn,
            source: &mut *source,
            cancel,
            watch: &mut *watch,
        };
        let once = Box::pin(on.relay_once(*backend, &mut conv, &mut statements, mode));
        match once.await {
            Once::Rest => continue,
            Once::Over(end) => break end,
            Once::Parked(backend) => match Box::pin(super::paused::park(conn)).await {
                Ok(Parked::Resumed) => attached = Some(Box::new(backend)),
                Ok(Parked::Over) => {
                    Box::pin(let_parked_go(conn, &*source, backend)).await;
                    break Ok(());
                }
                Err(e) => {
                    Box::pin(let_parked_go(conn, &*source, backend)).await;
                    break Err(e);
                }
            },
        }
    };
    if let Some(timer) = expiry {
        timer.abort();
    }
    result
}

/// The session ended while parked (its tenant paused, at rest): a pooled
/// backend goes back to its pool (reset), a dedicated one is closed.
async fn let_parked_go(conn: &mut Conn, source: &Source, attached: Attached) {
    let Attached { backend, lease } = attached;
    match (lease, source.pooled()) {
        (Some(lease), Some(p)) => p.give_back(conn, lease, backend, true).await,
        _ => crate::pool::switch::close(backend).await,
    }
}

/// What one relay works with.
struct On<'a> {
    conn: &'a mut Conn,
    source: &'a mut Source,
    cancel: &'a CancelGuard,
    watch: &'a mut Option<Box<StatementWatch>>,
}

impl On<'_> {
    /// One relay on `attached`: until the session ends, or, with
    /// transaction pooling, until the conversation is at rest and the
    /// backend went back to its pool.
    async fn relay_once(
        &mut self,
        mut attached: Attached,
        conv: &mut Conversation,
        statements: &mut Option<Carried>,
        mode: Mode,
    ) -> Once {
        let backend = &mut attached.backend;
        if let Some(st) = statements.as_mut() {
            st.backend = std::mem::take(&mut backend.statements);
        }
        let ownership = match attached.lease {
            Some(_) => Ownership::Pooled,
            None => Ownership::Own,
        };
        if let Some(w) = self.watch.as_mut() {
            w.restart_accounting();
        }
        // A pooled client knows the router's pid, not the backend's.
        let pid = match (self.source.pooled(), backend.key) {
            (Some(p), Some((real, _))) => Some((real, p.client_key().0)),
            _ => None,
        };
        let rest = Rest {
            conv: std::mem::take(conv),
            carried: statements.take(),
            server_buf: None,
        };
        let relay = Relay::resume(
            rest,
            pid,
            std::mem::take(&mut self.conn.client.buf),
            std::mem::take(&mut backend.buf),
            self.watch.as_deref_mut(),
            ownership,
        );
        let mut relay = match relay {
            Ok(r) => r,
            Err(e) => return Once::Over(Err(e.into())),
        };
        let mut idle = self.conn.idle_timer();
        let exit = self
            .run_relay(&mut relay, &mut backend.stream, &mut idle, mode)
            .await;
        let (from_client, to_client) = relay.traffic();
        self.conn.traffic.from_client += from_client;
        self.conn.traffic.to_client += to_client;
        if matches!(exit, Exit::Relay(Ok(End::Paused))) {
            // Session mode, the tenant paused, at rest: the backend is kept
            // (with what it had read) while the session waits.
            let rest = relay.into_rest();
            *conv = rest.conv;
            if let Some(buf) = rest.server_buf {
                attached.backend.buf = buf;
            }
            return Once::Parked(attached);
        }
        if matches!(exit, Exit::Relay(Ok(End::Rest))) {
            // Transaction pooling: the backend goes back, context and
            // statements kept; the client keeps its conversation.
            let rest = relay.into_rest();
            *conv = rest.conv;
            // The backend keeps its read buffer (backends are few); the
            // client's goes, an idle client holds none.
            if let Some(buf) = rest.server_buf {
                backend.buf = buf;
            }
            if let Some(mut st) = rest.carried {
                backend.statements = std::mem::take(&mut st.backend);
                let reported = match (st.settings_overflow, st.settings.take(), &mut *self.source) {
                    (true, _, _) => Err(SessionError::TooManySettings(format!(
                        "settings of more than {} bytes",
                        MAX_SESSION_SETTINGS_BYTES
                    ))),
                    (false, Some(report), Source::Pooled(p)) => p.settings_reported(report),
                    _ => Ok(()),
                };
                if let Err(e) = reported {
                    // The backend holds settings the router will not
                    // carry: it is closed, and the client told why.
                    if let Some(lease) = attached.lease.take() {
                        lease
                            .pool()
                            .discarded(crate::pool::Discard::TooManySettings);
                    }
                    tokio::spawn(crate::pool::switch::close(attached.backend));
                    return Once::Over(Err(e));
                }
                *statements = Some(st);
            }
            match &*self.source {
                Source::Pooled(p) => p.detach(self.conn, attached).await,
                Source::Dedicated => drop(attached),
            }
            return Once::Rest;
        }
        // Boxed: closing is rare and its futures are large; this future is
        // made anew for every transaction, so it stays small.
        Once::Over(Box::pin(self.end_relay(relay, attached, exit)).await)
    }

    /// Relay until the relay stops (`mode`) or an interrupt arrives.
    async fn run_relay(
        &mut self,
        relay: &mut Relay,
        server: &mut Stream,
        idle: &mut Option<IdleTimer>,
        mut mode: Mode,
    ) -> Exit {
        let client = &mut self.conn.client.stream;
        let phase = &mut self.conn.phase;
        let shared = &self.conn.shared;
        let interrupt = &self.conn.interrupt;
        let watch = &mut *self.watch;
        let pause = self.conn.pause.as_ref();
        std::future::poll_fn(|cx| {
            match interrupt.poll(cx).or_draining(shared.is_draining()) {
                Signal::Stop => return Poll::Ready(Exit::Stop),
                Signal::Kick => return Poll::Ready(Exit::Kick),
                Signal::Expired => return Poll::Ready(Exit::Expired),
                Signal::Drain if matches!(mode, Mode::Serve | Mode::PauseAtRest) => {
                    *phase = Phase::Draining;
                    mode = Mode::StopWhenIdle;
                }
                Signal::Drain => *phase = Phase::Draining,
                Signal::None => {}
            }
            // Session mode: a paused tenant's session parks at its next
            // point of rest.
            if mode == Mode::Serve && pause.is_some_and(|p| p.gate.poll_paused(&p.waker, cx)) {
                mode = Mode::PauseAtRest;
            }
            let polled = relay.poll(cx, client, server, watch.as_deref_mut(), mode);
            if polled.is_pending() {
                // Checked after the relay went as far as it could: the
                // timer is armed (its waker registered) as soon as the
                // conversation comes to rest.
                if let Some(t) = idle.as_mut() {
                    let activity = relay.client_activity();
                    let how = if relay.idle(watch.as_deref()) {
                        Idleness::Rest
                    } else if mode == Mode::DetachAtRest && relay.unsynced_idle() {
                        Idleness::Unsynced
                    } else if relay.idle_mid_message(watch.as_deref()) {
                        Idleness::MidMessage
                    } else {
                        Idleness::Busy
                    };
                    if t.expired(cx, how, activity) {
                        return Poll::Ready(Exit::Idle(match how {
                            Idleness::Unsynced => UNSYNCED_TIMEOUT,
                            Idleness::MidMessage => MID_MESSAGE_TIMEOUT,
                            _ => IDLE_TIMEOUT,
                        }));
                    }
                }
            }
            polled.map(Exit::Relay)
        })
        .await
    }

    /// The relay ended for good: tell the client why (if it is still
    /// there), and give the backend back (a pooled one whose client left at
    /// rest) or let it go.
    async fn end_relay(
        &mut self,
        relay: Relay,
        attached: Attached,
        exit: Exit,
    ) -> Result<(), SessionError> {
        let in_flight = !relay.idle(self.watch.as_deref());
        // A pooled backend goes back only from a client that left with the
        // conversation at rest and nothing of the server's half read.
        let reusable = matches!(exit, Exit::Relay(Ok(End::Client)) | Exit::Idle(_))
            && !in_flight
            && relay.server_drained();
        // The server closed, or its connection failed under the relay (a
        // reset: an error reading it, not writing to the client).
        let server_ended = matches!(exit, Exit::Relay(Ok(End::Server) | Err(_)));
        let closing = match exit {
            Exit::Relay(Err(e)) => Err(e.into()),
            Exit::Relay(Ok(End::Client)) => Ok(None),
            Exit::Relay(Ok(End::Server)) => Err(SessionError::ServerGone),
            Exit::Relay(Ok(End::Idle | End::Rest | End::Paused)) | Exit::Stop => {
                Ok(Some(SHUTTING_DOWN))
            }
            Exit::Relay(Ok(End::Lost)) => Ok(Some(LOST)),
            Exit::Relay(Ok(End::Overflow)) => Ok(Some(OVERFLOW)),
            // Bytes still owed: the client, not the server, held it back.
            Exit::Relay(Ok(End::Unresponsive)) if !relay.owed().0.is_empty() => Ok(Some(UNREAD)),
            Exit::Relay(Ok(End::Unresponsive)) => Ok(Some(UNRESPONSIVE)),
            Exit::Kick => Ok(Some(KICKED)),
            Exit::Expired => Ok(Some(EXPIRED)),
            Exit::Idle(fatal) => Ok(Some(fatal)),
        };
        if let Ok(Some(fatal)) = closing {
            self.close_with(&relay, fatal).await;
        } else if server_ended && relay.server_left_silently() {
            // Without it the client would see its connection closed with
            // no word (or, mid-message, cut: then only the bytes owed go).
            self.close_with(&relay, SERVER_LOST).await;
        }
        let Attached { mut backend, lease } = attached;
        let carried = relay.into_rest().carried;
        match (lease, self.source.pooled()) {
            (Some(lease), Some(p)) if reusable => {
                // Transaction pooling: the backend's statements go back
                // with it; if an answer about them is still due (or the
                // client SET something the backend's tag does not show),
                // it is reset first.
                let mut needs_reset = false;
                if let Some(mut c) = carried {
                    needs_reset = c.settings.take().is_some() || !c.client.settled();
                    backend.statements = std::mem::take(&mut c.backend);
                }
                p.give_back(self.conn, lease, backend, needs_reset).await
            }
            (Some(lease), _) => {
                lease.pool().discarded(crate::pool::Discard::ClientLeftBusy);
                self.let_backend_go(&mut backend.stream, in_flight).await;
            }
            (None, _) => self.let_backend_go(&mut backend.stream, in_flight).await,
        }
        closing.map(|_| ())
    }

    /// The session is over but its backend may still be working: a
    /// statement in flight when the client vanished, the token expired or
    /// an administrator disconnected the tenant. Cancel that work, close
    /// the router's side, and wait (up to `BACKEND_EXIT_WAIT`) until
    /// PostgreSQL has closed the connection: the tenant's connection slot
    /// is given back only then, so a client that hangs up cannot leave work
    /// running beyond its limits (`max_connections`, `max_query_ms`).
    async fn let_backend_go(&self, server: &mut Stream, in_flight: bool) {
        use tokio::io::AsyncReadExt;
        if in_flight {
            let (pid, key) = self.cancel.key();
            self.conn.shared.cancels.forward(pid, key).await;
        }
        let _ = server.shutdown().await;
        let mut sink = vec![0u8; 8192];
        let gone = async { while server.read(&mut sink).await.is_ok_and(|n| n > 0) {} };
        if tokio::time::timeout(BACKEND_EXIT_WAIT, gone).await.is_err() {
            tracing::warn!(parent: &self.conn.span, "the backend did not close within {} s; its slot is given back anyway", BACKEND_EXIT_WAIT.as_secs());
        }
    }

    /// Close the client with FATAL `code`, after the bytes already owed to
    /// it, when they end at a frame boundary (otherwise the FATAL is not
    /// sent: the client sees the connection close).
    async fn close_with(&mut self, relay: &Relay, fatal: Fatal) {
        let msg = fatal_frame(fatal);
        let why = fatal.1;
        let (owed, whole) = relay.owed();
        let client = &mut self.conn.client.stream;
        let write = async {
            client.write_all(owed).await?;
            if whole {
                client.write_all(&msg).await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
        tracing::info!(parent: &self.conn.span, reason = why, "connection closed by the router");
    }
}
