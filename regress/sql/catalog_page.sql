-- tenant.router_catalog_page and tenant.router_catalog_counts (0.7.0):
-- the pages and counts of tenant-router's admin API. Ids come in byte
-- order after a cursor, at most page_size (1 to 1000) at a time, filtered
-- by an id prefix compared as text (never a LIKE pattern: "_" is an
-- ordinary character) and by enabled state.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\pset null '(null)'
CREATE TEMP TABLE counts_before AS SELECT * FROM tenant.router_catalog_counts();

-- Byte order: "-" (0x2d) < "0" (0x30) < "_" (0x5f) < "a" (0x61).
SELECT count(*) AS created FROM (
  SELECT tenant.create_tenant(i) FROM unnest('{pgx-ab,pgx-a,pgx_a,pgx-a_b,pgx-a0,pgx-a-b,pgxa,pgx,pgy}'::text[]) i) c;
SELECT id FROM tenant.disable_tenant('pgx-a0');
SELECT id FROM tenant.disable_tenant('pgx_a');

-- From the start, one page at a time: each page starts after the last id
-- of the one before; the last page is short, the one after it empty.
SELECT id, enabled FROM tenant.router_catalog_page(NULL, 4, 'pgx');
SELECT id, enabled FROM tenant.router_catalog_page('pgx-a0', 4, 'pgx');
SELECT id, enabled FROM tenant.router_catalog_page('pgxa', 4, 'pgx');
-- A cursor need not be an existing id, and page_size 1 and 1000 are valid.
SELECT id FROM tenant.router_catalog_page('pgx-a-a', 1, 'pgx');
SELECT count(*) FROM tenant.router_catalog_page('pgx-a-a', 1000, 'pgx');

-- Prefixes: "_" and "-" are themselves ("pgx_" does not match "pgx-a"),
-- "%" matches nothing, a prefix is not a pattern.
SELECT id FROM tenant.router_catalog_page(NULL, 10, 'pgx_');
SELECT id FROM tenant.router_catalog_page(NULL, 10, 'pgx-a');
SELECT id FROM tenant.router_catalog_page(NULL, 10, 'pgx-a_');
SELECT id FROM tenant.router_catalog_page(NULL, 10, 'pgx-a-');
SELECT count(*) AS percent FROM tenant.router_catalog_page(NULL, 10, 'pgx%');
SELECT count(*) AS underscore FROM tenant.router_catalog_page(NULL, 10, 'pg_');
SELECT count(*) AS not_an_id FROM tenant.router_catalog_page(NULL, 10, 'PGX');
-- The whole prefix range, and nothing past it.
SELECT id FROM tenant.router_catalog_page('pgx', 10, 'pgx') WHERE id NOT LIKE 'pgx%';

-- Enabled state.
SELECT id FROM tenant.router_catalog_page(NULL, 10, 'pgx', false);
SELECT id FROM tenant.router_catalog_page('pgx-a', 3, 'pgx', true);

-- The columns are those of router_catalog().
SELECT (SELECT array_agg(p) FROM tenant.router_catalog_page('pgx-a-b', 2, 'pgx') p)
     = (SELECT array_agg(r) FROM tenant.router_catalog() r WHERE id IN ('pgx-a0', 'pgx-a_b')) AS same_rows;

-- Refused page sizes: 22023 with the value; nothing is read.
SELECT regress.try($$SELECT tenant.router_catalog_page(NULL, 0)$$);
SELECT regress.try($$SELECT tenant.router_catalog_page(NULL, 1001)$$);
SELECT regress.try($$SELECT tenant.router_catalog_page(NULL, -5)$$);
SELECT regress.try($$SELECT tenant.router_catalog_page('pgx', NULL)$$);

-- Counts, by state, as differences from before this test.
SELECT a.tenants - b.tenants AS tenants, a.enabled - b.enabled AS enabled, a.disabled - b.disabled AS disabled
  FROM tenant.router_catalog_counts() a, counts_before b;
SELECT (SELECT tenants FROM tenant.router_catalog_counts()) = (SELECT count(*) FROM tenant.tenants) AS counts_all;

-- Who may call them: tenant_router only; both pin their search_path and
-- run as their owner.
SELECT p.proname, p.prosecdef, p.proconfig, p.provolatile,
       has_function_privilege('tenant_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('tenant_router', p.oid, 'EXECUTE') AS router,
       has_function_privilege('regress_app', p.oid, 'EXECUTE') AS app
  FROM pg_proc p
 WHERE p.pronamespace = 'tenant'::regnamespace AND p.proname IN ('router_catalog_page', 'router_catalog_counts')
 ORDER BY p.proname;
\c - regress_app
SELECT regress.try($$SELECT tenant.router_catalog_page(NULL, 10)$$);
SELECT regress.try($$SELECT tenant.router_catalog_counts()$$);
\c - postgres
CREATE ROLE regress_pager LOGIN IN ROLE tenant_router;
-- A router's role whose search_path puts its own "<" first still gets
-- byte-ordered pages (the function's operators are schema-qualified).
CREATE SCHEMA regress_pager AUTHORIZATION regress_pager;
\c - regress_pager
CREATE FUNCTION regress_pager.lt(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR regress_pager.< (LEFTARG = text, RIGHTARG = text, FUNCTION = regress_pager.lt);
SET search_path = regress_pager, pg_catalog;
SELECT id FROM tenant.router_catalog_page('pgx-ab', 10, 'pgx');
SELECT tenants >= 9 AS counted FROM tenant.router_catalog_counts();
\c - postgres
SET client_min_messages = warning;
DROP SCHEMA regress_pager CASCADE;
DROP ROLE regress_pager;

SELECT count(*) AS dropped FROM (
  SELECT tenant.drop_tenant(i) FROM unnest('{pgx-ab,pgx-a,pgx_a,pgx-a_b,pgx-a0,pgx-a-b,pgxa,pgx,pgy}'::text[]) i) d;
