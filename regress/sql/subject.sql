-- The end user within the tenant: set_context(tenant, token, subject,
-- claims), current_subject(), current_claims(); as tamper-proof as the
-- tenant itself.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\pset null '(null)'
-- A per-user policy on top of the tenant policy: rows of the subject only.
CREATE TABLE sdocs (id serial PRIMARY KEY, tenant_id text NOT NULL, owner text NOT NULL, body text NOT NULL);
SELECT tenant.protect('sdocs');
CREATE POLICY owner_only ON sdocs AS RESTRICTIVE FOR ALL TO PUBLIC
  USING (owner = (SELECT tenant.current_subject()))
  WITH CHECK (owner = (SELECT tenant.current_subject()));
INSERT INTO sdocs (tenant_id, owner, body) VALUES
  ('acme', 'alice', 'alice 1'), ('acme', 'alice', 'alice 2'), ('acme', 'bob', 'bob 1'),
  ('globex', 'alice', 'globex alice 1');
GRANT SELECT, INSERT, UPDATE, DELETE ON sdocs TO regress_app;
GRANT USAGE ON SEQUENCE sdocs_id_seq TO regress_app;
SELECT provolatile, proparallel, prorettype::regtype FROM pg_proc
 WHERE oid IN ('tenant.current_subject'::regproc, 'tenant.current_claims'::regproc) ORDER BY proname;

\c - regress_app
-- (refused tokens also log a WARNING naming the backend pid: not shown)
SET client_min_messages = error;
\pset null '(null)'
-- No context, no subject.
SELECT tenant.current_subject(), tenant.current_claims(), count(*) FROM sdocs;
-- The router authenticated alice of acme.
SELECT regress.enter_subject('acme', 1, 'alice', '{"role": "editor", "dept": 7}');
SELECT tenant.current_tenant_id(), tenant.current_subject(), tenant.current_claims(),
       tenant.current_claims() ->> 'role' AS role;
SELECT tenant_id, owner, body FROM sdocs ORDER BY id;
INSERT INTO sdocs (owner, body) VALUES ('alice', 'alice 3') RETURNING tenant_id, owner, body;
INSERT INTO sdocs (owner, body) VALUES ('bob', 'as bob');
UPDATE sdocs SET body = 'mine' WHERE owner = 'bob';
SELECT count(*) AS alice_rows FROM sdocs;

-- Every way to change the subject or the claims by SQL is refused or
-- changes nothing.
SET pg_tenant.subject = 'bob';
SET LOCAL pg_tenant.subject = 'bob';
RESET pg_tenant.subject;
SET pg_tenant.claims = '{"role": "admin"}';
SELECT set_config('pg_tenant.subject', 'bob', false);
SELECT set_config('pg_tenant.claims', '{"role": "admin"}', false);
SELECT set_config('pg_tenant.subject', '', true);
DO $$ BEGIN PERFORM set_config('pg_tenant.subject', 'bob', false); END $$;
CREATE FUNCTION sneaky_subject() RETURNS bigint LANGUAGE sql
  SET pg_tenant.subject = 'bob' AS $$ SELECT count(*) FROM sdocs $$;
ALTER ROLE regress_app SET pg_tenant.subject = 'bob';
ALTER ROLE regress_app SET pg_tenant.claims = '{}';
RESET ALL;
SELECT tenant.current_subject() AS after_reset_all, tenant.current_claims() ->> 'role' AS role, count(*) FROM sdocs;
DISCARD ALL;
SET client_min_messages = error;
SELECT tenant.current_subject() AS after_discard_all, tenant.current_claims() ->> 'role' AS role, count(*) FROM sdocs;
SHOW pg_tenant.subject;

