//! `tenant-router`: command line, logging, signals (SIGTERM/SIGINT drain,
//! SIGHUP reloads the configuration), the admin API.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tenant_router::admin;
use tenant_router::config::{Config, LogFormat, Overrides};
use tenant_router::server::{self, Shared};
use tenant_router::tools;
use tokio::signal::unix::{signal, SignalKind};

/// Tenant-aware PostgreSQL proxy: reads the tenant from the user name
/// (`app_user.acme`), rewrites it, relays authentication and sets a
/// tamper-proof tenant context through the pg_tenant extension.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// TOML config file (see router/tenant-router.toml).
    #[arg(short, long, env = "TENANT_ROUTER_CONFIG")]
    config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Print the public key of the signing key (the value for PostgreSQL's
    /// pg_tenant.context_public_keys) and exit.
    #[arg(long)]
    print_public_key: bool,
    /// The settings the environment and the command line put over the file.
    #[command(flatten)]
    over: Overrides,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Administration commands (they run and exit; the proxy does not start).
#[derive(Subcommand, Debug)]
enum Command {
    /// Tenant administration against the catalog database.
    #[command(subcommand)]
    Tenants(Tenants),
}

#[derive(Subcommand, Debug)]
enum Tenants {
    /// Give a database-isolated tenant its database: create it (from
    /// --template), revoke CONNECT from PUBLIC and grant it to the tenant's
    /// login roles, install pg_tenant, bind it to the tenant, create the
    /// tenant's role if missing. Idempotent.
    Provision {
        /// The catalog database, as a role that may create databases and
        /// roles (`--url`, env PG_TENANT_ADMIN_URL, as for `migrate`).
        #[command(flatten)]
        admin: tools::admin::AdminArgs,
        /// The tenant's id.
        id: String,
        /// The template of a database created (default template1).
        #[arg(long)]
        template: Option<String>,
    },
    /// Apply a SQL script to every schema tenant's schema (or the named
    /// ones), each in its own transaction, as the tenant's role; a script
    /// already applied to a schema is skipped
    /// (docs/src/operations/migrations.md).
    Migrate(tools::migrate::MigrateArgs),
    /// Move a tenant's rows to another upstream, live, with logical
    /// replication: copy, catch up, pause, flip the catalog, resume
    /// (docs/src/scaling-out/moving-a-tenant.md).
    Move(tools::move_tenant::MoveArgs),
    /// Make the catalog hold the tenants a file declares (TOML or JSON):
    /// print the diff (created, changed field by field, unchanged, and with
    /// --prune dropped) and apply it through the SQL API in one
    /// transaction. Exit 0 done, 1 refused by the catalog (nothing
    /// changed), 2 not tried (docs/src/operations/tenants-file.md).
    Apply(tools::declare::ApplyArgs),
    /// Print the catalog's tenants as a tenants file (`apply` of it is a
    /// no-op). Secrets are not exported.
    Export(tools::declare::ExportArgs),
}

/// Run an administration command; its report on stdout, errors on stderr.
async fn run_command(command: Command, config: Option<&Path>, over: &Overrides) -> ExitCode {
    match command {
        Command::Tenants(Tenants::Apply(args)) => tools::declare::apply(args, config, over).await,
        Command::Tenants(Tenants::Export(args)) => tools::declare::export(args, config, over).await,
        Command::Tenants(Tenants::Migrate(args)) => tools::migrate::run(args).await,
        Command::Tenants(Tenants::Move(args)) => tools::move_tenant::run(args).await,
        Command::Tenants(Tenants::Provision {
            admin,
            id,
            template,
        }) => match tools::provision::provision(&admin.url, &id, template.as_deref()).await {
            Ok(report) => {
                for (step, outcome) in report {
                    println!("{step}: {outcome}");
                }
                println!("tenant \"{id}\" is provisioned");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tenant-router tenants provision: {e}");
                ExitCode::from(1)
            }
        },
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TENANT_ROUTER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// SIGTERM and SIGINT, each one a message: the first drains, a second
/// closes what is left at once.
fn stop_signals() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    if tx.send(()).await.is_err() {
                        break;
                    }
                }
            });
        }
        _ => tracing::warn!("cannot watch SIGTERM/SIGINT"),
    }
    rx
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = std::env::var("TENANT_ROUTER_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if threads > 1 {
            b.worker_threads(threads);
        }
        b.enable_all().build()
    };
    match runtime {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("tenant-router: cannot start the runtime: {e}");
            ExitCode::from(1)
        }
    }
}

/// On each SIGHUP, re-read the config file (with the same environment and
/// flags over it); an invalid one changes nothing.
async fn reload_on_hangup(cli: Arc<Cli>, shared: Arc<Shared>) {
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; reloading is off");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let loaded = Config::load(cli.config.as_deref(), &cli.over)
            .and_then(|cfg| cfg.check_reload(&shared.config()).map(|()| cfg));
        match loaded {
            Ok(cfg) => {
                let kept = shared.reload(cfg);
                shared.metrics.reloads.with_label_values(&["ok"]).inc();
                if kept.is_empty() {
                    tracing::info!("configuration reloaded");
                } else {
                    tracing::warn!(
                        unchanged = ?kept,
                        "configuration reloaded; these settings need a restart and keep their running values"
                    );
                }
            }
            Err(e) => {
                shared.metrics.reloads.with_label_values(&["error"]).inc();
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
            }
        }
    }
}

async fn run(mut cli: Cli) -> ExitCode {
    if let Some(command) = cli.command.take() {
        return run_command(command, cli.config.as_deref(), &cli.over).await;
    }
    let mut cfg = match Config::load(cli.config.as_deref(), &cli.over) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tenant-router: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.print_public_key {
        if let Some(k) = &cfg.signing_key {
            println!("{}", pg_tenant_token::public_key_hex(k));
        }
        return ExitCode::SUCCESS;
    }
    if cli.check {
        println!("tenant-router: configuration is valid");
        return ExitCode::SUCCESS;
    }
    init_logging(cfg.fixed.log_format);
    let listener = match tenant_router::fleet::listen(cfg.fixed.listen, cfg.fixed.fleet_reuse_port)
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %cfg.fixed.listen, error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    let admin = match cfg.fixed.admin_addr() {
        None => None,
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!(admin_listen = %addr, error = %e, "cannot listen for the admin API");
                return ExitCode::from(1);
            }
        },
    };
    // Port 0 lets the OS pick: the running configuration holds the
    // addresses actually bound, which the line below reports (and a
    // reloaded file naming them is no change).
    if let Ok(addr) = listener.local_addr() {
        std::sync::Arc::make_mut(&mut cfg.fixed).listen = addr;
    }
    if let Some(addr) = admin.as_ref().and_then(|l| l.local_addr().ok()) {
        std::sync::Arc::make_mut(&mut cfg.fixed).admin_listen = addr.to_string();
    }
    tracing::info!(listen = %cfg.fixed.listen, upstream = %cfg.upstream, admin = %cfg.fixed.admin_listen, "tenant-router listening");
    let shared = Shared::new(Arc::new(cfg));
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_task = admin.map(|l| {
        tokio::spawn(admin::serve(l, shared.clone(), async move {
            let _ = admin_stopped.await;
        }))
    });
    let reload = tokio::spawn(reload_on_hangup(Arc::new(cli), shared.clone()));
    server::run(listener, shared, stop_signals()).await;
    reload.abort();
    let _ = admin_stop.send(());
    if let Some(t) = admin_task {
        // In-flight admin requests get a moment; idle ones are dropped.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
    }
    ExitCode::SUCCESS
}
