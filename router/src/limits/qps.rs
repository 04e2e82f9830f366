//! `qps_limit`: one token of the tenant's bucket for every unit that runs,
//! pipelined or not, with or without Sync:
//!
//! - a simple Query, a FunctionCall: one each;
//! - a Bind (binding plans the statement: work Postgres does before any
//!   Execute) and the Execute of its portal right after it: one together,
//!   charged at the Bind; a Bind alone costs one as well;
//! - an Execute with no Bind of its portal just before it in the batch
//!   (the next rows of a suspended portal, a portal bound earlier): one.
//!
//! A denied unit never runs:
//!
//! - nothing in flight and no transaction: the router drops a Query and
//!   answers itself (ErrorResponse 53400, ReadyForQuery);
//! - otherwise Postgres gets a stand-in that fails in its place (so an open
//!   transaction cannot commit, and the client gets its answers in order):
//!   a Query or FunctionCall becomes a Query raising 53400; a Bind becomes
//!   a Bind of a prepared statement that does not exist, an Execute an
//!   Execute of a portal that does not exist; the watch rewrites their
//!   errors to 53400. After a denied Bind or Execute Postgres skips to the
//!   next Sync: whatever the client sent after it in that batch runs
//!   nothing and costs nothing (it goes as a stand-in too, never as sent).
//!
//! Ending a transaction is free: COMMIT, ROLLBACK, END or ABORT alone in a
//! simple Query, inside a transaction (`AND NO CHAIN` and
//! `ROLLBACK TO [SAVEPOINT] name` included). `... AND CHAIN` starts a new
//! transaction at once and is charged like any statement.

use crate::codec::FrameView;
use crate::conversation::{Conversation, TxStatus, Unit};
use crate::protocol;
use bytes::BytesMut;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// A simple Query that only ends the open transaction: one statement
/// (no `;` but trailing ones) made of the words of a transaction end and
/// nothing else (a comment, a quote or `AND CHAIN` makes it charged).
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
    // At most 5 words: ROLLBACK WORK TO SAVEPOINT name, COMMIT AND NO CHAIN.
    let mut words = [""; 5];
    let mut n = 0;
    for w in text.split_ascii_whitespace() {
        let Some(slot) = words.get_mut(n) else {
            return false;
        };
        *slot = w;
        n += 1;
    }
    let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
    let (first, rest) = match words[..n].split_first() {
        Some((f, rest))
            if ["COMMIT", "END", "ROLLBACK", "ABORT"]
                .iter()
                .any(|k| is(f, k)) =>
        {
            (*f, rest)
        }
        _ => return false,
    };
    let rest = match rest {
        [w, rest @ ..] if is(w, "WORK") || is(w, "TRANSACTION") => rest,
        rest => rest,
    };
    match rest {
        [] => true,
        [to, name] => is(first, "ROLLBACK") && is(to, "TO") && is_plain_identifier(name),
        [a, b, c] => {
            (is(a, "AND") && is(b, "NO") && is(c, "CHAIN"))
                || (is(first, "ROLLBACK")
                    && is(a, "TO")
                    && is(b, "SAVEPOINT")
                    && is_plain_identifier(c))
        }
        _ => false,
    }
}

/// A savepoint name as drivers write it: letters, digits, `_`, `$`.
fn is_plain_identifier(w: &str) -> bool {
    !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
}

/// What a unit costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// One token.
    Token,
    /// Nothing: a lone transaction end.
    TransactionEnd,
    /// Nothing: the Execute of the portal its Bind just paid for.
    Paid,
    /// Nothing, and it goes as a stand-in: a denied Bind or Execute before
    /// it in the batch makes Postgres skip it (up to the next Sync).
    Skipped,
}

/// Where the client's batch stands for charging.
#[derive(Debug, Default)]
pub struct Charges {
    /// The portal of the last unit, when it was a Bind that paid.
    portal: Vec<u8>,
    bound: bool,
    /// A Bind or Execute of this batch was denied.
    denied_in_batch: bool,
}

/// The first NUL-terminated string of a frame's body (a portal name),
/// when the frame shows all of it (a streamed frame may show only its
/// header).
fn first_cstr<'a>(v: &FrameView<'a>) -> Option<&'a [u8]> {
    let body = v.bytes.get(5..)?;
    body.iter().position(|b| *b == 0).map(|end| &body[..end])
}

impl Charges {
    /// The client sent a Sync: a new batch begins.
    pub fn sync(&mut self) {
        self.bound = false;
        self.denied_in_batch = false;
    }

