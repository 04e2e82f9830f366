//! `tenant-router tenants ...`: administration commands run once from the
//! command line (not by the proxy), each against the catalog database a
//! `--url` (or `PG_TENANT_ADMIN_URL`) names.

pub mod provision;
