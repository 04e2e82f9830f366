-- No tenant can exhaust what all tenants share (docs/src/limits/index.md):
-- advisory locks are tenant-scoped and counted, and the settings that size
-- a backend's memory, temporary files and time have per-tenant ceilings a
-- tenant cannot lift. Each refusal sits next to a control that succeeds.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT id FROM tenant.create_tenant('bud-a', max_advisory_locks => 3, work_mem_kb => 8192,
    statement_timeout_ms => 2000, idle_in_transaction_timeout_ms => 30000,
    maintenance_work_mem_kb => 16384, temp_file_limit_kb => 1024);
SELECT id FROM tenant.create_tenant('bud-b');
SELECT id FROM tenant.create_tenant('bud-ro', read_only => true);
-- Effective values: the tenant's, else the defaults row's (none here), else built-in.
SELECT id, statement_timeout_ms, idle_in_transaction_timeout_ms, work_mem_kb,
       maintenance_work_mem_kb, temp_file_limit_kb, max_advisory_locks
  FROM tenant.tenant_list WHERE id LIKE 'bud-%' ORDER BY id;
-- Every tenant has a lock space of its own.
SELECT count(DISTINCT lock_space) = count(*) AS lock_spaces_unique FROM tenant.tenants;
-- Bad budgets: 22023 naming the field.
SELECT regress.try($$SELECT tenant.alter_tenant('bud-b', work_mem_kb => -1)$$);
SELECT regress.try($$SELECT tenant.set_defaults(statement_timeout_ms => -5)$$);
-- The tag fields of this backend's tenant advisory locks (user locks).
CREATE FUNCTION regress.my_userlocks() RETURNS TABLE (classid oid, objid oid, objsubid int2)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT l.classid, l.objid, l.objsubid FROM pg_locks l
   WHERE l.locktype = 'userlock' AND l.pid = pg_backend_pid() $$;
GRANT EXECUTE ON FUNCTION regress.my_userlocks() TO regress_app;
-- Functions that lie about being PARALLEL SAFE, owned by the superuser:
-- one reports the pid it runs in, one takes a tenant advisory lock, one
-- lifts work_mem in its SET clause.
CREATE FUNCTION regress.p_pid() RETURNS int LANGUAGE plpgsql PARALLEL SAFE
  AS $$ BEGIN RETURN pg_backend_pid(); END $$;
CREATE FUNCTION regress.p_lock(k bigint) RETURNS int LANGUAGE plpgsql PARALLEL SAFE
  AS $$ BEGIN PERFORM tenant.advisory_xact_lock(k); RETURN 1; END $$;
CREATE FUNCTION regress.p_mem() RETURNS text LANGUAGE sql PARALLEL SAFE SET work_mem = '1GB'
  AS $$ SELECT current_setting('work_mem') $$;
-- A routine that lifts work_mem in its SET clause, owned by the superuser.
CREATE FUNCTION regress.big_sort() RETURNS text LANGUAGE sql SET work_mem = '1GB'
  AS $$ SELECT current_setting('work_mem') $$;

\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- Without a context the tenant-scoped locks have no namespace: 42501.
SELECT tenant.advisory_xact_lock(1);
\echo :LAST_ERROR_SQLSTATE
-- The application role cannot SET ROLE into a tenant role without a
-- context (42501); back to itself is fine.
SET ROLE regress_initech;
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('role', 'regress_initech', false);
\echo :LAST_ERROR_SQLSTATE
SET ROLE NONE;
RESET ROLE;
SELECT current_user;
SHOW statement_timeout;

SELECT regress.enter('bud-a', 1);
-- Raw advisory locks: refused (one namespace for every tenant, uncounted).
SELECT pg_advisory_xact_lock(1);
\echo :LAST_ERROR_SQLSTATE
SELECT pg_try_advisory_lock(1, 2);
\echo :LAST_ERROR_SQLSTATE
-- Tenant-scoped: at most max_advisory_locks (3) distinct locks at once.
BEGIN;
SELECT tenant.advisory_xact_lock(1), tenant.advisory_xact_lock_shared(2),
       tenant.try_advisory_xact_lock(3);
