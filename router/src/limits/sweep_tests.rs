use super::*;
use crate::catalog::TenantInfo;
use crate::interrupt::Interrupt;
use crate::limits::{Limits, TenantCounters};
use crate::metrics::tenant::now_ms;
use crate::metrics::MetricsSettings;

/// Limits whose tenants are idle after `idle_ms`.
fn limits(settings: MetricsSettings) -> Limits {
    let l = Limits::default();
    l.metrics.configure(&settings);
    l
}

fn idle_after(ms: u64) -> MetricsSettings {
    MetricsSettings {
        tenant_idle_ms: ms,
        ..Default::default()
    }
}

fn info(id: &str) -> TenantInfo {
    TenantInfo {
        qps_limit: 100,
        ..TenantInfo::for_test(id)
    }
}

#[test]
fn idle_tenants_are_dropped_and_held_ones_never() {
    let l = limits(idle_after(10_000));
    let t0 = now_ms();
    l.counters("gone").metrics.statement();
    let held = l.counters("held");
    let slot = l.acquire_connection("slot", 0).expect("a slot");
    let s = l.sweep(t0 + 5_000);
    assert_eq!((s.examined, s.dropped), (3, 0), "not idle long enough");
    let s = l.sweep(t0 + 20_000);
    assert_eq!(s.dropped, 1);
    assert!(l.get("gone").is_none());
    assert!(l.get("held").is_some_and(|c| Arc::ptr_eq(&c, &held)));
    assert_eq!(l.counters("slot").active(), 1);
    // Back on its next use, from zero.
    assert_eq!(l.counters("gone").metrics.statements(), 0);
    // Released, they become idle from when they were last seen in use.
    // Released: "held" was last used when it was taken (holding it is no
    // use), "slot" when its connection was last seen open.
    drop((held, slot));
    assert_eq!(l.sweep(t0 + 25_000).dropped, 2, "\"gone\" again, \"held\"");
    assert_eq!(l.sweep(t0 + 29_000).dropped, 0, "a connection at t0 + 20 s");
    assert_eq!(l.sweep(t0 + 30_000).dropped, 1);
    assert!(l.is_empty());
    assert_eq!(
        l.metrics.totals().dropped_idle.load(Ordering::Relaxed),
        4,
        "counted"
    );
}

#[test]
fn one_tick_looks_at_a_bounded_batch() {
    let l = limits(idle_after(1));
    for i in 0..(2 * BATCH + 100) {
        l.counters(&format!("t{i}"));
    }
    let later = now_ms() + 1_000;
    let s = l.sweep(later);
    assert_eq!((s.examined, s.dropped), (BATCH, BATCH));
    assert_eq!(l.sweep(later).dropped, BATCH);
    assert_eq!(l.sweep(later).dropped, 100);
    assert!(l.is_empty());
    assert_eq!(l.sweep(later).examined, 0);
}

