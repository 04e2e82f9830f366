//! The catalog side of `apply` and `export`: read the tenants (and their
//! secrets' verifiers, the defaults row), and apply a diff through the SQL
//! API (`tenant.create_tenant`, `alter_tenant`, `drop_tenant`,
//! `set_password`, `set_defaults`) with bind parameters, in ONE transaction:
//! the first refusal rolls everything back. A dry run runs the same
//! transaction and rolls it back, so the catalog's own checks speak too.

use super::diff::{changes, diff, exported, CatalogTenant, Change, Diff};
use super::fields::{Field, DEFAULTS_FIELDS, TENANT_FIELDS};
use super::report;
use super::spec::{Declared, Secret};
use super::{ApplyFormat, DeclareError, ExportFormat};
use crate::tools::admin::{check_extension, connect_admin, error_text};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

/// How a refused secret is named.
const SECRET_FIELD: &str = "password_file/password_env";

/// The key of the advisory lock that queues concurrent `apply` runs.
pub const APPLY_LOCK: i64 = 0x7067_7465_6e61_6e74; // "pgtenant"

fn query_error(what: &str, e: &tokio_postgres::Error) -> DeclareError {
    let (code, msg) = error_text(e);
    DeclareError::Query(match code {
        Some(c) => format!("{what}: {msg} (SQLSTATE {c})"),
        None => format!("{what}: {msg}"),
    })
}

async fn connect(config: &tokio_postgres::Config) -> Result<Client, DeclareError> {
    let client = connect_admin(config)
        .await
        .map_err(|e| DeclareError::Connect(e.to_string()))?;
    check_extension(&client)
        .await
        .map_err(|e| DeclareError::Connect(e.to_string()))?;
    // Reals as their exact shortest text, whatever the role's or the
    // database's setting: with extra_float_digits = 0, row_to_json wrote
    // 1.0000001 as 1, and a file saying 1 was "unchanged".
    client
        .batch_execute("SET extra_float_digits = 1")
        .await
        .map_err(|e| query_error("SET extra_float_digits", &e))?;
    Ok(client)
}

/// A JSON object's fields in canonical form; `what` names the row.
fn canonical_row(
    fields: &[Field],
    row: &Map<String, Value>,
    what: &str,
) -> Result<BTreeMap<&'static str, Value>, DeclareError> {
    fields
        .iter()
        .map(|f| {
            let Some(v) = row.get(f.name) else {
                return Err(DeclareError::Query(format!(
                    "{what} has no column {}: update pg_tenant (ALTER EXTENSION pg_tenant UPDATE)",
                    f.name
                )));
            };
            f.canonical(v)
                .map(|c| (f.name, c))
                .map_err(|p| DeclareError::Query(format!("{what}, column {}: {p}", f.name)))
        })
        .collect()
}

fn json_object(text: &str) -> Result<Map<String, Value>, DeclareError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(DeclareError::Query(format!(
            "unexpected row from the catalog: {text}"
        ))),
    }
}

/// Whether this role may read secrets' verifiers (tenant.auth_secret).
async fn reads_secrets(client: &Client) -> Result<bool, DeclareError> {
    let row = client
        .query_one(
            "SELECT pg_catalog.has_function_privilege('tenant.auth_secret(pg_catalog.text)', 'EXECUTE')",
            &[],
        )
        .await
        .map_err(|e| query_error("checking privileges", &e))?;
    Ok(row.get(0))
}

/// Every tenant of the catalog, by id; verifiers only when `secrets`.
pub async fn read_tenants(
    client: &Client,
    secrets: bool,
) -> Result<Vec<CatalogTenant>, DeclareError> {
    let sql = if secrets {
        "SELECT pg_catalog.row_to_json(t)::pg_catalog.text, tenant.auth_secret(t.id) \
           FROM tenant.tenants t ORDER BY t.id"
    } else {
        "SELECT pg_catalog.row_to_json(t)::pg_catalog.text, NULL::pg_catalog.text \
           FROM tenant.tenants t ORDER BY t.id"
    };
    let rows = client.query(sql, &[]).await.map_err(|e| {
        let denied = e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE);
        let mut err = query_error("reading tenant.tenants", &e);
        if let (true, DeclareError::Query(m)) = (denied, &mut err) {
            m.push_str(
                "; the router's own catalog role may not read or write the catalog tables: \
                     run as an administrator (--user ROLE, or PG_TENANT_ADMIN_URL)",
            );
        }
        err
    })?;
    rows.iter()
        .map(|r| {
            let row = json_object(r.get(0))?;
            let id = row
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Ok(CatalogTenant {
                values: canonical_row(TENANT_FIELDS, &row, &format!("tenant \"{id}\""))?,
                id,
                verifier: r.get(1),
            })
        })
        .collect()
}

