//! The tenant context: `set_context`, `clear_context`, `current_tenant_id()`.
//!
//! The context lives in two SUSET GUCs (see `gucs`), so it is transactional,
//! survives `RESET ALL`/`DISCARD ALL`, reaches parallel workers, and cannot
//! be written by a non-superuser. Their assign hooks keep a parsed copy in
//! this module's statics: reading the tenant costs no GUC lookup.

use crate::budget::Budget;
use crate::gucs;
use pg_tenant_token::Action;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::{Cell, RefCell};
use std::ffi::CString;

/// Per-backend cell. A backend is single-threaded, so plain cells suffice.
pub struct Backend<T>(pub T);
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

/// What `set_context` loaded besides the tenant id: the locked role, the
/// tenant's permissions and whether its effective `pool_mode` is
/// `transaction`, and the tenant's budgets (`budget`). Serialized into
/// `pg_tenant.context_state` as `v4:<role oid>:<allow_ddl>:<read_only>:<ops
/// bits>:<allow_large_objects>:<transaction_pool>:<budget>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ContextState {
    pub role: u32,
    pub allow_ddl: bool,
    pub read_only: bool,
    pub ops: u8,
    pub allow_large_objects: bool,
    /// The tenant's effective pool_mode is `transaction` (see `pool`).
    pub transaction_pool: bool,
    /// Budgets of shared resources (0.5.0).
    pub budget: Budget,
    pub active: bool,
}

impl ContextState {
    pub const NONE: ContextState = ContextState {
        role: 0,
        allow_ddl: true,
        read_only: false,
        ops: ops::ALL,
        allow_large_objects: true,
        transaction_pool: false,
        budget: Budget {
            lock_space: 0,
            max_advisory_locks: 0,
            statement_timeout_ms: 0,
            idle_in_transaction_timeout_ms: 0,
            work_mem_kb: 0,
            maintenance_work_mem_kb: 0,
            temp_file_limit_kb: 0,
        },
        active: false,
    };

    pub fn parse(s: &str) -> Option<ContextState> {
        if s.is_empty() {
            return Some(ContextState::NONE);
        }
        let mut it = s.split(':');
        if it.next()? != "v4" {
            return None;
        }
        let role = it.next()?.parse().ok()?;
        let allow_ddl = it.next()? == "1";
        let read_only = it.next()? == "1";
        let ops = it.next()?.parse().ok()?;
        let allow_large_objects = it.next()? == "1";
        let transaction_pool = it.next()? == "1";
        let budget = Budget::parse(&mut it)?;
        if it.next().is_some() || ops > ops::ALL {
            return None;
        }
        Some(ContextState {
            role,
            allow_ddl,
            read_only,
            ops,
            allow_large_objects,
            transaction_pool,
            budget,
            active: true,
        })
    }

