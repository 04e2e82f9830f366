//! `tenant-router tenants provision --url URL ID [--template T]`: give a
//! database-isolated tenant its database (docs/src/isolation/database.md):
//! created if missing (from a template), CONNECT revoked from PUBLIC and
//! granted to the tenant's login roles, pg_tenant installed, the database
//! bound to the tenant, the tenant's role created if the row names one that
//! is missing. Idempotent: each step reports whether it did something or
//! found it done. Identifiers are quoted by PostgreSQL (`format('%I')`),
//! never by this program.

use std::fmt;
use tokio_postgres::{Client, Config};

/// Why provisioning stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{0}: a libpq connection string or postgres:// URL is expected")]
    BadUrl(String),
    #[error("cannot connect to {what}: {reason}")]
    Connect { what: String, reason: String },
    #[error("tenant \"{0}\" does not exist in the catalog")]
    UnknownTenant(String),
    #[error("tenant \"{tenant}\" uses {isolation} isolation: only a database-isolated tenant gets a database (tenant.alter_tenant(..., isolation => 'database', database_name => ...))")]
    NotDatabaseIsolated { tenant: String, isolation: String },
    #[error("tenant \"{tenant}\" lives on upstream \"{upstream}\": its database belongs on that server, not on the catalog's, where its sessions never go; there, as a superuser: CREATE DATABASE, CREATE EXTENSION pg_tenant in it, SELECT tenant.bind_database('{tenant}'), and REVOKE CONNECT from PUBLIC (the book's \"Scaling out\" page, docs/src/scaling-out/index.md)")]
    Elsewhere { tenant: String, upstream: String },
    #[error("tenant \"{0}\" has no login_roles: its database would be open to every application role (tenant_app), whatever tenant it logs in for; name the roles that log in for it (tenant.alter_tenant('{0}', login_roles => '{{...}}'))")]
    NoLoginRoles(String),
    #[error("database \"{database}\" cannot be tenant \"{tenant}\"'s database: {why}")]
    UnfitDatabase {
        tenant: String,
        database: String,
        why: String,
    },
    #[error("template \"{template}\" cannot be used for tenant \"{tenant}\"'s database: {why}")]
    UnfitTemplate {
        tenant: String,
        template: String,
        why: String,
    },
    #[error("{step} failed: {reason}")]
    Step { step: String, reason: String },
}

/// What one step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    AlreadyDone,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Done => "done",
            Outcome::AlreadyDone => "already done",
        })
    }
}

/// One step and its outcome, in the order run.
pub type Report = Vec<(String, Outcome)>;

fn step_error(step: &str) -> impl Fn(tokio_postgres::Error) -> ProvisionError + '_ {
    move |e| ProvisionError::Step {
        step: step.to_owned(),
        reason: e
            .as_db_error()
            .map(|d| format!("{} ({})", d.message(), d.code().code()))
            .unwrap_or_else(|| e.to_string()),
    }
}

