//! Schema isolation (0.8.0): a tenant with `isolation = 'schema'` runs as
//! its own role with its schema, then the operator's `shared_schemas`, on
//! its `search_path`.
//!
//! Confinement is by privilege, not by the path: the tenant's role has
//! USAGE on its own schema and no other tenant's (provisioning grants
//! nothing more, `tenant.audit()` reports anything more), so another
//! tenant's schema is unreachable whatever `search_path` or qualified name
//! the session uses. The path is a convenience that must nevertheless hold
//! across resets, so `set_context` makes it the session's *reset value*:
//! `set_config_option` with `PGC_S_OVERRIDE` (a source at or below
//! override updates `reset_val`, whatever the current value's source),
//! then a reset of the current value to it. `RESET search_path`, `RESET
//! ALL`, `DISCARD ALL` (a pooled backend's reset) all come back to the
//! tenant's path; the tenant may still `SET search_path` itself. Leaving
//! (clear_context, or a context for a tenant of another isolation) restores
//! the reset value the backend had before its first schema tenant.
//!
//! The reset value is not transactional (PostgreSQL keeps it outside the
//! GUC stack): if the transaction that called `set_context` aborts, the
//! context is rolled back but the path stays the tenant's until the next
//! `set_context` or `clear_context`. A path grants nothing by itself.
//!
//! The privileged reads (`admission::as_catalog_reader`) pin their own
//! `search_path` at a nested GUC level and are unaffected.

use crate::admission::{as_catalog_reader, quote_ident, role_name, Isolation, TenantRow};
use crate::report::{printable, refuse};
use crate::state::Backend;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::{Cell, RefCell};
use std::ffi::{CStr, CString};

/// Whether this backend's search_path reset value is a tenant's.
static APPLIED: Backend<Cell<bool>> = Backend(Cell::new(false));
/// The reset value before the first schema tenant of this backend.
static ORIGINAL: Backend<RefCell<Option<String>>> = Backend(RefCell::new(None));

/// Apply the tenant's isolation to the session: for a schema tenant, check
/// its schema and set its search_path; for any other, restore the path a
/// schema tenant may have left. Called by `set_context` once the role is
/// locked (`role` is the tenant's role, or the login role). Refuses with
/// 42501, changing nothing, a schema tenant without a role, whose schema
/// is missing, or whose role has no USAGE on it.
pub fn apply(tenant: &str, row: &TenantRow, role: pg_sys::Oid) {
    if row.isolation != Isolation::Schema {
        leave();
        return;
    }
    if row.role.is_none() {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "tenant \"{tenant}\" uses schema isolation but has no role_name: its sessions \
                 would run as the login role, which nothing confines to the tenant's schema; \
                 give it a role (tenant.alter_tenant('{tenant}', role_name => ...), then \
                 tenant.provision_tenant('{tenant}'))"
            ),
        );
    }
    let Some(schema) = row.schema_name.as_deref() else {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenant \"{tenant}\" uses schema isolation but has no schema_name"),
        );
    };
    match schema_usage(schema, role) {
        None => refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "schema \"{}\" of tenant \"{tenant}\" does not exist; create it with \
                 tenant.provision_tenant('{tenant}')",
                printable(schema)
            ),
        ),
        Some(false) => refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "role \"{}\" of tenant \"{tenant}\" has no USAGE on schema \"{}\"; grant it with \
                 tenant.provision_tenant('{tenant}')",
                printable(&role_name(role)),
                printable(schema)
            ),
        ),
        Some(true) => {}
    }
    let path = search_path(schema, &row.shared_schemas);
    if !APPLIED.0.get() {
        *ORIGINAL.0.borrow_mut() = Some(reset_value());
    }
    set_reset_value(&path);
    APPLIED.0.set(true);
}

/// Restore the search_path reset value the backend had before its first
/// schema tenant (clear_context, a context of another isolation).
pub fn leave() {
    if !APPLIED.0.get() {
        return;
    }
    let original = ORIGINAL.0.borrow().clone().unwrap_or_default();
    set_reset_value(&original);
    APPLIED.0.set(false);
}

