-- Placement (0.9.0, docs/src/scaling-out/index.md): a tenant's upstream in the
-- catalog, fences that keep a tenant off a server it does not live on, and
-- sealed contexts of rls tenants on a server that is not their catalog.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\pset null '(null)'

-- The upstream: a name, NULL for the main upstream ("main" is stored as
-- NULL), reset back to NULL; every other value is refused naming it.
SELECT (tenant.create_tenant('pl-b', upstream => 'b_2')).upstream;
SELECT (tenant.create_tenant('pl-main', upstream => 'main')).upstream;
SELECT (tenant.alter_tenant('pl-main', upstream => 'c')).upstream;
SELECT (tenant.alter_tenant('pl-main', name => 'kept')).upstream;
SELECT (tenant.alter_tenant('pl-main', reset => '{upstream}')).upstream;
SELECT (tenant.alter_tenant('pl-main', upstream => 'main')).upstream;
SELECT tenant.alter_tenant('pl-main', upstream => 'B');
SELECT tenant.alter_tenant('pl-main', upstream => '9b');
SELECT tenant.alter_tenant('pl-main', upstream => 'b-c');
SELECT tenant.alter_tenant('pl-main', upstream => repeat('b', 64));
SELECT tenant.create_tenant('pl-bad', upstream => '');
\set VERBOSITY terse
UPDATE tenant.tenants SET upstream = 'Bad' WHERE id = 'pl-main';
\set VERBOSITY default
SELECT id, upstream FROM tenant.tenant_list WHERE id LIKE 'pl-%' ORDER BY id;
-- router_catalog: the upstream last, and the sealed context of a tenant
-- on a named upstream (whatever its isolation).
SELECT id, upstream, context_document IS NOT NULL AS sealed,
       (context_document::jsonb)->>'upstream' AS document_upstream
  FROM tenant.router_catalog(NULL) WHERE id LIKE 'pl-%' ORDER BY id;
SELECT id, upstream FROM tenant.router_catalog_page(NULL, 10, 'pl-') ORDER BY id;

-- Fences: superuser or the extension's owner; any tenant id, known here
-- or not; true when it changed something.
SELECT tenant.fence_tenant('pl-b', 'moved to b'), tenant.fence_tenant('pl-b', 'again'),
       tenant.fence_tenant('elsewhere');
SELECT tenant_id, reason FROM tenant.fenced ORDER BY tenant_id;
SELECT tenant.fence_tenant('Not An Id');
SELECT tenant.unfence_tenant(NULL);
SET ROLE regress_app;
SELECT tenant.fence_tenant('acme');
SELECT tenant.unfence_tenant('pl-b');
SELECT count(*) FROM tenant.fenced;
RESET ROLE;
SELECT tenant.unfence_tenant('elsewhere'), tenant.unfence_tenant('elsewhere');
SELECT tenant.fence_tenant('globex', 'moved to c');

-- A fenced tenant's contexts are refused (55000, with the reason); an
-- unfenced one (control) is accepted.
\c - regress_app
\set SHOW_CONTEXT never
\set VERBOSITY default
SET client_min_messages = error;
SELECT tenant.set_context('globex', regress.token('set', 'globex', 1));
\set VERBOSITY sqlstate
SELECT tenant.set_context('globex', regress.token('set', 'globex', 2));
\set VERBOSITY default
SELECT tenant.current_tenant_id();
SELECT tenant.set_context('acme', regress.token('set', 'acme', 3));
-- Unfenced, the tenant is accepted again; fenced again, refused again at
-- every switch while other tenants switch as before.
\c - postgres
SELECT tenant.unfence_tenant('globex');
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = error;
SELECT tenant.set_context('globex', regress.token('set', 'globex', 1));
\c - postgres
SELECT tenant.fence_tenant('globex', 'moved to c') AS fenced_now;
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = error;
SELECT tenant.set_context('globex', regress.token('set', 'globex', 1));
SELECT tenant.set_context('acme', regress.token('set', 'acme', 2));
SELECT tenant.set_context('globex', regress.token('set', 'globex', 3));
SELECT tenant.current_tenant_id();

-- Sealed contexts of an rls tenant in this database (a catalog): refused
-- while its catalog has the tenant's row, and for a tenant on the main
-- upstream.
\c - postgres
SET client_min_messages = warning;
SELECT tenant.unfence_tenant('globex');
SELECT tenant.context_document('pl-b')::text AS doc \gset
SELECT tenant.context_document('acme')::text AS maindoc \gset
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = error;
SELECT tenant.set_context_sealed('pl-b', regress.token('set-sealed', 'pl-b', 1, document => :'doc'), :'doc');
-- Nor does this catalog set the context of a tenant it places on a named
-- upstream (55000): it lives on that server.
\set VERBOSITY sqlstate
SELECT tenant.set_context('pl-b', regress.token('set', 'pl-b', 3));
\set VERBOSITY default
SELECT tenant.set_context('pl-b', regress.token('set', 'pl-b', 4));
SELECT tenant.set_context_sealed('acme', regress.token('set-sealed', 'acme', 5, document => :'maindoc'), :'maindoc');
SELECT tenant.current_tenant_id();
\c - postgres
SET client_min_messages = warning;
SELECT tenant.unfence_tenant('pl-b');
SELECT tenant.drop_tenant('pl-b');
SELECT tenant.drop_tenant('pl-main');
SELECT count(*) AS fences FROM tenant.fenced;
