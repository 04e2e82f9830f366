//! Confinement: what a session with a tenant context may not reach outside
//! its own tenant, whatever its `allow_ddl` says. The same holds for code
//! that runs as an application role (a member of `tenant_app`) without a
//! context: a direct login with the application's password, or autovacuum
//! running a tenant-made index expression as the table's owner. Superusers
//! and other roles without a context are untouched (a superuser never gets
//! a context).
//!
//! * Functions that see or signal other sessions (`pg_stat_activity`'s
//!   `pg_stat_get_activity`, `pg_cancel_backend`, `pg_terminate_backend`,
//!   `pg_locks`, progress views) and, unless the tenant has
//!   `allow_large_objects`, the large-object functions are refused where
//!   PostgreSQL checks EXECUTE permission: `object_access_hook` with
//!   `OAT_FUNCTION_EXECUTE`, which every expression (queries, views,
//!   defaults, CHECK constraints, `COPY ... WHERE`, `CALL` arguments,
//!   PL/pgSQL) and the fast-path FunctionCall message go through. Built-in
//!   functions reached through an operator or a cast go through it too.
//! * `pg_notify()` is refused; `NOTIFY`, `LISTEN` and `UNLISTEN` are
//!   rewritten to the channel `<tenant>:<channel>`, so notifications never
//!   cross tenants and the router's `pg_tenant_catalog` channel is out of
//!   reach. `tenant.notify(channel, payload)` is the namespaced `pg_notify`.
//! * Role-, database- and system-level commands, explicit table locks above
//!   ROW EXCLUSIVE on non-temporary tables, `TRUNCATE` of tables with row
//!   level security, large-object utility commands, `COPY` of the
//!   large-object catalogs and two-phase commit (`PREPARE TRANSACTION`,
//!   `COMMIT/ROLLBACK PREPARED`) are refused.
//!
//! Every refusal is ERROR 42501 naming the tenant, what was refused and why.

use crate::refused::refused_function;
use crate::state::{self, Backend, ContextState};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::ffi::{c_void, CStr, CString};

static mut PREV_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;

/// Install the object access hook, chaining to the previous one.
///
/// # Safety
/// Call once, from `_PG_init` while shared_preload_libraries load.
pub unsafe fn init() {
    PREV_OBJECT_ACCESS = pg_sys::object_access_hook;
    pg_sys::object_access_hook = Some(object_access);
}

fn deny(what: &str) -> ! {
    let who = match state::tenant() {
        Some(t) => format!("tenant \"{t}\""),
        None => "an application role without a tenant context".to_string(),
    };
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("{who} is not allowed to {what}")
    );
}

/// Per-backend cache of the `tenant_app` role's oid (0: not looked up or
/// not there yet).
static TENANT_APP: Backend<std::cell::Cell<u32>> = Backend(std::cell::Cell::new(0));

/// Whether the current user is an application role: a member of
/// `tenant_app` (tenant.create_app_role and tenant roles are), superusers
/// excepted.
fn app_role() -> bool {
    // SAFETY: catalog lookups by name and oid, inside a transaction (the
    // hooks that call this run only there).
    unsafe {
        if !pg_sys::IsTransactionState() {
            return false;
        }
        let mut marker = TENANT_APP.0.get();
        if marker == 0 {
            marker = pg_sys::get_role_oid(c"tenant_app".as_ptr(), true).to_u32();
            TENANT_APP.0.set(marker);
        }
        let user = pg_sys::GetUserId();
        marker != 0
            && !pg_sys::superuser_arg(user)
            && pg_sys::is_member_of_role_nosuper(user, pg_sys::Oid::from(marker))
    }
}

/// Whether confinement applies: a tenant context, or an application role.
pub fn confined(st: &ContextState) -> bool {
    st.active || app_role()
}

/// The state confinement decides by: without a context, nothing extra is
/// granted (no large objects).
fn effective(st: &ContextState) -> ContextState {
    if st.active {
        *st
    } else {
        ContextState {
            allow_large_objects: false,
            ..*st
        }
    }
}

