//! The gate of a tenant database (docs/src/isolation/database.md): in a
//! database bound to a tenant (`tenant.bind_database`), a session whose
//! login and current role are application roles (members of `tenant_app`,
//! not superusers) runs nothing until its sealed context is set, but the
//! call that sets it. A tenant database has no row level security to fall
//! back on: without this, the tenant's login role, logging in straight to
//! PostgreSQL with its password, read and wrote whatever was granted to it
//! (and its database's catalog) while its tenant was disabled or
//! read-only, with no budget and no router limit.
//!
//! Allowed without a context: plans over no relation calling (or
//! inlining) no function but `tenant.set_context_sealed`/`tenant.set_context` (which refuse or
//! admit as usual) and `pg_catalog.convert_from` (the router's encoding of
//! their arguments); transaction control, `SET`, `SHOW` and `DISCARD`.
//! Everything else is ERROR 42501. Privileged code running as another
//! user (the catalog reads of `set_context_sealed`) and background
//! processes (autovacuum) are not gated.

use crate::state::{Backend, ContextState};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::Cell;
use std::ffi::CStr;

/// Whether this database is bound: 1 bound (for the backend's life: a
/// binding is never undone), else the start of the transaction in which
/// it was found unbound (looked up again in a later one), 0 never looked.
static BOUND: Backend<Cell<i64>> = Backend(Cell::new(0));

fn bound() -> bool {
    let cached = BOUND.0.get();
    if cached == 1 {
        return true;
    }
    // SAFETY: inside a transaction (checked by `gated`).
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    if cached != 0 && cached == now {
        return false;
    }
    let is = crate::sealed::bound_tenant().is_some();
    BOUND.0.set(if is { 1 } else { now });
    is
}

/// Whether the gate applies to this statement: an application session
/// (below) in a bound database.
fn gated(st: &ContextState) -> bool {
    app_session(st) && bound()
}

/// No context, a client backend, login and current role application
/// roles: what the gate applies to once the database is bound. Checked
/// before `bound()`, whose lookup is a catalog query per transaction in a
/// database that is not bound (a catalog database, where every login and
/// pooled switch calls `set_context` without a context yet).
fn app_session(st: &ContextState) -> bool {
    if st.active {
        return false;
    }
    // SAFETY: reads of backend globals; role lookups inside a transaction.
    unsafe {
        if pg_sys::MyBackendType != pg_sys::BackendType::B_BACKEND || !pg_sys::IsTransactionState()
        {
            return false;
        }
        let marker = pg_sys::get_role_oid(c"tenant_app".as_ptr(), true);
        if marker == pg_sys::InvalidOid {
            return false;
        }
        let app = |r: pg_sys::Oid| {
            !pg_sys::superuser_arg(r) && pg_sys::is_member_of_role_nosuper(r, marker)
        };
        app(pg_sys::GetSessionUserId()) && app(pg_sys::GetUserId())
    }
}

fn deny(what: &str) -> ! {
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "{what}: this is a tenant database, and nothing runs in it before the tenant's \
             context is set (tenant-router sets it at login)"
        )
    );
}

