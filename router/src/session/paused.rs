//! A tenant session and its tenant's pause (`crate::pause`): passing the
//! gate before work starts on a backend (`pass_gate`), and a session-mode
//! relay parked at a point of rest while its tenant is paused (`park`).

use super::busy;
use super::conn::Conn;
use super::phase::{EXPIRED, KICKED, SHUTTING_DOWN};
use super::waiting::wait_for_client;
use crate::error::SessionError;
use crate::interrupt::Signal;
use std::task::Poll;

/// What a session that has something to run met at its tenant's gate.
pub enum Gate {
    /// It holds a token (or has no gate: not a tenant session).
    Passed,
    /// The tenant stayed paused longer than `pause_timeout_ms`.
    Refused(crate::pause::PauseError),
    /// An interrupt (disconnect, shutdown) closed the session meanwhile.
    Closed,
}

/// Take a token at the session's gate, waiting while its tenant is paused
/// (at most `pause_timeout_ms`); an interrupt meanwhile closes the session.
pub async fn pass_gate(conn: &mut Conn) -> Gate {
    let Some(p) = conn.pause.as_mut() else {
        return Gate::Passed;
    };
    if p.running.is_some() {
        return Gate::Passed;
    }
    if let Some(r) = p.gate.try_enter() {
        p.running = Some(r);
        return Gate::Passed;
    }
    let gate = p.gate.clone();
    let timeout = conn.shared.config().pause_timeout();
    tracing::info!(parent: &conn.span, "the tenant is paused: waiting");
    let interrupt = conn.interrupt.clone();
    let shared = conn.shared.clone();
    let interrupted =
        std::future::poll_fn(
            |cx| match interrupt.poll(cx).or_draining(shared.is_draining()) {
                Signal::None => Poll::Pending,
                Signal::Kick => Poll::Ready(KICKED),
                Signal::Expired => Poll::Ready(EXPIRED),
                Signal::Stop | Signal::Drain => Poll::Ready(SHUTTING_DOWN),
            },
        );
    tokio::select! {
        entered = gate.enter(timeout) => match entered {
            Ok(r) => {
                if let Some(p) = conn.pause.as_mut() {
                    p.running = Some(r);
                }
                Gate::Passed
            }
            Err(e) => Gate::Refused(e),
        },
        fatal = interrupted => {
            Box::pin(conn.close_at_rest(fatal)).await;
            Gate::Closed
        }
    }
}

/// What a parked session came to.
pub enum Parked {
    /// It holds a token again: relay on.
    Resumed,
    /// The session is over (the client left, or an interrupt closed it).
    Over,
}

/// A session-mode relay stopped at a point of rest because its tenant is
/// paused: its backend stays attached, it holds no token. Wait for the
/// resume (relay on) or the client's next message (wait at the gate, at
/// most `pause_timeout_ms`, then refuse it with 55P03 and wait again).
pub async fn park(conn: &mut Conn) -> Result<Parked, SessionError> {
    let Some(gate) = conn.pause.as_mut().map(|p| {
        p.running = None;
        p.gate.clone()
    }) else {
        return Ok(Parked::Resumed);
    };
    tracing::info!(parent: &conn.span, "the tenant is paused: the session waits at rest");
    let reconnects = gate.reconnects();
    let outcome = Box::pin(wait_parked(conn, &gate)).await?;
    if matches!(outcome, Parked::Resumed) && gate.reconnects() != reconnects {
        // Its backend is on the server the tenant left.
        Box::pin(conn.close_at_rest(MOVED)).await;
        return Ok(Parked::Over);
    }
    Ok(outcome)
}

/// Parked sessions end with this when the tenant was resumed with
/// `reconnect` (moved to another server).
pub const MOVED: super::phase::Fatal = (
    "57P01",
    "this tenant was moved to another server (tenant-router tenants move): reconnect",
);

async fn wait_parked(
    conn: &mut Conn,
    gate: &std::sync::Arc<crate::pause::Gate>,
) -> Result<Parked, SessionError> {
    loop {
        if conn.client.buf.is_empty() {
            let resumed = gate.resumed();
            tokio::select! {
                () = resumed => {
                    // Paused again meanwhile: wait on.
                    let Some(r) = gate.try_enter() else { continue };
                    if let Some(p) = conn.pause.as_mut() {
                        p.running = Some(r);
                    }
                    return Ok(Parked::Resumed);
                }
                more = wait_for_client(conn) => if !more {
                    return Ok(Parked::Over);
                }
            }
        }
        match Box::pin(pass_gate(conn)).await {
            Gate::Passed => return Ok(Parked::Resumed),
            Gate::Closed => return Ok(Parked::Over),
            Gate::Refused(e) => {
                if !Box::pin(busy::turn_away(conn, &e)).await? {
                    return Ok(Parked::Over);
                }
            }
        }
    }
}
