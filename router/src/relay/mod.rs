//! Transparent phase: the relay (`core`) drives both directions of a
//! session (`pipe`), every frame passing the observers (`observe`: the
//! limits watch, the statement carry of transaction pooling, pg_tenant's
//! settings reports, notifications' names); `carried` is what follows a
//! transaction-pooled client from backend to backend.

mod carried;
mod core;
mod observe;
mod pipe;

pub use carried::{parse_settings_report, Carried, SESSION_SETTINGS};
pub use core::{End, Mode, Relay, Rest};
pub use observe::Ownership;
pub use pipe::RelayError;