    /// The cost of unit `unit` (the client frame `v`).
    pub fn charge(&mut self, v: FrameView<'_>, unit: Unit, conv: &Conversation) -> Charge {
        let bound = std::mem::take(&mut self.bound);
        if self.denied_in_batch {
            return Charge::Skipped;
        }
        if unit == Unit::Execute && bound && first_cstr(&v) == Some(&self.portal[..]) {
            return Charge::Paid;
        }
        if is_transaction_end(v, conv) {
            return Charge::TransactionEnd;
        }
        Charge::Token
    }

    /// A unit charged a token ran (`ran`) or was denied. A Bind whose
    /// portal name is not shown (a streamed Bind cut before it) pays for
    /// nothing after it.
    pub fn charged(&mut self, v: FrameView<'_>, unit: Unit, ran: bool) {
        match (unit, ran) {
            (Unit::Bind, true) => {
                if let Some(portal) = first_cstr(&v) {
                    self.portal.clear();
                    self.portal.extend_from_slice(portal);
                    self.bound = true;
                }
            }
            (Unit::Bind | Unit::Execute, false) => self.denied_in_batch = true,
            _ => {}
        }
    }
}

/// The error a denied unit gets.
pub fn message(tenant: &str, qps: i32) -> String {
    format!("too many statements: tenant \"{tenant}\" exceeded its qps_limit of {qps} per second")
}

/// The name of a portal and prepared statement no client has: an Execute
/// or Bind of it fails in Postgres ("portal does not exist", "prepared
/// statement does not exist") and runs nothing. Random per process; the
/// errors naming it are rewritten, so clients never see it.
pub fn missing_portal() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("pg_tenant_router_denied_{:016x}", h.finish())
    })
}

/// Whether an ErrorResponse is Postgres' answer to a stand-in (it names
/// the missing portal or statement), not some earlier message's error.
pub fn is_stand_in_error(frame: &[u8]) -> bool {
    frame.len() > 5 && protocol::error_fields(frame).1.contains(missing_portal())
}

/// A Bind of the unnamed portal to the missing statement, no parameters.
fn missing_statement_bind() -> BytesMut {
    protocol::bind_unnamed(missing_portal())
}

