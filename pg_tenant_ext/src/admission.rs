//! What `set_context` reads and refuses before it gives a session a
//! tenant: the catalog row (read as the bootstrap superuser, immune to the
//! caller: [`as_catalog_reader`]) and the checks on the roles the session
//! would run as (no SUPERUSER or BYPASSRLS, no right beyond a tenant, no
//! privileges of another tenant's role).

use crate::compat;
use crate::report::{printable, refuse};
use crate::state::{ops, Backend, Budget};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::Cell;

/// The isolation kind of a tenant (`tenant.tenants.isolation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    Rls,
    Schema,
    Database,
}

impl Isolation {
    /// The kind a catalog value names; None for anything else (the
    /// catalog's constraint allows nothing else).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "rls" => Some(Self::Rls),
            "schema" => Some(Self::Schema),
            "database" => Some(Self::Database),
            _ => None,
        }
    }
}

/// One catalog row as `set_context` needs it.
pub struct TenantRow {
    pub enabled: bool,
    /// Whether the session user may take this tenant: NULL (None) when the
    /// tenant has no `login_roles`, else whether it is listed.
    pub login_allowed: Option<bool>,
    pub role: Option<String>,
    pub allow_ddl: bool,
    pub read_only: bool,
    pub ops: u8,
    pub allow_large_objects: bool,
    /// The effective pool_mode is `transaction`.
    pub transaction_pool: bool,
    pub budget: Budget,
    /// The isolation kind (0.8.0: `schema` is applied by `schema::apply`).
    pub isolation: Isolation,
    pub schema_name: Option<String>,
    /// The operator's schemas after the tenant's own on its search_path.
    pub shared_schemas: Vec<String>,
    /// The named upstream the catalog places the tenant on (0.9.0; None:
    /// the main one).
    pub upstream: Option<String>,
    /// The row came from a sealed document in a database without the
    /// tenant catalog (0.9.0: an rls or schema tenant on a named upstream):
    /// the roles of the other tenants are not known here, so the session's
    /// role may have the privileges of no other application role
    /// (`refuse_other_app_roles`).
    pub catalog_less: bool,
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
pub fn load_tenant(id: &str, session_user: &str) -> Option<TenantRow> {
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
        "coalesce((x.j OPERATOR(pg_catalog.->>) 'lock_space')::pg_catalog.int8, 0), \
         t.isolation, t.schema_name::pg_catalog.text, \
         CASE WHEN pg_catalog.jsonb_typeof(x.j OPERATOR(pg_catalog.->) 'shared_schemas'::pg_catalog.text) \
           OPERATOR(pg_catalog.=) 'array'::pg_catalog.text \
         THEN ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.j OPERATOR(pg_catalog.->) 'shared_schemas'::pg_catalog.text)) END, \
         x.j OPERATOR(pg_catalog.->>) 'upstream'::pg_catalog.text \
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
            let kind = r.get::<String>(16)?.unwrap_or_default();
            let Some(isolation) = Isolation::from_name(&kind) else {
                refuse(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    format!(
                        "tenant \"{id}\" has an unknown isolation \"{}\"",
                        printable(&kind)
                    ),
                );
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
                isolation,
                schema_name: r.get::<String>(17)?,
                shared_schemas: r.get::<Vec<String>>(18)?.unwrap_or_default(),
                upstream: r.get::<String>(19)?,
                catalog_less: false,
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
/// tenant's `role_name`. Role membership inherits privileges unless the
/// member is NOINHERIT (15) or the grant is WITH INHERIT FALSE (16+), so a shared login role that is a member
/// of every tenant role (set_context needs that to switch to them) would
/// read and alter, in one tenant's session, what another tenant created
/// under its own role. Read as the catalog reader; role names that no
/// longer exist are skipped.
pub fn refuse_foreign_privileges(
    tenant: &str,
    role: pg_sys::Oid,
    own_role: pg_sys::Oid,
    is_login: bool,
) {
    const Q: &str = "SELECT t.id, r.rolname::pg_catalog.text, r.oid::pg_catalog.int8 FROM tenant.tenants t \
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
                r.get::<i64>(3)?.unwrap_or_default(),
            )))
        })
    });
    let (other, other_role, other_oid) = match found {
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
        // ALTER ROLE ... NOINHERIT on 15, GRANT ... WITH INHERIT FALSE on 16+.
        let inherit_fix = as_catalog_reader(|| {
            Spi::get_one_with_args::<String>(
                compat::INHERIT_FIX_QUERY,
                &[i64::from(role.to_u32()).into(), other_oid.into()],
            )
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| format!("make {} stop inheriting", quote_ident(&name)));
        format!(
            "run {inherit_fix} (set_context still switches to a tenant's own role), \
             or give tenants with a role_name login roles of their own"
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

/// Where no catalog names the other tenants' roles (a sealed context of
/// an rls or schema tenant on a named upstream): refuse a session whose
/// effective role (`role`: the tenant's role, or the login role) has the
/// privileges (USAGE: inherited) of another application role, a member
/// of `tenant_app` other than `role` and `own_role`: another tenant's role
/// (NOLOGIN or not: the catalog accepts a LOGIN application role as a
/// tenant's `role_name`), whose objects the session would reach. 42501,
/// with the fix for a login role (stop inheriting it).
pub fn refuse_other_app_roles(tenant: &str, role: pg_sys::Oid, own_role: pg_sys::Oid) {
    const Q: &str = "SELECT r.rolname::pg_catalog.text, r.oid::pg_catalog.int8 FROM pg_catalog.pg_roles r \
                     WHERE r.oid OPERATOR(pg_catalog.<>) $1::pg_catalog.int8::pg_catalog.oid \
                       AND r.oid OPERATOR(pg_catalog.<>) $2::pg_catalog.int8::pg_catalog.oid \
                       AND r.rolname OPERATOR(pg_catalog.<>) 'tenant_app'::pg_catalog.name \
                       AND pg_catalog.pg_has_role(r.oid, 'tenant_app'::pg_catalog.name, 'MEMBER') \
                       AND pg_catalog.pg_has_role($1::pg_catalog.int8::pg_catalog.oid, r.oid, 'USAGE') \
                     ORDER BY r.rolname LIMIT 1";
    let found = as_catalog_reader(|| {
        Spi::connect(|client| {
            let args = [
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
                r.get::<i64>(2)?.unwrap_or_default(),
            )))
        })
    });
    let (other_role, other_oid) = match found {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(e) => refuse(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("pg_tenant: could not read the roles: {e}"),
        ),
    };
    let name = role_name(role);
    let fix = as_catalog_reader(|| {
        Spi::get_one_with_args::<String>(
            compat::INHERIT_FIX_QUERY,
            &[i64::from(role.to_u32()).into(), other_oid.into()],
        )
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| format!("make {} stop inheriting", quote_ident(&name)));
    refuse(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "role \"{}\" has the privileges of application role \"{}\": this server has no \
             tenant catalog to tell whose role that is, and a session for tenant \"{tenant}\" \
             would reach its objects; {fix}",
            printable(&name),
            printable(&other_role)
        ),
    );
}

/// An identifier quoted like `quote_ident`.
pub fn quote_ident(s: &str) -> String {
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
pub fn refuse_bypass(role: pg_sys::Oid, what: &str, tenant: &str) {
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
pub fn refuse_role_problem(role: pg_sys::Oid, what: &str, tenant: &str) {
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

/// The name of a role, for messages and the login_roles check.
pub fn role_name(oid: pg_sys::Oid) -> String {
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
