//! The executor and utility hooks (`ExecutorStart`, `ProcessUtility`,
//! chained to any installed before): the checks made at every statement.
//!
//! In a backend with a tenant context:
//!
//! * Role lock: every statement checks that the outer role is still the
//!   tenant's locked role, and `SET`/`RESET` of `role` or
//!   `session_authorization` is refused (`rolelock` also refuses a change
//!   made inside a statement); `DISCARD ALL` re-asserts the role.
//! * DDL (Postgres' own `GetCommandLogLevel() == LOGSTMT_DDL`) is refused
//!   unless the tenant has `allow_ddl`; `TRUNCATE` also needs a writable
//!   tenant with DELETE.
//! * `read_only` tenants cannot write; `allowed_operations` restricts the
//!   DML kinds. Checked in `ExecutorStart` (so functions, DO blocks and
//!   writable CTEs are covered) and for `COPY FROM` in `ProcessUtility`.
//! * `COPY <protected table> FROM STDIN` is run by pg_tenant itself (`copy`).
//! * Session-only features under `pool_mode = transaction` (`pool`): 0A000;
//!   a session-level `SET`/`RESET` that succeeded there is recorded for the
//!   router afterwards (`pool::record_set`).
//!
//! With a context, and for an application role without one: confinement
//! (`confine`), what no tenant session may reach. For every role but a
//! superuser: `SET`/`RESET` of any `pg_tenant.*` name is refused with 42501
//! (the prefix is reserved; `set_context` is the only writer). After every
//! utility statement, `advisory` forgets the locks `DISCARD ALL` released.
//!
//! Refusals are ERROR 42501 naming the tenant and the operation (0A000 for
//! `pool`'s).

use crate::confine;
use crate::context;
use crate::copy;
use crate::state::{self, ops, ContextState};
use pgrx::pg_sys::submodules::panic::pgrx_extern_c_guard as guard;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::CStr;

static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;
static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

/// Install the hooks, chaining to whatever was installed before.
///
/// # Safety
/// Call once, from `_PG_init` while shared_preload_libraries load.
pub unsafe fn init() {
    PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
    pg_sys::ProcessUtility_hook = Some(process_utility);
    PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
    pg_sys::ExecutorStart_hook = Some(executor_start);
    confine::init();
}

fn deny(what: &str) -> ! {
    let tenant = state::tenant().unwrap_or_default();
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("tenant \"{tenant}\" is not allowed to {what}")
    );
}

/// Refuse anything once the session's role no longer is the locked role.
fn check_role_lock(st: &ContextState) {
    // SAFETY: plain reads of backend globals.
    let (worker, outer) = unsafe { (pg_sys::ParallelWorkerNumber >= 0, pg_sys::GetOuterUserId()) };
    if st.role != 0 && !worker && outer.to_u32() != st.role {
        let tenant = state::tenant().unwrap_or_default();
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("the role of tenant \"{tenant}\" is locked; the session role was changed away from it")
        );
    }
}

fn op_name(op: pg_sys::CmdType::Type) -> (&'static str, u8) {
    match op {
        pg_sys::CmdType::CMD_INSERT => ("INSERT", ops::INSERT),
        pg_sys::CmdType::CMD_UPDATE => ("UPDATE", ops::UPDATE),
        pg_sys::CmdType::CMD_DELETE => ("DELETE", ops::DELETE),
        pg_sys::CmdType::CMD_MERGE => ("MERGE", ops::INSERT | ops::UPDATE | ops::DELETE),
        _ => ("SELECT", ops::SELECT),
    }
}

/// The DML kinds a plan performs: its own operation plus those of the
/// ModifyTable nodes of writable CTEs (which sit atop subplans).
unsafe fn plan_writes(stmt: *mut pg_sys::PlannedStmt) -> Vec<pg_sys::CmdType::Type> {
    let mut out = vec![(*stmt).commandType];
    let mut nodes = vec![(*stmt).planTree];
    if (*stmt).hasModifyingCTE {
        let subplans = pgrx::PgList::<pg_sys::Plan>::from_pg((*stmt).subplans);
        nodes.extend(subplans.iter_ptr());
    }
    for p in nodes {
        if p.is_null() || (*p).type_ != pg_sys::NodeTag::T_ModifyTable {
            continue;
        }
        let mt = p as *mut pg_sys::ModifyTable;
        out.push((*mt).operation);
        // INSERT ... ON CONFLICT DO UPDATE updates.
        if (*mt).onConflictAction == pg_sys::OnConflictAction::ONCONFLICT_UPDATE {
            out.push(pg_sys::CmdType::CMD_UPDATE);
        }
    }
    out
}

