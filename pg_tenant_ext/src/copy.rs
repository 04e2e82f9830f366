//! `COPY <protected table> FROM STDIN` for tenant sessions.
//!
//! PostgreSQL refuses COPY FROM on any table whose row level security
//! applies to the session (0A000), and `tenant.protect` forces it. In a
//! tenant session, for a table whose only INSERT policy is the one
//! `tenant.protect` wrote, this module runs the COPY itself with
//! PostgreSQL's own COPY machinery (`BeginCopyFrom`/`CopyFrom`: every
//! format, batching, defaults, constraints, generated columns, AFTER
//! triggers, partition routing), as the session's own user, after the same
//! permission check `DoCopy` makes (INSERT on the named columns). What RLS
//! would check per row, the policy's `WITH CHECK (tenant column = current
//! tenant)`, is a per-row qualifier that cannot be skipped: a row whose
//! tenant column (after defaults) is not the session's tenant, or NULL,
//! aborts the whole COPY with 42501, so nothing is written.
//!
//! Refused (0A000, with the reason): tables with other INSERT policies
//! (their conditions would not be applied), tables with BEFORE INSERT row
//! triggers (they would run after the check and could change the tenant
//! column), and `COPY ... WHERE` (keep the filter in the data). `COPY FROM
//! PROGRAM` and server files stay as PostgreSQL has them. `read_only` and
//! `allowed_operations` are checked before this (hooks).

use crate::admission::as_catalog_reader;
use crate::compat;
use crate::confine::{self, rel_name};
use crate::report::printable;
use crate::state;
use pgrx::prelude::*;
use pgrx::{pg_sys, AnyElement, PgSqlErrorCode};
use std::ffi::CStr;

/// What the catalog says about a table a tenant copies into.
struct Eligibility {
    /// The tenant column, when the only INSERT policy is protect()'s.
    tenant_attnum: Option<i16>,
    /// Enabled BEFORE INSERT row triggers on the table or a partition.
    before_row_triggers: bool,
    /// `tenant._copy_check(anyelement)`.
    check_fn: pg_sys::Oid,
}

