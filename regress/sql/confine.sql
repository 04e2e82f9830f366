-- Confinement (docs/src/security/index.md): a tenant session cannot see or touch
-- other sessions, shared large objects, other tenants' notifications,
-- shared tables' locks, roles, databases or the system. Each refusal sits
-- next to a control that succeeds.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT (tenant.create_tenant('lo_ok', allow_large_objects => true)).id;
SELECT (tenant.create_tenant('lo_viewer', allow_large_objects => true, read_only => true)).id;
SELECT lo_from_bytea(424242, 'shared secret') AS postgres_lo;
GRANT SELECT, UPDATE ON LARGE OBJECT 424242 TO regress_app;
CREATE ROLE regress_plain LOGIN;
GRANT SELECT ON LARGE OBJECT 424242 TO regress_plain;

-- Controls first: a role that is not an application role may do all this.
\c - regress_plain
SET client_min_messages = warning;
SELECT count(*) > 0 AS sees_activity FROM pg_stat_activity;
SELECT pg_cancel_backend(0) AS cancel_no_such_backend;
SELECT count(*) AS large_objects FROM pg_largeobject_metadata WHERE oid = 424242;
SELECT encode(lo_get(424242), 'escape') AS lo_text;
LISTEN plain_channel;
UNLISTEN plain_channel;

-- An application role without a tenant context (a direct login, or code
-- autovacuum runs as the owner of a table a tenant made) is confined too.
\c - regress_app
SET client_min_messages = warning;
SELECT pg_has_role('regress_app', 'tenant_app', 'MEMBER') AS marked_as_application_role;
SELECT count(*) FROM pg_stat_activity;
SELECT pg_cancel_backend(0);
SELECT lo_get(424242);
LISTEN jobs;
ALTER ROLE regress_app PASSWORD 'taken-over';
CREATE FUNCTION spy(x int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM count(*) FROM pg_stat_activity; RETURN x; END $$;
CREATE TABLE bait (x int);
INSERT INTO bait VALUES (1), (2);
CREATE INDEX ON bait (spy(x));
-- PostgreSQL evaluates index expressions as the table's owner (CREATE
-- INDEX, ANALYZE, autovacuum): with an application role as the owner, the
-- same refusal, whoever starts it.
\c - postgres
SET client_min_messages = warning;
CREATE INDEX ON bait (spy(x));
CREATE TABLE bait2 (x int);
INSERT INTO bait2 VALUES (1), (2);
CREATE INDEX ON bait2 (spy(x));
ALTER TABLE bait2 OWNER TO regress_app;
ANALYZE bait2;
DROP TABLE bait, bait2;
DROP FUNCTION spy(int);

\c - regress_app
SET client_min_messages = warning;
-- Other sessions: invisible, unreachable.
SELECT regress.enter('acme', 1);
SELECT query FROM pg_stat_activity;
SELECT count(*) FROM pg_locks;
SELECT pg_stat_get_backend_activity(1);
SELECT pg_blocking_pids(pg_backend_pid());
SELECT count(*) FROM pg_stat_get_backend_idset();
SELECT pg_cancel_backend(pg_backend_pid());
SELECT pg_terminate_backend(0);
-- Not through a view or a DO block either.
CREATE VIEW regress_activity AS SELECT query FROM pg_stat_activity;
DO $$ BEGIN PERFORM pg_cancel_backend(0); END $$;
SELECT count(*) FROM docs;

