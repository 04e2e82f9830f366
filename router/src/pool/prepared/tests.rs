//! Statement tracking over byte fixtures.

use super::*;

/// The old shape of the API, for byte fixtures: the bytes sent instead of
/// a whole client frame (None: as it is), and whether a server answer
/// (by tag: '1', '3', 'E' in a batch, 'Z' after a Sync) is dropped.
trait Bytewise {
    fn c(&mut self, frame: &[u8], have: &mut BackendStatements) -> Option<BytesMut>;
    fn s(&mut self, tag: u8, have: &mut BackendStatements) -> bool;
}

fn view(frame: &[u8]) -> FrameView<'_> {
    FrameView {
        tag: frame.first().copied().unwrap_or(0),
        len: frame.len(),
        bytes: frame,
    }
}

impl Bytewise for Prepared {
    fn c(&mut self, frame: &[u8], have: &mut BackendStatements) -> Option<BytesMut> {
        match self.on_client(view(frame), have) {
            ClientVerdict::AsIs => None,
            ClientVerdict::Prepend(mut first) => {
                first.extend_from_slice(frame);
                Some(first)
            }
            ClientVerdict::Instead(with) => Some(with),
        }
    }

    fn s(&mut self, tag: u8, have: &mut BackendStatements) -> bool {
        let answer = match tag {
            b'1' => Answer::ParseComplete,
            b'3' => Answer::CloseComplete,
            b'E' => Answer::ExtendedError,
            b'Z' => Answer::ReadySync,
            _ => Answer::Other,
        };
        self.on_server(&[tag, 0, 0, 0, 4], answer, have) == ServerVerdict::Drop
    }
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![tag];
    f.extend(((body.len() + 4) as u32).to_be_bytes());
    f.extend(body);
    f
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(name.as_bytes());
    b.push(0);
    b.extend(sql.as_bytes());
    b.push(0);
    b.extend(0u16.to_be_bytes());
    frame(b'P', &b)
}

fn bind(stmt: &str) -> Vec<u8> {
    let mut b = vec![0u8]; // unnamed portal
    b.extend(stmt.as_bytes());
    b.push(0);
    b.extend([0, 0, 0, 0, 0, 0]);
    frame(b'B', &b)
}

fn describe_statement(stmt: &str) -> Vec<u8> {
    let mut b = vec![b'S'];
    b.extend(stmt.as_bytes());
    b.push(0);
    frame(b'D', &b)
}

fn close(stmt: &str) -> Vec<u8> {
    let mut b = vec![b'S'];
    b.extend(stmt.as_bytes());
    b.push(0);
    frame(b'C', &b)
}

fn sync() -> Vec<u8> {
    frame(b'S', b"")
}

/// The tags of the frames in `bytes`.
fn tags(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 5 <= bytes.len() {
        out.push(bytes[i]);
        let len = u32::from_be_bytes([bytes[i + 1], bytes[i + 2], bytes[i + 3], bytes[i + 4]]);
        i += 1 + len as usize;
    }
    out
}

#[test]
fn a_statement_is_prepared_again_on_a_backend_that_lacks_it() {
    let mut p = Prepared::default();
    let mut first = BackendStatements::new();
    assert!(p.c(&parse("s1", "SELECT 1"), &mut first).is_none());
    assert!(p.c(&bind("s1"), &mut first).is_none(), "held: as is");
    p.c(&sync(), &mut first);
    assert!(!p.s(b'1', &mut first), "the client's own ParseComplete");
    p.s(b'2', &mut first);
    p.s(b'Z', &mut first);
    assert!(p.settled());

    // The next transaction runs on another backend.
    let mut second = BackendStatements::new();
    let sent = p.c(&bind("s1"), &mut second).expect("Parse added");
    assert_eq!(tags(&sent), vec![b'P', b'B']);
    assert_eq!(
        &sent[..parse("s1", "SELECT 1").len()],
        &parse("s1", "SELECT 1")[..]
    );
    p.c(&sync(), &mut second);
    assert!(
        p.s(b'1', &mut second),
        "the added ParseComplete is not passed on"
    );
    assert!(!p.s(b'2', &mut second));
    p.s(b'Z', &mut second);
    assert!(p.settled());
    assert_eq!(p.reprepared, 1);
    // Held now: the next Bind goes as is.
    assert!(p.c(&bind("s1"), &mut second).is_none());
}

