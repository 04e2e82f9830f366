//! Router configuration: one typed struct read from TOML, overlaid with
//! `TENANT_ROUTER_*` environment variables and CLI flags (in that order of
//! precedence, lowest first), then validated. Passed around as `Arc<Config>`.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
    #[error("cannot read context signing key file {path}: {source}")]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Credentials(#[from] crate::auth::credentials::CredentialsError),
    #[error("auth.jwt: {0}")]
    Jwt(#[from] crate::jwt::JwtConfigError),
    #[error("context signing key file {path}: {source}")]
    BadKey {
        path: PathBuf,
        source: pg_tenant_token::KeyError,
    },
}

/// Where the tenant is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum UsernameFormat {
    /// `app_user.acme`: the tenant follows the last separator.
    #[serde(rename = "user.tenant")]
    UserTenant,
    /// `acme.app_user`: the tenant precedes the first separator.
    #[serde(rename = "tenant.user")]
    TenantUser,
    /// The user name never carries a tenant.
    #[serde(rename = "none")]
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// How tenants are identified from the startup packet.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Identify {
    /// `"user.tenant"`, `"tenant.user"` or `"none"`.
    pub username_format: UsernameFormat,
    /// Separator between user and tenant in the user name.
    pub separator: String,
    /// Database-name pattern with one `{tenant}`, e.g. `"{tenant}_db"`;
    /// empty disables identification by database name.
    pub database_pattern: String,
    /// Database to connect to when the tenant came from the database name
    /// and its catalog row names none.
    pub default_database: String,
    /// TLS server-name (SNI) pattern with one `{tenant}`, e.g.
    /// `"{tenant}.db.example.com"`; empty disables identification by SNI.
    /// When it matches, it names the tenant; a user or database name that
    /// names another tenant is refused.
    pub sni_pattern: String,
}

impl Default for Identify {
    fn default() -> Self {
        Identify {
            username_format: UsernameFormat::UserTenant,
            separator: ".".into(),
            database_pattern: String::new(),
            default_database: "postgres".into(),
            sni_pattern: String::new(),
        }
    }
}

/// The router's own connection to the tenant catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Catalog {
    /// libpq-style connection string of a role granted `tenant_router`,
    /// to the database where `CREATE EXTENSION pg_tenant` ran.
    pub url: String,
    /// How long rows kept serve once the catalog connection is down.
    pub cache_ttl_ms: u64,
    /// A kept row unused this long is forgotten (the next connection of
    /// its tenant reads it again).
    pub cache_idle_ms: u64,
    /// How long an unknown tenant is remembered as unknown.
    pub negative_ttl_ms: u64,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            url: "host=127.0.0.1 port=5432 user=tenant_router dbname=postgres".into(),
            cache_ttl_ms: 5_000,
            cache_idle_ms: 600_000,
            negative_ttl_ms: 1_000,
        }
    }
}

/// Who checks the login role's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMode {
    /// PostgreSQL checks it; the router relays the exchange. Trusts the
    /// application to name its own tenant.
    #[default]
    Relay,
    /// The router checks it against `tenant.login_verifier(role)` before
    /// anything is opened, then logs into PostgreSQL with what the
    /// client's proof yields.
    Verify,
}

/// The `[auth]` section: how clients authenticate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
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
    /// The passwords read from `credentials_file` by `load`.
    #[serde(skip)]
    pub credentials: crate::auth::credentials::Credentials,
    /// `[auth.jwt]`: a JWT as the password, for the user name `jwt.user`
    /// (docs/jwt.md). None: off.
    pub jwt: Option<crate::jwt::JwtConfig>,
    /// The keys of `jwt`, read by `load` (so a reload re-reads them).
    #[serde(skip)]
    pub jwt_verifier: Option<crate::jwt::JwtVerifier>,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            login: LoginMode::Relay,
            allow_cleartext_without_tls: false,
            credentials_file: String::new(),
            max_unauthenticated_backends: 64,
            max_unauthenticated_per_tenant: None,
            credentials: Default::default(),
            jwt: None,
            jwt_verifier: None,
        }
    }
}

/// `auth.max_unauthenticated_per_tenant` when it is not set (capped by
/// `auth.max_unauthenticated_backends`).
pub const DEFAULT_UNAUTHENTICATED_PER_TENANT: usize = 8;

impl Auth {
    /// The effective `max_unauthenticated_per_tenant`.
    pub fn unauthenticated_per_tenant(&self) -> usize {
        self.max_unauthenticated_per_tenant
            .unwrap_or(DEFAULT_UNAUTHENTICATED_PER_TENANT.min(self.max_unauthenticated_backends))
    }
}

