//! Refusing a client's message in the middle of a batch without breaking
//! the order of answers: PostgreSQL gets a stand-in that fails (and so
//! skips the rest of the batch, as the client's own error would), and the
//! stand-in's error, recognised by a marker no query can name (random per
//! process), reaches the client as 53400 naming the limit.

use super::backend::text_hash;
use super::budget::Budget;
use crate::protocol::{self, Severity};
use bytes::BytesMut;
use std::sync::OnceLock;

/// Why a client's message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A Parse over the client's statement budget.
    TooMany,
    /// A named Parse larger than the client's statement bytes.
    TooLarge,
    /// A Bind too large to hold whose statement name is past what the
    /// router is shown of it (a portal name of hundreds of bytes).
    Unreadable,
}

fn marker() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("pg_tenant_router_refused_{:016x}", text_hash(b"refused")))
}

/// An unnamed Parse that fails at parse analysis (a column no query has).
pub fn parse_stand_in() -> BytesMut {
    let mut b = BytesMut::new();
    // A short statement: encoding cannot fail.
    let _ = postgres_protocol::message::frontend::parse(
        "",
        &format!("SELECT {}", marker()),
        [],
        &mut b,
    );
    b
}

/// A Bind of a statement no client has (26000 in PostgreSQL).
pub fn bind_stand_in() -> BytesMut {
    protocol::bind_unnamed(marker())
}

/// Whether an ErrorResponse is a stand-in's.
pub fn is_stand_ins(frame: &[u8]) -> bool {
    let m = marker().as_bytes();
    frame
        .get(5..)
        .is_some_and(|t| t.windows(m.len()).any(|w| w == m))
}

/// The error the client gets instead.
pub fn error(why: Refusal, b: Budget) -> BytesMut {
    let msg = match why {
        Refusal::TooMany => format!(
            "too many prepared statements: tenant-router keeps at most {} named statements per client (pool.max_client_prepared_statements) and {} bytes of them (pool.max_client_prepared_bytes); close statements no longer needed",
            b.per_client, b.client_bytes
        ),
        Refusal::TooLarge => format!(
            "prepared statement too large: tenant-router keeps named statements of at most {} bytes per client with transaction pooling (pool.max_client_prepared_bytes); use an unnamed statement",
            b.client_bytes
        ),
        Refusal::Unreadable => "Bind message refused: with transaction pooling, tenant-router reads the statement name of a Bind over 64 KiB from its first 256 bytes; use a shorter portal name".to_owned(),
    };
    protocol::error_response(Severity::Error, "53400", &msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_carry_the_marker_and_errors_name_the_limit() {
        let p = parse_stand_in();
        assert_eq!(p[0], b'P');
        assert_eq!(
            u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize + 1,
            p.len()
        );
        let b = bind_stand_in();
        assert_eq!(
            u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize + 1,
            b.len()
        );
        let pg = protocol::error_response(
            Severity::Error,
            "26000",
            &format!("prepared statement \"{}\" does not exist", marker()),
        );
        assert!(is_stand_ins(&pg));
        assert!(!is_stand_ins(&protocol::error_response(
            Severity::Error,
            "42703",
            "column \"x\" does not exist"
        )));
        let e = error(Refusal::TooMany, Budget::default());
        let (code, msg) = protocol::error_fields(&e);
        assert_eq!(code, "53400");
        assert!(msg.contains("pool.max_client_prepared_statements"));
        assert!(!msg.contains(marker()));
    }
}
