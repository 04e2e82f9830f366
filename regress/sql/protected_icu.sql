-- tenant.protect and a nondeterministic collation (0.8.0). Needs a server
-- built with ICU (nondeterministic collations are ICU's): on one without
-- (the PyPI builds of PostgreSQL 16-18 used here), such a collation cannot
-- exist, the test stops at its first query, and protected_icu_1.out is the
-- expected output. (initdb makes the ICU collation "unicode" even then, so
-- it does not count.)
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT NOT EXISTS (SELECT FROM pg_collation WHERE collprovider = 'i' AND collname <> 'unicode') AS skip_test \gset
\if :skip_test
\quit
\endif
-- A nondeterministic collation on the tenant column: `=` there matches
-- other tenants' ids ('acme' = 'ACME' case-insensitively), which the tree
-- comparison (collations left out) cannot see. protect refuses such a
-- column; a protected table whose column an operator moved to one (policy
-- dropped, column altered, the same policy written again) is no longer
-- protect's: audit() reports it and COPY refuses it.
CREATE COLLATION pr_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE pr_ci_t (tenant_id text COLLATE pr_ci NOT NULL, v int);
SELECT regress.try($$SELECT tenant.protect('pr_ci_t')$$) AS protect_ci;
SELECT count(*) AS recorded FROM tenant.protected WHERE relid = 'pr_ci_t'::regclass;
-- Control: a deterministic ICU collation is protect's as before.
CREATE TABLE pr_icu (tenant_id text COLLATE "und-x-icu" NOT NULL, v int);
SELECT tenant.protect('pr_icu');
SELECT tenant._isolates('pr_icu') AS isolates;
CREATE TABLE pr_swap (tenant_id text NOT NULL, v int);
SELECT tenant.protect('pr_swap');
SELECT tenant._isolates('pr_swap') AS isolates;
DROP POLICY pg_tenant_isolation ON pr_swap;
ALTER TABLE pr_swap ALTER COLUMN tenant_id TYPE text COLLATE pr_ci;
CREATE POLICY pg_tenant_isolation ON pr_swap AS PERMISSIVE FOR ALL TO PUBLIC
  USING (tenant_id = (SELECT tenant.current_tenant_id())) WITH CHECK (tenant_id = (SELECT tenant.current_tenant_id()));
INSERT INTO pr_swap VALUES ('acme', 1), ('ACME', 2);
SELECT tenant._isolates('pr_swap') AS isolates, tenant._tenant_column('pr_swap') AS column_read;
SELECT problem FROM tenant.audit() WHERE object = 'public.pr_swap' AND problem LIKE 'policy%';
GRANT SELECT, INSERT ON pr_swap, pr_icu TO regress_app;
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('acme', 1);
-- what the policy lets tenant acme read: ACME's row too
SELECT tenant_id, v FROM pr_swap ORDER BY v;
COPY pr_swap (v) FROM STDIN;
3
\.
SELECT count(*) AS loaded FROM pr_swap WHERE v = 3;
-- Control: the deterministic one loads.
COPY pr_icu (v) FROM STDIN;
4
\.
SELECT tenant_id, v FROM pr_icu;
\c - postgres
SET client_min_messages = warning;
DROP TABLE pr_ci_t, pr_icu, pr_swap;
DROP COLLATION pr_ci;
