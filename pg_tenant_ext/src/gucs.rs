//! Every GUC of the extension, registered once from `_PG_init`.
//!
//! * `pg_tenant.context_key` — the shared secret that signs context tokens.
//!   PGC_SIGHUP (postgresql.conf or ALTER SYSTEM only, never SET), hidden
//!   from non-superusers and from SHOW ALL.
//! * `pg_tenant.tenant_id` — the tenant of this backend. PGC_SUSET and
//!   GUC_NO_RESET_ALL: only `tenant.set_context` (which sets it with
//!   superuser context after checking a token) or a real superuser can
//!   change it; `RESET ALL`/`DISCARD ALL` leave it alone; being a GUC it is
//!   serialized to parallel workers and rolled back with an aborted
//!   transaction. The assign hook caches it so `current_tenant_id()` is a
//!   pointer read.
//! * `pg_tenant.context_state` — the locked role and the permissions loaded
//!   by `set_context`, hidden, with the same protections and the same
//!   transactional behaviour as the tenant id.

use crate::context;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use std::ffi::{c_char, c_void, CStr, CString};

pub static CONTEXT_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static TENANT_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CONTEXT_STATE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub const TENANT_ID_NAME: &CStr = c"pg_tenant.tenant_id";
pub const CONTEXT_STATE_NAME: &CStr = c"pg_tenant.context_state";

/// Register the GUCs. Called from `_PG_init` while preloading.
pub fn init() {
    GucRegistry::define_string_guc(
        c"pg_tenant.context_key",
        c"Secret that signs pg_tenant context tokens (shared with tenant-router).",
        c"At least 32 bytes. Set in postgresql.conf or with ALTER SYSTEM; never readable by non-superusers.",
        &CONTEXT_KEY,
        GucContext::Sighup,
        GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
    );
    // SAFETY: the hooks are #[pg_guard] functions that do not allocate
    // through Postgres and only parse the new value.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            TENANT_ID_NAME,
            c"Tenant of this session, set only by tenant.set_context().",
            c"Empty means no tenant: every table protected by tenant.protect() is then empty.",
            &TENANT_ID,
            GucContext::Suset,
            GucFlags::NO_RESET_ALL | GucFlags::NOT_IN_SAMPLE_ONLY,
            Some(check_tenant_id),
            Some(assign_tenant_id),
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            CONTEXT_STATE_NAME,
            c"Internal: role lock and permissions of the tenant context.",
            c"Written by tenant.set_context(); do not set by hand.",
            &CONTEXT_STATE,
            GucContext::Suset,
            GucFlags::NO_RESET_ALL | GucFlags::NO_SHOW_ALL,
            Some(check_context_state),
            Some(assign_context_state),
            None,
        );
    }
}

/// GUC_NOT_IN_SAMPLE alone (pgrx only offers it combined with NO_SHOW_ALL).
trait NotInSample {
    const NOT_IN_SAMPLE_ONLY: GucFlags;
}
impl NotInSample for GucFlags {
    const NOT_IN_SAMPLE_ONLY: GucFlags =
        GucFlags::from_bits_retain(pg_sys::GUC_NOT_IN_SAMPLE as i32);
}

unsafe fn value_str<'a>(newval: *mut *mut c_char) -> Option<&'a str> {
    if newval.is_null() || (*newval).is_null() {
        return None;
    }
    CStr::from_ptr(*newval).to_str().ok()
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_tenant_id(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    let raw_null = newval.is_null() || (*newval).is_null();
    match value_str(newval) {
        None => raw_null,
        Some("") => true,
        Some(v) => context::valid_tenant_id(v),
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_tenant_id(newval: *const c_char, _extra: *mut c_void) {
    let v = if newval.is_null() {
        None
    } else {
        CStr::from_ptr(newval).to_str().ok()
    };
    context::cache_tenant(v);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_context_state(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    match value_str(newval) {
        None => newval.is_null() || (*newval).is_null(),
        Some(v) => context::ContextState::parse(v).is_some(),
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_context_state(newval: *const c_char, _extra: *mut c_void) {
    let v = if newval.is_null() {
        ""
    } else {
        CStr::from_ptr(newval).to_str().unwrap_or("")
    };
    context::cache_state(context::ContextState::parse(v).unwrap_or_default());
}

/// Set a GUC with superuser context from trusted extension code (after a token
/// has been verified). Transactional: an aborted transaction reverts it.
pub fn set_suset(name: &CStr, value: &str) {
    let value = CString::new(value).unwrap_or_default();
    // SAFETY: both strings are NUL-terminated and live across the call.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            pg_sys::PGERROR as i32,
            false,
        );
    }
}

/// The context key, if one is configured.
pub fn context_key() -> Option<CString> {
    CONTEXT_KEY.get().filter(|k| !k.as_bytes().is_empty())
}