fn func_name(oid: pg_sys::Oid) -> String {
    // SAFETY: get_func_name returns NULL or a palloc'd C string.
    let p = unsafe { pg_sys::get_func_name(oid) };
    if p.is_null() {
        return format!("function {}", oid.to_u32());
    }
    // SAFETY: non-null, NUL-terminated.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[pg_guard]
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: i32,
    arg: *mut c_void,
) {
    if access == pg_sys::ObjectAccessType::OAT_FUNCTION_EXECUTE {
        // Every function of every query passes here: the oid lists first,
        // the role lookup of `confined` only for a function on them.
        let st = state::state();
        crate::gate::check_function(&st, object_id);
        if let Some(why) = refused_function(object_id.to_u32(), &effective(&st)) {
            if confined(&st) {
                let name = func_name(object_id);
                let (action, reason) = why.split_once(": ").unwrap_or((why, ""));
                if action.contains("()") {
                    deny(&format!("{action}: {reason}"));
                }
                deny(&format!("{action} ({name}()): {reason}"));
            }
        }
    }
    if let Some(prev) = PREV_OBJECT_ACCESS {
        prev(access, class_id, object_id, sub_id, arg);
    }
}

/// The longest channel name PostgreSQL accepts.
const MAX_CHANNEL: usize = pg_sys::NAMEDATALEN as usize - 1;

/// `<tenant>:<channel>`, or a clear error when it would not fit.
pub fn tenant_channel(tenant: &str, channel: &str) -> String {
    let full = format!("{tenant}:{channel}");
    if full.len() > MAX_CHANNEL {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "channel name \"{channel}\" is too long for tenant \"{tenant}\": channels are \
                 namespaced as \"{tenant}:<channel>\", which leaves {} bytes",
                MAX_CHANNEL.saturating_sub(tenant.len() + 1)
            )
        );
    }
    full
}

/// Replace `*field` (a palloc'd channel name in a copied statement) with
/// the tenant's namespaced name.
unsafe fn namespace_channel(field: *mut *mut std::ffi::c_char, tenant: &str) {
    if (*field).is_null() {
        return; // UNLISTEN *
    }
    let channel = CStr::from_ptr(*field).to_string_lossy().into_owned();
    let full = CString::new(tenant_channel(tenant, &channel)).unwrap_or_default();
    *field = pg_sys::pstrdup(full.as_ptr());
}

/// For NOTIFY/LISTEN/UNLISTEN in a tenant session: a copy of the planned
/// statement whose channel is namespaced; None for any other statement.
pub unsafe fn rewrite_channels(
    pstmt: *mut pg_sys::PlannedStmt,
) -> Option<*mut pg_sys::PlannedStmt> {
    let tag = (*(*pstmt).utilityStmt).type_;
    if !matches!(
        tag,
        pg_sys::NodeTag::T_NotifyStmt
            | pg_sys::NodeTag::T_ListenStmt
            | pg_sys::NodeTag::T_UnlistenStmt
    ) {
        return None;
    }
    let Some(tenant) = state::tenant() else {
        deny(
            "use LISTEN/NOTIFY: channels are namespaced per tenant, and this session has no tenant",
        );
    };
    let copy = pg_sys::copyObjectImpl(pstmt as *const c_void) as *mut pg_sys::PlannedStmt;
    let node = (*copy).utilityStmt;
    match tag {
        pg_sys::NodeTag::T_NotifyStmt => namespace_channel(
            &mut (*(node as *mut pg_sys::NotifyStmt)).conditionname,
            &tenant,
        ),
        pg_sys::NodeTag::T_ListenStmt => namespace_channel(
            &mut (*(node as *mut pg_sys::ListenStmt)).conditionname,
            &tenant,
        ),
        _ => namespace_channel(
            &mut (*(node as *mut pg_sys::UnlistenStmt)).conditionname,
            &tenant,
        ),
    }
    Some(copy)
}

/// Role-, database- and system-level statements: never for a tenant.
fn system_command(tag: pg_sys::NodeTag) -> bool {
    use pg_sys::NodeTag::*;
    matches!(
        tag,
        T_CreateRoleStmt
            | T_AlterRoleStmt
            | T_AlterRoleSetStmt
            | T_DropRoleStmt
            | T_GrantRoleStmt
            | T_ReassignOwnedStmt
            | T_DropOwnedStmt
            | T_CreatedbStmt
            | T_AlterDatabaseStmt
            | T_AlterDatabaseSetStmt
            | T_AlterDatabaseRefreshCollStmt
            | T_DropdbStmt
            | T_AlterSystemStmt
            | T_CreateTableSpaceStmt
            | T_DropTableSpaceStmt
            | T_AlterTableSpaceOptionsStmt
            | T_AlterTableMoveAllStmt
            | T_CreateEventTrigStmt
            | T_AlterEventTrigStmt
            | T_CreateExtensionStmt
            | T_AlterExtensionStmt
            | T_AlterExtensionContentsStmt
            | T_CreateFdwStmt
            | T_AlterFdwStmt
            | T_CreateForeignServerStmt
            | T_AlterForeignServerStmt
            | T_CreateUserMappingStmt
            | T_AlterUserMappingStmt
            | T_DropUserMappingStmt
            | T_CreateSubscriptionStmt
            | T_AlterSubscriptionStmt
            | T_DropSubscriptionStmt
            | T_CreatePublicationStmt
            | T_AlterPublicationStmt
            | T_AlterDefaultPrivilegesStmt
            | T_CreateCastStmt
            | T_CreateTransformStmt
            | T_CreatePLangStmt
            | T_CreateConversionStmt
            | T_LoadStmt
            | T_CheckPointStmt
    )
}

