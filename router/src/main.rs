//! `tenant-router`: command line, logging, signals.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tenant_router::config::{Config, LogFormat, Overrides};
use tenant_router::server::{self, Shared};

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
    /// Address to listen on, e.g. 127.0.0.1:6432.
    #[arg(long, env = "TENANT_ROUTER_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// PostgreSQL host:port.
    #[arg(long, env = "TENANT_ROUTER_UPSTREAM")]
    upstream: Option<String>,
    /// File holding the context key.
    #[arg(long, env = "TENANT_ROUTER_CONTEXT_KEY_FILE")]
    context_key_file: Option<PathBuf>,
    /// Connection string of the router's catalog role.
    #[arg(long, env = "TENANT_ROUTER_CATALOG_URL")]
    catalog_url: Option<String>,
    /// Log format: text or json.
    #[arg(long, env = "TENANT_ROUTER_LOG_FORMAT", value_parser = parse_format)]
    log_format: Option<LogFormat>,
}

fn parse_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("unknown log format \"{s}\": use text or json")),
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

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
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

async fn run(cli: Cli) -> ExitCode {
    let over = Overrides {
        listen: cli.listen,
        upstream: cli.upstream.clone(),
        context_key_file: cli.context_key_file.clone(),
        catalog_url: cli.catalog_url.clone(),
        log_format: cli.log_format,
    };
    let cfg = match Config::load(cli.config.as_deref(), &over) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tenant-router: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check {
        println!("tenant-router: configuration is valid");
        return ExitCode::SUCCESS;
    }
    init_logging(cfg.log_format);
    let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %cfg.listen, error = %e, "cannot listen");
            return ExitCode::from(1);
        }
    };
    tracing::info!(listen = %cfg.listen, upstream = %cfg.upstream, "tenant-router listening");
    let shared = Shared::new(Arc::new(cfg));
    server::run(listener, shared, shutdown_signal(), Duration::from_secs(30)).await;
    ExitCode::SUCCESS
}
