//! tenant-router: a tenant-aware PostgreSQL proxy. See the book (docs/src/SUMMARY.md).
//!
//! Layers, lowest first: `transport` (one stream type) → `codec` (framing,
//! large messages streamed) → `conversation` (where a connection stands) →
//! `frontend` (the client side) / `backend` (a server connection) → `auth`
//! → `relay` (the transparent phase: observers on every frame) → `session`
//! (typed handshake, the backend-source seam: dedicated or `pool`).
//! `limits` and `metrics` observe the conversation; `shared` and `server`
//! compose it all. docs/src/development/reading-the-code.md follows one connection
//! through these files; `tests/import_graph.rs` keeps the graph acyclic.

pub mod admin;
pub mod auth;
pub mod backend;
pub mod cancel;
pub mod catalog;
pub mod codec;
pub mod config;
pub mod conversation;
pub mod error;
pub mod fleet;
pub mod frontend;
pub mod identify;
pub mod interrupt;
pub mod jwt;
pub mod limits;
pub mod logtext;
pub mod metrics;
pub mod pause;
pub mod pool;
pub mod protocol;
pub mod random;
pub mod relay;
pub mod server;
pub mod session;
pub mod shared;
pub mod signing_key;
pub mod tls;
pub mod tools;
pub mod transport;