/// The tenant's search_path: its schema, then the shared schemas, each a
/// quoted identifier.
pub fn search_path(schema: &str, shared: &[String]) -> String {
    std::iter::once(schema)
        .chain(shared.iter().map(String::as_str))
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `role` has USAGE on the schema named `schema`; None when there
/// is no such schema. Read as the catalog reader.
fn schema_usage(schema: &str, role: pg_sys::Oid) -> Option<bool> {
    const Q: &str = "SELECT pg_catalog.has_schema_privilege($2::pg_catalog.int8::pg_catalog.oid, \
                     n.oid, 'USAGE') FROM pg_catalog.pg_namespace n \
                     WHERE n.nspname OPERATOR(pg_catalog.=) $1::pg_catalog.name";
    let found = as_catalog_reader(|| {
        Spi::connect(|client| {
            let t = client.select(
                Q,
                Some(1),
                &[schema.into(), i64::from(role.to_u32()).into()],
            )?;
            if t.is_empty() {
                return Ok::<_, pgrx::spi::Error>(None);
            }
            Ok(Some(t.first().get::<bool>(1)?.unwrap_or(false)))
        })
    });
    match found {
        Ok(r) => r,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not check the tenant's schema: {e}"),
        ),
    }
}

/// The current reset value of search_path.
fn reset_value() -> String {
    // SAFETY: search_path always exists; the result is a NUL-terminated
    // string owned by the GUC machinery, copied at once.
    unsafe {
        let p = pg_sys::GetConfigOptionResetString(c"search_path".as_ptr());
        if p.is_null() {
            return String::new();
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Make `path` search_path's reset value and current value.
fn set_reset_value(path: &str) {
    let value = CString::new(path).unwrap_or_default();
    // SAFETY: both strings are NUL-terminated and live across the calls.
    unsafe {
        // A source at or below PGC_S_OVERRIDE sets reset_val (even when
        // the current value came from a higher source, a session SET).
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            pg_sys::PGERROR as i32,
            false,
        );
        // Then the current value: a RESET (a NULL value takes reset_val).
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            std::ptr::null(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            pg_sys::PGERROR as i32,
            false,
        );
    }
}

/// In a tenant session, refuse what would hand a schema to other roles:
/// GRANT/REVOKE on a schema, ALTER SCHEMA ... OWNER TO / RENAME TO.
/// PostgreSQL itself only warns ("no privileges were granted") when a
/// non-owner grants; schemas are the operator's.
///
/// # Safety
/// `node` is a valid utility statement.
pub unsafe fn check_utility(node: *mut pg_sys::Node) {
    use pg_sys::NodeTag::*;
    let (kind, what) = match (*node).type_ {
        T_GrantStmt => {
            let g = node as *mut pg_sys::GrantStmt;
            let what = if (*g).is_grant { "GRANT" } else { "REVOKE" };
            ((*g).objtype, what)
        }
        T_AlterOwnerStmt => (
            (*(node as *mut pg_sys::AlterOwnerStmt)).objectType,
            "ALTER SCHEMA ... OWNER TO",
        ),
        T_RenameStmt => (
            (*(node as *mut pg_sys::RenameStmt)).renameType,
            "ALTER SCHEMA ... RENAME TO",
        ),
        _ => return,
    };
    if kind == pg_sys::ObjectType::OBJECT_SCHEMA {
        let who = crate::state::tenant().unwrap_or_default();
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "tenant \"{who}\" is not allowed to run {what} on a schema: schemas and who \
                 may use them are the operator's (tenant.provision_tenant)"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_quotes_each_schema() {
        assert_eq!(search_path("acme_s", &[]), "acme_s");
        assert_eq!(
            search_path("Acme", &["ref".into(), "a\"b".into()]),
            "\"Acme\", ref, \"a\"\"b\""
        );
    }

    #[test]
    fn only_catalog_kinds_are_isolations() {
        assert_eq!(Isolation::from_name("schema"), Some(Isolation::Schema));
        assert_eq!(Isolation::from_name("rls"), Some(Isolation::Rls));
        assert_eq!(Isolation::from_name("database"), Some(Isolation::Database));
        assert_eq!(Isolation::from_name("Schema"), None);
    }
}
