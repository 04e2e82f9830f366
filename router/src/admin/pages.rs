//! `GET /tenants` in pages and `GET /tenants/summary`.
//!
//! A page is read by id cursor: the tenants whose id comes after `after`,
//! in byte order, at most `limit`. Catalog pages come from
//! `catalog_page` (O(page) with pg_tenant 0.7.0); `active=true` pages
//! come from the router's memory (the tenants with open connections
//! here), whose rows are then looked up together. One call holds at most a
//! page of tenants (and the summary a top-N), never the whole catalog.

use super::app::{snapshot, AdminError, AppState};
use crate::catalog::TenantInfo;
use crate::catalog::{PageQuery, MAX_PAGE};
use crate::limits::{Limits, TenantCounters};
use crate::metrics::TenantSnapshot;
use crate::shared::Shared;
use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: u32 = 100;
/// Entries of each top-N list of the summary when `top` is not given, and
/// at most.
pub const DEFAULT_TOP: usize = 10;
pub const MAX_TOP: usize = 100;

/// One entry of `GET /tenants`.
#[derive(Serialize)]
pub(super) struct TenantView {
    #[serde(flatten)]
    pub(super) limits: TenantInfo,
    pub(super) counters: TenantSnapshot,
}

fn view(shared: &Shared, info: TenantInfo) -> TenantView {
    TenantView {
        counters: snapshot(shared, &info.id),
        limits: info,
    }
}

/// How a given value is shown in an error: quoted, at most 64 characters.
fn shown(v: &str) -> String {
    let cut: String = v.chars().take(64).collect();
    if cut.len() < v.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

fn bad(name: &str, reason: String) -> AdminError {
    AdminError::BadParameter {
        name: name.chars().take(64).collect(),
        reason,
    }
}

/// The query string's parameters, each of `known` at most once; anything
/// else is refused.
fn params<'a>(raw: Option<&str>, known: &[&'a str]) -> Result<Vec<(&'a str, String)>, AdminError> {
    let mut out: Vec<(&'a str, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let Some(k) = known.iter().find(|k| **k == name) else {
            return Err(bad(
                &name,
                format!("unknown parameter (this route takes: {})", known.join(", ")),
            ));
        };
        if out.iter().any(|(n, _)| n == k) {
            return Err(bad(k, "given more than once".into()));
        }
        out.push((k, value.into_owned()));
    }
    Ok(out)
}

fn boolean(name: &str, v: &str) -> Result<bool, AdminError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(
            name,
            format!("must be true or false, not {}", shown(v)),
        )),
    }
}

/// An integer from 1 to `max`.
fn count(name: &str, v: &str, max: u32) -> Result<u32, AdminError> {
    match v.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            name,
            format!("must be an integer from 1 to {max}, not {}", shown(v)),
        )),
    }
}

/// What `GET /tenants` was asked for.
#[derive(Debug, PartialEq, Eq)]
struct TenantsQuery {
    page: PageQuery,
    /// Only tenants with (true) or without (false) open connections here.
    active: Option<bool>,
}

impl TenantsQuery {
    fn parse(raw: Option<&str>) -> Result<TenantsQuery, AdminError> {
        let mut q = TenantsQuery {
            page: PageQuery {
                limit: DEFAULT_PAGE,
                ..PageQuery::default()
            },
            active: None,
        };
        for (name, v) in params(raw, &["limit", "after", "prefix", "enabled", "active"])? {
            match name {
                "limit" => q.page.limit = count(name, &v, MAX_PAGE)?,
                "after" if pg_tenant_token::valid_tenant_id(&v) => q.page.after = Some(v),
                "after" => {
                    return Err(bad(
                        name,
                        format!(
                            "must be a tenant id (the \"next\" of the page before), not {}",
                            shown(&v)
                        ),
                    ))
                }
                // Every id starts with "": no filter.
                "prefix" if v.is_empty() => {}
                "prefix" if is_id_prefix(&v) => q.page.prefix = Some(v),
                "prefix" => {
                    return Err(bad(
                        name,
                        format!(
                            "must be the start of a tenant id (at most 63 of a-z, 0-9, \"_\" and \"-\"), not {}",
                            shown(&v)
                        ),
                    ))
                }
                "enabled" => q.page.enabled = Some(boolean(name, &v)?),
                _ => q.active = Some(boolean(name, &v)?),
            }
        }
        Ok(q)
    }
}

