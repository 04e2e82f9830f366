//! The admin HTTP API against the real router under a small load: counters
//! that match what the clients did, Prometheus text that promtool accepts,
//! the bearer token, disconnect, readiness, bounded tenant series.
mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "admin-test-token-0123456789";

fn with_token() -> String {
    format!("admin_token = \"{TOKEN}\"")
}

async fn get(r: &Router, path: &str) -> (StatusCode, String) {
    let resp = reqwest::Client::new()
        .get(r.admin(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin API answers");
    (resp.status(), resp.text().await.expect("body"))
}

async fn get_json(r: &Router, path: &str) -> (StatusCode, Value) {
    let (status, body) = get(r, path).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, v)
}

async fn post_json(r: &Router, path: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(r.admin(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin API answers");
    (resp.status(), resp.json().await.expect("JSON body"))
}

/// Run `promtool check metrics` (Debian's prometheus package) on `text`.
fn promtool(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt package prometheus; scripts/setup installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("promtool ran");
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && said.trim().is_empty(), said)
}

/// The value of one sample line of the exposition, e.g.
/// `tenant_router_statements_total{tenant="x"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn counters_match_what_the_clients_did() {
    let t = "adm-count";
    set_limits(
        t,
        "max_connections => 5, max_query_ms => 300, max_result_bytes => 20000, qps_limit => 0",
    );
    set_limits("adm-qps", "qps_limit => 1, burst_multiplier => 1");
    let r = Router::start_with(&with_token());
    let user = format!("rt_app.{t}");

    // 5 connections; the 6th is refused by max_connections.
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(connect(&r.url(&user)).await.expect("connect"));
    }
    let e = connect(&r.url(&user)).await.unwrap_err();
    assert_eq!(sqlstate(&e), "53300", "{e}");

    // 100 statements that succeed, 20 per connection, concurrently.
    let runs = clients.iter().map(|c| async move {
        for _ in 0..20 {
            c.simple_query("SELECT 1").await.expect("SELECT 1");
        }
    });
    futures_util::future::join_all(runs).await;
    // 3 errors from PostgreSQL.
    for _ in 0..3 {
        let e = clients[0].simple_query("SELECT 1/0").await.unwrap_err();
        assert_eq!(sqlstate(&e), "22012");
    }
    // 7 statements stopped by limits: 4 by max_query_ms, 3 by max_result_bytes.
    for c in &clients[..4] {
        let e = c.simple_query("SELECT pg_sleep(2)").await.unwrap_err();
        assert_eq!(sqlstate(&e), "57014", "{e}");
    }
    for _ in 0..3 {
        let e = clients[1]
            .simple_query("SELECT repeat('x', 1000) FROM generate_series(1, 100)")
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&e), "54000", "{e}");
    }
    // Another tenant: qps_limit 1 with no burst, 10 statements at once:
    // 1 runs, 9 are refused.
    let q = connect(&r.url("rt_app.adm-qps")).await.expect("connect");
    let mut refused = 0;
    for _ in 0..10 {
        if let Err(e) = q.simple_query("SELECT 1").await {
            assert_eq!(sqlstate(&e), "53400", "{e}");
            refused += 1;
        }
    }
    assert_eq!(refused, 9);

    let (status, m) = get_json(&r, &format!("/tenants/{t}/metrics")).await;
    assert_eq!(status, StatusCode::OK, "{m}");
    assert_eq!(m["tenant"], t);
    assert_eq!(m["active_connections"], 5);
    assert_eq!(m["connections_total"], 5);
    assert_eq!(m["connections_refused"]["max_connections"], 1);
    assert_eq!(m["statements_total"], 100 + 3 + 7);
    assert_eq!(m["statements_denied"]["max_query_ms"], 4);
    assert_eq!(m["statements_denied"]["max_result_bytes"], 3);
    assert_eq!(m["statements_denied"]["qps_limit"], 0);
    assert_eq!(m["errors_total"], 3 + 7);
    let (bytes_in, bytes_out) = (
        m["bytes_in"].as_u64().unwrap(),
        m["bytes_out"].as_u64().unwrap(),
    );
    // 110 simple queries of at least 14 bytes each went in; 100 KB rows
    // were cut at 20 kB, so far less than 100 KB went out.
    assert!(bytes_in >= 110 * 14, "{m}");
    assert!(bytes_out > bytes_in && bytes_out < 100_000, "{m}");
    let lat = &m["latency_ms"];
    assert_eq!(lat["samples"], 110, "every statement that ran is timed");
    let (p50, p99) = (lat["p50"].as_f64().unwrap(), lat["p99"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 < 250.0, "{lat}");
    assert!(
        p99 >= 250.0,
        "the 4 canceled pg_sleep(2) took ~300 ms: {lat}"
    );

    let (_, q) = get_json(&r, "/tenants/adm-qps/metrics").await;
    assert_eq!(q["statements_total"], 10);
    assert_eq!(q["statements_denied"]["qps_limit"], 9);
    assert_eq!(q["latency_ms"]["samples"], 1);

    // /tenants lists catalog tenants with limits and counters (a page of
    // them: tests/admin_pages.rs pages through thousands).
    let find = |id: &'static str| {
        let r = &r;
        async move {
            let (status, page) = get_json(r, &format!("/tenants?prefix={id}&limit=1")).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["tenants"]
                .as_array()
                .and_then(|l| l.first())
                .filter(|x| x["id"] == id)
                .cloned()
        }
    };
    let row = find(t).await.expect("adm-count listed");
    assert_eq!(row["max_connections"], 5);
    assert_eq!(row["max_query_ms"], 300);
    assert_eq!(row["counters"]["statements_total"], 110);
    let idle = find("initech")
        .await
        .expect("a tenant with no connection is listed");
    assert_eq!(idle["counters"]["connections_total"], 0);

    // /metrics: valid exposition, same numbers, tenant label, histogram.
    let (status, text) = get(&r, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let (ok, said) = promtool(&text);
    assert!(ok, "promtool check metrics: {said}\n{text}");
    let s = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} in\n{text}"));
    assert_eq!(
        s(&format!("tenant_router_statements_total{{tenant=\"{t}\"}}")),
        110.0
    );
    assert_eq!(
        s(&format!(
            "tenant_router_statements_denied_total{{limit=\"max_query_ms\",tenant=\"{t}\"}}"
        )),
        4.0
    );
    assert_eq!(
        s("tenant_router_statements_denied_total{limit=\"qps_limit\",tenant=\"adm-qps\"}"),
        9.0
    );
    assert_eq!(
        s(&format!(
            "tenant_router_connections_active{{tenant=\"{t}\"}}"
        )),
        5.0
    );
    assert_eq!(
        s(&format!(
            "tenant_router_statement_duration_seconds_count{{tenant=\"{t}\"}}"
        )),
        110.0
    );
    assert_eq!(
        s(&format!(
            "tenant_router_statement_duration_seconds_bucket{{tenant=\"{t}\",le=\"+Inf\"}}"
        )),
        110.0
    );
    assert_eq!(s("tenant_router_catalog_up"), 1.0);
    assert!(
        !text.contains("tenant=\"initech\""),
        "no series for tenants that never connected"
    );
}

