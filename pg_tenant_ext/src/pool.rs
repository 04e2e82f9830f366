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
//!   and (0.5.0) any object left in the session's temporary schema by a
//!   DDL statement, e.g. a table created while `SET LOCAL search_path =
//!   pg_temp` (checked after the statement: [`after_utility`]);
//! * session-level advisory locks (`tenant.advisory_lock` and its session
//!   forms, `advisory`; the `_xact_` forms stay allowed; the raw
//!   `pg_advisory_*` functions are refused to every tenant by `confine`);
//! * `SET SESSION CHARACTERISTICS`, and `SET ROLE` / `SET SESSION
//!   AUTHORIZATION` without `LOCAL`.
//!
//! Session-level `SET` is allowed (drivers run it at connect: pgjdbc's
//! `SET extra_float_digits = 3`, Rails, Django): `SET name = value`, `SET
//! name TO DEFAULT`, `SET name FROM CURRENT` (and the spellings the parser
//! turns into them: `SET TIME ZONE`, `SET SCHEMA`, `SET NAMES`) and `RESET
//! name`. Once such a statement has succeeded, [`record_set`] records it in
//! `pg_tenant.session_settings`: a JSON object from the setting's canonical
//! name to its value as `current_setting()` shows it (null after `RESET`),
//! e.g. `{"TimeZone":"UTC","extra_float_digits":"3"}`, set transactionally
//! like the `SET` itself. That GUC is GUC_REPORT: before each ReadyForQuery
//! whose value differs from the last one reported, PostgreSQL sends a
//! ParameterStatus, and the router carries the client's settings to the
//! next backends it serves the client on. `RESET ALL` and `DISCARD ALL` empty it.
//!
//! `pg_catalog.set_config(name, value, false)` is allowed and not recorded:
//! the router applies a client's startup parameters with it once the
//! context is set. A client can use it to leave a
//! setting to the next client of the same tenant on that backend (a known
//! leak within one tenant; never across tenants as long as a backend
//! changes tenant only through `clear_context`, `DISCARD ALL`,
//! `set_context`, as the router does).
//!
//! Refusals are ERROR 0A000 (feature_not_supported) naming the feature,
//! the tenant and why, with a hint. Session-mode tenants are unaffected.

use crate::admission::as_catalog_reader;
use crate::gucs;
use crate::state::{self, ContextState};
use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use std::ffi::CStr;

