//! The running settings: a validated document (`RawConfig`) with what its
//! files hold, loaded by the modules that own them (the signing key by
//! `signing_key`, TLS by `tls`, the credentials by `auth::credentials`,
//! the JWT keys by `jwt`). Passed around as `Arc<Config>`; a SIGHUP builds
//! a new one, which keeps the running `RestartOnly` part.

use super::error::ConfigError;
use super::fleet::FleetSettings;
use super::metrics::MetricsSettings;
use super::overrides::Overrides;
use super::raw::{unauthenticated_per_tenant, RawAuth, RawConfig};
use super::sections::{Catalog, CatalogPassword, Identify, LogFormat, LoginMode, Pool};
use super::upstreams::Upstreams;
use crate::auth::credentials::Credentials;
use crate::jwt::JwtVerifier;
use crate::signing_key::SigningKey;
use crate::tls::TlsSettings;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The settings only a restart changes (the sockets, the caps sized at
/// start, the catalog connection, the log format): a reload keeps the
/// running ones, shared by every `Config` since the start.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartOnly {
    pub listen: SocketAddr,
    /// The admin API address; empty: no admin API.
    pub admin_listen: String,
    pub max_client_connections: usize,
    /// `auth.max_unauthenticated_backends`.
    pub max_unauthenticated_backends: usize,
    /// `auth.max_unauthenticated_per_tenant` as written.
    pub max_unauthenticated_per_tenant: Option<usize>,
    pub log_format: LogFormat,
    pub catalog: Catalog,
    /// `fleet.shared_connection_limits`.
    pub fleet_shared_connection_limits: bool,
    /// `fleet.reuse_port`.
    pub fleet_reuse_port: bool,
}

impl RestartOnly {
    fn of(raw: &RawConfig) -> RestartOnly {
        RestartOnly {
            listen: raw.listen,
            admin_listen: raw.admin_listen.clone(),
            max_client_connections: raw.max_client_connections,
            max_unauthenticated_backends: raw.auth.max_unauthenticated_backends,
            max_unauthenticated_per_tenant: raw.auth.max_unauthenticated_per_tenant,
            log_format: raw.log_format,
            catalog: raw.catalog.clone(),
            fleet_shared_connection_limits: raw.fleet.shared_connection_limits,
            fleet_reuse_port: raw.fleet.reuse_port,
        }
    }

    /// The document names of the settings that differ from `running`'s,
    /// each once. Every field is named here (the destructuring fails to
    /// compile when one is added without a name).
    pub fn changes(&self, running: &RestartOnly) -> Vec<&'static str> {
        let RestartOnly {
            listen,
            admin_listen,
            max_client_connections,
            max_unauthenticated_backends,
            max_unauthenticated_per_tenant,
            log_format,
            catalog,
            fleet_shared_connection_limits,
            fleet_reuse_port,
        } = self;
        [
            (*listen != running.listen, "listen"),
            (*admin_listen != running.admin_listen, "admin_listen"),
            (
                *max_unauthenticated_backends != running.max_unauthenticated_backends,
                "auth.max_unauthenticated_backends",
            ),
            (
                *max_unauthenticated_per_tenant != running.max_unauthenticated_per_tenant,
                "auth.max_unauthenticated_per_tenant",
            ),
            (
                *max_client_connections != running.max_client_connections,
                "max_client_connections",
            ),
            (*log_format != running.log_format, "log_format"),
            (*catalog != running.catalog, "catalog"),
            (
                *fleet_shared_connection_limits != running.fleet_shared_connection_limits,
                "fleet.shared_connection_limits",
            ),
            (
                *fleet_reuse_port != running.fleet_reuse_port,
                "fleet.reuse_port",
            ),
        ]
        .into_iter()
        .filter_map(|(differs, name)| differs.then_some(name))
        .collect()
    }

    /// The admin API address, or None when it is disabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listen.parse().ok()
    }

    /// The effective `auth.max_unauthenticated_per_tenant`.
    pub fn unauthenticated_per_tenant(&self) -> usize {
        unauthenticated_per_tenant(
            self.max_unauthenticated_backends,
            self.max_unauthenticated_per_tenant,
        )
    }
}

/// `[auth]` in effect: the modes, and what its files hold.
#[derive(Debug, Clone)]
pub struct Auth {
    pub login: LoginMode,
    pub allow_cleartext_without_tls: bool,
    /// The passwords read from `auth.credentials_file` (none without one).
    pub credentials: Credentials,
    /// `[auth.jwt]` with its keys read. None: off.
    pub jwt_verifier: Option<JwtVerifier>,
}

impl Auth {
    fn load(raw: &RawAuth) -> Result<Auth, ConfigError> {
        let credentials = if raw.credentials_file.is_empty() {
            Credentials::default()
        } else {
            Credentials::load(Path::new(&raw.credentials_file))?
        };
        let jwt_verifier = match &raw.jwt {
            Some(jwt) => Some(JwtVerifier::load(jwt)?),
            None => None,
        };
        Ok(Auth {
            login: raw.login,
            allow_cleartext_without_tls: raw.allow_cleartext_without_tls,
            credentials,
            jwt_verifier,
        })
    }
}

