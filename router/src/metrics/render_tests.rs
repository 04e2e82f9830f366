use super::*;
use crate::metrics::{Metrics, MetricsSettings};
use std::time::Duration;

/// A tenant as the renderer sees it, without the limits around it.
struct T(TenantMetrics, u32);

impl TenantSource for T {
    fn metrics(&self) -> &TenantMetrics {
        &self.0
    }
    fn active(&self) -> u32 {
        self.1
    }
}

fn text(m: &Metrics, ts: &[T]) -> String {
    String::from_utf8(m.render(ts)).expect("UTF-8")
}

/// Lines that are samples (not comments) of series with a tenant label.
fn tenant_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("tenant=\""))
        .collect()
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn label_values_are_escaped() {
    let mut out = Vec::new();
    escape(&mut out, "a\\b\"c\nd-é");
    assert_eq!(String::from_utf8(out).unwrap(), "a\\\\b\\\"c\\nd-é");
    let mut out = Vec::new();
    sample(
        &mut out,
        "x_total",
        &[("reason", "r"), ("tenant", "q\"t")],
        7,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "x_total{reason=\"r\",tenant=\"q\\\"t\"} 7\n"
    );
    let m = Metrics::new();
    let odd = T(m.tenant("we\"ird\\one\n"), 0);
    let t = text(&m, &[odd]);
    assert!(
        t.contains("tenant_router_statements_total{tenant=\"we\\\"ird\\\\one\\n\"} 0\n"),
        "{t}"
    );
}

#[test]
fn counters_render_with_tenant_labels_and_only_nonzero_reasons() {
    let m = Metrics::new();
    let a = T(m.tenant("acme"), 2);
    for _ in 0..3 {
        a.0.statement();
    }
    a.0.denied(Denial::QpsLimit);
    a.0.auth_failed(Failure::WrongPassword);
    a.0.refused(Refusal::MaxConnections);
    a.0.add_bytes(10, 20);
    a.0.connection();
    a.0.error();
    let idle = T(m.tenant("idle"), 0);
    let t = text(&m, &[a, idle]);
    for line in [
        "tenant_router_statements_total{tenant=\"acme\"} 3",
        "tenant_router_statements_denied_total{limit=\"qps_limit\",tenant=\"acme\"} 1",
        "tenant_router_auth_failures_total{reason=\"wrong_password\",tenant=\"acme\"} 1",
        "tenant_router_connections_refused_total{reason=\"max_connections\",tenant=\"acme\"} 1",
        "tenant_router_connections_active{tenant=\"acme\"} 2",
        "tenant_router_connections_total{tenant=\"acme\"} 1",
        "tenant_router_errors_total{tenant=\"acme\"} 1",
        "tenant_router_client_received_bytes_total{tenant=\"acme\"} 10",
        "tenant_router_client_sent_bytes_total{tenant=\"acme\"} 20",
        "tenant_router_connections_active{tenant=\"idle\"} 0",
        "tenant_router_statements_total{tenant=\"idle\"} 0",
    ] {
        assert!(t.lines().any(|l| l == line), "{line} missing in\n{t}");
    }
    assert!(
        !t.contains("limit=\"max_query_ms\",tenant="),
        "zero reasons: no series"
    );
    let idle: Vec<_> = tenant_lines(&t)
        .into_iter()
        .filter(|l| l.contains("tenant=\"idle\""))
        .collect();
    assert_eq!(idle.len(), 6, "an idle tenant has 6 series: {idle:#?}");
    // Each family is one group: its HELP and TYPE once.
    let types = t.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let mut names: Vec<_> = t
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), types, "a family twice in\n{t}");
}