fn check_dml(st: &ContextState, stmt: *mut pg_sys::PlannedStmt) {
    // SAFETY: the executor hands us a valid planned statement.
    let (writes, row_marks) = unsafe { (plan_writes(stmt), !(*stmt).rowMarks.is_null()) };
    for op in writes {
        let (name, bits) = op_name(op);
        if st.read_only && bits != ops::SELECT {
            deny(&format!("{name}: the tenant is read-only"));
        }
        if st.ops & bits != bits {
            deny(&format!("{name}: not in its allowed_operations"));
        }
    }
    // SAFETY: as above.
    let top_is_select = unsafe { (*stmt).commandType == pg_sys::CmdType::CMD_SELECT };
    if st.read_only && row_marks && top_is_select {
        deny("lock rows (SELECT FOR UPDATE/SHARE): the tenant is read-only");
    }
}

/// ExecutorStart's checks (run inside [`guard`], before the call-through).
unsafe fn executor_start_checks(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    let st = state::state();
    let explain_only = eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as i32 != 0;
    if st.active && !explain_only {
        check_role_lock(&st);
        check_dml(&st, (*query_desc).plannedstmt);
    }
    if !explain_only {
        crate::gate::check_plan(&st, (*query_desc).plannedstmt);
        confine::check_plan(&st, (*query_desc).plannedstmt);
    }
}

// The hooks below are deliberately not #[pg_guard]: an ERROR raised by the
// code they call through to (a `RAISE ... USING ERRCODE = 'P0123'` in a DO
// block or a CALL) must reach the client exactly as PostgreSQL made it
// (SQLSTATE, message, detail, hint, context, field names). pgrx's wrapped
// `standard_*` bindings and #[pg_guard] would catch it and raise a copy
// whose unknown SQLSTATE becomes XX000 and whose CONTEXT is gone. So our
// own checks run inside `guard` (a Rust panic or ERROR there is reported as
// usual, and the guard has returned before the call-through), and the
// previous hook or the standard function is called through unwrapped
// declarations from a frame that holds only Copy values: a longjmp passes
// straight through it, skipping nothing that needs dropping.
unsafe extern "C-unwind" {
    #[link_name = "standard_ProcessUtility"]
    fn raw_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const std::ffi::c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
    #[link_name = "standard_ExecutorStart"]
    fn raw_standard_executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32);
}

unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: i32) {
    // SAFETY: see above; only Copy values live in this frame.
    guard(|| executor_start_checks(query_desc, eflags));
    match PREV_EXECUTOR_START {
        Some(prev) => prev(query_desc, eflags),
        None => raw_standard_executor_start(query_desc, eflags),
    }
}

unsafe fn var_name(stmt: *mut pg_sys::VariableSetStmt) -> String {
    if (*stmt).name.is_null() {
        return String::new();
    }
    CStr::from_ptr((*stmt).name)
        .to_string_lossy()
        .to_ascii_lowercase()
}

