//! Bounded metrics through the real router at thousands of tenants: the
//! tenant series stay within the bound docs/src/operations/metrics.md states, histograms exist
//! only for named and top-N tenants (the rest in `_other`), the
//! all-tenants aggregates equal the sums, idle tenants' series go after
//! `metrics.tenant_idle_ms` and come back from zero, and a tenant with an
//! open session keeps its series throughout.
mod common;
use common::*;
use futures_util::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Series a tenant always has while the router holds its state.
const ALWAYS: usize = 6;
/// Most series by reason a tenant may add (refused 4, denied 3, auth 8).
const BY_REASON: usize = 4 + 3 + 8;
/// Series of one histogram.
const HISTOGRAM: usize = 17;

/// Tenants `{prefix}-00000` ... made in one statement (kept if they exist).
fn many_tenants(prefix: &str, n: usize) -> Vec<String> {
    admin_sql(&format!(
        "SET client_min_messages = warning; DO $$ BEGIN FOR i IN 0..{} LOOP \
           IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = format('{prefix}-%s', lpad(i::text, 5, '0'))) THEN \
             PERFORM tenant.create_tenant(format('{prefix}-%s', lpad(i::text, 5, '0'))); \
           END IF; END LOOP; END $$",
        n - 1
    ));
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

/// Drop the tenants made by `many_tenants` (at the end of a test).
fn drop_tenants(prefix: &str) {
    admin_sql(&format!(
        "SET client_min_messages = warning; SELECT count(tenant.drop_tenant(id)) \
         FROM tenant.tenants WHERE id LIKE '{prefix}-%'"
    ));
}

/// Connect once as each tenant (16 at a time), run `statements` SELECTs,
/// hang up.
async fn visit(r: &Router, tenants: &[String], statements: usize) {
    futures_util::stream::iter(tenants)
        .for_each_concurrent(16, |t| async move {
            let c = connect(&r.url(&format!("rt_trust.{t}")))
                .await
                .unwrap_or_else(|e| panic!("{t}: {e}"));
            for _ in 0..statements {
                c.simple_query("SELECT 1").await.expect("SELECT 1");
            }
        })
        .await;
}

/// Sample lines (no comments) of series with a `tenant` label.
fn tenant_series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("tenant=\""))
        .collect()
}

