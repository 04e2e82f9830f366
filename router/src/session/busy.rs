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
//!
//! A client of a paused tenant (`crate::pause`) that waited longer than
//! `pause_timeout_ms` is answered the same way, with 55P03.

use super::conn::Conn;
use crate::codec::frame_header;
use crate::error::SessionError;
use crate::pause::PauseError;
use crate::pool::PoolError;
use crate::protocol::{self, Severity, MAX_MESSAGE_LEN};
use bytes::Buf;
use tokio::io::AsyncReadExt;
use tokio::time::timeout_at;

/// Why a client's statement is refused without reaching a backend.
pub trait Refusal: std::fmt::Display + Clone + Into<SessionError> {
    fn sqlstate(&self) -> &'static str;
    /// For the log line.
    fn why(&self) -> &'static str;
}

impl Refusal for PoolError {
    fn sqlstate(&self) -> &'static str {
        PoolError::sqlstate(self)
    }
    fn why(&self) -> &'static str {
        "statement refused: no pooled backend in time"
    }
}

impl Refusal for PauseError {
    fn sqlstate(&self) -> &'static str {
        PauseError::sqlstate(self)
    }
    fn why(&self) -> &'static str {
        "statement refused: the tenant stayed paused"
    }
}

/// Answer what the client sent with `e` (53300 or 55P03, see the module
/// doc); true: the session goes on, false: the client left.
pub async fn turn_away<E: Refusal>(conn: &mut Conn, e: &E) -> Result<bool, SessionError> {
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
                Err(_) => return Err(e.clone().into()),
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
                Err(_) => return Err(e.clone().into()),
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
            tracing::info!(parent: &conn.span, error = %e, "{}", e.why());
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
