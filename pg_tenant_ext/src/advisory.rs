//! Tenant-scoped advisory locks: `tenant.advisory_lock(key bigint)` and
//! friends, named like PostgreSQL's `pg_advisory_*` functions, which are
//! refused to confined sessions (`confine`).
//!
//! Why not namespace the raw functions transparently: a lock tag holds 112
//! bits (database 32, key 64, form 16), so a tenant's 64-bit key space
//! cannot be mapped into it beside every other tenant's without
//! collisions. Instead each tenant has a number of its own in the catalog
//! (`tenant.tenants.lock_space`, unique, never reused) and its locks use
//! the lock tag `LOCKTAG_USERLOCK` (unused by PostgreSQL itself, so never
//! equal to a raw advisory lock) with (database, lock_space, key): no two
//! tenants ever share a lock. Keys from 0 to 2^48-1 are exact; a key
//! outside that range folds its top 16 bits into the form field, so two of
//! the tenant's own keys may then share a lock (never another tenant's).
//!
//! Budget: a session holds at most `max_advisory_locks` distinct advisory
//! locks (session and transaction level together; 0 = unlimited); one more
//! is refused with 53400, so no tenant can fill the shared lock table
//! (which holds `max_locks_per_transaction * (max_connections +
//! max_prepared_transactions)` locks for every session of every tenant).
//! Transaction-level locks are forgotten at the end of the top-level
//! transaction (one taken in a subtransaction that rolled back counts until
//! then), session-level ones when released, by `tenant.advisory_unlock_all()`
//! and by `DISCARD ALL`. Read-only tenants take no advisory locks (42501);
//! transaction-pooled tenants take only transaction-level ones (0A000).

use crate::state::{self, Backend, ContextState};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::RefCell;
use std::collections::HashMap;

/// Held locks: (key, shared) to how many times this session acquired it
/// (PostgreSQL counts every acquire: a lock taken twice is held until it
/// is released twice).
type Held = HashMap<(i64, bool), u32>;

/// Distinct locks held by this session: session-level and transaction-level.
static SESSION: Backend<RefCell<Option<Held>>> = Backend(RefCell::new(None));
static XACT: Backend<RefCell<Option<Held>>> = Backend(RefCell::new(None));

/// A session-level lock being acquired: (lock space, key, shared). When the
/// wait for it is cancelled (lock_timeout, statement_timeout, a cancel)
/// just as it is granted, PostgreSQL keeps the lock (`LockErrorCleanup`,
/// at abort) although `LockAcquire` raised an error; the abort callbacks
/// then count it if it is held.
static PENDING: Backend<std::cell::Cell<Option<(u32, i64, bool)>>> =
    Backend(std::cell::Cell::new(None));

