//! The settings the environment (`TENANT_ROUTER_*`) and the command line
//! can set over the file: declared once, as clap arguments (the binary
//! flattens `Overrides` into its command line), and applied to the
//! document in one place (`RawConfig::apply`), before it is validated.

use super::raw::RawConfig;
use super::sections::LogFormat;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Values from the environment or the command line, applied over the file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// Address to listen on, e.g. 127.0.0.1:6432.
    #[arg(long, env = "TENANT_ROUTER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// PostgreSQL host:port.
    #[arg(long, env = "TENANT_ROUTER_UPSTREAM")]
    pub upstream: Option<String>,
    /// The router's Ed25519 signing key (PKCS#8 PEM).
    #[arg(long, env = "TENANT_ROUTER_CONTEXT_SIGNING_KEY_FILE")]
    pub context_signing_key_file: Option<PathBuf>,
    /// Connection string of the router's catalog role.
    #[arg(long, env = "TENANT_ROUTER_CATALOG_URL")]
    pub catalog_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "TENANT_ROUTER_LOG_FORMAT", value_parser = parse_format)]
    pub log_format: Option<LogFormat>,
    /// Admin HTTP API address, e.g. 127.0.0.1:9090 ("" disables it).
    #[arg(long, env = "TENANT_ROUTER_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// Bearer token for the admin API (prefer the environment variable:
    /// command lines are visible to other local users).
    #[arg(long, env = "TENANT_ROUTER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

fn parse_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("unknown log format \"{s}\": use text or json")),
    }
}

impl RawConfig {
    /// Put the environment's and the command line's values over the
    /// file's: the one place overrides are applied.
    pub fn apply(&mut self, over: &Overrides) {
        if let Some(v) = over.listen {
            self.listen = v;
        }
        if let Some(v) = &over.upstream {
            self.upstream = v.clone();
        }
        if let Some(v) = &over.context_signing_key_file {
            self.context_signing_key_file = v.clone();
        }
        if let Some(v) = &over.catalog_url {
            self.catalog.url = v.clone();
        }
        if let Some(v) = over.log_format {
            self.log_format = v;
        }
        if let Some(v) = &over.admin_listen {
            self.admin_listen = v.clone();
        }
        if let Some(v) = &over.admin_token {
            self.admin_token = v.clone();
        }
    }
}
