//! The role lock inside statements. `hooks` checks at every statement that
//! the session's role is still the tenant's, but a single statement could
//! switch away and back (`SELECT set_config('role', 'other', false),
//! nextval(...), set_config('role', 'mine', false)`, or the same in a
//! PL/pgSQL block) and use the other role's privileges in between. So the
//! check hooks of the `role` and `session_authorization` settings are
//! wrapped: while a tenant context is active, any change is refused with
//! 42501, except the ones `set_context`/`clear_context` and `DISCARD ALL`
//! make themselves (through [`allowing`]) and those parallel workers make
//! when they copy their leader's settings (only then: a function's `SET
//! role` clause run inside a worker is refused like anywhere else).
//!
//! The opening is a guard: it closes on every way out of [`allowing`], an
//! ERROR in the role change included (a `SET ROLE` that fails after an
//! administrator revoked the membership must not leave the lock open for
//! the rest of the backend's life), and every transaction and
//! subtransaction abort closes it too.
//!
//! A superuser running code of a tenant as the tenant's role (the
//! migration runner: `tenant-router tenants migrate`) locks the role for
//! one transaction with [`lock_role_for_transaction`], which makes the rest
//! of the transaction a security-restricted operation of that role, as
//! PostgreSQL does when it runs an index expression of a table's owner: a
//! `SET LOCAL ROLE` alone would let that code `RESET ROLE`, `SET SESSION
//! AUTHORIZATION` (the session user is a superuser) or
//! `set_config('role', NULL, ...)` back to the superuser.
//!
//! Without a context, an application role (a member of `tenant_app`
//! logged in directly, not through the router) may not change its role
//! either (`SET ROLE <a tenant role>` would reach that tenant's objects):
//! only back to itself (`RESET ROLE`, `SET ROLE NONE`).

use crate::report::printable;
use crate::state::{self, Backend};
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};

static ALLOW: Backend<Cell<bool>> = Backend(Cell::new(false));
/// The user and security context a [`lock_role_for_transaction`] replaced,
/// restored when its transaction ends.
static XACT_SAVED: Backend<Cell<Option<(pg_sys::Oid, i32)>>> = Backend(Cell::new(None));

static mut PREV_ROLE: pg_sys::GucStringCheckHook = None;
static mut PREV_SESSION_AUTH: pg_sys::GucStringCheckHook = None;

/// Wrap the check hooks of `role` and `session_authorization`.
///
/// # Safety
/// Call once, from `_PG_init` while shared_preload_libraries load.
pub unsafe fn init() {
    pg_sys::RegisterXactCallback(Some(at_abort), std::ptr::null_mut());
    pg_sys::RegisterSubXactCallback(Some(at_sub_abort), std::ptr::null_mut());
    crate::compat::for_each_guc(|g| {
        if g.is_null() || (*g).vartype != pg_sys::config_type::PGC_STRING {
            return;
        }
        let name = CStr::from_ptr((*g).name).to_bytes();
        let s = g as *mut pg_sys::config_string;
        if name == b"role" {
            PREV_ROLE = (*s).check_hook;
            (*s).check_hook = Some(check_role);
        } else if name == b"session_authorization" {
            PREV_SESSION_AUTH = (*s).check_hook;
            (*s).check_hook = Some(check_session_auth);
        }
    });
}

/// Closes the role lock again however [`allowing`] is left.
struct Opened(bool);
impl Drop for Opened {
    fn drop(&mut self) {
        ALLOW.0.set(self.0);
    }
}

/// Run `f` with the role lock open (the extension's own role changes).
pub fn allowing<T>(f: impl FnOnce() -> T) -> T {
    let _opened = Opened(ALLOW.0.replace(true));
    f()
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn at_abort(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    ) {
        ALLOW.0.set(false);
    }
    // A transaction's role lock ends with it: after its deferred triggers
    // (which run before the commit callbacks, still locked), at its commit,
    // abort or prepare.
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
    ) {
        if let Some((user, sec)) = XACT_SAVED.0.take() {
            pg_sys::SetUserIdAndSecContext(user, sec);
        }
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn at_sub_abort(
    event: pg_sys::SubXactEvent::Type,
    _mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        ALLOW.0.set(false);
    }
}

unsafe fn refuse(setting: &str) -> bool {
    let tenant = state::tenant().unwrap_or_default();
    let msg = CString::new(format!(
        "tenant \"{tenant}\" is not allowed to change \"{setting}\": the tenant role is locked for this session"
    ))
    .unwrap_or_default();
    pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(msg.as_ptr());
    false
}

