//! Helpers shared by the fuzz targets: splitting one input into parts,
//! and the invariants checked on what the tenant-name rules accept (the
//! `startup` target checks them on every packet it parses too).

pub mod tenant;

/// `data` split at each 0xFF byte (never part of UTF-8 text, so a
/// separator that cannot collide with a message's own bytes).
pub fn parts(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == 0xFF).collect()
}

/// The `i`th part, or empty.
pub fn part<'a>(parts: &[&'a [u8]], i: usize) -> &'a [u8] {
    parts.get(i).copied().unwrap_or_default()
}

/// A message shown to a client or written to a log: no control characters
/// (no log injection), bounded in length.
pub fn assert_clean_message(msg: &str) {
    assert!(
        !msg.chars().any(char::is_control),
        "control character in message {msg:?}"
    );
    assert!(msg.chars().count() <= 400, "message too long: {msg:?}");
}
