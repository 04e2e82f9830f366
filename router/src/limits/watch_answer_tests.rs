//! The wait for PostgreSQL's answer to a unit canceled over max_query_ms
//! (`CANCEL_ANSWER_WAIT`), and the router's own answers.
use super::*;

/// Found attacking the relay's bounds: every denied Query at rest added
/// about 150 bytes to `local_reply`, so one read of 14-byte Queries grew
/// it without a bound; past `LOCAL_REPLY_ROOM` they go as stand-ins.
#[tokio::test]
async fn local_answers_wait_within_their_room_then_denied_queries_go_as_stand_ins() {
    let (mut w, mut c) = (watch(info(0, 0, 1)), Conversation::default());
    let q = frame(b'Q', b"SELECT 1\0");
    assert_eq!(client(&mut w, &mut c, &q), ClientVerdict::Pass);
    server(&mut w, &mut c, &frame(b'Z', b"I"));
    let mut answered = 0;
    while answered < 1000 && client(&mut w, &mut c, &q) == ClientVerdict::Answer {
        answered += 1;
        assert!(c.at_rest());
    }
    assert!(
        (10..1000).contains(&answered),
        "{answered} answered locally"
    );
    let room = w.local_reply.len();
    assert!(
        (LOCAL_REPLY_ROOM..LOCAL_REPLY_ROOM + 200).contains(&room),
        "{room}"
    );
    assert!(!c.at_rest(), "the stand-in is on its way to PostgreSQL");
    // Delivered (the relay took it): answered locally again at rest.
    server(&mut w, &mut c, &frame(b'Z', b"I"));
    w.local_reply.clear();
    assert_eq!(client(&mut w, &mut c, &q), ClientVerdict::Answer);
}

#[tokio::test(start_paused = true)]
async fn a_canceled_unit_left_unanswered_marks_the_server_unresponsive() {
    let (mut w, mut c) = (watch(info(100, 0, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"SELECT pg_sleep(60)\0"));
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    w.poll_deadline(&mut cx, &c);
    tokio::time::advance(Duration::from_millis(150)).await;
    w.poll_deadline(&mut cx, &c);
    assert_eq!(w.tripped.map(|t| t.0), Some(Trip::Duration));
    // The cancel is out; the answer is not overdue yet.
    tokio::time::advance(CANCEL_ANSWER_WAIT - Duration::from_millis(1)).await;
    w.poll_deadline(&mut cx, &c);
    assert!(!w.server_unresponsive());
    tokio::time::advance(Duration::from_millis(1)).await;
    w.poll_deadline(&mut cx, &c);
    assert!(
        w.server_unresponsive(),
        "no answer within CANCEL_ANSWER_WAIT"
    );
}

#[tokio::test(start_paused = true)]
async fn a_canceled_unit_answered_in_time_is_not_unresponsive() {
    let (mut w, mut c) = (watch(info(100, 0, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"SELECT pg_sleep(60)\0"));
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    w.poll_deadline(&mut cx, &c);
    tokio::time::advance(Duration::from_millis(150)).await;
    w.poll_deadline(&mut cx, &c);
    let canceled = protocol::error_response(Severity::Error, "57014", "canceling statement");
    assert_eq!(code_of(server(&mut w, &mut c, &canceled)), "57014");
    server(&mut w, &mut c, &frame(b'Z', b"I"));
    w.poll_deadline(&mut cx, &c);
    tokio::time::advance(CANCEL_ANSWER_WAIT * 2).await;
    w.poll_deadline(&mut cx, &c);
    assert!(!w.server_unresponsive(), "answered: the wait is off");
}

#[tokio::test(start_paused = true)]
async fn a_canceled_unit_whose_answer_moves_is_waited_for_again() {
    let (mut w, mut c) = (watch(info(100, 0, 0)), Conversation::default());
    client(&mut w, &mut c, &frame(b'Q', b"SELECT repeat('x', 9)\0"));
    let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
    w.poll_deadline(&mut cx, &c);
    tokio::time::advance(Duration::from_millis(150)).await;
    w.poll_deadline(&mut cx, &c);
    // A row four seconds in, then the rest of a row streamed through
    // (bytes relayed, no frame) four seconds later.
    tokio::time::advance(Duration::from_secs(4)).await;
    server(&mut w, &mut c, &frame(b'D', b"\0\x01\0\0\0\x01x"));
    tokio::time::advance(Duration::from_secs(4)).await;
    w.answer_moving(7);
    tokio::time::advance(CANCEL_ANSWER_WAIT - Duration::from_millis(1)).await;
    w.answer_moving(7);
    w.poll_deadline(&mut cx, &c);
    assert!(!w.server_unresponsive(), "the answer was moving");
    tokio::time::advance(Duration::from_millis(1)).await;
    w.poll_deadline(&mut cx, &c);
    assert!(
        w.server_unresponsive(),
        "then nothing for CANCEL_ANSWER_WAIT"
    );
}
