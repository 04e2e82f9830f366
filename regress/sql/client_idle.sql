-- client_idle_timeout_ms (0.6.0): how long a client connected through
-- tenant-router may stay idle outside a transaction before the router
-- closes it (FATAL 57P05, like idle_session_timeout; 0 = no limit). The
-- router enforces it; the catalog stores it: a default, a tenant's own
-- value, NULL back to the default, negative values refused.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- No defaults row: the built-in default, 0.
SELECT count(*) AS defaults_rows FROM tenant.defaults;
SELECT id FROM tenant.create_tenant('idle-a', client_idle_timeout_ms => 30000);
SELECT id FROM tenant.create_tenant('idle-b');
SELECT id, client_idle_timeout_ms FROM tenant.tenants WHERE id LIKE 'idle-%' ORDER BY id;
SELECT id, client_idle_timeout_ms FROM tenant.tenant_list WHERE id LIKE 'idle-%' ORDER BY id;
SELECT id, client_idle_timeout_ms FROM tenant.router_catalog() WHERE id LIKE 'idle-%' ORDER BY id;
-- The defaults row's value applies where a tenant has none.
SELECT client_idle_timeout_ms FROM tenant.set_defaults(client_idle_timeout_ms => 600000);
SELECT id, client_idle_timeout_ms FROM tenant.router_catalog() WHERE id LIKE 'idle-%' ORDER BY id;
-- A tenant's own 0 means no limit, whatever the default says.
SELECT (tenant.alter_tenant('idle-b', client_idle_timeout_ms => 0)).client_idle_timeout_ms;
SELECT id, client_idle_timeout_ms FROM tenant.tenant_list WHERE id LIKE 'idle-%' ORDER BY id;
-- Other changes keep it.
SELECT (tenant.alter_tenant('idle-a', max_connections => 5)).client_idle_timeout_ms;
-- reset => NULL: back to the default.
SELECT (tenant.alter_tenant('idle-a', reset => '{client_idle_timeout_ms}')).client_idle_timeout_ms IS NULL AS stored_null;
SELECT id, client_idle_timeout_ms FROM tenant.router_catalog('idle-a');
-- Negative: 22023 naming the field, and nothing changes.
SELECT regress.try($$SELECT tenant.create_tenant('idle-c', client_idle_timeout_ms => -1)$$);
SELECT regress.try($$SELECT tenant.alter_tenant('idle-b', client_idle_timeout_ms => -1)$$);
SELECT regress.try($$SELECT tenant.set_defaults(client_idle_timeout_ms => -1)$$);
SELECT regress.try($$SELECT tenant.set_defaults(client_idle_timeout_ms => NULL)$$);
SELECT count(*) AS created FROM tenant.tenants WHERE id = 'idle-c';
SELECT id, client_idle_timeout_ms FROM tenant.tenants WHERE id LIKE 'idle-%' ORDER BY id;
SELECT client_idle_timeout_ms FROM tenant.defaults;
-- A raw write is held by the CHECK constraints (23514).
SELECT regress.try($$UPDATE tenant.tenants SET client_idle_timeout_ms = -1 WHERE id = 'idle-b'$$);
SELECT regress.try($$UPDATE tenant.defaults SET client_idle_timeout_ms = -1$$);
-- A positional call with 0.5.0's arguments still works (the new one is
-- last) and leaves the new default at 0.
SELECT client_idle_timeout_ms FROM tenant.set_defaults(100, 0, 1.0, 0, 0, 10, 0, 'session', 300000, 60000, 65536, 262144, 1048576, 64);
-- Who may call the functions that take or return it: tenant_admin manages,
-- tenant_router reads, an application role neither.
SELECT p.proname, has_function_privilege('tenant_admin', p.oid, 'EXECUTE') AS admin,
       has_function_privilege('tenant_router', p.oid, 'EXECUTE') AS router,
       has_function_privilege('regress_app', p.oid, 'EXECUTE') AS app
  FROM pg_proc p
 WHERE p.pronamespace = 'tenant'::regnamespace AND 'client_idle_timeout_ms' = ANY (p.proargnames)
 ORDER BY p.proname;
SELECT tenant.drop_tenant('idle-a'), tenant.drop_tenant('idle-b');
DELETE FROM tenant.defaults;
