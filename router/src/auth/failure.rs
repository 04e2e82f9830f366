//! Why an authentication failed: the metrics own the label
//! (`metrics::labels::Failure`, the `reason` of
//! `tenant_router_auth_failures_total`); auth names it here as it uses it.

pub use crate::metrics::Failure;