#[test]
fn histograms_for_named_and_top_n_others_in_one_series() {
    let m = Metrics::new();
    m.configure(&MetricsSettings {
        histogram_tenants: vec!["named".into()],
        histogram_top_n: 1,
        ..Default::default()
    });
    let named = T(m.tenant("named"), 0);
    let first = T(m.tenant("first"), 0);
    let second = T(m.tenant("second"), 0);
    let third = T(m.tenant("third"), 0);
    named.0.observe(Duration::from_millis(2));
    first.0.observe(Duration::from_millis(2)); // takes the one top-N place
    first.0.observe(Duration::from_secs(20));
    second.0.observe(Duration::from_micros(100)); // no place left: _other
    third.0.observe(Duration::from_millis(30));
    let t = text(&m, &[named, first, second, third]);
    let buckets = |who: &str| {
        t.lines()
            .filter(|l| {
                l.starts_with("tenant_router_statement_duration_seconds_bucket{")
                    && l.contains(&format!("tenant=\"{who}\""))
            })
            .count()
    };
    assert_eq!(buckets("named"), 15);
    assert_eq!(buckets("first"), 15);
    assert_eq!(buckets("second"), 0);
    assert_eq!(buckets("third"), 0);
    assert_eq!(buckets("_other"), 15);
    let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("{s} in\n{t}"));
    let d = "tenant_router_statement_duration_seconds";
    assert_eq!(
        v(&format!("{d}_bucket{{tenant=\"first\",le=\"0.0025\"}}")),
        1.0
    );
    assert_eq!(v(&format!("{d}_bucket{{tenant=\"first\",le=\"10\"}}")), 1.0);
    assert_eq!(
        v(&format!("{d}_bucket{{tenant=\"first\",le=\"+Inf\"}}")),
        2.0
    );
    assert_eq!(v(&format!("{d}_count{{tenant=\"first\"}}")), 2.0);
    assert!((v(&format!("{d}_sum{{tenant=\"first\"}}")) - 20.002).abs() < 1e-9);
    assert_eq!(
        v(&format!("{d}_bucket{{tenant=\"_other\",le=\"0.0005\"}}")),
        1.0
    );
    assert_eq!(v(&format!("{d}_count{{tenant=\"_other\"}}")), 2.0);
    // The all-tenants histogram saw every observation once.
    let all = "tenant_router_all_tenants_statement_duration_seconds";
    assert_eq!(v(&format!("{all}_count")), 5.0);
    assert_eq!(v(&format!("{all}_bucket{{le=\"+Inf\"}}")), 5.0);
    assert_eq!(v(&format!("{all}_bucket{{le=\"0.0025\"}}")), 3.0);
}

#[test]
fn aggregates_are_the_sums_and_outlive_the_tenants() {
    let m = Metrics::new();
    let a = T(m.tenant("a"), 1);
    let b = T(m.tenant("b"), 2);
    a.0.statement();
    b.0.statement();
    b.0.statement();
    a.0.denied(Denial::MaxQueryMs);
    b.0.auth_failed(Failure::Disabled);
    a.0.add_bytes(5, 6);
    let t = text(&m, &[a, b]);
    let v = |s: &str| value(&t, s).unwrap_or_else(|| panic!("{s} in\n{t}"));
    assert_eq!(v("tenant_router_all_tenants_statements_total"), 3.0);
    assert_eq!(v("tenant_router_all_tenants_connections_active"), 3.0);
    assert_eq!(v("tenant_router_tenants_tracked"), 2.0);
    assert_eq!(
        v("tenant_router_all_tenants_statements_denied_total{limit=\"max_query_ms\"}"),
        1.0
    );
    assert_eq!(
        v("tenant_router_all_tenants_statements_denied_total{limit=\"qps_limit\"}"),
        0.0,
        "aggregates exist at zero"
    );
    assert_eq!(
        v("tenant_router_all_tenants_auth_failures_total{reason=\"disabled\"}"),
        1.0
    );
    assert_eq!(v("tenant_router_all_tenants_client_sent_bytes_total"), 6.0);
    // The tenants' state goes; the totals stay.
    let t = text(&m, &[] as &[T]);
    assert!(tenant_lines(&t)
        .iter()
        .all(|l| l.contains("tenant=\"_other\"")));
    assert_eq!(
        value(&t, "tenant_router_all_tenants_statements_total"),
        Some(3.0)
    );
    assert_eq!(value(&t, "tenant_router_tenants_tracked"), Some(0.0));
}

