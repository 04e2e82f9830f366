//! The tenant context: `set_context`, `clear_context`, `current_tenant_id()`.
//!
//! The context lives in two SUSET GUCs (see `gucs`), so it is transactional,
//! survives `RESET ALL`/`DISCARD ALL`, reaches parallel workers, and cannot
//! be written by a non-superuser. Their assign hooks keep a parsed copy in
//! this module's statics: reading the tenant costs no GUC lookup.

use crate::gucs;
use pg_tenant_token::{Action, TokenError};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::{Cell, RefCell};
use std::ffi::CString;

/// Per-backend cell. A backend is single-threaded, so plain cells suffice.
struct Backend<T>(T);
// SAFETY: a Postgres backend runs extension code on one thread only.
unsafe impl<T> Sync for Backend<T> {}

static TENANT: Backend<RefCell<Option<String>>> = Backend(RefCell::new(None));
static STATE: Backend<Cell<ContextState>> = Backend(Cell::new(ContextState::NONE));
static LAST_NONCE: Backend<Cell<u64>> = Backend(Cell::new(0));
static PRELOADED: Backend<Cell<bool>> = Backend(Cell::new(false));

/// DML kinds a tenant may be restricted to (`allowed_operations`).
pub mod ops {
    pub const SELECT: u8 = 1;
    pub const INSERT: u8 = 2;
    pub const UPDATE: u8 = 4;
    pub const DELETE: u8 = 8;
    pub const ALL: u8 = SELECT | INSERT | UPDATE | DELETE;

    /// Bit for an operation name as stored in `tenant.tenants`.
    pub fn from_name(name: &str) -> Option<u8> {
        Some(match name {
            "select" => SELECT,
            "insert" => INSERT,
            "update" => UPDATE,
            "delete" => DELETE,
            _ => return None,
        })
    }
}

/// What `set_context` loaded besides the tenant id: the locked role and
/// the tenant's permissions. Serialized into `pg_tenant.context_state` as
/// `v1:<role oid>:<allow_ddl>:<read_only>:<ops bits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextState {
    pub role: u32,
    pub allow_ddl: bool,
    pub read_only: bool,
    pub ops: u8,
    pub active: bool,
}

impl ContextState {
    pub const NONE: ContextState = ContextState {
        role: 0,
        allow_ddl: true,
        read_only: false,
        ops: ops::ALL,
        active: false,
    };

    pub fn parse(s: &str) -> Option<ContextState> {
        if s.is_empty() {
            return Some(ContextState::NONE);
        }
        let mut it = s.split(':');
        if it.next()? != "v1" {
            return None;
        }
        let role = it.next()?.parse().ok()?;
        let allow_ddl = it.next()? == "1";
        let read_only = it.next()? == "1";
        let ops = it.next()?.parse().ok()?;
        if it.next().is_some() || ops > ops::ALL {
            return None;
        }
        Some(ContextState {
            role,
            allow_ddl,
            read_only,
            ops,
            active: true,
        })
    }

    pub fn serialize(&self) -> String {
        format!(
            "v1:{}:{}:{}:{}",
            self.role, self.allow_ddl as u8, self.read_only as u8, self.ops
        )
    }
}

pub fn set_preloaded() {
    PRELOADED.0.set(true);
}

pub use pg_tenant_token::valid_tenant_id;

pub fn cache_tenant(v: Option<&str>) {
    *TENANT.0.borrow_mut() = v.filter(|s| !s.is_empty()).map(str::to_owned);
}

pub fn cache_state(s: ContextState) {
    STATE.0.set(s);
}

/// The state loaded with the current context (`active == false` without).
pub fn state() -> ContextState {
    STATE.0.get()
}

/// The current tenant id, if any.
pub fn tenant() -> Option<String> {
    TENANT.0.borrow().clone()
}

fn refuse(code: PgSqlErrorCode, msg: String) -> ! {
    ereport!(ERROR, code, msg);
}