#[test]
fn another_clients_statement_of_the_same_name_is_closed_first() {
    let mut backend = BackendStatements::new();
    let mut a = Prepared::default();
    a.c(&parse("s0", "SELECT 'a'"), &mut backend);
    a.c(&sync(), &mut backend);
    a.s(b'1', &mut backend);
    a.s(b'Z', &mut backend);

    // Client b uses the same name for another query on the same backend.
    let mut b = Prepared::default();
    let sent = b
        .c(&parse("s0", "SELECT 'b'"), &mut backend)
        .expect("Close added");
    assert_eq!(tags(&sent), vec![b'C', b'P']);
    b.c(&sync(), &mut backend);
    assert!(b.s(b'3', &mut backend), "the added CloseComplete");
    assert!(!b.s(b'1', &mut backend), "b's own ParseComplete");
    b.s(b'Z', &mut backend);

    // Back to a on that backend: its s0 is b's now, so it is replaced.
    let sent = a
        .c(&describe_statement("s0"), &mut backend)
        .expect("re-prepared");
    assert_eq!(tags(&sent), vec![b'C', b'P', b'D']);
}

#[test]
fn an_error_skips_the_rest_of_the_batch_and_forgets_what_it_would_have_prepared() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    p.c(&parse("bad", "SELEC 1"), &mut backend);
    p.c(&parse("good", "SELECT 1"), &mut backend);
    p.c(&sync(), &mut backend);
    // The first Parse fails: PostgreSQL answers nothing else up to Sync.
    assert!(!p.s(b'E', &mut backend));
    assert!(p.settled());
    // Whether PostgreSQL holds them is not known: the names are kept as
    // unknown, so they are closed before they are prepared again.
    assert!(backend.holds(b"bad") && backend.holds(b"good"));
    p.s(b'Z', &mut backend);
    // PostgreSQL never prepared "good": the client does not hold it (a
    // Bind closes whatever may be there, and PostgreSQL answers 26000).
    assert_eq!(p.held(), (0, 0));
    let sent = p.c(&bind("good"), &mut backend).expect("closed first");
    assert_eq!(tags(&sent), vec![b'C', b'B']);
    // A Parse of "bad" again closes first: never 42P05.
    let sent = p
        .c(&parse("bad", "SELECT 2"), &mut backend)
        .expect("closed first");
    assert_eq!(tags(&sent), vec![b'C', b'P']);
}

/// Answer everything `p` waits for in one batch (ParseComplete,
/// CloseComplete in order) and its ReadyForQuery.
fn answer_batch(p: &mut Prepared, backend: &mut BackendStatements, answers: &[u8]) -> Vec<bool> {
    let dropped = answers.iter().map(|t| p.s(*t, backend)).collect();
    p.s(b'Z', backend);
    dropped
}

#[test]
fn a_backend_keeps_its_budget_by_closing_the_least_recently_used() {
    let budget = Budget {
        per_backend: 3,
        ..Budget::default()
    };
    let mut backend = BackendStatements::new();
    let mut p = Prepared::new(budget);
    for n in ["a", "b", "c"] {
        assert!(p.c(&parse(n, "SELECT 1"), &mut backend).is_none());
        p.c(&sync(), &mut backend);
        answer_batch(&mut p, &mut backend, b"1");
    }
    // "a" used again: "b" is now the least recently used.
    assert!(p.c(&bind("a"), &mut backend).is_none());
    p.c(&sync(), &mut backend);
    answer_batch(&mut p, &mut backend, b"2");
    let sent = p
        .c(&parse("d", "SELECT 1"), &mut backend)
        .expect("one closed");
    assert_eq!(tags(&sent), vec![b'C', b'P']);
    assert_eq!(&sent[5..7], b"Sb", "the least recently used");
    p.c(&sync(), &mut backend);
    assert_eq!(
        answer_batch(&mut p, &mut backend, b"31"),
        vec![true, false],
        "the added CloseComplete is not passed on"
    );
    assert_eq!(backend.len(), 3);
    assert_eq!(p.evicted, 1);
    // The client still has "b": a Bind prepares it again (evicting "c",
    // not "d", used by this very batch... nor "a").
    let sent = p.c(&bind("b"), &mut backend).expect("again");
    assert_eq!(tags(&sent), vec![b'C', b'P', b'B']);
    assert_eq!(&sent[5..7], b"Sc");
    assert_eq!(backend.len(), 3);
}