/// `schema.name` of a function ("" parts when unknown).
unsafe fn qualified(f: pg_sys::Oid) -> (String, String) {
    let text = |p: *mut std::ffi::c_char| {
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    let name = text(pg_sys::get_func_name(f));
    let schema = text(pg_sys::get_namespace_name(pg_sys::get_func_namespace(f)));
    (schema, name)
}

/// Every function execution (`object_access_hook`, OAT_FUNCTION_EXECUTE).
/// The context's own calls are allowed whether or not the database is
/// bound, so they never pay for `bound()`.
pub fn check_function(st: &ContextState, f: pg_sys::Oid) {
    if !app_session(st) {
        return;
    }
    // SAFETY: syscache lookups of a function oid the executor is calling.
    let (schema, name) = unsafe { qualified(f) };
    let allowed = matches!(
        (schema.as_str(), name.as_str()),
        ("tenant", "set_context_sealed")
            | ("tenant", "set_context")
            | ("pg_catalog", "convert_from")
    );
    if !allowed && bound() {
        deny(&format!("call {schema}.{name}()"));
    }
}

/// Every plan (`ExecutorStart`): no relation may be read or written.
///
/// # Safety
/// `stmt` is the executor's planned statement.
pub unsafe fn check_plan(st: &ContextState, stmt: *mut pg_sys::PlannedStmt) {
    // A query without FROM has one RTE_RESULT entry.
    let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
    let touches = !(*stmt).subplans.is_null()
        || rtable
            .iter_ptr()
            .any(|rte| rte.is_null() || (*rte).rtekind != pg_sys::RTEKind::RTE_RESULT);
    if touches && gated(st) {
        deny("run a query over tables");
    }
    // A SQL function the planner inlined is never executed as a function
    // (no OAT_FUNCTION_EXECUTE): the plan records it among its
    // invalidation items, which must name no function but the context's.
    let items = pgrx::PgList::<pg_sys::PlanInvalItem>::from_pg((*stmt).invalItems);
    let mut inlined = items
        .iter_ptr()
        .filter(|i| !i.is_null() && (**i).cacheId == pg_sys::SysCacheIdentifier::PROCOID as i32)
        .map(|i| (*i).hashValue)
        .peekable();
    // (A plan also records every non-built-in function it calls, such as
    // `set_context` itself: those are allowed before `bound()` is asked.)
    if inlined.peek().is_some() && app_session(st) {
        let allowed = context_function_hashes();
        if inlined.any(|h| !allowed.contains(&h)) && bound() {
            deny("call a function");
        }
    }
}

/// The PROCOID cache hash values of `tenant.set_context` and
/// `tenant.set_context_sealed` (every overload), looked up once.
static CONTEXT_FUNCTIONS: Backend<std::cell::RefCell<Option<Vec<u32>>>> =
    Backend(std::cell::RefCell::new(None));

fn context_function_hashes() -> Vec<u32> {
    if let Some(h) = CONTEXT_FUNCTIONS.0.borrow().as_ref() {
        return h.clone();
    }
    const Q: &str = "SELECT p.oid FROM pg_catalog.pg_proc p \
                      JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
                     WHERE n.nspname OPERATOR(pg_catalog.=) 'tenant'::pg_catalog.name \
                       AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['set_context', 'set_context_sealed']::pg_catalog.name[])";
    let oids: Vec<pg_sys::Oid> = crate::admission::as_catalog_reader(|| {
        Spi::connect(|client| {
            let mut out = Vec::new();
            for row in client.select(Q, None, &[])? {
                if let Some(oid) = row.get::<pg_sys::Oid>(1)? {
                    out.push(oid);
                }
            }
            Ok::<_, pgrx::spi::Error>(out)
        })
    })
    .unwrap_or_default();
    let hashes: Vec<u32> = oids
        .into_iter()
        .map(|oid| {
            // SAFETY: a syscache hash of an oid key.
            unsafe {
                pg_sys::GetSysCacheHashValue(
                    pg_sys::SysCacheIdentifier::PROCOID as i32,
                    pg_sys::Datum::from(oid),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                )
            }
        })
        .collect();
    *CONTEXT_FUNCTIONS.0.borrow_mut() = Some(hashes.clone());
    hashes
}

/// Every utility statement (`ProcessUtility`).
///
/// # Safety
/// `node` is the utility statement.
pub unsafe fn check_utility(st: &ContextState, node: *mut pg_sys::Node) {
    use pg_sys::NodeTag::*;
    let tag = (*node).type_;
    if matches!(
        tag,
        T_TransactionStmt | T_VariableSetStmt | T_VariableShowStmt | T_DiscardStmt
    ) || !gated(st)
    {
        return;
    }
    let cmd = CStr::from_ptr(pg_sys::CreateCommandName(node)).to_string_lossy();
    deny(&format!("run {cmd}"));
}
