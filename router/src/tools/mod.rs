//! `tenant-router tenants ...`: administration commands run once from the
//! command line (not by the proxy), each against the catalog database a
//! `--url` (or `PG_TENANT_ADMIN_URL`) names. The commands themselves are
//! listed in main.rs.
//!
//! * `tenants provision` ([`provision`]): a database-isolated tenant's
//!   database.
//! * `tenants migrate` ([`migrate`]; `apply` runs one tenant's transaction,
//!   `admin` holds its connection and checks): one SQL script applied to
//!   every schema-isolated tenant's schema.
//! * `tenants move` ([`move_tenant`]; `move_flip` from the pause on,
//!   `move_state` what the steps share, `move_sql` its SQL, `admin_api` the router's admin API): a tenant's
//!   rows moved to another server live, with logical replication.
//! * `tenants apply` / `tenants export` ([`declare`]): tenants declared in
//!   a file, applied to the catalog in one transaction; the catalog
//!   connection comes from the router's own config file.

pub mod admin;
mod admin_api;
mod apply;
pub mod declare;
pub mod migrate;
mod move_flip;
mod move_sql;
mod move_state;
pub mod move_tenant;
pub mod provision;