/// The defaults row, if there is one.
async fn read_defaults(
    client: &Client,
) -> Result<Option<BTreeMap<&'static str, Value>>, DeclareError> {
    let row = client
        .query_opt(
            "SELECT pg_catalog.row_to_json(d)::pg_catalog.text FROM tenant.defaults d",
            &[],
        )
        .await
        .map_err(|e| query_error("reading tenant.defaults", &e))?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some(canonical_row(
            DEFAULTS_FIELDS,
            &json_object(r.get(0))?,
            "tenant.defaults",
        )?)),
    }
}

/// A call of `tenant.<func>` with named arguments: `lead` (already bound
/// as $1.. in order), then `args`, then `reset` if any. Field names come
/// from the field table, values are bind parameters.
struct Call {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
    fields: Vec<&'static str>,
}

impl Call {
    fn new(func: &str, id: Option<&str>) -> Call {
        let mut c = Call {
            sql: format!("SELECT 1 FROM tenant.{func}("),
            params: Vec::new(),
            fields: Vec::new(),
        };
        if let Some(id) = id {
            c.params.push(Box::new(id.to_string()));
            c.sql.push_str("id => $1::pg_catalog.text");
        }
        c
    }

    fn arg(&mut self, f: &Field, v: &Value) {
        let (param, cast) = f.param(v);
        self.params.push(param);
        if self.params.len() > 1 {
            self.sql.push_str(", ");
        }
        self.sql
            .push_str(&format!("{} => ${}::{cast}", f.name, self.params.len()));
        self.fields.push(f.name);
    }

    fn reset(&mut self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        self.fields.extend(
            TENANT_FIELDS
                .iter()
                .filter(|f| names.iter().any(|n| n == f.name))
                .map(|f| f.name),
        );
        self.params.push(Box::new(names));
        self.sql.push_str(&format!(
            ", reset => ${}::pg_catalog.text[]",
            self.params.len()
        ));
    }

    /// Run it; a refusal names `tenant` and the fields of the call the
    /// message names (else all of them).
    async fn run(mut self, client: &Client, tenant: &str) -> Result<(), DeclareError> {
        self.sql.push(')');
        let params: Vec<&(dyn ToSql + Sync)> = self
            .params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        match client.query_one(&self.sql, &params).await {
            Ok(_) => Ok(()),
            Err(e) => Err(refused(tenant, &self.fields, &e)),
        }
    }
}

/// Whether `msg` names `field` as a word ("name" is not named by
/// "schema_name").
fn mentions(msg: &str, field: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    msg.match_indices(field).any(|(i, _)| {
        !word(msg[..i].chars().next_back()) && !word(msg[i + field.len()..].chars().next())
    })
}

fn refused(tenant: &str, fields: &[&str], e: &tokio_postgres::Error) -> DeclareError {
    let (code, msg) = error_text(e);
    let named: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| mentions(&msg, f))
        .collect();
    let fields = match (named.as_slice(), fields) {
        ([one], _) | ([], [one]) => format!("field {one}"),
        ([], []) => "the tenant".to_string(),
        ([], all) => format!("one of the fields {}", all.join(", ")),
        (some, _) => format!("fields {}", some.join(", ")),
    };
    let again = if code.as_deref() == Some("40001") {
        " (another session changed the catalog while apply ran: run it again)"
    } else {
        ""
    };
    DeclareError::Refused {
        tenant: tenant.to_string(),
        fields,
        message: match code {
            Some(c) => format!("{msg}{again} (SQLSTATE {c})"),
            None => msg,
        },
    }
}

