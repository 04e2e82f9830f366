-- Fail-closed and tamper-proof tenant context (docs/src/security/index.md).
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = error;

-- Fail-closed: no context, no rows, no writes.
SELECT tenant.current_tenant_id() IS NULL AS no_context;
SELECT count(*) AS visible_without_context FROM docs;
INSERT INTO docs (body) VALUES ('orphan');
INSERT INTO docs (tenant_id, body) VALUES ('acme', 'forged');

-- The router sets the context; rows and defaults follow it.
SELECT regress.enter('acme', 1);
SELECT tenant.current_tenant_id();
SELECT count(*) AS acme_rows FROM docs;
INSERT INTO docs (body) VALUES ('acme 4') RETURNING tenant_id, body;
INSERT INTO docs (tenant_id, body) VALUES ('globex', 'cross-tenant insert');
UPDATE docs SET tenant_id = 'globex' WHERE body = 'acme 4';
DELETE FROM docs WHERE body = 'acme 4';
SELECT count(*) AS acme_rows FROM docs;

-- Every way to change the tenant by SQL is refused, and the count stays 3.
SET pg_tenant.tenant_id = 'globex';
SET LOCAL pg_tenant.tenant_id = 'globex';
RESET pg_tenant.tenant_id;
RESET ALL;
SELECT tenant.current_tenant_id() AS after_reset_all, count(*) FROM docs;
DISCARD ALL;
SET client_min_messages = error;
SELECT tenant.current_tenant_id() AS after_discard_all, count(*) FROM docs;
SELECT set_config('pg_tenant.tenant_id', 'globex', false);
SELECT set_config('pg_tenant.tenant_id', 'globex', true);
SELECT set_config('pg_tenant.tenant_id', '', false);
SELECT set_config('pg_tenant.context_state', '', false);
DO $$ BEGIN PERFORM set_config('pg_tenant.tenant_id', 'globex', false); END $$;
CREATE FUNCTION sneaky() RETURNS bigint LANGUAGE sql
  SET pg_tenant.tenant_id = 'globex' AS $$ SELECT count(*) FROM docs $$;
ALTER ROLE regress_app SET pg_tenant.tenant_id = 'globex';
ALTER DATABASE contrib_regression SET pg_tenant.tenant_id = 'globex';
PREPARE hop AS SELECT set_config('pg_tenant.tenant_id', 'globex', false);
EXECUTE hop;
SHOW pg_tenant.context_key;
SELECT length(current_setting('pg_tenant.context_public_keys')) AS public_key_hex_digits;
SELECT current_setting('pg_tenant.context_key');
SELECT tenant.current_tenant_id(), count(*) AS acme_rows FROM docs;

-- A cursor opened before a failed attempt still sees only the tenant.
BEGIN;
DECLARE c CURSOR FOR SELECT body FROM docs ORDER BY id;
FETCH 1 FROM c;
SAVEPOINT s;
SET pg_tenant.tenant_id = 'globex';
ROLLBACK TO s;
FETCH ALL FROM c;
COMMIT;

-- Forged, replayed and malformed tokens: 42501, nothing changes.
\set VERBOSITY default
SELECT tenant.set_context('globex', regress.token('set', 'globex', 1));
SELECT tenant.set_context('globex', regress.token('set', 'globex', 0));
SELECT tenant.set_context('globex', regress.token('set', 'globex', 5, pg_backend_pid() + 1));
-- A later backend reusing this pid has another cancel key: its tokens fail here.
SELECT tenant.set_context('globex', regress.token('set', 'globex', 5, cancel_key => 12345));
SELECT tenant.set_context('globex', regress.token('set', 'globex', 5, key_file => replace(regress.signing_key_file(), 'signing_key.pem', 'other_key.pem')));
SELECT tenant.set_context('globex', regress.token('set', 'acme', 5));
SELECT tenant.set_context('globex', '');
SELECT tenant.set_context('globex', repeat('v1.9.', 100000));
SELECT tenant.set_context('globex', NULL);
SELECT tenant.set_context('acme''--', regress.token('set', 'acme''--', 6));
SELECT tenant.set_context('Acme', regress.token('set', 'Acme', 7));
SELECT tenant.set_context('nope', regress.token('set', 'nope', 8));
SELECT tenant.current_tenant_id(), count(*) AS acme_rows FROM docs;

-- A context set inside a transaction that aborts is gone: fail-closed.
\c - regress_app
SET client_min_messages = error;
BEGIN;
SELECT regress.enter('acme', 1);
SELECT count(*) AS acme_rows_in_txn FROM docs;
ROLLBACK;
SELECT tenant.current_tenant_id() IS NULL AS no_context_after_abort, count(*) FROM docs;

-- A generic plan executed across clear_context and a new set_context
-- follows the new tenant: the function is STABLE, never IMMUTABLE.
SET plan_cache_mode = force_generic_plan;
SELECT regress.enter('acme', 2);
PREPARE n AS SELECT tenant.current_tenant_id(), count(*) FROM docs;
EXECUTE n; EXECUTE n; EXECUTE n; EXECUTE n; EXECUTE n; EXECUTE n;
SELECT regress.leave(3);
EXECUTE n;
SELECT regress.enter('globex', 4);
EXECUTE n;
SELECT provolatile, proparallel FROM pg_proc WHERE oid = 'tenant.current_tenant_id'::regproc;

-- A tenant allowed to run DDL still cannot plant the tenant in a function
-- SET clause, a role or a database setting: Postgres itself refuses.
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter('ddlco', 1);
CREATE FUNCTION sneaky() RETURNS bigint LANGUAGE sql
  SET pg_tenant.tenant_id = 'globex' AS $$ SELECT count(*) FROM docs $$;
ALTER ROLE regress_app SET pg_tenant.tenant_id = 'globex';
ALTER DATABASE contrib_regression SET pg_tenant.tenant_id = 'globex';
ALTER ROLE regress_app SET pg_tenant.context_state = '';
SELECT tenant.current_tenant_id(), count(*) AS ddlco_rows FROM docs;
