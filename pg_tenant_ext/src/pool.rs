//! Transaction pooling: session-only features are refused to a session
//! whose tenant's effective `pool_mode` is `transaction` (read once, by
//! `set_context`, into the context state).
//!
//! With transaction pooling the router hands a backend to another client of
//! the same tenant between transactions, so anything that outlives a
//! transaction would be left to (or lost by) the wrong client:
//!
//! * `LISTEN` (the registration stays with the backend; `UNLISTEN` stays
//!   allowed);
//! * `DECLARE ... WITH HOLD` (the cursor outlives its transaction);
//! * SQL-level `PREPARE` (protocol-level Parse is the router's business);
//! * temporary relations: `CREATE TEMP TABLE/VIEW/SEQUENCE`, `CREATE TEMP
//!   TABLE AS`, `SELECT INTO TEMP`, and relations created in `pg_temp` by
//!   name;
//! * session advisory locks (`pg_advisory_lock`, `pg_advisory_lock_shared`,
//!   `pg_try_advisory_lock`, `pg_try_advisory_lock_shared`, both forms; the
//!   `_xact_` forms stay allowed), refused in `confine`'s function-execute
//!   hook through [`refused_function`];
//! * `SET` without `LOCAL` (`SET LOCAL`, `RESET` and `SET TRANSACTION` stay
//!   allowed).
//!
//! `pg_catalog.set_config(name, value, false)` stays allowed: the router
//! applies a client's startup parameters with it once the context is set.
//! A client can use it to leave a setting to the next client of the same
//! tenant on that backend (a known leak within one tenant; never across
//! tenants as long as a backend changes tenant only through
//! `clear_context`, `DISCARD ALL`, `set_context`, as the router does).
//!
//! Refusals are ERROR 0A000 (feature_not_supported) naming the feature,
//! the tenant and why, with a hint. Session-mode tenants are unaffected.

use crate::context::{self, ContextState};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::ffi::CStr;

/// Refuse `feature` with 0A000, the reason and `hint`.
fn refuse(feature: &str, hint: &str) -> ! {
    let tenant = context::tenant().unwrap_or_default();
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!(
            "{feature} is not available to tenant \"{tenant}\": its pool_mode is transaction, \
             and a pooled backend serves other clients between transactions"
        ),
        "pg_tenant::pool",
    )
    .set_hint(hint)
    .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// Whether the session's tenant is pooled per transaction.
pub fn transaction_pooled(st: &ContextState) -> bool {
    st.active && st.transaction_pool
}

/// The session advisory lock functions (the `_xact_` forms are not here).
const SESSION_ADVISORY_LOCKS: [u32; 8] = [
    pg_sys::F_PG_ADVISORY_LOCK_INT8,
    pg_sys::F_PG_ADVISORY_LOCK_INT4_INT4,
    pg_sys::F_PG_ADVISORY_LOCK_SHARED_INT8,
    pg_sys::F_PG_ADVISORY_LOCK_SHARED_INT4_INT4,
    pg_sys::F_PG_TRY_ADVISORY_LOCK_INT8,
    pg_sys::F_PG_TRY_ADVISORY_LOCK_INT4_INT4,
    pg_sys::F_PG_TRY_ADVISORY_LOCK_SHARED_INT8,
    pg_sys::F_PG_TRY_ADVISORY_LOCK_SHARED_INT4_INT4,
];

/// Refuse a session advisory lock function (by oid) in a transaction-pooled
/// session; called for every function execution.
pub fn check_function(st: &ContextState, oid: u32) {
    if SESSION_ADVISORY_LOCKS.contains(&oid) && transaction_pooled(st) {
        // SAFETY: get_func_name returns NULL or a palloc'd C string.
        let p = unsafe { pg_sys::get_func_name(pg_sys::Oid::from(oid)) };
        let name = if p.is_null() {
            "a session advisory lock".to_owned()
        } else {
            // SAFETY: non-null, NUL-terminated.
            let n = unsafe { CStr::from_ptr(p) }.to_string_lossy();
            format!("{n}() (a session advisory lock)")
        };
        refuse(
            &name,
            "Use pg_advisory_xact_lock() or pg_try_advisory_xact_lock() (released at the end of \
             the transaction), or give the tenant pool_mode session.",
        );
    }
}