/// Utility-statement checks. Returns true when the statement is a
/// `DISCARD ALL` whose role reset must be undone afterwards.
unsafe fn check_utility(st: &ContextState, node: *mut pg_sys::Node) -> bool {
    let tag = (*node).type_;
    if tag == pg_sys::NodeTag::T_VariableSetStmt {
        let name = var_name(node as *mut pg_sys::VariableSetStmt);
        if st.role != 0 && (name == "role" || name == "session_authorization") {
            deny(&format!(
                "change \"{name}\": the tenant role is locked for this session"
            ));
        }
    }
    let discard_all = tag == pg_sys::NodeTag::T_DiscardStmt
        && (*(node as *mut pg_sys::DiscardStmt)).target == pg_sys::DiscardMode::DISCARD_ALL;
    if !discard_all && tag != pg_sys::NodeTag::T_TransactionStmt {
        check_role_lock(st);
    }
    if !st.allow_ddl && pg_sys::GetCommandLogLevel(node) == pg_sys::LogStmtLevel::LOGSTMT_DDL {
        let cmd = CStr::from_ptr(pg_sys::CreateCommandName(node)).to_string_lossy();
        deny(&format!("run DDL ({cmd}): allow_ddl is off"));
    }
    // Postgres logs TRUNCATE as a modification, but it is schema-level
    // destruction too: it needs allow_ddl, a writable tenant and DELETE.
    if tag == pg_sys::NodeTag::T_TruncateStmt {
        if !st.allow_ddl {
            deny("run DDL (TRUNCATE): allow_ddl is off");
        }
        if st.read_only {
            deny("TRUNCATE: the tenant is read-only");
        }
        if st.ops & ops::DELETE == 0 {
            deny("TRUNCATE: DELETE is not in its allowed_operations");
        }
    }
    if tag == pg_sys::NodeTag::T_CopyStmt {
        let copy = node as *mut pg_sys::CopyStmt;
        if (*copy).is_from {
            if st.read_only {
                deny("COPY FROM: the tenant is read-only");
            }
            if st.ops & ops::INSERT == 0 {
                deny("COPY FROM: INSERT is not in its allowed_operations");
            }
        }
    }
    discard_all && st.role != 0
}

/// `SET`/`RESET pg_tenant.*` by anyone but a superuser: 42501.
unsafe fn check_reserved_settings(node: *mut pg_sys::Node) {
    if (*node).type_ != pg_sys::NodeTag::T_VariableSetStmt || pg_sys::superuser() {
        return;
    }
    let name = var_name(node as *mut pg_sys::VariableSetStmt);
    if name.starts_with("pg_tenant.") {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "cannot set \"{name}\": pg_tenant.* settings are reserved; the tenant context \
                 changes only through tenant.set_context() with a token from the router"
            )
        );
    }
}

/// What ProcessUtility's checks decided, for the call-through and after.
#[derive(Clone, Copy)]
struct Before {
    /// pg_tenant ran the statement itself (COPY FROM into a protected table).
    done: bool,
    /// The statement to run (a copy with namespaced channels, or the original).
    pstmt: *mut pg_sys::PlannedStmt,
    /// The original utility statement.
    utility: *mut pg_sys::Node,
    /// A DISCARD ALL whose role reset must be undone.
    reassert: bool,
    st: ContextState,
}

unsafe fn utility_before(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    query_env: *mut pg_sys::QueryEnvironment,
    qc: *mut pg_sys::QueryCompletion,
) -> Before {
    let st = state::state();
    let utility = (*pstmt).utilityStmt;
    check_reserved_settings(utility);
    crate::gate::check_utility(&st, utility);
    let confined = confine::confined(&st);
    if confined {
        confine::check_utility(&st, utility);
    }
    let reassert = st.active && check_utility(&st, utility);
    crate::pool::check_utility(&st, utility);
    let mut before = Before {
        done: false,
        pstmt,
        utility,
        reassert,
        st,
    };
    // COPY FROM STDIN into a protected table: pg_tenant runs it (copy.rs).
    if st.active && copy::copy_from(pstmt, query_string, query_env, qc) {
        before.done = true;
    } else if confined {
        before.pstmt = confine::rewrite_channels(pstmt).unwrap_or(pstmt);
    }
    before
}

unsafe fn utility_after(b: Before) {
    if b.reassert {
        context::reapply_role(b.st.role);
    }
    crate::advisory::after_utility(b.utility);
    crate::pool::after_utility(&b.st, b.utility);
    crate::pool::record_set(&b.st, b.utility);
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: see above; only Copy values live in this frame.
    let b = guard(|| utility_before(pstmt, query_string, query_env, qc));
    if b.done {
        return;
    }
    match PREV_PROCESS_UTILITY {
        Some(prev) => prev(
            b.pstmt,
            query_string,
            read_only_tree,
            context,
            params,
            query_env,
            dest,
            qc,
        ),
        None => raw_standard_process_utility(
            b.pstmt,
            query_string,
            read_only_tree,
            context,
            params,
            query_env,
            dest,
            qc,
        ),
    }
    guard(|| utility_after(b));
}