#[test]
fn a_session_always_counts_into_the_entry_the_map_has() {
    let l = Arc::new(limits(idle_after(1)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|s| {
        let sweeper = {
            let (l, stop) = (l.clone(), stop.clone());
            s.spawn(move || {
                let mut ticks = 0;
                while !stop.load(Ordering::Relaxed) {
                    l.sweep(now_ms() + 1_000);
                    ticks += 1;
                }
                ticks
            })
        };
        let sessions: Vec<_> = (0..2)
            .map(|_| {
                let l = l.clone();
                s.spawn(move || {
                    for _ in 0..20_000 {
                        let c = l.counters("t");
                        let slot = l.acquire_connection("t", 0).expect("slot");
                        let now = l.get("t").expect("held: still in the map");
                        assert!(Arc::ptr_eq(&c, &now), "a session's counters left the map");
                        assert!(Arc::ptr_eq(&l.counters("t"), &c));
                        drop(slot);
                    }
                })
            })
            .collect();
        for h in sessions {
            h.join().expect("no session saw a removed entry");
        }
        stop.store(true, Ordering::Relaxed);
        assert!(
            sweeper.join().expect("sweeper") > 0,
            "the sweep ran meanwhile"
        );
    });
}

#[test]
fn places_go_to_the_busiest_and_named_tenants_keep_theirs() {
    let l = limits(MetricsSettings {
        histogram_tenants: vec!["named".into()],
        histogram_top_n: 2,
        histogram_reassign_ms: 1_000,
        ..Default::default()
    });
    let c = |id: &str| l.counters(id);
    let named = c("named");
    let (a, b, busy, busier) = (c("a"), c("b"), c("busy"), c("busier"));
    // a and b take the two free places with their first statements.
    for t in [&a, &b, &busy, &busier] {
        t.metrics.statement();
        t.metrics.observe(std::time::Duration::from_millis(1));
    }
    assert!(a.metrics.has_place() && b.metrics.has_place());
    assert!(!busy.metrics.has_place() && named.metrics.has_place());
    for _ in 0..10 {
        busy.metrics.statement();
        busier.metrics.statement();
        busier.metrics.statement();
    }
    named.metrics.statement();
    let s = l.sweep(now_ms() + 10_000);
    assert!(s.reassigned);
    assert!(busy.metrics.has_place() && busier.metrics.has_place());
    assert!(!a.metrics.has_place() && !b.metrics.has_place());
    assert!(named.metrics.has_place(), "named: whatever it ran");
    // Nobody ran anything since: the holders keep their places.
    let s = l.sweep(now_ms() + 20_000);
    assert!(s.reassigned);
    assert!(busy.metrics.has_place() && busier.metrics.has_place());
    // a single statement beats a holder that ran none.
    a.metrics.statement();
    busy.metrics.statement();
    l.sweep(now_ms() + 30_000);
    assert!(a.metrics.has_place() && busy.metrics.has_place());
    assert!(!busier.metrics.has_place());
}

/// What the router holds for a known idle tenant, its catalog row
/// included: at most 1 KiB (docs/src/operations/metrics.md).
#[test]
fn an_idle_tenant_costs_at_most_1_kib() {
    use std::mem::size_of;
    let l = limits(idle_after(600_000));
    let id = "t".repeat(63); // the longest tenant id
    let c = l.counters(&id);
    c.publish(Arc::new(info(&id)));
    let slot = l.acquire_connection(&id, 0).expect("slot");
    let t0 = now_ms();
    for _ in 0..5_000 {
        c.metrics.statement();
        c.metrics.observe_at(t0, 0.001);
    }
    let sessions: Vec<_> = (0..100).map(|_| Arc::new(Interrupt::default())).collect();
    for s in &sessions {
        c.register_session(s);
    }
    assert!(c.take_token(10, 1.0));
    drop((sessions, slot));
    assert!(c.heap_bytes() > 1024, "busy: {}", c.heap_bytes());
    drop(c);
    // A minute later nobody holds it: the sweep compacts it.
    l.sweep(t0 + 61_000);
    let c = l.get(&id).expect("kept until tenant_idle_ms");
    let row = c.current().1.expect("published row");
    let strings = |s: &[&Option<String>]| {
        s.iter()
            .map(|o| o.as_ref().map_or(0, |s| s.capacity()))
            .sum::<usize>()
    };
    let row_bytes = 2 * size_of::<usize>()
        + size_of::<TenantInfo>()
        + row.id.capacity()
        + row.isolation.capacity()
        + strings(&[&row.database_name, &row.schema_name])
        + row.auth_secret.as_ref().map_or(0, |s| s.0.capacity());
    let state = 2 * size_of::<usize>() + size_of::<TenantCounters>() + c.heap_bytes();
    // IndexMap: an entry (hash, key, value) and an index slot with its
    // control byte, both up to twice over for spare capacity; the key's
    // bytes.
    let entry =
        2 * (size_of::<(u64, String, Arc<TenantCounters>)>() + size_of::<usize>() + 1) + id.len();
    let total = state + row_bytes + entry;
    assert!(
        total <= 1024,
        "idle tenant: {total} bytes (state {state}, of which heap {}, row {row_bytes}, map {entry})",
        c.heap_bytes()
    );
    eprintln!(
        "idle tenant: {total} bytes (state {state}, of which heap {}, row {row_bytes}, map {entry})",
        c.heap_bytes()
    );
}
