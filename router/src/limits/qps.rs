//! `qps_limit`: one token of the tenant's bucket for every unit that runs
//! (each Query, each Execute, each FunctionCall; pipelined or not, with or
//! without Sync). A denied unit never runs:
//!
//! - nothing in flight and no transaction: the router drops it and answers
//!   itself (ErrorResponse 53400, ReadyForQuery);
//! - otherwise Postgres gets a stand-in that fails in its place (so an open
//!   transaction cannot commit, and the client gets its answers in order):
//!   a Query or FunctionCall becomes a Query raising 53400; an Execute
//!   becomes an Execute of a portal that does not exist, whose error the
//!   watch rewrites to 53400.
//!
//! Ending a transaction is free: COMMIT, ROLLBACK, END or ABORT alone in
//! a simple Query, inside a transaction.

use crate::codec::FrameView;
use crate::conversation::{Conversation, TxStatus, Unit};
use crate::protocol;
use bytes::BytesMut;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A simple Query that only ends the open transaction: one statement
/// (no `;` but trailing ones), starting with a transaction-ending keyword.
pub fn is_transaction_end(v: FrameView<'_>, conv: &Conversation) -> bool {
    if v.tag != b'Q' || conv.status() == TxStatus::Idle {
        return false;
    }
    let Some(body) = v.body().filter(|b| b.len() <= 128) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let text = text
        .trim_end_matches('\0')
        .trim()
        .trim_end_matches([';', ' ', '\t', '\r', '\n']);
    if text.contains(';') {
        return false;
    }
    let first = text
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    matches!(first.as_str(), "COMMIT" | "ROLLBACK" | "END" | "ABORT")
}

/// The error a denied unit gets.
pub fn message(tenant: &str, qps: i32) -> String {
    format!("too many statements: tenant \"{tenant}\" exceeded its qps_limit of {qps} per second")
}

/// The name of a portal no client has: an Execute of it fails in Postgres
/// ("portal does not exist") and runs nothing. Random per process.
pub fn missing_portal() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("pg_tenant_router_denied_{:016x}", h.finish())
    })
}

/// What Postgres gets instead of a denied unit.
pub fn stand_in(unit: Unit, message: &str) -> BytesMut {
    match unit {
        Unit::Execute => protocol::execute(missing_portal()),
        // Tenant ids match [a-z0-9_-]: nothing to escape in the literal.
        _ => protocol::query(&format!(
            "DO $pg_tenant$BEGIN RAISE EXCEPTION USING ERRCODE = '53400', MESSAGE = '{}'; END$pg_tenant$",
            message.replace('\'', "''")
        )),
    }
}

/// The router's own answer to a denied Query while nothing is in flight.
pub fn local_reply(message: &str) -> BytesMut {
    let mut out = protocol::error_response(protocol::Severity::Error, "53400", message);
    out.extend_from_slice(&protocol::ready_for_query(b'I'));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(frame: &[u8]) -> FrameView<'_> {
        FrameView {
            tag: frame[0],
            len: frame.len(),
            bytes: frame,
        }
    }

    fn in_transaction() -> Conversation {
        let mut c = Conversation::default();
        c.client_sent(b'Q', false);
        c.on_server(view(&protocol::ready_for_query(b'T')));
        c
    }

    #[test]
    fn only_a_lone_transaction_end_is_free() {
        let c = in_transaction();
        for free in [
            "COMMIT",
            "commit;",
            " ROLLBACK ; ",
            "END",
            "abort\n",
            "ROLLBACK TO SAVEPOINT a",
        ] {
            assert!(
                is_transaction_end(view(&protocol::query(free)), &c),
                "{free}"
            );
        }
        for charged in [
            "COMMIT; SELECT 1",
            "COMMIT;SELECT pg_sleep(1);",
            "SELECT 1",
            "COMMITTED",
            "ENDLESS",
            "/* x */ COMMIT",
        ] {
            assert!(
                !is_transaction_end(view(&protocol::query(charged)), &c),
                "{charged}"
            );
        }
        let long = format!("COMMIT {}", " ".repeat(200));
        assert!(!is_transaction_end(view(&protocol::query(&long)), &c));
        // Outside a transaction nothing is free.
        let idle = Conversation::default();
        assert!(!is_transaction_end(view(&protocol::query("COMMIT")), &idle));
    }

    #[test]
    fn stand_ins_fail_in_postgres() {
        let q = stand_in(Unit::Query, &message("acme", 5));
        assert!(String::from_utf8_lossy(&q).contains("ERRCODE = '53400'"));
        let e = stand_in(Unit::Execute, "x");
        assert_eq!(e[0], b'E');
        assert!(String::from_utf8_lossy(&e).contains(missing_portal()));
        let r = local_reply("x");
        assert_eq!(r[0], b'E');
        assert!(r.ends_with(b"Z\0\0\0\x05I"));
    }
}