    pub fn serialize(&self) -> String {
        format!(
            "v4:{}:{}:{}:{}:{}:{}:{}",
            self.role,
            self.allow_ddl as u8,
            self.read_only as u8,
            self.ops,
            self.allow_large_objects as u8,
            self.transaction_pool as u8,
            self.budget.serialize()
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

/// Look at the current tenant id without copying it.
pub fn with_tenant<T>(f: impl FnOnce(Option<&str>) -> T) -> T {
    f(TENANT.0.borrow().as_deref())
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
    let (pid, cancel_key) = unsafe { (pg_sys::MyProcPid, pg_sys::MyCancelKey) };
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

/// A client-supplied string made safe to echo: control characters become
/// '?', and it is cut at 64 characters.
pub fn printable(s: &str) -> String {
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
    /// Whether the session user may take this tenant: NULL (None) when the
    /// tenant has no `login_roles`, else whether it is listed.
    login_allowed: Option<bool>,
    role: Option<String>,
    allow_ddl: bool,
    read_only: bool,
    ops: u8,
    allow_large_objects: bool,
    /// The effective pool_mode is `transaction`.
    transaction_pool: bool,
    budget: Budget,
}

/// Run catalog reads as the bootstrap superuser, immune to the caller.
///
/// Nothing the caller controls may run inside: the queries name every
/// object with its schema, run under a pinned `search_path = pg_catalog,
/// pg_temp` (temporary relations, which would otherwise be searched first,
/// come last; functions and operators are never looked up in pg_temp) and
/// in a security-restricted operation (no temp objects may be created, no
/// `SET ROLE`, no deferred code). Caller-created operators, functions,
/// casts and relations are never resolved.
pub fn as_catalog_reader<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the caller's user, security context and settings on every
    /// way out, an ERROR (unwound through pgrx as a panic) included.
    struct Restore {
        user: pg_sys::Oid,
        sec: i32,
        nest: i32,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores the values saved below; neither call raises
            // an ERROR for a nest level this function opened.
            unsafe {
                pg_sys::AtEOXact_GUC(true, self.nest);
                pg_sys::SetUserIdAndSecContext(self.user, self.sec);
            }
        }
    }
    let mut user = pg_sys::InvalidOid;
    let mut sec = 0;
    // SAFETY: the pair and the GUC nest level are restored by `Restore`.
    let _restore = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut sec);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            sec | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        let restore = Restore {
            user,
            sec,
            nest: pg_sys::NewGUCNestLevel(),
        };
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        restore
    };
    f()
}

/// Read the tenant's row as the bootstrap superuser (the application role
/// has no privilege on the catalog, and must not need one), through
/// [`as_catalog_reader`], comparing with `OPERATOR(pg_catalog.=)`.
///
/// Fields added after 0.2.0 (`login_roles` 0.3.0, `pool_mode` 0.4.0, the
/// budgets and `lock_space` 0.5.0) are read through `to_jsonb` of the rows,
/// the tenant's value, else the defaults row's, else the built-in default,
/// so this library still works against older tables until `ALTER EXTENSION
/// pg_tenant UPDATE` has run (no `login_roles`: no restriction; no
/// `pool_mode`: session; no budgets: the built-in defaults).
fn load_tenant(id: &str, session_user: &str) -> Option<TenantRow> {
    // One budget field: `coalesce(tenant's, default's, built-in)`.
    macro_rules! field {
        ($name:literal, $builtin:literal) => {
            concat!(
                "coalesce((x.j OPERATOR(pg_catalog.->>) '",
                $name,
                "')::pg_catalog.int8, ",
                "(x.dj OPERATOR(pg_catalog.->>) '",
                $name,
                "')::pg_catalog.int8, ",
                $builtin,
                "), "
            )
        };
    }
    const Q: &str = concat!(
        "SELECT t.enabled, \
         CASE WHEN pg_catalog.jsonb_typeof(x.j OPERATOR(pg_catalog.->) 'login_roles'::pg_catalog.text) \
           OPERATOR(pg_catalog.=) 'array'::pg_catalog.text \
         THEN (x.j OPERATOR(pg_catalog.->) 'login_roles'::pg_catalog.text) \
           OPERATOR(pg_catalog.?) $2::pg_catalog.text END, \
         t.role_name::pg_catalog.text, t.allow_ddl, t.read_only, \
         t.allowed_operations, t.allow_large_objects, \
         coalesce(x.j OPERATOR(pg_catalog.->>) 'pool_mode'::pg_catalog.text, \
           x.dj OPERATOR(pg_catalog.->>) 'pool_mode'::pg_catalog.text, 'session'::pg_catalog.text) \
           OPERATOR(pg_catalog.=) 'transaction'::pg_catalog.text, ",
        field!("max_advisory_locks", "64"),
        field!("statement_timeout_ms", "300000"),
        field!("idle_in_transaction_timeout_ms", "60000"),
        field!("work_mem_kb", "65536"),
        field!("maintenance_work_mem_kb", "262144"),
        field!("temp_file_limit_kb", "1048576"),
        "coalesce((x.j OPERATOR(pg_catalog.->>) 'lock_space')::pg_catalog.int8, 0) \
         FROM tenant.tenants t, \
         LATERAL (SELECT pg_catalog.to_jsonb(t) AS j, coalesce((SELECT pg_catalog.to_jsonb(d) \
                  FROM tenant.defaults d LIMIT 1), '{}'::pg_catalog.jsonb) AS dj) x \
         WHERE t.id OPERATOR(pg_catalog.=) $1::pg_catalog.text"
    );
    let row = as_catalog_reader(|| {
        Spi::connect(|client| {
            let table = client.select(Q, Some(1), &[id.into(), session_user.into()])?;
            if table.is_empty() {
                return Ok::<_, pgrx::spi::Error>(None);
            }
            let r = table.first();
            let names: Vec<String> = r.get::<Vec<String>>(6)?.unwrap_or_default();
            let n = |i: usize| -> Result<u32, pgrx::spi::Error> {
                let v = r.get::<i64>(i)?.unwrap_or(0);
                Ok(u32::try_from(v.max(0)).unwrap_or(u32::MAX))
            };
            Ok(Some(TenantRow {
                enabled: r.get::<bool>(1)?.unwrap_or(false),
                login_allowed: r.get::<bool>(2)?,
                role: r.get::<String>(3)?,
                allow_ddl: r.get::<bool>(4)?.unwrap_or(false),
                read_only: r.get::<bool>(5)?.unwrap_or(true),
                ops: names
                    .iter()
                    .filter_map(|n| ops::from_name(n))
                    .fold(0, |a, b| a | b),
                allow_large_objects: r.get::<bool>(7)?.unwrap_or(false),
                transaction_pool: r.get::<bool>(8)?.unwrap_or(false),
                budget: Budget {
                    max_advisory_locks: n(9)?,
                    statement_timeout_ms: n(10)?,
                    idle_in_transaction_timeout_ms: n(11)?,
                    work_mem_kb: n(12)?,
                    maintenance_work_mem_kb: n(13)?,
                    temp_file_limit_kb: n(14)?,
                    lock_space: n(15)?,
                },
            }))
        })
    });
    match row {
        Ok(r) => r,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not read tenant catalog: {e}"),
        ),
    }
}

