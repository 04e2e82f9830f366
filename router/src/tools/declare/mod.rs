//! `tenant-router tenants apply FILE` and `tenants export`: tenants
//! declared in a file (docs/src/operations/tenants-file.md).
//!
//! * `base`: the error, the output formats, stdout (a leaf).
//! * `fields`: the table of catalog fields everything else reads.
//! * `spec`: reading and checking a file.
//! * `diff`: what applying it changes (pure, unit-tested).
//! * `catalog`: the connection, reading the catalog, the one transaction
//!   that applies a diff through the SQL API.
//! * `report`: the diff as text or JSON, and export's document.
//!
//! Exit codes: 0 done (or a dry run), 1 the catalog refused a change (all
//! rolled back), 2 nothing was tried (bad arguments, file, configuration,
//! connection).

pub mod base;
pub mod catalog;
pub mod diff;
pub mod fields;
pub mod report;
pub mod secret;
pub mod spec;

use super::admin::EXIT_SETUP;
use crate::config::{Overrides, RawConfig};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use base::{one_line, write_stdout, ApplyFormat, DeclareError, ExportFormat};

/// Where the catalog is and who writes it.
#[derive(Args, Debug, Clone)]
pub struct CatalogArgs {
    /// The router's config file: its [catalog] url names the catalog
    /// database (default: TENANT_ROUTER_CONFIG, else the router's built-in
    /// defaults, as for the router itself).
    #[arg(short, long, env = "TENANT_ROUTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The role that writes the catalog (a superuser, or a member of
    /// tenant_admin without secrets), in place of the router's own catalog
    /// role, which may only read it (or of the --url's role). Its password, if one is needed, comes
    /// from PG_TENANT_ADMIN_PASSWORD.
    #[arg(long, env = "PG_TENANT_ADMIN_USER")]
    pub user: Option<String>,
    /// A whole administrator connection string instead of the router's
    /// catalog url (as `tenants migrate --url`).
    #[arg(long, env = "PG_TENANT_ADMIN_URL", hide_env_values = true)]
    pub url: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    /// The tenants file (TOML, or JSON when it ends in .json).
    pub file: PathBuf,
    /// Show the diff, check it against the catalog in a transaction that
    /// is rolled back, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Drop the tenants the catalog has and the file does not.
    #[arg(long)]
    pub prune: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub format: ApplyFormat,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[arg(long, value_enum, default_value = "toml")]
    pub format: ExportFormat,
}

/// The catalog connection: `--url`, else the router's [catalog] url (as
/// the router loads its file: the file, then TENANT_ROUTER_* and `over`)
/// with `--user` and PG_TENANT_ADMIN_PASSWORD over its role.
pub fn connection(
    args: &CatalogArgs,
    fallback_config: Option<&Path>,
    over: &Overrides,
) -> Result<tokio_postgres::Config, DeclareError> {
    let mut config = match &args.url {
        Some(url) => {
            super::admin::admin_config(url).map_err(|e| DeclareError::Config(e.to_string()))?
        }
        None => {
            let path = args.config.as_deref().or(fallback_config);
            let mut raw = RawConfig::read(path).map_err(|e| DeclareError::Config(e.to_string()))?;
            raw.apply(over);
            raw.validate()
                .map_err(|e| DeclareError::Config(e.to_string()))?;
            let mut config = super::admin::admin_config(&raw.catalog.url).map_err(|e| {
                DeclareError::Config(format!("[catalog] url of the router's configuration: {e}"))
            })?;
            // The router role's password, unless --user runs as another
            // role (then the file, maybe the router's user's only, is not
            // read: its password would not be sent anyway).
            if !raw.catalog.password_file.is_empty() && args.user.is_none() {
                let password = crate::config::read_password_file(&raw.catalog.password_file)
                    .map_err(|e| DeclareError::Config(e.to_string()))?;
                config.password(password);
            }
            config
        }
    };
    // --user over either url (with --url it was ignored: the run went on
    // as the url's role).
    if let Some(user) = &args.user {
        // The router role's password (if the url holds one) is not sent
        // for another role.
        config.user(user);
        config.password(std::env::var("PG_TENANT_ADMIN_PASSWORD").unwrap_or_default());
    }
    Ok(config)
}

/// `tenants apply`.
pub async fn apply(args: ApplyArgs, fallback_config: Option<&Path>, over: &Overrides) -> ExitCode {
    let result = async {
        let declared = spec::read(&args.file)?;
        if args.prune && declared.tenants.is_empty() {
            return Err(DeclareError::Syntax(
                "the file declares no tenants: --prune would drop every tenant (drop them with \
                 tenant.drop_tenant if that is what you mean)"
                    .to_string(),
            ));
        }
        let config = connection(&args.catalog, fallback_config, over)?;
        catalog::apply(&config, &declared, args.prune, args.dry_run, args.format).await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenant-router tenants apply: {}", one_line(&e.to_string()));
            e.exit_code()
        }
    }
}

/// `tenants export`.
pub async fn export(
    args: ExportArgs,
    fallback_config: Option<&Path>,
    over: &Overrides,
) -> ExitCode {
    let result = async {
        let config = connection(&args.catalog, fallback_config, over)?;
        catalog::export(&config, args.format).await
    }
    .await;
    match result {
        Ok(doc) => match write_stdout(&doc) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tenant-router tenants export: cannot write to stdout: {e}");
                ExitCode::from(EXIT_SETUP)
            }
        },
        Err(e) => {
            eprintln!("tenant-router tenants export: {}", one_line(&e.to_string()));
            e.exit_code()
        }
    }
}
