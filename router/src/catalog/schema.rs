//! Which pg_tenant the catalog database has, and how its rows are read.
//!
//! The version (`pg_extension.extversion`) is read when the catalog
//! connection is made, into a `Schema` the connection holds; while it is
//! older than the newest this router knows (`Version::NEWEST`), it is read
//! again at most once a second before a query, so that an `ALTER EXTENSION
//! pg_tenant UPDATE` (which sends no notification) is seen without a
//! restart. Each version has one row decoder (`RowDecoder`): the columns
//! it selects from `tenant.router_catalog` and friends, and a decoding of
//! them by position with `try_get`, so a row of an unexpected shape is a
//! `CatalogError::Shape`, never a panic.

use super::row::{PoolMode, PoolSettings, Redacted, TenantInfo};
use super::types::CatalogError;
use std::time::{Duration, Instant};
use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, Row};

/// The pg_tenant versions whose catalog this router reads, one per shape of
/// what it offers the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// 0.1.0, 0.2.0: the limits.
    V0_1,
    /// 0.3.0: and the tenants' secrets (`tenant.auth_secret`) and
    /// `tenant.login_verifier`.
    V0_3,
    /// 0.4.0, 0.5.0: and the pool columns.
    V0_4,
    /// 0.6.0: and `client_idle_timeout_ms`.
    V0_6,
    /// 0.7.0: and `tenant.router_catalog_page` and
    /// `tenant.router_catalog_counts`.
    V0_7,
    /// 0.8.0: and `context_document`, the sealed context of a
    /// database-isolated tenant.
    V0_8,
    /// 0.9.0 and later: and `upstream`, the named upstream a tenant lives
    /// on (older catalogs: every tenant on the main upstream).
    V0_9,
}

impl Version {
    /// The newest shape this router reads: a catalog at it is not read
    /// again.
    pub const NEWEST: Version = Version::V0_9;

    /// The shape of an `extversion` ("0.5.0"; a later release than this
    /// router knows reads as the newest). None: not a version.
    pub fn parse(extversion: &str) -> Option<Version> {
        let mut parts = extversion.trim().split('.');
        let number = |p: Option<&str>| -> Option<u64> {
            let digits: String = p?.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        Some(match (major, minor) {
            (0, 0..=2) => Version::V0_1,
            (0, 3) => Version::V0_3,
            (0, 4 | 5) => Version::V0_4,
            (0, 6) => Version::V0_6,
            (0, 7) => Version::V0_7,
            (0, 8) => Version::V0_8,
            _ => Version::V0_9,
        })
    }

    /// Whether it has `tenant.auth_secret`: lookups then read each
    /// tenant's secret with its row.
    pub fn has_secrets(self) -> bool {
        self >= Version::V0_3
    }

    /// Whether it has `tenant.router_catalog_page` and
    /// `tenant.router_catalog_counts`.
    pub fn has_pages(self) -> bool {
        self >= Version::V0_7
    }
}

/// What one catalog connection found: the version installed, read at
/// `read_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub extversion: String,
    pub version: Version,
    pub read_at: Instant,
}

/// How often an older schema is read again.
const RECHECK: Duration = Duration::from_secs(1);

impl Schema {
    /// Read the installed version now.
    pub async fn read(client: &Client) -> Result<Schema, CatalogError> {
        let row = client
            .query_opt(
                "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_tenant'",
                &[],
            )
            .await
            .map_err(|e| CatalogError::Unavailable(e.to_string()))?;
        let Some(row) = row else {
            return Err(CatalogError::Schema(
                "pg_tenant is not installed in the catalog database (CREATE EXTENSION pg_tenant)"
                    .into(),
            ));
        };
        let extversion: String = row
            .try_get(0)
            .map_err(|e| CatalogError::Schema(format!("pg_extension.extversion: {e}")))?;
        let version = Version::parse(&extversion).ok_or_else(|| {
            CatalogError::Schema(format!(
                "pg_tenant's version {extversion:?} is not one this router reads"
            ))
        })?;
        Ok(Schema {
            extversion,
            version,
            read_at: Instant::now(),
        })
    }

    /// Whether to read it again before the next query: it is older than
    /// the newest and was read more than a second ago.
    pub fn due(&self, now: Instant) -> bool {
        self.version < Version::NEWEST && now.duration_since(self.read_at) >= RECHECK
    }

    /// The decoder of a lookup's rows (with the tenant's secret when
    /// there are secrets).
    pub fn lookups(&self) -> RowDecoder {
        RowDecoder {
            extversion: self.extversion.clone(),
            version: self.version,
            secret: self.version.has_secrets(),
        }
    }

    /// The decoder of an admin page's rows (never a secret).
    pub fn pages(&self) -> RowDecoder {
        RowDecoder {
            extversion: self.extversion.clone(),
            version: self.version,
            secret: false,
        }
    }
}

/// The columns every version returns, in order.
const BASE: [&str; 10] = [
    "id",
    "enabled",
    "isolation",
    "database_name",
    "schema_name",
    "max_connections",
    "qps_limit",
    "burst_multiplier",
    "max_query_ms",
    "max_result_bytes",
];
/// The pool columns (0.4.0), after `BASE`.
const POOL: [&str; 4] = ["dedicated_pool", "pool_size", "min_idle", "pool_mode"];
/// The client idle bound (0.6.0), after `POOL`.
const IDLE: &str = "client_idle_timeout_ms";
/// The sealed context of a database tenant (0.8.0), after `IDLE`.
const DOCUMENT: &str = "context_document";
/// The named upstream (0.9.0), after `DOCUMENT`.
const UPSTREAM: &str = "upstream";
/// The tenant's secret (0.3.0, lookups only), last.
const SECRET: &str = "auth_secret";

