//! The functions tenant sessions may not execute, and why (checked by
//! `confine`'s object access hook, where PostgreSQL checks EXECUTE).

use crate::state::ContextState;
use pgrx::pg_sys;

/// PostgreSQL's advisory lock functions, every form (tenants use the
/// tenant-scoped ones in `advisory`).
const RAW_ADVISORY: [u32; 21] = [
    pg_sys::F_PG_ADVISORY_LOCK_INT8,
    pg_sys::F_PG_ADVISORY_LOCK_INT4_INT4,
    pg_sys::F_PG_ADVISORY_LOCK_SHARED_INT8,
    pg_sys::F_PG_ADVISORY_LOCK_SHARED_INT4_INT4,
    pg_sys::F_PG_TRY_ADVISORY_LOCK_INT8,
    pg_sys::F_PG_TRY_ADVISORY_LOCK_INT4_INT4,
    pg_sys::F_PG_TRY_ADVISORY_LOCK_SHARED_INT8,
    pg_sys::F_PG_TRY_ADVISORY_LOCK_SHARED_INT4_INT4,
    pg_sys::F_PG_ADVISORY_XACT_LOCK_INT8,
    pg_sys::F_PG_ADVISORY_XACT_LOCK_INT4_INT4,
    pg_sys::F_PG_ADVISORY_XACT_LOCK_SHARED_INT8,
    pg_sys::F_PG_ADVISORY_XACT_LOCK_SHARED_INT4_INT4,
    pg_sys::F_PG_TRY_ADVISORY_XACT_LOCK_INT8,
    pg_sys::F_PG_TRY_ADVISORY_XACT_LOCK_INT4_INT4,
    pg_sys::F_PG_TRY_ADVISORY_XACT_LOCK_SHARED_INT8,
    pg_sys::F_PG_TRY_ADVISORY_XACT_LOCK_SHARED_INT4_INT4,
    pg_sys::F_PG_ADVISORY_UNLOCK_INT8,
    pg_sys::F_PG_ADVISORY_UNLOCK_INT4_INT4,
    pg_sys::F_PG_ADVISORY_UNLOCK_SHARED_INT8,
    pg_sys::F_PG_ADVISORY_UNLOCK_SHARED_INT4_INT4,
    pg_sys::F_PG_ADVISORY_UNLOCK_ALL,
];

/// Functions that advance or set a sequence (refused to read-only tenants).
const SEQUENCE_WRITES: [u32; 3] = [
    pg_sys::F_NEXTVAL,
    pg_sys::F_SETVAL_REGCLASS_INT8,
    pg_sys::F_SETVAL_REGCLASS_INT8_BOOL,
];

/// Why a function is out of reach of tenant sessions, if it is.
pub fn refused_function(oid: u32, st: &ContextState) -> Option<&'static str> {
    let sessions: &[u32] = &[
        pg_sys::F_PG_STAT_GET_ACTIVITY,
        pg_sys::F_PG_STAT_GET_BACKEND_ACTIVITY,
        pg_sys::F_PG_STAT_GET_BACKEND_ACTIVITY_START,
        pg_sys::F_PG_STAT_GET_BACKEND_XACT_START,
        pg_sys::F_PG_STAT_GET_BACKEND_START,
        pg_sys::F_PG_STAT_GET_BACKEND_WAIT_EVENT,
        pg_sys::F_PG_STAT_GET_BACKEND_WAIT_EVENT_TYPE,
        pg_sys::F_PG_STAT_GET_BACKEND_CLIENT_ADDR,
        pg_sys::F_PG_STAT_GET_BACKEND_CLIENT_PORT,
        pg_sys::F_PG_STAT_GET_PROGRESS_INFO,
        pg_sys::F_PG_LOCK_STATUS,
        pg_sys::F_PG_BLOCKING_PIDS,
        pg_sys::F_PG_SAFE_SNAPSHOT_BLOCKING_PIDS,
        pg_sys::F_PG_STAT_GET_BACKEND_IDSET,
        pg_sys::F_PG_STAT_GET_BACKEND_PID,
        pg_sys::F_PG_STAT_GET_BACKEND_DBID,
        pg_sys::F_PG_STAT_GET_BACKEND_USERID,
        pg_sys::F_PG_ISOLATION_TEST_SESSION_IS_BLOCKED,
    ];
    let signals: &[u32] = &[pg_sys::F_PG_CANCEL_BACKEND, pg_sys::F_PG_TERMINATE_BACKEND];
    let lo_read: &[u32] = &[
        pg_sys::F_LO_OPEN,
        pg_sys::F_LO_GET_OID.to_u32(),
        pg_sys::F_LO_GET_OID_INT8_INT4,
        pg_sys::F_LO_EXPORT,
    ];
    let lo_write: &[u32] = &[
        pg_sys::F_LO_CREAT,
        pg_sys::F_LO_CREATE,
        pg_sys::F_LO_UNLINK,
        pg_sys::F_LO_IMPORT_TEXT,
        pg_sys::F_LO_IMPORT_TEXT_OID.to_u32(),
        pg_sys::F_LO_FROM_BYTEA,
        pg_sys::F_LO_PUT,
        pg_sys::F_LOWRITE,
        pg_sys::F_LO_TRUNCATE,
        pg_sys::F_LO_TRUNCATE64,
    ];
    if RAW_ADVISORY.contains(&oid) {
        Some(
            "take raw advisory locks: pg_advisory_*() keys are one namespace for every tenant and \
             uncounted; use tenant.advisory_lock(), tenant.advisory_xact_lock() and friends \
             (the same names in schema tenant)",
        )
    } else if st.read_only && SEQUENCE_WRITES.contains(&oid) {
        Some("advance or set a sequence: the tenant is read-only")
    } else if sessions.contains(&oid) {
        Some("see other sessions: their activity is not visible to tenant sessions")
    } else if signals.contains(&oid) {
        Some("signal other sessions: tenant sessions cannot cancel or terminate backends")
    } else if oid == pg_sys::F_PG_NOTIFY {
        Some(
            "call pg_notify(): channels are namespaced per tenant; use NOTIFY or \
             tenant.notify(channel, payload)",
        )
    } else if (lo_read.contains(&oid) || lo_write.contains(&oid)) && !st.allow_large_objects {
        Some("use large objects: they are shared by all tenants (allow_large_objects is off)")
    } else if lo_write.contains(&oid) && st.read_only {
        Some("write large objects: the tenant is read-only")
    } else {
        None
    }
}