#[tokio::test]
async fn bearer_token_is_required_except_for_probes() {
    let r = Router::start_with(&with_token());
    let http = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/tenants"),
        ("GET", "/tenants/acme/metrics"),
        ("GET", "/metrics"),
        ("POST", "/tenants/acme/disconnect"),
    ] {
        let req = |tok: Option<&str>| {
            let b = match method {
                "GET" => http.get(r.admin(path)),
                _ => http.post(r.admin(path)),
            };
            match tok {
                Some(t) => b.bearer_auth(t),
                None => b,
            }
        };
        for tok in [None, Some("wrong-token-0123456789")] {
            let resp = req(tok).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"], "missing or wrong bearer token");
        }
        // Control: the right token passes.
        let resp = req(Some(TOKEN)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{method} {path}");
    }
    // Probes need no token.
    let health = http.get(r.admin("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = http.get(r.admin("/ready")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["catalog"], "ok");
    assert_eq!(ready["upstream"], "ok");
}

#[tokio::test]
async fn unknown_tenants_and_routes_get_json_errors() {
    let r = Router::start_with(&with_token());
    let (status, v) = get_json(&r, "/tenants/no-such-tenant/metrics").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "tenant \"no-such-tenant\" does not exist");
    let (status, v) = post_json(&r, "/tenants/no-such-tenant/disconnect").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "tenant \"no-such-tenant\" does not exist");
    let (status, v) = get_json(&r, "/tenants/Bad'Name/metrics").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"], "\"Bad'Name\" is not a valid tenant id");
    let (status, v) = get_json(&r, "/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"], "no such endpoint: /nothing-here");
    let resp = reqwest::Client::new()
        .get(r.admin("/tenants/acme/disconnect"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], "GET is not allowed on /tenants/acme/disconnect");
    // Control: a known tenant with no connections has zero counters.
    let (status, v) = get_json(&r, "/tenants/initech/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["statements_total"], 0);
    assert_eq!(v["latency_ms"]["p50"], Value::Null);
}