#[test]
fn a_scrape_streams_small_chunks_of_the_same_text() {
    let m = std::sync::Arc::new(Metrics::new());
    let make = || -> Vec<T> {
        (0..3 * CHUNK + 7)
            .map(|i| T(m.tenant(&format!("tenant-{i:05}")), 0))
            .collect()
    };
    let ts = make();
    ts[5].0.refused(Refusal::Disabled);
    ts[CHUNK + 1].0.observe(Duration::from_millis(1));
    let whole = m.render(&ts);
    let held: Vec<std::sync::Arc<T>> = ts.into_iter().map(std::sync::Arc::new).collect();
    let chunks: Vec<Vec<u8>> = m
        .scrape(held.iter().map(std::sync::Arc::downgrade).collect())
        .collect();
    assert_eq!(chunks.concat(), whole, "the same text");
    // The head, then per family one chunk per CHUNK tenants (4) but the
    // empty ones: by reason, only the first (its HELP and TYPE, and here
    // the one refusal); the histogram, the first, the one with a place
    // and the last (_other).
    assert_eq!(chunks.len(), 1 + 4 * 6 + 3 + 3);
    let biggest = chunks[1..].iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        biggest <= estimate(CHUNK, CHUNK * 11) + 4096,
        "a chunk of {biggest} bytes"
    );
    for c in &chunks[1..] {
        assert!(c.len() <= c.capacity() && c.capacity() <= 64 * 1024);
    }
}

#[test]
fn a_scrape_keeps_no_tenant_alive_and_skips_the_dropped() {
    let m = std::sync::Arc::new(Metrics::new());
    let mut held: Vec<std::sync::Arc<T>> = (0..CHUNK + 3)
        .map(|i| std::sync::Arc::new(T(m.tenant(&format!("kept-{i:05}")), 0)))
        .collect();
    let mut scrape = m.scrape(held.iter().map(std::sync::Arc::downgrade).collect());
    let head = scrape.next().expect("the head");
    assert!(!head.is_empty());
    // The sweep drops a tenant while the scrape's client reads slowly.
    let gone = held.remove(CHUNK + 1);
    let weak = std::sync::Arc::downgrade(&gone);
    drop(gone);
    assert!(
        weak.upgrade().is_none(),
        "the scrape held no strong pointer"
    );
    let text = String::from_utf8(scrape.collect::<Vec<_>>().concat()).expect("UTF-8");
    assert!(!text.contains(&format!("kept-{:05}", CHUNK + 1)), "skipped");
    assert!(
        text.contains(&format!("kept-{:05}", CHUNK + 2)),
        "the rest is there"
    );
    assert_eq!(
        text.matches("# TYPE tenant_router_connections_active gauge")
            .count(),
        1
    );
}

#[test]
fn every_family_shown_is_declared_once_with_its_type() {
    let m = Metrics::new();
    m.reloads.with_label_values(&["ok"]).inc();
    m.pool_wait.with_label_values(&["p"]).observe(0.01);
    let a = T(m.tenant("acme"), 1);
    a.0.observe(Duration::from_millis(1));
    let t = text(&m, &[a]);
    let mut shown = std::collections::HashSet::new();
    for line in t.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line["# TYPE ".len()..].split(' ');
        let (name, kind) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let f = families::ALL
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} is not in families::ALL"));
        assert_eq!(f.kind.as_str(), kind, "{name}");
        assert!(shown.insert(name), "{name} shown twice");
    }
    for f in families::ALL {
        let registry_vec = [
            "tenant_router_unknown_tenant_auth_failures_total",
            "tenant_router_cancel_requests_total",
            "tenant_router_pool_backends",
            "tenant_router_pool_waiting_clients",
            "tenant_router_pool_timeouts_total",
            "tenant_router_pool_discarded_total",
            "tenant_router_pool_tenant_switches_total",
            "tenant_router_pool_reused_total",
            "tenant_router_connections_tls_total",
            "tenant_router_upstream_up",
        ];
        // A labelled registry family shows once it has a series.
        if !registry_vec.contains(&f.name) {
            assert!(shown.contains(f.name), "{} declared but not shown", f.name);
        }
    }
}
