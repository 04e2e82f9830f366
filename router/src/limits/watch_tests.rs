use super::*;
use crate::catalog::TenantInfo;
use crate::limits::Limits;

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![tag];
    f.extend(((body.len() + 4) as u32).to_be_bytes());
    f.extend(body);
    f
}

fn view(f: &[u8]) -> FrameView<'_> {
    FrameView {
        tag: f[0],
        len: f.len(),
        bytes: f,
    }
}

/// A client frame through the watch and into the conversation, as the
/// relay does it.
fn client(w: &mut StatementWatch, c: &mut Conversation, f: &[u8]) -> ClientVerdict {
    let verdict = w.on_client(view(f), c);
    match &verdict {
        ClientVerdict::Pass => c.client_sent(f[0], false),
        ClientVerdict::StandIn(_) => c.client_sent(f[0], true),
        ClientVerdict::Answer => {}
    }
    w.follow(c);
    verdict
}

fn server(w: &mut StatementWatch, c: &mut Conversation, f: &[u8]) -> Edit {
    let ev = c.on_server(view(f));
    let edit = w.on_server(view(f), ev, c);
    w.follow(c);
    edit
}

fn code_of(edit: Edit) -> String {
    match edit {
        Edit::Replace(b) => protocol::error_fields(&b).0,
        other => panic!("expected a replacement, got {other:?}"),
    }
}

fn info(max_query_ms: i32, max_result_bytes: i64, qps_limit: i32) -> TenantInfo {
    TenantInfo {
        qps_limit,
        max_query_ms,
        max_result_bytes,
        ..TenantInfo::for_test("acme")
    }
}

fn watch(i: TenantInfo) -> StatementWatch {
    let c = Limits::default().counters("acme");
    c.publish(Arc::new(i));
    StatementWatch::new("acme", c, CancelRegistry::new(), (1, 2))
}

#[tokio::test]
async fn result_size_drops_rows_and_replaces_completion() {
    let (mut w, mut c) = (watch(info(0, 20, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"SELECT\0"));
    let row = frame(b'D', &[0; 11]); // 16 bytes
    assert_eq!(server(&mut w, &mut c, &row), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &row), Edit::Drop, "over 20 bytes");
    assert_eq!(server(&mut w, &mut c, &row), Edit::Drop);
    assert_eq!(
        code_of(server(&mut w, &mut c, &frame(b'C', b"SELECT 3\0"))),
        "54000"
    );
    assert_eq!(server(&mut w, &mut c, &frame(b'Z', b"I")), Edit::Keep);
    // The next unit starts afresh.
    client(&mut w, &mut c, &frame(b'Q', b"SELECT\0"));
    assert_eq!(server(&mut w, &mut c, &row), Edit::Keep);
}

#[tokio::test]
async fn copy_out_data_counts_as_result() {
    let (mut w, mut c) = (watch(info(0, 30, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"COPY t TO STDOUT\0"));
    // CopyOutResponse (8 bytes) counts too.
    assert_eq!(server(&mut w, &mut c, &frame(b'H', b"\0\0\0")), Edit::Keep);
    let data = frame(b'd', &[b'x'; 11]);
    assert_eq!(server(&mut w, &mut c, &data), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &data), Edit::Drop);
    assert_eq!(server(&mut w, &mut c, &frame(b'c', b"")), Edit::Drop);
    assert_eq!(
        code_of(server(&mut w, &mut c, &frame(b'C', b"COPY 2\0"))),
        "54000"
    );
}

