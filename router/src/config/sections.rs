//! The sections that the running configuration keeps as they were
//! written: `[identify]`, `[catalog]`, `[pool]` (with its own `validate`),
//! and the enums of the top level and of `[auth]`.

use serde::Deserialize;
use std::time::Duration;

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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// A file holding the password of `url`'s role (its first line; mode
    /// 0600 or stricter, owned by the router's user), so that `url` needs
    /// none inline. Empty: none (`url` may hold one, or need none).
    pub password_file: String,
    /// What `password_file` holds, read when the settings are built.
    #[serde(skip)]
    pub password: CatalogPassword,
}

/// The catalog role's password from `catalog.password_file`: never shown
/// by Debug.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CatalogPassword(pub Option<String>);

impl std::fmt::Debug for CatalogPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Some(..)" } else { "None" })
    }
}

impl CatalogPassword {
    /// Put the password (if any) into a parsed `catalog.url`.
    pub fn apply(&self, config: &mut tokio_postgres::Config) {
        if let Some(p) = &self.0 {
            config.password(p.as_bytes());
        }
    }
}

impl Catalog {
    /// `url` parsed, with the password of `password_file` (if read).
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        let mut config: tokio_postgres::Config = self.url.parse()?;
        self.password.apply(&mut config);
        Ok(config)
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog {
            url: "host=127.0.0.1 port=5432 user=tenant_router dbname=postgres".into(),
            cache_ttl_ms: 5_000,
            cache_idle_ms: 600_000,
            negative_ttl_ms: 1_000,
            password_file: String::new(),
            password: CatalogPassword::default(),
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

    /// A tenant's cap in a shared pool of `size` backends (the upstream's
    /// `pool_size`, `pool.size` for the main one): `max_tenant_share` of it.
    pub fn tenant_cap(&self, size: usize) -> usize {
        ((size as f64 * self.max_tenant_share).floor() as usize).clamp(1, size.max(1))
    }

    /// Check what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
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
