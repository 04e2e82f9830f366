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
