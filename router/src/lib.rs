//! tenant-router: a tenant-aware PostgreSQL proxy. See the README.

pub mod admin;
pub mod auth;
pub mod cancel;
pub mod catalog;
pub mod config;
pub mod identify;
pub mod limits;
pub mod metrics;
pub mod protocol;
pub mod relay;
pub mod server;
pub mod session;
