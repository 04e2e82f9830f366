//! Per-tenant budgets of what every tenant on a server shares, enforced
//! inside PostgreSQL so they hold whatever router, pool or driver a tenant
//! came through (catalog fields of `tenant.tenants`, defaults in
//! `tenant.defaults`; 0 = unlimited):
//!
//! | catalog field                    | PostgreSQL setting                    |
//! |----------------------------------|---------------------------------------|
//! | `statement_timeout_ms`           | `statement_timeout`                   |
//! | `idle_in_transaction_timeout_ms` | `idle_in_transaction_session_timeout` |
//! | `work_mem_kb`                    | `work_mem`                            |
//! | `maintenance_work_mem_kb`        | `maintenance_work_mem`                |
//! | `temp_file_limit_kb`             | `temp_file_limit`                     |
//! | `work_mem_kb` (as 8 kB blocks)   | `temp_buffers`                        |
//! | (fixed: 2, PostgreSQL's default) | `hash_mem_multiplier`                 |
//!
//! (`hash_mem_multiplier` scales `work_mem` for hash tables and
//! `temp_buffers` is memory for temporary tables, so both belong to the
//! memory ceiling; the multiplier's ceiling applies whenever `work_mem_kb`
//! has one.)
//!
//! Each is a ceiling. `set_context` lowers the session's value to it (a
//! timeout of 0, "none", becomes the ceiling) and lowers the value every
//! form of reset returns to (`RESET`, `RESET ALL`, `DISCARD ALL`,
//! `set_config(name, NULL, ...)`, `SET ... TO DEFAULT`): that reset value is
//! set with source `PGC_S_OVERRIDE`, which is not transactional, so no
//! rollback can lift it. A tenant may still lower a setting, or raise it up
//! to the ceiling; anything above (or "none") is refused by a check hook
//! wrapped around the setting's own, whatever path sets it (`SET`, `SET
//! LOCAL`, `set_config()`, a function's `SET` clause), with 42501 naming
//! the tenant, the setting and the ceiling. `clear_context` puts the reset
//! values back as they were before the first tenant of the backend.
//!
//! Hitting a bound gives PostgreSQL's own error, to that session only:
//! 57014 (statement timeout), FATAL 25P03 (idle in transaction), 53400
//! (temporary file size exceeds temp_file_limit).
//!
//! The budgets themselves are `state::Budget`, loaded by `set_context` into
//! the context state; `max_advisory_locks` and `lock_space` ride along there
//! for `advisory`.

use crate::state::{self, Backend, Budget};
use pgrx::{pg_sys, PgSqlErrorCode};
use std::cell::Cell;
use std::ffi::{c_void, CStr, CString};

/// One governed setting.
struct Ceiling {
    guc: &'static CStr,
    /// The catalog field that holds the ceiling.
    field: &'static str,
    unit: &'static str,
    /// The field's value per unit of the setting (8 for a setting in 8 kB
    /// blocks bounded by a field in kB).
    per_unit: u32,
    /// The setting's value that means "no limit" (0 for the timeouts, -1
    /// for temp_file_limit; work_mem has none).
    unlimited: Option<i32>,
    of: fn(&Budget) -> u32,
}

const CEILINGS: [Ceiling; 6] = [
    Ceiling {
        guc: c"statement_timeout",
        field: "statement_timeout_ms",
        unit: "ms",
        per_unit: 1,
        unlimited: Some(0),
        of: |b| b.statement_timeout_ms,
    },
    Ceiling {
        guc: c"idle_in_transaction_session_timeout",
        field: "idle_in_transaction_timeout_ms",
        unit: "ms",
        per_unit: 1,
        unlimited: Some(0),
        of: |b| b.idle_in_transaction_timeout_ms,
    },
    Ceiling {
        guc: c"work_mem",
        field: "work_mem_kb",
        unit: "kB",
        per_unit: 1,
        unlimited: None,
        of: |b| b.work_mem_kb,
    },
    Ceiling {
        guc: c"maintenance_work_mem",
        field: "maintenance_work_mem_kb",
        unit: "kB",
        per_unit: 1,
        unlimited: None,
        of: |b| b.maintenance_work_mem_kb,
    },
    Ceiling {
        guc: c"temp_file_limit",
        field: "temp_file_limit_kb",
        unit: "kB",
        per_unit: 1,
        unlimited: Some(-1),
        of: |b| b.temp_file_limit_kb,
    },
    Ceiling {
        guc: c"temp_buffers",
        field: "work_mem_kb",
        unit: "8kB blocks",
        per_unit: 8,
        unlimited: None,
        of: |b| b.work_mem_kb,
    },
];

/// Setting `i`'s ceiling in the setting's own units (0: none), never below
/// the setting's minimum (`min`).
fn ceiling_of(i: usize, budget: &Budget, min: i32) -> u32 {
    let c = &CEILINGS[i];
    let field = (c.of)(budget);
    if field == 0 {
        return 0;
    }
    (field / c.per_unit)
        .max(u32::try_from(min).unwrap_or(0))
        .max(1)
}

