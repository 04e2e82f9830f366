use super::*;

fn totals(top_n: usize) -> Arc<Totals> {
    let t = Arc::new(Totals::default());
    t.top_n.store(top_n, Ordering::Relaxed);
    t
}

#[test]
fn percentiles_are_estimated_from_the_window_buckets() {
    let a = TenantMetrics::new("t", totals(10), false);
    for i in 1..=100 {
        a.observe_at(1_000, f64::from(i) / 1000.0);
    }
    let l = a.snapshot("t", 0).latency_ms;
    assert_eq!(l.samples, 100);
    // 1..=100 ms: p50 is in (25 ms, 50 ms], p95 and p99 in (50, 100].
    let (p50, p95, p99) = (l.p50.unwrap(), l.p95.unwrap(), l.p99.unwrap());
    assert!(p50 > 25.0 && p50 <= 50.0, "{p50}");
    assert!(
        p95 > 50.0 && p95 <= 100.0 && p99 > p95 && p99 <= 100.0,
        "{p95} {p99}"
    );
}

#[test]
fn counts_and_snapshot() {
    let a = TenantMetrics::new("acme", totals(10), false);
    for _ in 0..3 {
        a.statement();
    }
    a.denied(Denial::QpsLimit);
    a.auth_failed(Failure::WrongPassword);
    a.observe(Duration::from_millis(2));
    let s = a.snapshot("acme", 2);
    assert_eq!(s.auth_failures["wrong_password"], 1);
    assert_eq!(s.auth_failures["unknown_tenant"], 0);
    assert_eq!((s.statements_total, s.statements_denied.qps_limit), (3, 1));
    assert_eq!((s.active_connections, s.latency_ms.samples), (2, 1));
    // 2 ms is in (1 ms, 2.5 ms]: the median of one is halfway.
    assert_eq!(s.latency_ms.p50, Some(1.75));
}

#[test]
fn window_is_bounded_and_an_idle_tenant_frees_it() {
    let mut a = TenantMetrics::new("t", totals(0), false);
    assert_eq!(a.heap_bytes(), 1, "nothing but the id before a statement");
    for _ in 0..10_000 {
        a.observe_at(1_000, 0.0001);
    }
    let busy = a.heap_bytes();
    assert!(busy < 1024, "buckets, not samples: {busy}");
    // Within the window nothing is dropped.
    a.compact(1_000 + 50_000);
    assert_eq!(a.heap_bytes(), busy);
    // Past it, the window goes.
    a.compact(1_000 + WINDOW.as_millis() as u64);
    assert_eq!(a.heap_bytes(), 1);
}

#[test]
fn every_count_goes_to_the_totals_too() {
    let t = totals(10);
    let a = TenantMetrics::new("a", t.clone(), false);
    let b = TenantMetrics::new("b", t.clone(), false);
    a.connection();
    b.connection();
    b.error();
    a.add_bytes(3, 4);
    b.refused(Refusal::Disabled);
    let get = |x: &AtomicU64| x.load(Ordering::Relaxed);
    assert_eq!(get(&t.all.connections), 2);
    assert_eq!(get(&t.all.errors), 1);
    assert_eq!((get(&t.all.bytes_in), get(&t.all.bytes_out)), (3, 4));
    assert_eq!(get(&t.all.refused[Refusal::Disabled as usize]), 1);
    drop((a, b));
    assert_eq!(get(&t.all.connections), 2, "totals outlive the tenants");
}

#[test]
fn places_are_taken_while_free_and_given_back() {
    let t = totals(1);
    let a = TenantMetrics::new("a", t.clone(), false);
    let b = TenantMetrics::new("b", t.clone(), false);
    let n = TenantMetrics::new("n", t.clone(), true);
    assert!(n.has_place(), "a named tenant has one from the start");
    assert!(!a.has_place());
    a.observe(Duration::from_millis(1));
    b.observe(Duration::from_millis(1));
    assert!(a.has_place() && !b.has_place());
    assert_eq!(
        t.places.load(Ordering::Relaxed),
        1,
        "named places are not top-N"
    );
    assert_eq!(t.other_latency.load().count(), 1, "b observed into _other");
    // Taken from a: its series go, and b may have the place.
    a.set_place(false, false);
    assert!(a.own_histogram().is_none());
    b.set_place(true, false);
    assert!(b.has_place());
    assert_eq!(b.own_histogram().map(|c| c.count()), Some(0), "from zero");
    a.set_place(true, false);
    assert!(!a.has_place(), "no free place");
    // A dropped tenant gives its place back.
    drop(b);
    assert_eq!(t.places.load(Ordering::Relaxed), 0);
    a.observe(Duration::from_millis(1));
    assert!(a.has_place());
    // Named later: its place stops counting as top-N.
    a.set_place(true, true);
    assert_eq!(t.places.load(Ordering::Relaxed), 0);
    assert_eq!(a.own_histogram().map(|c| c.count()), Some(1), "kept");
    // No longer named, no top-N place free: it loses it.
    let c = TenantMetrics::new("c", t.clone(), false);
    c.observe(Duration::from_millis(1));
    a.set_place(true, false);
    assert!(!a.has_place());
    drop(n);
    assert_eq!(t.places.load(Ordering::Relaxed), 1);
}
