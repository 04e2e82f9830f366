-- Pooling benchmark fixtures in database "bench" (bench/pool.sh and
-- bench/soak.sh load this; idempotent). The pgbench tables (scale 10) are
-- made by the scripts.
--
-- bench_pw: an application role (tenant.create_app_role: LOGIN, member of
-- tenant_app, nothing more) with a SCRAM-SHA-256 password. It is in no
-- hba_* group, so scripts/cluster's pg_hba.conf gives it its last rule,
-- scram-sha-256, over TCP; tenant.login_verifier('bench_pw') hands its
-- verifier to tenant-router in `auth.login = "verify"` mode.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_tenant;
SET password_encryption = 'scram-sha-256';
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bench_router') THEN
    CREATE ROLE bench_router LOGIN IN ROLE tenant_router;
  END IF;
  PERFORM tenant.create_app_role('bench_pw');
END $$;
-- Set on every run: a verifier made by this server (random salt, 4096 iterations).
ALTER ROLE bench_pw PASSWORD 'bench-pw';
-- Ten tenants for bench_pw: no connection limit in the router (512 clients
-- of one tenant), and each may use the whole 20-backend shared pool (its
-- pool_size is its share), like PgBouncer's default_pool_size = 20.
DO $$
DECLARE i int;
BEGIN
  FOR i IN 0..9 LOOP
    IF NOT EXISTS (SELECT 1 FROM tenant.tenants WHERE id = 'p' || i) THEN
      PERFORM tenant.create_tenant('p' || i, max_connections => 0, pool_size => 20,
                                   login_roles => '{bench_pw}');
    ELSE
      PERFORM tenant.alter_tenant('p' || i, max_connections => 0, pool_size => 20,
                                  login_roles => '{bench_pw}', enabled => true);
    END IF;
  END LOOP;
END $$;
