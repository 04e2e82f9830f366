//! A backend attached to a session: its own (`lease` None), or one holding
//! a place in a pool, which goes back to the pool (or is closed) when the
//! session lets it go.

use crate::backend::Backend;
use crate::pool::Lease;

pub struct Attached {
    pub backend: Backend,
    pub lease: Option<Lease>,
}