/// Whether a step is already done: the boolean an `EXISTS` query returns.
async fn already_done(
    client: &Client,
    step: &str,
    query: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<bool, ProvisionError> {
    Ok(client
        .query_one(query, params)
        .await
        .map_err(step_error(step))?
        .get::<_, bool>(0))
}

/// The tools' administrator connection (`admin::connect_admin`), its
/// error naming the database it was for.
async fn connect(cfg: &Config, what: &str) -> Result<Client, ProvisionError> {
    super::admin::connect_admin(cfg)
        .await
        .map_err(|e| ProvisionError::Connect {
            what: what.to_owned(),
            reason: e.to_string(),
        })
}

/// Run a statement PostgreSQL itself builds: `format_sql` (a `SELECT
/// pg_catalog.format(...)` over the bind parameters `args`) returns it.
async fn run_formatted(
    client: &Client,
    step: &str,
    format_sql: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<(), ProvisionError> {
    let sql: String = client
        .query_one(format_sql, args)
        .await
        .map_err(step_error(step))?
        .get(0);
    client.batch_execute(&sql).await.map_err(step_error(step))
}

/// The tenant's row, as provisioning needs it.
struct Row {
    database: String,
    role: Option<String>,
    login_roles: Option<Vec<String>>,
}

async fn read_row(client: &Client, tenant: &str) -> Result<Row, ProvisionError> {
    let step = "reading the tenant's row";
    let row = client
        .query_opt(
            "SELECT t.isolation, t.database_name::pg_catalog.text, t.role_name::pg_catalog.text, \
                    t.login_roles, \
                    pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.->>) 'upstream'::pg_catalog.text \
               FROM tenant.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1",
            &[&tenant],
        )
        .await
        .map_err(step_error(step))?
        .ok_or_else(|| ProvisionError::UnknownTenant(tenant.to_owned()))?;
    let isolation: String = row.get(0);
    let database: Option<String> = row.get(1);
    // 0.9.0: a tenant placed on a named upstream lives on another server.
    if let Some(upstream) = row.get::<_, Option<String>>(4) {
        return Err(ProvisionError::Elsewhere {
            tenant: tenant.to_owned(),
            upstream,
        });
    }
    match database {
        Some(database) if isolation == "database" => Ok(Row {
            database,
            role: row.get(2),
            login_roles: row.get(3),
        }),
        _ => Err(ProvisionError::NotDatabaseIsolated {
            tenant: tenant.to_owned(),
            isolation,
        }),
    }
}

/// Provision `tenant`'s database, connecting with `url` (a role that may
/// CREATE DATABASE and CREATE ROLE, and install pg_tenant: in practice a
/// superuser), creating a missing database from `template`.
pub async fn provision(
    url: &str,
    tenant: &str,
    template: Option<&str>,
) -> Result<Report, ProvisionError> {
    let cfg = super::admin::admin_config(url).map_err(|e| ProvisionError::BadUrl(e.to_string()))?;
    let catalog = connect(&cfg, "the catalog database").await?;
    let row = read_row(&catalog, tenant).await?;
    let db = row.database.as_str();
    let Some(grantees) = row.login_roles.clone() else {
        return Err(ProvisionError::NoLoginRoles(tenant.to_owned()));
    };
    if let Some(why) = unfit(&catalog, tenant, db, false).await? {
        return Err(ProvisionError::UnfitDatabase {
            tenant: tenant.to_owned(),
            database: db.to_owned(),
            why,
        });
    }
    let mut report = Report::new();

    let step = format!("create database \"{db}\"");
    let exists = already_done(
        &catalog,
        &step,
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_database d \
                         WHERE d.datname OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name)",
        &[&db],
    )
    .await?;
    if exists {
        report.push((step, Outcome::AlreadyDone));
    } else {
        let template = template.unwrap_or("template1");
        if let Some(why) = unfit(&catalog, tenant, template, true).await? {
            return Err(ProvisionError::UnfitTemplate {
                tenant: tenant.to_owned(),
                template: template.to_owned(),
                why,
            });
        }
        run_formatted(
            &catalog,
            &step,
            "SELECT pg_catalog.format('CREATE DATABASE %I TEMPLATE %I', $1::pg_catalog.text, $2::pg_catalog.text)",
            &[&db, &template],
        )
        .await?;
        report.push((step, Outcome::Done));
    }

    if let Some(role) = row.role.as_deref() {
        let step = format!("create tenant role \"{role}\"");
        let exists = already_done(
            &catalog,
            &step,
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles r \
                             WHERE r.rolname OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name)",
            &[&role],
        )
        .await?;
        if exists {
            report.push((step, Outcome::AlreadyDone));
        } else {
            run_formatted(
                &catalog,
                &step,
                "SELECT pg_catalog.format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE \
                 NOCREATEDB NOREPLICATION IN ROLE tenant_app', $1::pg_catalog.text)",
                &[&role],
            )
            .await?;
            report.push((step, Outcome::Done));
        }
    }

    let mut tenant_cfg = cfg.clone();
    tenant_cfg.dbname(db);
    let tenant_db = connect(&tenant_cfg, &format!("database \"{db}\"")).await?;
    let step = format!("install pg_tenant in \"{db}\"");
    let installed = already_done(
        &tenant_db,
        &step,
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension e \
                         WHERE e.extname OPERATOR(pg_catalog.=) 'pg_tenant')",
        &[],
    )
    .await?;
    if installed {
        report.push((step, Outcome::AlreadyDone));
    } else {
        tenant_db
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_tenant")
            .await
            .map_err(step_error(&step))?;
        report.push((step, Outcome::Done));
    }
    let step = format!("bind \"{db}\" to tenant \"{tenant}\"");
    let bound: bool = tenant_db
        .query_one("SELECT tenant.bind_database($1)", &[&tenant])
        .await
        .map_err(step_error(&step))?
        .get(0);
    report.push((
        step,
        if bound {
            Outcome::Done
        } else {
            Outcome::AlreadyDone
        },
    ));
    drop(tenant_db);
    // Who may connect: the tenant's login roles, once the database is
    // bound to the tenant (a database bound to another tenant, or a
    // catalog, was refused by the binding before anyone got CONNECT).
    let step = format!("revoke CONNECT on \"{db}\" from PUBLIC");
    let public = has_connect(&catalog, db, None)
        .await
        .map_err(step_error(&step))?;
    if public {
        run_formatted(
            &catalog,
            &step,
            "SELECT pg_catalog.format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', $1::pg_catalog.text)",
            &[&db],
        )
        .await?;
        report.push((step, Outcome::Done));
    } else {
        report.push((step, Outcome::AlreadyDone));
    }
    for grantee in &grantees {
        let step = format!("grant CONNECT on \"{db}\" to \"{grantee}\"");
        if has_connect(&catalog, db, Some(grantee))
            .await
            .map_err(step_error(&step))?
        {
            report.push((step, Outcome::AlreadyDone));
            continue;
        }
        run_formatted(
            &catalog,
            &step,
            "SELECT pg_catalog.format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', \
             $1::pg_catalog.text, $2::pg_catalog.text)",
            &[&db, grantee],
        )
        .await?;
        report.push((step, Outcome::Done));
    }
    Ok(report)
}

