-- Benchmark fixtures in database "bench" (bench/*.sh load this; idempotent).
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_tenant;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_trust') THEN
    CREATE ROLE bench_trust LOGIN IN ROLE hba_trust;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_router') THEN
    CREATE ROLE bench_router LOGIN IN ROLE tenant_router;
  END IF;
  PERFORM tenant.create_app_role('bench_trust');
  PERFORM tenant.create_tenant('t' || i) FROM generate_series(0, 99) i
   WHERE NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 't' || i);
END $$;
-- 1,000,000 rows over 100 tenants; the same data with and without RLS.
CREATE TABLE IF NOT EXISTS rls_rows (tenant_id text NOT NULL, id int NOT NULL, v text NOT NULL,
                                     PRIMARY KEY (tenant_id, id));
CREATE TABLE IF NOT EXISTS plain_rows (tenant_id text NOT NULL, id int NOT NULL, v text NOT NULL,
                                       PRIMARY KEY (tenant_id, id));
INSERT INTO rls_rows SELECT 't' || (g % 100), g, md5(g::text) FROM generate_series(1, 1000000) g
WHERE NOT EXISTS (SELECT 1 FROM rls_rows);
INSERT INTO plain_rows SELECT * FROM rls_rows WHERE NOT EXISTS (SELECT 1 FROM plain_rows);
SELECT tenant.protect('rls_rows');
GRANT SELECT ON rls_rows, plain_rows TO bench_trust;
VACUUM ANALYZE rls_rows;
VACUUM ANALYZE plain_rows;