-- Taking a held lock again costs nothing.
SELECT tenant.advisory_xact_lock(1), tenant.try_advisory_xact_lock(3);
SELECT tenant.advisory_xact_lock(4);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- Transaction-level locks are gone with the transaction: room again.
BEGIN;
SELECT tenant.advisory_xact_lock(4), tenant.advisory_xact_lock(5), tenant.advisory_xact_lock(6);
COMMIT;
-- Session-level ones count until released.
SELECT tenant.advisory_lock(10), tenant.advisory_lock(11), tenant.try_advisory_lock_shared(12);
SELECT tenant.advisory_lock(13);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.advisory_unlock(11) AS released;
SELECT tenant.advisory_lock(13);
SELECT tenant.advisory_unlock_all();
-- A lock taken twice is held until released twice: it keeps counting.
SELECT count(*) FROM (SELECT tenant.advisory_lock(k), tenant.advisory_lock(k), tenant.advisory_unlock(k)
                        FROM generate_series(1, 10) k) s;
\echo :LAST_ERROR_SQLSTATE
-- (Session locks outlive the failed statement: keys 1 to 3 are held.)
SELECT tenant.advisory_unlock(1) AND tenant.advisory_unlock(2) AND tenant.advisory_unlock(3) AS released;
SELECT tenant.advisory_lock(40), tenant.advisory_lock(40), tenant.advisory_unlock(40) AS once;
SELECT tenant.advisory_lock(41), tenant.advisory_lock(42);
SELECT tenant.advisory_lock(43);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.advisory_unlock(40) AS twice;
SELECT tenant.advisory_lock(43);
SELECT tenant.advisory_unlock_all();
-- In a parallel worker: no tenant advisory locks (each worker would have
-- a budget of its own), and a function's SET clause meets the ceilings.
-- (force_parallel_mode: PostgreSQL 15; renamed debug_parallel_query in 16.)
SELECT current_setting('server_version_num')::int >= 160000 AS has_debug_parallel_query \gset
\if :has_debug_parallel_query
SET debug_parallel_query = on;
\else
SET force_parallel_mode = on;
\endif
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SELECT regress.p_pid() AS worker_pid \gset
SELECT :worker_pid <> pg_backend_pid() AS ran_in_a_worker;
SELECT regress.p_lock(60);
\echo :LAST_ERROR_SQLSTATE
SELECT regress.p_mem();
\echo :LAST_ERROR_SQLSTATE
\if :has_debug_parallel_query
RESET debug_parallel_query;
\else
RESET force_parallel_mode;
\endif
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
-- Two-phase commit would carry locks past the session: refused.
BEGIN;
SELECT tenant.advisory_xact_lock(50);
PREPARE TRANSACTION 'carry';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
COMMIT PREPARED 'carry';
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.advisory_lock(20), tenant.advisory_lock(21), tenant.advisory_lock(22);
-- DISCARD ALL releases them (and the count with them).
DISCARD ALL;
SET client_min_messages = warning;
SELECT tenant.advisory_unlock(20) AS still_held;
SELECT tenant.advisory_lock(30), tenant.advisory_lock(31), tenant.advisory_lock(32);
SELECT tenant.advisory_unlock_all();

