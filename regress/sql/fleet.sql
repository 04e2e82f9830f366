-- Limits across several routers: connection leases counted in shared
-- memory (tenant.fleet_acquire, fleet_release, fleet_restore, fleet_counts),
-- held by the backend that took them and given back at its exit; granted
-- to tenant_router only. tenant.tenant_backends is for superusers.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE ROLE regress_fleet_router LOGIN IN ROLE tenant_router;
SELECT id FROM tenant.create_tenant('fleet-a');

\c - regress_fleet_router
\set SHOW_CONTEXT never
-- Two of two are granted, the third is refused and counts nothing.
SELECT tenant.fleet_acquire('fleet-a', 2) AS first, tenant.fleet_acquire('fleet-a', 2) AS second,
       tenant.fleet_acquire('fleet-a', 2) AS third;
SELECT * FROM tenant.fleet_counts() WHERE tenant LIKE 'fleet-%' ORDER BY 1;
-- A backend gives back only leases it holds.
SELECT tenant.fleet_release('fleet-a') AS released, tenant.fleet_release('fleet-b') AS not_held;
SELECT tenant.fleet_acquire('fleet-a', 2) AS again;
-- A restore sets what this backend holds, above the limit if need be;
-- 0 gives a tenant's leases back.
SELECT tenant.fleet_restore('{fleet-a,fleet-b}', '{4,1}') AS held;
SELECT * FROM tenant.fleet_counts() WHERE tenant LIKE 'fleet-%' ORDER BY 1;
SELECT tenant.fleet_acquire('fleet-a', 5) AS fifth, tenant.fleet_acquire('fleet-a', 5) AS sixth;
SELECT tenant.fleet_restore('{fleet-b}', '{0}') AS held;
SELECT * FROM tenant.fleet_counts() WHERE tenant LIKE 'fleet-%' ORDER BY 1;
-- Bad input: the SQLSTATE and a message that names the problem; nothing
-- changes.
\set VERBOSITY sqlstate
SELECT tenant.fleet_acquire('Bad Id', 2);
\set VERBOSITY default
SELECT tenant.fleet_acquire('Bad Id', 2);
SELECT tenant.fleet_acquire('fleet-a', 0);
SELECT tenant.fleet_restore('{fleet-a}', '{1,2}');
SELECT tenant.fleet_restore('{fleet-a,fleet-a}', '{1,2}');
SELECT tenant.fleet_restore('{fleet-a}', '{-1}');
SELECT tenant.fleet_restore('{fleet-a,NULL}', '{1,1}');
SELECT tenant.fleet_restore('{fleet-a}', '{2000000}');
SELECT * FROM tenant.fleet_counts() WHERE tenant LIKE 'fleet-%' ORDER BY 1;
-- A full table (pg_tenant.fleet_max_tenants tenants with leases) refuses a
-- lease for one more tenant with 53400 naming the setting; the tenants
-- counted keep their counts and their leases. (Leases are not
-- transactional: those taken before the error stay this backend's.)
DO $$
DECLARE n int := 0;
BEGIN
  LOOP
    n := n + 1;
    PERFORM tenant.fleet_acquire('fleet-full-' || n, 1);
    EXIT WHEN n > 2000000;
  END LOOP;
EXCEPTION WHEN configuration_limit_exceeded THEN
  RAISE NOTICE '% %', SQLSTATE, SQLERRM;
END $$;
SELECT tenant.fleet_acquire('fleet-one-more', 1) AS one_more;
SELECT * FROM tenant.fleet_counts() WHERE tenant = 'fleet-a';
SELECT tenant.fleet_release('fleet-a') AS released, tenant.fleet_acquire('fleet-a', 5) AS again;
SELECT count(*) = current_setting('pg_tenant.fleet_max_tenants')::int AS full
  FROM tenant.fleet_counts();
SELECT tenant.fleet_restore('{fleet-full-1,fleet-one-more}', '{0,1}') > 0 AS swapped;
SELECT connections FROM tenant.fleet_counts() WHERE tenant = 'fleet-one-more';
-- Not the router's: which backends a tenant has.
SELECT * FROM tenant.tenant_backends('fleet-a');

-- A tenant session may call none of them.
\c - regress_app
\set SHOW_CONTEXT never
SELECT regress.enter('fleet-a', 1);
SELECT tenant.fleet_acquire('fleet-a', 100);
SELECT tenant.fleet_release('fleet-a');
SELECT tenant.fleet_restore('{fleet-a}', '{0}');
SELECT * FROM tenant.fleet_counts();
SELECT * FROM tenant.tenant_backends('fleet-a');

-- Even one wrongly granted tenant_router: not with a tenant context.
\c - postgres
GRANT tenant_router TO regress_app;
\c - regress_app
\set SHOW_CONTEXT never
SELECT regress.enter('fleet-a', 1);
SELECT tenant.fleet_acquire('fleet-a', 100);
SELECT tenant.fleet_restore('{fleet-a}', '{1}');
SELECT * FROM tenant.fleet_counts();
\c - postgres
REVOKE tenant_router FROM regress_app;

-- A backend whose transaction changed its context exits without ending it:
-- the rollback at exit puts the context back after the exit callback
-- emptied the registry entry; the dead backend must not stay listed (an
-- operator ending a moved tenant's sessions would signal whatever process
-- has that pid next).
\c - regress_app
\set SHOW_CONTEXT never
SELECT regress.enter('fleet-a', 1) IS NOT NULL AS entered;
SELECT pg_backend_pid() AS gone_pid \gset
BEGIN;
SELECT regress.leave(2);
\c - postgres
SET pg_tenant_regress.gone_pid = :gone_pid;
DO $$
BEGIN
  FOR i IN 1..1000 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM pg_stat_activity
                          WHERE pid = current_setting('pg_tenant_regress.gone_pid')::int);
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
SELECT (SELECT count(*) FROM pg_stat_activity WHERE pid = :gone_pid) AS alive,
       (SELECT count(*) FROM tenant.tenant_backends('fleet-a') p WHERE p = :gone_pid) AS listed;
RESET pg_tenant_regress.gone_pid;

-- The router's backend exited: its leases were given back (wait for its
-- exit, at most 10 s).
\c - postgres
\set SHOW_CONTEXT never
DO $$
BEGIN
  FOR i IN 1..1000 LOOP
    EXIT WHEN NOT EXISTS (SELECT FROM tenant.fleet_counts() WHERE tenant LIKE 'fleet-%');
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;
SELECT * FROM tenant.fleet_counts() WHERE tenant LIKE 'fleet-%' ORDER BY 1;
-- A superuser never has a context: tenant_backends lists other backends.
SELECT count(*) AS mine FROM tenant.tenant_backends('fleet-a') p WHERE p = pg_backend_pid();
SELECT tenant.tenant_backends('Bad Id');
SHOW pg_tenant.fleet_max_tenants;
SET client_min_messages = warning;
SELECT tenant.drop_tenant('fleet-a');
DROP ROLE regress_fleet_router;
