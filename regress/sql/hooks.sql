-- Permission hooks: DDL, read-only, allowed operations. Active only with
-- a tenant context; refusals are 42501 naming the tenant and operation.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE FUNCTION regress.make_table() RETURNS void LANGUAGE plpgsql
AS $$ BEGIN CREATE TABLE made_in_function (x int); END $$;
CREATE TABLE hk (id serial PRIMARY KEY, tenant_id text NOT NULL, v int);
SELECT tenant.protect('hk');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON hk TO regress_app;
GRANT USAGE ON SEQUENCE hk_id_seq TO regress_app;
SELECT (tenant.create_tenant('noupdate', allowed_operations => '{select,insert}')).id;
INSERT INTO hk (tenant_id, v) VALUES ('viewer', 1), ('viewer', 2), ('nodelete', 1), ('acme', 1);

-- A tenant without allow_ddl: no DDL, however it is wrapped.
\c - regress_app
SET client_min_messages = error;
\set VERBOSITY default
SELECT regress.enter('acme', 1);
CREATE TABLE t_acme (x int);
CREATE TEMP TABLE t_tmp (x int);
ALTER TABLE hk ADD COLUMN y int;
DROP TABLE hk;
TRUNCATE hk;
GRANT SELECT ON hk TO PUBLIC;
CREATE INDEX ON hk (v);
DO $$ BEGIN EXECUTE 'CREATE TABLE t_do (x int)'; END $$;
SELECT regress.make_table();
SELECT count(*) AS acme_rows FROM hk;
INSERT INTO hk (v) VALUES (2) RETURNING tenant_id, v;

-- A tenant with allow_ddl can.
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter('ddlco', 1);
CREATE TABLE t_ddl (x int);
ALTER TABLE t_ddl ADD COLUMN y int;
DO $$ BEGIN EXECUTE 'CREATE TABLE t_do (x int)'; END $$;
SELECT regress.make_table();
DROP TABLE t_ddl, t_do, made_in_function;

-- A read-only tenant reads and copies out, and writes nothing.
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter('viewer', 1);
SELECT v FROM hk ORDER BY v;
COPY (SELECT v FROM hk ORDER BY v) TO STDOUT;
COPY hk (v) TO STDOUT;
INSERT INTO hk (v) VALUES (3);
UPDATE hk SET v = 9;
DELETE FROM hk;
MERGE INTO hk USING (SELECT 1 AS v) s ON hk.v = s.v WHEN MATCHED THEN DELETE;
\copy hk (v) FROM '/dev/null'
WITH w AS (INSERT INTO hk (v) VALUES (4) RETURNING v) SELECT * FROM w;
WITH w AS (DELETE FROM hk RETURNING v) SELECT count(*) FROM w;
SELECT v FROM hk FOR UPDATE;
SELECT v FROM hk FOR SHARE;
DO $$ BEGIN INSERT INTO hk (v) VALUES (5); END $$;
SELECT v FROM hk ORDER BY v;

-- A tenant whose allowed_operations omit delete inserts but cannot delete.
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter('nodelete', 1);
INSERT INTO hk (v) VALUES (2) RETURNING tenant_id, v;
UPDATE hk SET v = v + 10 RETURNING v;
DELETE FROM hk WHERE v = 12;
WITH w AS (DELETE FROM hk RETURNING v) SELECT count(*) FROM w;
MERGE INTO hk USING (SELECT 11 AS v) s ON hk.v = s.v WHEN MATCHED THEN UPDATE SET v = 0;
SELECT v FROM hk ORDER BY v;

-- A tenant without update cannot update through an upsert either.
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter('noupdate', 1);
INSERT INTO hk (id, v) VALUES (1000, 1) RETURNING tenant_id, v;
INSERT INTO hk (id, v) VALUES (1000, 2) ON CONFLICT (id) DO UPDATE SET v = 2;
WITH w AS (INSERT INTO hk (id, v) VALUES (1000, 3) ON CONFLICT (id) DO UPDATE SET v = 3 RETURNING v)
SELECT count(*) FROM w;
INSERT INTO hk (id, v) VALUES (1000, 4) ON CONFLICT (id) DO NOTHING;
SELECT id, v FROM hk ORDER BY id;

-- Without a context the hooks stand aside (RLS still hides every row),
-- and superusers are untouched.
\c - regress_app
SELECT count(*) FROM hk;
CREATE TABLE t_nocontext (x int);
DROP TABLE t_nocontext;
\c - postgres
SELECT tenant_id, count(*) FROM hk GROUP BY 1 ORDER BY 1;