fn refuse(code: PgSqlErrorCode, msg: String, hint: &str) -> ! {
    let mut report = pg_sys::panic::ErrorReport::new(code, msg, "pg_tenant::copy");
    if !hint.is_empty() {
        report = report.set_hint(hint);
    }
    report.report(pgrx::PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

fn eligibility(relid: pg_sys::Oid) -> Eligibility {
    // The tenant column protect() recorded (tenant.protected), while the
    // table's pg_tenant_isolation policy is still protect's (compared as
    // expression trees: tenant._is_protects_policy) and no other policy
    // applies to INSERT.
    const Q: &str = "\
        SELECT (SELECT a.attnum FROM tenant.protected r \
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = r.relid AND a.attnum > 0 \
                                                 AND a.attname = r.tenant_column AND NOT a.attisdropped \
                 WHERE r.relid = $1::pg_catalog.regclass \
                   AND tenant._is_protects_policy(r.relid, r.tenant_column) \
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy q \
                                    WHERE q.polrelid = $1 AND q.polname <> 'pg_tenant_isolation' \
                                      AND q.polcmd IN ('*', 'a'))), \
               EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t \
                        WHERE (t.tgrelid = $1 OR t.tgrelid IN \
                               (SELECT r.relid FROM pg_catalog.pg_partition_tree($1) r)) \
                          AND NOT t.tgisinternal AND t.tgenabled <> 'D' \
                          AND (t.tgtype::pg_catalog.int4 & 7) = 7), \
               pg_catalog.to_regprocedure('tenant._copy_check(anyelement)')::pg_catalog.oid";
    let row = as_catalog_reader(|| {
        Spi::connect(|client| {
            let t = client.select(Q, Some(1), &[relid.into()])?;
            let r = t.first();
            Ok::<_, pgrx::spi::Error>(Eligibility {
                tenant_attnum: r.get::<i16>(1)?,
                before_row_triggers: r.get::<bool>(2)?.unwrap_or(true),
                check_fn: r.get::<pg_sys::Oid>(3)?.unwrap_or(pg_sys::InvalidOid),
            })
        })
    });
    match row {
        Ok(e) => e,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not inspect the COPY target: {e}"),
            "",
        ),
    }
}

/// Run `COPY <protected table> FROM STDIN` for a tenant session. Returns
/// false (and does nothing) for any other statement, which then takes
/// PostgreSQL's own path.
///
/// # Safety
/// Called from ProcessUtility with its arguments.
pub unsafe fn copy_from(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    query_env: *mut pg_sys::QueryEnvironment,
    qc: *mut pg_sys::QueryCompletion,
) -> bool {
    let node = (*pstmt).utilityStmt;
    if (*node).type_ != pg_sys::NodeTag::T_CopyStmt {
        return false;
    }
    let stmt = node as *mut pg_sys::CopyStmt;
    if !(*stmt).is_from
        || (*stmt).relation.is_null()
        || !(*stmt).filename.is_null()
        || (*stmt).is_program
    {
        return false;
    }
    let relid = confine::relid((*stmt).relation);
    if relid == pg_sys::InvalidOid
        || pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true)
            != pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    {
        return false; // no RLS in the way: PostgreSQL's COPY as usual
    }
    // Lock the table and every partition (as INSERT would) before looking
    // at policies and triggers: nothing can change them under the COPY.
    let lockmode = pg_sys::RowExclusiveLock as i32;
    let rel = pg_sys::table_openrv((*stmt).relation, lockmode);
    if (*rel).rd_id != relid {
        // Renamed or replaced between the lookup and the lock: start over
        // on PostgreSQL's own path (which refuses RLS tables).
        pg_sys::table_close(rel, lockmode);
        return false;
    }
    pg_sys::ffi::pg_guard_ffi_boundary(|| {
        find_all_inheritors(relid, lockmode, std::ptr::null_mut())
    });
    let name = rel_name(relid);
    let hint = "Protect the table with tenant.protect() only, or load with INSERT.";
    let e = eligibility(relid);
    let Some(attnum) = e.tenant_attnum else {
        refuse(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "COPY FROM into \"{name}\" is not supported: pg_tenant loads only into tables \
                 whose one INSERT policy is the one tenant.protect() wrote"
            ),
            hint,
        );
    };
    if e.before_row_triggers {
        refuse(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "COPY FROM into \"{name}\" is not supported: it has BEFORE INSERT row triggers, \
                 which would run after pg_tenant's per-row tenant check"
            ),
            "Load with INSERT, or move the trigger's work to an AFTER trigger.",
        );
    }
    if !(*stmt).whereClause.is_null() {
        refuse(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!("COPY FROM ... WHERE into the protected table \"{name}\" is not supported"),
            "Filter the rows before sending them.",
        );
    }
    if e.check_fn == pg_sys::InvalidOid {
        pg_sys::table_close(rel, lockmode);
        return false;
    }
    let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
    (*pstate).p_sourcetext = query_string;
    (*pstate).p_queryEnv = query_env;
    // DoCopy's permission check, as the session's own user: INSERT on the
    // table or on every named column.
    let nsitem = pg_sys::addRangeTableEntryForRelation(
        pstate,
        rel,
        lockmode,
        std::ptr::null_mut(),
        false,
        false,
    );
    let attnums = pg_sys::CopyGetAttnums((*rel).rd_att, rel, (*stmt).attlist);
    compat::check_copy_from_permission(pstate, nsitem, attnums);
    if pg_sys::XactReadOnly && (*(*rel).rd_rel).relpersistence != pg_sys::RELPERSISTENCE_TEMP as i8
    {
        pg_sys::PreventCommandIfReadOnly(c"COPY FROM".as_ptr());
    }
    // The per-row check: tenant._copy_check(<tenant column>), evaluated
    // after defaults, as the COPY's qualifier (a List: implicit AND).
    let att = compat::tupdesc_attr((*rel).rd_att, (attnum - 1) as usize);
    let var = pg_sys::makeVar(1, attnum, att.atttypid, att.atttypmod, att.attcollation, 0);
    let args = pg_sys::lappend(std::ptr::null_mut(), var.cast());
    let check = pg_sys::makeFuncExpr(
        e.check_fn,
        pg_sys::BOOLOID,
        args,
        pg_sys::InvalidOid,
        att.attcollation,
        pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
    );
    let qual = pg_sys::lappend(std::ptr::null_mut(), check.cast());
    let cstate = pg_sys::BeginCopyFrom(
        pstate,
        rel,
        qual.cast(),
        std::ptr::null(),
        false,
        None,
        (*stmt).attlist,
        (*stmt).options,
    );
    let processed = pg_sys::CopyFrom(cstate);
    pg_sys::EndCopyFrom(cstate);
    pg_sys::table_close(rel, pg_sys::NoLock as i32);
    if !qc.is_null() {
        (*qc).commandTag = pg_sys::CommandTag::CMDTAG_COPY;
        (*qc).nprocessed = processed;
    }
    true
}