#[test]
fn statements_used_by_the_batch_on_its_way_are_not_evicted() {
    let budget = Budget {
        per_backend: 2,
        ..Budget::default()
    };
    let mut backend = BackendStatements::new();
    let mut p = Prepared::new(budget);
    // One batch prepares three: the budget is exceeded until it ends.
    for n in ["a", "b", "c"] {
        let sent = p.c(&parse(n, "SELECT 1"), &mut backend);
        assert!(sent.is_none(), "nothing closed under a batch using it");
    }
    p.c(&sync(), &mut backend);
    answer_batch(&mut p, &mut backend, b"111");
    assert_eq!(backend.len(), 3);
    // The next batch brings it back within budget.
    let sent = p.c(&parse("d", "SELECT 1"), &mut backend).unwrap();
    assert_eq!(tags(&sent), vec![b'C', b'C', b'P']);
    assert_eq!(backend.len(), 2);
}

#[test]
fn a_client_over_its_budget_gets_53400_and_nothing_is_left_behind() {
    let budget = Budget {
        per_client: 2,
        client_bytes: 4096,
        ..Budget::default()
    };
    let mut backend = BackendStatements::new();
    let mut p = Prepared::new(budget);
    p.c(&parse("a", "SELECT 1"), &mut backend);
    p.c(&parse("b", "SELECT 1"), &mut backend);
    // Replacing one of its own is not a new one.
    p.c(&close("a"), &mut backend);
    p.c(&parse("a", "SELECT 2"), &mut backend);
    let sent = p
        .c(&parse("c", "SELECT 1"), &mut backend)
        .expect("a stand-in");
    assert_eq!(tags(&sent), vec![b'P']);
    assert_eq!(sent[5], 0, "the stand-in is unnamed");
    assert!(!backend.holds(b"c"));
    assert_eq!(p.held().0, 2);
    p.c(&sync(), &mut backend);
    for t in b"1131" {
        p.s(*t, &mut backend);
    }
    // PostgreSQL's error for the stand-in becomes the router's.
    let err = crate::protocol::error_response(
        crate::protocol::Severity::Error,
        "42703",
        &format!("column \"{}\" does not exist", refusal_marker()),
    );
    let ServerVerdict::Replace(mine) = p.on_server(&err, Answer::ExtendedError, &mut backend)
    else {
        panic!("rewritten");
    };
    let (code, msg) = crate::protocol::error_fields(&mine);
    assert_eq!(code, "53400");
    assert!(msg.contains("pool.max_client_prepared_statements"), "{msg}");
    p.s(b'Z', &mut backend);
    assert!(p.settled());

    // Too large by itself.
    let big = "x".repeat(5000);
    let sent = p.c(&parse("z", &big), &mut backend).unwrap();
    assert_eq!(sent[5], 0);
    let ServerVerdict::Replace(mine) = p.on_server(&err, Answer::ExtendedError, &mut backend)
    else {
        panic!("rewritten");
    };
    assert!(crate::protocol::error_fields(&mine).1.contains("too large"));
}

/// The marker of the stand-ins' errors.
fn refusal_marker() -> String {
    let p = refusal::parse_stand_in();
    let sql = String::from_utf8_lossy(&p[6..p.len() - 3]).into_owned();
    sql.trim_start_matches("SELECT ").to_owned()
}

/// The start of a streamed frame, as the relay shows it (PEEK bytes of a
/// frame of `len`).
fn streamed(frame: &[u8], len: usize) -> FrameView<'_> {
    FrameView {
        tag: frame[0],
        len,
        bytes: &frame[..frame.len().min(crate::codec::PEEK)],
    }
}