/// Whether `p` can start a tenant id (`^[a-z0-9][a-z0-9_-]{0,62}$`).
fn is_id_prefix(p: &str) -> bool {
    p.len() <= 63
        && p.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && (b == b'_' || b == b'-'))
        })
}

/// `GET /tenants?limit=&after=&prefix=&enabled=&active=`: one page,
/// `{"tenants": [...], "next": <last id> | null}`; `next` is null when no
/// tenant comes after this page.
pub(super) async fn tenants(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, AdminError> {
    let q = TenantsQuery::parse(raw.as_deref())?;
    let shared = &app.shared;
    let (views, next) = match q.active {
        Some(true) => connected_page(shared, &q.page).await?,
        Some(false) => catalog_page(shared, &q.page, |id| !connected(&shared.limits, id)).await?,
        None => catalog_page(shared, &q.page, |_| true).await?,
    };
    Ok(Json(json!({ "tenants": views, "next": next })))
}

fn connected(limits: &Limits, id: &str) -> bool {
    limits.get(id).is_some_and(|c| c.active() > 0)
}

/// A page of the catalog, of the tenants `keep` accepts: catalog pages
/// are read until `limit` are kept or the catalog ends (`keep` refuses
/// only connected tenants, so at most one more page per `limit` of them).
async fn catalog_page(
    shared: &Shared,
    q: &PageQuery,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<TenantView>, Option<String>), AdminError> {
    let limit = q.limit as usize;
    let mut views = Vec::with_capacity(limit);
    let mut read = q.clone();
    loop {
        let rows = shared.catalog.page(read.clone()).await?;
        let last_page = rows.len() < limit;
        read.after = rows.last().map(|r| r.id.clone());
        for info in rows {
            if views.len() == limit {
                break;
            }
            if keep(&info.id) {
                views.push(view(shared, info));
            }
        }
        if views.len() == limit {
            let next = views.last().map(|v| v.limits.id.clone());
            return Ok((views, next));
        }
        if last_page {
            return Ok((views, None));
        }
    }
}

/// A page of the tenants with open connections through this router, read
/// from its memory; their rows are looked up together (the catalog's
/// lookups share one query).
async fn connected_page(
    shared: &Shared,
    q: &PageQuery,
) -> Result<(Vec<TenantView>, Option<String>), AdminError> {
    let limit = q.limit as usize;
    let mut views = Vec::with_capacity(limit);
    let mut after = q.after.clone();
    loop {
        let ids = connected_after(&shared.limits, after.as_deref(), limit, q.prefix.as_deref());
        let exhausted = ids.len() < limit;
        let rows =
            futures_util::future::join_all(ids.iter().map(|id| shared.catalog.lookup(id))).await;
        for row in rows {
            if views.len() == limit {
                break;
            }
            // A tenant that left the catalog meanwhile is not listed.
            if let Some(info) = row? {
                if q.enabled.is_none_or(|e| info.enabled == e) {
                    views.push(view(shared, TenantInfo::clone(&info)));
                }
            }
        }
        if views.len() == limit {
            let next = views.last().map(|v| v.limits.id.clone());
            return Ok((views, next));
        }
        if exhausted {
            return Ok((views, None));
        }
        after = ids.last().cloned();
    }
}

/// The first `n` ids (byte order) after `after` of the tenants with open
/// connections here, starting with `prefix`; holds at most `n` ids.
fn connected_after(
    limits: &Limits,
    after: Option<&str>,
    n: usize,
    prefix: Option<&str>,
) -> Vec<String> {
    let mut first: BinaryHeap<String> = BinaryHeap::with_capacity(n + 1);
    limits.for_each_tenant(|id, c| {
        if c.active() == 0
            || after.is_some_and(|a| id <= a)
            || prefix.is_some_and(|p| !id.starts_with(p))
        {
            return;
        }
        if first.len() < n {
            first.push(id.to_owned());
        } else if first.peek().is_some_and(|last| id < last.as_str()) {
            first.pop();
            first.push(id.to_owned());
        }
    });
    first.into_sorted_vec()
}

/// What the summary ranks a tenant by.
struct Totals {
    connections: u64,
    statements: u64,
    errors: u64,
}

/// A tenant's open connections, statements and errors since the router
/// started (cheap reads: this runs under the tenant map's lock).
fn totals(c: &TenantCounters) -> Totals {
    Totals {
        connections: u64::from(c.active()),
        statements: c.metrics.statements(),
        errors: c.metrics.errors(),
    }
}

/// The `n` largest non-zero counts, ties by id; holds at most `n`.
struct Top {
    n: usize,
    /// A min-heap: the entry to drop first on top.
    kept: BinaryHeap<Reverse<(u64, Reverse<String>)>>,
}

#[derive(Serialize, Debug, PartialEq, Eq)]
struct Ranked {
    tenant: String,
    count: u64,
}

impl Top {
    fn new(n: usize) -> Top {
        Top {
            n,
            kept: BinaryHeap::with_capacity(n + 1),
        }
    }

    fn offer(&mut self, id: &str, count: u64) {
        if count == 0 || self.n == 0 {
            return;
        }
        if self.kept.len() == self.n {
            let Some(Reverse((least, Reverse(least_id)))) = self.kept.peek() else {
                return;
            };
            if count < *least || (count == *least && id >= least_id.as_str()) {
                return;
            }
            self.kept.pop();
        }
        self.kept.push(Reverse((count, Reverse(id.to_owned()))));
    }

    /// Largest first, ties by id.
    fn into_list(self) -> Vec<Ranked> {
        self.kept
            .into_sorted_vec()
            .into_iter()
            .map(|Reverse((count, Reverse(tenant)))| Ranked { tenant, count })
            .collect()
    }
}

/// `GET /tenants/summary?top=`: the catalog's tenants by state; from this
/// router's memory, the tenants it has seen, those with open connections,
/// the open connections, and the `top` tenants by open connections, by
/// statements and by errors.
pub(super) async fn summary(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, AdminError> {
    let mut n = DEFAULT_TOP;
    for (name, v) in params(raw.as_deref(), &["top"])? {
        n = count(name, &v, MAX_TOP as u32)? as usize;
    }
    let shared = &app.shared;
    let catalog = shared.catalog.counts().await?;
    let (mut seen, mut connected, mut connections) = (0u64, 0u64, 0u64);
    let (mut by_connections, mut by_statements, mut by_errors) =
        (Top::new(n), Top::new(n), Top::new(n));
    shared.limits.for_each_tenant(|id, c| {
        let t = totals(c);
        seen += 1;
        if t.connections > 0 {
            connected += 1;
            connections += t.connections;
        }
        by_connections.offer(id, t.connections);
        by_statements.offer(id, t.statements);
        by_errors.offer(id, t.errors);
    });
    Ok(Json(json!({
        "catalog": catalog,
        "router": {
            "tenants_seen": seen,
            "tenants_connected": connected,
            "connections": connections,
        },
        "top": {
            "n": n,
            "connections": by_connections.into_list(),
            "statements": by_statements.into_list(),
            "errors": by_errors.into_list(),
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(raw: &str) -> String {
        TenantsQuery::parse(Some(raw)).unwrap_err().to_string()
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let q = TenantsQuery::parse(None).unwrap();
        assert_eq!(q.page.limit, DEFAULT_PAGE);
        assert_eq!(
            (q.page.after, q.page.prefix, q.page.enabled, q.active),
            (None, None, None, None)
        );
        let q = TenantsQuery::parse(Some(
            "limit=1000&after=a-b_c&prefix=a-&enabled=false&active=true",
        ))
        .unwrap();
        assert_eq!(q.page.limit, 1000);
        assert_eq!(q.page.after.as_deref(), Some("a-b_c"));
        assert_eq!(q.page.prefix.as_deref(), Some("a-"));
        assert_eq!((q.page.enabled, q.active), (Some(false), Some(true)));
        assert_eq!(
            TenantsQuery::parse(Some("prefix=")).unwrap().page.prefix,
            None
        );
        assert_eq!(
            err("limit=1001"),
            "query parameter \"limit\": must be an integer from 1 to 1000, not \"1001\""
        );
        assert!(err("limit=0").contains("from 1 to 1000"));
        assert!(err("limit=-1").contains("not \"-1\""));
        assert!(err("limit=ten").starts_with("query parameter \"limit\""));
        assert!(err("after=Bad%27Name").contains("not \"Bad'Name\""));
        assert!(err("prefix=_x").starts_with("query parameter \"prefix\""));
        assert!(err("prefix=a%25").starts_with("query parameter \"prefix\""));
        assert!(err(&format!("prefix={}", "a".repeat(70))).ends_with("..."));
        assert_eq!(
            err("enabled=yes"),
            "query parameter \"enabled\": must be true or false, not \"yes\""
        );
        assert!(err("active=1").starts_with("query parameter \"active\""));
        assert_eq!(
            err("limit=5&limit=6"),
            "query parameter \"limit\": given more than once"
        );
        assert!(err("offset=5").starts_with("query parameter \"offset\": unknown parameter"));
    }

    #[test]
    fn id_prefixes() {
        for ok in ["a", "a-", "a_", "0", "ab-c_d", &"z".repeat(63)] {
            assert!(is_id_prefix(ok), "{ok}");
        }
        for no in ["-", "_a", "A", "a%", "a b", "é", &"z".repeat(64)] {
            assert!(!is_id_prefix(no), "{no}");
        }
    }

    #[test]
    fn top_keeps_the_largest_ties_by_id() {
        let mut t = Top::new(3);
        for (id, n) in [
            ("e", 5),
            ("d", 9),
            ("zero", 0),
            ("c", 5),
            ("b", 1),
            ("a", 5),
            ("f", 9),
        ] {
            t.offer(id, n);
        }
        let got: Vec<(String, u64)> = t
            .into_list()
            .into_iter()
            .map(|r| (r.tenant, r.count))
            .collect();
        assert_eq!(got, [("d".into(), 9), ("f".into(), 9), ("a".into(), 5)]);
        let mut none = Top::new(2);
        none.offer("x", 0);
        assert!(none.into_list().is_empty());
    }

    #[test]
    fn connected_after_pages_the_map_in_byte_order() {
        let l = Limits::default();
        let _slots: Vec<_> = ["b-2", "b_1", "a", "b-10", "c", "b"]
            .iter()
            .map(|id| l.acquire_connection(id, 0).unwrap())
            .collect();
        l.counters("idle"); // no open connection: never listed
        assert_eq!(connected_after(&l, None, 3, None), ["a", "b", "b-10"]);
        assert_eq!(
            connected_after(&l, Some("b-10"), 3, None),
            ["b-2", "b_1", "c"]
        );
        assert_eq!(
            connected_after(&l, Some("c"), 3, None),
            Vec::<String>::new()
        );
        assert_eq!(connected_after(&l, None, 10, Some("b-")), ["b-10", "b-2"]);
        assert_eq!(connected_after(&l, Some("b-10"), 1, Some("b")), ["b-2"]);
    }
}