unsafe extern "C-unwind" {
    /// catalog/pg_inherits.h (not among pgrx's bindings): the relation and
    /// all its partitions and children, each locked in `lockmode`.
    fn find_all_inheritors(
        parent: pg_sys::Oid,
        lockmode: i32,
        numparents: *mut *mut pg_sys::List,
    ) -> *mut pg_sys::List;
}

/// Internal, for COPY FROM into protected tables: true when a row's tenant
/// column holds this session's tenant; otherwise ERROR 42501, which aborts
/// the whole COPY. The value is compared in its text form, the form tenant
/// ids have (`current_tenant_uuid()`/`_bigint()` columns included).
#[pg_extern(stable, parallel_safe, name = "_copy_check")]
fn copy_check(value: Option<AnyElement>) -> bool {
    let Some(v) = value else {
        refuse_row(None);
    };
    let ty = v.oid();
    if ty == pg_sys::TEXTOID || ty == pg_sys::VARCHAROID {
        // The common case, per row: compare the bytes, no output function.
        // SAFETY: a text/varchar datum; the detoasted copy lives in the
        // current memory context for the comparison only.
        let same = unsafe {
            let t = pg_sys::pg_detoast_datum_packed(v.datum().cast_mut_ptr());
            let len = pgrx::varlena::varsize_any_exhdr(t);
            let data = std::slice::from_raw_parts(pgrx::varlena::vardata_any(t) as *const u8, len);
            state::with_tenant(|cur| cur.map(str::as_bytes) == Some(data))
        };
        if same {
            return true;
        }
    }
    let (mut out, mut varlena) = (pg_sys::InvalidOid, false);
    // SAFETY: the datum is of type `ty`; its output function returns a
    // palloc'd C string.
    let shown = unsafe {
        pg_sys::getTypeOutputInfo(ty, &mut out, &mut varlena);
        let p = pg_sys::OidOutputFunctionCall(out, v.datum());
        CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    if state::with_tenant(|cur| cur == Some(shown.as_str())) {
        return true;
    }
    refuse_row(Some(&shown));
}

/// ERROR 42501 for a row of another tenant (or none): the COPY aborts.
fn refuse_row(shown: Option<&str>) -> ! {
    let who = state::tenant().unwrap_or_else(|| "(none)".into());
    let row = match shown {
        Some(v) => format!("names tenant \"{}\"", printable(v)),
        None => "has no tenant (NULL)".to_string(),
    };
    refuse(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "COPY FROM refused: a row {row}, but this session belongs to tenant \"{who}\"; \
             nothing was loaded"
        ),
        "Leave out the tenant column (it defaults to the session's tenant) or load only your own rows.",
    );
}
