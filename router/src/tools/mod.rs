//! Operator tools run from the command line, next to the proxy:
//! `tenant-router tenants <command>`. Each connects to PostgreSQL as an
//! administrator (`admin`), not through the proxy.
//!
//! * `tenants migrate` ([`migrate`]): apply one SQL script to every
//!   schema-isolated tenant's schema.

pub mod admin;
mod apply;
pub mod migrate;

use clap::Subcommand;
use std::process::ExitCode;

/// `tenant-router tenants ...`: one variant per command.
#[derive(Subcommand, Debug)]
pub enum TenantsCommand {
    /// Apply a SQL script to every schema tenant's schema (or the named
    /// ones), each in its own transaction, as the tenant's role; a script
    /// already applied to a schema is skipped.
    Migrate(migrate::MigrateArgs),
}

/// Run a `tenants` command; its exit code.
pub async fn run(cmd: TenantsCommand) -> ExitCode {
    match cmd {
        TenantsCommand::Migrate(args) => migrate::run(args).await,
    }
}