pub fn require_preloaded() {
    if !PRELOADED.0.get() {
        refuse(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_tenant is not loaded through shared_preload_libraries; add \
             shared_preload_libraries = 'pg_tenant' to postgresql.conf and restart PostgreSQL"
                .into(),
        );
    }
}

fn verify(action: Action<'_>, token: &str, tenant_for_log: &str) -> u64 {
    require_preloaded();
    let Some(key) = gucs::context_key() else {
        refuse(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_tenant.context_key is not set; configure it in postgresql.conf".into(),
        );
    };
    // SAFETY: MyProcPid is set once at backend start and only read here.
    let pid = unsafe { pg_sys::MyProcPid };
    match pg_tenant_token::verify(key.as_bytes(), action, pid, LAST_NONCE.0.get(), token) {
        Ok(nonce) => nonce,
        Err(TokenError::WeakKey) => refuse(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_tenant.context_key is shorter than 32 bytes".into(),
        ),
        Err(e) => {
            ereport!(
                WARNING,
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("pg_tenant: refused context token in backend {pid} for tenant \"{tenant_for_log}\": {e}")
            );
            refuse(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("invalid tenant context token: {e}"),
            );
        }
    }
}

/// A client-supplied string made safe to echo: control characters become
/// '?', and it is cut at 64 characters.
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 64 {
        out.push_str("...");
    }
    out
}

/// One catalog row as `set_context` needs it.
struct TenantRow {
    enabled: bool,
    role: Option<String>,
    allow_ddl: bool,
    read_only: bool,
    ops: u8,
}

/// Read the tenant's row as the bootstrap superuser: the application role
/// has no privilege on the catalog, and must not need one.
fn load_tenant(id: &str) -> Option<TenantRow> {
    const Q: &str = "SELECT enabled, role_name::text, allow_ddl, read_only, allowed_operations \
                     FROM tenant.tenants WHERE id = $1";
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_sec = 0;
    // SAFETY: the pair is restored below, and AbortTransaction restores it
    // on error as it does for every SECURITY DEFINER call.
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_sec);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            saved_sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let row = Spi::connect(|client| {
        let table = client.select(Q, Some(1), &[id.into()])?;
        if table.is_empty() {
            return Ok::<_, pgrx::spi::Error>(None);
        }
        let r = table.first();
        let names: Vec<String> = r.get::<Vec<String>>(5)?.unwrap_or_default();
        Ok(Some(TenantRow {
            enabled: r.get::<bool>(1)?.unwrap_or(false),
            role: r.get::<String>(2)?,
            allow_ddl: r.get::<bool>(3)?.unwrap_or(false),
            read_only: r.get::<bool>(4)?.unwrap_or(true),
            ops: names
                .iter()
                .filter_map(|n| ops::from_name(n))
                .fold(0, |a, b| a | b),
        }))
    });
    // SAFETY: restores the values read above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_sec) };
    match row {
        Ok(r) => r,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not read tenant catalog: {e}"),
        ),
    }
}

fn set_role(name: &str) {
    // check_role still verifies that the session user is a member of the role.
    gucs::set_suset(c"role", name);
}

/// Re-assert the locked role after a command that resets it (DISCARD ALL).
pub fn reapply_role(role: u32) {
    // SAFETY: GetUserNameFromId with noerr returns NULL for a dropped role.
    let name = unsafe { pg_sys::GetUserNameFromId(pg_sys::Oid::from(role), true) };
    if !name.is_null() {
        // SAFETY: non-null, NUL-terminated, palloc'd by Postgres.
        let name = unsafe { std::ffi::CStr::from_ptr(name) };
        set_role(&name.to_string_lossy());
    }
}

