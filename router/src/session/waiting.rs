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

/// Whether `buf` holds the client's next message whole, or (a message
/// larger than the relay holds whole) its first `STREAM_OVER` bytes: a
/// client that sends part of a message and stops takes no backend from
/// the pool (transaction pooling) while the rest is missing. What waits
/// here is bounded as the relay's own buffer is.
/// A header with a length no message can have is in as it is: the relay
/// refuses it at once (rather than the client waiting for 64 KiB).
fn first_message_in(buf: &[u8]) -> bool {
    use crate::codec::{frame_header, STREAM_OVER};
    match frame_header(buf, crate::protocol::MAX_MESSAGE_LEN) {
        Ok(None) => false,
        Ok(Some(h)) => buf.len() >= h.frame_len || buf.len() >= STREAM_OVER,
        Err(_) => true,
    }
}

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
        // Part of a message holds no backend yet (see `first_message_in`),
        // but its wait is bounded like one that does.
        let (how, fatal) = if client.buf.is_empty() {
            (Idleness::Rest, super::idle::IDLE_TIMEOUT)
        } else {
            (Idleness::MidMessage, super::idle::MID_MESSAGE_TIMEOUT)
        };
        if idle
            .as_mut()
            .is_some_and(|t| t.expired(cx, how, client.buf.len() as u64))
        {
            return Poll::Ready(Waited::Close(fatal));
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
            Poll::Ready(Ok(_)) if first_message_in(&client.buf) => Poll::Ready(Waited::Data),
            Poll::Ready(Ok(_)) => {
                // Read again (and so register the waker) for the rest.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
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

#[cfg(test)]
mod tests {
    use super::{first_message_in, TERMINATE};
    use crate::codec::STREAM_OVER;

    #[test]
    fn a_message_is_in_once_whole_or_too_large_to_hold() {
        assert!(!first_message_in(b""));
        assert!(!first_message_in(b"Q\0\0"), "half a header");
        assert!(!first_message_in(b"Q\0\0\0\x0eSELE"), "half a body");
        assert!(first_message_in(b"Q\0\0\0\x0eSELECT 1;\0"));
        assert!(first_message_in(b"Q\0\0\0\x0eSELECT 1;\0X\0"), "and more");
        assert!(first_message_in(&TERMINATE));
        // Beyond what the relay holds whole it streams, from its first
        // STREAM_OVER bytes on: a header alone is not enough.
        assert!(!first_message_in(b"d\0\x01\0\x01"), "a header alone");
        let mut big = b"d\0\x01\0\x01".to_vec();
        big.resize(STREAM_OVER - 1, 0);
        assert!(!first_message_in(&big), "one byte short of STREAM_OVER");
        big.push(0);
        assert!(first_message_in(&big), "STREAM_OVER of it in");
        assert!(!first_message_in(b"d\0\0\xff\xff"), "64 KiB whole: held");
        let mut whole = b"d\0\0\xff\xff".to_vec();
        whole.resize(STREAM_OVER, 0);
        assert!(first_message_in(&whole), "64 KiB whole, all in");
        assert!(first_message_in(b"Q\xff\xff\xff\xff"), "bad length");
        assert!(
            first_message_in(b"Q\0\0\0\x03"),
            "shorter than its length field"
        );
    }
}
