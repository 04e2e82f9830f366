//! Every GUC of the extension, registered once from `_PG_init`.
//!
//! * `pg_tenant.context_public_keys` — the Ed25519 public keys that
//!   context tokens are checked against (the router holds the private key).
//!   PGC_SIGHUP (postgresql.conf or ALTER SYSTEM only, never SET). Public:
//!   nothing in PostgreSQL can mint a token, so showing it harms no one.
//!   Two keys make a rotation window.
//! * `pg_tenant.tenant_id` — the tenant of this backend. PGC_SUSET and
//!   GUC_NO_RESET_ALL: only `tenant.set_context` (which sets it with
//!   superuser context after checking a token) or a real superuser can
//!   change it; `RESET ALL`/`DISCARD ALL` leave it alone; being a GUC it is
//!   serialized to parallel workers and rolled back with an aborted
//!   transaction. The assign hook keeps a copy in `state`, so
//!   `current_tenant_id()` needs no GUC lookup.
//! * `pg_tenant.context_state` — the locked role and the permissions loaded
//!   by `set_context`, hidden, with the same protections and the same
//!   transactional behaviour as the tenant id.
//! * `pg_tenant.subject`, `pg_tenant.claims` — the end user within the
//!   tenant and its claims (JSON object text), set only by the 4-argument
//!   `tenant.set_context` from a `set-subject` token; exactly the
//!   protections of the tenant id (SUSET, GUC_NO_RESET_ALL, not in samples,
//!   serialized to parallel workers, cached by their assign hooks).
//!
//! * `pg_tenant.session_settings` — in a session whose tenant is pooled per
//!   transaction, the settings the client changed with a session-level
//!   `SET`/`RESET` on this backend since the last `RESET ALL`/`DISCARD ALL`
//!   (or since the backend started): a JSON object from each setting's
//!   canonical name to its value as `current_setting()` shows it, or null
//!   for `RESET` (written by `pool::record_set`). PGC_SUSET, GUC_REPORT
//!   (PostgreSQL sends a ParameterStatus whenever it changes: that is how
//!   the router learns what to carry to the client's next backend), hidden
//!   from SHOW ALL and samples, and reset by `RESET ALL`/`DISCARD ALL`.
//!   Transactional like the `SET` it records. Readable by the session.
//!
//! The `pg_tenant` prefix is reserved: `SET pg_tenant.anything` is an
//! error for everyone, so no placeholder can pose as one of ours.

use crate::state::{self, ContextState};
use pg_tenant_token::valid_tenant_id;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_void, CStr, CString};

pub static CONTEXT_PUBLIC_KEYS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(None);
pub static TENANT_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CONTEXT_STATE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub static SUBJECT: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static CLAIMS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static SESSION_SETTINGS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub const TENANT_ID_NAME: &CStr = c"pg_tenant.tenant_id";
pub const CONTEXT_STATE_NAME: &CStr = c"pg_tenant.context_state";
pub const SUBJECT_NAME: &CStr = c"pg_tenant.subject";
pub const CLAIMS_NAME: &CStr = c"pg_tenant.claims";
pub const SESSION_SETTINGS_NAME: &CStr = c"pg_tenant.session_settings";

/// Register the GUCs. Called from `_PG_init` while preloading.
pub fn init() {
    // SAFETY: the hooks are #[pg_guard] functions that do not allocate
    // through Postgres and only parse the new value.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"pg_tenant.context_public_keys",
            c"Ed25519 public keys (hex) that pg_tenant context tokens are verified against.",
            c"Comma-separated, at most 4: list the old and the new key while rotating. \
              tenant-router --print-public-key prints the key of its signing key file.",
            &CONTEXT_PUBLIC_KEYS,
            GucContext::Sighup,
            GucFlags::default(),
            Some(check_public_keys),
            None,
            None,
        );
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
        GucRegistry::define_string_guc_with_hooks(
            SUBJECT_NAME,
            c"End user (subject) of this session within its tenant, set only by tenant.set_context().",
            c"Empty means no subject: tenant.current_subject() is then NULL.",
            &SUBJECT,
            GucContext::Suset,
            GucFlags::NO_RESET_ALL | GucFlags::NOT_IN_SAMPLE_ONLY,
            Some(check_subject),
            Some(assign_subject),
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            CLAIMS_NAME,
            c"Claims (a JSON object) of this session's subject, set only by tenant.set_context().",
            c"Empty means no subject: tenant.current_claims() is then NULL.",
            &CLAIMS,
            GucContext::Suset,
            GucFlags::NO_RESET_ALL | GucFlags::NOT_IN_SAMPLE_ONLY,
            Some(check_claims),
            Some(assign_claims),
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            SESSION_SETTINGS_NAME,
            c"Settings this client changed with SET/RESET on this backend (transaction pooling).",
            c"A JSON object: canonical setting name to its value, null after RESET; written by \
              pg_tenant, reported to the router, emptied by RESET ALL and DISCARD ALL.",
            &SESSION_SETTINGS,
            GucContext::Suset,
            GucFlags::REPORT | GucFlags::NO_SHOW_ALL,
            Some(check_session_settings),
            None,
            None,
        );
        // Every other pg_tenant.* name is an error, for every role.
        pg_sys::MarkGUCPrefixReserved(c"pg_tenant".as_ptr());
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