/// What Postgres gets instead of a denied unit.
pub fn stand_in(unit: Unit, message: &str) -> BytesMut {
    match unit {
        Unit::Execute => protocol::execute(missing_portal()),
        Unit::Bind => missing_statement_bind(),
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
    use bytes::BufMut;

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
            "COMMIT WORK",
            "end transaction",
            "COMMIT AND NO CHAIN",
            "rollback work and no chain;",
            "ROLLBACK TO SAVEPOINT a",
            "ROLLBACK TO pg_psql_temporary_savepoint",
            "ROLLBACK WORK TO SAVEPOINT _sp$1",
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
            // Each starts a new transaction at once: a statement like any.
            "COMMIT AND CHAIN",
            "commit and chain;",
            "END AND CHAIN",
            "ROLLBACK AND CHAIN",
            "ABORT AND CHAIN",
            "COMMIT WORK AND CHAIN",
            "END TRANSACTION AND CHAIN",
            "COMMIT\tAND\nCHAIN",
            // Comments and quotes are never read as whitespace.
            "COMMIT/**/AND CHAIN",
            "COMMIT AND/**/CHAIN",
            "COMMIT -- free?",
            "ROLLBACK TO \"x\" ",
            "ROLLBACK PREPARED 'x'",
            "ABORT TO a",
            "COMMIT TO SAVEPOINT a",
            "COMMIT AND NO CHAIN AND CHAIN",
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
        // A Bind of the unnamed portal to the missing statement, nothing
        // else: its length field counts it all.
        let b = stand_in(Unit::Bind, "x");
        let mut want = vec![0u8];
        want.extend_from_slice(missing_portal().as_bytes());
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b[0], b'B');
        assert_eq!(&b[5..], &want[..]);
        assert_eq!(
            u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize,
            b.len() - 1
        );
        let r = local_reply("x");
        assert_eq!(r[0], b'E');
        assert!(r.ends_with(b"Z\0\0\0\x05I"));
        // Only Postgres' answer to a stand-in names it.
        let missing = format!("prepared statement \"{}\" does not exist", missing_portal());
        let err = |m: &str| protocol::error_response(protocol::Severity::Error, "26000", m);
        assert!(is_stand_in_error(&err(&missing)));
        assert!(!is_stand_in_error(&err("syntax error at or near \"x\"")));
        assert!(
            !is_stand_in_error(&err(&missing)[..5]),
            "a streamed frame's header"
        );
    }

    fn bind(portal: &str) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(b'B');
        b.put_u32((4 + portal.len() + 1 + 2 + 6) as u32);
        b.put_slice(portal.as_bytes());
        b.put_u8(0);
        b.put_slice(b"s\0");
        b.put_slice(&[0; 6]);
        b
    }

    /// Charge a unit and let it run (or be denied) as the watch does.
    fn charge(ch: &mut Charges, c: &Conversation, f: &[u8], ran: bool) -> Charge {
        let unit = c.starts(f[0]).expect("a unit");
        let cost = ch.charge(view(f), unit, c);
        if cost == Charge::Token {
            ch.charged(view(f), unit, ran);
        }
        cost
    }

    #[test]
    fn a_bind_pays_for_the_execute_of_its_portal_right_after_it() {
        let (mut ch, c) = (Charges::default(), Conversation::default());
        let (b, e) = (bind(""), protocol::execute(""));
        assert_eq!(charge(&mut ch, &c, &b, true), Charge::Token);
        assert_eq!(charge(&mut ch, &c, &e, true), Charge::Paid);
        // The next Execute of it (more rows of a suspended portal) pays.
        assert_eq!(charge(&mut ch, &c, &e, true), Charge::Token);
        // A Bind alone pays; so does a Bind after a Bind.
        assert_eq!(charge(&mut ch, &c, &bind("p"), true), Charge::Token);
        assert_eq!(charge(&mut ch, &c, &bind("p"), true), Charge::Token);
        // Another portal's Execute is not paid for.
        assert_eq!(
            charge(&mut ch, &c, &protocol::execute("q"), true),
            Charge::Token
        );
        assert_eq!(
            charge(&mut ch, &c, &protocol::execute("p"), true),
            Charge::Token
        );
        // Nor one after a Sync, or after a Query in between.
        assert_eq!(charge(&mut ch, &c, &bind("p"), true), Charge::Token);
        ch.sync();
        assert_eq!(
            charge(&mut ch, &c, &protocol::execute("p"), true),
            Charge::Token
        );
        assert_eq!(charge(&mut ch, &c, &bind("p"), true), Charge::Token);
        let q = protocol::query("SELECT 1");
        assert_eq!(charge(&mut ch, &c, &q, true), Charge::Token);
        assert_eq!(
            charge(&mut ch, &c, &protocol::execute("p"), true),
            Charge::Token
        );
        // A streamed Bind (only its header shown) pays for nothing after it.
        let big = bind("p");
        let header = FrameView {
            tag: b'B',
            len: 100_000,
            bytes: &big[..5],
        };
        assert_eq!(ch.charge(header, Unit::Bind, &c), Charge::Token);
        ch.charged(header, Unit::Bind, true);
        assert_eq!(
            charge(&mut ch, &c, &protocol::execute("p"), true),
            Charge::Token
        );
        // A lone COMMIT in a transaction is free.
        let t = in_transaction();
        let commit = protocol::query("COMMIT");
        assert_eq!(charge(&mut ch, &t, &commit, true), Charge::TransactionEnd);
        let chain = protocol::query("COMMIT AND CHAIN");
        assert_eq!(charge(&mut ch, &t, &chain, true), Charge::Token);
    }

    #[test]
    fn after_a_denied_bind_or_execute_the_batch_is_skipped_until_sync() {
        let (mut ch, c) = (Charges::default(), Conversation::default());
        assert_eq!(charge(&mut ch, &c, &bind(""), false), Charge::Token);
        // Its Execute, and everything else up to Sync, runs nothing.
        for f in [
            protocol::execute(""),
            bind("p"),
            protocol::execute("p"),
            protocol::query("SELECT 1"),
        ] {
            assert_eq!(charge(&mut ch, &c, &f, true), Charge::Skipped);
        }
        ch.sync();
        assert_eq!(charge(&mut ch, &c, &bind(""), true), Charge::Token);
        assert_eq!(
            charge(&mut ch, &c, &protocol::execute(""), true),
            Charge::Paid
        );
        assert_eq!(
            charge(&mut ch, &c, &protocol::execute(""), false),
            Charge::Token
        );
        assert_eq!(
            charge(&mut ch, &c, &protocol::execute(""), true),
            Charge::Skipped
        );
        ch.sync();
        // A denied Query (simple protocol) makes Postgres skip nothing.
        let q = protocol::query("SELECT 1");
        assert_eq!(charge(&mut ch, &c, &q, false), Charge::Token);
        assert_eq!(charge(&mut ch, &c, &q, true), Charge::Token);
    }
}