#[test]
fn a_streamed_parse_is_refused_when_named() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    let named = parse("big", "SELECT 1");
    let v = streamed(&named, 1 << 22);
    assert!(matches!(
        p.on_client(v, &mut backend),
        ClientVerdict::Instead(_)
    ));
    let unnamed = parse("", "SELECT 1");
    let v = streamed(&unnamed, 1 << 22);
    assert_eq!(p.on_client(v, &mut backend), ClientVerdict::AsIs);
}

#[test]
fn a_streamed_bind_is_tracked_by_its_first_bytes() {
    let mut backend = BackendStatements::new();
    let mut mine = Prepared::default();
    mine.c(&parse("s1", "SELECT 1"), &mut backend);
    mine.c(&sync(), &mut backend);
    mine.s(b'1', &mut backend);
    mine.s(b'Z', &mut backend);
    // Another client's s1 on this backend now.
    let mut other = Prepared::default();
    other.c(&parse("s1", "SELECT 'other'"), &mut backend);
    other.c(&sync(), &mut backend);
    other.s(b'3', &mut backend);
    other.s(b'1', &mut backend);
    other.s(b'Z', &mut backend);
    // A Bind of s1 with a large parameter: mine is prepared again first.
    let big_bind = bind("s1");
    let ClientVerdict::Prepend(first) = mine.on_client(streamed(&big_bind, 1 << 20), &mut backend)
    else {
        panic!("prepared first");
    };
    assert_eq!(tags(&first), vec![b'C', b'P']);
    // A streamed Bind whose statement name is past what is shown: refused.
    let mut long = vec![b'B', 0, 0x10, 0, 0];
    long.extend(std::iter::repeat_n(b'p', 400));
    assert!(matches!(
        mine.on_client(streamed(&long, 1 << 20), &mut backend),
        ClientVerdict::Instead(_)
    ));
}

#[test]
fn names_are_told_apart_by_their_first_63_bytes_as_postgresql_does() {
    let mut backend = BackendStatements::new();
    let stem = "q".repeat(63);
    let mut a = Prepared::default();
    a.c(&parse(&format!("{stem}_a"), "SELECT 'A'"), &mut backend);
    a.c(&sync(), &mut backend);
    a.s(b'1', &mut backend);
    a.s(b'Z', &mut backend);
    assert!(backend.holds(stem.as_bytes()));
    let mut b = Prepared::default();
    let sent = b
        .c(&parse(&format!("{stem}_b"), "SELECT 'B'"), &mut backend)
        .expect("closes a's first");
    assert_eq!(tags(&sent), vec![b'C', b'P']);
    b.c(&sync(), &mut backend);
    b.s(b'3', &mut backend);
    b.s(b'1', &mut backend);
    b.s(b'Z', &mut backend);
    // a's Bind prepares a's again: never b's statement.
    let sent = a.c(&bind(&format!("{stem}_a")), &mut backend).unwrap();
    assert_eq!(tags(&sent), vec![b'C', b'P', b'B']);
}

#[test]
fn a_query_ignored_after_an_error_does_not_put_batches_out_of_step() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    // Parse (fails), Query (ignored by PostgreSQL), Parse x, Sync: one
    // ReadyForQuery.
    p.c(&parse("", "SELECT 1/0"), &mut backend);
    p.c(&frame(b'Q', b"SELECT 1\0"), &mut backend);
    p.c(&parse("x", "SELECT 2"), &mut backend);
    p.c(&sync(), &mut backend);
    p.s(b'E', &mut backend);
    p.s(b'Z', &mut backend);
    assert!(p.settled());
    // The next batch is answered in step.
    p.c(&parse("y", "SELECT 3"), &mut backend);
    p.c(&sync(), &mut backend);
    assert!(!p.s(b'1', &mut backend), "its own ParseComplete");
    p.s(b'Z', &mut backend);
    assert!(p.settled());
}

#[test]
fn a_sync_ignored_during_copy_closes_its_batch() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    p.c(&sync(), &mut backend); // ignored by PostgreSQL (COPY IN)
    p.c(&parse("x", "SELECT 2"), &mut backend);
    p.c(&sync(), &mut backend);
    p.syncs_ignored(1, &mut backend);
    assert!(!p.s(b'1', &mut backend));
    p.s(b'Z', &mut backend);
    assert!(p.settled());
}

