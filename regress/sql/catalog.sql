-- The tenant catalog and its management functions.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\pset null '(null)'

-- Valid input, named and defaulted arguments.
SELECT id, name, isolation, max_connections, qps_limit, allow_ddl, read_only, allowed_operations, enabled
FROM tenant.create_tenant('cat-a', 'Cat A', max_connections => 5, qps_limit => 100, burst_multiplier => 1.5);
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_cat_b') THEN
  CREATE ROLE regress_cat_b NOLOGIN IN ROLE tenant_app; END IF; END $$;
SELECT id, isolation, schema_name FROM tenant.create_tenant('cat_b', isolation => 'schema', schema_name => 'cat_b', role_name => 'regress_cat_b');
SELECT id, isolation, database_name FROM tenant.create_tenant('cat-c', isolation => 'database', database_name => 'cat_c_db');
SELECT id, max_connections, qps_limit, burst_multiplier, max_query_ms, max_result_bytes, pool_size, min_idle
FROM tenant.tenant_list WHERE id LIKE 'cat%' ORDER BY id;

-- Defaults apply where a tenant's limit is NULL.
SELECT max_connections, qps_limit FROM tenant.set_defaults(max_connections => 20, qps_limit => 7);
SELECT id, max_connections, qps_limit FROM tenant.tenant_list WHERE id LIKE 'cat%' ORDER BY id;
SELECT * FROM tenant.set_defaults(burst_multiplier => 0.5);

-- alter, reset, disable, enable.
SELECT id, max_connections, read_only FROM tenant.alter_tenant('cat-a', max_connections => 9, read_only => true);
SELECT id, max_connections FROM tenant.alter_tenant('cat-a', reset => '{max_connections}');
SELECT id, max_connections FROM tenant.tenant_list WHERE id = 'cat-a';
SELECT id, enabled FROM tenant.disable_tenant('cat-a');
SELECT id, enabled FROM tenant.enable_tenant('cat-a');
SELECT id, enabled, qps_limit, max_connections FROM tenant.router_catalog('cat-a');
SELECT tenant.alter_tenant('cat-a', reset => '{name}');

-- pool_mode (0.4.0): NULL uses the default ('session' when there is none);
-- tenant_list and router_catalog show the effective value, router_catalog
-- after its limits: dedicated_pool, pool_size, min_idle, pool_mode.
SELECT id, pool_mode FROM tenant.create_tenant('cat-pool', pool_mode => 'transaction', pool_size => 3, dedicated_pool => true);
SELECT id, pool_mode FROM tenant.tenant_list WHERE id IN ('cat-a', 'cat-pool') ORDER BY id;
SELECT pool_mode FROM tenant.set_defaults(pool_mode => 'transaction');
SELECT id, pool_mode FROM tenant.tenant_list WHERE id IN ('cat-a', 'cat-pool') ORDER BY id;
SELECT id, pool_mode FROM tenant.alter_tenant('cat-pool', pool_mode => 'session');
SELECT id, pool_mode FROM tenant.alter_tenant('cat-pool', reset => '{pool_mode}');
SELECT * FROM tenant.router_catalog('cat-pool');
SELECT pool_mode FROM tenant.set_defaults();
SELECT id, pool_mode FROM tenant.router_catalog('cat-pool');
SELECT tenant.drop_tenant('cat-pool');

-- Bad input: each with its error.
\set VERBOSITY default
SELECT tenant.create_tenant('Bad Id');
SELECT tenant.create_tenant('x''; DROP TABLE docs; --');
SELECT tenant.create_tenant('-dash');
SELECT tenant.create_tenant(repeat('a', 64));
SELECT tenant.create_tenant('cat-a');
SELECT tenant.create_tenant('neg', max_connections => -1);
SELECT tenant.create_tenant('neg', qps_limit => -5);
SELECT tenant.create_tenant('neg', max_result_bytes => -1);
SELECT tenant.create_tenant('burst', burst_multiplier => 0.9);
-- Infinity and NaN pass the CHECK (>= 1) but are no burst: refused.
SELECT tenant.create_tenant('burst', burst_multiplier => 'Infinity');
SELECT tenant.create_tenant('burst', burst_multiplier => 'NaN');
SELECT tenant.set_defaults(burst_multiplier => 'Infinity');
SELECT tenant.create_tenant('iso', isolation => 'cluster');
SELECT tenant.create_tenant('iso', isolation => 'schema');
SELECT tenant.create_tenant('iso', isolation => 'database');
SELECT tenant.create_tenant('ops', allowed_operations => '{select,truncate}');
SELECT tenant.create_tenant('norole', role_name => 'no_such_role');
SELECT tenant.create_tenant('pool', pool_size => 2, min_idle => 3);
SELECT tenant.create_tenant('pm', pool_mode => 'statement');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.alter_tenant('cat-a', pool_mode => 'Session');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.set_defaults(pool_mode => 'statement');
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.set_defaults(pool_mode => NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.alter_tenant('nope', max_connections => 1);
SELECT tenant.drop_tenant('nope');
SELECT tenant.enable_tenant('nope');
\set VERBOSITY terse

-- Constraints hold even for a superuser's raw writes.
INSERT INTO tenant.tenants (id, name) VALUES ('Raw Bad', 'x');
INSERT INTO tenant.tenants (id, name, qps_limit) VALUES ('raw', 'x', -1);
INSERT INTO tenant.tenants (id, name, isolation) VALUES ('raw', 'x', 'schema');
INSERT INTO tenant.tenants (id, name, allowed_operations) VALUES ('raw', 'x', '{drop}');
UPDATE tenant.tenants SET burst_multiplier = 0 WHERE id = 'cat-a';
INSERT INTO tenant.tenants (id, name, pool_mode) VALUES ('raw', 'x', 'statement');
INSERT INTO tenant.defaults (pool_mode) VALUES ('statement');

-- Privileges: nothing for PUBLIC; tenant_admin manages; tenant_router reads.
\c - regress_app
SELECT tenant.create_tenant('sneaky');
SELECT * FROM tenant.tenants;
SELECT * FROM tenant.router_catalog();
\c - postgres
CREATE ROLE regress_ops LOGIN IN ROLE tenant_admin;
CREATE ROLE regress_router LOGIN IN ROLE tenant_router;
\c - regress_ops
SELECT id FROM tenant.create_tenant('by-admin');
SELECT id FROM tenant.alter_tenant('by-admin', qps_limit => 3);
SELECT tenant.drop_tenant('by-admin');
\c - regress_router
SELECT id, enabled FROM tenant.router_catalog() WHERE id LIKE 'cat%';
SELECT tenant.create_tenant('sneaky');
\c - postgres
DROP ROLE regress_ops, regress_router;

-- drop.
SELECT tenant.drop_tenant('cat-c');
SELECT count(*) FROM tenant.tenants WHERE id = 'cat-c';
DELETE FROM tenant.defaults;

-- The tables are part of pg_dump (pg_extension_config_dump).
SELECT c.relname FROM pg_extension e, unnest(e.extconfig) cfg JOIN pg_class c ON c.oid = cfg
WHERE e.extname = 'pg_tenant' ORDER BY 1;