-- Ceilings: statement_timeout had no limit (0) and now has the tenant's.
SHOW statement_timeout;
SHOW idle_in_transaction_session_timeout;
SHOW work_mem;
SHOW temp_file_limit;
-- Lifting a ceiling is refused whatever the path (42501) ...
SET statement_timeout = 0;
\echo :LAST_ERROR_SQLSTATE
SET statement_timeout = '1h';
\echo :LAST_ERROR_SQLSTATE
SET work_mem = '1GB';
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('work_mem', '9MB', false);
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SET LOCAL idle_in_transaction_session_timeout = 0;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SET maintenance_work_mem = '1GB';
\echo :LAST_ERROR_SQLSTATE
-- Memory that scales with work_mem or sits beside it: hash tables
-- (hash_mem_multiplier, at most PostgreSQL's default 2) and temporary
-- table buffers (temp_buffers, within the work_mem ceiling).
SET hash_mem_multiplier = 1000;
\echo :LAST_ERROR_SQLSTATE
SET temp_buffers = '1GB';
\echo :LAST_ERROR_SQLSTATE
SET hash_mem_multiplier = 1.5;
SET temp_buffers = '4MB';
SHOW hash_mem_multiplier;
SHOW temp_buffers;
RESET hash_mem_multiplier;
RESET temp_buffers;
SELECT regress.big_sort();
\echo :LAST_ERROR_SQLSTATE
-- ... while lowering, or raising up to the ceiling, works.
SET statement_timeout = '1500ms';
SET work_mem = '8MB';
SHOW statement_timeout;
SHOW work_mem;
-- Every reset lands at or below the ceiling.
RESET statement_timeout;
SHOW statement_timeout;
SET statement_timeout = '1s';
SELECT set_config('statement_timeout', NULL, false) IS NULL AS reset_by_null;
SHOW statement_timeout;
SET statement_timeout TO DEFAULT;
SHOW statement_timeout;
RESET ALL;
SHOW statement_timeout;
DISCARD ALL;
SET client_min_messages = warning;
SHOW statement_timeout;
SHOW temp_file_limit;
-- A failed transaction cannot roll a ceiling back.
BEGIN;
SELECT 1/0;
ROLLBACK;
SHOW statement_timeout;
-- Hitting a bound is PostgreSQL's own error, for this session only.
SELECT pg_sleep(3);
\echo :LAST_ERROR_SQLSTATE
SET work_mem = '64kB';
-- (The message quotes "temp_file_limit" from PostgreSQL 17: the SQLSTATE is
-- what is checked.)
\set VERBOSITY sqlstate
SELECT count(*) FROM (SELECT g, md5(g::text) FROM generate_series(1, 200000) g ORDER BY 2) s;
\set VERBOSITY default
\echo :LAST_ERROR_SQLSTATE
RESET work_mem;
SELECT count(*) FROM (SELECT g FROM generate_series(1, 1000) g ORDER BY 1) s;

-- Read-only tenants take no advisory locks and advance no sequences.
SELECT regress.enter('bud-ro', 2);
SELECT tenant.advisory_xact_lock(1);
\echo :LAST_ERROR_SQLSTATE
SELECT nextval('docs_id_seq') > 0 AS advanced;
\echo :LAST_ERROR_SQLSTATE
SELECT setval('docs_id_seq', 1000);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) >= 0 AS reads FROM docs;
-- A writable tenant may (control).
SELECT regress.enter('bud-b', 3);
SELECT nextval('docs_id_seq') > 0 AS advanced;
SELECT tenant.try_advisory_xact_lock(1);

-- Leaving the context puts the server's reset values back.
SELECT regress.leave(4);
RESET statement_timeout;
SHOW statement_timeout;
SHOW work_mem;

-- Other things a tenant session may not reach: the lock waits of other
-- backends, and the large-object catalog through COPY.
SELECT regress.enter('bud-b', 5);
SELECT pg_isolation_test_session_is_blocked(pg_backend_pid(), '{}');
\echo :LAST_ERROR_SQLSTATE
COPY pg_largeobject_metadata TO STDOUT;
\echo :LAST_ERROR_SQLSTATE
COPY (SELECT 1 AS x) TO STDOUT;
SELECT tenant.advisory_lock(77);
SELECT regress.leave(6);
-- Two tenants, one key: two locks (a lock space each), never one.
SELECT regress.enter('bud-a', 7);
SELECT tenant.advisory_lock(77);
SELECT regress.leave(8);
SELECT count(*) AS locks, count(DISTINCT classid) AS lock_spaces, count(DISTINCT objid) AS keys
  FROM regress.my_userlocks();
SELECT regress.enter('bud-b', 9);
SELECT tenant.advisory_unlock_all();
SELECT regress.leave(10);
SELECT count(*) AS left_after_unlock FROM regress.my_userlocks();