#[tokio::test]
async fn only_cancellation_errors_are_rewritten() {
    let (mut w, mut c) = (watch(info(100, 0, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"SELECT\0"));
    w.trip(Trip::Duration, c.front().unwrap().seq, true);
    let other = protocol::error_response(Severity::Error, "22012", "division by zero");
    assert_eq!(server(&mut w, &mut c, &other), Edit::Keep);
    let canceled = protocol::error_response(Severity::Error, "57014", "canceling statement");
    assert_eq!(code_of(server(&mut w, &mut c, &canceled)), "57014");
    assert_eq!(
        server(&mut w, &mut c, &canceled),
        Edit::Keep,
        "reported once per unit"
    );
}

#[tokio::test]
async fn published_changes_reach_the_watch_at_the_next_unit() {
    let c = Limits::default().counters("acme");
    c.publish(Arc::new(info(0, 0, 0)));
    let mut w = StatementWatch::new("acme", c.clone(), CancelRegistry::new(), (1, 2));
    assert_eq!(w.qps, 0);
    c.publish(Arc::new(info(0, 0, 7)));
    client(
        &mut w,
        &mut Conversation::default(),
        &frame(b'Q', b"SELECT 1\0"),
    );
    assert_eq!(w.qps, 7);
}

#[tokio::test]
async fn denied_query_is_answered_locally_when_idle_and_stood_in_for_in_a_transaction() {
    let (mut w, mut c) = (watch(info(0, 0, 1)), Conversation::default());
    assert_eq!(
        client(&mut w, &mut c, &frame(b'Q', b"BEGIN\0")),
        ClientVerdict::Pass
    );
    server(&mut w, &mut c, &frame(b'Z', b"T"));
    // In a transaction: the Query becomes one that fails inside Postgres.
    match client(&mut w, &mut c, &frame(b'Q', b"SELECT 1\0")) {
        ClientVerdict::StandIn(q) => {
            assert!(String::from_utf8_lossy(&q).contains("ERRCODE = '53400'"))
        }
        other => panic!("{other:?}"),
    }
    server(&mut w, &mut c, &frame(b'Z', b"E"));
    // A COMMIT followed by more is charged; a lone COMMIT passes.
    assert!(matches!(
        client(&mut w, &mut c, &frame(b'Q', b"COMMIT; SELECT 1\0")),
        ClientVerdict::StandIn(_)
    ));
    assert_eq!(
        client(&mut w, &mut c, &frame(b'Q', b"COMMIT\0")),
        ClientVerdict::Pass
    );
    // Idle: dropped, answered by the router with 53400 and ReadyForQuery.
    let mut idle = Conversation::default();
    assert_eq!(
        client(&mut w, &mut idle, &frame(b'Q', b"SELECT 1\0")),
        ClientVerdict::Answer
    );
    assert_eq!(w.local_reply[0], b'E');
    assert!(w.local_reply.ends_with(b"Z\0\0\0\x05I"));
    assert!(idle.at_rest());
}

#[tokio::test]
async fn every_execute_of_a_bound_portal_costs_a_token_and_a_denied_one_fails_in_postgres() {
    let (mut w, mut c) = (watch(info(0, 0, 3)), Conversation::default());
    let execute = frame(b'E', b"p\0\0\0\0\x01");
    assert_eq!(
        client(&mut w, &mut c, &frame(b'P', b"\0SELECT 1\0\0\0")),
        ClientVerdict::Pass
    );
    // The Bind pays for the first Execute; each further one (the next
    // row of the suspended portal) pays its own.
    assert_eq!(client(&mut w, &mut c, &bind("p")), ClientVerdict::Pass);
    let verdicts: Vec<_> = (0..5).map(|_| client(&mut w, &mut c, &execute)).collect();
    assert_eq!(
        client(&mut w, &mut c, &frame(b'S', b"")),
        ClientVerdict::Pass
    );
    let passed = verdicts
        .iter()
        .filter(|v| **v == ClientVerdict::Pass)
        .count();
    assert_eq!(passed, 3, "{verdicts:?}");
    assert_eq!(
        w.counters.metrics.statements(),
        4,
        "Bind, 2 Executes, the denied one"
    );
    for v in &verdicts[3..] {
        match v {
            ClientVerdict::StandIn(e) => {
                assert_eq!(e[0], b'E');
                assert!(String::from_utf8_lossy(e).contains(qps::missing_portal()));
            }
            other => panic!("{other:?}"),
        }
    }
    server(&mut w, &mut c, &frame(b'1', b""));
    server(&mut w, &mut c, &frame(b'2', b""));
    for _ in 0..3 {
        server(&mut w, &mut c, &frame(b's', b""));
    }
    // Postgres' "portal does not exist" becomes the limit's error.
    let missing = format!("portal \"{}\" does not exist", qps::missing_portal());
    let missing = protocol::error_response(Severity::Error, "34000", &missing);
    assert_eq!(code_of(server(&mut w, &mut c, &missing)), "53400");
    server(&mut w, &mut c, &frame(b'Z', b"I"));
    assert!(c.at_rest());
}

#[tokio::test(start_paused = true)]
async fn an_unsynced_execute_is_timed_and_canceled() {
    let (mut w, mut c) = (watch(info(100, 0, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'E', b"\0\0\0\0\0"));
    client(&mut w, &mut c, &frame(b'H', b""));
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    w.poll_deadline(&mut cx, &c);
    assert!(w.tripped.is_none());
    tokio::time::advance(Duration::from_millis(150)).await;
    w.poll_deadline(&mut cx, &c);
    assert_eq!(w.tripped.map(|t| t.0), Some(Trip::Duration));
    let canceled = protocol::error_response(Severity::Error, "57014", "canceling statement");
    assert_eq!(code_of(server(&mut w, &mut c, &canceled)), "57014");
    assert!(w.tripped.is_none(), "the unit is over");
}

fn notice(len: usize) -> Vec<u8> {
    let mut body = b"SNOTICE\0C00000\0M".to_vec();
    body.resize(len.saturating_sub(5 + 2), b'x');
    body.extend_from_slice(b"\0\0");
    frame(b'N', &body)
}

fn bind(portal: &str) -> Vec<u8> {
    let mut body = portal.as_bytes().to_vec();
    body.extend_from_slice(b"\0\0\0\0\0\0\0\0");
    frame(b'B', &body)
}

fn execute(portal: &str) -> Vec<u8> {
    protocol::execute(portal).to_vec()
}

#[tokio::test]
async fn notices_count_and_are_not_relayed_past_the_limit() {
    let (mut w, mut c) = (watch(info(0, 100, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"DO $$ ... $$\0"));
    let n = notice(40);
    assert_eq!(n.len(), 40);
    assert_eq!(server(&mut w, &mut c, &n), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &n), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &n), Edit::Drop, "over 100 bytes");
    assert_eq!(w.tripped.map(|t| t.0), Some(Trip::ResultSize));
    assert!(w.cancel_in_flight.is_some(), "the DO block still runs");
    for _ in 0..100 {
        assert_eq!(server(&mut w, &mut c, &n), Edit::Drop);
    }
    // The cancel lands: the client gets the limit's error, once.
    let canceled = protocol::error_response(Severity::Error, "57014", "canceling statement");
    let e = server(&mut w, &mut c, &canceled);
    let (code, msg) = match &e {
        Edit::Replace(b) => protocol::error_fields(b),
        other => panic!("{other:?}"),
    };
    assert_eq!(code, "54000");
    assert!(msg.contains("max_result_bytes of 100 bytes"), "{msg}");
    assert_eq!(server(&mut w, &mut c, &frame(b'Z', b"I")), Edit::Keep);
    // The next unit starts afresh; notices outside any unit are not counted.
    assert_eq!(server(&mut w, &mut c, &notice(400)), Edit::Keep);
    client(&mut w, &mut c, &frame(b'Q', b"SELECT 1\0"));
    assert_eq!(server(&mut w, &mut c, &n), Edit::Keep);
}

#[tokio::test]
async fn a_simple_query_cut_after_its_first_statement_says_nothing_more_but_ready() {
    let (mut w, mut c) = (watch(info(0, 50, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"SELECT 1; SELECT 2\0"));
    assert_eq!(server(&mut w, &mut c, &frame(b'T', &[0; 20])), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &frame(b'D', &[0; 30])), Edit::Drop);
    assert_eq!(
        code_of(server(&mut w, &mut c, &frame(b'C', b"SELECT 1\0"))),
        "54000"
    );
    // The second statement ran before the cancel landed: none of it, nor
    // Postgres' own 57014, reaches the client.
    for f in [
        frame(b'T', &[0; 20]),
        frame(b'D', &[0; 3]),
        frame(b'C', b"SELECT 1\0"),
        protocol::error_response(Severity::Error, "57014", "canceling").to_vec(),
    ] {
        assert_eq!(server(&mut w, &mut c, &f), Edit::Drop, "{}", f[0] as char);
    }
    // ParameterStatus is kept, and ReadyForQuery as it is.
    let ps = frame(b'S', b"application_name\0x\0");
    assert_eq!(server(&mut w, &mut c, &ps), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &frame(b'Z', b"I")), Edit::Keep);
}