/// A row as the decoder reads it: `tokio_postgres::Row`, or a test's.
pub trait Columns {
    fn count(&self) -> usize;
    /// Column `i` as a `T` (`Row::try_get`).
    fn column<'a, T: FromSql<'a>>(&'a self, i: usize) -> Result<T, String>;
}

impl Columns for Row {
    fn count(&self) -> usize {
        self.len()
    }

    fn column<'a, T: FromSql<'a>>(&'a self, i: usize) -> Result<T, String> {
        self.try_get(i).map_err(|e| e.to_string())
    }
}

/// How the rows of one version of `tenant.router_catalog` (and of
/// `router_catalog_page`, which returns the same) are selected and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowDecoder {
    extversion: String,
    version: Version,
    /// The query adds `tenant.auth_secret(r.id) AS auth_secret`.
    secret: bool,
}

impl RowDecoder {
    /// The version whose rows these are.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The names of the columns, in the order selected.
    fn names(&self) -> Vec<&'static str> {
        let mut names = BASE.to_vec();
        if self.version >= Version::V0_4 {
            names.extend(POOL);
        }
        if self.version >= Version::V0_6 {
            names.push(IDLE);
        }
        if self.version >= Version::V0_8 {
            names.push(DOCUMENT);
        }
        if self.version >= Version::V0_9 {
            names.push(UPSTREAM);
        }
        if self.secret {
            names.push(SECRET);
        }
        names
    }

    /// The select list, over `tenant.router_catalog(...) AS r`.
    pub fn columns(&self) -> String {
        self.names()
            .iter()
            .map(|n| match *n {
                SECRET => "tenant.auth_secret(r.id) AS auth_secret".to_owned(),
                n => format!("r.{n}"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A row, read by the query numbered `seq`.
    pub fn decode(&self, row: &impl Columns, seq: u64) -> Result<TenantInfo, CatalogError> {
        let names = self.names();
        if row.count() != names.len() {
            return Err(self.shape(format!(
                "{} columns where {} were selected",
                row.count(),
                names.len()
            )));
        }
        let mut i = 0;
        let mut next = || {
            i += 1;
            i - 1
        };
        let mut info = TenantInfo {
            id: self.get(row, next())?,
            enabled: self.get(row, next())?,
            isolation: self.get(row, next())?,
            database_name: self.get(row, next())?,
            schema_name: self.get(row, next())?,
            max_connections: self.get(row, next())?,
            qps_limit: self.get(row, next())?,
            burst_multiplier: self.get(row, next())?,
            max_query_ms: self.get(row, next())?,
            max_result_bytes: self.get(row, next())?,
            auth_secret: None,
            // Before 0.4.0: the defaults.
            pool: PoolSettings::default(),
            // Before 0.6.0: no limit.
            client_idle_timeout_ms: 0,
            // Before 0.8.0: none (a database tenant is refused at login).
            context_document: None,
            // Before 0.9.0: the main upstream.
            upstream: None,
            read_seq: seq,
        };
        if self.version >= Version::V0_4 {
            let dedicated: Option<bool> = self.get(row, next())?;
            let size: Option<i32> = self.get(row, next())?;
            let min_idle: Option<i32> = self.get(row, next())?;
            let mode: Option<String> = self.get(row, next())?;
            // No mode: the defaults, as before 0.4.0.
            if let Some(mode) = mode {
                info.pool = PoolSettings {
                    mode: if mode == "transaction" {
                        PoolMode::Transaction
                    } else {
                        PoolMode::Session
                    },
                    dedicated: dedicated.unwrap_or(false),
                    size: size.unwrap_or(10),
                    min_idle: min_idle.unwrap_or(0),
                };
            }
        }
        if self.version >= Version::V0_6 {
            let idle: Option<i32> = self.get(row, next())?;
            info.client_idle_timeout_ms = idle.unwrap_or(0);
        }
        if self.version >= Version::V0_8 {
            let document: Option<String> = self.get(row, next())?;
            info.context_document = document.map(Into::into);
        }
        if self.version >= Version::V0_9 {
            let upstream: Option<String> = self.get(row, next())?;
            // "main" names the main upstream (the catalog stores it as NULL).
            info.upstream = upstream.filter(|u| u != "main");
        }
        if self.secret {
            let secret: Option<String> = self.get(row, next())?;
            info.auth_secret = secret.map(Redacted);
        }
        Ok(info)
    }

    /// Column `i`, or what is wrong with it.
    fn get<'a, T: FromSql<'a>>(&self, row: &'a impl Columns, i: usize) -> Result<T, CatalogError> {
        row.column(i).map_err(|e| {
            let name = self.names().get(i).copied().unwrap_or("?");
            self.shape(format!("column {i} ({name}): {e}"))
        })
    }

    fn shape(&self, detail: String) -> CatalogError {
        CatalogError::Shape {
            version: self.extversion.clone(),
            detail,
        }
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