-- Errors pass through pg_tenant's hooks unchanged: SQLSTATE, message,
-- detail, hint and context, in DO, CALL and a function.
\set SHOW_CONTEXT errors
DO $$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'P0123', DETAIL = 'the detail', HINT = 'the hint'; END $$;
\echo :LAST_ERROR_SQLSTATE
\c - postgres
\set SHOW_CONTEXT errors
SET client_min_messages = warning;
CREATE PROCEDURE regress.fail_proc() LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'proc failure' USING ERRCODE = 'P0123', HINT = 'proc hint'; END $$;
CREATE FUNCTION regress.fail_fn() RETURNS int LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'fn failure' USING ERRCODE = 'P0123'; END $$;
GRANT EXECUTE ON PROCEDURE regress.fail_proc() TO regress_app;
DO $$ BEGIN RAISE EXCEPTION 'custom failure' USING ERRCODE = 'P0123', DETAIL = 'the detail', HINT = 'the hint'; END $$;
\echo :LAST_ERROR_SQLSTATE
CALL regress.fail_proc();
\echo :LAST_ERROR_SQLSTATE
SELECT regress.fail_fn();
\echo :LAST_ERROR_SQLSTATE
\c - regress_app
\set SHOW_CONTEXT errors
SET client_min_messages = warning;
SELECT regress.enter('bud-b', 1);
CALL regress.fail_proc();
\echo :LAST_ERROR_SQLSTATE
SELECT regress.fail_fn();
\echo :LAST_ERROR_SQLSTATE
\set SHOW_CONTEXT never

\c - postgres
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- A membership granted after create_tenant is refused at set_context.
GRANT pg_read_all_data TO regress_initech;
\c - regress_app
\set SHOW_CONTEXT never
SELECT regress.enter('initech', 1);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.current_tenant_id() IS NULL AS no_context;
\c - postgres
REVOKE pg_read_all_data FROM regress_initech;
-- The login role too.
GRANT pg_monitor TO regress_app;
\c - regress_app
\set SHOW_CONTEXT never
SELECT regress.enter('bud-b', 1);
\echo :LAST_ERROR_SQLSTATE
\c - postgres
REVOKE pg_monitor FROM regress_app;
\c - regress_app
\set SHOW_CONTEXT never
SELECT regress.enter('initech', 1);
SELECT current_user;

-- Routines a tenant creates are not executable by PUBLIC (other tenants).
\c - postgres
SET client_min_messages = warning;
CREATE ROLE regress_ddl_role NOLOGIN IN ROLE tenant_app;
GRANT regress_ddl_role TO regress_app;
GRANT USAGE, CREATE ON SCHEMA public TO regress_ddl_role;
SELECT id FROM tenant.create_tenant('bud-ddl', allow_ddl => true, role_name => 'regress_ddl_role');
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('bud-ddl', 1);
CREATE FUNCTION bud_secret() RETURNS text LANGUAGE sql AS $$ SELECT 'ddl tenant''s' $$;
CREATE PROCEDURE bud_proc() LANGUAGE sql AS $$ SELECT 1 $$;
SELECT bud_secret();
\c - postgres
SELECT p.proname, has_function_privilege('regress_initech', p.oid, 'EXECUTE') AS other_tenant,
       has_function_privilege('regress_ddl_role', p.oid, 'EXECUTE') AS owner
  FROM pg_proc p WHERE p.proname IN ('bud_secret', 'bud_proc') ORDER BY 1;
-- A superuser's function keeps PostgreSQL's default (control).
CREATE FUNCTION bud_public() RETURNS int LANGUAGE sql AS 'SELECT 1';
SELECT has_function_privilege('regress_initech', 'bud_public()', 'EXECUTE') AS public_default;
DROP FUNCTION bud_public(), bud_secret();
DROP PROCEDURE bud_proc();
DROP FUNCTION regress.big_sort(), regress.fail_fn(), regress.my_userlocks(), regress.p_pid(), regress.p_lock(bigint), regress.p_mem();
DROP PROCEDURE regress.fail_proc();
SELECT tenant.drop_tenant(id) FROM tenant.tenants WHERE id LIKE 'bud-%' ORDER BY id;
REVOKE ALL ON SCHEMA public FROM regress_ddl_role;
DROP ROLE regress_ddl_role;
