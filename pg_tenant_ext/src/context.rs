//! The tenant context's SQL functions: `set_context` (both forms),
//! `clear_context` and `current_tenant_id()` (and its uuid and bigint
//! forms); the check of the router's context token, and the preload flag
//! every function checks first.
//!
//! `set_context` verifies the token, loads and checks the tenant
//! (`admission`), locks the role (`rolelock`), writes the context into its
//! SUSET GUCs (`gucs`), whose assign hooks keep the parsed copy that every
//! module reads (`state`), and applies the tenant's budgets (`budget`).

use crate::admission::{
    load_tenant, refuse_bypass, refuse_foreign_privileges, refuse_other_app_roles,
    refuse_role_problem, role_name, TenantRow,
};
use crate::gucs;
use crate::report::{printable, refuse};
use crate::state::{state, tenant, Backend, Budget, ContextState};
use pg_tenant_token::{valid_tenant_id, Action};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::Cell;
use std::ffi::CString;

static LAST_NONCE: Backend<Cell<u64>> = Backend(Cell::new(0));
static PRELOADED: Backend<Cell<bool>> = Backend(Cell::new(false));

/// Note that `_PG_init` ran while shared_preload_libraries loaded.
pub fn set_preloaded() {
    PRELOADED.0.set(true);
}

/// Raise 55000 unless the library was preloaded.
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

/// Verify `token` for `action` in this backend (42501 when it is refused);
/// returns its nonce, which the caller spends with [`spend`].
pub fn verify(action: Action<'_>, token: &str, tenant_for_log: &str) -> u64 {
    require_preloaded();
    let keys = gucs::context_public_keys();
    if keys.is_empty() {
        refuse(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_tenant.context_public_keys is not set; put the router's public key \
             (tenant-router --print-public-key) in postgresql.conf"
                .into(),
        );
    }
    // SAFETY: MyProcPid and MyCancelKey are set once at backend start.
    let (pid, cancel_key) = unsafe { (pg_sys::MyProcPid, crate::compat::cancel_key()) };
    let Some(cancel_key) = cancel_key else {
        refuse(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "pg_tenant context tokens name a 4-byte cancel key (protocol 3.0); this \
             connection's is longer (protocol 3.2)"
                .into(),
        );
    };
    let backend = pg_tenant_token::Backend { pid, cancel_key };
    match pg_tenant_token::verify(&keys, action, backend, LAST_NONCE.0.get(), token) {
        Ok(nonce) => nonce,
        Err(e) => {
            ereport!(
                WARNING,
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!(
                    "pg_tenant: refused context token in backend {pid} for tenant \"{}\": {e}",
                    printable(tenant_for_log)
                )
            );
            refuse(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("invalid tenant context token: {e}"),
            );
        }
    }
}

fn set_role(name: &str) {
    // check_role still verifies that the session user is a member of the
    // role; the role lock (rolelock) lets only this call through.
    crate::rolelock::allowing(|| gucs::set_suset(c"role", name));
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

/// Spend a verified token's nonce: it is single-use even if what follows
/// fails.
pub fn spend(nonce: u64) {
    LAST_NONCE.0.set(nonce);
}

/// Raise 22023 unless `tenant` is a tenant id.
pub fn check_tenant_id(tenant: &str) {
    if !valid_tenant_id(tenant) {
        refuse(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "invalid tenant id \"{}\": tenant ids match ^[a-z0-9][a-z0-9_-]{{0,62}}$",
                printable(tenant)
            ),
        );
    }
}

/// What both `set_context` forms do once the token is verified: load the
/// tenant from the catalog, then [`admit`].
fn enter(tenant: &str, subject: &str, claims: &str) -> String {
    // SAFETY: reads of a backend global.
    let login = role_name(unsafe { pg_sys::GetSessionUserId() });
    let Some(row) = load_tenant(tenant, &login) else {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenant \"{tenant}\" does not exist"),
        );
    };
    // 0.9.0: a tenant the catalog places on a named upstream lives on that
    // server, whose contexts are sealed (`set_context_sealed`): never here.
    if let Some(upstream) = row.upstream.as_deref().filter(|u| *u != "main") {
        crate::fence::refuse_elsewhere(tenant, upstream);
    }
    admit(tenant, subject, claims, row)
}

