//! The end user within the tenant: `current_subject()` and
//! `current_claims()`.
//!
//! Set by the 4-argument `tenant.set_context(tenant, token, subject,
//! claims)` from a `set-subject` token (the router signs the tenant, the
//! subject and the claims together), cleared by the 2-argument
//! `set_context` and by `clear_context`. The values live in the SUSET GUCs
//! `pg_tenant.subject` and `pg_tenant.claims` (see `gucs`), protected
//! exactly like the tenant id; their assign hooks keep a copy in `state`,
//! so reading the subject costs no GUC lookup.

use crate::state;
use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::CString;

/// Check that `claims` is the text of a JSON object by PostgreSQL's own
/// jsonb parser (what `current_claims()` will run on it). 22023 otherwise.
pub fn check_claims(claims: &str) {
    let refuse = |why: String| -> ! {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("claims must be the text of a JSON object: {why}")
        );
    };
    let Ok(text) = CString::new(claims) else {
        refuse("it contains a NUL byte".into());
    };
    let kind = PgTryBuilder::new(|| {
        // SAFETY: jsonb_in takes a NUL-terminated cstring, jsonb_typeof a
        // jsonb datum; both are built-in and raise on bad input.
        unsafe {
            let datum = pgrx::direct_function_call_as_datum(
                pg_sys::jsonb_in,
                &[Some(pg_sys::Datum::from(text.as_ptr()))],
            );
            Ok(pgrx::direct_function_call::<String>(
                pg_sys::jsonb_typeof,
                &[datum],
            ))
        }
    })
    .catch_others(|e| match e {
        pg_sys::panic::CaughtError::PostgresError(r) => Err(r.message().to_owned()),
        other => other.rethrow(),
    })
    .execute();
    match kind {
        Ok(Some(k)) if k == "object" => {}
        Ok(k) => refuse(format!("got a JSON {}", k.unwrap_or_default())),
        Err(msg) => refuse(msg),
    }
}

/// The end user (subject) of this session within its tenant, or NULL when
/// the context was set without one (or there is no context). Set only by
/// `tenant.set_context(tenant, token, subject, claims)` with a token the
/// router signed for exactly that subject. STABLE and PARALLEL SAFE: use
/// `(SELECT tenant.current_subject())` in policies.
#[pg_extern(stable, parallel_safe)]
fn current_subject() -> Option<String> {
    state::subject()
}

/// The subject's claims as jsonb (the JSON object the router signed with
/// the subject), or NULL without a subject. STABLE and PARALLEL SAFE.
#[pg_extern(stable, parallel_safe)]
fn current_claims() -> Option<JsonbText> {
    state::claims().map(JsonbText)
}

/// JSON text returned as `jsonb`, parsed by PostgreSQL's own jsonb input
/// function (pgrx's `JsonB` would go through serde_json and round numbers).
pub struct JsonbText(CString);

pgrx::impl_sql_translatable!(JsonbText, "jsonb");

// SAFETY: returns a datum made by jsonb_in in the function's memory context.
unsafe impl BoxRet for JsonbText {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        let datum = pgrx::direct_function_call_as_datum(
            pg_sys::jsonb_in,
            &[Some(pg_sys::Datum::from(self.0.as_ptr()))],
        );
        match datum {
            Some(d) => fcinfo.return_raw_datum(d),
            None => fcinfo.return_null(),
        }
    }
}
