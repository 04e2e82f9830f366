-- pool_mode = transaction: the router hands a tenant's backend to another
-- client of that tenant between transactions, so what outlives a
-- transaction is refused (0A000, naming the feature, the tenant and why).
-- Each refusal sits next to a control that succeeds: the same statement
-- for a session-mode tenant, or the transaction-scoped form.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- allow_ddl: temporary tables are DDL; without it they are refused as such.
SELECT id, pool_mode FROM tenant.create_tenant('pool-tx', pool_mode => 'transaction', allow_ddl => true);
SELECT id, pool_mode FROM tenant.create_tenant('pool-sess', allow_ddl => true);
-- A tenant that is transaction-mode through the defaults row.
SELECT id, pool_mode FROM tenant.create_tenant('pool-dflt', allow_ddl => true);
SELECT id, pool_mode FROM tenant.tenant_list WHERE id LIKE 'pool-%' ORDER BY id;

\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('pool-tx', 1);

-- LISTEN: refused; UNLISTEN: allowed.
LISTEN jobs;
\echo :LAST_ERROR_SQLSTATE
UNLISTEN jobs;
UNLISTEN *;
SELECT count(*) AS listening FROM pg_listening_channels();

-- DECLARE ... WITH HOLD: refused; a cursor without HOLD: allowed.
BEGIN;
DECLARE held CURSOR WITH HOLD FOR SELECT 1 AS x;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
DECLARE plain CURSOR FOR SELECT 1 AS x;
FETCH plain;
COMMIT;

