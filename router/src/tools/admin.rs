//! The administrator connection every `tenants` tool uses: the `--url`
//! argument, connecting, the checks made before anything runs.

use clap::Args;
use std::str::FromStr;
use tokio_postgres::{Client, NoTls};

/// How a tool reaches PostgreSQL.
#[derive(Args, Debug, Clone)]
pub struct AdminArgs {
    /// Connection string of an administrator (a superuser): libpq
    /// key=value (`host=/var/run/postgresql dbname=app user=postgres`) or a
    /// postgres:// URL. TLS is not supported here (sslmode=disable or
    /// prefer).
    #[arg(long, env = "PG_TENANT_ADMIN_URL", hide_env_values = true)]
    pub url: String,
}

/// Exit code of a tool that could not start (bad arguments, connection,
/// missing extension, ...).
pub const EXIT_SETUP: u8 = 2;

/// What stops a tool before it does anything.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadUrl(String),
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("{0}")]
    Query(String),
    #[error("pg_tenant is not installed in database \"{0}\" (CREATE EXTENSION pg_tenant)")]
    NoExtension(String),
    #[error(
        "pg_tenant {version} in database \"{db}\" has no {object}: update it (ALTER EXTENSION pg_tenant UPDATE)"
    )]
    OldExtension {
        version: String,
        db: String,
        object: String,
    },
    #[error("role \"{0}\" is not a superuser: {1}")]
    NotSuperuser(String, &'static str),
}

/// A database error's SQLSTATE and message (with detail and hint), or the
/// client error's text.
pub fn error_text(e: &tokio_postgres::Error) -> (Option<String>, String) {
    match e.as_db_error() {
        Some(db) => {
            let mut msg = db.message().to_string();
            if let Some(d) = db.detail() {
                msg.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = db.hint() {
                msg.push_str(&format!(" (hint: {h})"));
            }
            (Some(db.code().code().to_string()), msg)
        }
        None => (None, crate::logtext::with_causes(e)),
    }
}

fn db_error(e: tokio_postgres::Error) -> AdminError {
    let (code, msg) = error_text(&e);
    AdminError::Query(match code {
        Some(c) => format!("{msg} (SQLSTATE {c})"),
        None => msg,
    })
}

/// The parsed connection string.
pub fn admin_config(url: &str) -> Result<tokio_postgres::Config, AdminError> {
    tokio_postgres::Config::from_str(url)
        .map_err(|e| AdminError::BadUrl(crate::logtext::with_causes(&e)))
}

/// Open one administrator connection (its connection task is spawned).
pub async fn connect_admin(config: &tokio_postgres::Config) -> Result<Client, AdminError> {
    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
        let (code, msg) = error_text(&e);
        AdminError::Connect(match code {
            Some(c) => format!("{msg} (SQLSTATE {c})"),
            None => msg,
        })
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The connected database, the installed pg_tenant version (error when
/// missing) and whether the role is a superuser.
pub async fn check_extension(client: &Client) -> Result<(String, String, bool), AdminError> {
    let row = client
        .query_one(
            "SELECT pg_catalog.current_database()::pg_catalog.text, \
                    (SELECT e.extversion FROM pg_catalog.pg_extension e \
                      WHERE e.extname OPERATOR(pg_catalog.=) 'pg_tenant'), \
                    (SELECT r.rolsuper FROM pg_catalog.pg_roles r \
                      WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)",
            &[],
        )
        .await
        .map_err(db_error)?;
    let db: String = row.get(0);
    let version: Option<String> = row.get(1);
    let superuser: Option<bool> = row.get(2);
    match version {
        Some(v) => Ok((db, v, superuser.unwrap_or(false))),
        None => Err(AdminError::NoExtension(db)),
    }
}

/// The current user's name.
pub async fn current_user(client: &Client) -> Result<String, AdminError> {
    let row = client
        .query_one("SELECT CURRENT_USER::pg_catalog.text", &[])
        .await
        .map_err(db_error)?;
    Ok(row.get(0))
}