/// Why database `name` may not be (or be the template of) `tenant`'s
/// database (`as_template`: its template), or None: the catalog database
/// itself (its catalog and every tenant's row would be copied or bound),
/// the database of another tenant in the catalog (its data, its binding),
/// and as the tenant's database a template (a binding there is copied
/// into every database made from it).
async fn unfit(
    catalog: &Client,
    tenant: &str,
    name: &str,
    as_template: bool,
) -> Result<Option<String>, ProvisionError> {
    let row = catalog
        .query_one(
            "SELECT $1::pg_catalog.text OPERATOR(pg_catalog.=) pg_catalog.current_database()::pg_catalog.text, \
                    coalesce((SELECT d.datistemplate FROM pg_catalog.pg_database d \
                               WHERE d.datname OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name), false), \
                    (SELECT t.id FROM tenant.tenants t \
                      WHERE t.database_name OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name \
                        AND t.id OPERATOR(pg_catalog.<>) $2::pg_catalog.text ORDER BY t.id LIMIT 1)",
            &[&name, &tenant],
        )
        .await
        .map_err(step_error("checking the database"))?;
    let (catalog_db, template, other): (bool, bool, Option<String>) =
        (row.get(0), row.get(1), row.get(2));
    Ok(if catalog_db {
        Some("it is the catalog database".to_owned())
    } else if template {
        // A template is never a tenant's database (refused below), so a
        // row naming one does not make it unfit as a template.
        (!as_template).then(|| "it is a template database".to_owned())
    } else {
        other.map(|other| format!("it is the database of tenant \"{other}\""))
    })
}

/// Whether `grantee` (None: PUBLIC) holds CONNECT on `db` by a grant of
/// its own (PUBLIC: also by default, while the database has no ACL).
async fn has_connect(
    client: &Client,
    db: &str,
    grantee: Option<&str>,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_database d, \
                    pg_catalog.aclexplode(coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a \
              WHERE d.datname OPERATOR(pg_catalog.=) $1::pg_catalog.text::pg_catalog.name \
                AND a.privilege_type OPERATOR(pg_catalog.=) 'CONNECT' \
                AND a.grantee OPERATOR(pg_catalog.=) coalesce( \
                      (SELECT r.oid FROM pg_catalog.pg_roles r \
                        WHERE r.rolname OPERATOR(pg_catalog.=) $2::pg_catalog.text::pg_catalog.name), \
                      CASE WHEN $2::pg_catalog.text IS NULL THEN 0::pg_catalog.oid END))",
            &[&db, &grantee],
        )
        .await?;
    Ok(row.get(0))
}
