//! Fences (docs/src/scaling-out/fences.md): a tenant fenced in this database
//! (`tenant.fenced`, `tenant.fence_tenant`) does not live on this server,
//! and no context of it is set here. Both `set_context` forms and both
//! `set_context_sealed` forms ask [`refuse_fenced`] before they admit a
//! tenant.
//!
//! A fence is checked when a context is set, never per statement: a
//! session that took the tenant before the fence keeps it until it ends
//! or changes tenant (the move terminates those backends).

use crate::admission::as_catalog_reader;
use crate::report::{printable, refuse};
use crate::state::Backend;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::cell::Cell;

/// Raise 55000 when `tenant` is fenced in this database, naming the
/// reason, with a hint to reconnect (the router then routes it to the
/// server it lives on).
pub fn refuse_fenced(tenant: &str) {
    if let Some(reason) = fence_reason(tenant) {
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "tenant \"{tenant}\" does not live on this server (fenced: {})",
                printable(reason.as_deref().unwrap_or("no reason given"))
            ),
            "pg_tenant::fence",
        )
        .set_hint(
            "The tenant was placed on another server: reconnect through tenant-router, \
             which routes it to the server the catalog names.",
        )
        .report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

/// Raise 55000 for a tenant the catalog places on the named upstream
/// `upstream`: its contexts are set there, sealed, not from this catalog.
pub fn refuse_elsewhere(tenant: &str, upstream: &str) {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        format!(
            "tenant \"{tenant}\" does not live on this server (the catalog places it on upstream \"{}\")",
            printable(upstream)
        ),
        "pg_tenant::fence",
    )
    .set_hint(
        "The tenant was placed on another server: reconnect through tenant-router, \
         which routes it to the server the catalog names.",
    )
    .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// The fence of `tenant` in this database: Some(reason) when fenced. None
/// on a schema older than 0.9.0 (no `tenant.fenced`).
fn fence_reason(tenant: &str) -> Option<Option<String>> {
    const EXISTS: &str = "SELECT pg_catalog.to_regclass('tenant.fenced') IS NOT NULL";
    const Q: &str = "SELECT f.reason FROM tenant.fenced f \
                     WHERE f.tenant_id OPERATOR(pg_catalog.=) $1::pg_catalog.text";
    // Whether the table exists, remembered once it does (an older schema
    // gains it through ALTER EXTENSION UPDATE; a dropped one makes the
    // query below fail, which refuses the context).
    static HAS_TABLE: Backend<Cell<bool>> = Backend(Cell::new(false));
    let found = as_catalog_reader(|| {
        Spi::connect(|client| {
            if !HAS_TABLE.0.get() {
                let exists = client
                    .select(EXISTS, Some(1), &[])?
                    .first()
                    .get::<bool>(1)?;
                if exists != Some(true) {
                    return Ok::<_, pgrx::spi::Error>(None);
                }
                HAS_TABLE.0.set(true);
            }
            let t = client.select(Q, Some(1), &[tenant.into()])?;
            if t.is_empty() {
                return Ok(None);
            }
            Ok(Some(t.first().get::<String>(1)?))
        })
    });
    match found {
        Ok(f) => f,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not read the fences: {e}"),
        ),
    }
}