/// The `[pool]` section: backends kept and reused between clients. Only
/// clients the router authenticated itself (verify mode, tenant secrets,
/// JWT) are pooled: a relayed login is PostgreSQL's own exchange on a
/// backend of the client's own. The tenant's `pool_mode` (catalog) says
/// session or transaction; its `pool_size` is its share of a shared pool,
/// or the size of its own with `dedicated_pool`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pool {
    /// Pool backends at all (false: one backend per client, as before).
    pub enabled: bool,
    /// Backends of one shared pool: (upstream, database, login role).
    pub size: usize,
    /// How long a client waits for a backend before FATAL 53300.
    pub timeout_ms: u64,
    /// An idle backend is closed after this long (0: never); a pool's
    /// `min_idle` stay.
    pub idle_timeout_ms: u64,
    /// A backend is closed, instead of reused, once this old (0: never).
    pub server_lifetime_ms: u64,
    /// A backend idle this long is checked (one round trip) before reuse.
    pub check_after_idle_ms: u64,
    /// A tenant's cap in a shared pool, as a fraction of `size` (at least
    /// 1 backend): past it, a tenant takes one more backend (up to its
    /// `pool_size`) only while more than the cap's worth of places stay
    /// free, so other tenants always find that reserve. 1.0: only
    /// `pool_size` bounds a tenant.
    pub max_tenant_share: f64,
    /// Transaction pooling: named statements one backend keeps; beyond,
    /// the least recently used is closed on it.
    pub max_prepared_statements: usize,
    /// Transaction pooling: named statements one client may hold (a Parse
    /// beyond gets 53400).
    pub max_client_prepared_statements: usize,
    /// Transaction pooling: bytes of Parse messages the router keeps for
    /// one client (to prepare them again on another backend); also the
    /// largest named statement. Beyond: 53400.
    pub max_client_prepared_bytes: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            enabled: false,
            size: 20,
            timeout_ms: 5_000,
            idle_timeout_ms: 600_000,
            server_lifetime_ms: 3_600_000,
            check_after_idle_ms: 30_000,
            max_tenant_share: 0.25,
            max_prepared_statements: 200,
            max_client_prepared_statements: 1_000,
            max_client_prepared_bytes: 2 * 1024 * 1024,
        }
    }
}

/// Most bytes of statements the router may be told to keep per client.
const MAX_HELD_STATEMENT_BYTES: usize = 256 * 1024 * 1024;

impl Pool {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The statement bounds of transaction pooling.
    pub fn statement_budget(&self) -> crate::pool::prepared::Budget {
        crate::pool::prepared::Budget {
            per_backend: self.max_prepared_statements,
            per_client: self.max_client_prepared_statements,
            client_bytes: self.max_client_prepared_bytes,
        }
    }

    /// A tenant's cap in a shared pool (`max_tenant_share` of it).
    pub fn tenant_cap(&self) -> usize {
        ((self.size as f64 * self.max_tenant_share).floor() as usize).clamp(1, self.size.max(1))
    }

    fn validate(&self) -> Result<(), String> {
        if self.size == 0 || self.timeout_ms == 0 {
            return Err("pool.size and pool.timeout_ms must be greater than 0".into());
        }
        if !(self.max_tenant_share > 0.0 && self.max_tenant_share <= 1.0) {
            return Err(format!(
                "pool.max_tenant_share {} must be greater than 0 and at most 1",
                self.max_tenant_share
            ));
        }
        if self.max_prepared_statements == 0 || self.max_client_prepared_statements == 0 {
            return Err(
                "pool.max_prepared_statements and pool.max_client_prepared_statements must be greater than 0"
                    .into(),
            );
        }
        if !(1024..=MAX_HELD_STATEMENT_BYTES).contains(&self.max_client_prepared_bytes) {
            return Err(format!(
                "pool.max_client_prepared_bytes {} must be between 1024 and {}",
                self.max_client_prepared_bytes, MAX_HELD_STATEMENT_BYTES
            ));
        }
        Ok(())
    }
}

/// The whole configuration. Every field is in `router/tenant-router.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address clients connect to.
    pub listen: SocketAddr,
    /// PostgreSQL server address (host:port).
    pub upstream: String,
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
    pub identify: Identify,
    pub catalog: Catalog,
    pub tls: crate::tls::TlsSettings,
    pub auth: Auth,
    pub pool: Pool,
    /// `[metrics]`: series bounds and idle tenants (README "Metrics").
    pub metrics: crate::metrics::MetricsSettings,
    /// The key itself, read from `context_signing_key_file` by `load`.
    #[serde(skip)]
    pub signing_key: Option<pg_tenant_token::SigningKey>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 6432)),
            upstream: "127.0.0.1:5432".into(),
            context_signing_key_file: PathBuf::from("/etc/tenant-router/context_signing_key.pem"),
            bypass_users: Vec::new(),
            startup_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            max_client_connections: 5_000,
            log_format: LogFormat::Text,
            admin_listen: "127.0.0.1:9090".into(),
            admin_token: String::new(),
            shutdown_grace_ms: 30_000,
            identify: Identify::default(),
            catalog: Catalog::default(),
            tls: crate::tls::TlsSettings::default(),
            auth: Auth::default(),
            pool: Pool::default(),
            metrics: crate::metrics::MetricsSettings::default(),
            signing_key: None,
        }
    }
}