/// Refuse `feature` with 0A000, the reason and `hint`.
pub fn refuse(feature: &str, hint: &str) -> ! {
    let tenant = state::tenant().unwrap_or_default();
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

/// `SET` without `LOCAL` is allowed: [`record_set`] reports it to the
/// router, which carries it to the client's next backends. Refused: `SET
/// SESSION CHARACTERISTICS` (not a setting the router can carry), and a
/// session-level `SET ROLE` / `SET SESSION AUTHORIZATION` (the role is the
/// router's and the role lock's business: the role is locked in every tenant
/// session, so `hooks` has refused them already with 42501; this is the
/// backstop, never to be carried to another backend). `SET LOCAL`, `RESET`, `SET
/// TRANSACTION` and `SET TRANSACTION SNAPSHOT` stay allowed.
unsafe fn check_set(stmt: *mut pg_sys::VariableSetStmt) {
    use pg_sys::VariableSetKind::*;
    if (*stmt).is_local {
        return;
    }
    let name = if (*stmt).name.is_null() {
        String::new()
    } else {
        CStr::from_ptr((*stmt).name).to_string_lossy().into_owned()
    };
    let what = match (*stmt).kind {
        VAR_SET_MULTI if name.starts_with("TRANSACTION") => return,
        VAR_SET_MULTI => format!("SET {name}"),
        VAR_SET_VALUE | VAR_SET_DEFAULT | VAR_SET_CURRENT
            if matches!(
                name.to_ascii_lowercase().as_str(),
                "role" | "session_authorization"
            ) =>
        {
            format!("SET {name} (without LOCAL)")
        }
        _ => return,
    };
    refuse(
        &what,
        "Use SET LOCAL (or set_config(name, value, true)) inside a transaction, or give the \
         tenant pool_mode session.",
    );
}

/// The canonical name of setting `name` and its value as `current_setting()`
/// shows it (`None` when there is no such setting). For a setting only
/// superusers may read, the name as given (lower case) and the value as
/// `GetConfigOption` gives it (a valid input value, in base units).
unsafe fn current_setting(name: &CStr) -> (String, Option<String>) {
    let lossy = |p: *const std::ffi::c_char| {
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    };
    let flags = pg_sys::GetConfigOptionFlags(name.as_ptr(), true);
    if flags as u32 & pg_sys::GUC_SUPERUSER_ONLY != 0 {
        let value = lossy(pg_sys::GetConfigOption(name.as_ptr(), true, false));
        return (name.to_string_lossy().to_ascii_lowercase(), value);
    }
    let mut canonical: *const std::ffi::c_char = std::ptr::null();
    let value = lossy(pg_sys::GetConfigOptionByName(
        name.as_ptr(),
        &mut canonical,
        true,
    ));
    let canonical = lossy(canonical).unwrap_or_else(|| name.to_string_lossy().to_ascii_lowercase());
    (canonical, value)
}

/// After a utility statement succeeded: in a transaction-pooled session,
/// record a session-level `SET name ...` (its value now) or `RESET name`
/// (null) in `pg_tenant.session_settings`, which PostgreSQL reports to the
/// router (GUC_REPORT). Set like the `SET` itself (transactional: a rolled
/// back `SET` rolls the record back). `SET LOCAL`, `RESET ALL` (which
/// empties the record, a GUC like the others), `SET TRANSACTION` and the
/// role settings are not recorded; nor is anything in session mode.
///
/// # Safety
/// `node` is the utility statement ProcessUtility ran.
pub unsafe fn record_set(st: &ContextState, node: *mut pg_sys::Node) {
    use pg_sys::VariableSetKind::*;
    if !transaction_pooled(st)
        || node.is_null()
        || (*node).type_ != pg_sys::NodeTag::T_VariableSetStmt
    {
        return;
    }
    let stmt = node as *mut pg_sys::VariableSetStmt;
    if (*stmt).is_local || (*stmt).name.is_null() {
        return;
    }
    let reset = match (*stmt).kind {
        VAR_SET_VALUE | VAR_SET_DEFAULT | VAR_SET_CURRENT => false,
        VAR_RESET => true,
        _ => return,
    };
    let given = CStr::from_ptr((*stmt).name);
    let lower = given.to_string_lossy().to_ascii_lowercase();
    if lower == "role" || lower == "session_authorization" || lower.starts_with("pg_tenant.") {
        return;
    }
    let (name, value) = current_setting(given);
    let mut settings = gucs::session_settings();
    settings.insert(name, if reset { None } else { value });
    gucs::set_session_settings(&settings);
}

/// After a DDL statement in a transaction-pooled session: nothing may be
/// left in the session's temporary schema, whatever route put it there
/// (`CREATE TEMP` and `pg_temp.` names are refused before; this catches
/// `SET LOCAL search_path = pg_temp` followed by a plain `CREATE`, for
/// tables, views, sequences, types, functions, operators, collations,
/// conversions, operator families, statistics and text search objects
/// alike). The ERROR rolls
/// the statement back.
///
/// # Safety
/// `node` is the utility statement ProcessUtility ran.
pub unsafe fn after_utility(st: &ContextState, node: *mut pg_sys::Node) {
    if !transaction_pooled(st)
        || node.is_null()
        || pg_sys::GetCommandLogLevel(node) != pg_sys::LogStmtLevel::LOGSTMT_DDL
    {
        return;
    }
    let (mut temp, mut toast) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
    pg_sys::GetTempNamespaceState(&mut temp, &mut toast);
    if temp == pg_sys::InvalidOid {
        return;
    }
    const Q: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_class c \
                       WHERE c.relnamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_type t \
                       WHERE t.typnamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_proc p \
                       WHERE p.pronamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_operator o \
                       WHERE o.oprnamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_collation l \
                       WHERE l.collnamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_conversion v \
                       WHERE v.connamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_opfamily f \
                       WHERE f.opfnamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_statistic_ext x \
                       WHERE x.stxnamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_ts_config g \
                       WHERE g.cfgnamespace OPERATOR(pg_catalog.=) $1) \
                     OR EXISTS (SELECT FROM pg_catalog.pg_ts_dict d \
                       WHERE d.dictnamespace OPERATOR(pg_catalog.=) $1)";
    let left = as_catalog_reader(|| pgrx::spi::Spi::get_one_with_args::<bool>(Q, &[temp.into()]));
    if matches!(left, Ok(Some(true))) {
        refuse("creating temporary objects", TEMP_HINT);
    }
}