/// Object kinds that belong to the whole cluster or database, not a tenant.
fn shared_object(kind: pg_sys::ObjectType::Type) -> bool {
    use pg_sys::ObjectType::*;
    matches!(
        kind,
        OBJECT_ROLE
            | OBJECT_DATABASE
            | OBJECT_TABLESPACE
            | OBJECT_FDW
            | OBJECT_FOREIGN_SERVER
            | OBJECT_LANGUAGE
            | OBJECT_PARAMETER_ACL
            | OBJECT_EVENT_TRIGGER
            | OBJECT_EXTENSION
            | OBJECT_PUBLICATION
            | OBJECT_SUBSCRIPTION
            | OBJECT_CAST
            | OBJECT_TRANSFORM
            | OBJECT_LARGEOBJECT
    )
}

unsafe fn command_name(node: *mut pg_sys::Node) -> String {
    CStr::from_ptr(pg_sys::CreateCommandName(node))
        .to_string_lossy()
        .into_owned()
}

/// The object kind a GRANT, ALTER ... OWNER, RENAME, COMMENT or SECURITY
/// LABEL statement acts on, if it is one of those.
unsafe fn target_kind(node: *mut pg_sys::Node) -> Option<pg_sys::ObjectType::Type> {
    use pg_sys::NodeTag::*;
    Some(match (*node).type_ {
        T_GrantStmt => (*(node as *mut pg_sys::GrantStmt)).objtype,
        T_AlterOwnerStmt => (*(node as *mut pg_sys::AlterOwnerStmt)).objectType,
        T_RenameStmt => (*(node as *mut pg_sys::RenameStmt)).renameType,
        T_CommentStmt => (*(node as *mut pg_sys::CommentStmt)).objtype,
        T_SecLabelStmt => (*(node as *mut pg_sys::SecLabelStmt)).objtype,
        T_DropStmt => (*(node as *mut pg_sys::DropStmt)).removeType,
        _ => return None,
    })
}

/// A named relation, resolved without locking (InvalidOid when missing).
pub unsafe fn relid(rv: *mut pg_sys::RangeVar) -> pg_sys::Oid {
    pg_sys::RangeVarGetRelidExtended(
        rv,
        pg_sys::NoLock as _,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    )
}

/// Each relation of a LOCK or TRUNCATE statement, resolved without locking.
unsafe fn relations(list: *mut pg_sys::List) -> Vec<pg_sys::Oid> {
    pgrx::PgList::<pg_sys::RangeVar>::from_pg(list)
        .iter_ptr()
        .map(|rv| relid(rv))
        .collect()
}

pub unsafe fn rel_name(oid: pg_sys::Oid) -> String {
    let p = pg_sys::get_rel_name(oid);
    if p.is_null() {
        return format!("relation {}", oid.to_u32());
    }
    CStr::from_ptr(p).to_string_lossy().into_owned()
}