/// Whether a relation named in a CREATE statement will be temporary:
/// `TEMP`, or created in `pg_temp` by name.
unsafe fn temporary(rv: *const pg_sys::RangeVar) -> bool {
    if rv.is_null() {
        return false;
    }
    if (*rv).relpersistence == pg_sys::RELPERSISTENCE_TEMP as std::ffi::c_char {
        return true;
    }
    !(*rv).schemaname.is_null()
        && CStr::from_ptr((*rv).schemaname)
            .to_bytes()
            .starts_with(b"pg_temp")
}

const TEMP_HINT: &str =
    "Use a regular table (or a CTE within one statement), or give the tenant pool_mode session.";

/// Utility statements a transaction-pooled session may not run.
///
/// # Safety
/// `node` is the utility statement ProcessUtility was given.
pub unsafe fn check_utility(st: &ContextState, node: *mut pg_sys::Node) {
    use pg_sys::NodeTag::*;
    if !transaction_pooled(st) {
        return;
    }
    let refused: Option<(&str, &str)> = match (*node).type_ {
        T_ListenStmt => Some((
            "LISTEN",
            "Give the tenant pool_mode session for clients that wait for notifications.",
        )),
        T_DeclareCursorStmt
            if (*(node as *mut pg_sys::DeclareCursorStmt)).options
                & pg_sys::CURSOR_OPT_HOLD as i32
                != 0 =>
        {
            Some((
                "DECLARE ... WITH HOLD",
                "Declare the cursor without WITH HOLD and use it within one transaction, \
                 or give the tenant pool_mode session.",
            ))
        }
        T_PrepareStmt => Some((
            "PREPARE",
            "Use protocol-level prepared statements (the extended query protocol, which the \
             router handles), or give the tenant pool_mode session.",
        )),
        T_CreateStmt if temporary((*(node as *mut pg_sys::CreateStmt)).relation) => {
            Some(("CREATE TEMP TABLE", TEMP_HINT))
        }
        T_ViewStmt if temporary((*(node as *mut pg_sys::ViewStmt)).view) => {
            Some(("CREATE TEMP VIEW", TEMP_HINT))
        }
        T_CreateSeqStmt if temporary((*(node as *mut pg_sys::CreateSeqStmt)).sequence) => {
            Some(("CREATE TEMP SEQUENCE", TEMP_HINT))
        }
        T_CreateTableAsStmt => {
            let into = (*(node as *mut pg_sys::CreateTableAsStmt)).into;
            (!into.is_null() && temporary((*into).rel))
                .then_some(("CREATE TEMP TABLE AS (or SELECT INTO TEMP)", TEMP_HINT))
        }
        T_VariableSetStmt => {
            check_set(node as *mut pg_sys::VariableSetStmt);
            None
        }
        _ => None,
    };
    if let Some((feature, hint)) = refused {
        refuse(feature, hint);
    }
}

/// `SET` without `LOCAL` outlives the transaction. `SET LOCAL`, `RESET`
/// (back to the session's value), `SET TRANSACTION` and `SET TRANSACTION
/// SNAPSHOT` (local by nature) stay allowed; `SET SESSION CHARACTERISTICS`
/// is refused.
unsafe fn check_set(stmt: *mut pg_sys::VariableSetStmt) {
    use pg_sys::VariableSetKind::*;
    if (*stmt).is_local
        || !matches!(
            (*stmt).kind,
            VAR_SET_VALUE | VAR_SET_DEFAULT | VAR_SET_CURRENT | VAR_SET_MULTI
        )
    {
        return;
    }
    let name = if (*stmt).name.is_null() {
        String::new()
    } else {
        CStr::from_ptr((*stmt).name).to_string_lossy().into_owned()
    };
    if (*stmt).kind == VAR_SET_MULTI && name.starts_with("TRANSACTION") {
        return;
    }
    let what = if (*stmt).kind == VAR_SET_MULTI {
        format!("SET {name}")
    } else {
        format!("SET {name} (without LOCAL)")
    };
    refuse(
        &what,
        "Use SET LOCAL (or set_config(name, value, true)) inside a transaction, or give the \
         tenant pool_mode session.",
    );
}