/// A check hook's answer: a NULL value is fine, text must pass `ok`, and
/// anything else (not UTF-8) is refused.
unsafe fn check_value(newval: *mut *mut c_char, ok: impl FnOnce(&str) -> bool) -> bool {
    match value_str(newval) {
        None => newval.is_null() || (*newval).is_null(),
        Some(v) => ok(v),
    }
}

/// An assign hook's value (None for NULL or text that is not UTF-8).
unsafe fn assigned<'a>(newval: *const c_char) -> Option<&'a str> {
    if newval.is_null() {
        None
    } else {
        CStr::from_ptr(newval).to_str().ok()
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_tenant_id(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    check_value(newval, |v| v.is_empty() || valid_tenant_id(v))
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_tenant_id(newval: *const c_char, _extra: *mut c_void) {
    let v = assigned(newval);
    state::cache_tenant(v);
    // The registry of backends' tenants (tenant.tenant_backends).
    crate::shmem::note_tenant(v);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_subject(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    check_value(newval, |v| v.len() <= pg_tenant_token::MAX_SUBJECT_LEN)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_subject(newval: *const c_char, _extra: *mut c_void) {
    state::cache_subject(assigned(newval));
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_claims(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    check_value(newval, |v| v.len() <= pg_tenant_token::MAX_CLAIMS_LEN)
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_claims(newval: *const c_char, _extra: *mut c_void) {
    state::cache_claims(assigned(newval));
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_public_keys(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    check_value(newval, |v| pg_tenant_token::parse_public_keys(v).is_ok())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_context_state(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    check_value(newval, |v| ContextState::parse(v).is_some())
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn assign_context_state(newval: *const c_char, _extra: *mut c_void) {
    let v = assigned(newval).unwrap_or("");
    state::cache_state(ContextState::parse(v).unwrap_or_default());
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_session_settings(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    check_value(newval, |v| {
        v.is_empty() || parse_session_settings(v).is_some()
    })
}

/// The recorded session settings: canonical name to value (None: `RESET`).
pub type SessionSettings = BTreeMap<String, Option<String>>;

/// Parse `pg_tenant.session_settings` (a JSON object of strings and nulls).
pub fn parse_session_settings(v: &str) -> Option<SessionSettings> {
    serde_json::from_str(v).ok()
}

/// The current value of `pg_tenant.session_settings` (empty when unset).
pub fn session_settings() -> SessionSettings {
    let raw = SESSION_SETTINGS.get();
    let text = raw.as_deref().and_then(|s| s.to_str().ok()).unwrap_or("");
    if text.is_empty() {
        return SessionSettings::new();
    }
    parse_session_settings(text).unwrap_or_default()
}

/// Replace `pg_tenant.session_settings` (transactionally, like a `SET`).
pub fn set_session_settings(settings: &SessionSettings) {
    let json = serde_json::to_string(settings).expect("a map of strings serializes");
    set_suset(SESSION_SETTINGS_NAME, &json);
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

/// The configured public keys (already validated by the check hook).
pub fn context_public_keys() -> Vec<pg_tenant_token::VerifyingKey> {
    let raw = CONTEXT_PUBLIC_KEYS.get();
    let list = raw.as_deref().and_then(|s| s.to_str().ok()).unwrap_or("");
    pg_tenant_token::parse_public_keys(list).unwrap_or_default()
}