/// Values from the environment or the command line, applied over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub upstream: Option<String>,
    pub context_signing_key_file: Option<PathBuf>,
    pub catalog_url: Option<String>,
    pub log_format: Option<LogFormat>,
    pub admin_listen: Option<String>,
    pub admin_token: Option<String>,
}

impl Config {
    /// Parse a TOML document.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Read the file (if any), apply overrides, read the key, validate.
    pub fn load(path: Option<&Path>, over: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                Config::from_toml(&text, p)?
            }
            None => Config::default(),
        };
        cfg.apply(over);
        let path = cfg.context_signing_key_file.clone();
        let pem = std::fs::read_to_string(&path).map_err(|source| ConfigError::Key {
            path: path.clone(),
            source,
        })?;
        cfg.signing_key = Some(
            pg_tenant_token::signing_key_from_pem(&pem)
                .map_err(|source| ConfigError::BadKey { path, source })?,
        );
        cfg.validate()?;
        cfg.tls.load()?;
        if !cfg.auth.credentials_file.is_empty() {
            cfg.auth.credentials =
                crate::auth::credentials::Credentials::load(Path::new(&cfg.auth.credentials_file))?;
        }
        if let Some(jwt) = &cfg.auth.jwt {
            cfg.auth.jwt_verifier = Some(crate::jwt::JwtVerifier::load(jwt)?);
        }
        Ok(cfg)
    }

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

    /// For a reload: keep `running`'s values of the settings only a restart
    /// can change, and name those that differed.
    pub fn keep_restart_only(&mut self, running: &Config) -> Vec<&'static str> {
        let mut kept = Vec::new();
        if self.listen != running.listen {
            kept.push("listen");
            self.listen = running.listen;
        }
        if self.admin_listen != running.admin_listen {
            kept.push("admin_listen");
            self.admin_listen = running.admin_listen.clone();
        }
        if self.auth.max_unauthenticated_backends != running.auth.max_unauthenticated_backends {
            kept.push("auth.max_unauthenticated_backends");
            self.auth.max_unauthenticated_backends = running.auth.max_unauthenticated_backends;
        }
        if self.auth.max_unauthenticated_per_tenant != running.auth.max_unauthenticated_per_tenant {
            kept.push("auth.max_unauthenticated_per_tenant");
            self.auth.max_unauthenticated_per_tenant = running.auth.max_unauthenticated_per_tenant;
        }
        if self.max_client_connections != running.max_client_connections {
            kept.push("max_client_connections");
            self.max_client_connections = running.max_client_connections;
        }
        if self.log_format != running.log_format {
            kept.push("log_format");
            self.log_format = running.log_format;
        }
        let c = (&self.catalog, &running.catalog);
        if c.0.url != c.1.url
            || c.0.cache_ttl_ms != c.1.cache_ttl_ms
            || c.0.cache_idle_ms != c.1.cache_idle_ms
            || c.0.negative_ttl_ms != c.1.negative_ttl_ms
        {
            kept.push("catalog");
            self.catalog = running.catalog.clone();
        }
        kept
    }

    /// The admin API address, or None when it is disabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_listen.parse().ok()
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.signing_key.is_none() {
            return bad(format!(
                "no context signing key was read from {}",
                self.context_signing_key_file.display()
            ));
        }
        if self
            .upstream
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return bad(format!("upstream \"{}\" is not host:port", self.upstream));
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
        if self.catalog.url.trim().is_empty() {
            return bad("catalog.url is empty".into());
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

    pub fn startup_timeout(&self) -> Duration {
        Duration::from_millis(self.startup_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key() -> pg_tenant_token::SigningKey {
        pg_tenant_token::SigningKey::from_bytes(&[3u8; 32])
    }

    fn valid() -> Config {
        Config {
            signing_key: Some(test_key()),
            ..Config::default()
        }
    }

    #[test]
    fn sample_config_parses_and_validates() {
        let text = include_str!("../tenant-router.toml");
        let mut cfg = Config::from_toml(text, Path::new("sample")).unwrap();
        cfg.signing_key = Some(test_key());
        cfg.validate().unwrap();
        assert_eq!(cfg.identify.username_format, UsernameFormat::UserTenant);
        assert_eq!(
            cfg.metrics,
            crate::metrics::MetricsSettings::default(),
            "the sample shows the defaults"
        );
    }

    #[test]
    fn jwt_user_may_not_be_a_bypass_user_or_hold_the_separator() {
        let mut cfg = valid();
        cfg.auth.jwt = Some(crate::jwt::JwtConfig {
            user: "postgres".into(),
            ..Default::default()
        });
        cfg.bypass_users = vec!["postgres".into()];
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("is also a bypass user"), "{e}");
        cfg.bypass_users.clear();
        cfg.auth.jwt = Some(crate::jwt::JwtConfig {
            user: "jwt.acme".into(),
            ..Default::default()
        });
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("contains the tenant separator"), "{e}");
        cfg.bypass_users = vec!["postgres".into()];
        cfg.auth.jwt = Some(crate::jwt::JwtConfig {
            allowed_roles: vec!["app_user".into(), "postgres".into()],
            ..Default::default()
        });
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("lists \"postgres\", a bypass user"), "{e}");
        cfg.auth.jwt = Some(crate::jwt::JwtConfig::default());
        cfg.validate().expect("the default user name is fine");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Config::from_toml("listn = '127.0.0.1:1'", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("unknown field `listn`"), "{e}");
        let e = Config::from_toml("[identify]\nsep = '.'", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("unknown field `sep`"), "{e}");
        let e = Config::from_toml("[metrics]\nidle_ms = 1", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("unknown field `idle_ms`"), "{e}");
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = valid();
        c.signing_key = None;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no context signing key"));
        let mut c = valid();
        c.upstream = "nohost".into();
        assert!(c.validate().unwrap_err().to_string().contains("host:port"));
        let mut c = valid();
        c.identify.database_pattern = "{tenant}_{tenant}".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("exactly once"));
        let mut c = valid();
        c.identify.username_format = UsernameFormat::None;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("no way to identify"));
        let mut c = valid();
        c.admin_listen = "0.0.0.0:9090".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("set admin_token"));
        c.admin_token = "short".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("16 characters"));
        c.admin_token = "a-long-enough-admin-token".into();
        c.validate().unwrap();
        c.admin_listen = "localhost".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("is not an address"));
        c.admin_listen = String::new();
        c.validate().unwrap();
        c.metrics.tenant_idle_ms = 0;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("metrics.tenant_idle_ms must be greater than 0"));
        valid().validate().unwrap();
    }

    #[test]
    fn unauthenticated_share_is_within_the_cap() {
        let mut c = valid();
        assert_eq!(c.auth.unauthenticated_per_tenant(), 8, "the default");
        c.auth.max_unauthenticated_backends = 3;
        assert_eq!(
            c.auth.unauthenticated_per_tenant(),
            3,
            "unset: never above the cap"
        );
        c.validate().unwrap();
        c.auth.max_unauthenticated_per_tenant = Some(0);
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("auth.max_unauthenticated_per_tenant must be greater than 0")
                && e.contains("auth.max_unauthenticated_backends, 3"),
            "{e}"
        );
        c.auth.max_unauthenticated_per_tenant = Some(4);
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains(
                "auth.max_unauthenticated_per_tenant (4) must not exceed auth.max_unauthenticated_backends (3)"
            ),
            "{e}"
        );
        c.auth.max_unauthenticated_per_tenant = Some(3);
        c.validate().unwrap();
        assert_eq!(c.auth.unauthenticated_per_tenant(), 3);
        let parsed =
            Config::from_toml("[auth]\nmax_unauthenticated_per_tenant = 2", Path::new("x"))
                .unwrap();
        assert_eq!(parsed.auth.unauthenticated_per_tenant(), 2);
    }

    #[test]
    fn reload_keeps_restart_only_settings() {
        let running = valid();
        let mut new = valid();
        new.listen = "127.0.0.1:7000".parse().unwrap();
        new.catalog.cache_ttl_ms = 1;
        new.startup_timeout_ms = 42;
        assert_eq!(new.keep_restart_only(&running), vec!["listen", "catalog"]);
        assert_eq!(new.listen, running.listen);
        assert_eq!(new.catalog.cache_ttl_ms, running.catalog.cache_ttl_ms);
        assert_eq!(new.startup_timeout_ms, 42, "reloadable settings change");
    }

    #[test]
    fn overrides_win() {
        let mut c = valid();
        c.apply(&Overrides {
            upstream: Some("db:5433".into()),
            log_format: Some(LogFormat::Json),
            ..Overrides::default()
        });
        assert_eq!(c.upstream, "db:5433");
        assert_eq!(c.log_format, LogFormat::Json);
    }
}
