//! What the steps of `tenants move` share: its arguments, its error, the
//! steps, the state of a move (`Move`: the servers, the router's admin API,
//! the tables, what was made so far) and the wait for the target to catch
//! up. `move_tenant` runs the steps before the pause, `move_flip` the rest.

use super::admin::AdminArgs;
use super::admin_api::AdminApi;
use super::move_sql::{self as sql, ReplicationNames, Table};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// `tenants move` arguments.
#[derive(Args, Debug)]
pub struct MoveArgs {
    /// Connection string of a superuser in the catalog database.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The router's configuration: its admin API (admin_listen,
    /// admin_token; TENANT_ROUTER_ADMIN_TOKEN overrides the token) and its
    /// upstreams' addresses.
    #[arg(short = 'c', long = "config", env = "TENANT_ROUTER_CONFIG")]
    pub config: PathBuf,
    /// The tenant.
    pub id: String,
    /// The upstream to move it to (`main` or an `[upstreams.<name>]`).
    #[arg(long)]
    pub to: String,
    /// Superuser connection string of the tenant's database on the source
    /// (default: the catalog's URL, pointed at the source's address).
    #[arg(long, env = "PG_TENANT_MOVE_SOURCE_URL", hide_env_values = true)]
    pub source_url: Option<String>,
    /// Superuser connection string of the tenant's database on the target
    /// (default: the catalog's URL, pointed at the target's address).
    #[arg(long, env = "PG_TENANT_MOVE_TARGET_URL", hide_env_values = true)]
    pub target_url: Option<String>,
    /// How the target connects to the source for the subscription
    /// (default: the source URL).
    #[arg(long, hide_env_values = true)]
    pub publisher_conninfo: Option<String>,
    /// Directory of pg_dump (default: found on PATH).
    #[arg(long)]
    pub pg_bin: Option<PathBuf>,
    /// After the move, delete the tenant's rows on the source.
    #[arg(long)]
    pub drop_source: bool,
    /// Undo an interrupted move (before its flip): drop the replication
    /// objects and the rows copied to the target, unfence the source,
    /// resume the tenant.
    #[arg(long)]
    pub abort: bool,
    /// Longest wait for the initial copy and catch-up.
    #[arg(long, default_value_t = 3_600_000)]
    pub sync_timeout_ms: u64,
    /// Longest wait for the tenant's running transactions once paused.
    #[arg(long, default_value_t = 10_000)]
    pub quiet_timeout_ms: u64,
    /// Longest wait for zero lag once paused (then the move is undone).
    #[arg(long, default_value_t = 10_000)]
    pub lag_timeout_ms: u64,
    /// Also compare count and checksum of the tenant's rows on both sides
    /// while paused (the move is undone when they differ). It reads every
    /// row of the tenant on both servers inside the pause: about 2 s per
    /// million rows (docs/src/benchmarks/move.md).
    #[arg(long)]
    pub verify: bool,
}

/// Why a move stopped.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Sql(#[from] sql::SqlError),
    #[error(transparent)]
    Api(#[from] super::admin_api::ApiError),
    #[error("{0}")]
    Refused(String),
    #[error("{what} did not happen within {ms} ms")]
    Timeout { what: String, ms: u64 },
}

/// The steps, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Check,
    Schema,
    Publish,
    Subscribe,
    Sync,
    Pause,
    Fence,
    EndBackends,
    ZeroLag,
    Verify,
    Sequences,
    Flip,
    Resume,
    CleanUp,
    DropSource,
}

/// The two servers and what the move made so far.
pub(super) struct Move {
    pub(super) id: String,
    pub(super) to: String,
    pub(super) src: Client,
    pub(super) dst: Client,
    pub(super) catalog: Client,
    pub(super) api: AdminApi,
    pub(super) names: ReplicationNames,
    pub(super) schema: Option<String>,
    pub(super) tables: Vec<Table>,
    /// The source's connection string (libpq key=value), the publisher's
    /// by default.
    pub(super) source_conninfo: String,
    /// The same without its password, for pg_dump's command line (which
    /// every local user can read in `ps`); the password goes in its
    /// environment (`PGPASSWORD`).
    pub(super) dump_conninfo: String,
    pub(super) source_password: Option<String>,
    pub(super) started: Instant,
    /// The last step begun.
    pub(super) at: Step,
}

impl Move {
    pub(super) fn log(&self, step: Step, msg: impl std::fmt::Display) {
        println!(
            "{:>8.3}s move {} {:?}: {msg}",
            self.started.elapsed().as_secs_f64(),
            self.id,
            step
        );
    }

    pub(super) fn begin(&mut self, step: Step, msg: impl std::fmt::Display) {
        self.at = step;
        self.log(step, msg);
    }
}

/// Wait until the slot has confirmed `lsn`.
pub async fn wait_lag(
    m: &Move,
    lsn: &str,
    deadline: Instant,
    ms: u64,
    every: Duration,
) -> Result<(), MoveError> {
    loop {
        let behind = sql::behind(&m.src, &m.names, lsn).await?;
        if behind == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(MoveError::Timeout {
                what: format!("the target catching up to {lsn} ({behind} bytes behind)"),
                ms,
            });
        }
        tokio::time::sleep(every).await;
    }
}
