-- The router's tenant switch on one pooled backend: clear_context, then
-- DISCARD ALL (with no context: neither the role lock nor confinement
-- refuses it), then set_context for the next tenant. Whatever the first
-- tenant left in the session (temporary table, prepared statement, LISTEN
-- registration, setting, session advisory lock) is gone, and the backend
-- runs as the next tenant's role.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE ROLE regress_sw_acme NOLOGIN IN ROLE tenant_app;
CREATE ROLE regress_sw_globex NOLOGIN IN ROLE tenant_app;
GRANT regress_sw_acme, regress_sw_globex TO regress_app;
SELECT id, role_name FROM tenant.create_tenant('sw-acme', role_name => 'regress_sw_acme', allow_ddl => true);
SELECT id, role_name FROM tenant.create_tenant('sw-globex', role_name => 'regress_sw_globex');

\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('sw-acme', 10);
SELECT current_user, session_user, tenant.current_tenant_id();
-- The role lock is on.
SET ROLE regress_app;
CREATE TEMP TABLE scratch (x int);
INSERT INTO scratch VALUES (1);
PREPARE q AS SELECT 42 AS answer;
LISTEN jobs;
SET work_mem = '7MB';
-- Taken twice: one unlock shows that tenant.advisory_unlock finds a held lock.
SELECT tenant.advisory_lock(4242), tenant.advisory_lock(4242);
SELECT tenant.advisory_unlock(4242) AS held;
SELECT to_regclass('pg_temp.scratch') IS NOT NULL AS temp_table,
       (SELECT count(*) FROM pg_prepared_statements) AS prepared,
       pg_listening_channels() AS channel,
       current_setting('work_mem') AS work_mem;

-- The switch, as the router does it.
SELECT regress.leave(11);
SELECT current_user, tenant.current_tenant_id();
DISCARD ALL;
SET client_min_messages = warning;
SELECT regress.enter('sw-globex', 12);
SELECT current_user, session_user, tenant.current_tenant_id();
SELECT to_regclass('pg_temp.scratch') IS NULL AS temp_table_gone,
       (SELECT count(*) FROM pg_prepared_statements) AS prepared,
       (SELECT count(*) FROM pg_listening_channels()) AS channels,
       current_setting('work_mem') AS work_mem;
EXECUTE q;
-- The advisory lock went with DISCARD ALL: unlocking it finds nothing
-- (pg_locks is not for tenant sessions; pg_advisory_unlock answers for
-- this backend only).
SELECT tenant.advisory_unlock(4242) AS still_held;

-- Nonces grow strictly within a backend: a token with the last nonce or a
-- lower one is refused (42501), whatever its action, and changes nothing.
SET client_min_messages = error;
SELECT regress.enter('sw-acme', 12);
\echo :LAST_ERROR_SQLSTATE
SELECT regress.enter('sw-acme', 11);
\echo :LAST_ERROR_SQLSTATE
SELECT regress.leave(12);
\echo :LAST_ERROR_SQLSTATE
SET client_min_messages = warning;
SELECT current_user, tenant.current_tenant_id();

-- DISCARD ALL with the context still set (the router always clears
-- first): not refused; it discards the session's state and keeps the
-- tenant and its locked role (client-side pools send it too).
PREPARE q2 AS SELECT 1;
DISCARD ALL;
SET client_min_messages = warning;
SELECT current_user, tenant.current_tenant_id(),
       (SELECT count(*) FROM pg_prepared_statements) AS prepared;

\c - postgres
SELECT tenant.drop_tenant('sw-acme'), tenant.drop_tenant('sw-globex');
DROP ROLE regress_sw_acme, regress_sw_globex;