#[tokio::test]
async fn a_large_error_or_call_result_becomes_the_limit_error_without_a_cancel() {
    let (mut w, mut c) = (watch(info(0, 100, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"DO $$ RAISE $$\0"));
    let big = protocol::error_response(Severity::Error, "P0001", &"x".repeat(500));
    assert_eq!(code_of(server(&mut w, &mut c, &big)), "54000");
    assert!(w.cancel_in_flight.is_none(), "nothing runs after an error");
    assert_eq!(server(&mut w, &mut c, &frame(b'Z', b"I")), Edit::Keep);
    // FunctionCallResponse: the call's answer.
    client(&mut w, &mut c, &frame(b'F', &[0; 10]));
    assert_eq!(
        code_of(server(&mut w, &mut c, &frame(b'V', &[b'x'; 200]))),
        "54000"
    );
    assert!(w.cancel_in_flight.is_none());
    assert_eq!(server(&mut w, &mut c, &frame(b'Z', b"I")), Edit::Keep);
    // A small result passes.
    client(&mut w, &mut c, &frame(b'F', &[0; 10]));
    assert_eq!(
        server(&mut w, &mut c, &frame(b'V', &[b'x'; 20])),
        Edit::Keep
    );
    assert_eq!(server(&mut w, &mut c, &frame(b'Z', b"I")), Edit::Keep);
}

#[tokio::test]
async fn notices_after_completion_get_the_error_before_ready_for_query() {
    // Notices at commit (a Sync): no completion left to replace.
    let (mut w, mut c) = (watch(info(0, 100, 0)), Conversation::default());
    for f in [bind(""), execute(""), frame(b'S', b"")] {
        client(&mut w, &mut c, &f);
    }
    assert_eq!(server(&mut w, &mut c, &frame(b'2', b"")), Edit::Keep);
    assert_eq!(
        server(&mut w, &mut c, &frame(b'C', b"INSERT 0 1\0")),
        Edit::Keep
    );
    assert_eq!(server(&mut w, &mut c, &notice(80)), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &notice(80)), Edit::Drop);
    match server(&mut w, &mut c, &frame(b'Z', b"I")) {
        Edit::Replace(b) => {
            assert_eq!(protocol::error_fields(&b).0, "54000");
            assert!(b.ends_with(b"Z\0\0\0\x05I"), "then ReadyForQuery");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.at_rest());
}

#[tokio::test]
async fn notices_while_binding_count_toward_the_bind() {
    let (mut w, mut c) = (watch(info(0, 100, 0)), Conversation::default());
    for f in [
        frame(b'P', b"\0SELECT f()\0\0\0"),
        bind(""),
        frame(b'H', b""),
    ] {
        client(&mut w, &mut c, &f);
    }
    assert_eq!(server(&mut w, &mut c, &frame(b'1', b"")), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &notice(90)), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &notice(90)), Edit::Drop);
    assert!(w.cancel_in_flight.is_some(), "planning still runs");
    // Planning finished before the cancel landed: BindComplete becomes the
    // error (the client then syncs, as after any error).
    assert_eq!(code_of(server(&mut w, &mut c, &frame(b'2', b""))), "54000");
    assert!(w.tripped.is_none(), "the Bind is answered");
}

