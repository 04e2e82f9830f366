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
//! Which one is used follows the catalog connection's `Schema` (read again
//! at most once a second while older than 0.7.0, and after a failed page),
//! so an `ALTER EXTENSION pg_tenant UPDATE` needs no router restart.
//!
//! Ids come in byte order (`COLLATE "C"`, whatever the database's
//! collation), the order of Rust's `str`, so a page read from the router's
//! memory (`active=true`) sorts the same way.

use super::row::TenantInfo;
use super::schema::{RowDecoder, Version};
use super::types::{CatalogError, Counts, PageQuery, MAX_PAGE};
use tokio_postgres::Client;

fn unavailable(e: tokio_postgres::Error) -> CatalogError {
    CatalogError::Unavailable(e.to_string())
}

/// Read one page, its rows with `rows` (of the installed version), by the
/// query numbered `seq`.
pub(super) async fn read_page(
    client: &Client,
    rows: &RowDecoder,
    seq: u64,
    q: &PageQuery,
) -> Result<Vec<TenantInfo>, CatalogError> {
    let columns = rows.columns();
    // Checked by the caller too; never ask PostgreSQL for more.
    let limit = i32::try_from(q.limit.clamp(1, MAX_PAGE)).unwrap_or(1);
    let sql = if rows.version().has_pages() {
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
    let found = client
        .query(&sql, &[&q.after, &limit, &q.prefix, &q.enabled])
        .await
        .map_err(unavailable)?;
    found.iter().map(|r| rows.decode(r, seq)).collect()
}

/// Count the catalog's tenants (of `version`) by state.
pub(super) async fn read_counts(client: &Client, version: Version) -> Result<Counts, CatalogError> {
    let sql = if version.has_pages() {
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
