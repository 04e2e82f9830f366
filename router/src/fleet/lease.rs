//! What a session holds of the fleet's count (`Lease`), and the messages
//! between sessions and the lease worker. A leaf: the limits' connection
//! slot holds a `Lease` (`limits::counters`), so this file imports nothing
//! of the router.

use tokio::sync::{mpsc, oneshot};

/// The worker's answer to an `Acquire`.
#[derive(Debug)]
pub enum Answer {
    /// Counted: the lease, which gives itself back if the login that asked
    /// is gone before it takes it (dropped with the reply).
    Granted(Lease),
    /// The tenant's `max_connections` are counted already.
    Refused,
    /// The lease connection is down, or the server refused the call:
    /// `fleet.on_lease_loss` decides.
    Unavailable(LeaseError),
}

/// Why no lease could be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("the lease connection to the catalog database is down")]
    Down,
    #[error("cannot open the lease connection: {0}")]
    Connect(String),
    #[error("the catalog role may not take leases: it needs pg_tenant 0.9.0 in the catalog database and membership in tenant_router")]
    NotPermitted,
    /// The server answered the call with an error.
    #[error("tenant.{call} failed: {message}")]
    Call { call: &'static str, message: String },
    /// The call did not answer within the worker's bound (the connection
    /// is then given up).
    #[error("tenant.{call} did not answer within {ms} ms")]
    Timeout { call: &'static str, ms: u64 },
    /// The login's own wait (`fleet.lease_timeout_ms`) ran out.
    #[error("no lease within fleet.lease_timeout_ms ({0} ms)")]
    Slow(u64),
    #[error("the lease worker has stopped")]
    Stopped,
}

/// A request to the lease worker.
#[derive(Debug)]
pub enum Msg {
    /// Count one connection of `tenant` below `max`.
    Acquire {
        tenant: String,
        max: i32,
        reply: oneshot::Sender<Answer>,
    },
    /// A session admitted without the database (`local_share`) holds a
    /// lease all the same: the worker counts it and restores it in the
    /// database when it can.
    Adopt { tenant: String },
    /// A session with a lease ended.
    Release { tenant: String },
}

/// One connection of a tenant counted for the fleet; given back on drop,
/// however the session ends.
#[derive(Debug)]
pub struct Lease {
    tenant: String,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Lease {
    pub fn new(tenant: &str, tx: mpsc::UnboundedSender<Msg>) -> Lease {
        Lease {
            tenant: tenant.to_owned(),
            tx,
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A worker that is gone (the router is stopping) took its
        // connection, and with it every lease, along.
        let _ = self.tx.send(Msg::Release {
            tenant: std::mem::take(&mut self.tenant),
        });
    }
}
