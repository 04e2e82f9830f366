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
        id: "acme".into(),
        enabled: true,
        isolation: "rls".into(),
        database_name: None,
        schema_name: None,
        max_connections: 0,
        qps_limit,
        burst_multiplier: 1.0,
        max_query_ms,
        max_result_bytes,
        auth_secret: None,
        pool: Default::default(),
        client_idle_timeout_ms: 0,
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
    let (mut w, mut c) = (watch(info(0, 20, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"COPY t TO STDOUT\0"));
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
    w.trip(Trip::Duration, c.front().unwrap().seq);
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
async fn every_execute_costs_a_token_and_a_denied_one_fails_in_postgres() {
    let (mut w, mut c) = (watch(info(0, 0, 3)), Conversation::default());
    let execute = frame(b'E', b"\0\0\0\0\0");
    assert_eq!(
        client(&mut w, &mut c, &frame(b'P', b"\0SELECT 1\0\0\0")),
        ClientVerdict::Pass
    );
    let mut verdicts = Vec::new();
    for _ in 0..5 {
        client(&mut w, &mut c, &frame(b'B', b"\0\0\0\0\0\0\0\0"));
        verdicts.push(client(&mut w, &mut c, &execute));
    }
    assert_eq!(
        client(&mut w, &mut c, &frame(b'S', b"")),
        ClientVerdict::Pass
    );
    let passed = verdicts
        .iter()
        .filter(|v| **v == ClientVerdict::Pass)
        .count();
    assert_eq!(passed, 3, "{verdicts:?}");
    match &verdicts[3] {
        ClientVerdict::StandIn(e) => {
            assert_eq!(e[0], b'E');
            assert!(String::from_utf8_lossy(e).contains(qps::missing_portal()));
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..3 {
        server(&mut w, &mut c, &frame(b'C', b"SELECT 1\0"));
    }
    // Postgres' "portal does not exist" becomes the limit's error.
    let missing = protocol::error_response(Severity::Error, "34000", "portal does not exist");
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
