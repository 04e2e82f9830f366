//! The configuration document as written: the TOML file
//! (`deny_unknown_fields`, every key defaulted) and the checks that need no
//! file (`validate`). It holds only what was written (with `Overrides` put
//! over it); `Config::build` turns it into the running settings.

use super::error::ConfigError;
use super::fleet::FleetSettings;
use super::metrics::MetricsSettings;
use super::sections::{Catalog, Identify, LogFormat, LoginMode, Pool, UsernameFormat};
use super::upstreams::{valid_address, validate_upstreams, RawUpstream};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The whole document as written. Every field is in
/// `router/tenant-router.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Address clients connect to.
    pub listen: SocketAddr,
    /// PostgreSQL server address (host:port): the main upstream, named
    /// `main`.
    pub upstream: String,
    /// `[upstreams.<name>]`: more PostgreSQL servers, for the tenants whose
    /// catalog `upstream` names them (docs/src/scaling-out/index.md).
    pub upstreams: std::collections::BTreeMap<String, RawUpstream>,
    /// The router's Ed25519 private key (PKCS#8 PEM, `openssl genpkey
    /// -algorithm ed25519`) that signs context tokens. PostgreSQL holds only
    /// its public key (`pg_tenant.context_public_keys`; `tenant-router
    /// --print-public-key` prints it). Keep it mode 0600.
    pub context_signing_key_file: PathBuf,
    /// User names that pass through untouched, without a tenant context.
    /// Empty by default: a bypass user reaches PostgreSQL from the router's
    /// address, so it must authenticate with a password there.
    pub bypass_users: Vec<String>,
    /// Time a client has to complete startup and authentication.
    pub startup_timeout_ms: u64,
    /// Time allowed to open the upstream connection.
    pub connect_timeout_ms: u64,
    /// Most client connections open at once, handshakes included; more
    /// are refused with FATAL 53300.
    pub max_client_connections: usize,
    /// `text` or `json` logs.
    pub log_format: LogFormat,
    /// Admin HTTP API address (health, readiness, tenants, metrics);
    /// empty disables it.
    pub admin_listen: String,
    /// Bearer token the admin API requires (all but /health and /ready);
    /// empty: none, allowed only on a loopback `admin_listen`.
    pub admin_token: String,
    /// After SIGTERM, time open sessions get to finish before they are
    /// closed.
    pub shutdown_grace_ms: u64,
    /// Longest a tenant's new transaction or login waits while the tenant
    /// is paused (admin API `POST /tenants/{id}/pause`); then it fails with
    /// 55P03 naming the tenant and the pause.
    pub pause_timeout_ms: u64,
    pub identify: Identify,
    pub catalog: Catalog,
    pub tls: crate::tls::TlsConfig,
    pub auth: RawAuth,
    pub pool: Pool,
    /// `[metrics]`: series bounds and idle tenants (docs/src/operations/metrics.md).
    pub metrics: MetricsSettings,
    /// `[fleet]`: several routers in front of the same servers
    /// (docs/src/scaling-out/several-routers.md).
    pub fleet: FleetSettings,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 6432)),
            upstream: "127.0.0.1:5432".into(),
            upstreams: Default::default(),
            context_signing_key_file: PathBuf::from("/etc/tenant-router/context_signing_key.pem"),
            bypass_users: Vec::new(),
            startup_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            max_client_connections: 5_000,
            log_format: LogFormat::Text,
            admin_listen: "127.0.0.1:9090".into(),
            admin_token: String::new(),
            shutdown_grace_ms: 30_000,
            pause_timeout_ms: 10_000,
            identify: Identify::default(),
            catalog: Catalog::default(),
            tls: crate::tls::TlsConfig::default(),
            auth: RawAuth::default(),
            pool: Pool::default(),
            metrics: MetricsSettings::default(),
            fleet: FleetSettings::default(),
        }
    }
}

/// The `[auth]` section as written: how clients authenticate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    /// `"relay"` (default) or `"verify"`.
    pub login: LoginMode,
    /// Allow asking a client for a cleartext password (md5 verifiers in
    /// verify mode) over a connection that is neither TLS nor loopback.
    pub allow_cleartext_without_tls: bool,
    /// TOML file `[roles] role = "password"` (mode 0600 or stricter, owned
    /// by the router's user): how the router logs into PostgreSQL for a
    /// tenant with a secret. "" = none.
    pub credentials_file: String,
    /// Relay mode: most backends held at once by clients that have not
    /// finished authenticating; more get FATAL 53300.
    pub max_unauthenticated_backends: usize,
    /// Relay mode: most of those held at once by the clients of one tenant
    /// (bypass users together count as one); more get FATAL 53300, so one
    /// tenant's silent logins hit this before they fill the whole cap.
    /// Unset: `DEFAULT_UNAUTHENTICATED_PER_TENANT`, or
    /// `max_unauthenticated_backends` when that is lower
    /// (`unauthenticated_per_tenant`).
    pub max_unauthenticated_per_tenant: Option<usize>,
    /// `[auth.jwt]`: a JWT as the password, for the user name `jwt.user`
    /// (docs/src/authentication/jwt.md). None: off.
    pub jwt: Option<crate::jwt::JwtConfig>,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            login: LoginMode::Relay,
            allow_cleartext_without_tls: false,
            credentials_file: String::new(),
            max_unauthenticated_backends: 64,
            max_unauthenticated_per_tenant: None,
            jwt: None,
        }
    }
}

impl RawAuth {
    /// The effective `max_unauthenticated_per_tenant`.
    pub fn unauthenticated_per_tenant(&self) -> usize {
        unauthenticated_per_tenant(
            self.max_unauthenticated_backends,
            self.max_unauthenticated_per_tenant,
        )
    }
}

