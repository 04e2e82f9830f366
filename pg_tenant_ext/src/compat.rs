//! The PostgreSQL-version differences of the extension's FFI, in one place.
//!
//! Everything else calls these shims and carries no `cfg`. The PostgreSQL 15
//! arm of each shim is the code the extension had before it was built for
//! other versions, unchanged; the 16+ arms are their equivalents after
//! PostgreSQL 16's API changes (noted on each shim).

use pgrx::pg_sys;

/// Every GUC record (`config_generic`) of this backend, in turn.
///
/// PostgreSQL 15: `get_guc_variables()` is the live array of
/// `GetNumConfigOptions()` records. 16+: `get_guc_variables(&mut n)`
/// returns a palloc'd array of the records of the GUC hash table (freed
/// here); `GetNumConfigOptions` is gone. The records themselves are the
/// live ones in every version, so hooks installed through them stick.
///
/// # Safety
/// Call in a backend (or the postmaster during `_PG_init`), not while the
/// GUC table is being changed.
pub unsafe fn for_each_guc(mut f: impl FnMut(*mut pg_sys::config_generic)) {
    #[cfg(feature = "pg15")]
    {
        let vars = pg_sys::get_guc_variables();
        let n = pg_sys::GetNumConfigOptions();
        for i in 0..n as usize {
            f(*vars.add(i));
        }
    }
    #[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
    {
        let mut n: std::ffi::c_int = 0;
        let vars = pg_sys::get_guc_variables(&mut n);
        for i in 0..n as usize {
            f(*vars.add(i));
        }
        if !vars.is_null() {
            pg_sys::pfree(vars.cast());
        }
    }
}

/// Does `user` own the relation `rel` (or hold a role that does)?
///
/// PostgreSQL 15: `pg_class_ownercheck`. 16+: the generic
/// `object_ownercheck(RelationRelationId, ...)` replaced the per-class
/// functions.
///
/// # Safety
/// In a transaction.
pub unsafe fn rel_ownercheck(rel: pg_sys::Oid, user: pg_sys::Oid) -> bool {
    #[cfg(feature = "pg15")]
    {
        pg_sys::pg_class_ownercheck(rel, user)
    }
    #[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
    {
        pg_sys::object_ownercheck(pg_sys::RelationRelationId, rel, user)
    }
}

/// `DoCopy`'s permission check for `COPY ... FROM`: INSERT on the table
/// `nsitem` names, or on each of the columns `attnums` (an integer List
/// from `CopyGetAttnums`); ERROR when it is missing.
///
/// PostgreSQL 15: the permissions live on the RangeTblEntry
/// (`requiredPerms`, `insertedCols`) and `ExecCheckRTPerms` checks the
/// range table. 16+: they moved to an `RTEPermissionInfo`
/// (`nsitem->p_perminfo`) checked by `ExecCheckPermissions` (as 16's
/// `DoCopy` does).
///
/// # Safety
/// `pstate` and `nsitem` from `addRangeTableEntryForRelation` on it.
pub unsafe fn check_copy_from_permission(
    pstate: *mut pg_sys::ParseState,
    nsitem: *mut pg_sys::ParseNamespaceItem,
    attnums: *mut pg_sys::List,
) {
    #[cfg(feature = "pg15")]
    {
        let rte = (*nsitem).p_rte;
        (*rte).requiredPerms = pg_sys::ACL_INSERT;
        for att in pgrx::PgList::<i32>::from_pg(attnums).iter_int() {
            (*rte).insertedCols = pg_sys::bms_add_member(
                (*rte).insertedCols,
                att - pg_sys::FirstLowInvalidHeapAttributeNumber,
            );
        }
        pg_sys::ExecCheckRTPerms((*pstate).p_rtable, true);
    }
    #[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
    {
        let perminfo = (*nsitem).p_perminfo;
        (*perminfo).requiredPerms = pg_sys::ACL_INSERT as pg_sys::AclMode;
        for att in pgrx::PgList::<i32>::from_pg(attnums).iter_int() {
            (*perminfo).insertedCols = pg_sys::bms_add_member(
                (*perminfo).insertedCols,
                att - pg_sys::FirstLowInvalidHeapAttributeNumber,
            );
        }
        let perminfos = pg_sys::lappend(std::ptr::null_mut(), perminfo.cast());
        pg_sys::ExecCheckPermissions((*pstate).p_rtable, perminfos, true);
    }
}

/// `LockHeldByMe` for exactly `mode` (not a stronger one).
///
/// PostgreSQL 15/16: `LockHeldByMe(tag, mode)`. 17+: a third argument,
/// `orstronger`; false keeps the 15/16 meaning.
///
/// # Safety
/// A lookup in this backend's local lock table.
pub unsafe fn lock_held_by_me(tag: &pg_sys::LOCKTAG, mode: pg_sys::LOCKMODE) -> bool {
    #[cfg(any(feature = "pg15", feature = "pg16"))]
    {
        pg_sys::LockHeldByMe(tag, mode)
    }
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    {
        pg_sys::LockHeldByMe(tag, mode, false)
    }
}

