//! `tenant-router tenants migrate`: one SQL script applied to every
//! schema-isolated tenant's schema (or the named tenants'), each in a
//! transaction of its own, `--parallel` at a time.
//!
//! This file reads the arguments, checks everything before any tenant runs
//! (the connection, pg_tenant, the tenants named, what is recorded) and
//! reports; `apply` runs one tenant's transaction.
//!
//! Why a superuser: a role that is a member of the tenant roles is, through
//! them, a member of `tenant_app`, i.e. an application role, and pg_tenant
//! refuses an application role without a tenant context any `SET ROLE`
//! (the role lock) and raw advisory locks (confinement), as it must for an
//! application's login role used directly. The script itself, run as the
//! tenant role, is confined like any code of that role.

use super::admin::{
    admin_config, check_extension, connect_admin, current_user, error_text, AdminArgs, AdminError,
    EXIT_SETUP,
};
use super::apply::{changed, no_role, worker, Done, Migration, Status, Tenant};
use clap::{Args, ValueEnum};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;

/// `tenants migrate` arguments.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// The migration's name, recorded per schema (1 to 200 bytes): a schema
    /// that has it is skipped.
    #[arg(long)]
    pub name: String,
    /// The SQL script (no BEGIN/COMMIT: each tenant's run is one transaction).
    pub file: PathBuf,
    /// Only this tenant (repeat for several); default: every schema tenant.
    #[arg(long = "tenant", value_name = "ID")]
    pub tenants: Vec<String>,
    /// Tenants migrated at once (one connection each), 1 to 64.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// After a tenant fails: stop starting others (those running finish),
    /// or continue with the rest.
    #[arg(long, value_enum, default_value_t = OnError::Stop)]
    pub on_error: OnError,
    /// Report as text lines (as tenants finish) or one JSON object at the end.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    Stop,
    Continue,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// What stops a migration before any tenant runs.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Admin(#[from] AdminError),
    #[error("cannot read {path}: {err}")]
    File { path: String, err: std::io::Error },
    #[error("{0} is not UTF-8 text")]
    NotUtf8(String),
    #[error("{0} holds no SQL")]
    Empty(String),
    #[error("invalid migration name {0:?}: 1 to 200 bytes, no control characters")]
    BadName(String),
    #[error("unknown tenant \"{0}\"")]
    UnknownTenant(String),
    #[error("tenant \"{0}\" is not schema-isolated (isolation \"{1}\"): only schema tenants are migrated")]
    NotSchema(String, String),
    #[error("tenant \"{0}\" lives on upstream \"{1}\", not on this server: its schema here (if any) is not the one its sessions use; migrate it on that server")]
    Elsewhere(String, String),
}

