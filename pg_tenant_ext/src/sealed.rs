//! The sealed context of a tenant database (docs/src/isolation/database.md):
//! `tenant.set_context_sealed`, both forms.
//!
//! A tenant database holds no catalog. The router signs the tenant's row
//! (`tenant.context_document`, read in the catalog database) into the
//! token; this database knows only which tenant it serves
//! (`tenant.database_binding`, set by `tenant.bind_database`). A sealed
//! context is accepted only when the token verifies over the document,
//! this database is bound to exactly that tenant and the document names
//! this database; the row it carries then goes through every check and
//! effect of the catalog path (`context::admit`).
//!
//! 0.9.0 (placement): a server that is not the catalog serves rls and
//! schema tenants placed on it (their catalog `upstream`) through sealed
//! contexts too; `sealed_row` states the rule.

use crate::admission::{as_catalog_reader, Isolation, TenantRow};
use crate::context::{admit, check_tenant_id, spend, verify};
use crate::report::{printable, refuse};
use crate::state::{ops, Budget};
use pg_tenant_token::Action;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use serde_json::{Map, Value};

/// Set this backend's tenant from a sealed context: `document` is the
/// tenant's row as `tenant.context_document` built it in the catalog
/// database, and `token` the router's `set-sealed` signature over the
/// tenant, the backend, the nonce and the document. A database tenant's
/// only in its own database (`tenant.bind_database`); an rls or schema
/// tenant's only for a tenant placed on a named upstream, in a database
/// bound to no tenant whose catalog does not hold the tenant (`sealed_row`).
/// Errors: 42501 for a bad or replayed token, a database not bound to this
/// tenant, a document for another database or tenant or one this database
/// must not take, and every refusal of `set_context`; 55000 for a tenant
/// fenced here (`tenant.fence_tenant`); 22023 for a malformed tenant id or
/// document. Returns the tenant id.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context_sealed(tenant: &str, token: &str, document: &str) -> String {
    check_tenant_id(tenant);
    let nonce = verify(Action::SetSealed { tenant, document }, token, tenant);
    spend(nonce);
    let row = sealed_row(tenant, document);
    admit(tenant, "", "", row)
}

/// `set_context_sealed` with the end user: `subject` and `claims` as in
/// the 4-argument `set_context`, signed with the document
/// (`set-subject-sealed`). Errors like both.
#[pg_extern(name = "set_context_sealed", volatile, parallel_unsafe)]
fn set_context_sealed_subject(
    tenant: &str,
    token: &str,
    subject: &str,
    claims: &str,
    document: &str,
) -> String {
    check_tenant_id(tenant);
    let action = Action::SetSubjectSealed {
        tenant,
        subject,
        claims,
        document,
    };
    let nonce = verify(action, token, tenant);
    spend(nonce);
    crate::subject::check_claims(claims);
    let row = sealed_row(tenant, document);
    admit(tenant, subject, claims, row)
}

/// The tenant this database is bound to (None: no binding, or a schema
/// older than 0.8.0 without the table).
pub fn bound_tenant() -> Option<String> {
    const EXISTS: &str = "SELECT pg_catalog.to_regclass('tenant.database_binding') IS NOT NULL";
    const Q: &str = "SELECT b.tenant_id FROM tenant.database_binding b LIMIT 1";
    let found = as_catalog_reader(|| {
        Spi::connect(|client| {
            let exists = client
                .select(EXISTS, Some(1), &[])?
                .first()
                .get::<bool>(1)?;
            if exists != Some(true) {
                return Ok::<_, pgrx::spi::Error>(None);
            }
            let t = client.select(Q, Some(1), &[])?;
            if t.is_empty() {
                return Ok(None);
            }
            t.first().get::<String>(1)
        })
    });
    match found {
        Ok(t) => t,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not read the database binding: {e}"),
        ),
    }
}