/// Why a role must not run tenant sessions (`tenant._role_problem`, the
/// check `create_tenant` and `create_app_role` make: SUPERUSER, BYPASSRLS,
/// REPLICATION, CREATEROLE, CREATEDB, or membership, direct or not, in a
/// role whose rights reach across tenants), re-checked at every
/// `set_context` so a membership granted later is refused too. None when
/// the role is fine, or on a schema older than 0.3.0 (no such function).
fn role_problem(role: pg_sys::Oid) -> Option<String> {
    const Q: &str = "SELECT tenant._role_problem($1::pg_catalog.int8::pg_catalog.oid)";
    const EXISTS: &str =
        "SELECT pg_catalog.to_regprocedure('tenant._role_problem(pg_catalog.oid)') IS NOT NULL";
    // Whether the schema has the function, looked up once per backend (a
    // schema older than 0.3.0 gains it only through ALTER EXTENSION UPDATE,
    // which a session sees from its next connection on).
    static HAS_FUNCTION: Backend<Cell<Option<bool>>> = Backend(Cell::new(None));
    let found = as_catalog_reader(|| {
        Spi::connect(|client| {
            let exists = match HAS_FUNCTION.0.get() {
                Some(known) => known,
                None => {
                    let found = client
                        .select(EXISTS, Some(1), &[])?
                        .first()
                        .get::<bool>(1)?;
                    HAS_FUNCTION.0.set(Some(found == Some(true)));
                    found == Some(true)
                }
            };
            if !exists {
                return Ok::<_, pgrx::spi::Error>(None);
            }
            let t = client.select(Q, Some(1), &[i64::from(role.to_u32()).into()])?;
            t.first().get::<String>(1)
        })
    });
    match found {
        Ok(p) => p,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not check role: {e}"),
        ),
    }
}