-- Tokens that do not match exactly what is asked: 42501, nothing changes.
\set VERBOSITY default
-- signed for alice, asked for bob
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 5, subject => 'alice', claims => '{}'), 'bob', '{}');
-- signed claims differ from the claims asked for
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 6, subject => 'alice', claims => '{"role": "viewer"}'), 'alice', '{"role": "admin"}');
-- a plain "set" token cannot carry a subject, nor a set-subject token a plain set
SELECT tenant.set_context('acme', regress.token('set', 'acme', 7), 'alice', '{}');
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 8, subject => 'alice', claims => '{}'));
-- replayed
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 1, subject => 'alice', claims => '{}'), 'alice', '{}');
-- outside the limits, even when signed
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 9, subject => '', claims => '{}'), '', '{}');
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 10, subject => repeat('s', 257), claims => '{}'), repeat('s', 257), '{}');
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 11, subject => 'alice', claims => ''), 'alice', '');
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 12, subject => 'alice', claims => '[1]'), 'alice', '[1]');
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 13, subject => 'alice', claims => '{"a": }'), 'alice', '{"a": }');
SELECT tenant.set_context('acme', regress.token('set-subject', 'acme', 14, subject => 'alice', claims => '{"a": "\u0000"}'), 'alice', '{"a": "\u0000"}');
\set VERBOSITY terse
SELECT tenant.current_tenant_id(), tenant.current_subject(), tenant.current_claims(), count(*) FROM sdocs;

-- A tenant allowed to run DDL cannot plant a subject in a function's SET
-- clause either: PostgreSQL itself refuses (the settings are SUSET).
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter_subject('ddlco', 1, 'alice', '{}');
CREATE FUNCTION sneaky_subject() RETURNS text LANGUAGE sql
  SET pg_tenant.subject = 'bob' AS $$ SELECT tenant.current_subject() $$;
CREATE FUNCTION sneaky_claims() RETURNS jsonb LANGUAGE sql
  SET pg_tenant.claims = '{"role": "admin"}' AS $$ SELECT tenant.current_claims() $$;
SELECT tenant.current_subject(), tenant.current_claims();
SELECT regress.enter_subject('acme', 2, 'alice', '{"role": "editor", "dept": 7}');

-- Control: bob, through a token for bob.
SELECT regress.enter_subject('acme', 20, 'bob', '{}');
SELECT tenant.current_subject(), tenant.current_claims(), owner, body FROM sdocs ORDER BY id;
-- The 2-argument form clears the subject: the per-user policy shows nothing.
SELECT regress.enter('acme', 21);
SELECT tenant.current_subject(), tenant.current_claims(), count(*) FROM sdocs;
-- Another tenant, same subject name: only that tenant's rows.
SELECT regress.enter_subject('globex', 22, 'alice', '{}');
SELECT tenant_id, owner, body FROM sdocs ORDER BY id;
-- clear_context clears the subject too.
SELECT regress.leave(23);
SELECT tenant.current_tenant_id(), tenant.current_subject(), tenant.current_claims();
-- A context set in a transaction that aborts is gone, subject included.
BEGIN;
SELECT regress.enter_subject('acme', 24, 'alice', '{}');
ROLLBACK;
SELECT tenant.current_tenant_id(), tenant.current_subject(), tenant.current_claims();

-- Parallel workers see the subject and the claims (the leader does not
-- scan, so a worker that saw NULL would count nothing).
\c - postgres
SET client_min_messages = warning;
CREATE TABLE sbig (owner text NOT NULL, v int NOT NULL);
INSERT INTO sbig SELECT 'u' || (g % 10), g FROM generate_series(1, 200000) g;
ANALYZE sbig;
GRANT SELECT ON sbig TO regress_app;
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter_subject('acme', 1, 'u3', '{"owner": "u4"}');
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM sbig WHERE owner = tenant.current_subject();
SELECT count(*) FROM sbig WHERE owner = tenant.current_subject();
SELECT count(*) FROM sbig WHERE owner = tenant.current_claims() ->> 'owner';

\c - postgres
SET client_min_messages = warning;
DROP TABLE sbig, sdocs;
