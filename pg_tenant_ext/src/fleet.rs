//! Limits across several routers (docs/src/scaling-out/index.md,
//! docs/src/scaling-out/several-routers.md): per-tenant connection counts kept in this server's shared
//! memory, where every router meets (each one keeps a connection to the
//! catalog database), and a registry of which tenant each backend's
//! context is.
//!
//! * Leases. `tenant.fleet_acquire(id, max)` counts one connection of the
//!   tenant if fewer than `max` are counted, `tenant.fleet_release(id)`
//!   gives one back, `tenant.fleet_restore(ids, counts)` sets what this
//!   backend holds (a router re-claiming its connections after its lease
//!   connection was lost; it may exceed the tenant's limit: those clients
//!   are connected already). A lease belongs to the backend that took it:
//!   no backend can give back another's, and a backend that exits (its
//!   router closed the connection, or died and the kernel closed it) gives
//!   all of its leases back (a `before_shmem_exit` callback). Leases are
//!   not transactional. `tenant.fleet_counts()` shows the counts.
//!   Granted to `tenant_router`; refused (42501) in a tenant session.
//! * The table holds `pg_tenant.fleet_max_tenants` tenants with at least
//!   one lease (PGC_POSTMASTER, default 4096, 72 bytes each); a lease for
//!   one more is refused with 53400 and the setting's name, and nothing
//!   already counted changes. A tenant whose count drops to 0 frees its
//!   entry.
//! * Backends. Whenever `pg_tenant.tenant_id` is assigned (set_context,
//!   set_context_sealed, clear_context, the end of a transaction that rolls
//!   it back, a parallel worker restoring it), this backend's entry in the
//!   registry (one per PGPROC) follows; at exit it is emptied.
//!   `tenant.tenant_backends(id)` lists the pids whose context is that
//!   tenant (superusers only), for ending a moved tenant's sessions.
//!
//! The shared memory itself, and this backend's leases, are `shmem`'s.

use crate::context::{check_tenant_id, require_preloaded};
use crate::report::{printable, refuse};
use crate::shmem::{
    ensure_exit_callback, with_lock, FLEET_MAX_TENANTS, LEASES, RESTORE_MAX, SHARED,
};
use crate::state;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// What every fleet function checks first: preloaded, no tenant context
/// in this session (a tenant never takes, gives back or reads leases,
/// whatever it was granted).
fn guard(what: &str) {
    require_preloaded();
    if let Some(t) = state::tenant() {
        refuse(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("permission denied for {what}: this session has the context of tenant \"{t}\""),
        );
    }
    if SHARED.load(Ordering::Acquire).is_null() {
        refuse(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "pg_tenant's shared memory is not set up: add pg_tenant to shared_preload_libraries and restart".into(),
        );
    }
}

fn full() -> ! {
    refuse(
        PgSqlErrorCode::ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
        format!(
            "pg_tenant.fleet_max_tenants ({}) tenants already hold connection leases: raise it (needs a restart)",
            FLEET_MAX_TENANTS.get()
        ),
    );
}

/// Count one connection of `id` if fewer than `max` (> 0) are counted:
/// true, and the lease is this backend's until `fleet_release` or its
/// exit; false when `max` are counted. Errors: 22023 for a malformed id
/// or `max` < 1; 53400 when `pg_tenant.fleet_max_tenants` other tenants
/// hold leases; 42501 in a tenant session.
#[pg_extern(volatile, parallel_unsafe)]
fn fleet_acquire(id: &str, max: i32) -> bool {
    guard("tenant.fleet_acquire");
    check_tenant_id(id);
    if max < 1 {
        refuse(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("max must be at least 1 (not {max}): a tenant without a connection limit needs no lease"),
        );
    }
    ensure_exit_callback();
    let got = with_lock(true, |s| match s.find(id.as_bytes()) {
        Some(i) => {
            let e = &mut s.tenants()[i];
            if e.n >= max as i64 {
                Some(false)
            } else {
                e.n += 1;
                Some(true)
            }
        }
        None => s.slot().map(|i| {
            s.tenants()[i].take(id.as_bytes(), 1);
            true
        }),
    })
    .flatten();
    match got {
        None => full(),
        Some(true) => {
            LEASES.with(|l| *l.borrow_mut().entry(id.to_owned()).or_insert(0) += 1);
            true
        }
        Some(false) => false,
    }
}

/// Give back one of this backend's leases of `id`: true, or false when it
/// holds none (another backend's leases are never touched). Errors like
/// `fleet_acquire`.
#[pg_extern(volatile, parallel_unsafe)]
fn fleet_release(id: &str) -> bool {
    guard("tenant.fleet_release");
    check_tenant_id(id);
    let held = LEASES.with(|l| l.borrow().get(id).copied().unwrap_or(0));
    if held <= 0 {
        return false;
    }
    let _ = with_lock(true, |s| s.add(id.as_bytes(), -1));
    LEASES.with(|l| {
        let mut l = l.borrow_mut();
        if held == 1 {
            l.remove(id);
        } else {
            l.insert(id.to_owned(), held - 1);
        }
    });
    true
}

