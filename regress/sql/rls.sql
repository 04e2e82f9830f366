-- tenant.protect / unprotect / audit / create_app_role, and plans that
-- stay index-friendly (docs/src/security/index.md).
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- Text, uuid and integer tenant columns.
CREATE TABLE rls_uuid (id int, tenant_id uuid);
CREATE TABLE rls_int (id int, org bigint);
CREATE TABLE rls_int4 (id int, tenant_id integer);
SELECT tenant.protect('rls_uuid');
SELECT tenant.protect('rls_int', 'org');
SELECT tenant.protect('rls_int4');
SELECT tenant.protect('rls_int4');  -- idempotent
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity, p.polname, p.polcmd,
       pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid
WHERE c.relname IN ('docs', 'rls_uuid', 'rls_int', 'rls_int4') ORDER BY 1;
SELECT indexrelid::regclass AS index, indrelid::regclass AS tbl FROM pg_index
WHERE indrelid IN ('rls_uuid'::regclass, 'rls_int'::regclass, 'rls_int4'::regclass) ORDER BY 2;
SELECT adrelid::regclass AS tbl, pg_get_expr(adbin, adrelid) AS column_default FROM pg_attrdef
WHERE adrelid IN ('rls_uuid'::regclass, 'rls_int'::regclass, 'rls_int4'::regclass) ORDER BY 1;

-- Bad input.
SELECT tenant.protect('rls_int', 'nope');
CREATE TABLE rls_bad (tenant_id jsonb);
SELECT tenant.protect('rls_bad');
SELECT tenant.protect('no_such_table');

-- The tenant predicate is an index condition; a sequential scan evaluates
-- the tenant once (InitPlan), not per row.
CREATE TABLE items (tenant_id text NOT NULL, id int NOT NULL, v text, PRIMARY KEY (tenant_id, id));
SELECT tenant.protect('items');
INSERT INTO items SELECT 't' || (g % 10), g, 'v' || g FROM generate_series(1, 20000) g;
ANALYZE items;
GRANT SELECT ON items TO regress_app;
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter('t3', 1);
SELECT * FROM regress.explain($$SELECT * FROM items WHERE id = 13$$);
SELECT * FROM items WHERE id = 13;
SELECT * FROM items WHERE id = 14;
SET enable_indexscan = off; SET enable_bitmapscan = off;
SELECT * FROM regress.explain($$SELECT count(*) FROM items$$);
SELECT count(*) FROM items;
\c - postgres
SET client_min_messages = warning;

-- audit(): one row per problem, nothing for a correctly protected table.
CREATE TABLE audit_open (tenant_id text);
CREATE TABLE audit_half (tenant_id text);
ALTER TABLE audit_half ENABLE ROW LEVEL SECURITY;
CREATE TABLE audit_wide (tenant_id text);
SELECT tenant.protect('audit_wide');
CREATE POLICY everything ON audit_wide USING (true);
CREATE TABLE audit_ok (tenant_id text);
SELECT tenant.protect('audit_ok');
SELECT * FROM tenant.audit() WHERE object LIKE 'public.audit\_%';
CREATE ROLE regress_bypass LOGIN BYPASSRLS;
SELECT * FROM tenant.audit() WHERE object = 'regress_bypass';
DROP ROLE regress_bypass;
GRANT SET ON PARAMETER pg_tenant.tenant_id TO regress_app;
SELECT * FROM tenant.audit() WHERE object LIKE 'pg_tenant.%';
REVOKE SET ON PARAMETER pg_tenant.tenant_id FROM regress_app;
SELECT * FROM tenant.audit() WHERE object LIKE 'pg_tenant.%';
SELECT tenant.protect('audit_open');
SELECT tenant.protect('audit_half');
DROP POLICY everything ON audit_wide;
SELECT * FROM tenant.audit() WHERE object LIKE 'public.audit\_%';

-- unprotect.
SELECT tenant.unprotect('audit_ok');
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'audit_ok';
SELECT * FROM tenant.audit() WHERE object LIKE 'public.audit\_%';

-- create_app_role: creates a safe role, refuses unsafe existing ones.
SELECT tenant.create_app_role('regress_app2');
SELECT rolcanlogin, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'regress_app2';
SELECT tenant.create_app_role('regress_app2');  -- existing and safe: fine
CREATE ROLE regress_super SUPERUSER;
SELECT tenant.create_app_role('regress_super');
CREATE ROLE regress_owner LOGIN;
CREATE TABLE owned (tenant_id text);
ALTER TABLE owned OWNER TO regress_owner;
SELECT tenant.protect('owned');
SELECT tenant.create_app_role('regress_owner');
DROP TABLE owned;
DROP ROLE regress_super, regress_owner;
REVOKE ALL ON SCHEMA tenant FROM regress_app2;
DROP ROLE regress_app2;