unsafe fn locked() -> bool {
    state::state().active && !ALLOW.0.get() && !pg_sys::InitializingParallelWorker
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_role(
    newval: *mut *mut c_char,
    extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    if locked() {
        return refuse("role");
    }
    if let Some(why) = app_role_escape(newval) {
        return refuse_app_role(&why);
    }
    match PREV_ROLE {
        Some(prev) => prev(newval, extra, source),
        None => true,
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_session_auth(
    newval: *mut *mut c_char,
    extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    if locked() {
        return refuse("session_authorization");
    }
    match PREV_SESSION_AUTH {
        Some(prev) => prev(newval, extra, source),
        None => true,
    }
}

/// Without a context: whether the session user is an application role
/// (a member of `tenant_app`, not a superuser) asking for a role other than
/// itself. Some(session user name) when it must be refused.
unsafe fn app_role_escape(newval: *mut *mut c_char) -> Option<String> {
    if state::state().active
        || ALLOW.0.get()
        || pg_sys::InitializingParallelWorker
        || !pg_sys::IsTransactionState()
        || newval.is_null()
        || (*newval).is_null()
    {
        return None;
    }
    let target = CStr::from_ptr(*newval).to_string_lossy();
    if target.eq_ignore_ascii_case("none") {
        return None;
    }
    let marker = pg_sys::get_role_oid(c"tenant_app".as_ptr(), true);
    let session = pg_sys::GetSessionUserId();
    if marker == pg_sys::InvalidOid
        || pg_sys::superuser_arg(session)
        || !pg_sys::is_member_of_role_nosuper(session, marker)
    {
        return None;
    }
    let name = pg_sys::GetUserNameFromId(session, true);
    let own = if name.is_null() {
        String::new()
    } else {
        CStr::from_ptr(name).to_string_lossy().into_owned()
    };
    (target != own).then_some(own)
}

unsafe fn refuse_app_role(login: &str) -> bool {
    let msg = CString::new(format!(
        "application role \"{}\" may not change its role without a tenant context: tenant roles \
         are reached only through tenant.set_context() with a token from the router",
        printable(login)
    ))
    .unwrap_or_default();
    pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(msg.as_ptr());
    false
}

/// Run the rest of this transaction as `role`, locked: the rest of the
/// transaction is a security-restricted operation of that role (as
/// PostgreSQL runs an index expression of a table's owner), so whatever code
/// runs (a trigger or function of the role's own included), `SET ROLE`,
/// `RESET ROLE`, `SET SESSION AUTHORIZATION` and `set_config('role', ...)`
/// are refused (42501), as are temporary tables. `current_user` is `role`,
/// and what is created belongs to it. For a superuser that runs code owned
/// by a tenant as the tenant's role (the migration runner). Errors: 42501
/// unless the current and session user are superusers, or for a superuser
/// `role`; 42704 for a role that does not exist; 25P01 outside a
/// transaction block; 25000 inside a savepoint or exception block.
#[pgrx::pg_extern(volatile, parallel_unsafe)]
fn lock_role_for_transaction(role: &str) {
    use crate::report::refuse as raise;
    // SAFETY: reads of backend globals.
    let (current, session) = unsafe { (pg_sys::GetUserId(), pg_sys::GetSessionUserId()) };
    // SAFETY: catalog lookups.
    if !unsafe { pg_sys::superuser_arg(current) && pg_sys::superuser_arg(session) } {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "tenant.lock_role_for_transaction is for superusers: it locks a superuser's \
             transaction to a less privileged role"
                .into(),
        );
    }
    // SAFETY: reads of the transaction state.
    if !unsafe { pg_sys::IsTransactionBlock() } {
        raise(
            PgSqlErrorCode::ERRCODE_NO_ACTIVE_SQL_TRANSACTION,
            "tenant.lock_role_for_transaction must run inside a transaction block (BEGIN): \
             the lock ends with the transaction"
                .into(),
        );
    }
    // SAFETY: as above.
    if unsafe { pg_sys::GetCurrentTransactionNestLevel() } != 1 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
            "tenant.lock_role_for_transaction must run at the top level of its transaction, \
             not inside a savepoint or an exception block"
                .into(),
        );
    }
    let name = CString::new(role).unwrap_or_default();
    // SAFETY: a catalog lookup of a NUL-terminated name (noerr).
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    if oid == pg_sys::InvalidOid {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("role \"{}\" does not exist", printable(role)),
        );
    }
    // SAFETY: a catalog lookup.
    if unsafe { pg_sys::superuser_arg(oid) } {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "role \"{}\" is a superuser: locking a transaction to it confines nothing",
                printable(role)
            ),
        );
    }
    let mut user = pg_sys::InvalidOid;
    let mut sec = 0;
    // SAFETY: the pair is restored by `at_abort` when the transaction ends
    // (commit, abort or prepare); a subtransaction's abort restores what
    // it started with, which is this lock (it can only start after it).
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
        XACT_SAVED.0.set(Some((user, sec)));
        pg_sys::SetUserIdAndSecContext(
            oid,
            sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
}
