//! The shared memory of pg_tenant (a leaf: it uses nothing else from this
//! crate): per-tenant connection counts for a fleet of routers and a
//! registry of which tenant each backend's context is. `fleet` is their SQL
//! surface and says what they are for.
//!
//! Requested from `_PG_init` (`shmem_request_hook`), laid out as a
//! header, `pg_tenant.fleet_max_tenants` tenant entries, then one entry
//! per PGPROC of a backend (`MaxBackends`), all under one LWLock (tranche
//! `pg_tenant_fleet`). Nothing raises an error while the lock is held.
//! This backend's own leases are kept here too (`LEASES`), so the exit
//! callback can give them back.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_guard;
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::atomic::{AtomicPtr, Ordering};

pub static FLEET_MAX_TENANTS: GucSetting<i32> = GucSetting::<i32>::new(4096);
pub const MAX_TENANTS_NAME: &CStr = c"pg_tenant.fleet_max_tenants";
const TRANCHE: &CStr = c"pg_tenant_fleet";
/// The longest tenant id (`^[a-z0-9][a-z0-9_-]{0,62}$`).
const ID_MAX: usize = 63;
/// The most one `fleet_restore` may set for a tenant.
pub const RESTORE_MAX: i32 = 1_000_000;

/// A tenant's count, or a backend's tenant (`n` is then its pid).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Entry {
    pub n: i64,
    len: u8,
    id: [u8; ID_MAX],
}

impl Entry {
    pub fn id(&self) -> &[u8] {
        &self.id[..(self.len as usize).min(ID_MAX)]
    }
    pub fn is(&self, id: &[u8]) -> bool {
        self.len != 0 && self.id() == id
    }
    pub fn free(&self) -> bool {
        self.len == 0
    }
    pub fn take(&mut self, id: &[u8], n: i64) {
        let l = id.len().min(ID_MAX);
        self.id[..l].copy_from_slice(&id[..l]);
        self.len = l as u8;
        self.n = n;
    }
    fn clear(&mut self) {
        self.len = 0;
        self.n = 0;
    }
}

#[repr(C)]
pub struct Header {
    lock: *mut pg_sys::LWLock,
    pub tenants: u32,
    pub backends: u32,
    /// Tenant entries ever used (scans stop there).
    pub high: u32,
}

pub static SHARED: AtomicPtr<Header> = AtomicPtr::new(std::ptr::null_mut());

fn size(tenants: usize, backends: usize) -> usize {
    std::mem::size_of::<Header>() + (tenants + backends) * std::mem::size_of::<Entry>()
}

thread_local! {
    /// The leases this backend holds, per tenant.
    pub static LEASES: RefCell<BTreeMap<String, i64>> = const { RefCell::new(BTreeMap::new()) };
    /// Whether the exit callback is registered in this process.
    static AT_EXIT: Cell<bool> = const { Cell::new(false) };
    /// Whether the exit callback has run: the registry entry is emptied for
    /// good. `before_shmem_exit` callbacks run last-registered first, so
    /// PostgreSQL's own (`ShutdownPostgres`, which rolls back an open
    /// transaction) runs after this one, and the rollback's assignment of
    /// `pg_tenant.tenant_id` must not fill the entry again.
    static EXITED: Cell<bool> = const { Cell::new(false) };
    /// What this backend's registry entry holds now ("" for none): only
    /// this backend writes its entry, so it knows without the lock, and
    /// a context set again to the same tenant (a pooled backend serving
    /// one tenant transaction after transaction) takes no lock at all.
    static NOTED: RefCell<String> = const { RefCell::new(String::new()) };
}

static mut PREV_REQUEST: pg_sys::shmem_request_hook_type = None;
static mut PREV_STARTUP: pg_sys::shmem_startup_hook_type = None;