/// Set this backend's tenant. Only the router can call it successfully: the
/// token is an HMAC under `pg_tenant.context_key` of the tenant, this
/// backend's pid and a nonce larger than any accepted before in this
/// backend. Refuses unknown and disabled tenants. When the tenant has a
/// role, switches to it and locks it for the rest of the session.
/// Errors: 42501 for a bad or replayed token, an unknown or disabled tenant;
/// 22023 for a malformed tenant id. Returns the tenant id.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context(tenant: &str, token: &str) -> String {
    if !valid_tenant_id(tenant) {
        refuse(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "invalid tenant id \"{}\": tenant ids match ^[a-z0-9][a-z0-9_-]{{0,62}}$",
                printable(tenant)
            ),
        );
    }
    let nonce = verify(Action::Set(tenant), token, tenant);
    // The nonce is spent even if what follows fails: a token is single-use.
    LAST_NONCE.0.set(nonce);
    let Some(row) = load_tenant(tenant) else {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenant \"{tenant}\" does not exist"),
        );
    };
    if !row.enabled {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenant \"{tenant}\" is disabled"),
        );
    }
    let mut role_oid = 0u32;
    if let Some(role) = row.role.as_deref() {
        set_role(role);
        // SAFETY: plain catalog lookup of a NUL-terminated name.
        let cname = CString::new(role).unwrap_or_default();
        role_oid = unsafe { pg_sys::get_role_oid(cname.as_ptr(), false) }.to_u32();
    } else if state().role != 0 {
        set_role("none");
    }
    let st = ContextState {
        role: role_oid,
        allow_ddl: row.allow_ddl,
        read_only: row.read_only,
        ops: row.ops,
        active: true,
    };
    gucs::set_suset(gucs::CONTEXT_STATE_NAME, &st.serialize());
    gucs::set_suset(gucs::TENANT_ID_NAME, tenant);
    tenant.to_owned()
}

/// Clear this backend's tenant (for a router that hands the backend to
/// another client). Needs a `clear` token for this backend; unlocks and
/// resets the role. Errors like `set_context`.
#[pg_extern(volatile, parallel_unsafe)]
fn clear_context(token: &str) {
    let current = tenant().unwrap_or_default();
    let nonce = verify(Action::Clear, token, &current);
    LAST_NONCE.0.set(nonce);
    if state().role != 0 {
        set_role("none");
    }
    gucs::set_suset(gucs::CONTEXT_STATE_NAME, "");
    gucs::set_suset(gucs::TENANT_ID_NAME, "");
}

/// The tenant of this session, or NULL when no context is set.
/// STABLE and PARALLEL SAFE, so `tenant_id = tenant.current_tenant_id()`
/// is an index condition; never IMMUTABLE, so no plan caches a tenant.
#[pg_extern(stable, parallel_safe)]
fn current_tenant_id() -> Option<String> {
    tenant()
}

/// The tenant id as a uuid, for uuid tenant columns; NULL when there is no
/// context or the id is not a uuid.
#[pg_extern(stable, parallel_safe)]
fn current_tenant_uuid() -> Option<pgrx::Uuid> {
    let t = tenant()?;
    let hex: String = t.chars().filter(|c| *c != '-').collect();
    if t.len() != 36 || hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(pgrx::Uuid::from_bytes(bytes))
}

/// The tenant id as a bigint, for integer tenant columns; NULL when there
/// is no context or the id is not a number.
#[pg_extern(stable, parallel_safe)]
fn current_tenant_bigint() -> Option<i64> {
    let t = tenant()?;
    if t.len() > 1 && t.starts_with('0') {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        let s = ContextState {
            role: 16384,
            allow_ddl: false,
            read_only: true,
            ops: ops::SELECT | ops::INSERT,
            active: true,
        };
        assert_eq!(ContextState::parse(&s.serialize()), Some(s));
        assert_eq!(ContextState::parse(""), Some(ContextState::NONE));
        assert_eq!(ContextState::parse("v1:1:0:0:99"), None);
        assert_eq!(ContextState::parse("v2:1:0:0:1"), None);
    }
}
