//! Pages and counts of the tenant catalog, for the admin API (`GET
//! /tenants`, `GET /tenants/summary`). Run by the catalog's worker on its
//! one connection (`Catalog::page`, `Catalog::counts`), like a lookup, so
//! each read here delays the logins waiting behind it by its own time:
//!
//! - with pg_tenant 0.7.0 or later, `tenant.router_catalog_page` reads one
//!   range of an index: O(page) at any number of tenants (0.5 ms for 100
//!   rows at 100,000 tenants), and `tenant.router_catalog_counts` counts
//!   (10-20 ms at 100,000);
//! - before 0.7.0, the same page is cut out of `tenant.router_catalog(NULL)`
//!   inside PostgreSQL (filtered, sorted and limited there, so only the
//!   page crosses the wire and the router holds only the page), which costs
//!   PostgreSQL O(all tenants) per page until the extension is updated.
//!
//! Which one is used is asked at each call (`to_regprocedure`), so an
//! `ALTER EXTENSION pg_tenant UPDATE` needs no router restart.
//!
//! Ids come in byte order (`COLLATE "C"`, whatever the database's
//! collation), the order of Rust's `str`, so a page read from the router's
//! memory (`active=true`) sorts the same way.

use super::{CatalogError, TenantInfo};
use tokio_postgres::Client;

/// The largest page `tenant.router_catalog_page` returns.
pub const MAX_PAGE: u32 = 1000;

/// One page to read: tenants whose id comes after `after` (None: from the
/// first), at most `limit` (1 to [`MAX_PAGE`]), optionally only ids that
/// start with `prefix` and only enabled (true) or disabled (false) ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageQuery {
    pub after: Option<String>,
    pub limit: u32,
    pub prefix: Option<String>,
    pub enabled: Option<bool>,
}

/// How many tenants the catalog has, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub tenants: i64,
    pub enabled: i64,
    pub disabled: i64,
}

fn unavailable(e: tokio_postgres::Error) -> CatalogError {
    CatalogError::Unavailable(e.to_string())
}

/// Read one page. `columns` are the columns of `tenant.router_catalog` to
/// select, as `r.<name>` (those the installed pg_tenant has);
/// `row_info` turns a row into a [`TenantInfo`]; `paged`: the catalog has
/// `tenant.router_catalog_page` (pg_tenant 0.7.0).
pub(crate) async fn read_page(
    client: &Client,
    paged: bool,
    columns: &str,
    row_info: impl Fn(&tokio_postgres::Row) -> TenantInfo,
    q: &PageQuery,
) -> Result<Vec<TenantInfo>, CatalogError> {
    // Checked by the caller too; never ask PostgreSQL for more.
    let limit = i32::try_from(q.limit.clamp(1, MAX_PAGE)).unwrap_or(1);
    let sql = if paged {
        format!("SELECT {columns} FROM tenant.router_catalog_page($1, $2, $3, $4) AS r")
    } else {
        // pg_tenant before 0.7.0: every tenant is read, the page is cut out
        // in PostgreSQL. starts_with compares text (no pattern).
        format!(
            "SELECT {columns} FROM tenant.router_catalog(NULL) AS r \
             WHERE (r.id COLLATE \"C\") > coalesce($1::text, '') \
               AND starts_with(r.id, coalesce($3::text, '')) \
               AND ($4::boolean IS NULL OR r.enabled = $4::boolean) \
             ORDER BY (r.id COLLATE \"C\") LIMIT $2::integer"
        )
    };
    let rows = client
        .query(&sql, &[&q.after, &limit, &q.prefix, &q.enabled])
        .await
        .map_err(unavailable)?;
    Ok(rows.iter().map(&row_info).collect())
}

/// Count the catalog's tenants by state (`counted`: the catalog has
/// `tenant.router_catalog_counts`, pg_tenant 0.7.0).
pub(crate) async fn read_counts(client: &Client, counted: bool) -> Result<Counts, CatalogError> {
    let sql = if counted {
        "SELECT tenants, enabled, disabled FROM tenant.router_catalog_counts()"
    } else {
        "SELECT count(*), count(*) FILTER (WHERE r.enabled), count(*) FILTER (WHERE NOT r.enabled) \
         FROM tenant.router_catalog(NULL) AS r"
    };
    let row = client.query_one(sql, &[]).await.map_err(unavailable)?;
    let get = |i: usize| row.try_get::<_, i64>(i).map_err(unavailable);
    Ok(Counts {
        tenants: get(0)?,
        enabled: get(1)?,
        disabled: get(2)?,
    })
}
