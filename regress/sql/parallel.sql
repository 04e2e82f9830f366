-- Parallel workers see the tenant (docs/src/security/index.md): 1,000,000 rows
-- over 10 tenants, parallel plans forced.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE big (tenant_id text NOT NULL, v int NOT NULL);
INSERT INTO big SELECT 't' || (g % 10), g FROM generate_series(1, 1000000) g;
CREATE TABLE big_plain AS SELECT * FROM big;
SELECT tenant.protect('big');
ANALYZE big; ANALYZE big_plain;
GRANT SELECT ON big, big_plain TO regress_app;
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter('t7', 1);
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SET enable_indexonlyscan = off;
SELECT * FROM regress.explain($$SELECT count(*) FROM big$$);
SELECT count(*), count(DISTINCT tenant_id), min(tenant_id) FROM big;
-- Workers evaluate current_tenant_id() themselves here (no RLS, no
-- initPlan): the value reaches them through the serialized GUC.
SELECT * FROM regress.explain($$SELECT count(*) FROM big_plain WHERE tenant_id = tenant.current_tenant_id()$$);
SELECT count(*) FROM big_plain WHERE tenant_id = tenant.current_tenant_id();