/// The name of this database.
fn current_database() -> String {
    // SAFETY: MyDatabaseId is set once connected; get_database_name
    // returns a palloc'd name or NULL.
    let name = unsafe { pg_sys::get_database_name(pg_sys::MyDatabaseId) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

fn denied(msg: String) -> ! {
    refuse(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, msg)
}

fn malformed(what: &str) -> ! {
    refuse(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        format!("sealed context document: {what}"),
    )
}

/// Check that this database may serve `tenant` and the document is for
/// it, and read the document into the row the catalog path builds.
///
/// The rule (docs/src/scaling-out/index.md), fail-closed:
/// - a database tenant's document: this database is bound to exactly that
///   tenant (`tenant.bind_database`) and the document names it;
/// - an rls or schema tenant's document: the document places the tenant on
///   a named upstream (its `upstream` is a name other than "main"), this
///   database is bound to no tenant (a tenant database serves its own
///   tenant only), and this database's catalog has no row for the tenant
///   (where the catalog knows the tenant, its contexts come from the
///   catalog through `set_context`: a sealed document never overrides it).
fn sealed_row(tenant: &str, document: &str) -> TenantRow {
    let database = current_database();
    let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(document) else {
        malformed("not a JSON object");
    };
    let kind = doc.get("isolation").and_then(Value::as_str).unwrap_or("");
    let Some(isolation) = Isolation::from_name(kind) else {
        malformed("\"isolation\" is not rls, schema or database");
    };
    let bound = bound_tenant();
    if isolation == Isolation::Database {
        match &bound {
            None => denied(format!(
                "database \"{}\" is not a tenant database: a sealed context for tenant \"{tenant}\" \
                 is accepted only in the database bound to it (tenant.bind_database)",
                printable(&database)
            )),
            Some(bound) if bound != tenant => denied(format!(
                "database \"{}\" serves tenant \"{}\", not tenant \"{tenant}\"",
                printable(&database),
                printable(bound)
            )),
            Some(_) => {}
        }
    }
    if doc.get("tenant").and_then(Value::as_str) != Some(tenant) {
        denied(format!(
            "the sealed context document is not tenant \"{tenant}\"'s"
        ));
    }
    if isolation == Isolation::Database {
        let named = doc.get("database_name").and_then(Value::as_str);
        if named != Some(database.as_str()) {
            denied(format!(
                "the sealed context of tenant \"{tenant}\" is for database \"{}\", not \"{}\"",
                printable(named.unwrap_or("")),
                printable(&database)
            ));
        }
    } else {
        if let Some(bound) = &bound {
            denied(format!(
                "database \"{}\" is the tenant database of tenant \"{}\": it accepts no context \
                 of tenant \"{tenant}\" ({kind} isolation)",
                printable(&database),
                printable(bound)
            ));
        }
        match doc.get("upstream") {
            Some(Value::String(u)) if !u.is_empty() && u != "main" => {}
            Some(Value::String(_)) | None | Some(Value::Null) => denied(format!(
                "tenant \"{tenant}\" lives on the main upstream: its contexts are set with \
                 tenant.set_context in the catalog database, not sealed"
            )),
            Some(_) => malformed("\"upstream\" is not a string"),
        }
        if in_local_catalog(tenant) {
            denied(format!(
                "tenant \"{tenant}\" is in the catalog of database \"{}\": its contexts here are \
                 set with tenant.set_context from that catalog, not sealed",
                printable(&database)
            ));
        }
    }
    // SAFETY: read of a backend global.
    let login = crate::admission::role_name(unsafe { pg_sys::GetSessionUserId() });
    row_of(&doc, &login, isolation)
}

/// Whether this database's `tenant.tenants` has a row for `tenant`.
fn in_local_catalog(tenant: &str) -> bool {
    const Q: &str = "SELECT EXISTS (SELECT FROM tenant.tenants t \
                     WHERE t.id OPERATOR(pg_catalog.=) $1::pg_catalog.text)";
    let found = as_catalog_reader(|| {
        Spi::connect(|client| {
            client
                .select(Q, Some(1), &[tenant.into()])?
                .first()
                .get::<bool>(1)
        })
    });
    match found {
        Ok(f) => f != Some(false),
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not read the tenant catalog: {e}"),
        ),
    }
}

fn flag(doc: &Map<String, Value>, name: &str) -> bool {
    match doc.get(name) {
        Some(Value::Bool(b)) => *b,
        _ => malformed(&format!("\"{name}\" is not a boolean")),
    }
}

fn number(doc: &Map<String, Value>, name: &str) -> u32 {
    match doc.get(name).and_then(Value::as_i64) {
        Some(v) => u32::try_from(v.max(0)).unwrap_or(u32::MAX),
        None => malformed(&format!("\"{name}\" is not an integer")),
    }
}

/// The row of a document (`tenant.context_document`'s fields), for the
/// session user `login`.
fn row_of(doc: &Map<String, Value>, login: &str, isolation: Isolation) -> TenantRow {
    let login_allowed = match doc.get("login_roles") {
        None | Some(Value::Null) => None,
        Some(Value::Array(roles)) => Some(roles.iter().any(|r| r.as_str() == Some(login))),
        Some(_) => malformed("\"login_roles\" is not an array"),
    };
    let role = match doc.get("role_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => malformed("\"role_name\" is not a string"),
    };
    let ops = match doc.get("allowed_operations") {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(|n| n.as_str().and_then(ops::from_name))
            .fold(0, |a, b| a | b),
        _ => malformed("\"allowed_operations\" is not an array"),
    };
    let transaction_pool = match doc.get("pool_mode").and_then(Value::as_str) {
        Some(mode) => mode == "transaction",
        None => malformed("\"pool_mode\" is not a string"),
    };
    TenantRow {
        enabled: flag(doc, "enabled"),
        login_allowed,
        role,
        allow_ddl: flag(doc, "allow_ddl"),
        read_only: flag(doc, "read_only"),
        ops,
        allow_large_objects: flag(doc, "allow_large_objects"),
        transaction_pool,
        budget: Budget {
            max_advisory_locks: number(doc, "max_advisory_locks"),
            statement_timeout_ms: number(doc, "statement_timeout_ms"),
            idle_in_transaction_timeout_ms: number(doc, "idle_in_transaction_timeout_ms"),
            work_mem_kb: number(doc, "work_mem_kb"),
            maintenance_work_mem_kb: number(doc, "maintenance_work_mem_kb"),
            temp_file_limit_kb: number(doc, "temp_file_limit_kb"),
            lock_space: number(doc, "lock_space"),
        },
        // A database tenant's database is its isolation, and its
        // search_path is the database's own; a schema tenant's schema and
        // shared schemas come from the document (schema::apply checks
        // them here: the schema exists, the role has USAGE on it).
        isolation,
        schema_name: match isolation {
            Isolation::Schema => match doc.get("schema_name") {
                Some(Value::String(s)) => Some(s.clone()),
                None | Some(Value::Null) => None,
                Some(_) => malformed("\"schema_name\" is not a string"),
            },
            _ => None,
        },
        catalog_less: isolation != Isolation::Database,
        upstream: doc
            .get("upstream")
            .and_then(Value::as_str)
            .map(str::to_owned),
        shared_schemas: if isolation == Isolation::Schema {
            match doc.get("shared_schemas") {
                Some(Value::Array(names)) => names
                    .iter()
                    .map(|n| match n {
                        Value::String(s) => s.clone(),
                        _ => malformed("\"shared_schemas\" is not an array of names"),
                    })
                    .collect(),
                None | Some(Value::Null) => Vec::new(),
                Some(_) => malformed("\"shared_schemas\" is not an array"),
            }
        } else {
            Vec::new()
        },
    }
}