-- Large objects are shared by all tenants: refused unless granted.
SELECT lo_get(424242);
SELECT lo_put(424242, 0, 'overwritten');
SELECT lo_unlink(424242);
SELECT lo_create(0);
SELECT lo_from_bytea(0, 'x');
SELECT count(*) FROM pg_largeobject_metadata;
SELECT count(*) FROM pg_catalog.pg_largeobject;
ALTER LARGE OBJECT 424242 OWNER TO regress_app;
-- A tenant granted them may use them; a read-only one may only read.
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('lo_ok', 1);
SELECT encode(lo_get(424242), 'escape') AS lo_text;
SELECT lo_unlink(lo_from_bytea(0, 'mine')) AS created_and_unlinked;
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('lo_viewer', 1);
SELECT encode(lo_get(424242), 'escape') AS lo_text;
SELECT lo_put(424242, 0, 'overwritten');
SELECT lo_create(0);
BEGIN;
SELECT lo_open(424242, 131072 | 262144) AS fd \gset
SELECT lowrite(:fd, 'overwritten');
ROLLBACK;
BEGIN;
SELECT lo_open(424242, 131072 | 262144) AS fd \gset
SELECT lo_truncate(:fd, 1);
ROLLBACK;

-- Notifications: namespaced per tenant, pg_notify refused.
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('acme', 1);
LISTEN jobs;
LISTEN pg_tenant_catalog;
SELECT pg_listening_channels() ORDER BY 1;
UNLISTEN jobs;
SELECT pg_listening_channels() ORDER BY 1;
UNLISTEN *;
SELECT count(*) AS channels FROM pg_listening_channels();
SELECT pg_notify('pg_tenant_catalog', '*');
SELECT tenant.notify('jobs', 'payload');
LISTEN a_channel_name_that_is_long_enough_to_overflow_with_a_prefix_xx;
BEGIN;
NOTIFY pg_tenant_catalog, '*';
ROLLBACK;

-- Locks above ROW EXCLUSIVE on shared tables: refused; below: fine.
BEGIN;
LOCK TABLE docs IN ROW EXCLUSIVE MODE;
LOCK TABLE docs IN SHARE MODE;
ROLLBACK;
BEGIN;
LOCK TABLE docs IN ACCESS EXCLUSIVE MODE;
ROLLBACK;
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('viewer', 1);
BEGIN;
LOCK TABLE docs IN ACCESS EXCLUSIVE MODE;
ROLLBACK;
-- A tenant with DDL rights may lock its own temporary table.
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('ddlco', 1);
CREATE TEMP TABLE scratch (x int);
BEGIN;
LOCK TABLE scratch IN ACCESS EXCLUSIVE MODE;
COMMIT;
-- Not through a temporary view over a shared table.
CREATE TEMP VIEW docs_view AS SELECT * FROM docs;
BEGIN;
LOCK TABLE docs_view IN ACCESS EXCLUSIVE MODE;
ROLLBACK;
-- DDL that would queue a lock on a shared table before PostgreSQL checks
-- the privilege is refused first.
CREATE RULE r AS ON INSERT TO docs DO ALSO NOTHING;
CREATE FUNCTION ddlco_trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER t BEFORE INSERT ON docs FOR EACH ROW EXECUTE FUNCTION ddlco_trg();
CREATE TABLE ddlco_fk (id int REFERENCES docs (id));
CREATE TABLE ddlco_fk2 (id int, FOREIGN KEY (id) REFERENCES docs (id));
CREATE TABLE ddlco_fk3 (id int);
ALTER TABLE ddlco_fk3 ADD FOREIGN KEY (id) REFERENCES docs (id);
CREATE TABLE ddlco_part PARTITION OF docs DEFAULT;
CREATE TABLE ddlco_inh (x int) INHERITS (docs);
CREATE TABLE ddlco_pp (id int, tenant_id text, body text) PARTITION BY LIST (id);
ALTER TABLE ddlco_pp ATTACH PARTITION docs FOR VALUES IN (1);
ALTER TABLE ddlco_fk3 INHERIT docs;
CREATE STATISTICS ddlco_st ON id, tenant_id FROM docs;
DROP TABLE ddlco_pp;
-- On its own tables: allowed.
CREATE TABLE ddlco_parent (id int PRIMARY KEY);
CREATE TABLE ddlco_child (id int REFERENCES ddlco_parent (id));
CREATE TRIGGER t BEFORE INSERT ON ddlco_child FOR EACH ROW EXECUTE FUNCTION ddlco_trg();
DROP TABLE ddlco_child, ddlco_parent, ddlco_fk3;
DROP FUNCTION ddlco_trg();

