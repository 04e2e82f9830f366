-- tenant.audit() sees every way around row level security it can know of,
-- each with a one-line fix; the corrected objects drop out of the report.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE au_orders (id int NOT NULL, tenant_id text NOT NULL, total int,
                        PRIMARY KEY (tenant_id, id));
SELECT tenant.protect('au_orders');
CREATE TABLE au_lines (id int NOT NULL, tenant_id text NOT NULL, order_id int,
                       code text UNIQUE, PRIMARY KEY (tenant_id, id),
                       FOREIGN KEY (order_id, tenant_id) REFERENCES au_orders (id, tenant_id));
SELECT tenant.protect('au_lines');
CREATE TABLE au_parent (id int PRIMARY KEY, tenant_id text NOT NULL);
SELECT tenant.protect('au_parent');
CREATE TABLE au_child (id int, tenant_id text NOT NULL, parent_id int REFERENCES au_parent (id),
                       PRIMARY KEY (tenant_id, id));
SELECT tenant.protect('au_child');
-- A unique key with the tenant column only in INCLUDE, an exclusion
-- constraint without it, a protected table owned by an application role.
CREATE TABLE au_users (tenant_id text NOT NULL, email text NOT NULL, during tsrange,
                       EXCLUDE USING gist (during WITH &&));
SELECT tenant.protect('au_users');
CREATE UNIQUE INDEX au_users_email ON au_users (email) INCLUDE (tenant_id);
CREATE TABLE au_owned (tenant_id text NOT NULL);
SELECT tenant.protect('au_owned');
ALTER TABLE au_owned OWNER TO regress_app;
-- Owned by the superuser (bypasses RLS): a view, a materialized view and a
-- SECURITY DEFINER function over a protected table, all reachable by tenants.
CREATE VIEW au_all_orders AS SELECT * FROM au_orders;
CREATE VIEW au_invoker_orders WITH (security_invoker = true) AS SELECT * FROM au_orders;
CREATE MATERIALIZED VIEW au_order_totals AS SELECT tenant_id, sum(total) FROM au_orders GROUP BY 1;
CREATE FUNCTION au_peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT count(*) FROM au_orders $$;
GRANT SELECT ON au_all_orders, au_invoker_orders, au_order_totals TO regress_app;
-- Login roles with monitoring rights.
CREATE ROLE regress_monitor LOGIN IN ROLE pg_monitor;
SELECT * FROM tenant.audit()
 WHERE object LIKE 'public.au\_%' OR object LIKE 'au\_%' OR object = 'regress_monitor'
 ORDER BY 1, 2;
-- allow_ddl without a role of its own (the fixture tenant ddlco).
SELECT * FROM tenant.audit() WHERE object = '''ddlco''';
-- pg_stat_statements readable by a shared application role.
CREATE EXTENSION pg_stat_statements;
SELECT * FROM tenant.audit() WHERE object LIKE '%pg_stat_statements%' AND problem LIKE '%role regress\_app:%';
REVOKE EXECUTE ON FUNCTION pg_stat_statements(boolean) FROM PUBLIC;
SELECT count(*) FROM tenant.audit() WHERE object LIKE '%pg_stat_statements%';
DROP EXTENSION pg_stat_statements;

-- The fixes from the report; the problems go away.
ALTER VIEW au_all_orders SET (security_invoker = true);
DROP MATERIALIZED VIEW au_order_totals;
ALTER FUNCTION au_peek() SECURITY INVOKER;
ALTER TABLE au_child DROP CONSTRAINT au_child_parent_id_fkey;
ALTER TABLE au_parent DROP CONSTRAINT au_parent_pkey;
ALTER TABLE au_parent ADD PRIMARY KEY (tenant_id, id);
ALTER TABLE au_child ADD FOREIGN KEY (tenant_id, parent_id) REFERENCES au_parent (tenant_id, id);
ALTER TABLE au_lines DROP CONSTRAINT au_lines_code_key;
ALTER TABLE au_lines ADD UNIQUE (tenant_id, code);
DROP ROLE regress_monitor;
DROP TABLE au_users, au_owned;
SELECT * FROM tenant.audit()
 WHERE object LIKE 'public.au\_%' OR object LIKE 'au\_%' OR object = 'regress_monitor'
 ORDER BY 1, 2;
DROP VIEW au_all_orders, au_invoker_orders;
DROP FUNCTION au_peek();
DROP TABLE au_child, au_parent, au_lines, au_orders;

