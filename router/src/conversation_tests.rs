//! The conversation's tests: where a connection stands after sequences
//! of frames.

use super::*;

fn server(c: &mut Conversation, tag: u8, body: &[u8]) -> ServerEvent {
    let mut f = vec![tag];
    f.extend(((body.len() + 4) as u32).to_be_bytes());
    f.extend(body);
    c.on_server(FrameView {
        tag,
        len: f.len(),
        bytes: &f,
    })
}

fn unit(e: ServerEvent) -> Option<Unit> {
    e.unit().map(|p| p.unit)
}

#[test]
fn simple_query_and_transaction_status() {
    let mut c = Conversation::default();
    assert!(c.at_rest());
    c.client_sent(b'Q', false);
    assert!(!c.at_rest());
    assert_eq!(c.running().map(|r| r.0.unit), Some(Unit::Query));
    assert_eq!(unit(server(&mut c, b'C', b"BEGIN\0")), None);
    assert_eq!(unit(server(&mut c, b'Z', b"T")), Some(Unit::Query));
    assert_eq!(c.status(), TxStatus::InTransaction);
    assert!(c.quiet() && !c.at_rest(), "inside a transaction");
    c.client_sent(b'Q', false);
    server(&mut c, b'Z', b"I");
    assert!(c.at_rest());
}

#[test]
fn pipelined_executes_complete_one_by_one() {
    let mut c = Conversation::default();
    for t in [b'P', b'B', b'E', b'B', b'E', b'S'] {
        c.client_sent(t, false);
    }
    assert!(!c.at_rest());
    assert_eq!(c.running().map(|r| r.0.unit), Some(Unit::Bind));
    server(&mut c, b'1', b"");
    assert_eq!(unit(server(&mut c, b'2', b"")), Some(Unit::Bind));
    let first = c.running().unwrap().0.seq;
    assert_eq!(
        unit(server(&mut c, b'C', b"SELECT 1\0")),
        Some(Unit::Execute)
    );
    assert_eq!(
        c.running().map(|r| r.0.unit),
        Some(Unit::Bind),
        "the second Bind runs now"
    );
    assert_eq!(unit(server(&mut c, b'2', b"")), Some(Unit::Bind));
    assert_ne!(c.running().unwrap().0.seq, first, "the second one runs now");
    assert_eq!(
        unit(server(&mut c, b'C', b"SELECT 1\0")),
        Some(Unit::Execute)
    );
    assert!(c.running().is_none(), "only the Sync is left");
    assert_eq!(unit(server(&mut c, b'Z', b"I")), Some(Unit::Sync));
    assert!(c.at_rest());
}

#[test]
fn an_error_discards_the_executes_up_to_sync() {
    let mut c = Conversation::default();
    for t in [b'B', b'E', b'B', b'E', b'S', b'B', b'E'] {
        c.client_sent(t, false);
    }
    assert_eq!(unit(server(&mut c, b'E', b"")), Some(Unit::Bind));
    assert_eq!(c.front().map(|p| p.unit), Some(Unit::Sync));
    server(&mut c, b'Z', b"I");
    assert_eq!(c.front().map(|p| p.unit), Some(Unit::Bind));
    assert_eq!(unit(server(&mut c, b'2', b"")), Some(Unit::Bind));
    assert_eq!(c.front().map(|p| p.unit), Some(Unit::Execute));
}

