//! The wait for PostgreSQL's answer to a unit canceled over max_query_ms
//! (`CANCEL_ANSWER_WAIT`).
use super::*;

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
