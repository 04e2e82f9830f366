//! Backend pools (docs/src/pooling/index.md). A pool is keyed by (upstream,
//! database, login role), or belongs to one tenant (`dedicated_pool`). It
//! holds backends at rest with no tenant context (`switch::reset` ran on
//! them) and hands them out under two rules:
//!
//! - **size**: at most `pool.size` backends open (a dedicated pool: the
//!   tenant's `pool_size`);
//! - **share**: in a shared pool a tenant holds at most its `pool_size`
//!   backends at once, so one tenant cannot take a shared pool whole. Within
//!   that, clients are served first come, first served: a client that
//!   cannot be served waits in line (up to `pool.timeout_ms`), and every
//!   backend given back goes to the first waiting client whose tenant is
//!   under its share.
//!
//! A `Lease` is one backend's place in the pool, held by a session from
//! checkout until the backend is given back (`Lease::give_back`) or, if
//! dropped without that, closed (its place is freed). Idle backends are
//! closed after `idle_timeout_ms` and beyond `server_lifetime_ms`; a
//! dedicated pool keeps its tenant's `min_idle` open once it knows how to
//! log in (the first client's login).

mod kinds;
pub mod prepared;
mod registry;
mod single;
pub mod switch;

pub use registry::{release_free_memory, terms_for, Opening, Place, Pools, Router, Terms};
pub use single::{Affine, Checkout, Discard, Lease, Pool, PoolCounts, PoolError, PoolKey};
