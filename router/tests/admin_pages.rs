//! The admin API's pages against the real router and a few thousand
//! tenants: `/tenants` paged by id cursor is complete, in byte order and
//! stable while tenants are created; its filters (prefix, enabled,
//! active); bad parameters; `/tenants/summary` against SQL counts and the
//! clients' own numbers; a catalog still on pg_tenant 0.6.0 pages too.
//!
//! Every tenant here has an id starting with "apg" (the database is
//! shared with the other tests of the run).
mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

const TOKEN: &str = "admin-pages-token-0123456789";
/// Tenants "apg-a-00000" .. : read only.
const ALL: usize = 3000;
/// Tenants "apg-c-00000", "apg-c-00002", ... before the concurrent creates.
const BEFORE: usize = 1500;

/// Held by tests that create tenants, and by the summary while it compares
/// its counts with SQL.
static WRITERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The tenants of this file, made once per run (those of an earlier run
/// are dropped first).
fn fixture() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        admin_sql(&format!(
            "SET client_min_messages = warning; \
             SELECT count(tenant.drop_tenant(id)) FROM tenant.tenants WHERE id LIKE 'apg%'; \
             DO $$ BEGIN \
               FOR i IN 0..{} LOOP PERFORM tenant.create_tenant(format('apg-a-%s', lpad(i::text, 5, '0'))); END LOOP; \
               FOR i IN 0..{} LOOP PERFORM tenant.create_tenant(format('apg-c-%s', lpad((2 * i)::text, 5, '0'))); END LOOP; \
               FOR i IN 0..99 LOOP PERFORM tenant.create_tenant(format('apg-e-%s', lpad(i::text, 3, '0')), \
                                                               enabled => i % 7 <> 0); END LOOP; \
               PERFORM tenant.create_tenant(p) FROM unnest('{{apgp-a,apgp-a-b,apgp-a0,apgp-a_b,apgp-ab,apgp_a,apgpa}}'::text[]) p; \
               PERFORM tenant.create_tenant(p) FROM unnest('{{apg-act-1,apg-act-2,apg-act-3,apg-act-idle}}'::text[]) p; \
             END $$",
            ALL - 1,
            BEFORE - 1
        ));
    });
}

fn router() -> Router {
    fixture();
    Router::start_with(&format!("admin_token = \"{TOKEN}\""))
}

