//! Statement tracking over byte fixtures.

use super::*;

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
    assert!(p.on_client(&parse("s1", "SELECT 1"), &mut first).is_none());
    assert!(
        p.on_client(&bind("s1"), &mut first).is_none(),
        "held: as is"
    );
    p.on_client(&sync(), &mut first);
    assert!(
        !p.on_server(b'1', &mut first),
        "the client's own ParseComplete"
    );
    p.on_server(b'2', &mut first);
    p.on_server(b'Z', &mut first);
    assert!(p.settled());

    // The next transaction runs on another backend.
    let mut second = BackendStatements::new();
    p.forget_backend();
    let sent = p.on_client(&bind("s1"), &mut second).expect("Parse added");
    assert_eq!(tags(&sent), vec![b'P', b'B']);
    assert_eq!(
        &sent[..parse("s1", "SELECT 1").len()],
        &parse("s1", "SELECT 1")[..]
    );
    p.on_client(&sync(), &mut second);
    assert!(
        p.on_server(b'1', &mut second),
        "the added ParseComplete is not passed on"
    );
    assert!(!p.on_server(b'2', &mut second));
    p.on_server(b'Z', &mut second);
    assert!(p.settled());
    assert_eq!(p.reprepared, 1);
    // Held now: the next Bind goes as is.
    assert!(p.on_client(&bind("s1"), &mut second).is_none());
}

#[test]
fn another_clients_statement_of_the_same_name_is_closed_first() {
    let mut backend = BackendStatements::new();
    let mut a = Prepared::default();
    a.on_client(&parse("s0", "SELECT 'a'"), &mut backend);
    a.on_client(&sync(), &mut backend);
    a.on_server(b'1', &mut backend);
    a.on_server(b'Z', &mut backend);

    // Client b uses the same name for another query on the same backend.
    let mut b = Prepared::default();
    let sent = b
        .on_client(&parse("s0", "SELECT 'b'"), &mut backend)
        .expect("Close added");
    assert_eq!(tags(&sent), vec![b'C', b'P']);
    b.on_client(&sync(), &mut backend);
    assert!(b.on_server(b'3', &mut backend), "the added CloseComplete");
    assert!(!b.on_server(b'1', &mut backend), "b's own ParseComplete");
    b.on_server(b'Z', &mut backend);

    // Back to a on that backend: its s0 is b's now, so it is replaced.
    let sent = a
        .on_client(&describe_statement("s0"), &mut backend)
        .expect("re-prepared");
    assert_eq!(tags(&sent), vec![b'C', b'P', b'D']);
}

#[test]
fn an_error_skips_the_rest_of_the_batch_and_forgets_what_it_would_have_prepared() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    p.on_client(&parse("bad", "SELEC 1"), &mut backend);
    p.on_client(&parse("good", "SELECT 1"), &mut backend);
    p.on_client(&sync(), &mut backend);
    // The first Parse fails: PostgreSQL answers nothing else up to Sync.
    assert!(!p.on_server(b'E', &mut backend));
    assert!(p.settled());
    assert!(!backend.contains_key(&b"bad"[..]));
    assert!(!backend.contains_key(&b"good"[..]));
    p.on_server(b'Z', &mut backend);
    // A later Bind of "good" prepares it first.
    let sent = p
        .on_client(&bind("good"), &mut backend)
        .expect("prepared first");
    assert_eq!(tags(&sent), vec![b'P', b'B']);
}

#[test]
fn a_closed_statement_is_forgotten_and_unknown_names_pass_as_they_are() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    p.on_client(&parse("s", "SELECT 1"), &mut backend);
    p.on_client(&close("s"), &mut backend);
    assert!(backend.is_empty());
    p.on_client(&sync(), &mut backend);
    assert!(!p.on_server(b'1', &mut backend));
    assert!(
        !p.on_server(b'3', &mut backend),
        "the client's own CloseComplete"
    );
    p.on_server(b'Z', &mut backend);
    // Never prepared (or closed): PostgreSQL answers with its own error.
    assert!(p.on_client(&bind("s"), &mut backend).is_none());
    assert!(p.on_client(&bind("nope"), &mut backend).is_none());
    // The unnamed statement is never tracked.
    assert!(p.on_client(&parse("", "SELECT 1"), &mut backend).is_none());
    assert!(p.on_client(&bind(""), &mut backend).is_none());
}

#[test]
fn truncated_frames_are_left_alone() {
    let mut backend = BackendStatements::new();
    let mut p = Prepared::default();
    assert!(p.on_client(b"P\0\0\0\x08ab", &mut backend).is_none());
    assert!(p.on_client(b"B", &mut backend).is_none());
    assert!(p.on_client(&frame(b'D', b"S"), &mut backend).is_none());
    assert!(backend.is_empty());
}