/// `tenant` -> value of every sample of `family{tenant="..."}`.
fn by_tenant(text: &str, family: &str) -> BTreeMap<String, f64> {
    let prefix = format!("{family}{{tenant=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (id, value) = rest.split_once("\"} ")?;
            Some((id.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing"))
}

/// Tenants with a histogram of their own (`_other` included).
fn histogram_tenants(text: &str) -> BTreeSet<String> {
    by_tenant(text, "tenant_router_statement_duration_seconds_count")
        .into_keys()
        .collect()
}

#[tokio::test]
async fn series_stay_within_the_bound_at_thousands_of_tenants() {
    let all = many_tenants("mbb", 2_500);
    let named = "mbb-00009";
    let r = Router::start_with(&format!(
        "[metrics]\nhistogram_tenants = [\"{named}\"]\nhistogram_top_n = 3\n\
         histogram_reassign_ms = 3600000\n"
    ));
    // 800 of them connect once, one statement each; a control tenant keeps
    // a session open.
    let visited: Vec<String> = all.iter().step_by(3).cloned().collect();
    assert!(visited.contains(&named.to_owned()));
    visit(&r, &visited, 1).await;
    let control = connect(&r.url("rt_trust.mbb-02498"))
        .await
        .expect("control");
    for _ in 0..5 {
        control.simple_query("SELECT 1").await.expect("SELECT 1");
    }
    let held = visited.len() + 1;

    let text = prometheus(&r).await;
    let series = tenant_series(&text);
    let tracked = value(&text, "tenant_router_tenants_tracked") as usize;
    assert_eq!(tracked, held, "one state per tenant that connected");
    let own = histogram_tenants(&text);
    let bound = tracked * (ALWAYS + BY_REASON) + (1 + 3 + 1) * HISTOGRAM;
    assert!(
        series.len() <= bound,
        "{} tenant series > the bound {bound}",
        series.len()
    );
    // Nothing was refused or denied: exactly the 6 series each, plus the
    // histograms.
    assert_eq!(series.len(), tracked * ALWAYS + own.len() * HISTOGRAM);
    assert!(own.contains(named) && own.contains("_other"), "{own:?}");
    assert_eq!(own.len(), 1 + 3 + 1, "named, 3 top-N, _other: {own:?}");
    assert!(
        own.iter()
            .all(|t| t == "_other" || visited.contains(t) || t == "mbb-02498"),
        "{own:?}"
    );
    assert!(
        !text.contains("tenant=\"mbb-00001\""),
        "no series for tenants that never connected"
    );

    // The aggregates are the sums (nothing was dropped yet).
    let sum = |family: &str| by_tenant(&text, family).values().sum::<f64>();
    for family in [
        "connections_total",
        "statements_total",
        "errors_total",
        "client_received_bytes_total",
        "client_sent_bytes_total",
        "connections_active",
    ] {
        assert_eq!(
            value(&text, &format!("tenant_router_all_tenants_{family}")),
            sum(&format!("tenant_router_{family}")),
            "{family}"
        );
    }
    assert_eq!(
        value(&text, "tenant_router_all_tenants_connections_total"),
        held as f64
    );
    assert_eq!(
        value(&text, "tenant_router_all_tenants_connections_active"),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "tenant_router_all_tenants_statement_duration_seconds_count"
        ),
        sum("tenant_router_statement_duration_seconds_count"),
        "every observation in exactly one series of the tenant family"
    );
    assert_eq!(
        value(&text, "tenant_router_all_tenants_statements_total"),
        (visited.len() + 5) as f64
    );
    println!(
        "{} tenants held: {} bytes, {} lines, {} tenant series",
        tracked,
        text.len(),
        text.lines().count(),
        series.len()
    );
    drop(control);
    drop_tenants("mbb");
}

#[tokio::test]
async fn idle_tenants_series_go_and_come_back_from_zero() {
    let tenants = many_tenants("mbi", 40);
    let r = Router::start_with("[metrics]\ntenant_idle_ms = 300\n");
    let control = connect(&r.url("rt_trust.mbi-00039"))
        .await
        .expect("control");
    control.simple_query("SELECT 1").await.expect("SELECT 1");
    let idle = &tenants[..39];
    visit(&r, idle, 3).await;
    let has = |text: &str, t: &str| text.contains(&format!("tenant=\"{t}\""));
    let text = prometheus(&r).await;
    // Some may be gone already (300 ms): none is counted wrong.
    for (t, n) in by_tenant(&text, "tenant_router_statements_total") {
        let want = if t == "mbi-00039" { 1.0 } else { 3.0 };
        assert_eq!(n, want, "{t}");
    }

    // The event: every idle tenant's series gone; the control's all along.
    let gone = eventually(Duration::from_secs(10), || async {
        let text = prometheus(&r).await;
        assert!(
            has(&text, "mbi-00039"),
            "the open session's tenant kept its series"
        );
        idle.iter().all(|t| !has(&text, t))
    })
    .await;
    assert!(
        gone,
        "idle tenants' series still there:\n{}",
        prometheus(&r).await
    );
    let text = prometheus(&r).await;
    assert_eq!(value(&text, "tenant_router_tenants_tracked"), 1.0);
    assert_eq!(
        value(&text, "tenant_router_tenants_dropped_idle_total"),
        39.0
    );
    // The totals keep what the dropped tenants did.
    assert_eq!(
        value(&text, "tenant_router_all_tenants_statements_total"),
        39.0 * 3.0 + 1.0
    );
    assert_eq!(
        value(&text, "tenant_router_all_tenants_connections_total"),
        40.0
    );
    let m = tenant_metrics(&r, "mbi-00000").await;
    assert_eq!(m["connections_total"], 0, "state dropped: {m}");

    // Back on the next connection, from zero.
    let again = connect(&r.url("rt_trust.mbi-00000")).await.expect("again");
    again.simple_query("SELECT 1").await.expect("SELECT 1");
    let text = prometheus(&r).await;
    let statements = by_tenant(&text, "tenant_router_statements_total");
    assert_eq!(statements.get("mbi-00000"), Some(&1.0), "{statements:?}");
    assert_eq!(
        by_tenant(&text, "tenant_router_connections_total").get("mbi-00000"),
        Some(&1.0)
    );
    let m = tenant_metrics(&r, "mbi-00000").await;
    assert_eq!(
        (
            m["connections_total"].as_u64(),
            m["active_connections"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // The control's counters went on through all of it.
    control.simple_query("SELECT 1").await.expect("SELECT 1");
    let text = prometheus(&r).await;
    assert_eq!(
        by_tenant(&text, "tenant_router_statements_total").get("mbi-00039"),
        Some(&2.0)
    );
    drop((again, control));
    drop_tenants("mbi");
}

#[tokio::test]
async fn the_busiest_tenants_take_the_histogram_places() {
    let tenants = many_tenants("mbt", 3);
    let r = Router::start_with("[metrics]\nhistogram_top_n = 1\nhistogram_reassign_ms = 300\n");
    // The first statement takes the free place.
    visit(&r, &tenants[..1], 1).await;
    let text = prometheus(&r).await;
    assert_eq!(
        histogram_tenants(&text),
        BTreeSet::from(["_other".to_owned(), "mbt-00000".to_owned()])
    );
    // Another tenant runs more in every period: the place is its.
    let busy = connect(&r.url("rt_trust.mbt-00001")).await.expect("busy");
    let moved = eventually(Duration::from_secs(10), || async {
        for _ in 0..10 {
            busy.simple_query("SELECT 1").await.expect("SELECT 1");
        }
        let own = histogram_tenants(&prometheus(&r).await);
        own.contains("mbt-00001")
    })
    .await;
    assert!(moved, "{}", prometheus(&r).await);
    let text = prometheus(&r).await;
    assert_eq!(
        histogram_tenants(&text),
        BTreeSet::from(["_other".to_owned(), "mbt-00001".to_owned()]),
        "one top-N place: the first tenant lost its series"
    );
    // While the busy one stays busier, the first tenant's statements go to
    // _other.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy_task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                busy.simple_query("SELECT 1").await.expect("SELECT 1");
            }
        })
    };
    let other = |t: &str| by_tenant(t, "tenant_router_statement_duration_seconds_count")["_other"];
    let before = other(&text);
    visit(&r, &tenants[..1], 1).await;
    let text = prometheus(&r).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    busy_task.await.expect("busy client");
    assert!(other(&text) > before, "{text}");
    assert!(!histogram_tenants(&text).contains("mbt-00000"));
    drop_tenants("mbt");
}