#[test]
fn a_bind_is_a_unit_answered_by_bind_complete() {
    let mut c = Conversation::default();
    assert_eq!(c.starts(b'B'), Some(Unit::Bind));
    for t in [b'P', b'B', b'H'] {
        c.client_sent(t, false);
    }
    // Planning runs now: the Bind is timed and owns what the server
    // sends (a notice raised while constants are folded).
    assert_eq!(c.running().map(|r| r.0.unit), Some(Unit::Bind));
    server(&mut c, b'1', b"");
    assert_eq!(c.front().map(|p| p.unit), Some(Unit::Bind));
    assert_eq!(server(&mut c, b'N', b"").unit(), None);
    assert_eq!(unit(server(&mut c, b'2', b"")), Some(Unit::Bind));
    assert!(c.running().is_none());
    assert!(!c.at_rest(), "the batch is open until Sync");
    // Bind, Sync: the Sync is answered after the Bind.
    c.client_sent(b'S', false);
    c.client_sent(b'B', false);
    c.client_sent(b'S', false);
    assert_eq!(unit(server(&mut c, b'Z', b"I")), Some(Unit::Sync));
    assert_eq!(unit(server(&mut c, b'E', b"")), Some(Unit::Bind));
    assert_eq!(unit(server(&mut c, b'Z', b"I")), Some(Unit::Sync));
    assert!(c.at_rest());
}

#[test]
fn an_extended_error_discards_queries_and_calls_up_to_sync() {
    let mut c = Conversation::default();
    for t in [b'B', b'E', b'Q', b'F', b'S'] {
        c.client_sent(t, false);
    }
    assert_eq!(unit(server(&mut c, b'E', b"")), Some(Unit::Bind));
    assert_eq!(c.front().map(|p| p.unit), Some(Unit::Sync));
    assert_eq!(unit(server(&mut c, b'Z', b"I")), Some(Unit::Sync));
    assert!(c.at_rest());
    // While Postgres skips, nothing sent starts a unit, Bind included.
    for t in [b'P', b'B', b'H'] {
        c.client_sent(t, false);
    }
    server(&mut c, b'E', b"");
    assert_eq!(c.starts(b'B'), None);
    c.client_sent(b'B', false);
    assert!(c.front().is_none());
    c.client_sent(b'S', false);
    server(&mut c, b'Z', b"I");
    assert!(c.at_rest());
}

#[test]
fn without_sync_postgres_skips_everything_after_an_error() {
    let mut c = Conversation::default();
    for t in [b'P', b'B', b'E', b'H'] {
        c.client_sent(t, false);
    }
    server(&mut c, b'E', b"");
    assert!(c.front().is_none());
    assert_eq!(c.starts(b'E'), None, "skipped by Postgres: runs nothing");
    assert_eq!(c.starts(b'Q'), None);
    c.client_sent(b'E', false);
    assert!(c.front().is_none());
    c.client_sent(b'S', false);
    assert_eq!(c.starts(b'E'), Some(Unit::Execute));
    server(&mut c, b'Z', b"I");
    assert!(c.at_rest());
}

#[test]
fn copy_sub_states() {
    let mut c = Conversation::default();
    c.client_sent(b'Q', false);
    server(&mut c, b'H', b"");
    assert_eq!(c.copy(), CopyState::Out);
    assert_eq!(server(&mut c, b'd', b"row"), ServerEvent::CopyData);
    assert_eq!(server(&mut c, b'c', b""), ServerEvent::CopyDone);
    server(&mut c, b'C', b"COPY 1\0");
    assert_eq!(c.copy(), CopyState::None);
    server(&mut c, b'Z', b"I");
    c.client_sent(b'Q', false);
    server(&mut c, b'G', b"");
    assert_eq!(c.copy(), CopyState::In);
    assert!(!c.at_rest());
    c.client_sent(b'd', false);
    c.client_sent(b'c', false);
    server(&mut c, b'C', b"COPY 1\0");
    server(&mut c, b'Z', b"I");
    assert!(c.at_rest());
}

#[test]
fn a_flush_after_sync_leaves_the_conversation_at_rest() {
    let mut c = Conversation::default();
    for t in [b'B', b'E', b'S', b'H'] {
        c.client_sent(t, false);
    }
    server(&mut c, b'2', b"");
    server(&mut c, b'C', b"SELECT 1\0");
    server(&mut c, b'Z', b"I");
    assert!(c.at_rest());
}

#[test]
fn an_invalid_message_type_is_never_at_rest_again() {
    let mut c = Conversation::default();
    c.client_sent(b'p', false);
    assert!(!c.at_rest(), "PostgreSQL will end this session");
    c.client_sent(b'Q', false);
    server(&mut c, b'Z', b"I");
    assert!(!c.at_rest());
}