/// Register the setting and request the shared memory. Called once, from
/// `_PG_init` while preloading.
///
/// # Safety
/// Only while preloading.
pub unsafe fn init() {
    GucRegistry::define_int_guc(
        MAX_TENANTS_NAME,
        c"Tenants whose connections pg_tenant can count for a fleet of routers at once.",
        c"Shared memory for tenant.fleet_acquire: 72 bytes per tenant. A lease for one more \
          tenant is refused. Needs a restart.",
        &FLEET_MAX_TENANTS,
        16,
        1_048_576,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    unsafe {
        PREV_REQUEST = pg_sys::shmem_request_hook;
        pg_sys::shmem_request_hook = Some(shmem_request);
        PREV_STARTUP = pg_sys::shmem_startup_hook;
        pg_sys::shmem_startup_hook = Some(shmem_startup);
    }
}

fn counts() -> (usize, usize) {
    // SAFETY: MaxBackends is set before shmem_request_hook runs.
    let backends = unsafe { pg_sys::MaxBackends }.max(1) as usize;
    (FLEET_MAX_TENANTS.get().max(16) as usize, backends)
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_request() {
    unsafe {
        if let Some(prev) = PREV_REQUEST {
            prev();
        }
        let (t, b) = counts();
        pg_sys::RequestAddinShmemSpace(size(t, b));
        pg_sys::RequestNamedLWLockTranche(TRANCHE.as_ptr(), 1);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn shmem_startup() {
    unsafe {
        if let Some(prev) = PREV_STARTUP {
            prev();
        }
        let (t, b) = counts();
        // AddinShmemInitLock.
        let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let h = pg_sys::ShmemInitStruct(c"pg_tenant fleet".as_ptr(), size(t, b), &mut found)
            .cast::<Header>();
        if !found {
            std::ptr::write_bytes(h.cast::<u8>(), 0, size(t, b));
            h.write(Header {
                lock: &raw mut (*pg_sys::GetNamedLWLockTranche(TRANCHE.as_ptr())).lock,
                tenants: t as u32,
                backends: b as u32,
                high: 0,
            });
        }
        SHARED.store(h, Ordering::Release);
        pg_sys::LWLockRelease(init_lock);
    }
}

/// The shared state, locked; what `f` does must not raise an error.
pub struct Locked {
    pub h: *mut Header,
}

impl Locked {
    pub fn tenants(&mut self) -> &mut [Entry] {
        // SAFETY: the header is followed by `tenants` entries; the lock is held.
        unsafe {
            let first = self.h.add(1).cast::<Entry>();
            std::slice::from_raw_parts_mut(first, (*self.h).tenants as usize)
        }
    }
    pub fn used(&mut self) -> &mut [Entry] {
        // SAFETY: as `tenants`.
        let high = unsafe { (*self.h).high } as usize;
        let all = self.tenants();
        let n = high.min(all.len());
        &mut all[..n]
    }
    pub fn backends(&mut self) -> &mut [Entry] {
        // SAFETY: the backends' entries follow the tenants'; the lock is held.
        unsafe {
            let first = self
                .h
                .add(1)
                .cast::<Entry>()
                .add((*self.h).tenants as usize);
            std::slice::from_raw_parts_mut(first, (*self.h).backends as usize)
        }
    }
    pub fn find(&mut self, id: &[u8]) -> Option<usize> {
        self.used().iter().position(|e| e.is(id))
    }
    /// A free entry for a new tenant (None: the table is full).
    pub fn slot(&mut self) -> Option<usize> {
        if let Some(i) = self.used().iter().position(Entry::free) {
            return Some(i);
        }
        // SAFETY: the lock is held.
        let (high, cap) = unsafe { ((*self.h).high, (*self.h).tenants) };
        if high < cap {
            // SAFETY: as above.
            unsafe { (*self.h).high = high + 1 };
            return Some(high as usize);
        }
        None
    }
    /// Add `delta` to the tenant's count (making its entry; freeing it at 0).
    pub fn add(&mut self, id: &[u8], delta: i64) {
        match self.find(id) {
            Some(i) => {
                let e = &mut self.tenants()[i];
                e.n = (e.n + delta).max(0);
                if e.n == 0 {
                    e.clear();
                }
            }
            None if delta > 0 => {
                if let Some(i) = self.slot() {
                    self.tenants()[i].take(id, delta);
                }
            }
            None => {}
        }
    }
}

pub fn with_lock<T>(exclusive: bool, f: impl FnOnce(&mut Locked) -> T) -> Option<T> {
    let h = SHARED.load(Ordering::Acquire);
    if h.is_null() {
        return None;
    }
    let mode = if exclusive {
        pg_sys::LWLockMode::LW_EXCLUSIVE
    } else {
        pg_sys::LWLockMode::LW_SHARED
    };
    // SAFETY: the lock lives in shared memory for the server's life; `f`
    // raises no error, so the lock is always released here.
    unsafe {
        let lock = (*h).lock;
        pg_sys::LWLockAcquire(lock, mode);
        let out = f(&mut Locked { h });
        pg_sys::LWLockRelease(lock);
        Some(out)
    }
}

/// This backend's entry in the registry (None outside a backend).
fn my_index() -> Option<usize> {
    // SAFETY: reads of process globals; allProcs is the PGPROC array.
    unsafe {
        if pg_sys::MyProc.is_null() || pg_sys::ProcGlobal.is_null() {
            return None;
        }
        let i = pg_sys::MyProc.offset_from((*pg_sys::ProcGlobal).allProcs);
        usize::try_from(i).ok()
    }
}

pub fn ensure_exit_callback() {
    if AT_EXIT.with(|c| c.replace(true)) {
        return;
    }
    // SAFETY: registers a #[pg_guard] callback for this process.
    unsafe { pg_sys::before_shmem_exit(Some(at_exit), pg_sys::Datum::from(0)) };
}

/// Give back every lease of this backend and empty its registry entry.
#[pg_guard]
unsafe extern "C-unwind" fn at_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    EXITED.with(|e| e.set(true));
    let held: Vec<(String, i64)> =
        LEASES.with(|l| std::mem::take(&mut *l.borrow_mut()).into_iter().collect());
    let me = my_index();
    let _ = with_lock(true, |s| {
        for (id, n) in &held {
            s.add(id.as_bytes(), -n);
        }
        if let Some(e) = me.and_then(|i| s.backends().get_mut(i)) {
            e.clear();
        }
    });
}

/// `pg_tenant.tenant_id` was assigned `id` ("" or None: no tenant): this
/// backend's registry entry follows. Called from the GUC's assign hook, so
/// it raises nothing.
pub fn note_tenant(id: Option<&str>) {
    if SHARED.load(Ordering::Acquire).is_null() || EXITED.with(Cell::get) {
        return;
    }
    let Some(i) = my_index() else { return };
    let id = id.unwrap_or("");
    if !id.is_empty() {
        ensure_exit_callback();
    }
    if NOTED.with(|n| *n.borrow() == id) {
        return;
    }
    // SAFETY: a process global.
    let pid = unsafe { pg_sys::MyProcPid } as i64;
    // The lock in shared mode: every backend writes only its own entry,
    // so writers never touch the same bytes and need not exclude each
    // other; readers of the registry (`tenant_backends`) and the exit
    // callback take it exclusively, so they see no entry half written.
    let _ = with_lock(false, |s| {
        if let Some(e) = s.backends().get_mut(i) {
            if id.is_empty() {
                e.clear();
            } else {
                e.take(id.as_bytes(), pid);
            }
        }
    });
    NOTED.with(|n| id.clone_into(&mut n.borrow_mut()));
}
