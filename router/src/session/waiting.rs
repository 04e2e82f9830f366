//! Waiting for a client at rest (transaction pooling between
//! transactions, a session parked while its tenant is paused): its next
//! bytes, its Terminate, an interrupt or its idle timeout.

use super::conn::Conn;
use super::idle::Idleness;
use super::phase::{Fatal, EXPIRED, KICKED, SHUTTING_DOWN};
use crate::interrupt::Signal;
use bytes::BytesMut;
use std::pin::Pin;
use std::task::Poll;

/// Bytes read ahead for a client between transactions (it holds no
/// backend and should hold no large buffers either).
const IDLE_READ: usize = 512;

/// A client's Terminate message.
pub(super) const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// Wait for the client's next bytes; false: the session is over (the
/// client left, an interrupt or its idle timeout closed it).
pub(super) async fn wait_for_client(conn: &mut Conn) -> bool {
    enum Waited {
        Data,
        Gone,
        Close(Fatal),
    }
    let mut idle = conn.idle_timer();
    let client = &mut conn.client;
    let shared = &conn.shared;
    let interrupt = &conn.interrupt;
    let waited = std::future::poll_fn(|cx| {
        match interrupt.poll(cx).or_draining(shared.is_draining()) {
            Signal::Stop | Signal::Drain => return Poll::Ready(Waited::Close(SHUTTING_DOWN)),
            Signal::Kick => return Poll::Ready(Waited::Close(KICKED)),
            Signal::Expired => return Poll::Ready(Waited::Close(EXPIRED)),
            Signal::None => {}
        }
        if idle
            .as_mut()
            .is_some_and(|t| client.buf.is_empty() && t.expired(cx, Idleness::Rest, 0))
        {
            return Poll::Ready(Waited::Close(super::idle::IDLE_TIMEOUT));
        }
        // An idle client holds no read buffer: on plain TCP the socket's
        // readiness is awaited first, and the buffer is allocated only when
        // there is something to read.
        if client.buf.is_empty() {
            match client.stream.poll_read_ready(cx) {
                Some(Poll::Pending) => return Poll::Pending,
                Some(Poll::Ready(Err(_))) => return Poll::Ready(Waited::Gone),
                Some(Poll::Ready(Ok(()))) | None => {}
            }
        }
        if client.buf.capacity() == client.buf.len() {
            client.buf.reserve(IDLE_READ);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut client.stream), cx, &mut client.buf) {
            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(Waited::Gone),
            Poll::Ready(Ok(_)) => Poll::Ready(Waited::Data),
            Poll::Pending => {
                if client.buf.is_empty() {
                    client.buf = BytesMut::new();
                }
                Poll::Pending
            }
        }
    })
    .await;
    match waited {
        // A Terminate at rest needs no backend: the client is leaving.
        Waited::Data if conn.client.buf[..] == TERMINATE => {
            conn.traffic.from_client += TERMINATE.len() as u64;
            false
        }
        Waited::Data => true,
        Waited::Gone => false,
        Waited::Close(fatal) => {
            // Boxed: the wait above is what an idle client holds, and it
            // stays small.
            Box::pin(conn.close_at_rest(fatal)).await;
            false
        }
    }
}
