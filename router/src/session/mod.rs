//! One client connection. Read it in this order:
//!
//! ```text
//! connection  Session: handshake → relay → close
//! handshake   Opening → Identified (who, its tenant's row, its proof)
//! source      the backend-source seam: Dedicated (connect, log in,
//!             inject) or Pooled (checkout, switch, synthesize) → Ready
//! pooled      the pooled source: attach, settings carried, detach
//! placement   the upstream a tenant's backends come from, its sealed context now
//! relaying    attach → relay → release, until the session ends
//! attached    a backend attached: its own, or with its pool place
//! conn        the connection whatever its phase (client, tenancy, span)
//! phase       Phase, the FATALs, the startup deadline
//! idle, busy  client_idle_timeout_ms; a pooled client turned away (53300)
//! paused      its tenant's pause: the gate, a session parked at rest
//! moved       a transaction-pooled client follows its tenant to another upstream
//! waiting     a client at rest: its next bytes, or why the session ends
//! ```
//!
//! The client is checked by the router itself (verify mode, tenant
//! secrets, token logins, and the mock exchange of unknown or disabled
//! tenants) before it takes a connection slot or opens a backend; or
//! PostgreSQL's exchange is relayed, on a backend counted under
//! `auth.max_unauthenticated_backends` until it ends. Any failure before
//! Transparent closes the client with a FATAL (PostgreSQL's own
//! ErrorResponse when it refused the backend): there is never a usable
//! tenant connection without its context. Draining (after SIGTERM) relays
//! until the session is idle, then closes it with 57P01.

mod attached;
mod busy;
mod conn;
mod connection;
mod handshake;
mod idle;
mod moved;
mod paused;
mod phase;
mod placement;
mod pooled;
mod relaying;
mod source;
mod waiting;

pub use connection::Session;
pub use phase::{Phase, Traffic};
pub use pooled::{MAX_SESSION_SETTINGS, MAX_SESSION_SETTINGS_BYTES};
