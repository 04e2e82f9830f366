//! The relay's own tests: what it does with frames the handshake left.

use super::*;

fn relay(client: &[u8], server: &[u8]) -> Relay {
    Relay::new(
        BytesMut::from(client),
        BytesMut::from(server),
        None,
        Ownership::Own,
    )
    .unwrap()
}

#[test]
fn idle_means_at_rest_and_nothing_buffered() {
    let r = relay(b"", b"");
    assert!(r.idle(None), "fresh session");
    // A partial frame from the client is not idle.
    let r = relay(b"Q\0\0", b"");
    assert!(!r.idle(None));
    // A query the handshake already buffered counts as in flight.
    let r = relay(b"Q\0\0\0\x0dSELECT 1\0", b"");
    assert!(!r.idle(None));
    assert!(!r.conv.at_rest());
}

#[tokio::test]
async fn frames_buffered_during_the_handshake_are_watched() {
    use crate::catalog::TenantInfo;
    use crate::limits::Limits;
    let c = Limits::default().counters("acme");
    c.publish(std::sync::Arc::new(TenantInfo {
        qps_limit: 1,
        ..TenantInfo::for_test("acme")
    }));
    assert!(c.take_token(1, 1.0)); // empty the bucket
    let mut w = StatementWatch::new(
        "acme",
        c.clone(),
        crate::cancel::CancelRegistry::new(),
        (1, 2),
    );
    // A client that sent its first query before ReadyForQuery.
    let early = b"Q\0\0\0\x0dSELECT 1\0";
    let relay = Relay::new(
        BytesMut::from(&early[..]),
        BytesMut::new(),
        Some(&mut w),
        Ownership::Own,
    )
    .unwrap();
    assert_eq!(c.metrics.statements(), 1);
    assert!(relay.up.pending().is_empty(), "refused, not sent");
    assert_eq!(
        relay.down.pending()[0],
        b'E',
        "53400 answered by the router"
    );
    assert!(relay.conv.at_rest());
}

/// Found attacking the relay's backpressure: a client owed the high-water
/// mark is not read, so one in the middle of a large (streamed) message
/// then sends nothing more because the relay stopped taking it; it was
/// timed as a client that stopped mid-message (closed with 57P05 after
/// its tenant's client_idle_timeout_ms) while waiting on the router.
#[test]
fn a_client_held_back_by_what_it_is_owed_is_not_idle_mid_message() {
    // The first 100 KiB of a 1 MiB Query: streamed on as it arrives.
    let mut q = vec![b'Q'];
    q.extend(((1u32 << 20) + 4).to_be_bytes());
    q.extend(vec![b' '; 100 * 1024]);
    // 300 KiB of notices owed to the client.
    let mut notice = vec![b'N'];
    let body = [&b"SNOTICE\0Mhello"[..], &[b'x'; 1000], b"\0\0"].concat();
    notice.extend(((body.len() + 4) as u32).to_be_bytes());
    notice.extend(body);
    let notices = notice.repeat(300);
    let mut r = relay(&q, &notices);
    assert!(r.down.owes_high_water());
    // What the client sent so far went on to PostgreSQL.
    let n = r.up.pending().len();
    assert_eq!(n, q.len());
    r.up.framer.consume(n);
    assert!(
        !r.up.framer.owes_whole_frames(),
        "in the middle of the Query"
    );
    assert!(!r.idle_mid_message(None), "held back by the relay");
    // Once what is owed was written, the relay reads the client again:
    // now it is the client that stopped.
    let n = r.down.pending().len();
    r.down.framer.consume(n);
    assert!(r.idle_mid_message(None));
}

/// Two ends of a loopback TCP connection: (the relay's, the peer's).
async fn socket_pair() -> (Stream, tokio::net::TcpStream) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = tokio::net::TcpStream::connect(l.local_addr().unwrap());
    let (peer, ours) = tokio::join!(peer, l.accept());
    (Stream::Tcp(ours.unwrap().0), peer.unwrap())
}

/// Found attacking the relay's backpressure: frames past the high-water
/// mark wait undecided, and a client owed the mark is not read; the relay
/// ended at the client's EOF as soon as what was decided had gone, so
/// whole frames the client sent before it hung up were lost (PostgreSQL
/// runs everything a client sent before its EOF).
#[tokio::test]
async fn frames_left_undecided_at_the_mark_still_go_after_the_client_hung_up() {
    use tokio::io::AsyncReadExt;
    let q = b"Q\0\0\0\x0dSELECT 1\0";
    let sent = q.repeat(300 * 1024 / q.len());
    // 32 MB of notices owed to a client that reads nothing yet: more than
    // the sockets take, so the relay is owed its mark to the client.
    let mut notice = vec![b'N'];
    let body = [&b"SNOTICE\0M"[..], &[b'x'; 8000], b"\0\0"].concat();
    notice.extend(((body.len() + 4) as u32).to_be_bytes());
    notice.extend(body);
    let notices = notice.repeat(4000);
    let mut r = relay(&sent, &notices);
    assert!(r.up.framer.stalled(), "frames wait past the mark");
    let decided = r.up.pending().len();
    r.up.eof = true; // the client hung up after sending them
    let ((mut client, mut client_peer), (mut server, mut server_peer)) =
        tokio::join!(socket_pair(), socket_pair());
    let (got_tx, mut got_rx) = tokio::sync::watch::channel(0usize);
    let server_reads = tokio::spawn(async move {
        let (mut buf, mut n) = (vec![0u8; 65536], 0);
        while let Ok(k @ 1..) = server_peer.read(&mut buf).await {
            n += k;
            let _ = got_tx.send(n);
        }
        n
    });
    let mut relay_fut = std::pin::pin!(std::future::poll_fn(|cx| {
        r.poll(cx, &mut client, &mut server, None, Mode::Serve)
    }));
    // PostgreSQL took all that was decided; the client is still owed.
    tokio::select! {
        end = &mut relay_fut => panic!("ended with undecided frames: {end:?}"),
        _ = got_rx.wait_for(|&n| n >= decided) => {}
    }
    // The client reads: the rest is decided and goes, then the relay ends.
    let client_reads = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(1..) = client_peer.read(&mut buf).await {}
    });
    let end = tokio::time::timeout(std::time::Duration::from_secs(20), relay_fut)
        .await
        .expect("the relay ends");
    assert_eq!(end.unwrap(), End::Client);
    let all = got_rx.wait_for(|&n| n >= sent.len());
    let got = *tokio::time::timeout(std::time::Duration::from_secs(20), all)
        .await
        .expect("every Query went on")
        .unwrap();
    assert_eq!(got, sent.len());
    server_reads.abort();
    client_reads.abort();
}