#[tokio::test]
async fn disconnect_closes_every_connection_of_one_tenant_only() {
    let r = Router::start_with(&with_token());
    let mut acme = Vec::new();
    for _ in 0..3 {
        acme.push(connect(&r.url("rt_app.acme")).await.unwrap());
    }
    let globex = connect(&r.url("rt_app.globex")).await.unwrap();
    // One acme client is inside a transaction when the disconnect comes.
    let marker = format!("disconnect-{}", std::process::id());
    let pid = backend_pid(&acme[0]).await;
    acme[0].simple_query("BEGIN").await.unwrap();
    acme[0]
        .execute(
            "INSERT INTO notes (tenant_id, body) VALUES ('acme', $1)",
            &[&marker],
        )
        .await
        .unwrap();

    let (status, v) = post_json(&r, "/tenants/acme/disconnect").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        serde_json::json!({"tenant": "acme", "disconnected": 3}),
        "{}",
        r.log_text()
    );

    for c in &acme {
        assert_terminated(c).await;
    }
    assert!(r.wait_log("an administrator disconnected", Duration::from_secs(2)));
    // The open transaction ended with its backend, rolled back.
    wait_backend_gone(pid).await;
    assert_eq!(committed_notes(&marker), 0);
    // Control: the other tenant is untouched, and acme may connect again.
    assert_eq!(visible_notes(&globex).await, 3);
    let again = connect(&r.url("rt_app.acme")).await.unwrap();
    assert_eq!(visible_notes(&again).await, 3);
    let (_, m) = get_json(&r, "/tenants/acme/metrics").await;
    assert_eq!(m["active_connections"], 1);
}

#[tokio::test]
async fn dropped_tenant_disappears_from_metrics() {
    let gone = "adm-gone";
    set_limits(gone, "max_connections => 10");
    let r = Router::start_with(&with_token());
    let c = connect(&r.url(&format!("rt_app.{gone}"))).await.unwrap();
    c.simple_query("SELECT 1").await.unwrap();
    let keep = connect(&r.url("rt_app.globex")).await.unwrap();
    keep.simple_query("SELECT 1").await.unwrap();
    let (_, text) = get(&r, "/metrics").await;
    assert!(text.contains(&format!("tenant=\"{gone}\"")), "{text}");

    admin_sql(&format!("SELECT tenant.drop_tenant('{gone}')"));
    let start = Instant::now();
    loop {
        let (_, text) = get(&r, "/metrics").await;
        if !text.contains(&format!("tenant=\"{gone}\"")) {
            // Control: other tenants' series stay.
            assert!(text.contains("tenant=\"globex\""), "{text}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "still exported after drop: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its open connection was closed; the tenant is gone for new ones.
    assert_terminated(&c).await;
    let e = connect(&r.url(&format!("rt_app.{gone}")))
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&e), "28P01", "{e}");
    let (status, _) = get_json(&r, &format!("/tenants/{gone}/metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ready_fails_when_the_upstream_does_not_answer() {
    // Nothing listens on port 1.
    let r = Router::start_env(&with_token(), &[("TENANT_ROUTER_UPSTREAM", "127.0.0.1:1")]);
    let resp = reqwest::get(r.admin("/ready")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["catalog"], "ok");
    assert!(
        v["upstream"].as_str().unwrap().starts_with("127.0.0.1:1: "),
        "{v}"
    );
    // Control: the process itself is healthy.
    let health = reqwest::get(r.admin("/health")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn catalog_outage_is_reported_not_hidden() {
    // Nothing listens on port 1: the catalog cannot be reached.
    let r = Router::start_env(
        &with_token(),
        &[(
            "TENANT_ROUTER_CATALOG_URL",
            "host=127.0.0.1 port=1 user=rt_router dbname=router_test",
        )],
    );
    let resp = reqwest::get(r.admin("/ready")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["upstream"], "ok");
    assert!(
        v["catalog"]
            .as_str()
            .unwrap()
            .starts_with("tenant catalog unavailable"),
        "{v}"
    );
    let (status, v) = get_json(&r, "/tenants").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("tenant catalog unavailable"),
        "{v}"
    );
    let (_, text) = get(&r, "/metrics").await;
    assert_eq!(sample(&text, "tenant_router_catalog_up"), Some(0.0));
}

#[tokio::test]
async fn ready_probes_the_upstream_at_most_once_a_second() {
    // A stand-in upstream that answers SSLRequests like PostgreSQL ('N')
    // and counts the connections it gets.
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = upstream.local_addr().unwrap().to_string();
    let probes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = probes.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = upstream.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut req = [0u8; 8];
            if s.read_exact(&mut req).await.is_ok() {
                let _ = s.write_all(b"N").await;
            }
        }
    });
    let r = Router::start_env(&with_token(), &[("TENANT_ROUTER_UPSTREAM", &addr)]);
    let count = || probes.load(std::sync::atomic::Ordering::SeqCst);
    let calls = (0..20).map(|_| reqwest::get(r.admin("/ready")));
    for resp in futures_util::future::join_all(calls).await {
        assert_eq!(resp.unwrap().status(), StatusCode::OK);
    }
    let burst = count();
    assert!((1..=2).contains(&burst), "20 calls, {burst} probes");
    // Control: once the result is older than a second, the next call probes again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        reqwest::get(r.admin("/ready")).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(count(), burst + 1);
}