async fn get(r: &Router, path: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .get(r.admin(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("admin API answers");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, v)
}

/// One page: its ids and `next`.
async fn page(r: &Router, query: &str) -> (Vec<String>, Option<String>) {
    let (status, v) = get(r, &format!("/tenants?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {v}");
    let ids = v["tenants"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: {v}"))
        .iter()
        .map(|t| {
            // Each item: the catalog row and the tenant's counters.
            assert_eq!(t["counters"]["tenant"], t["id"], "{t}");
            assert!(t["max_connections"].is_i64(), "{t}");
            t["id"].as_str().expect("id").to_owned()
        })
        .collect();
    (ids, v["next"].as_str().map(str::to_owned))
}

/// Every page of `query` from the start, `limit` at a time; after each
/// page, `between` runs.
async fn all_pages(r: &Router, query: &str, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let cursor = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let (got, next) = page(r, &format!("{query}&limit={limit}{cursor}")).await;
        assert!(got.len() <= limit, "{query}: {} > {limit}", got.len());
        match next {
            Some(n) => {
                assert_eq!(got.len(), limit, "{query}: only a full page has a next");
                assert_eq!(got.last(), Some(&n), "{query}: next is the last id");
                ids.extend(got);
                after = Some(n);
            }
            None => {
                ids.extend(got);
                return ids;
            }
        }
    }
}

fn sql_ids(condition: &str) -> Vec<String> {
    admin_sql(&format!(
        "SELECT id FROM tenant.tenants WHERE {condition} ORDER BY id COLLATE \"C\""
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

fn strictly_increasing(ids: &[String]) -> bool {
    ids.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes())
}

#[tokio::test]
async fn pages_list_every_tenant_once_in_byte_order() {
    let r = router();
    let ids = all_pages(&r, "prefix=apg-a-", 250).await;
    assert_eq!(ids.len(), ALL);
    assert!(strictly_increasing(&ids));
    assert_eq!(ids, sql_ids("id LIKE 'apg-a-%'"));
    assert_eq!(ids[0], "apg-a-00000");
    assert_eq!(ids[ALL - 1], format!("apg-a-{:05}", ALL - 1));
    // Odd page sizes end exactly where the tenants end.
    assert_eq!(all_pages(&r, "prefix=apg-a-", 7).await, ids);
    assert_eq!(all_pages(&r, "prefix=apg-a-", 1000).await, ids);
    // A cursor is any id, listed or not; the default page is 100.
    let (got, next) = page(&r, "after=apg-a-00099&limit=3").await;
    assert_eq!(got, ["apg-a-00100", "apg-a-00101", "apg-a-00102"]);
    assert_eq!(next.as_deref(), Some("apg-a-00102"));
    let (got, _) = page(&r, "after=apg-a-00099a&limit=1").await;
    assert_eq!(got, ["apg-a-00100"]);
    let (got, next) = page(&r, "prefix=apg-a-").await;
    assert_eq!(got, ids[..100]);
    assert_eq!(next.as_deref(), Some("apg-a-00099"));
    // After the last one: an empty page.
    let (got, next) = page(&r, &format!("prefix=apg-a-&after=apg-a-{:05}", ALL - 1)).await;
    assert!(got.is_empty() && next.is_none(), "{got:?} {next:?}");
}

#[tokio::test]
async fn pages_are_stable_while_tenants_are_created() {
    let r = router();
    let _writing = WRITERS.lock().await;
    admin_sql("SET client_min_messages = warning; SELECT count(tenant.drop_tenant(id)) FROM tenant.tenants WHERE id LIKE 'apg-c-%' AND right(id, 1)::int % 2 = 1");
    let before = sql_ids("id LIKE 'apg-c-%'");
    assert_eq!(before.len(), BEFORE);
    // Batches of 15 odd ids each, spread over the whole range, created by
    // another thread while the pages are read: one batch after each page,
    // and the next page is read once it is in.
    let (go, batches) = std::sync::mpsc::channel::<()>();
    let (done_tx, mut done) = tokio::sync::watch::channel(0usize);
    let creator = std::thread::spawn(move || {
        for k in 0..50 {
            if batches.recv().is_err() {
                break;
            }
            let ids: Vec<String> = (0..15)
                .map(|j| format!("apg-c-{:05}", 2 * (k + 50 * j) + 1))
                .collect();
            admin_sql(&format!(
                "SET client_min_messages = warning; \
                 SELECT count(tenant.create_tenant(i)) FROM unnest('{{{}}}'::text[]) i",
                ids.join(",")
            ));
            let _ = done_tx.send(k + 1);
        }
    });
    let mut ids: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut created = 0;
    loop {
        let cursor = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let (got, next) = page(&r, &format!("prefix=apg-c-&limit=50{cursor}")).await;
        ids.extend(got);
        let Some(n) = next else { break };
        after = Some(n);
        if created < 50 {
            go.send(()).expect("creator alive");
            created += 1;
            tokio::time::timeout(Duration::from_secs(20), done.wait_for(|n| *n >= created))
                .await
                .expect("a batch created within 20 s")
                .expect("creator alive");
        }
    }
    drop(go);
    creator.join().expect("creator");
    assert!(created >= 30, "{created} batches created while paging");
    assert!(strictly_increasing(&ids), "ids in order, none twice");
    for id in &before {
        assert!(
            ids.binary_search(id).is_ok(),
            "{id} existed before paging and was missed"
        );
    }
    let now = sql_ids("id LIKE 'apg-c-%'");
    assert_eq!(now.len(), BEFORE + 15 * created);
    for id in &ids {
        assert!(
            now.binary_search(id).is_ok(),
            "{id} listed but not in the catalog"
        );
    }
    // Some of those created after the first page (ahead of the cursor) are listed.
    assert!(ids.len() > BEFORE, "{} listed", ids.len());
}

#[tokio::test]
async fn pages_filter_by_prefix_and_state() {
    let r = router();
    // "_" and "-" are themselves, not patterns; byte order: "-" < "0" < "_" < "a".
    let (got, next) = page(&r, "prefix=apgp-a").await;
    assert_eq!(
        got,
        ["apgp-a", "apgp-a-b", "apgp-a0", "apgp-a_b", "apgp-ab"]
    );
    assert_eq!(next, None);
    assert_eq!(page(&r, "prefix=apgp-a_").await.0, ["apgp-a_b"]);
    assert_eq!(page(&r, "prefix=apgp_").await.0, ["apgp_a"]);
    assert_eq!(
        all_pages(&r, "prefix=apgp", 2).await,
        ["apgp-a", "apgp-a-b", "apgp-a0", "apgp-a_b", "apgp-ab", "apgp_a", "apgpa"]
    );
    assert!(page(&r, "prefix=apgq").await.0.is_empty());
    // Disabled tenants: every 7th of apg-e-000 .. apg-e-099.
    let disabled: Vec<String> = (0..100)
        .step_by(7)
        .map(|i| format!("apg-e-{i:03}"))
        .collect();
    assert_eq!(
        all_pages(&r, "prefix=apg-e-&enabled=false", 4).await,
        disabled
    );
    assert_eq!(disabled, sql_ids("id LIKE 'apg-e-%' AND NOT enabled"));
    let enabled = all_pages(&r, "prefix=apg-e-&enabled=true", 30).await;
    assert_eq!(enabled.len(), 100 - disabled.len());
    assert!(enabled.iter().all(|id| !disabled.contains(id)));
    let (_, v) = get(&r, "/tenants?prefix=apg-e-014").await;
    assert_eq!(v["tenants"][0]["enabled"], false, "{v}");
}

#[tokio::test]
async fn bad_parameters_are_refused_by_name() {
    let r = router();
    for (query, says) in [
        ("limit=0", "query parameter \"limit\": must be an integer from 1 to 1000, not \"0\""),
        ("limit=1001", "query parameter \"limit\": must be an integer from 1 to 1000, not \"1001\""),
        ("limit=ten", "query parameter \"limit\": must be an integer from 1 to 1000, not \"ten\""),
        ("after=Bad%27Name", "query parameter \"after\": must be a tenant id (the \"next\" of the page before), not \"Bad'Name\""),
        ("prefix=a%25", "query parameter \"prefix\": must be the start of a tenant id (at most 63 of a-z, 0-9, \"_\" and \"-\"), not \"a%\""),
        ("enabled=yes", "query parameter \"enabled\": must be true or false, not \"yes\""),
        ("active=1", "query parameter \"active\": must be true or false, not \"1\""),
        ("limit=5&limit=6", "query parameter \"limit\": given more than once"),
        ("offset=5", "query parameter \"offset\": unknown parameter (this route takes: limit, after, prefix, enabled, active)"),
    ] {
        let (status, v) = get(&r, &format!("/tenants?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert_eq!(v["error"], says, "{query}");
    }
    for (query, says) in [
        (
            "top=0",
            "query parameter \"top\": must be an integer from 1 to 100, not \"0\"",
        ),
        (
            "top=101",
            "query parameter \"top\": must be an integer from 1 to 100, not \"101\"",
        ),
        (
            "limit=5",
            "query parameter \"limit\": unknown parameter (this route takes: top)",
        ),
    ] {
        let (status, v) = get(&r, &format!("/tenants/summary?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert_eq!(v["error"], says, "{query}");
    }
    // The largest page and the largest top are served.
    assert_eq!(page(&r, "prefix=apg-a-&limit=1000").await.0.len(), 1000);
    assert_eq!(get(&r, "/tenants/summary?top=100").await.0, StatusCode::OK);
    // Both need the token.
    for path in ["/tenants?limit=1", "/tenants/summary"] {
        let resp = reqwest::get(r.admin(path)).await.expect("answers");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
}

fn counters<'a>(page: &'a Value, id: &str) -> &'a Value {
    page["tenants"]
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == id))
        .map(|t| &t["counters"])
        .unwrap_or_else(|| panic!("{id} listed: {page}"))
}

fn ranked(v: &Value) -> Vec<(String, u64)> {
    v.as_array()
        .unwrap_or_else(|| panic!("a list: {v}"))
        .iter()
        .map(|e| {
            (
                e["tenant"].as_str().expect("tenant").to_owned(),
                e["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

#[tokio::test]
async fn connected_tenants_are_paged_from_memory_and_ranked() {
    let r = router();
    // apg-act-1: 3 connections, 2 statements (1 error); apg-act-2: 2
    // connections, 12 statements; apg-act-3: 1 connection, 10 statements
    // (3 errors); apg-act-idle: none.
    let mut held = Vec::new();
    for (id, n) in [("apg-act-1", 3), ("apg-act-2", 2), ("apg-act-3", 1)] {
        for _ in 0..n {
            held.push((
                id,
                connect(&r.url(&format!("rt_app.{id}")))
                    .await
                    .expect("connect"),
            ));
        }
    }
    let client = |id: &str| &held.iter().find(|(t, _)| *t == id).expect("held").1;
    client("apg-act-1")
        .simple_query("SELECT 1")
        .await
        .expect("SELECT 1");
    client("apg-act-1")
        .simple_query("SELECT 1/0")
        .await
        .unwrap_err();
    for _ in 0..12 {
        client("apg-act-2")
            .simple_query("SELECT 1")
            .await
            .expect("SELECT 1");
    }
    for _ in 0..7 {
        client("apg-act-3")
            .simple_query("SELECT 1")
            .await
            .expect("SELECT 1");
    }
    for _ in 0..3 {
        client("apg-act-3")
            .simple_query("SELECT 1/0")
            .await
            .unwrap_err();
    }

    let (ids, next) = page(&r, "active=true").await;
    assert_eq!(ids, ["apg-act-1", "apg-act-2", "apg-act-3"]);
    assert_eq!(next, None);
    assert_eq!(all_pages(&r, "active=true&prefix=apg-act", 2).await, ids);
    assert_eq!(page(&r, "active=true&after=apg-act-1").await.0, ids[1..]);
    assert_eq!(
        page(&r, "active=true&prefix=apg-act-3").await.0,
        ["apg-act-3"]
    );
    assert!(page(&r, "active=true&enabled=false").await.0.is_empty());
    let (_, v) = get(&r, "/tenants?active=true").await;
    for (id, open, statements) in [
        ("apg-act-1", 3, 2),
        ("apg-act-2", 2, 12),
        ("apg-act-3", 1, 10),
    ] {
        assert_eq!(counters(&v, id)["active_connections"], open, "{v}");
        assert_eq!(counters(&v, id)["statements_total"], statements, "{v}");
    }
    // active=false: the catalog's tenants without connections here.
    assert_eq!(
        all_pages(&r, "active=false&prefix=apg-act", 1).await,
        ["apg-act-idle"]
    );

    let (status, s) = {
        let _writing = WRITERS.lock().await;
        let (status, s) = get(&r, "/tenants/summary?top=2").await;
        let sql = admin_sql(
            "SELECT format('%s %s %s', count(*), count(*) FILTER (WHERE enabled), \
             count(*) FILTER (WHERE NOT enabled)) FROM tenant.tenants",
        );
        let shown = format!(
            "{} {} {}",
            s["catalog"]["tenants"], s["catalog"]["enabled"], s["catalog"]["disabled"]
        );
        assert_eq!(shown, sql.trim(), "{s}");
        (status, s)
    };
    assert_eq!(status, StatusCode::OK, "{s}");
    assert_eq!(s["router"]["tenants_seen"], 3, "{s}");
    assert_eq!(s["router"]["tenants_connected"], 3, "{s}");
    assert_eq!(s["router"]["connections"], 6, "{s}");
    assert_eq!(s["top"]["n"], 2);
    let own = |id: &str, n: u64| (id.to_owned(), n);
    assert_eq!(
        ranked(&s["top"]["connections"]),
        [own("apg-act-1", 3), own("apg-act-2", 2)]
    );
    assert_eq!(
        ranked(&s["top"]["statements"]),
        [own("apg-act-2", 12), own("apg-act-3", 10)]
    );
    assert_eq!(
        ranked(&s["top"]["errors"]),
        [own("apg-act-3", 3), own("apg-act-1", 1)]
    );

    // Connections gone: nothing is active, the counts stay ranked.
    drop(held);
    assert!(
        eventually(Duration::from_secs(5), || async {
            page(&r, "active=true").await.0.is_empty()
        })
        .await,
        "no active tenant once the clients left"
    );
    let (_, s) = get(&r, "/tenants/summary").await;
    assert_eq!(s["router"]["connections"], 0, "{s}");
    assert_eq!(s["top"]["n"], 10);
    assert!(ranked(&s["top"]["connections"]).is_empty(), "{s}");
    assert_eq!(ranked(&s["top"]["statements"]).len(), 3, "{s}");
}

/// A catalog database still on pg_tenant 0.6.0 (no router_catalog_page):
/// the router cuts the page out of router_catalog() in PostgreSQL; the
/// same answers.
#[tokio::test]
async fn a_0_6_0_catalog_is_paged_too() {
    fixture();
    let db = "apg_old060";
    admin_sql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    admin_sql(&format!("CREATE DATABASE {db}"));
    let c = cluster();
    let sql = |q: &str| {
        let out = psql(c, db).args(["-tA", "-c", q]).output().expect("psql");
        assert!(
            out.status.success(),
            "{q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    sql("CREATE EXTENSION pg_tenant VERSION '0.6.0'");
    sql("SELECT count(tenant.create_tenant(i, enabled => i <> 'apg-o_b')) FROM unnest('{apg-o-a,apg-o_b,apg-o-c,apg-oa}'::text[]) i");
    assert_eq!(sql("SELECT to_regprocedure('tenant.router_catalog_page(text,integer,text,boolean)') IS NULL"), "t");
    let url = format!(
        "host={} port={} user=rt_router dbname={db} application_name=apg_old",
        c.sock, c.port
    );
    let r = Router::start_env(
        &format!("admin_token = \"{TOKEN}\""),
        &[("TENANT_ROUTER_CATALOG_URL", &url)],
    );
    assert_eq!(
        all_pages(&r, "prefix=apg", 2).await,
        ["apg-o-a", "apg-o-c", "apg-o_b", "apg-oa"]
    );
    assert_eq!(page(&r, "prefix=apg-o_").await.0, ["apg-o_b"]);
    assert_eq!(page(&r, "enabled=false").await.0, ["apg-o_b"]);
    let (_, s) = get(&r, "/tenants/summary").await;
    assert_eq!(
        (
            &s["catalog"]["tenants"],
            &s["catalog"]["enabled"],
            &s["catalog"]["disabled"]
        ),
        (&Value::from(4), &Value::from(3), &Value::from(1)),
        "{s}"
    );
    drop(r);
    admin_sql(&format!("DROP DATABASE {db} WITH (FORCE)"));
}