/// Make this backend hold exactly `counts[i]` leases of `ids[i]` (0 gives
/// them back), whatever the tenants' limits: what a router that lost its
/// lease connection re-claims for the clients it still has. All or
/// nothing. Returns the leases this backend holds in all. Errors: 22023
/// for arrays of different lengths, NULLs, a malformed or repeated id, a
/// count below 0 or above 1000000; 53400 when the table has no room for
/// the new tenants; 42501 in a tenant session.
#[pg_extern(volatile, parallel_unsafe)]
fn fleet_restore(ids: Vec<Option<String>>, counts: Vec<Option<i32>>) -> i64 {
    guard("tenant.fleet_restore");
    let bad = |m: String| -> ! { refuse(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, m) };
    if ids.len() != counts.len() {
        bad(format!(
            "ids and counts differ in length ({} and {})",
            ids.len(),
            counts.len()
        ));
    }
    let mut want: BTreeMap<String, i64> = BTreeMap::new();
    for (id, n) in ids.into_iter().zip(counts) {
        let (Some(id), Some(n)) = (id, n) else {
            bad("ids and counts must not hold NULLs".into())
        };
        check_tenant_id(&id);
        if !(0..=RESTORE_MAX).contains(&n) {
            bad(format!(
                "count {n} for tenant \"{}\" is not between 0 and {RESTORE_MAX}",
                printable(&id)
            ));
        }
        if want.insert(id.clone(), n as i64).is_some() {
            bad(format!("tenant \"{id}\" is named twice"));
        }
    }
    ensure_exit_callback();
    let held: BTreeMap<String, i64> = LEASES.with(|l| l.borrow().clone());
    let done = with_lock(true, |s| {
        let deltas: Vec<(&String, i64)> = want
            .iter()
            .map(|(id, n)| (id, n - held.get(id).copied().unwrap_or(0)))
            .filter(|(_, d)| *d != 0)
            .collect();
        // Room first: every tenant that needs a new entry must get one;
        // entries this restore empties count as room (they go first).
        let mut new = 0;
        let mut freed = 0;
        for (id, d) in &deltas {
            match s.find(id.as_bytes()) {
                None if *d > 0 => new += 1,
                Some(i) if s.tenants()[i].n + d <= 0 => freed += 1,
                _ => {}
            }
        }
        let free = s.used().iter().filter(|e| e.free()).count()
            // SAFETY: the lock is held.
            + unsafe { ((*s.h).tenants - (*s.h).high) as usize };
        if new > free + freed {
            return false;
        }
        for (id, d) in deltas.iter().filter(|(_, d)| *d < 0) {
            s.add(id.as_bytes(), *d);
        }
        for (id, d) in deltas.iter().filter(|(_, d)| *d > 0) {
            s.add(id.as_bytes(), *d);
        }
        true
    })
    .unwrap_or(false);
    if !done {
        full();
    }
    LEASES.with(|l| {
        let mut l = l.borrow_mut();
        for (id, n) in want {
            if n == 0 {
                l.remove(&id);
            } else {
                l.insert(id, n);
            }
        }
        l.values().sum()
    })
}

/// Every tenant with leases: its connections counted on this server (by
/// all backends) and how many of them this backend holds. Granted to
/// `tenant_router`; 42501 in a tenant session.
#[pg_extern(volatile, parallel_unsafe)]
fn fleet_counts() -> TableIterator<
    'static,
    (
        name!(tenant, String),
        name!(connections, i64),
        name!(held_here, i64),
    ),
> {
    guard("tenant.fleet_counts");
    let rows: Vec<(String, i64)> = with_lock(false, |s| {
        s.used()
            .iter()
            .filter(|e| !e.free())
            .map(|e| (String::from_utf8_lossy(e.id()).into_owned(), e.n))
            .collect()
    })
    .unwrap_or_default();
    let held: BTreeMap<String, i64> = LEASES.with(|l| l.borrow().clone());
    let mut rows: Vec<_> = rows
        .into_iter()
        .map(|(t, n)| {
            let h = held.get(&t).copied().unwrap_or(0);
            (t, n, h)
        })
        .collect();
    rows.sort();
    TableIterator::new(rows)
}

/// The pids of the backends whose context is tenant `id` (parallel
/// workers included), in no order. Superusers only (EXECUTE is granted to
/// no one); 42501 in a tenant session, 22023 for a malformed id.
#[pg_extern(volatile, parallel_unsafe)]
fn tenant_backends(id: &str) -> SetOfIterator<'static, i32> {
    guard("tenant.tenant_backends");
    check_tenant_id(id);
    // Exclusively: backends write their own entries under the shared lock.
    let pids: Vec<i32> = with_lock(true, |s| {
        s.backends()
            .iter()
            .filter(|e| e.is(id.as_bytes()))
            .map(|e| e.n as i32)
            .collect()
    })
    .unwrap_or_default();
    SetOfIterator::new(pids)
}
