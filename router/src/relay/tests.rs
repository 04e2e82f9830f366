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