/// Some DDL locks its target before PostgreSQL checks the privilege: a
/// refused `CREATE TRIGGER`/`CREATE RULE` on a shared table, or a foreign
/// key to it, would still queue a strong lock there and block every
/// tenant. Check the privilege first, without a lock.
unsafe fn check_before_lock(node: *mut pg_sys::Node) {
    use pg_sys::NodeTag::*;
    let user = pg_sys::GetUserId();
    let need = |rv: *mut pg_sys::RangeVar, mode: u32, what: &str| {
        if rv.is_null() {
            return;
        }
        let rel = relid(rv);
        if rel == pg_sys::InvalidOid || crate::compat::rel_ownercheck(rel, user) {
            return;
        }
        if mode != 0
            && pg_sys::pg_class_aclcheck(rel, user, mode as _) == pg_sys::AclResult::ACLCHECK_OK
        {
            return;
        }
        deny(&format!(
            "{}: it lacks the privilege, and the lock PostgreSQL takes before checking would \
             block every tenant sharing the table",
            what.replace("{}", &rel_name(rel))
        ));
    };
    let foreign_keys = |constraints: *mut pg_sys::List| {
        for c in pgrx::PgList::<pg_sys::Node>::from_pg(constraints).iter_ptr() {
            if !c.is_null() && (*c).type_ == T_Constraint {
                let c = c as *mut pg_sys::Constraint;
                if (*c).contype == pg_sys::ConstrType::CONSTR_FOREIGN {
                    need(
                        (*c).pktable,
                        pg_sys::ACL_REFERENCES,
                        "reference {} with a foreign key",
                    );
                }
            }
        }
    };
    let elements = |elts: *mut pg_sys::List| {
        for e in pgrx::PgList::<pg_sys::Node>::from_pg(elts).iter_ptr() {
            if e.is_null() {
                continue;
            }
            if (*e).type_ == T_ColumnDef {
                foreign_keys((*(e as *mut pg_sys::ColumnDef)).constraints);
            } else if (*e).type_ == T_Constraint {
                let one = pg_sys::lappend(std::ptr::null_mut(), e.cast());
                foreign_keys(one);
            }
        }
    };
    let relations = |list: *mut pg_sys::List, what: &str| {
        for rv in pgrx::PgList::<pg_sys::RangeVar>::from_pg(list).iter_ptr() {
            need(rv, 0, what);
        }
    };
    match (*node).type_ {
        T_CreateStatsStmt => relations(
            (*(node as *mut pg_sys::CreateStatsStmt)).relations,
            "CREATE STATISTICS on {}",
        ),
        T_CreateTrigStmt => need(
            (*(node as *mut pg_sys::CreateTrigStmt)).relation,
            pg_sys::ACL_TRIGGER,
            "CREATE TRIGGER on {}",
        ),
        T_RuleStmt => need(
            (*(node as *mut pg_sys::RuleStmt)).relation,
            0,
            "CREATE RULE on {}",
        ),
        T_CreateStmt => {
            let create = node as *mut pg_sys::CreateStmt;
            // INHERITS and PARTITION OF lock the parent before the check.
            relations(
                (*create).inhRelations,
                "inherit from or make a partition of {}",
            );
            elements((*create).tableElts);
        }
        T_AlterTableStmt => {
            let cmds = (*(node as *mut pg_sys::AlterTableStmt)).cmds;
            for cmd in pgrx::PgList::<pg_sys::AlterTableCmd>::from_pg(cmds).iter_ptr() {
                if cmd.is_null() || (*cmd).def.is_null() {
                    continue;
                }
                let def = (*cmd).def;
                match (*cmd).subtype {
                    pg_sys::AlterTableType::AT_AttachPartition
                    | pg_sys::AlterTableType::AT_DetachPartition
                    | pg_sys::AlterTableType::AT_DetachPartitionFinalize => need(
                        (*(def as *mut pg_sys::PartitionCmd)).name,
                        0,
                        "attach or detach {} as a partition",
                    ),
                    pg_sys::AlterTableType::AT_AddInherit
                    | pg_sys::AlterTableType::AT_DropInherit => {
                        need(def as *mut pg_sys::RangeVar, 0, "INHERIT from {}")
                    }
                    _ => {
                        let one = pg_sys::lappend(std::ptr::null_mut(), def.cast());
                        elements(one);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Utility statements a tenant session may never run.
///
/// # Safety
/// `node` is the utility statement ProcessUtility was given.
pub unsafe fn check_utility(st: &ContextState, node: *mut pg_sys::Node) {
    use pg_sys::NodeTag::*;
    let tag = (*node).type_;
    if system_command(tag) {
        deny(&format!(
            "run {}: role-, database- and system-level commands are not for tenant sessions",
            command_name(node)
        ));
    }
    if let Some(kind) = target_kind(node) {
        if shared_object(kind) {
            deny(&format!(
                "run {} on this object: it is shared by every tenant",
                command_name(node)
            ));
        }
    }
    crate::schema::check_utility(node);
    check_before_lock(node);
    match tag {
        T_LockStmt => {
            let lock = node as *mut pg_sys::LockStmt;
            if (*lock).mode > pg_sys::RowExclusiveLock as i32 {
                for rel in relations((*lock).relations) {
                    // Only the session's own temporary tables: a view (even
                    // a temporary one) passes its lock on to its base tables.
                    let kind = pg_sys::get_rel_relkind(rel) as u8;
                    let own_temp_table = pg_sys::get_rel_persistence(rel)
                        == pg_sys::RELPERSISTENCE_TEMP as i8
                        && (kind == pg_sys::RELKIND_RELATION
                            || kind == pg_sys::RELKIND_PARTITIONED_TABLE);
                    if rel != pg_sys::InvalidOid && !own_temp_table {
                        deny(&format!(
                            "LOCK TABLE {} in a mode above ROW EXCLUSIVE: it would block \
                             every tenant sharing the table",
                            rel_name(rel)
                        ));
                    }
                }
            }
        }
        // A prepared transaction outlives the session, and the locks (a
        // tenant's advisory locks past its budget), snapshot and slot it
        // holds with it.
        T_TransactionStmt
            if matches!(
                (*(node as *mut pg_sys::TransactionStmt)).kind,
                pg_sys::TransactionStmtKind::TRANS_STMT_PREPARE
                    | pg_sys::TransactionStmtKind::TRANS_STMT_COMMIT_PREPARED
                    | pg_sys::TransactionStmtKind::TRANS_STMT_ROLLBACK_PREPARED
            ) =>
        {
            deny(&format!(
                "run {}: a prepared transaction outlives the session with its locks, and \
                 max_prepared_transactions is shared by every tenant",
                command_name(node)
            ));
        }
        // COPY <large-object catalog> TO reads it without the executor.
        T_CopyStmt => {
            let copy = node as *mut pg_sys::CopyStmt;
            if !(*copy).relation.is_null() {
                check_large_object_catalog(st, relid((*copy).relation));
            }
        }
        T_TruncateStmt => {
            let trunc = node as *mut pg_sys::TruncateStmt;
            for rel in relations((*trunc).relations) {
                if rel != pg_sys::InvalidOid && pg_sys::get_rel_relkind(rel) != 0 {
                    let rls = pg_sys::check_enable_rls(rel, pg_sys::InvalidOid, true);
                    if rls == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32 {
                        deny(&format!(
                            "TRUNCATE {}: TRUNCATE ignores row level security and would \
                             empty every tenant's rows",
                            rel_name(rel)
                        ));
                    }
                }
            }
        }
        _ => {}
    }
}

/// `pg_largeobject` and `pg_largeobject_metadata` (catalog/pg_largeobject*.h).
const LARGE_OBJECT_RELATION_ID: u32 = 2613;
const LARGE_OBJECT_METADATA_RELATION_ID: u32 = 2995;

/// Whether a plan reads the large-object catalogs (listing every tenant's
/// large objects) in a confined session that may not use large objects.
/// Runs for every plan: the range table is scanned first, confinement is
/// looked up only for a plan that touches those catalogs.
///
/// # Safety
/// `stmt` is a valid planned statement.
pub unsafe fn check_plan(st: &ContextState, stmt: *mut pg_sys::PlannedStmt) {
    let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
    for rte in rtable.iter_ptr() {
        if !rte.is_null() && (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION {
            check_large_object_catalog(st, (*rte).relid);
        }
    }
}

/// Refuse reading a large-object catalog in a confined session that may not
/// use large objects.
unsafe fn check_large_object_catalog(st: &ContextState, rel: pg_sys::Oid) {
    if matches!(
        rel.to_u32(),
        LARGE_OBJECT_RELATION_ID | LARGE_OBJECT_METADATA_RELATION_ID
    ) && !effective(st).allow_large_objects
        && confined(st)
    {
        deny(&format!(
            "read {}: large objects are shared by all tenants (allow_large_objects is off)",
            rel_name(rel)
        ));
    }
}

/// Send a notification on the tenant's namespaced channel (`pg_notify` for
/// tenant sessions). Without a tenant context the channel is used as is,
/// for roles that are not confined (operators, the router's own role); an
/// application role without a context is refused, like `NOTIFY`: there is
/// no tenant to namespace by, and a raw channel (another tenant's
/// `globex:jobs`, the router's `pg_tenant_catalog`) is not its to use.
/// Errors: 42501 for an application role without a context; 22023 when the
/// namespaced channel name is longer than 63 bytes.
#[pg_extern(volatile, parallel_unsafe)]
fn notify(channel: &str, payload: default!(Option<&str>, "NULL")) {
    let name = match state::tenant() {
        Some(t) => tenant_channel(&t, channel),
        None if app_role() => deny(
            "call tenant.notify(): channels are namespaced per tenant, and this session has no tenant",
        ),
        None => channel.to_owned(),
    };
    let name = CString::new(name).unwrap_or_default();
    let payload = CString::new(payload.unwrap_or("")).unwrap_or_default();
    // SAFETY: both strings are NUL-terminated; Async_Notify validates them.
    unsafe { pg_sys::ffi::pg_guard_ffi_boundary(|| Async_Notify(name.as_ptr(), payload.as_ptr())) };
}

unsafe extern "C-unwind" {
    /// commands/async.h (not among pgrx's bindings): queue a notification,
    /// exactly what `pg_notify()` does.
    fn Async_Notify(channel: *const std::ffi::c_char, payload: *const std::ffi::c_char);
}