fn refuse(code: PgSqlErrorCode, msg: String, hint: &str) -> ! {
    pg_sys::panic::ErrorReport::new(code, msg, "pg_tenant::advisory")
        .set_hint(hint)
        .report(pgrx::PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// A key as the tag's (field3, field4): the low 32 bits, and the high 32
/// folded into 16 (exact for keys from 0 to 2^48-1).
fn key_fields(key: i64) -> (u32, u16) {
    let bits = key as u64;
    let hi = (bits >> 32) as u32;
    (bits as u32, (hi ^ (hi >> 16)) as u16)
}

/// The lock tag of `key` in the tenant's lock space.
fn tag(lock_space: u32, key: i64) -> pg_sys::LOCKTAG {
    let (low, high) = key_fields(key);
    pg_sys::LOCKTAG {
        // SAFETY: set once at backend start.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: lock_space,
        locktag_field3: low,
        locktag_field4: high,
        locktag_type: pg_sys::LockTagType::LOCKTAG_USERLOCK as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

fn mode(shared: bool) -> pg_sys::LOCKMODE {
    (if shared {
        pg_sys::ShareLock
    } else {
        pg_sys::ExclusiveLock
    }) as pg_sys::LOCKMODE
}

/// The context a tenant-scoped lock needs, or a clear refusal.
fn tenant_state(session: bool) -> ContextState {
    let st = state::state();
    let Some(tenant) = state::tenant().filter(|_| st.active) else {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "tenant advisory locks need a tenant context: this session has none".into(),
            "Sessions without a tenant (operators, jobs) use pg_advisory_lock() and friends.",
        );
    };
    if st.read_only {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("tenant \"{tenant}\" is not allowed to take advisory locks: the tenant is read-only"),
            "Give the tenant read_only => false to let it take advisory locks.",
        );
    }
    // SAFETY: reads of backend globals.
    if unsafe { pg_sys::ParallelWorkerNumber >= 0 || pg_sys::IsInParallelMode() } {
        refuse(
            PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
            format!(
                "tenant \"{tenant}\" cannot take advisory locks during a parallel operation: each \
                 worker would hold locks past the session's budget"
            ),
            "Call tenant.advisory_* outside functions marked PARALLEL SAFE.",
        );
    }
    if session && crate::pool::transaction_pooled(&st) {
        crate::pool::refuse(
            "a session-level advisory lock",
            "Use tenant.advisory_xact_lock() or tenant.try_advisory_xact_lock() (released at the \
             end of the transaction), or give the tenant pool_mode session.",
        );
    }
    st
}

fn held_count() -> usize {
    let n = |h: &RefCell<Option<Held>>| h.borrow().as_ref().map_or(0, HashMap::len);
    n(&SESSION.0) + n(&XACT.0)
}

fn acquire(key: i64, shared: bool, session: bool, wait: bool) -> bool {
    let st = tenant_state(session);
    let list = if session { &SESSION.0 } else { &XACT.0 };
    let known = list
        .borrow()
        .as_ref()
        .is_some_and(|h| h.contains_key(&(key, shared)));
    let cap = st.budget.max_advisory_locks as usize;
    if !known && cap != 0 && held_count() >= cap {
        let tenant = state::tenant().unwrap_or_default();
        refuse(
            PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
            format!(
                "tenant \"{tenant}\" may hold at most {cap} advisory locks in a session \
                 (max_advisory_locks); this session holds {}",
                held_count()
            ),
            "Release locks (tenant.advisory_unlock, or end the transaction for the _xact_ forms), \
             or raise the tenant's max_advisory_locks.",
        );
    }
    let t = tag(st.budget.lock_space, key);
    // SAFETY: registers plain functions once per backend.
    unsafe { register_callbacks() };
    if session {
        PENDING.0.set(Some((st.budget.lock_space, key, shared)));
    }
    // SAFETY: a valid lock tag and mode; inside a transaction (SQL function).
    let got = unsafe { pg_sys::LockAcquire(&t, mode(shared), session, !wait) };
    PENDING.0.set(None);
    if got == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
        return false;
    }
    count(list, key, shared);
    true
}

fn count(list: &RefCell<Option<Held>>, key: i64, shared: bool) {
    *list
        .borrow_mut()
        .get_or_insert_with(Held::new)
        .entry((key, shared))
        .or_insert(0) += 1;
}

/// At a (sub)transaction abort, after PostgreSQL's `LockErrorCleanup`: a
/// session-level lock whose acquisition raised an error but that was
/// granted all the same is counted.
fn settle_pending() {
    if let Some((space, key, shared)) = PENDING.0.take() {
        let t = tag(space, key);
        // SAFETY: a lookup in this backend's local lock table.
        if unsafe { crate::compat::lock_held_by_me(&t, mode(shared)) } {
            count(&SESSION.0, key, shared);
        }
    }
}

fn release(key: i64, shared: bool) -> bool {
    let st = tenant_state(false);
    let t = tag(st.budget.lock_space, key);
    // SAFETY: as in acquire; warns (like pg_advisory_unlock) when not held.
    let released = unsafe { pg_sys::LockRelease(&t, mode(shared), true) };
    if released {
        if let Some(h) = SESSION.0.borrow_mut().as_mut() {
            if let Some(n) = h.get_mut(&(key, shared)) {
                *n -= 1;
                if *n == 0 {
                    h.remove(&(key, shared));
                }
            }
        }
    }
    released
}

static CALLBACKS: Backend<std::cell::Cell<bool>> = Backend(std::cell::Cell::new(false));

unsafe fn register_callbacks() {
    if !CALLBACKS.0.replace(true) {
        pg_sys::RegisterXactCallback(Some(at_xact_end), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(at_sub_abort), std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_sub_abort(
    event: pg_sys::SubXactEvent::Type,
    _mine: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        settle_pending();
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_xact_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT) {
        settle_pending();
    }
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PREPARE
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
    ) {
        if let Ok(mut h) = XACT.0.try_borrow_mut() {
            *h = None;
        }
    }
}

/// After a utility statement: `DISCARD ALL` released every session-level
/// advisory lock (PostgreSQL's `LockReleaseAll(USER_LOCKMETHOD, true)`).
///
/// # Safety
/// `node` is the utility statement ProcessUtility ran.
pub unsafe fn after_utility(node: *mut pg_sys::Node) {
    if !node.is_null()
        && (*node).type_ == pg_sys::NodeTag::T_DiscardStmt
        && (*(node as *mut pg_sys::DiscardStmt)).target == pg_sys::DiscardMode::DISCARD_ALL
    {
        *SESSION.0.borrow_mut() = None;
    }
}

/// Take the tenant's exclusive transaction-level advisory lock `key`
/// (waits); released at the end of the transaction. Errors: 42501 without
/// a tenant context or for a read-only tenant; 53400 past the tenant's
/// `max_advisory_locks`.
#[pg_extern(volatile, parallel_unsafe)]
fn advisory_xact_lock(key: i64) {
    acquire(key, false, false, true);
}

/// Like `tenant.advisory_xact_lock`, in share mode.
#[pg_extern(volatile, parallel_unsafe)]
fn advisory_xact_lock_shared(key: i64) {
    acquire(key, true, false, true);
}

/// Like `tenant.advisory_xact_lock`, without waiting: false when another
/// session of the tenant holds the lock.
#[pg_extern(volatile, parallel_unsafe)]
fn try_advisory_xact_lock(key: i64) -> bool {
    acquire(key, false, false, false)
}

/// Like `tenant.try_advisory_xact_lock`, in share mode.
#[pg_extern(volatile, parallel_unsafe)]
fn try_advisory_xact_lock_shared(key: i64) -> bool {
    acquire(key, true, false, false)
}

/// Take the tenant's exclusive session-level advisory lock `key` (waits),
/// held until `tenant.advisory_unlock(key)`, `tenant.advisory_unlock_all()`,
/// `DISCARD ALL` or the end of the session. Errors as
/// `tenant.advisory_xact_lock`, and 0A000 for a tenant pooled per
/// transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn advisory_lock(key: i64) {
    acquire(key, false, true, true);
}

/// Like `tenant.advisory_lock`, in share mode.
#[pg_extern(volatile, parallel_unsafe)]
fn advisory_lock_shared(key: i64) {
    acquire(key, true, true, true);
}

/// Like `tenant.advisory_lock`, without waiting: false when another session
/// of the tenant holds the lock.
#[pg_extern(volatile, parallel_unsafe)]
fn try_advisory_lock(key: i64) -> bool {
    acquire(key, false, true, false)
}

/// Like `tenant.try_advisory_lock`, in share mode.
#[pg_extern(volatile, parallel_unsafe)]
fn try_advisory_lock_shared(key: i64) -> bool {
    acquire(key, true, true, false)
}

/// Release the tenant's exclusive session-level advisory lock `key`: true
/// when it was held (else false, with a WARNING, like `pg_advisory_unlock`).
#[pg_extern(volatile, parallel_unsafe)]
fn advisory_unlock(key: i64) -> bool {
    release(key, false)
}

/// Like `tenant.advisory_unlock`, for a share-mode lock.
#[pg_extern(volatile, parallel_unsafe)]
fn advisory_unlock_shared(key: i64) -> bool {
    release(key, true)
}

/// Release every session-level advisory lock this session holds.
#[pg_extern(volatile, parallel_unsafe)]
fn advisory_unlock_all() {
    tenant_state(false);
    // SAFETY: releases this session's USER_LOCKMETHOD session locks (what
    // pg_advisory_unlock_all does).
    unsafe { pg_sys::LockReleaseSession(pg_sys::USER_LOCKMETHOD as pg_sys::LOCKMETHODID) };
    *SESSION.0.borrow_mut() = None;
}

#[cfg(test)]
mod tests {
    use super::key_fields;

    #[test]
    fn keys_below_2_pow_48_are_exact() {
        let mut seen = std::collections::HashSet::new();
        for key in [
            0i64,
            1,
            2,
            1 << 32,
            (1 << 32) + 1,
            (1 << 47) + 5,
            (1 << 48) - 1,
        ] {
            assert!(seen.insert(key_fields(key)), "{key} collided");
        }
        assert_eq!(key_fields(5), (5, 0));
        assert_eq!(key_fields((3 << 32) | 9), (9, 3));
    }
}