async fn set_password(
    client: &Client,
    id: &str,
    s: &Secret,
    field: &str,
) -> Result<(), DeclareError> {
    client
        .query_one(
            "SELECT 1 FROM tenant.set_password($1::pg_catalog.text, $2::pg_catalog.text)",
            &[&id, &s.0],
        )
        .await
        .map(|_| ())
        .map_err(|e| refused(id, &[field], &e))
}

/// Set the declared defaults in a savepoint; keep them only if the row
/// changes. The row set_defaults returns is compared with the old one, so
/// the built-in defaults are the function's, not copied here.
async fn apply_defaults(
    client: &Client,
    declared: &BTreeMap<&'static str, Value>,
) -> Result<Vec<Change>, DeclareError> {
    let old = read_defaults(client).await?;
    // A file that declares the whole row as it stands (an export does)
    // calls nothing: set_defaults would check values an older catalog
    // stored and 0.9.0 refuses (a NaN burst_multiplier), and change none.
    if let Some(old) = &old {
        let all = DEFAULTS_FIELDS
            .iter()
            .all(|f| declared.contains_key(f.name));
        let same = changes(DEFAULTS_FIELDS, old, &|f| {
            declared.get(f.name).cloned().unwrap_or(Value::Null)
        })
        .is_empty();
        if all && same {
            return Ok(Vec::new());
        }
    }
    let old = old.unwrap_or_default();
    let mut call = Call::new("set_defaults", None);
    for f in DEFAULTS_FIELDS {
        if let Some(v) = declared.get(f.name) {
            call.arg(f, v);
        }
    }
    client
        .batch_execute("SAVEPOINT declare_defaults")
        .await
        .map_err(|e| query_error("savepoint", &e))?;
    call.run(client, "[defaults]").await?;
    let new = read_defaults(client).await?.unwrap_or_default();
    let changed = changes(DEFAULTS_FIELDS, &old, &|f| {
        new.get(f.name).cloned().unwrap_or(Value::Null)
    });
    let end = if !changed.is_empty() {
        "RELEASE SAVEPOINT declare_defaults"
    } else {
        "ROLLBACK TO SAVEPOINT declare_defaults"
    };
    client
        .batch_execute(end)
        .await
        .map_err(|e| query_error("savepoint", &e))?;
    Ok(changed)
}

/// Run the statements of `d` (drops, then changes, then creations).
async fn write(client: &Client, d: &Diff, declared: &Declared) -> Result<(), DeclareError> {
    let specs: std::collections::HashMap<&str, &super::spec::TenantSpec> = declared
        .tenants
        .iter()
        .map(|t| (t.id.as_str(), t))
        .collect();
    for id in &d.dropped {
        Call::new("drop_tenant", Some(id)).run(client, id).await?;
    }
    for c in &d.changed {
        let spec = specs.get(c.id.as_str());
        if !c.changes.is_empty() {
            let mut call = Call::new("alter_tenant", Some(&c.id));
            let mut reset = Vec::new();
            for ch in &c.changes {
                match TENANT_FIELDS.iter().find(|f| f.name == ch.field) {
                    Some(_) if ch.new.is_null() => reset.push(ch.field.to_string()),
                    Some(f) => call.arg(f, &ch.new),
                    None => {}
                }
            }
            call.reset(reset);
            call.run(client, &c.id).await?;
        }
        if let (Some(_), Some(s)) = (c.secret, spec.and_then(|t| t.secret.as_ref())) {
            set_password(client, &c.id, s, SECRET_FIELD).await?;
        }
    }
    for t in &d.created {
        let mut call = Call::new("create_tenant", Some(&t.id));
        for f in TENANT_FIELDS {
            if let Some(v) = t.values.get(f.name) {
                call.arg(f, v);
            }
        }
        call.run(client, &t.id).await?;
        if let Some(s) = &t.secret {
            set_password(client, &t.id, s, SECRET_FIELD).await?;
        }
    }
    Ok(())
}

