//! How the extension's checks answer a client: [`refuse`] raises an ERROR
//! with a SQLSTATE, and [`printable`] makes client-supplied text safe to
//! echo in a message.
//!
//! A leaf: it uses nothing else from this crate.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

/// Raise an ERROR with `code` and `msg` (never returns).
pub fn refuse(code: PgSqlErrorCode, msg: String) -> ! {
    ereport!(ERROR, code, msg);
}

/// A client-supplied string made safe to echo: control characters become
/// '?', and it is cut at 64 characters.
pub fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}