/// Whether `value` of setting `i` is within `ceiling` (0: no ceiling).
fn within(i: usize, value: i32, ceiling: u32) -> bool {
    ceiling == 0 || (Some(value) != CEILINGS[i].unlimited && i64::from(value) <= i64::from(ceiling))
}

/// `value` lowered to `ceiling` where it is above it (or unlimited).
fn clamp(i: usize, value: i32, ceiling: u32) -> i32 {
    if within(i, value, ceiling) {
        value
    } else {
        i32::try_from(ceiling).unwrap_or(i32::MAX)
    }
}

/// The settings' records (found once, at preload) and their previous check hooks.
static mut RECORDS: [*mut pg_sys::config_int; 6] = [std::ptr::null_mut(); 6];
static mut PREV_CHECK: [pg_sys::GucIntCheckHook; 6] = [None; 6];

/// Per setting: the reset value before the first tenant of this backend
/// lowered it (None: never lowered).
static ORIGINAL_RESET: Backend<[Cell<Option<i32>>; 6]> = Backend([
    Cell::new(None),
    Cell::new(None),
    Cell::new(None),
    Cell::new(None),
    Cell::new(None),
    Cell::new(None),
]);

/// Wrap the check hooks of the governed settings.
///
/// # Safety
/// Call once, from `_PG_init` while shared_preload_libraries load.
pub unsafe fn init() {
    let hooks: [pg_sys::GucIntCheckHook; 6] = [
        Some(check0),
        Some(check1),
        Some(check2),
        Some(check3),
        Some(check4),
        Some(check5),
    ];
    crate::compat::for_each_guc(|g| {
        if g.is_null() {
            return;
        }
        let name = CStr::from_ptr((*g).name);
        if (*g).vartype == pg_sys::config_type::PGC_REAL && name == HASH_MEM {
            let rec = g as *mut pg_sys::config_real;
            HASH_RECORD = rec;
            PREV_HASH_CHECK = (*rec).check_hook;
            (*rec).check_hook = Some(check_hash_mem);
            return;
        }
        if (*g).vartype != pg_sys::config_type::PGC_INT {
            return;
        }
        if let Some(k) = CEILINGS.iter().position(|c| c.guc == name) {
            let rec = g as *mut pg_sys::config_int;
            RECORDS[k] = rec;
            PREV_CHECK[k] = (*rec).check_hook;
            (*rec).check_hook = hooks[k];
        }
    });
}

/// Set a setting with superuser context from `source`; `quiet`: a refusal
/// (PostgreSQL's own check, e.g. `temp_buffers` once temporary tables were
/// used) is only logged at DEBUG1.
fn set_setting(name: &CStr, value: impl ToString, source: pg_sys::GucSource::Type, quiet: bool) {
    let value = CString::new(value.to_string()).unwrap_or_default();
    // SAFETY: NUL-terminated strings that live across the call.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            source,
            pg_sys::GucAction::GUC_ACTION_SET,
            true,
            if quiet {
                pg_sys::DEBUG1 as i32
            } else {
                pg_sys::PGERROR as i32
            },
            false,
        );
    }
}

/// Bring the session's settings within `budget` (all zero: put the reset
/// values back as they were). Called by `set_context` after the new state
/// is stored (so the check hooks already judge by it) and by
/// `clear_context` after it is cleared.
pub fn apply(budget: &Budget) {
    for (i, c) in CEILINGS.iter().enumerate() {
        // SAFETY: records found at preload; read in this backend only.
        let rec = unsafe { RECORDS[i] };
        if rec.is_null() {
            continue;
        }
        // SAFETY: as above.
        let ceiling = ceiling_of(i, budget, unsafe { (*rec).min });
        let saved = &ORIGINAL_RESET.0[i];
        // temp_buffers cannot change once the session used temporary
        // tables: what it allocated then stays, and is all it gets.
        let quiet = c.guc == c"temp_buffers";
        // SAFETY: as above.
        let reset = unsafe { (*rec).reset_val };
        let original = saved.get().unwrap_or(reset);
        let want_reset = clamp(i, original, ceiling);
        if want_reset != reset {
            if saved.get().is_none() {
                saved.set(Some(reset));
            }
            // Not transactional (a reset value): no rollback lifts it.
            set_setting(c.guc, want_reset, pg_sys::GucSource::PGC_S_OVERRIDE, quiet);
        }
        // SAFETY: as above.
        let current = unsafe { *(*rec).variable };
        let want = clamp(i, current, ceiling);
        if want != current {
            set_setting(c.guc, want, pg_sys::GucSource::PGC_S_SESSION, quiet);
        }
    }
    apply_hash_mem(budget.work_mem_kb != 0);
}