#[tokio::test(start_paused = true)]
async fn a_bind_is_timed_and_canceled() {
    let (mut w, mut c) = (watch(info(100, 0, 0)), Conversation::default());
    for f in [
        frame(b'P', b"\0SELECT md5(...)\0\0\0"),
        bind(""),
        frame(b'H', b""),
    ] {
        client(&mut w, &mut c, &f);
    }
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    w.poll_deadline(&mut cx, &c);
    assert!(w.tripped.is_none());
    tokio::time::advance(Duration::from_millis(150)).await;
    w.poll_deadline(&mut cx, &c);
    assert_eq!(w.tripped.map(|t| t.0), Some(Trip::Duration));
    let canceled = protocol::error_response(Severity::Error, "57014", "canceling statement");
    match server(&mut w, &mut c, &canceled) {
        Edit::Replace(b) => {
            let (code, msg) = protocol::error_fields(&b);
            assert_eq!(code, "57014");
            assert!(msg.contains("max_query_ms of 100 ms"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(w.tripped.is_none());
}

#[tokio::test]
async fn a_bind_and_its_execute_cost_one_token() {
    let (mut w, mut c) = (watch(info(0, 0, 3)), Conversation::default());
    client(&mut w, &mut c, &frame(b'P', b"\0SELECT 1\0\0\0"));
    for _ in 0..3 {
        assert_eq!(client(&mut w, &mut c, &bind("")), ClientVerdict::Pass);
        let describe = frame(b'D', b"P\0");
        assert_eq!(client(&mut w, &mut c, &describe), ClientVerdict::Pass);
        assert_eq!(client(&mut w, &mut c, &execute("")), ClientVerdict::Pass);
        client(&mut w, &mut c, &frame(b'S', b""));
    }
    assert_eq!(w.counters.metrics.statements(), 3);
    // The bucket is dry: the Bind is denied, its Execute and the rest of
    // the batch go as stand-ins, and only the Bind is counted.
    let stand_in_bind = qps::stand_in(Unit::Bind, "");
    assert_eq!(
        client(&mut w, &mut c, &bind("")),
        ClientVerdict::StandIn(stand_in_bind.clone())
    );
    let stand_in_execute = qps::stand_in(Unit::Execute, "");
    assert_eq!(
        client(&mut w, &mut c, &execute("")),
        ClientVerdict::StandIn(stand_in_execute.clone())
    );
    assert_eq!(
        client(&mut w, &mut c, &bind("")),
        ClientVerdict::StandIn(stand_in_bind)
    );
    client(&mut w, &mut c, &frame(b'S', b""));
    assert_eq!(w.counters.metrics.statements(), 4);
    // Answers, in order: three batches, then the denied one.
    for _ in 0..3 {
        for f in [
            frame(b'2', b""),
            frame(b'C', b"SELECT 1\0"),
            frame(b'Z', b"I"),
        ] {
            assert_eq!(server(&mut w, &mut c, &f), Edit::Keep);
        }
    }
    let missing = format!(
        "prepared statement \"{}\" does not exist",
        qps::missing_portal()
    );
    let e = protocol::error_response(Severity::Error, "26000", &missing);
    assert_eq!(code_of(server(&mut w, &mut c, &e)), "53400");
    assert_eq!(
        c.front().map(|p| p.unit),
        Some(Unit::Sync),
        "the rest was skipped"
    );
    assert_eq!(server(&mut w, &mut c, &frame(b'Z', b"I")), Edit::Keep);
    assert!(c.at_rest());
}

#[tokio::test]
async fn an_earlier_error_is_not_taken_for_the_stand_ins() {
    let (mut w, mut c) = (watch(info(0, 0, 1)), Conversation::default());
    assert!(w.counters.take_token(1, 1.0)); // empty the bucket
    client(&mut w, &mut c, &frame(b'P', b"\0SELEC 1\0\0\0"));
    assert!(matches!(
        client(&mut w, &mut c, &bind("")),
        ClientVerdict::StandIn(_)
    ));
    client(&mut w, &mut c, &frame(b'S', b""));
    // The Parse fails first: its own error reaches the client.
    let syntax = protocol::error_response(Severity::Error, "42601", "syntax error");
    assert_eq!(server(&mut w, &mut c, &syntax), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &frame(b'Z', b"I")), Edit::Keep);
    assert!(c.at_rest());
}

#[tokio::test]
async fn a_denied_query_in_a_failed_transaction_reports_the_limit() {
    let (mut w, mut c) = (watch(info(0, 0, 1)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"BEGIN\0"));
    server(&mut w, &mut c, &frame(b'Z', b"E"));
    // Postgres refuses the stand-in itself (25P02) before it can raise
    // 53400: the client still learns it was the limit.
    assert!(matches!(
        client(&mut w, &mut c, &frame(b'Q', b"COMMIT AND CHAIN\0")),
        ClientVerdict::StandIn(_)
    ));
    let aborted =
        protocol::error_response(Severity::Error, "25P02", "current transaction is aborted");
    assert_eq!(code_of(server(&mut w, &mut c, &aborted)), "53400");
    server(&mut w, &mut c, &frame(b'Z', b"E"));
    // The stand-in's own 53400 is kept as it is.
    client(&mut w, &mut c, &frame(b'Q', b"SELECT 1\0"));
    let own = protocol::error_response(Severity::Error, "53400", "too many statements");
    assert_eq!(server(&mut w, &mut c, &own), Edit::Keep);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_that_lands_after_a_held_back_answer_is_still_the_limit() {
    // Parse/Bind/Execute/Flush: Postgres sends ParseComplete and
    // BindComplete only with the Execute's answer, so the Bind looks like
    // it runs until the Execute is canceled.
    let (mut w, mut c) = (watch(info(500, 0, 0)), Conversation::default());
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    let parse = frame(b'P', b"\0SELECT pg_sleep(3)\0\0\0");
    for f in [parse, bind(""), execute(""), frame(b'H', b"")] {
        client(&mut w, &mut c, &f);
    }
    w.poll_deadline(&mut cx, &c);
    tokio::time::advance(Duration::from_millis(600)).await;
    w.poll_deadline(&mut cx, &c);
    assert_eq!(c.front().map(|p| p.unit), Some(Unit::Bind));
    assert_eq!(w.tripped.map(|t| t.0), Some(Trip::Duration));
    assert_eq!(server(&mut w, &mut c, &frame(b'1', b"")), Edit::Keep);
    assert_eq!(server(&mut w, &mut c, &frame(b'2', b"")), Edit::Keep);
    let canceled = protocol::error_response(Severity::Error, "57014", "canceling statement");
    match server(&mut w, &mut c, &canceled) {
        Edit::Replace(b) => {
            let (code, msg) = protocol::error_fields(&b);
            assert_eq!(code, "57014");
            assert!(msg.contains("max_query_ms of 500 ms"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(w.tripped.is_none());
    // Pipelined Executes: the first one's completion was held back too.
    for f in [
        frame(b'S', b""),
        execute("a"),
        execute("b"),
        frame(b'H', b""),
    ] {
        client(&mut w, &mut c, &f);
    }
    server(&mut w, &mut c, &frame(b'Z', b"I"));
    w.poll_deadline(&mut cx, &c);
    tokio::time::advance(Duration::from_millis(600)).await;
    w.poll_deadline(&mut cx, &c);
    assert_eq!(
        server(&mut w, &mut c, &frame(b'C', b"SELECT 1\0")),
        Edit::Keep
    );
    assert_eq!(code_of(server(&mut w, &mut c, &canceled)), "57014");
    assert!(w.tripped.is_none());
}

/// The wait for the answer to a unit canceled over max_query_ms.
#[path = "watch_answer_tests.rs"]
mod answer;
