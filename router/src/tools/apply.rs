//! One tenant's migration, on one administrator connection (a superuser):
//!
//! ```text
//! BEGIN
//! INSERT INTO tenant.schema_migrations (schema, name, sha256) ON CONFLICT DO NOTHING
//!     -- no row: the schema has it already (same checksum: skipped; other: failed)
//! SELECT tenant.lock_role_for_transaction(<tenant role>); SET LOCAL search_path = <schema>, <shared schemas>, pg_temp
//! <the script>                 -- objects it creates belong to the tenant role
//! COMMIT                       -- the record and the DDL together
//! ```
//!
//! The record goes in first: a second runner inserting the same key waits
//! on the primary key until the first commits (then skips) or rolls back
//! (then applies), so a migration never runs twice in a schema. Schemas
//! that already have the migration are read in one query up front, which
//! makes a re-run a no-op without a transaction per tenant.

use super::admin::{connect_admin, error_text};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_postgres::Client;

/// One schema tenant.
#[derive(Debug, Clone)]
pub(super) struct Tenant {
    pub(super) id: String,
    pub(super) schema: String,
    pub(super) role: Option<String>,
    /// The operator's schemas after the tenant's own on `search_path`.
    pub(super) shared: Vec<String>,
}

/// What happened to one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Applied,
    Skipped,
    Failed {
        sqlstate: Option<String>,
        message: String,
    },
    NotRun,
}

impl Status {
    pub(super) fn failed(sqlstate: &str, message: String) -> Status {
        Status::Failed {
            sqlstate: Some(sqlstate.to_string()),
            message,
        }
    }
    fn from_error(e: &tokio_postgres::Error) -> Status {
        let (sqlstate, message) = error_text(e);
        Status::Failed { sqlstate, message }
    }
    pub(super) fn label(&self) -> &'static str {
        match self {
            Status::Applied => "applied",
            Status::Skipped => "skipped",
            Status::Failed { .. } => "failed",
            Status::NotRun => "not_run",
        }
    }
}

/// The migration as every worker needs it.
pub(super) struct Migration {
    pub(super) name: String,
    pub(super) checksum: String,
    pub(super) script: String,
    /// Stop starting tenants after a failure (`--on-error stop`).
    pub(super) stop_on_error: bool,
}

/// A double-quoted SQL identifier.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub(super) fn changed(m: &Migration, schema: &str) -> Status {
    Status::failed(
        "55000",
        format!(
            "migration {} changed since it was applied to schema {schema}: its checksum differs \
             from the recorded one (a new change needs a new name)",
            m.name
        ),
    )
}

