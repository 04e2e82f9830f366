//! A transaction-pooled client the pool could not serve within
//! `pool.timeout_ms` (its tenant at its share, or the pool busy with other
//! tenants' work) is not disconnected: what it sent fails the way
//! PostgreSQL fails a statement, and its session goes on.
//!
//! - a simple Query or a FunctionCall: ErrorResponse 53300, ReadyForQuery;
//! - an extended-protocol batch: ErrorResponse 53300 at once, then, as
//!   PostgreSQL does after an error, everything up to the next Sync is
//!   skipped and the Sync answered with ReadyForQuery;
//! - a lone Sync: ReadyForQuery (nothing failed).
//!
//! The skipped messages are read and dropped as they arrive, never held
//! whole. A client that does not send its Sync within `pool.timeout_ms`
//! is closed (FATAL 53300).

use super::conn::Conn;
use crate::codec::frame_header;
use crate::error::SessionError;
use crate::pool::PoolError;
use crate::protocol::{self, Severity, MAX_MESSAGE_LEN};
use bytes::Buf;
use tokio::io::AsyncReadExt;
use tokio::time::timeout_at;

/// Answer what the client sent with 53300 (see the module doc); true: the
/// session goes on, false: the client left.
pub async fn turn_away(conn: &mut Conn, e: &PoolError) -> Result<bool, SessionError> {
    let cfg = conn.shared.config();
    let deadline = tokio::time::Instant::now() + cfg.pool.timeout();
    let error = protocol::error_response(Severity::Error, e.sqlstate(), &e.to_string());
    let mut told = false;
    let mut extended = false;
    loop {
        let header = loop {
            if let Some(h) = frame_header(&conn.client.buf, MAX_MESSAGE_LEN)? {
                break h;
            }
            let read = conn.client.stream.read_buf(&mut conn.client.buf);
            match timeout_at(deadline, read).await {
                Ok(Ok(0) | Err(_)) => return Ok(false),
                Ok(Ok(_)) => {}
                Err(_) => return Err(SessionError::Pool(e.clone())),
            }
        };
        if header.tag == b'X' {
            return Ok(false);
        }
        // Skip the frame, reading and dropping what has not come yet.
        let mut left = header.frame_len;
        loop {
            let n = left.min(conn.client.buf.len());
            conn.client.buf.advance(n);
            conn.traffic.from_client += n as u64;
            left -= n;
            if left == 0 {
                break;
            }
            let read = conn.client.stream.read_buf(&mut conn.client.buf);
            match timeout_at(deadline, read).await {
                Ok(Ok(0) | Err(_)) => return Ok(false),
                Ok(Ok(_)) => {}
                Err(_) => return Err(SessionError::Pool(e.clone())),
            }
        }
        let ends = match header.tag {
            b'S' => true,
            b'Q' | b'F' => !extended,
            _ => {
                extended = true;
                false
            }
        };
        let mut out = bytes::BytesMut::new();
        if !told && (header.tag != b'S' || extended) {
            told = true;
            out.extend_from_slice(&error);
            if let Some(c) = conn.tenancy.counters() {
                c.metrics.error();
            }
            tracing::info!(parent: &conn.span, error = %e, "statement refused: no pooled backend in time");
        }
        if ends {
            out.extend_from_slice(&protocol::ready_for_query(b'I'));
        }
        if !out.is_empty() {
            conn.client.send(&out).await?;
            conn.traffic.to_client += out.len() as u64;
        }
        if ends {
            return Ok(true);
        }
    }
}