/// Refuse a context whose effective role (`role`: the tenant's role, or the
/// login role for a tenant without one) has the privileges of another
/// tenant's `role_name`. PostgreSQL 15 role membership inherits privileges
/// unless the member is NOINHERIT, so a shared login role that is a member
/// of every tenant role (set_context needs that to switch to them) would
/// read and alter, in one tenant's session, what another tenant created
/// under its own role. Read as the catalog reader; role names that no
/// longer exist are skipped.
fn refuse_foreign_privileges(
    tenant: &str,
    role: pg_sys::Oid,
    own_role: pg_sys::Oid,
    is_login: bool,
) {
    const Q: &str = "SELECT t.id, r.rolname::pg_catalog.text FROM tenant.tenants t \
                     JOIN pg_catalog.pg_roles r ON r.rolname OPERATOR(pg_catalog.=) t.role_name \
                     WHERE t.id OPERATOR(pg_catalog.<>) $1::pg_catalog.text \
                       AND r.oid OPERATOR(pg_catalog.<>) $3::pg_catalog.int8::pg_catalog.oid \
                       AND pg_catalog.pg_has_role($2::pg_catalog.int8::pg_catalog.oid, r.oid, 'USAGE') \
                     ORDER BY t.id LIMIT 1";
    let found = as_catalog_reader(|| {
        Spi::connect(|client| {
            let args = [
                tenant.into(),
                i64::from(role.to_u32()).into(),
                i64::from(own_role.to_u32()).into(),
            ];
            let table = client.select(Q, Some(1), &args)?;
            if table.is_empty() {
                return Ok::<_, pgrx::spi::Error>(None);
            }
            let r = table.first();
            Ok(Some((
                r.get::<String>(1)?.unwrap_or_default(),
                r.get::<String>(2)?.unwrap_or_default(),
            )))
        })
    });
    let (other, other_role) = match found {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not read tenant catalog: {e}"),
        ),
    };
    let name = role_name(role);
    let how = if name == other_role {
        format!("is the role of tenant \"{other}\"")
    } else {
        format!("has the privileges of role \"{other_role}\" of tenant \"{other}\"")
    };
    let fix = if is_login {
        format!(
            "run ALTER ROLE {} NOINHERIT (set_context still switches to a tenant's own role), \
             or give tenants with a role_name login roles of their own",
            quote_ident(&name)
        )
    } else {
        format!(
            "REVOKE {} FROM {}",
            quote_ident(&other_role),
            quote_ident(&name)
        )
    };
    refuse(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "{} \"{}\" {how}: a session for tenant \"{tenant}\" would reach that tenant's objects; {fix}",
            if is_login { "login role" } else { "tenant role" },
            printable(&name)
        ),
    );
}

/// An identifier quoted like `quote_ident`.
fn quote_ident(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        s.to_owned()
    } else {
        format!("\"{}\"", s.replace('"', "\"\""))
    }
}

/// Refuse a context for a role that bypasses row level security: such a
/// "tenant" session would see every tenant's rows.
fn refuse_bypass(role: pg_sys::Oid, what: &str, tenant: &str) {
    // SAFETY: plain catalog lookups by oid.
    let (superuser, bypass) = unsafe {
        (
            pg_sys::superuser_arg(role),
            pg_sys::has_bypassrls_privilege(role),
        )
    };
    if superuser || bypass {
        let kind = if superuser { "SUPERUSER" } else { "BYPASSRLS" };
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "tenant \"{tenant}\" cannot be given to a session whose {what} has {kind}: \
                 row level security would not confine it"
            ),
        );
    }
}