#[test]
fn statements_of_a_departed_client_are_closed_at_the_backends_next_use() {
    let mut backend = BackendStatements::new();
    let mut gone = Prepared::default();
    gone.c(&parse("s1", "SELECT 1"), &mut backend);
    gone.c(&parse("s2", "SELECT 2"), &mut backend);
    gone.c(&sync(), &mut backend);
    answer_batch(&mut gone, &mut backend, b"11");
    drop(gone);
    assert_eq!(backend.len(), 2);
    assert!(backend.memory() > 0);

    let mut next = Prepared::default();
    next.adopt(&backend);
    let sent = next.c(&sync(), &mut backend).expect("closes first");
    assert_eq!(tags(&sent), vec![b'C', b'C', b'S']);
    assert!(backend.is_empty());
    assert_eq!(
        answer_batch(&mut next, &mut backend, b"33"),
        vec![true, true]
    );
    assert!(next.settled());
}

#[test]
fn a_bind_of_another_clients_statement_fails_as_it_would_alone() {
    let mut backend = BackendStatements::new();
    let mut a = Prepared::default();
    a.c(&parse("mine", "SELECT 1"), &mut backend);
    a.c(&sync(), &mut backend);
    answer_batch(&mut a, &mut backend, b"1");
    let mut b = Prepared::default();
    let sent = b.c(&bind("mine"), &mut backend).expect("closed first");
    assert_eq!(tags(&sent), vec![b'C', b'B'], "PostgreSQL answers 26000");
    assert!(!backend.holds(b"mine"));
    // a still has it: its next Bind prepares it again.
    let sent = a.c(&bind("mine"), &mut backend).unwrap();
    assert_eq!(tags(&sent), vec![b'P', b'B']);
}

#[test]
fn a_closed_statement_is_forgotten_and_unknown_names_pass_as_they_are() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    p.c(&parse("s", "SELECT 1"), &mut backend);
    p.c(&close("s"), &mut backend);
    assert!(backend.is_empty());
    assert_eq!(p.held(), (0, 0));
    p.c(&sync(), &mut backend);
    assert!(!p.s(b'1', &mut backend));
    assert!(!p.s(b'3', &mut backend), "the client's own CloseComplete");
    p.s(b'Z', &mut backend);
    // Never prepared (or closed): PostgreSQL answers with its own error.
    assert!(p.c(&bind("s"), &mut backend).is_none());
    assert!(p.c(&bind("nope"), &mut backend).is_none());
    // The unnamed statement is never tracked.
    assert!(p.c(&parse("", "SELECT 1"), &mut backend).is_none());
    assert!(p.c(&bind(""), &mut backend).is_none());
}

#[test]
fn truncated_frames_are_left_alone() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    assert!(p.c(b"P\0\0\0\x08ab", &mut backend).is_none());
    assert!(p.c(b"B", &mut backend).is_none());
    assert!(p.c(&frame(b'D', b"S"), &mut backend).is_none());
    assert!(backend.is_empty());
}

#[test]
fn what_a_failed_batch_sent_after_its_error_is_settled_by_its_ready_for_query() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    p.c(&parse("a", "SELEC 1"), &mut backend);
    // The error comes back before the rest of the batch is read.
    p.s(b'E', &mut backend);
    p.c(&parse("b", "SELECT 1"), &mut backend);
    p.c(&sync(), &mut backend);
    assert!(!p.settled(), "b waits");
    p.s(b'Z', &mut backend);
    assert!(p.settled(), "skipped by PostgreSQL: never answered");
    assert_eq!(p.held(), (0, 0));
    assert!(backend.holds(b"b"), "kept as unknown");
}

#[test]
fn closes_without_end_while_postgresql_skips_overflow() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    p.c(&parse("", "SELEC 1"), &mut backend);
    p.s(b'E', &mut backend);
    for _ in 0..MAX_WAITING {
        p.c(&close("x"), &mut backend);
    }
    assert!(!p.overflowing());
    p.c(&close("x"), &mut backend);
    assert!(p.overflowing(), "the session must end");
    // A Sync would have settled them.
    p.c(&sync(), &mut backend);
    p.s(b'Z', &mut backend);
    assert!(!p.overflowing() && p.settled());
}