/// The attribute `i` (0-based) of a tuple descriptor, copied.
///
/// PostgreSQL 15-17: the `attrs` array of the descriptor. 18: the
/// descriptor starts with `compact_attrs` and the full attributes follow
/// them; `TupleDescAttr` (a static inline, which pgrx binds for 18) finds
/// them.
///
/// # Safety
/// `desc` a valid descriptor and `i < natts`.
pub unsafe fn tupdesc_attr(desc: pg_sys::TupleDesc, i: usize) -> pg_sys::FormData_pg_attribute {
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17"))]
    {
        (*desc).attrs.as_slice((*desc).natts as usize)[i]
    }
    #[cfg(feature = "pg18")]
    {
        assert!(i < (*desc).natts as usize);
        *pg_sys::TupleDescAttr(desc, i as std::ffi::c_int)
    }
}

/// This backend's cancel key as the 32-bit number the protocol 3.0
/// BackendKeyData message carries (what the router reads and signs into
/// context tokens), or None when the key is longer.
///
/// PostgreSQL 15-17: `MyCancelKey` is an int32. 18: `MyCancelKey` is a
/// byte array of `MyCancelKeyLength` bytes, sent as they are: 4 bytes for
/// protocol 3.0 clients (read here big-endian, as the message carries
/// them), 32 for protocol 3.2, which context tokens cannot name.
///
/// # Safety
/// In a backend, after startup set the key.
pub unsafe fn cancel_key() -> Option<i32> {
    #[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17"))]
    {
        Some(pg_sys::MyCancelKey)
    }
    #[cfg(feature = "pg18")]
    {
        if pg_sys::MyCancelKeyLength != 4 {
            return None;
        }
        let key = std::ptr::addr_of!(pg_sys::MyCancelKey) as *const [u8; 4];
        Some(i32::from_be_bytes(*key))
    }
}

/// A query for the statement that stops role `$1` inheriting the privileges
/// of role `$2` (both oids as int8), as `tenant._inherit_fix` words it in
/// audit(); kept here, not called, so a 0.8.0 library refuses with the
/// right advice before `ALTER EXTENSION pg_tenant UPDATE` made that function.
///
/// PostgreSQL 15: inheritance belongs to the member: `ALTER ROLE … NOINHERIT`.
/// 16+: it belongs to each grant (`pg_auth_members.inherit_option`);
/// `ALTER ROLE … NOINHERIT` only sets the default for later grants, so the
/// fix is `GRANT … WITH INHERIT FALSE` on the member's inheriting grant
/// that leads to the role (the direct one when there is one).
pub const INHERIT_FIX_QUERY: &str = {
    #[cfg(feature = "pg15")]
    {
        "SELECT pg_catalog.format('ALTER ROLE %s NOINHERIT', pg_catalog.quote_ident(m.rolname)) \
         FROM pg_catalog.pg_roles m, pg_catalog.pg_roles t \
         WHERE m.oid OPERATOR(pg_catalog.=) $1::pg_catalog.int8::pg_catalog.oid \
           AND t.oid OPERATOR(pg_catalog.=) $2::pg_catalog.int8::pg_catalog.oid"
    }
    #[cfg(any(feature = "pg16", feature = "pg17", feature = "pg18"))]
    {
        "SELECT pg_catalog.format('GRANT %s TO %s WITH INHERIT FALSE (PostgreSQL 16+: inheritance is set per grant, ALTER ROLE NOINHERIT only changes later grants)', \
           pg_catalog.quote_ident(coalesce( \
             (SELECT g.rolname FROM pg_catalog.pg_auth_members a \
                JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.roleid \
               WHERE a.member OPERATOR(pg_catalog.=) m.oid AND a.inherit_option \
                 AND (a.roleid OPERATOR(pg_catalog.=) t.oid OR pg_catalog.pg_has_role(a.roleid, t.oid, 'USAGE')) \
               ORDER BY a.roleid OPERATOR(pg_catalog.<>) t.oid, g.rolname LIMIT 1), \
             t.rolname)), \
           pg_catalog.quote_ident(m.rolname)) \
         FROM pg_catalog.pg_roles m, pg_catalog.pg_roles t \
         WHERE m.oid OPERATOR(pg_catalog.=) $1::pg_catalog.int8::pg_catalog.oid \
           AND t.oid OPERATOR(pg_catalog.=) $2::pg_catalog.int8::pg_catalog.oid"
    }
};