-- 0.5.0: a rule runs its actions with the rights of its table's owner. One
-- reading a protected table as a role that bypasses its row level security
-- (the superuser; the protected table's owner when RLS is not forced) moves
-- every tenant's rows; one whose owner is subject to the policy does not.
CREATE ROLE regress_au_owner NOLOGIN;
CREATE TABLE au_orders2 (tenant_id text NOT NULL, id int);
SELECT tenant.protect('au_orders2');
CREATE TABLE au_unforced (tenant_id text NOT NULL, id int);
SELECT tenant.protect('au_unforced');
ALTER TABLE au_unforced OWNER TO regress_au_owner;
ALTER TABLE au_unforced NO FORCE ROW LEVEL SECURITY;
CREATE TABLE au_ping_log (org text, n bigint);
CREATE TABLE au_pings (n int);
CREATE RULE au_count_orders AS ON INSERT TO au_pings
  DO ALSO INSERT INTO au_ping_log SELECT tenant_id, count(*) FROM au_orders2 GROUP BY 1;
CREATE TABLE au_pings_owned (n int);
ALTER TABLE au_pings_owned OWNER TO regress_au_owner;
CREATE RULE au_count_unforced AS ON INSERT TO au_pings_owned
  DO ALSO INSERT INTO au_ping_log SELECT tenant_id, count(*) FROM au_unforced GROUP BY 1;
CREATE RULE au_count_forced AS ON UPDATE TO au_pings_owned
  DO ALSO INSERT INTO au_ping_log SELECT tenant_id, count(*) FROM au_orders2 GROUP BY 1;
SELECT * FROM tenant.audit() WHERE object LIKE '% on public.au\_%' ORDER BY 1, 2;
DROP RULE au_count_orders ON au_pings;
DROP RULE au_count_unforced ON au_pings_owned;
SELECT count(*) FROM tenant.audit() WHERE object LIKE '% on public.au\_%';
-- 0.5.0: a SECURITY DEFINER function executable only through a group: the
-- NOINHERIT application role reaches it by SET ROLE, directly or through
-- the tenant role regress_initech it may switch to.
CREATE ROLE regress_au_group NOLOGIN;
CREATE FUNCTION au_group_peek() RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT count(*) FROM au_orders2 $$;
REVOKE EXECUTE ON FUNCTION au_group_peek() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION au_group_peek() TO regress_au_group;
SELECT count(*) AS unreachable FROM tenant.audit() WHERE object = 'public.au_group_peek()';
GRANT regress_au_group TO regress_app;
SELECT * FROM tenant.audit() WHERE object = 'public.au_group_peek()';
REVOKE regress_au_group FROM regress_app;
GRANT regress_au_group TO regress_initech;
SELECT * FROM tenant.audit() WHERE object = 'public.au_group_peek()';
REVOKE EXECUTE ON FUNCTION au_group_peek() FROM regress_au_group;
SELECT count(*) FROM tenant.audit() WHERE object = 'public.au_group_peek()';
REVOKE regress_au_group FROM regress_initech;
DROP FUNCTION au_group_peek();
DROP TABLE au_pings, au_pings_owned, au_ping_log, au_unforced, au_orders2;
DROP ROLE regress_au_group, regress_au_owner;

-- 0.5.0: a policy with protect()'s name that says something else decides
-- what every tenant sees: audit() reports it, and a partition attached
-- with one gets protect()'s policy instead.
\c - postgres
SET client_min_messages = warning;
CREATE TABLE au_lookalike (tenant_id text NOT NULL);
SELECT tenant.protect('au_lookalike');
ALTER POLICY pg_tenant_isolation ON au_lookalike USING (true) WITH CHECK (true);
SELECT * FROM tenant.audit() WHERE object = 'public.au_lookalike' ORDER BY 2;
CREATE TABLE au_lp (tenant_id text NOT NULL, k int) PARTITION BY RANGE (k);
SELECT tenant.protect('au_lp');
CREATE TABLE au_lp_1 (tenant_id text NOT NULL, k int);
ALTER TABLE au_lp_1 ENABLE ROW LEVEL SECURITY;
ALTER TABLE au_lp_1 FORCE ROW LEVEL SECURITY;
CREATE POLICY pg_tenant_isolation ON au_lp_1 USING (true) WITH CHECK (true);
ALTER TABLE au_lp ATTACH PARTITION au_lp_1 FOR VALUES FROM (0) TO (10);
SELECT tenant._isolates('au_lp_1') AS replaced, pg_get_expr(polqual, polrelid) AS using_expr
  FROM pg_policy WHERE polrelid = 'au_lp_1'::regclass;
-- Control: tables protect() protected are not reported.
SELECT count(*) AS lookalikes FROM tenant.audit()
 WHERE object IN ('public.au_lp', 'public.au_lp_1') AND problem LIKE 'policy pg_tenant_isolation is not%';
-- The fix the report names clears it.
SELECT tenant.protect('au_lookalike');
SELECT count(*) AS left_over FROM tenant.audit() WHERE object = 'public.au_lookalike';
DROP TABLE au_lookalike, au_lp;
