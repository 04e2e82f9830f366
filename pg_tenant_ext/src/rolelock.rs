//! The role lock inside statements. `hooks` checks at every statement that
//! the session's role is still the tenant's, but a single statement could
//! switch away and back (`SELECT set_config('role', 'other', false),
//! nextval(...), set_config('role', 'mine', false)`, or the same in a
//! PL/pgSQL block) and use the other role's privileges in between. So the
//! check hooks of the `role` and `session_authorization` settings are
//! wrapped: while a tenant context is active, any change is refused with
//! 42501, except the ones `set_context`/`clear_context` and `DISCARD ALL`
//! make themselves (through [`allowing`]) and those parallel workers make
//! when they copy their leader's settings.

use crate::context::{self, Backend};
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
    let vars = pg_sys::get_guc_variables();
    let n = pg_sys::GetNumConfigOptions();
    for i in 0..n as usize {
        let g = *vars.add(i);
        if g.is_null() || (*g).vartype != pg_sys::config_type::PGC_STRING {
            continue;
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
    }
}

/// Run `f` with the role lock open (the extension's own role changes).
pub fn allowing<T>(f: impl FnOnce() -> T) -> T {
    let before = ALLOW.0.replace(true);
    let out = f();
    ALLOW.0.set(before);
    out
}

unsafe fn refuse(setting: &str) -> bool {
    let tenant = context::tenant().unwrap_or_default();
    let msg = CString::new(format!(
        "tenant \"{tenant}\" is not allowed to change \"{setting}\": the tenant role is locked for this session"
    ))
    .unwrap_or_default();
    pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(msg.as_ptr());
    false
}

unsafe fn locked() -> bool {
    context::state().active
        && !ALLOW.0.get()
        && !pg_sys::InitializingParallelWorker
        && pg_sys::ParallelWorkerNumber < 0
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