/// The check hook of setting `i`: within a tenant context, a value above
/// the tenant's ceiling is refused (42501), whatever sets it.
unsafe fn check(
    i: usize,
    newval: *mut i32,
    extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let st = state::state();
    let min = if RECORDS[i].is_null() {
        0
    } else {
        (*RECORDS[i]).min
    };
    let ceiling = ceiling_of(i, &st.budget, min);
    // A parallel worker restoring its leader's settings is exempt (they were
    // checked in the leader); a function's SET clause run in a worker is not.
    let worker = pg_sys::InitializingParallelWorker;
    if st.active && !worker && !newval.is_null() && !within(i, *newval, ceiling) {
        let c = &CEILINGS[i];
        let tenant = state::tenant().unwrap_or_default();
        let what = if Some(*newval) == c.unlimited {
            "no limit".to_string()
        } else {
            format!("{} {}", *newval, c.unit)
        };
        let msg = CString::new(format!(
            "tenant \"{tenant}\" may not set {} to {what}: its ceiling is {ceiling} {} ({} in tenant.tenants)",
            c.guc.to_string_lossy(),
            c.unit,
            c.field
        ))
        .unwrap_or_default();
        pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(msg.as_ptr());
        return false;
    }
    match PREV_CHECK[i] {
        Some(prev) => prev(newval, extra, source),
        None => true,
    }
}

macro_rules! check_hook {
    ($name:ident, $i:expr) => {
        #[pgrx::pg_guard]
        unsafe extern "C-unwind" fn $name(
            newval: *mut i32,
            extra: *mut *mut c_void,
            source: pg_sys::GucSource::Type,
        ) -> bool {
            check($i, newval, extra, source)
        }
    };
}
check_hook!(check0, 0);
check_hook!(check1, 1);
check_hook!(check2, 2);
check_hook!(check3, 3);
check_hook!(check4, 4);
check_hook!(check5, 5);

/// `hash_mem_multiplier`: at most PostgreSQL's default (2) in a tenant
/// context whose `work_mem` has a ceiling (hash tables may use `work_mem`
/// times this).
const HASH_MEM: &CStr = c"hash_mem_multiplier";
const HASH_MEM_CEILING: f64 = 2.0;
static mut HASH_RECORD: *mut pg_sys::config_real = std::ptr::null_mut();
static mut PREV_HASH_CHECK: pg_sys::GucRealCheckHook = None;
static ORIGINAL_HASH_RESET: Backend<Cell<Option<f64>>> = Backend(Cell::new(None));

/// The multiplier's reset and current values within its ceiling
/// (`bounded`), or the reset value back as it was.
fn apply_hash_mem(bounded: bool) {
    // SAFETY: the record found at preload; this backend only.
    let rec = unsafe { HASH_RECORD };
    if rec.is_null() {
        return;
    }
    let saved = &ORIGINAL_HASH_RESET.0;
    // SAFETY: as above.
    let reset = unsafe { (*rec).reset_val };
    let original = saved.get().unwrap_or(reset);
    let want_reset = if bounded {
        original.min(HASH_MEM_CEILING)
    } else {
        original
    };
    if want_reset != reset {
        if saved.get().is_none() {
            saved.set(Some(reset));
        }
        set_setting(
            HASH_MEM,
            want_reset,
            pg_sys::GucSource::PGC_S_OVERRIDE,
            false,
        );
    }
    // SAFETY: as above.
    let current = unsafe { *(*rec).variable };
    if bounded && current > HASH_MEM_CEILING {
        set_setting(
            HASH_MEM,
            HASH_MEM_CEILING,
            pg_sys::GucSource::PGC_S_SESSION,
            false,
        );
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn check_hash_mem(
    newval: *mut f64,
    extra: *mut *mut c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    let st = state::state();
    // A parallel worker restoring its leader's settings is exempt (they were
    // checked in the leader); a function's SET clause run in a worker is not.
    let worker = pg_sys::InitializingParallelWorker;
    if st.active
        && !worker
        && st.budget.work_mem_kb != 0
        && !newval.is_null()
        && *newval > HASH_MEM_CEILING
    {
        let tenant = state::tenant().unwrap_or_default();
        let msg = CString::new(format!(
            "tenant \"{tenant}\" may not set hash_mem_multiplier to {}: its ceiling is \
             {HASH_MEM_CEILING} (hash tables may use work_mem times this; the tenant's work_mem \
             has a ceiling, work_mem_kb in tenant.tenants)",
            *newval
        ))
        .unwrap_or_default();
        pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
        pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(msg.as_ptr());
        return false;
    }
    match PREV_HASH_CHECK {
        Some(prev) => prev(newval, extra, source),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_values_are_clamped_to_the_ceiling() {
        // statement_timeout: 0 means none.
        assert_eq!(clamp(0, 0, 300_000), 300_000);
        assert_eq!(clamp(0, 1_000, 300_000), 1_000);
        assert_eq!(clamp(0, 400_000, 300_000), 300_000);
        assert_eq!(clamp(0, 0, 0), 0);
        // temp_file_limit: -1 means none.
        assert_eq!(clamp(4, -1, 1024), 1024);
        assert_eq!(clamp(4, 0, 1024), 0);
        // work_mem has no "none".
        assert_eq!(clamp(2, 4096, 65536), 4096);
        assert_eq!(clamp(2, 131072, 65536), 65536);
    }
}