/// `auth.max_unauthenticated_per_tenant` when it is not set (capped by
/// `auth.max_unauthenticated_backends`).
pub const DEFAULT_UNAUTHENTICATED_PER_TENANT: usize = 8;

/// The effective `auth.max_unauthenticated_per_tenant` (`per_tenant`) under
/// `auth.max_unauthenticated_backends` (`max_backends`).
pub fn unauthenticated_per_tenant(max_backends: usize, per_tenant: Option<usize>) -> usize {
    per_tenant.unwrap_or(DEFAULT_UNAUTHENTICATED_PER_TENANT.min(max_backends))
}

impl RawConfig {
    /// Parse a TOML document.
    pub fn from_toml(text: &str, path: &Path) -> Result<RawConfig, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// The document in the file, or the defaults without one.
    pub fn read(path: Option<&Path>) -> Result<RawConfig, ConfigError> {
        let Some(p) = path else {
            return Ok(RawConfig::default());
        };
        let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
            path: p.to_owned(),
            source,
        })?;
        RawConfig::from_toml(&text, p)
    }

    /// Check what serde cannot; reads no file (`Config::build` reads the
    /// files the settings name).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if !valid_address(&self.upstream) {
            return bad(format!("upstream \"{}\" is not host:port", self.upstream));
        }
        if let Err(m) = validate_upstreams(&self.upstreams) {
            return bad(m);
        }
        let id = &self.identify;
        if id.username_format != UsernameFormat::None && id.separator.is_empty() {
            return bad("identify.separator must not be empty".into());
        }
        let p = &id.database_pattern;
        if !p.is_empty() && p.matches("{tenant}").count() != 1 {
            return bad(format!(
                "identify.database_pattern \"{p}\" must contain {{tenant}} exactly once"
            ));
        }
        let sni = &id.sni_pattern;
        if !sni.is_empty() && sni.matches("{tenant}").count() != 1 {
            return bad(format!(
                "identify.sni_pattern \"{sni}\" must contain {{tenant}} exactly once"
            ));
        }
        if id.username_format == UsernameFormat::None && p.is_empty() && sni.is_empty() {
            return bad("no way to identify tenants: set identify.username_format, identify.database_pattern or identify.sni_pattern".into());
        }
        // A paused tenant's sessions wait at most this long; a deadline
        // past what an Instant holds would panic every tenant session's
        // gate (each login computes it).
        if self.pause_timeout_ms == 0 || self.pause_timeout_ms > 86_400_000 {
            return bad("pause_timeout_ms must be from 1 to 86400000 (a day)".into());
        }
        if self.startup_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return bad("timeouts must be greater than 0".into());
        }
        if self.max_client_connections == 0 {
            return bad("max_client_connections must be greater than 0".into());
        }
        if self.auth.max_unauthenticated_backends == 0 {
            return bad("auth.max_unauthenticated_backends must be greater than 0".into());
        }
        match self.auth.max_unauthenticated_per_tenant {
            Some(0) => {
                return bad(format!(
                    "auth.max_unauthenticated_per_tenant must be greater than 0 (and at most auth.max_unauthenticated_backends, {})",
                    self.auth.max_unauthenticated_backends
                ))
            }
            Some(n) if n > self.auth.max_unauthenticated_backends => {
                return bad(format!(
                    "auth.max_unauthenticated_per_tenant ({n}) must not exceed auth.max_unauthenticated_backends ({})",
                    self.auth.max_unauthenticated_backends
                ))
            }
            _ => {}
        }
        if let Some(jwt) = &self.auth.jwt {
            if self.bypass_users.contains(&jwt.user) {
                return bad(format!(
                    "auth.jwt.user \"{}\" is also a bypass user: pick another name",
                    jwt.user
                ));
            }
            if let Some(role) = jwt
                .allowed_roles
                .iter()
                .find(|r| self.bypass_users.contains(r))
            {
                return bad(format!(
                    "auth.jwt.allowed_roles lists \"{role}\", a bypass user: a token must never select one"
                ));
            }
            if jwt.user.contains(&self.identify.separator) {
                return bad(format!(
                    "auth.jwt.user \"{}\" contains the tenant separator \"{}\"",
                    jwt.user, self.identify.separator
                ));
            }
        }
        if let Err(m) = self.pool.validate() {
            return bad(m);
        }
        if let Err(m) = self.metrics.validate() {
            return bad(m);
        }
        if let Err(m) = self.fleet.validate() {
            return bad(m);
        }
        if self.catalog.url.trim().is_empty() {
            return bad("catalog.url is empty".into());
        }
        if !self.catalog.password_file.is_empty()
            && self
                .catalog
                .url
                .parse::<tokio_postgres::Config>()
                .is_ok_and(|c| c.get_password().is_some())
        {
            return bad(
                "catalog.url holds a password and catalog.password_file names a file: keep the password in the file only"
                    .into(),
            );
        }
        if self.catalog.cache_idle_ms == 0 {
            return bad("catalog.cache_idle_ms must be greater than 0".into());
        }
        if !self.admin_listen.is_empty() {
            let Ok(addr) = self.admin_listen.parse::<SocketAddr>() else {
                return bad(format!(
                    "admin_listen \"{}\" is not an address like 127.0.0.1:9090 (use \"\" to disable the admin API)",
                    self.admin_listen
                ));
            };
            if self.admin_token.is_empty() && !addr.ip().is_loopback() {
                return bad(format!(
                    "admin_listen {addr} is reachable from other hosts: set admin_token (or listen on a loopback address)"
                ));
            }
        }
        if !self.admin_token.is_empty() && self.admin_token.len() < 16 {
            return bad("admin_token must be at least 16 characters".into());
        }
        Ok(())
    }
}