/// Refuse a context for a role with rights beyond a tenant ([`role_problem`]).
fn refuse_role_problem(role: pg_sys::Oid, what: &str, tenant: &str) {
    if let Some(problem) = role_problem(role) {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "tenant \"{tenant}\" cannot be given to a session whose {what} \"{}\" {problem}: \
                 its sessions would reach beyond their tenant",
                printable(&role_name(role))
            ),
        );
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

/// The name of a role, for messages and the login_roles check.
fn role_name(oid: pg_sys::Oid) -> String {
    // SAFETY: GetUserNameFromId with noerr returns NULL for a dropped role.
    let name = unsafe { pg_sys::GetUserNameFromId(oid, true) };
    if name.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated, palloc'd by Postgres.
    unsafe { std::ffi::CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

fn check_tenant_id(tenant: &str) {
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
/// tenant, refuse what must be refused, lock the role, store the context
/// with the subject and claims ("" for none).
fn enter(tenant: &str, subject: &str, claims: &str) -> String {
    // SAFETY: reads of backend globals.
    let (session_user, current_user) = unsafe { (pg_sys::GetSessionUserId(), pg_sys::GetUserId()) };
    let login = role_name(session_user);
    let Some(row) = load_tenant(tenant, &login) else {
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
        set_role(role);
        oid.to_u32()
    } else {
        refuse_role_problem(session_user, "login role", tenant);
        refuse_foreign_privileges(tenant, session_user, pg_sys::InvalidOid, true);
        if current_user != session_user || state().role != 0 {
            set_role("none");
        }
        session_user.to_u32()
    };
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
/// the session. Clears any subject and claims.
/// Errors: 42501 for a bad or replayed token, an unknown or disabled tenant;
/// 22023 for a malformed tenant id. Returns the tenant id.
#[pg_extern(volatile, parallel_unsafe)]
fn set_context(tenant: &str, token: &str) -> String {
    check_tenant_id(tenant);
    let nonce = verify(Action::Set(tenant), token, tenant);
    // The nonce is spent even if what follows fails: a token is single-use.
    LAST_NONCE.0.set(nonce);
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
    LAST_NONCE.0.set(nonce);
    crate::subject::check_claims(claims);
    enter(tenant, subject, claims)
}

/// Clear this backend's tenant, subject and claims (for a router that hands
/// the backend to another client). Needs a `clear` token for this backend;
/// unlocks and resets the role. Errors like `set_context`.
#[pg_extern(volatile, parallel_unsafe)]
fn clear_context(token: &str) {
    let current = tenant().unwrap_or_default();
    let nonce = verify(Action::Clear, token, &current);
    LAST_NONCE.0.set(nonce);
    if state().role != 0 {
        set_role("none");
    }
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

    #[test]
    fn state_round_trip() {
        let s = ContextState {
            role: 16384,
            allow_ddl: false,
            read_only: true,
            ops: ops::SELECT | ops::INSERT,
            allow_large_objects: true,
            transaction_pool: true,
            budget: Budget {
                lock_space: 3,
                max_advisory_locks: 64,
                statement_timeout_ms: 300_000,
                idle_in_transaction_timeout_ms: 0,
                work_mem_kb: 65536,
                maintenance_work_mem_kb: 1,
                temp_file_limit_kb: 2,
            },
            active: true,
        };
        assert_eq!(ContextState::parse(&s.serialize()), Some(s));
        let session = ContextState {
            transaction_pool: false,
            ..s
        };
        assert_eq!(ContextState::parse(&session.serialize()), Some(session));
        assert_eq!(ContextState::parse(""), Some(ContextState::NONE));
        assert_eq!(ContextState::parse("v4:1:0:0:99:0:0:0:0:0:0:0:0:0"), None);
        assert_eq!(ContextState::parse("v3:1:0:0:1:0:0"), None);
        assert_eq!(ContextState::parse("v4:1:0:0:1:0:0"), None);
        assert_eq!(ContextState::parse("v4:1:0:0:1:0:1:0:0:0:0:0:0:0:1"), None);
    }
}
