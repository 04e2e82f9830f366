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
-- Per-user rows (bench/rls.sh (c), (d)): the same 1,000,000 rows with an
-- owner (100 end users per tenant), protected by the tenant policy plus a
-- restrictive per-user policy on tenant.current_subject(), and plain.
CREATE TABLE IF NOT EXISTS user_rows (tenant_id text NOT NULL, owner text NOT NULL, id int NOT NULL,
                                      v text NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE TABLE IF NOT EXISTS plain_user_rows (tenant_id text NOT NULL, owner text NOT NULL, id int NOT NULL,
                                            v text NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE INDEX IF NOT EXISTS user_rows_owner ON user_rows (tenant_id, owner);
CREATE INDEX IF NOT EXISTS plain_user_rows_owner ON plain_user_rows (tenant_id, owner);
INSERT INTO user_rows SELECT 't' || (g % 100), 'u' || ((g / 100) % 100), g, md5(g::text)
FROM generate_series(1, 1000000) g WHERE NOT EXISTS (SELECT 1 FROM user_rows);
INSERT INTO plain_user_rows SELECT * FROM user_rows WHERE NOT EXISTS (SELECT 1 FROM plain_user_rows);
SELECT tenant.protect('user_rows');
DROP POLICY IF EXISTS user_rows_owner ON user_rows;
CREATE POLICY user_rows_owner ON user_rows AS RESTRICTIVE
  USING (owner = (SELECT tenant.current_subject()));
GRANT SELECT ON user_rows, plain_user_rows TO bench_trust;
VACUUM ANALYZE user_rows;
VACUUM ANALYZE plain_user_rows;