/// Read and check everything, then migrate; the exit code.
pub async fn run(args: MigrateArgs) -> ExitCode {
    match prepare(&args).await {
        Ok(plan) => execute(plan, &args).await,
        Err(e) => {
            eprintln!("tenant-router tenants migrate: {e}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

/// Everything `execute` needs, checked before any tenant runs.
struct Plan {
    config: Arc<tokio_postgres::Config>,
    clients: Vec<Client>,
    m: Arc<Migration>,
    tenants: Vec<Tenant>,
    /// Outcomes known before running (index into `tenants`).
    known: HashMap<usize, Status>,
    start: Instant,
}

async fn prepare(args: &MigrateArgs) -> Result<Plan, MigrateError> {
    let start = Instant::now();
    let name = args.name.clone();
    if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
        return Err(MigrateError::BadName(name));
    }
    let path = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).map_err(|err| MigrateError::File {
        path: path.clone(),
        err,
    })?;
    let script = String::from_utf8(bytes).map_err(|_| MigrateError::NotUtf8(path.clone()))?;
    if script.trim().is_empty() {
        return Err(MigrateError::Empty(path));
    }
    let checksum = hex::encode(Sha256::digest(script.as_bytes()));
    let config = Arc::new(admin_config(&args.admin.url)?);
    let first = connect_admin(&config).await?;
    let (db, version, superuser) = check_extension(&first).await?;
    if !superuser {
        return Err(AdminError::NotSuperuser(
            current_user(&first).await?,
            "the migration runs each script as the tenant's role, locked for its transaction \
             (tenant.lock_role_for_transaction, for superusers only), and pg_tenant refuses a \
             plain SET ROLE to any other role without a tenant context: a member of the tenant \
             roles is an application role through them",
        )
        .into());
    }
    let has_table: bool = first
        .query_one(
            "SELECT pg_catalog.to_regclass('tenant.schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(query_error)?
        .get(0);
    if !has_table {
        return Err(AdminError::OldExtension {
            version,
            db,
            object: "tenant.schema_migrations (0.8.0)".into(),
        }
        .into());
    }
    let tenants = select_tenants(&first, &args.tenants).await?;
    let recorded: HashMap<String, String> = first
        .query(
            "SELECT s.schema_name::pg_catalog.text, s.checksum FROM tenant.schema_migrations s \
              WHERE s.migration OPERATOR(pg_catalog.=) $1",
            &[&name],
        )
        .await
        .map_err(query_error)?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let m = Arc::new(Migration {
        name,
        checksum,
        script,
        stop_on_error: args.on_error == OnError::Stop,
    });
    let mut known = HashMap::new();
    for (i, t) in tenants.iter().enumerate() {
        match recorded.get(&t.schema) {
            Some(sum) if *sum == m.checksum => known.insert(i, Status::Skipped),
            Some(_) => known.insert(i, changed(&m, &t.schema)),
            None if t.role.is_none() => known.insert(i, no_role(t)),
            None => None,
        };
    }
    let to_run = tenants.len() - known.len();
    let mut clients = vec![first];
    for _ in 1..to_run.min(args.parallel as usize) {
        clients.push(connect_admin(&config).await?);
    }
    Ok(Plan {
        config,
        clients,
        m,
        tenants,
        known,
        start,
    })
}

fn query_error(e: tokio_postgres::Error) -> MigrateError {
    let (code, msg) = error_text(&e);
    AdminError::Query(format!("{msg} (SQLSTATE {})", code.unwrap_or_default())).into()
}

/// A catalog row: id, isolation, schema, role, shared schemas, the named
/// upstream it lives on (None: the main one, this server).
type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Vec<String>,
    Option<String>,
);

/// The schema tenants, in id order (byte order); with `named`, exactly
/// those, each of which must exist and be a schema tenant. A tenant's
/// `shared_schemas` (the operator's schemas its sessions have after their
/// own on `search_path`; read through `to_jsonb` so that a catalog without
/// the column reads as none) go on the migration's path the same way. A
/// tenant the catalog places on a named upstream (0.9.0, docs/src/scaling-out/index.md)
/// lives on another server: named, it is refused; otherwise it is
/// left out, and said so on stderr.
async fn select_tenants(client: &Client, named: &[String]) -> Result<Vec<Tenant>, MigrateError> {
    let rows = client
        .query(
            "SELECT t.id, t.isolation, t.schema_name::pg_catalog.text, t.role_name::pg_catalog.text, \
                    ARRAY(SELECT x OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[] \
                            FROM pg_catalog.jsonb_path_query(pg_catalog.to_jsonb(t), \
                                 '$.shared_schemas[*] ? (@.type() == \"string\")') x), \
                    pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.->>) 'upstream'::pg_catalog.text \
               FROM tenant.tenants t ORDER BY t.id COLLATE \"C\"",
            &[],
        )
        .await
        .map_err(query_error)?;
    let mut all: Vec<Row> = rows
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect();
    if !named.is_empty() {
        for id in named {
            match all.iter().find(|t| &t.0 == id) {
                None => return Err(MigrateError::UnknownTenant(id.clone())),
                Some(t) if t.1 != "schema" => {
                    return Err(MigrateError::NotSchema(id.clone(), t.1.clone()))
                }
                Some((_, _, _, _, _, Some(up))) => {
                    return Err(MigrateError::Elsewhere(id.clone(), up.clone()))
                }
                Some(_) => {}
            }
        }
        all.retain(|t| named.contains(&t.0));
    }
    all.retain(|t| t.1 == "schema");
    let elsewhere: Vec<String> = all
        .iter()
        .filter_map(|t| t.5.as_ref().map(|up| format!("{} (upstream {up})", t.0)))
        .collect();
    if !elsewhere.is_empty() {
        eprintln!(
            "tenant-router tenants migrate: not migrated here, living on another server: {}",
            elsewhere.join(", ")
        );
    }
    Ok(all
        .into_iter()
        .filter(|t| t.5.is_none())
        .filter_map(|(id, _, schema, role, shared, _)| {
            schema.map(|schema| Tenant {
                id,
                schema,
                role,
                shared,
            })
        })
        .collect())
}

async fn execute(plan: Plan, args: &MigrateArgs) -> ExitCode {
    let Plan {
        config,
        clients,
        m,
        tenants,
        mut known,
        start,
    } = plan;
    let text = args.format == Format::Text;
    let mut results: Vec<Option<(Status, u128)>> = vec![None; tenants.len()];
    let mut queue = Vec::new();
    let mut order = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        match known.remove(&i) {
            Some(s) => {
                if text {
                    println!("{}", line(t, &s, 0));
                }
                results[i] = Some((s, 0));
            }
            None => {
                queue.push(t.clone());
                order.push(i);
            }
        }
    }
    let failed_before = results
        .iter()
        .any(|r| matches!(r, Some((Status::Failed { .. }, _))));
    let stop = Arc::new(AtomicBool::new(failed_before && m.stop_on_error));
    let queue = Arc::new(queue);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
    for client in clients {
        tokio::spawn(worker(
            client,
            config.clone(),
            queue.clone(),
            next.clone(),
            stop.clone(),
            m.clone(),
            tx.clone(),
        ));
    }
    drop(tx);
    while let Some((q, status, ms)) = rx.recv().await {
        let i = order[q];
        if text {
            println!("{}", line(&tenants[i], &status, ms));
        }
        results[i] = Some((status, ms));
    }
    let results: Vec<(Status, u128)> = results
        .into_iter()
        .map(|r| r.unwrap_or((Status::NotRun, 0)))
        .collect();
    if text {
        for (t, (s, _)) in tenants.iter().zip(&results) {
            if *s == Status::NotRun {
                println!("{}", line(t, s, 0));
            }
        }
    }
    let count = |label: &str| results.iter().filter(|(s, _)| s.label() == label).count();
    let (applied, skipped, failed, not_run) = (
        count("applied"),
        count("skipped"),
        count("failed"),
        count("not_run"),
    );
    let secs = start.elapsed().as_secs_f64();
    if text {
        println!(
            "migrate {}: {applied} applied, {skipped} skipped, {failed} failed, {not_run} not run in {secs:.2} s",
            m.name
        );
    } else {
        let rows: Vec<serde_json::Value> = tenants
            .iter()
            .zip(&results)
            .map(|(t, (s, ms))| {
                let (sqlstate, message) = match s {
                    Status::Failed { sqlstate, message } => (sqlstate.clone(), Some(message)),
                    _ => (None, None),
                };
                serde_json::json!({
                    "tenant": t.id, "schema": t.schema, "status": s.label(),
                    "sqlstate": sqlstate, "message": message, "ms": ms,
                })
            })
            .collect();
        let out = serde_json::json!({
            "migration": m.name, "checksum": m.checksum, "tenants": rows,
            "applied": applied, "skipped": skipped, "failed": failed, "not_run": not_run,
            "seconds": (secs * 1000.0).round() / 1000.0,
        });
        println!("{out}");
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// One tenant's report line.
fn line(t: &Tenant, s: &Status, ms: u128) -> String {
    let what = match s {
        Status::Applied => format!("applied ({ms} ms)"),
        Status::Skipped => "skipped (already applied)".to_string(),
        Status::Failed { sqlstate, message } => format!(
            "FAILED {}: {message}",
            sqlstate.as_deref().unwrap_or("-----")
        ),
        Status::NotRun => "not run (stopped after a failure)".to_string(),
    };
    format!("tenant {} (schema {}): {what}", t.id, t.schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_name_tenant_schema_and_outcome() {
        let t = Tenant {
            id: "acme".into(),
            schema: "acme_s".into(),
            role: None,
            shared: vec![],
        };
        assert_eq!(
            line(&t, &Status::failed("42701", "column exists".into()), 3),
            "tenant acme (schema acme_s): FAILED 42701: column exists"
        );
        assert_eq!(
            line(&t, &Status::Skipped, 0),
            "tenant acme (schema acme_s): skipped (already applied)"
        );
    }
}
