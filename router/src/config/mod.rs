//! Router configuration: a TOML document (`RawConfig`, `raw`) overlaid
//! with `TENANT_ROUTER_*` environment variables and CLI flags (in that
//! order of precedence, lowest first), validated, then built into the
//! running settings (`Config`, `settings`) with the key, the certificates,
//! the credentials and the JWT keys loaded by the modules that own them.
//! `Config` splits into what only a restart changes (`RestartOnly`, which
//! a reload keeps) and the rest, which a reload replaces.
//!
//! The files here use each other directly, never this one: `error`,
//! `sections`, `metrics`, `fleet` and `upstreams` are leaves; `raw` builds on them, `overrides`
//! and `settings` on `raw`.

mod error;
mod fleet;
mod metrics;
mod overrides;
mod raw;
mod sections;
mod settings;
#[cfg(test)]
mod tests;
mod upstreams;

pub use error::ConfigError;
pub use fleet::{share, FleetSettings, LeaseLoss, MAX_ROUTERS};
pub use metrics::{MetricsSettings, MAX_HISTOGRAM_TENANTS, MAX_HISTOGRAM_TOP_N};
pub use overrides::Overrides;
pub use raw::{unauthenticated_per_tenant, RawAuth, RawConfig, DEFAULT_UNAUTHENTICATED_PER_TENANT};
pub use sections::{
    Catalog, CatalogPassword, Identify, LogFormat, LoginMode, Pool, UsernameFormat,
};
pub use settings::{read_password_file, Auth, Config, RestartOnly};
pub use upstreams::{valid_name, RawUpstream, Upstream, Upstreams, MAIN, MAX_UPSTREAMS};