/// Check, record and run the migration in `t`'s schema, in one transaction.
async fn migrate_one(client: &Client, t: &Tenant, role: &str, m: &Migration) -> Status {
    if let Err(e) = client.batch_execute("BEGIN").await {
        return Status::from_error(&e);
    }
    let mut ran = false;
    let status = match in_transaction(client, t, role, m, &mut ran).await {
        Ok(s) => s,
        Err(e) => Status::from_error(&e),
    };
    if status != Status::Applied {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    if ran {
        // Whatever session state the script left (a plain SET, SET ROLE).
        let _ = client.batch_execute("DISCARD ALL").await;
    }
    status
}

async fn in_transaction(
    client: &Client,
    t: &Tenant,
    role: &str,
    m: &Migration,
    ran: &mut bool,
) -> Result<Status, tokio_postgres::Error> {
    let schema = client
        .query_opt(
            "SELECT 1 FROM pg_catalog.pg_namespace n \
              WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name",
            &[&t.schema],
        )
        .await?;
    if schema.is_none() {
        return Ok(Status::failed(
            "3F000",
            format!(
                "schema \"{}\" of tenant \"{}\" does not exist",
                t.schema, t.id
            ),
        ));
    }
    let inserted = client
        .query_opt(
            "INSERT INTO tenant.schema_migrations (schema_name, migration, checksum) \
             VALUES ($1::pg_catalog.text::pg_catalog.name, $2, $3) \
             ON CONFLICT (schema_name, migration) DO NOTHING \
             RETURNING pg_catalog.pg_current_xact_id()::pg_catalog.text",
            &[&t.schema, &m.name, &m.checksum],
        )
        .await?;
    let Some(row) = inserted else {
        // Another runner applied it since we looked.
        let row = client
            .query_one(
                "SELECT s.checksum FROM tenant.schema_migrations s \
                  WHERE s.schema_name OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name \
                    AND s.migration OPERATOR(pg_catalog.=) $2",
                &[&t.schema, &m.name],
            )
            .await?;
        let recorded: String = row.get(0);
        return Ok(if recorded == m.checksum {
            Status::Skipped
        } else {
            changed(m, &t.schema)
        });
    };
    let xid: String = row.get(0);
    // The role is locked for the transaction (not a plain SET LOCAL ROLE,
    // which the tenant's own code, a trigger say, could RESET back to this
    // superuser session's). pg_catalog is not named on the path, so
    // PostgreSQL searches it first, as in the tenant's sessions: the
    // script's function and operator names are the built-in ones before
    // any the tenant made; pg_temp comes last.
    client
        .execute("SELECT tenant.lock_role_for_transaction($1)", &[&role])
        .await?;
    client
        .batch_execute(&format!(
            "SET LOCAL search_path = {}, pg_temp",
            std::iter::once(&t.schema)
                .chain(&t.shared)
                .map(|s| quote_ident(s))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .await?;
    *ran = true;
    client.batch_execute(&m.script).await?;
    let after: Option<String> = client
        .query_one(
            "SELECT pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text",
            &[],
        )
        .await?
        .get(0);
    if after.as_deref() != Some(xid.as_str()) {
        return Ok(Status::failed(
            "25000",
            format!(
                "the script ended the tenant's transaction (COMMIT or ROLLBACK in a migration \
                 script): what it ran before that was committed or rolled back together with \
                 the record of {}, and what came after ran outside it; remove transaction \
                 control from the script and check schema \"{}\" by hand",
                m.name, t.schema
            ),
        ));
    }
    client.batch_execute("COMMIT").await?;
    Ok(Status::Applied)
}

/// One finished tenant: its index in the run order, status, milliseconds.
pub(super) type Done = (usize, Status, u128);

/// Take tenants from the shared queue until it is empty or a stop.
pub(super) async fn worker(
    mut client: Client,
    config: Arc<tokio_postgres::Config>,
    queue: Arc<Vec<Tenant>>,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    m: Arc<Migration>,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
) {
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let i = next.fetch_add(1, Ordering::SeqCst);
        let Some(t) = queue.get(i) else { break };
        let start = Instant::now();
        if client.is_closed() {
            match connect_admin(&config).await {
                Ok(c) => client = c,
                Err(e) => {
                    let _ = done.send((i, Status::failed("08006", e.to_string()), 0));
                    if m.stop_on_error {
                        stop.store(true, Ordering::SeqCst);
                    }
                    continue;
                }
            }
        }
        let status = match &t.role {
            Some(role) => migrate_one(&client, t, role, &m).await,
            None => no_role(t),
        };
        if matches!(status, Status::Failed { .. }) && m.stop_on_error {
            stop.store(true, Ordering::SeqCst);
        }
        if done.send((i, status, start.elapsed().as_millis())).is_err() {
            break;
        }
    }
}

pub(super) fn no_role(t: &Tenant) -> Status {
    Status::failed(
        "22023",
        format!(
            "tenant \"{}\" has no role_name: a schema tenant's migration runs as its role, so \
             that what it creates belongs to the tenant (tenant.alter_tenant('{}', role_name => ...))",
            t.id, t.id
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("acme"), "\"acme\"");
        assert_eq!(quote_ident("a\"b; DROP"), "\"a\"\"b; DROP\"");
    }
}