/// `apply`: diff, print, write, commit (or roll back a dry run).
pub async fn apply(
    config: &tokio_postgres::Config,
    declared: &Declared,
    prune: bool,
    dry_run: bool,
    format: ApplyFormat,
) -> Result<(), DeclareError> {
    let client = connect(config).await?;
    let secrets = declared.tenants.iter().any(|t| t.secret.is_some());
    if secrets && !reads_secrets(&client).await? {
        return Err(DeclareError::Config(
            "the file declares secrets, and this role may not read the stored ones to compare \
             (EXECUTE on tenant.auth_secret): apply as a superuser (--user, PG_TENANT_ADMIN_URL)"
                .to_string(),
        ));
    }
    // The lock first (for the session: a transaction's snapshot would be
    // taken by the statement that waits for it), then one REPEATABLE READ
    // transaction: the diff is made from its snapshot, and a row another
    // session changes after it is refused (40001) when written, instead of
    // being half-applied (a field the diff judged unchanged keeping the
    // other session's value, while the report says the file was applied).
    client
        .execute("SELECT pg_catalog.pg_advisory_lock($1)", &[&APPLY_LOCK])
        .await
        .map_err(|e| query_error("waiting for other apply runs", &e))?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(|e| query_error("BEGIN", &e))?;
    let result = async {
        let catalog = read_tenants(&client, secrets).await?;
        let d = diff(&declared.tenants, &catalog, prune, &super::secret::matches);
        let defaults = match &declared.defaults {
            Some(values) => apply_defaults(&client, values).await?,
            None => Vec::new(),
        };
        if format == ApplyFormat::Text {
            // Nobody sees the diff (stdout closed): apply nothing.
            super::write_stdout(&report::text_changes(&d, &defaults)).map_err(|e| {
                DeclareError::Read(format!(
                    "cannot write the diff to stdout ({e}); nothing was changed"
                ))
            })?;
        }
        write(&client, &d, declared).await?;
        Ok::<_, DeclareError>((d, defaults))
    }
    .await;
    let end = if result.is_ok() && !dry_run {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = client.batch_execute(end).await;
    let _ = client
        .execute("SELECT pg_catalog.pg_advisory_unlock($1)", &[&APPLY_LOCK])
        .await;
    let (d, defaults) = result?;
    ended.map_err(|e| query_error(end, &e))?;
    let report = match format {
        ApplyFormat::Text => report::summary(&d, &defaults, dry_run),
        ApplyFormat::Json => report::json(&d, &defaults, dry_run),
    };
    // Committed already: say so, the exit code stays that of the apply.
    if let Err(e) = super::write_stdout(&format!("{report}\n")) {
        eprintln!(
            "tenant-router tenants apply: {}, but the report could not be written to stdout: {e}",
            if dry_run { "dry run done" } else { "applied" }
        );
    }
    Ok(())
}

/// `export`: the catalog as a tenants file.
pub async fn export(
    config: &tokio_postgres::Config,
    format: ExportFormat,
) -> Result<String, DeclareError> {
    let client = connect(config).await?;
    let secrets = reads_secrets(&client).await?;
    // One snapshot: the tenants and the defaults row of the same moment
    // (read apart, a change committed between the two reads made a file of
    // a catalog that never was).
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| query_error("BEGIN", &e))?;
    let tenants = read_tenants(&client, secrets).await?;
    let defaults = read_defaults(&client).await?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| query_error("COMMIT", &e))?;
    let list: Vec<(String, BTreeMap<&'static str, Value>)> = tenants
        .iter()
        .map(|t| (t.id.clone(), exported(t)))
        .collect();
    let with_secret: Vec<&str> = tenants
        .iter()
        .filter(|t| t.verifier.is_some())
        .map(|t| t.id.as_str())
        .collect();
    Ok(match format {
        ExportFormat::Toml => report::export_toml(defaults.as_ref(), &list, &with_secret),
        ExportFormat::Json => report::export_json(defaults.as_ref(), &list),
    })
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_field_is_named_as_a_whole_word() {
        assert!(mentions(
            "max_connections must be >= 0, got -1",
            "max_connections"
        ));
        assert!(mentions(
            "min_idle (2) must not exceed pool_size (1)",
            "pool_size"
        ));
        assert!(!mentions(
            "tenant \"x\" uses schema isolation but has no schema_name",
            "name"
        ));
        assert!(!mentions("pool_size_x", "pool_size"));
    }
}