-- SQL-level PREPARE: refused (protocol-level Parse is the router's).
PREPARE q AS SELECT 1;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS prepared FROM pg_prepared_statements;

-- Temporary relations, in every spelling: refused.
CREATE TEMP TABLE scratch (x int);
\echo :LAST_ERROR_SQLSTATE
CREATE TEMPORARY VIEW scratch_v AS SELECT 1 AS x;
\echo :LAST_ERROR_SQLSTATE
CREATE TEMP SEQUENCE scratch_s;
\echo :LAST_ERROR_SQLSTATE
CREATE TEMP TABLE scratch_as AS SELECT 1 AS x;
\echo :LAST_ERROR_SQLSTATE
SELECT 1 AS x INTO TEMP scratch_into;
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE pg_temp.scratch_named (x int);
\echo :LAST_ERROR_SQLSTATE
DO $$ BEGIN EXECUTE 'CREATE TEMP TABLE scratch_do (x int)'; END $$;
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS temp_relations FROM pg_class WHERE relnamespace = pg_my_temp_schema();
-- ... also through search_path: a plain CREATE with pg_temp first (0A000,
-- rolled back); the same CREATE with public first is allowed.
BEGIN;
SET LOCAL search_path = pg_temp;
CREATE TABLE scratch_path (x int);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SET LOCAL search_path = pg_temp;
CREATE FUNCTION scratch_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
CREATE OPERATOR pg_temp.=== (function = int4eq, leftarg = int, rightarg = int);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS temp_objects FROM pg_class WHERE relnamespace = pg_my_temp_schema();
BEGIN;
SET LOCAL search_path = public;
CREATE TABLE pool_tx_regular (x int);
DROP TABLE pool_tx_regular;
COMMIT;

-- Raw advisory locks are refused to every tenant (42501: one namespace for
-- all tenants); the tenant-scoped session forms are refused under
-- transaction pooling (0A000); the _xact_ forms are allowed.
SELECT pg_advisory_lock(1);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.advisory_lock(1);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.advisory_lock_shared(1);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.try_advisory_lock(1);
\echo :LAST_ERROR_SQLSTATE
SELECT tenant.try_advisory_lock_shared(1);
\echo :LAST_ERROR_SQLSTATE
DO $$ BEGIN PERFORM tenant.advisory_lock(3); END $$;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT tenant.advisory_xact_lock(1), tenant.advisory_xact_lock_shared(3),
       tenant.try_advisory_xact_lock(4), tenant.try_advisory_xact_lock_shared(5);
COMMIT;

-- SET without LOCAL: allowed, and recorded for the router in
-- pg_tenant.session_settings (GUC_REPORT: PostgreSQL reports every change
-- with a ParameterStatus). The session may read it (its own settings).
SHOW pg_tenant.session_settings;
SET extra_float_digits = 3;
SET TIME ZONE 'UTC';
SET search_path = public;
SHOW pg_tenant.session_settings;
SELECT current_setting('extra_float_digits') AS extra_float_digits,
       current_setting('TimeZone') AS timezone, current_setting('search_path') AS search_path;
-- RESET name: null (the router drops the setting).
RESET search_path;
SHOW pg_tenant.session_settings;
-- Every spelling: SET SESSION, TO DEFAULT, FROM CURRENT, SET SCHEMA,
-- SET NAMES, an alias (the canonical name is recorded), a custom setting,
-- and inside a DO block.
SET SESSION work_mem = '8MB';
SET statement_timeout TO DEFAULT;
BEGIN;
SET LOCAL lock_timeout = '5s';
SET lock_timeout FROM CURRENT;
COMMIT;
SET SCHEMA 'public';
SET NAMES 'UTF8';
SET sort_mem = '9MB';
DO $$ BEGIN EXECUTE 'SET application_name = ''pool-do'''; END $$;
SHOW pg_tenant.session_settings;
-- Values are escaped as JSON: quotes, backslashes, control characters.
SET regress_app.note = E'say "hi"\\ \n\t\x01 ok';
SELECT current_setting('pg_tenant.session_settings')::jsonb ->> 'regress_app.note'
       = current_setting('regress_app.note') AS escaped;
SELECT current_setting('pg_tenant.session_settings')::jsonb - 'regress_app.note' AS settings;
-- SET LOCAL, SET TRANSACTION and set_config(..., true) are not recorded.
BEGIN;
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ;
SET LOCAL work_mem = '16MB';
SELECT set_config('geqo', 'off', true);
SELECT current_setting('work_mem') AS local_work_mem, current_setting('transaction_isolation') AS isolation;
SELECT current_setting('pg_tenant.session_settings')::jsonb ->> 'work_mem' AS recorded_work_mem;
COMMIT;
SELECT current_setting('pg_tenant.session_settings')::jsonb ? 'geqo' AS geqo_recorded;
-- A SET rolled back rolls the record back (whole transaction, savepoint).
SELECT current_setting('pg_tenant.session_settings') AS before \gset
BEGIN;
SET extra_float_digits = 1;
RESET TIME ZONE;
SELECT current_setting('pg_tenant.session_settings')::jsonb -> 'extra_float_digits' AS in_transaction;
ROLLBACK;
SELECT current_setting('pg_tenant.session_settings') = :'before' AS unchanged,
       current_setting('extra_float_digits') AS extra_float_digits;
BEGIN;
SAVEPOINT s;
SET extra_float_digits = 2;
ROLLBACK TO s;
SET datestyle = 'ISO, DMY';
COMMIT;
SELECT current_setting('pg_tenant.session_settings')::jsonb - 'regress_app.note' AS settings;
-- A SET that fails records nothing.
SET work_mem = 'lots';
\echo :LAST_ERROR_SQLSTATE
SELECT current_setting('pg_tenant.session_settings')::jsonb ->> 'work_mem' AS recorded_work_mem;
-- The record is the extension's: the tenant cannot write it.
SET pg_tenant.session_settings = '{}';
\echo :LAST_ERROR_SQLSTATE
SET LOCAL pg_tenant.session_settings = '{}';
\echo :LAST_ERROR_SQLSTATE
RESET pg_tenant.session_settings;
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('pg_tenant.session_settings', '{"role":"postgres"}', false);
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('pg_tenant.session_settings', '{}', true);
\echo :LAST_ERROR_SQLSTATE
-- Still refused: SET SESSION CHARACTERISTICS (0A000), and the role (locked
-- in every tenant session: 42501).
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE;
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_initech;
\echo :LAST_ERROR_SQLSTATE
SET SESSION AUTHORIZATION regress_initech;
\echo :LAST_ERROR_SQLSTATE
SELECT current_user;
-- RESET ALL (and DISCARD ALL) empty the record.
RESET ALL;
SHOW pg_tenant.session_settings;
SELECT current_setting('work_mem') AS work_mem, current_setting('extra_float_digits') AS extra_float_digits;
SET extra_float_digits = 3;
DISCARD ALL;
SHOW pg_tenant.session_settings;
-- set_config(..., false) stays allowed: the router applies a client's
-- startup parameters with it. A known leak within one tenant (the next
-- client of this tenant on this backend sees the setting).
SELECT set_config('work_mem', '9MB', false);
SELECT current_setting('work_mem') AS work_mem;
-- ... and is not recorded.
SHOW pg_tenant.session_settings;
SELECT tenant.current_tenant_id(), count(*) AS rows FROM docs;

-- The defaults row decides for tenants without a pool_mode of their own;
-- set_context reads it (here: in a new backend).
\c - postgres
SELECT pool_mode FROM tenant.set_defaults(pool_mode => 'transaction');
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('pool-dflt', 1);
LISTEN jobs;
\echo :LAST_ERROR_SQLSTATE
\c - postgres
SELECT pool_mode FROM tenant.set_defaults();

-- Session mode (the default): every one of them works.
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('pool-sess', 1);
LISTEN jobs;
SELECT pg_listening_channels();
UNLISTEN jobs;
BEGIN;
DECLARE held CURSOR WITH HOLD FOR SELECT 1 AS x;
COMMIT;
FETCH held;
CLOSE held;
PREPARE q AS SELECT 1 AS one;
EXECUTE q;
DEALLOCATE q;
CREATE TEMP TABLE scratch (x int);
CREATE TEMPORARY VIEW scratch_v AS SELECT 1 AS x;
CREATE TEMP SEQUENCE scratch_s;
CREATE TEMP TABLE scratch_as AS SELECT 1 AS x;
SELECT 1 AS x INTO TEMP scratch_into;
CREATE TABLE pg_temp.scratch_named (x int);
SELECT count(*) AS temp_relations FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind IN ('r', 'v', 'S');
DISCARD TEMP;
SELECT tenant.advisory_lock(1), tenant.advisory_lock(2), tenant.try_advisory_lock_shared(3);
SELECT tenant.advisory_unlock_all();
SET work_mem = '8MB';
SET TIME ZONE 'UTC';
RESET search_path;
SELECT current_setting('work_mem') AS work_mem;
-- Not recorded (no report traffic in session mode).
SHOW pg_tenant.session_settings;
RESET ALL;

\c - postgres
SELECT tenant.drop_tenant(id) FROM tenant.tenants WHERE id LIKE 'pool-%' ORDER BY id;