/// The running configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// What only a restart changes.
    pub fixed: Arc<RestartOnly>,
    /// PostgreSQL server address (host:port): the main upstream's.
    pub upstream: String,
    /// The main upstream and the `[upstreams.<name>]` ones, with their TLS.
    pub upstreams: Upstreams,
    /// User names that pass through untouched, without a tenant context.
    pub bypass_users: Vec<String>,
    pub startup_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Bearer token the admin API requires; empty: none.
    pub admin_token: String,
    pub shutdown_grace_ms: u64,
    /// See `RawConfig::pause_timeout_ms`.
    pub pause_timeout_ms: u64,
    pub identify: Identify,
    pub tls: TlsSettings,
    pub auth: Auth,
    pub pool: Pool,
    pub metrics: MetricsSettings,
    /// `[fleet]` (`shared_connection_limits` in effect is `fixed`'s).
    pub fleet: FleetSettings,
    /// The key read from `context_signing_key_file`: always there in a
    /// built `Config` (`build` refuses none).
    pub signing_key: Option<SigningKey>,
}

impl Config {
    /// Read the file (if any), apply overrides, read the key, validate,
    /// then load what the other files hold.
    pub fn load(path: Option<&Path>, over: &Overrides) -> Result<Config, ConfigError> {
        let mut raw = RawConfig::read(path)?;
        raw.apply(over);
        let key = crate::signing_key::load(&raw.context_signing_key_file)?;
        Config::build(raw, Some(key))
    }

    /// Validate `raw` and load what its files hold (TLS certificates,
    /// credentials, JWT keys), in that order.
    pub fn build(raw: RawConfig, signing_key: Option<SigningKey>) -> Result<Config, ConfigError> {
        if signing_key.is_none() {
            return Err(ConfigError::Invalid(format!(
                "no context signing key was read from {}",
                raw.context_signing_key_file.display()
            )));
        }
        raw.validate()?;
        let tls = TlsSettings::load(&raw.tls)?;
        let upstreams = Upstreams::load(&raw.upstream, &tls, raw.pool.size, &raw.upstreams)?;
        let auth = Auth::load(&raw.auth)?;
        let mut raw = raw;
        if !raw.catalog.password_file.is_empty() {
            raw.catalog.password =
                CatalogPassword(Some(read_password_file(&raw.catalog.password_file)?));
        }
        Ok(Config {
            fixed: Arc::new(RestartOnly::of(&raw)),
            tls,
            auth,
            signing_key,
            upstream: raw.upstream,
            upstreams,
            bypass_users: raw.bypass_users,
            startup_timeout_ms: raw.startup_timeout_ms,
            connect_timeout_ms: raw.connect_timeout_ms,
            admin_token: raw.admin_token,
            shutdown_grace_ms: raw.shutdown_grace_ms,
            pause_timeout_ms: raw.pause_timeout_ms,
            identify: raw.identify,
            pool: raw.pool,
            metrics: raw.metrics,
            fleet: raw.fleet,
        })
    }

    /// For a reload: keep `running`'s restart-only settings, and name
    /// those that differed.
    /// For a reload: whether these settings may replace `running`'s. The
    /// admin API keeps its running address (restart-only), so a token may
    /// not be removed while that address is reachable from other hosts
    /// (checked against the new file's address alone, the new settings
    /// looked valid).
    pub fn check_reload(&self, running: &Config) -> Result<(), ConfigError> {
        match running.fixed.admin_addr() {
            Some(addr) if self.admin_token.is_empty() && !addr.ip().is_loopback() => {
                Err(ConfigError::Invalid(format!(
                    "admin_listen {addr} (the running address: a restart changes it) is reachable from other hosts: a reload cannot remove admin_token"
                )))
            }
            _ => Ok(()),
        }
    }

    pub fn keep_restart_only(&mut self, running: &Config) -> Vec<&'static str> {
        let changed = self.fixed.changes(&running.fixed);
        self.fixed = running.fixed.clone();
        changed
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn pause_timeout(&self) -> Duration {
        Duration::from_millis(self.pause_timeout_ms)
    }

    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// The first line of `catalog.password_file`: the file must belong to the
/// router's user and be readable by nobody else (as the credentials file),
/// and hold a password. Its text is never part of an error.
pub fn read_password_file(path: &str) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let bad = |why: String| ConfigError::Invalid(format!("catalog.password_file {path}: {why}"));
    // Checked and read through one open file. O_NONBLOCK: a FIFO named
    // here is refused below instead of blocking the start or a reload.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("is not a regular file".to_owned()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "has mode {mode:04o}: it must be 0600 or stricter (chmod 600 {path})"
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(bad(format!(
            "is owned by uid {}, not by the router's user (uid {me})",
            meta.uid()
        )));
    }
    // A password file is small: a bounded read.
    let mut bytes = Vec::new();
    file.take(64 * 1024)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text".to_owned()))?;
    // The first line, without its end ("\n", "\r\n" or a lone "\r").
    let password = text.split('\n').next().unwrap_or_default();
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(bad("is empty: its first line is the password".to_owned()));
    }
    Ok(password.to_owned())
}
