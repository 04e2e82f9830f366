use super::*;

fn totals(top_n: usize) -> Arc<Totals> {
    let t = Arc::new(Totals::default());
    t.top_n.store(top_n, Ordering::Relaxed);
    t
}

#[test]
fn nearest_rank_percentiles() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 50.0), Some(50.0));
    assert_eq!(percentile(&v, 95.0), Some(95.0));
    assert_eq!(percentile(&v, 99.0), Some(99.0));
    assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    assert_eq!(percentile(&[], 50.0), None);
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
    assert_eq!(s.latency_ms.p50, Some(2.0));
}

#[test]
fn window_is_bounded_and_an_idle_tenant_frees_it() {
    let a = TenantMetrics::new("t", totals(10), false);
    for _ in 0..(WINDOW_SAMPLES + 10) {
        a.observe_at(1_000, 0.0001);
    }
    assert_eq!(a.lock().window.len(), WINDOW_SAMPLES);
    assert!(a.heap_bytes() >= WINDOW_SAMPLES * 16);
    // Within the window nothing is dropped, but spare room is.
    a.compact(1_000 + WINDOW.as_millis() as u64);
    assert_eq!(a.lock().window.len(), WINDOW_SAMPLES);
    // Past it, the buffer goes.
    a.compact(1_001 + WINDOW.as_millis() as u64);
    assert_eq!(a.lock().window.capacity(), 0);
    assert_eq!(a.snapshot("t", 0).latency_ms.samples, 0);
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