/// What every `set_context` form does with the tenant's row, read from the
/// catalog (`enter`) or from a sealed context (`sealed`): refuse what must
/// be refused, lock the role, store the context with the subject and
/// claims ("" for none).
pub fn admit(tenant: &str, subject: &str, claims: &str, row: TenantRow) -> String {
    // SAFETY: reads of backend globals.
    let (session_user, current_user) = unsafe { (pg_sys::GetSessionUserId(), pg_sys::GetUserId()) };
    let login = role_name(session_user);
    // A tenant fenced in this database lives on another server.
    crate::fence::refuse_fenced(tenant);
    if !row.enabled {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenant \"{tenant}\" is disabled"),
        );
    }
    refuse_bypass(session_user, "login role", tenant);
    refuse_bypass(current_user, "current role", tenant);
    if row.login_allowed == Some(false) {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "session user \"{}\" is not among the login_roles of tenant \"{tenant}\"",
                printable(&login)
            ),
        );
    }
    // The role is locked in every tenant session: the tenant's own role when
    // it has one, else the login role (so SET ROLE cannot reach a role that
    // bypasses row level security).
    let role_oid = if let Some(role) = row.role.as_deref() {
        // SAFETY: plain catalog lookup of a NUL-terminated name.
        let cname = CString::new(role).unwrap_or_default();
        let oid = unsafe { pg_sys::get_role_oid(cname.as_ptr(), false) };
        refuse_bypass(oid, "tenant role", tenant);
        refuse_role_problem(oid, "tenant role", tenant);
        refuse_role_problem(session_user, "login role", tenant);
        refuse_foreign_privileges(tenant, oid, oid, false);
        if row.catalog_less {
            refuse_other_app_roles(tenant, oid, oid);
        }
        set_role(role);
        oid.to_u32()
    } else {
        refuse_role_problem(session_user, "login role", tenant);
        refuse_foreign_privileges(tenant, session_user, pg_sys::InvalidOid, true);
        if row.catalog_less {
            refuse_other_app_roles(tenant, session_user, pg_sys::InvalidOid);
        }
        if current_user != session_user || state().role != 0 {
            set_role("none");
        }
        session_user.to_u32()
    };
    // Schema isolation: the tenant's schema checked, its search_path set
    // (or a schema tenant's path undone for a tenant of another kind).
    crate::schema::apply(tenant, &row, pg_sys::Oid::from(role_oid));
    let st = ContextState {
        role: role_oid,
        allow_ddl: row.allow_ddl,
        read_only: row.read_only,
        ops: row.ops,
        allow_large_objects: row.allow_large_objects,
        transaction_pool: row.transaction_pool,
        budget: row.budget,
        active: true,
    };
    gucs::set_suset(gucs::CONTEXT_STATE_NAME, &st.serialize());
    gucs::set_suset(gucs::SUBJECT_NAME, subject);
    gucs::set_suset(gucs::CLAIMS_NAME, claims);
    gucs::set_suset(gucs::TENANT_ID_NAME, tenant);
    // After the state: the ceilings' check hooks judge by it.
    crate::budget::apply(&row.budget);
    tenant.to_owned()
}

/// Set this backend's tenant. Only the router can call it successfully: the
/// token is the router's Ed25519 signature of the tenant, this backend's
/// pid and cancel key and a nonce larger than any accepted before in this
/// backend. Refuses unknown and disabled tenants, sessions whose login role
/// bypasses row level security or is not among the tenant's `login_roles`.
/// When the tenant has a role, switches to it and locks it for the rest of
/// the session; a schema tenant's schema and shared schemas become the
/// session's search_path (`schema::apply`). Clears any subject and claims.
/// Errors: 42501 for a bad or replayed token, an unknown or disabled tenant,
/// a schema tenant without a role, schema, or USAGE on it;
/// 22023 for a malformed tenant id. Returns the tenant id.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context(tenant: &str, token: &str) -> String {
    check_tenant_id(tenant);
    let nonce = verify(Action::Set(tenant), token, tenant);
    // The nonce is spent even if what follows fails: a token is single-use.
    spend(nonce);
    enter(tenant, "", "")
}

/// Set this backend's tenant and the end user within it: `subject` (1 to
/// 256 bytes) and `claims` (the text of a JSON object, `{}` for none), read
/// back with `tenant.current_subject()` and `tenant.current_claims()`. The
/// token must be the router's `set-subject` signature over the tenant, the
/// backend, the nonce, the subject and the claims; every check of the
/// 2-argument form applies. Errors: 42501 for a bad, replayed or foreign
/// token (also one signed for another subject or other claims); 22023 for
/// a malformed tenant id or claims that are not a JSON object.
#[pg_extern(name = "set_context", volatile, parallel_unsafe)]
fn set_context_subject(tenant: &str, token: &str, subject: &str, claims: &str) -> String {
    check_tenant_id(tenant);
    let action = Action::SetSubject {
        tenant,
        subject,
        claims,
    };
    let nonce = verify(action, token, tenant);
    spend(nonce);
    crate::subject::check_claims(claims);
    enter(tenant, subject, claims)
}

/// Clear this backend's tenant, subject and claims (for a router that hands
/// the backend to another client). Needs a `clear` token for this backend;
/// unlocks and resets the role, restores the search_path a schema tenant
/// set (`schema::leave`). Errors like `set_context`.
#[pg_extern(volatile, parallel_unsafe)]
fn clear_context(token: &str) {
    let current = tenant().unwrap_or_default();
    let nonce = verify(Action::Clear, token, &current);
    LAST_NONCE.0.set(nonce);
    if state().role != 0 {
        set_role("none");
    }
    crate::schema::leave();
    gucs::set_suset(gucs::CONTEXT_STATE_NAME, "");
    gucs::set_suset(gucs::SUBJECT_NAME, "");
    gucs::set_suset(gucs::CLAIMS_NAME, "");
    gucs::set_suset(gucs::TENANT_ID_NAME, "");
    crate::budget::apply(&Budget::default());
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
    canonical_uuid(&tenant()?).map(pgrx::Uuid::from_bytes)
}

/// The bytes of `s` when it is a uuid in canonical form (lower-case
/// 8-4-4-4-12): one tenant id per uuid, so no two tenants share a uuid.
pub fn canonical_uuid(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let hex: Vec<u8> = b.iter().copied().filter(|c| *c != b'-').collect();
    if hex.len() != 32
        || !hex
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, out) in bytes.iter_mut().enumerate() {
        let pair = std::str::from_utf8(&hex[2 * i..2 * i + 2]).ok()?;
        *out = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(bytes)
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
    fn only_canonical_uuids_map_to_a_uuid() {
        let u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
        assert!(canonical_uuid(u).is_some());
        for other in [
            "a0eebc999c0b4ef8bb6d6bb9bd380a11----",
            "a0eebc99-9c0b4-ef8-bb6d-6bb9bd380a11",
            "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
        ] {
            assert_eq!(canonical_uuid(other), None, "{other}");
        }
    }
}