#[test]
fn a_sync_sent_before_copy_data_is_ignored_once_the_copy_read_its_input() {
    // tokio-postgres' copy_in: Bind, Execute, Sync, CopyData, CopyDone, Sync.
    let mut c = Conversation::default();
    for t in [b'B', b'E', b'S'] {
        c.client_sent(t, false);
    }
    assert!(!c.sync_during_copy());
    c.client_sent(b'd', false);
    assert!(c.sync_during_copy(), "after CopyData: not sent on");
    c.client_sent(b'c', false);
    assert!(!c.sync_during_copy());
    c.client_sent(b'S', false);
    server(&mut c, b'2', b"");
    server(&mut c, b'G', b"\0\0\0");
    assert_eq!(c.take_ignored_syncs(), 0, "not yet known");
    server(&mut c, b'C', b"COPY 1\0");
    assert_eq!(c.take_ignored_syncs(), 1, "the COPY read it");
    assert_eq!(c.take_ignored_syncs(), 0);
    assert_eq!(unit(server(&mut c, b'Z', b"I")), Some(Unit::Sync));
    assert!(c.at_rest(), "one ReadyForQuery ends it");
    assert!(!c.lost());
    // In COPY IN mode (simple Query COPY), a Sync is not sent on...
    c.client_sent(b'Q', false);
    server(&mut c, b'G', b"\0\0\0");
    assert!(c.sync_during_copy());
    // ...until the client's CopyDone, even before PostgreSQL answers it.
    c.client_sent(b'c', false);
    assert!(!c.sync_during_copy());
    // A COPY the client ended before CopyInResponse came back.
    let mut c = Conversation::default();
    for t in [b'B', b'E', b'd', b'c', b'S'] {
        c.client_sent(t, false);
    }
    server(&mut c, b'2', b"");
    server(&mut c, b'G', b"\0\0\0");
    assert!(!c.sync_during_copy());
}

#[test]
fn a_copy_that_fails_with_a_sync_sent_before_its_data_loses_the_conversation() {
    // COPY ... (FREEZE) fails right after CopyInResponse, before it
    // reads anything: PostgreSQL then answers the Sync; had it failed
    // on data, it would have ignored it.
    let mut c = Conversation::default();
    for t in [b'B', b'E', b'S', b'Q'] {
        c.client_sent(t, false);
    }
    server(&mut c, b'2', b"");
    server(&mut c, b'G', b"\0\0\0");
    server(&mut c, b'E', b"");
    assert!(c.lost());
    server(&mut c, b'Z', b"I");
    assert!(!c.at_rest(), "never at rest again");
    assert_eq!(c.take_ignored_syncs(), 0);
}

#[test]
fn a_sync_after_failing_copy_data_is_not_taken_as_ignored() {
    // Bind, Execute, CopyData (bad), CopyDone, Query, Sync: the Query
    // after the failed COPY is skipped by PostgreSQL up to the Sync.
    let mut c = Conversation::default();
    for t in [b'B', b'E', b'd', b'c', b'S'] {
        c.client_sent(t, false);
    }
    server(&mut c, b'2', b"");
    server(&mut c, b'G', b"\0\0\0");
    assert_eq!(c.take_ignored_syncs(), 0, "data came first: answered");
    server(&mut c, b'E', b"");
    assert_eq!(unit(server(&mut c, b'Z', b"I")), Some(Unit::Sync));
    assert!(c.at_rest());
}

#[test]
fn function_call_is_a_unit() {
    let mut c = Conversation::default();
    assert_eq!(c.starts(b'F'), Some(Unit::Call));
    c.client_sent(b'F', false);
    assert_eq!(c.running().map(|r| r.0.unit), Some(Unit::Call));
    server(&mut c, b'V', b"");
    assert_eq!(unit(server(&mut c, b'Z', b"I")), Some(Unit::Call));
    assert!(c.at_rest());
}
