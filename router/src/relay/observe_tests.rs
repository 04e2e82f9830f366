//! The observers, each on its own for the first time: byte fixtures in,
//! the edit and what the conversation and the carried state learned out.

use super::*;
use crate::protocol::parameter_status_frame;

fn view(frame: &[u8]) -> FrameView<'_> {
    FrameView {
        tag: frame[0],
        len: frame.len(),
        bytes: frame,
    }
}

fn observers(ownership: Ownership, carried: Option<&mut Carried>) -> Observers<'_> {
    Observers {
        ownership,
        watch: None,
        carried,
        pid: None,
    }
}

const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

#[test]
fn a_pooled_backend_never_gets_the_clients_terminate() {
    let mut conv = Conversation::default();
    let edit = observers(Ownership::Pooled, None).client(&mut conv, view(&TERMINATE));
    assert_eq!(edit, Edit::Drop);
    assert!(conv.terminated(), "the conversation knows the client left");

    let mut conv = Conversation::default();
    let edit = observers(Ownership::Own, None).client(&mut conv, view(&TERMINATE));
    assert_eq!(edit, Edit::Keep, "the session's own backend gets it");
    assert!(conv.terminated());
}

#[test]
fn pg_tenant_reports_are_the_routers_and_carry_the_clients_settings() {
    let mut frame = BytesMut::new();
    parameter_status_frame(
        SESSION_SETTINGS,
        r#"{"search_path":"app","work_mem":null}"#,
        &mut frame,
    );
    // A dedicated session: dropped, nothing carried.
    let mut conv = Conversation::default();
    assert_eq!(
        observers(Ownership::Own, None).server(&mut conv, view(&frame)),
        Edit::Drop
    );
    // Transaction pooling: dropped, and the settings noted.
    let mut carried = Carried::default();
    let edit = observers(Ownership::Pooled, Some(&mut carried)).server(&mut conv, view(&frame));
    assert_eq!(edit, Edit::Drop);
    assert_eq!(
        carried.settings,
        Some(vec![
            ("search_path".to_owned(), Some("app".to_owned())),
            ("work_mem".to_owned(), None)
        ])
    );
    // PostgreSQL's own reports pass.
    let mut own = BytesMut::new();
    parameter_status_frame("TimeZone", "UTC", &mut own);
    assert_eq!(
        observers(Ownership::Pooled, Some(&mut carried)).server(&mut conv, view(&own)),
        Edit::Keep
    );
}

#[test]
fn a_parameter_status_too_large_to_hold_is_dropped_and_over_the_cap() {
    // Only its header is held (streamed): only pg_tenant's report is that
    // large.
    let header = [b'S', 0, 1, 0, 0];
    let streamed = FrameView {
        tag: b'S',
        len: 65_537,
        bytes: &header,
    };
    let mut conv = Conversation::default();
    let mut carried = Carried::default();
    let edit = observers(Ownership::Pooled, Some(&mut carried)).server(&mut conv, streamed);
    assert_eq!(edit, Edit::Drop);
    assert!(carried.settings_overflow);
}

#[test]
fn a_query_inside_an_open_batch_is_synced_first_with_transaction_pooling() {
    // Parse of an unnamed statement: name "", "SELECT 1", no types.
    let mut parse = vec![b'P', 0, 0, 0, 16, 0];
    parse.extend_from_slice(b"SELECT 1\0");
    parse.extend_from_slice(&[0, 0]);
    let query = [
        b'Q', 0, 0, 0, 13, b'S', b'E', b'L', b'E', b'C', b'T', b' ', b'1', 0,
    ];
    // Without carry (a dedicated session), the Query goes as it is.
    let mut conv = Conversation::default();
    let mut o = observers(Ownership::Own, None);
    assert_eq!(o.client(&mut conv, view(&parse)), Edit::Keep);
    assert_eq!(o.client(&mut conv, view(&query)), Edit::Keep);
    // With it, a Sync of the router's goes first.
    let mut conv = Conversation::default();
    let mut carried = Carried::default();
    let mut o = observers(Ownership::Pooled, Some(&mut carried));
    assert_eq!(o.client(&mut conv, view(&parse)), Edit::Keep);
    assert_eq!(
        o.client(&mut conv, view(&query)),
        Edit::Prepend(BytesMut::from(&SYNC[..]))
    );
}
