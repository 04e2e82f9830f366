-- Database isolation (0.8.0): tenant.context_document, the sealed context
-- tenant-router signs for a tenant database, is the catalog row with the
-- defaults merged as set_context reads them (the tenant's value, else the
-- defaults row's, else the built-in default); router_catalog returns it
-- for database tenants only. tenant.bind_database refuses a catalog.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\pset null '(null)'
SELECT (tenant.create_tenant('dbx', isolation => 'database', database_name => 'dbx_db',
        login_roles => '{regress_app}', work_mem_kb => 4096, read_only => true,
        allowed_operations => '{select}')).id;
SELECT (tenant.create_tenant('dby', isolation => 'database', database_name => 'dby_db')).id;

-- Built-in defaults, then the defaults row's values, then the tenant's own.
SELECT d OPERATOR(pg_catalog.-) 'updated_at' OPERATOR(pg_catalog.-) 'lock_space' AS doc
  FROM tenant.context_document('dby') d;
SELECT (tenant.set_defaults(statement_timeout_ms => 1234, pool_mode => 'transaction', work_mem_kb => 999)).pool_mode;
SELECT d->>'statement_timeout_ms' AS statement, d->>'pool_mode' AS pool_mode, d->>'work_mem_kb' AS work_mem
  FROM tenant.context_document('dby') d;
SELECT d->>'statement_timeout_ms' AS statement, d->>'work_mem_kb' AS work_mem, d->>'read_only' AS read_only,
       d->'allowed_operations' AS ops, d->'login_roles' AS login_roles
  FROM tenant.context_document('dbx') d;
-- The same numbers as tenant.tenant_list, for every tenant.
SELECT count(*) AS differing FROM tenant.tenant_list l, tenant.context_document(l.id) d
 WHERE (d->>'statement_timeout_ms')::int8 <> l.statement_timeout_ms
    OR (d->>'idle_in_transaction_timeout_ms')::int8 <> l.idle_in_transaction_timeout_ms
    OR (d->>'work_mem_kb')::int8 <> l.work_mem_kb
    OR (d->>'maintenance_work_mem_kb')::int8 <> l.maintenance_work_mem_kb
    OR (d->>'temp_file_limit_kb')::int8 <> l.temp_file_limit_kb
    OR (d->>'max_advisory_locks')::int8 <> l.max_advisory_locks
    OR (d->>'lock_space')::int8 <> l.lock_space
    OR d->>'pool_mode' <> l.pool_mode;
SELECT (tenant.set_defaults()).pool_mode;

-- A change of the row changes the document (updated_at with it).
SELECT d->>'updated_at' AS before FROM tenant.context_document('dby') d \gset
SELECT (tenant.alter_tenant('dby', enabled => false)).enabled;
SELECT d->>'enabled' AS enabled, d->>'updated_at' <> :'before' AS newer
  FROM tenant.context_document('dby') d;

-- router_catalog: the document of database tenants only.
SELECT id, context_document IS NOT NULL AS sealed,
       (context_document::jsonb)->>'database_name' AS database
  FROM tenant.router_catalog(NULL) WHERE id IN ('dbx', 'dby', 'acme') ORDER BY id;
SELECT tenant.context_document('no-such-tenant');

-- Not for the application roles.
SET ROLE regress_app;
SELECT tenant.context_document('dbx');
SELECT tenant.bind_database('dbx');
RESET ROLE;
-- A catalog cannot be bound to a tenant.
SELECT tenant.bind_database('dbx');
SELECT tenant.bind_database('Not An Id');
SELECT count(*) AS bindings FROM tenant.database_binding;
-- Sealed tokens signed by regress.token (Python, an implementation of the
-- message format of its own). The signature covers the document: one
-- signed for another document is refused before anything else is looked
-- at. A valid one is refused in a catalog: no database is bound here.
SET client_min_messages = error;
SELECT tenant.context_document('dbx')::text AS doc \gset
SELECT tenant.set_context_sealed('dbx', regress.token('set-sealed', 'dbx', 1, document => :'doc'),
                                 replace(:'doc', '"read_only": true', '"read_only": false'));
SELECT tenant.set_context_sealed('dbx', regress.token('set', 'dbx', 1), :'doc');
SELECT tenant.set_context_sealed('dbx', regress.token('set-sealed', 'dbx', 1, document => :'doc'), :'doc');
SELECT tenant.set_context_sealed('dbx', regress.token('set-subject-sealed', 'dbx', 2, subject => 'alice',
                                 claims => '{}', document => :'doc'), 'alice', '{}', :'doc');
SELECT tenant.set_context_sealed('dbx', regress.token('set-sealed', 'dbx', 3, document => '[]'), '[]');
SELECT tenant.current_tenant_id();
SET client_min_messages = warning;

SELECT tenant.drop_tenant('dbx');
SELECT tenant.drop_tenant('dby');