-- allow_ddl is DDL on the tenant's own objects, never role-, database- or
-- system-level commands.
ALTER ROLE regress_app PASSWORD 'taken-over';
ALTER ROLE regress_app SET statement_timeout = '1ms';
ALTER ROLE regress_app RENAME TO hijacked;
CREATE ROLE regress_minion;
GRANT regress_initech TO regress_app;
ALTER DATABASE contrib_regression SET work_mem = '1MB';
ALTER SYSTEM SET work_mem = '1MB';
GRANT CREATE ON DATABASE contrib_regression TO PUBLIC;
GRANT CREATE ON SCHEMA public TO PUBLIC;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
COMMENT ON DATABASE contrib_regression IS 'owned';
CHECKPOINT;
LOAD 'pg_tenant';
TRUNCATE docs;
SELECT count(*) AS ddlco_rows FROM docs;
-- Expressions evaluated outside any query plan are checked too: CHECK
-- constraints, domains, column defaults, COPY ... WHERE.
CREATE TABLE ddlco_chk (x int CHECK (pg_cancel_backend(x) IS NOT NULL));
INSERT INTO ddlco_chk VALUES (0);
CREATE DOMAIN ddlco_dom AS int CHECK (pg_terminate_backend(VALUE) IS NOT NULL);
SELECT 0::ddlco_dom;
CREATE TABLE ddlco_def (x int, q boolean DEFAULT pg_cancel_backend(0));
INSERT INTO ddlco_def (x) VALUES (1);
COPY ddlco_def (x) FROM STDIN WHERE pg_cancel_backend(x);
1
\.
DROP TABLE ddlco_chk, ddlco_def;
DROP DOMAIN ddlco_dom;
-- Its own objects: allowed.
CREATE TABLE ddlco_own (x int);
ALTER TABLE ddlco_own ADD COLUMN y int;
TRUNCATE ddlco_own;
DROP TABLE ddlco_own;

-- uuid tenant columns: only the canonical form of a uuid is that uuid, so
-- no second tenant id can map onto another tenant's uuid.
\c - postgres
SET client_min_messages = warning;
SELECT (tenant.create_tenant('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')).id;
SELECT (tenant.create_tenant('a0eebc999c0b4ef8bb6d6bb9bd380a11----')).id;
CREATE TABLE cf_uuid (id int, tenant_id uuid NOT NULL);
SELECT tenant.protect('cf_uuid');
INSERT INTO cf_uuid VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
GRANT SELECT, INSERT ON cf_uuid TO regress_app;
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('a0eebc999c0b4ef8bb6d6bb9bd380a11----', 1);
SELECT tenant.current_tenant_uuid(), count(*) AS sees FROM cf_uuid;
INSERT INTO cf_uuid (id) VALUES (2);
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 1);
SELECT tenant.current_tenant_uuid(), count(*) AS sees FROM cf_uuid;
\c - postgres
SET client_min_messages = warning;
DROP TABLE cf_uuid;
SELECT tenant.drop_tenant('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), tenant.drop_tenant('a0eebc999c0b4ef8bb6d6bb9bd380a11----');

-- Other roles may still change their own settings.
\c - regress_plain
SET client_min_messages = warning;
ALTER ROLE regress_plain SET statement_timeout = '1min';
ALTER ROLE regress_plain RESET statement_timeout;

-- The pg_tenant prefix is reserved, for every role.
SET pg_tenant.anything = 'x';
RESET pg_tenant.tenant_id;
SELECT set_config('pg_tenant.anything', 'x', false);
\c - postgres
SET client_min_messages = warning;
SET pg_tenant.anything = 'x';
SELECT lo_unlink(424242);
DROP ROLE regress_plain;
