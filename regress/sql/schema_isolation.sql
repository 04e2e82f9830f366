-- Schema isolation (docs/src/isolation/schema.md): a schema tenant runs as its
-- own role with its schema, then the shared schemas, on a search_path that
-- resets come back to; other tenants' schemas are unreachable by USAGE.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\pset null '(null)'
-- Roles are the cluster's: a failed earlier run may have left them.
DROP ROLE IF EXISTS regress_sch_a, regress_sch_b, regress_sch_c, regress_sch_ops, regress_sch_report, regress_sch_group, sch_a, sch_p;
CREATE SCHEMA sch_ref;
CREATE TABLE sch_ref.currencies (code text PRIMARY KEY);
INSERT INTO sch_ref.currencies VALUES ('EUR'), ('USD');

-- The catalog: a schema tenant needs a role, a schema of its own, and
-- shared schemas that exist and belong to no tenant.
SELECT tenant.create_tenant('sch-x', isolation => 'schema', schema_name => 'sch_x');
SELECT tenant.create_tenant('sch-x', isolation => 'schema', schema_name => 'public', role_name => 'regress_sch_x');
SELECT tenant.create_tenant('sch-x', shared_schemas => '{sch_ref}');
SELECT tenant.create_tenant('sch-x', isolation => 'schema', schema_name => 'sch_x', role_name => 'regress_sch_x',
                            shared_schemas => '{no_such_schema}');
SELECT id, isolation, schema_name, role_name, shared_schemas
FROM tenant.create_tenant('sch-a', isolation => 'schema', schema_name => 'sch_a', role_name => 'regress_sch_a',
                          allow_ddl => true, login_roles => '{regress_app}', shared_schemas => '{sch_ref}');
SELECT id, schema_name, role_name, shared_schemas
FROM tenant.create_tenant('sch-b', isolation => 'schema', schema_name => 'sch_b', role_name => 'regress_sch_b',
                          allow_ddl => true, login_roles => '{regress_app}', shared_schemas => '{sch_ref}');
SELECT tenant.create_tenant('sch-c', isolation => 'schema', schema_name => 'sch_a', role_name => 'regress_sch_c');
SELECT id, schema_name FROM tenant.create_tenant('sch-c', isolation => 'schema', schema_name => 'sch_c',
                                                 role_name => 'regress_sch_c', login_roles => '{regress_app}');
SELECT id, shared_schemas FROM tenant.tenant_list WHERE id LIKE 'sch-%' ORDER BY id;

-- Provisioning: the role, the schema (owned by the operator, not the
-- tenant), USAGE and CREATE for the role, nothing for PUBLIC, the role
-- granted to the login roles. A second call changes nothing and says so.
SELECT tenant.provision_tenant('sch-a');
SELECT tenant.provision_tenant('sch-a');
SELECT tenant.provision_tenant('sch-b');
SELECT tenant.provision_tenant('sch-c');
SELECT tenant.provision_tenant('acme');
-- Tenant roles are granted to application roles only: tenant_admin may
-- not gain a tenant's role (and data) by naming itself in login_roles.
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_sch_ops') THEN
  CREATE ROLE regress_sch_ops LOGIN IN ROLE tenant_admin; END IF; END $$;
SELECT login_roles FROM tenant.alter_tenant('sch-a', login_roles => '{regress_app,regress_sch_ops}');
SET ROLE regress_sch_ops;
SELECT regress.try('SELECT tenant.provision_tenant(''sch-a'')');
RESET ROLE;
SELECT pg_has_role('regress_sch_ops', 'regress_sch_a', 'MEMBER') AS ops_got_tenant_role;
SELECT login_roles FROM tenant.alter_tenant('sch-a', login_roles => '{regress_app}');
DROP ROLE regress_sch_ops;
-- Nor can it point a tenant at an operator's schema to be handed it, or
-- to drop it: provisioning and drop_objects take only a schema holding
-- nothing of other roles.
CREATE SCHEMA sch_ops;
CREATE TABLE sch_ops.payroll (amount int);
SELECT id FROM tenant.create_tenant('sch-e', isolation => 'schema', schema_name => 'sch_ops', role_name => 'regress_sch_e');
SELECT regress.try('SELECT tenant.provision_tenant(''sch-e'')');
SELECT regress.try('SELECT tenant.drop_tenant(''sch-e'', drop_objects => true)');
SELECT n.nspacl, to_regclass('sch_ops.payroll') IS NOT NULL AS payroll_kept,
       (SELECT count(*) FROM pg_roles WHERE rolname = 'regress_sch_e') AS role_made
  FROM pg_namespace n WHERE n.nspname = 'sch_ops';
SELECT tenant.drop_tenant('sch-e');
DROP SCHEMA sch_ops CASCADE;
-- Nor drop a login role: drop_objects drops NOLOGIN tenant roles only.
SELECT id FROM tenant.create_tenant('sch-e', isolation => 'schema', schema_name => 'sch_e', role_name => 'regress_app');
SELECT regress.try('SELECT tenant.drop_tenant(''sch-e'', drop_objects => true)');
SELECT count(*) AS login_role_kept FROM pg_roles WHERE rolname = 'regress_app';
SELECT tenant.drop_tenant('sch-e');
-- Nor a NOLOGIN application role provision_tenant did not make for the
-- tenant (an operator's group of login roles): nothing is dropped.
CREATE ROLE regress_sch_group NOLOGIN IN ROLE tenant_app;
SELECT id FROM tenant.create_tenant('sch-g', role_name => 'regress_sch_group');
SELECT regress.try('SELECT tenant.drop_tenant(''sch-g'', drop_objects => true)');
SELECT count(*) AS group_kept, (SELECT count(*) FROM tenant.tenants WHERE id = 'sch-g') AS tenant_kept
  FROM pg_roles WHERE rolname = 'regress_sch_group';
SELECT tenant.drop_tenant('sch-g');
DROP ROLE regress_sch_group;
-- Nor name a tenant's schema after a role (that role's "$user" schema,
-- first on PostgreSQL's default search_path: a superuser's unqualified
-- names would find what the tenant's role creates there, and run it as
-- the superuser), or after a schema that a search_path setting names
-- (42501, nothing created); a role created later is refused at
-- provisioning. Control: a schema named after the tenant's own role.
DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'regress_sch_ops') THEN
  CREATE ROLE regress_sch_ops LOGIN IN ROLE tenant_admin; END IF; END $$;
ALTER ROLE regress_sch_ops SET search_path = sch_q, public;
SET ROLE regress_sch_ops;
SELECT regress.try('SELECT tenant.create_tenant(''sch-p'', isolation => ''schema'', schema_name => ''postgres'', role_name => ''regress_sch_p'')');
SELECT regress.try('SELECT tenant.create_tenant(''sch-p'', isolation => ''schema'', schema_name => ''sch_q'', role_name => ''regress_sch_p'')');
SELECT id, schema_name FROM tenant.create_tenant('sch-p', isolation => 'schema', schema_name => 'regress_sch_p', role_name => 'regress_sch_p');
SELECT regress.try('SELECT tenant.alter_tenant(''sch-p'', schema_name => ''postgres'')');
SELECT id, schema_name FROM tenant.alter_tenant('sch-p', schema_name => 'sch_p');
RESET ROLE;
CREATE ROLE sch_p NOLOGIN;
SELECT regress.try('SELECT tenant.provision_tenant(''sch-p'')');
SELECT count(*) AS schemas_made FROM pg_namespace WHERE nspname IN ('postgres', 'sch_q', 'sch_p');
SELECT count(*) AS roles_made FROM pg_roles WHERE rolname = 'regress_sch_p';
SELECT object, problem FROM tenant.audit() WHERE problem LIKE '%tenant sch-p%' ORDER BY 1, 2;
DROP ROLE sch_p;
SELECT object, problem FROM tenant.audit() WHERE problem LIKE '%tenant sch-p%' ORDER BY 1, 2;
SELECT tenant.drop_tenant('sch-p');
DROP ROLE regress_sch_ops;
SELECT n.nspname, pg_get_userbyid(n.nspowner) AS owner, n.nspacl
  FROM pg_namespace n WHERE n.nspname IN ('sch_a', 'sch_b') ORDER BY 1;
SELECT r.rolname, r.rolcanlogin, pg_has_role(r.oid, 'tenant_app', 'MEMBER') AS app_role,
       pg_has_role('regress_app', r.oid, 'MEMBER') AS login_member
  FROM pg_roles r WHERE r.rolname IN ('regress_sch_a', 'regress_sch_b') ORDER BY 1;
-- Now that sch_a exists, it can be no other tenant's shared schema; its
-- role is no other tenant's role either.
SELECT tenant.alter_tenant('sch-b', shared_schemas => '{sch_a}');
SELECT tenant.create_tenant('sch-d', isolation => 'schema', schema_name => 'sch_d', role_name => 'regress_sch_a');
SELECT tenant.create_tenant('sch-d', role_name => 'regress_sch_a');
SELECT tenant.alter_tenant('sch-c', role_name => 'regress_sch_b');
-- The operator's reference schema: readable, not writable, by tenants.
GRANT USAGE ON SCHEMA sch_ref TO regress_sch_a, regress_sch_b;
GRANT SELECT ON sch_ref.currencies TO regress_sch_a, regress_sch_b;

-- Tenant A: its schema first, then the shared one; what it creates lands
-- in its schema, owned by its role.
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('sch-a', 1);
SELECT current_user, current_setting('search_path') AS search_path, current_schemas(false);
CREATE TABLE invoices (id int PRIMARY KEY, body text);
INSERT INTO invoices VALUES (1, 'a secret');
SELECT c.oid::regclass::text AS name, pg_get_userbyid(c.relowner) AS owner
  FROM pg_class c WHERE c.relname = 'invoices';
SELECT body FROM invoices;
SELECT code FROM currencies ORDER BY code;
SELECT regress.try('CREATE TABLE sch_ref.planted (x int)');
-- The path is the session's reset value: SET works, and every reset
-- comes back to the tenant's path.
SET search_path = public;
SHOW search_path;
RESET search_path;
SHOW search_path;
SET search_path = public;
RESET ALL;
SHOW search_path;
SET search_path = public;
DISCARD ALL;
SET client_min_messages = warning;
SHOW search_path;
SELECT current_user, tenant.current_tenant_id(), body FROM invoices;
-- A SET inside a transaction that rolls back is undone too.
BEGIN;
SET search_path = public;
ROLLBACK;
SHOW search_path;

-- Tenant B cannot reach A's schema: not by a qualified name (42501), not by
-- its search_path (42P01); its own schema works.
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('sch-b', 1);
SHOW search_path;
CREATE TABLE invoices (id int PRIMARY KEY, body text);
INSERT INTO invoices VALUES (1, 'b secret');
SELECT body FROM invoices;
SELECT body FROM sch_b.invoices;
SELECT regress.try('SELECT body FROM sch_a.invoices');
SET search_path = sch_a;
SELECT regress.try('SELECT body FROM invoices');
SELECT regress.try('INSERT INTO sch_a.invoices VALUES (2, ''from b'')');
SELECT set_config('search_path', 'sch_a', false);
SELECT regress.try('SELECT body FROM invoices');
RESET search_path;
-- B cannot widen anyone's reach: schemas are the operator's (PostgreSQL
-- alone would only warn for a non-owner's GRANT on a schema).
SELECT regress.try('GRANT USAGE ON SCHEMA sch_b TO regress_sch_a');
SELECT regress.try('GRANT USAGE ON SCHEMA sch_a TO regress_sch_b');
SELECT regress.try('REVOKE USAGE ON SCHEMA sch_b FROM regress_sch_b');
SELECT regress.try('ALTER SCHEMA sch_b OWNER TO regress_sch_b');
SELECT regress.try('ALTER SCHEMA sch_b RENAME TO sch_bb');
SELECT regress.try('ALTER DEFAULT PRIVILEGES IN SCHEMA sch_b GRANT SELECT ON TABLES TO PUBLIC');
SELECT regress.try('ALTER TABLE invoices SET SCHEMA sch_ref');
-- Control: granting its own table is B's to do, and still reaches no one
-- (no other role has USAGE on sch_b).
SELECT regress.try('GRANT SELECT ON invoices TO PUBLIC');
CREATE FUNCTION api_key() RETURNS text LANGUAGE sql AS $$ SELECT 'sk_live_b_secret' $$;

\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('sch-a', 1);
SELECT regress.try('SELECT body FROM sch_b.invoices');
SELECT body FROM sch_a.invoices;
-- What schema isolation does not hide (docs/src/isolation/schema.md): the catalog. B's function
-- is not executable by A, but its source, and its table's name, are
-- readable; only database isolation hides them.
SELECT regress.try('SELECT sch_b.api_key()');
SELECT p.prosrc FROM pg_proc p WHERE p.proname = 'api_key' AND p.pronamespace = 'sch_b'::regnamespace;
SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'sch_b'::regnamespace AND c.relkind = 'r';

-- One backend switched between tenants, as a pool does: each gets its own
-- path; an rls tenant and clear_context get the database's default back.
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SHOW search_path;
SELECT regress.enter('sch-a', 1);
SET search_path = public;
SELECT regress.leave(2);
SHOW search_path;
DISCARD ALL;
SET client_min_messages = warning;
SHOW search_path;
SELECT regress.enter('sch-b', 3);
SHOW search_path;
SELECT body FROM invoices;
SELECT regress.leave(4);
DISCARD ALL;
SET client_min_messages = warning;
SELECT regress.enter('sch-a', 5);
SHOW search_path;
SELECT body FROM invoices;
-- Straight from a schema tenant to an rls tenant (no role of its own).
SELECT regress.enter('acme', 6);
SELECT current_user, current_setting('search_path') AS search_path;
RESET ALL;
SHOW search_path;

-- Fail-closed: a missing schema, a role without USAGE on it, a schema
-- tenant without a role (a row stored before 0.8.0) are refused (42501).
\c - postgres
SET client_min_messages = warning;
DROP SCHEMA sch_c;
REVOKE USAGE ON SCHEMA sch_b FROM regress_sch_b;
INSERT INTO tenant.tenants (id, name, isolation, schema_name) VALUES ('sch-old', 'old', 'schema', 'sch_old');
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.try('SELECT regress.enter(''sch-c'', 1)');
SELECT regress.try('SELECT regress.enter(''sch-b'', 2)');
SELECT regress.try('SELECT regress.enter(''sch-old'', 3)');
SELECT tenant.current_tenant_id(), current_user, current_setting('search_path') AS search_path;
\c - postgres
SET client_min_messages = warning;
-- Such a row can still be disabled, not enabled again without a role.
SELECT enabled FROM tenant.disable_tenant('sch-old');
SELECT tenant.enable_tenant('sch-old');
-- A row on a reserved schema (stored before 0.8.0, or by a raw write) can
-- be disabled, not enabled; provision_tenant and drop_objects refuse it
-- (public is neither handed over nor dropped).
INSERT INTO tenant.tenants (id, name, isolation, schema_name, role_name)
VALUES ('sch-pub', 'pub', 'schema', 'public', 'regress_sch_pub');
SELECT enabled FROM tenant.disable_tenant('sch-pub');
SELECT regress.try('SELECT tenant.enable_tenant(''sch-pub'')');
SELECT regress.try('SELECT tenant.provision_tenant(''sch-pub'')');
SELECT regress.try('SELECT tenant.drop_tenant(''sch-pub'', drop_objects => true)');
SELECT count(*) AS public_kept, (SELECT count(*) FROM pg_roles WHERE rolname = 'regress_sch_pub') AS role_made
  FROM pg_namespace WHERE nspname = 'public';
SELECT tenant.drop_tenant('sch-pub');
SELECT tenant.provision_tenant('sch-b');
SELECT tenant.provision_tenant('sch-c');

-- audit(): tenant roles that reach another tenant's schema, tenant roles
-- that may create in a shared schema, tenant schemas owned by an
-- application role, objects in a tenant schema not owned by its role.
SELECT object, problem FROM tenant.audit() WHERE problem LIKE '%tenant sch-%' ORDER BY 1, 2;
GRANT USAGE ON SCHEMA sch_a TO regress_sch_b;
GRANT CREATE ON SCHEMA sch_ref TO regress_sch_c;
CREATE TABLE sch_a.planted (x int);
CREATE FUNCTION sch_a.planted_fn() RETURNS int LANGUAGE sql RETURN 1;
ALTER SCHEMA sch_c OWNER TO regress_sch_c;
UPDATE tenant.tenants SET role_name = 'regress_sch_a' WHERE id = 'sch-old';
CREATE ROLE sch_a NOLOGIN;
SELECT object, problem FROM tenant.audit() WHERE problem LIKE '%tenant sch-%' ORDER BY 1, 2;
DROP ROLE sch_a;
REVOKE USAGE ON SCHEMA sch_a FROM regress_sch_b;
REVOKE CREATE ON SCHEMA sch_ref FROM regress_sch_c;
DROP TABLE sch_a.planted;
DROP FUNCTION sch_a.planted_fn();
ALTER SCHEMA sch_c OWNER TO postgres;
UPDATE tenant.tenants SET role_name = NULL WHERE id = 'sch-old';
SELECT object, problem FROM tenant.audit() WHERE problem LIKE '%tenant sch-%' ORDER BY 1, 2;
-- An operator's SECURITY DEFINER function without a search_path of its
-- own resolves names through the caller's path with its owner's
-- privileges: tenant B, refused sch_a itself, reads A's rows through it.
-- audit() reports it; pinned, it finds nothing of A's (42P01).
CREATE ROLE regress_sch_report NOLOGIN;
GRANT USAGE ON SCHEMA sch_a TO regress_sch_report;
GRANT SELECT ON sch_a.invoices TO regress_sch_report;
SET check_function_bodies = off;
CREATE FUNCTION sch_ref.latest_invoice() RETURNS text LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT body FROM invoices ORDER BY id DESC LIMIT 1 $$;
RESET check_function_bodies;
ALTER FUNCTION sch_ref.latest_invoice() OWNER TO regress_sch_report;
SELECT object, problem FROM tenant.audit() WHERE object LIKE 'sch_ref.%' ORDER BY 1, 2;
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('sch-b', 1);
SELECT regress.try('SELECT body FROM sch_a.invoices');
SET search_path = sch_a, sch_ref;
SELECT sch_ref.latest_invoice() AS read_through_it;
\c - postgres
SET client_min_messages = warning;
ALTER FUNCTION sch_ref.latest_invoice() SET search_path = pg_catalog, pg_temp;
SELECT object, problem FROM tenant.audit() WHERE object LIKE 'sch_ref.%' ORDER BY 1, 2;
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT regress.enter('sch-b', 1);
SET search_path = sch_a, sch_ref;
SELECT regress.try('SELECT sch_ref.latest_invoice()');
\c - postgres
SET client_min_messages = warning;
DROP FUNCTION sch_ref.latest_invoice();
DROP OWNED BY regress_sch_report;
DROP ROLE regress_sch_report;

-- Dropping: without the flag, the schema and role stay and the NOTICE
-- names them; with drop_objects, both go.
SET client_min_messages = notice;
SELECT tenant.drop_tenant('sch-c');
SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'sch_c') AS schema_left,
       (SELECT count(*) FROM pg_roles WHERE rolname = 'regress_sch_c') AS role_left;
-- Nor a schema that objects outside it depend on (DROP SCHEMA ... CASCADE
-- would drop an operator's view over the tenant's table too): 2BP01,
-- nothing dropped. Control: without the view, both go.
CREATE VIEW public.sch_b_report AS SELECT count(*) AS n FROM sch_b.invoices;
SELECT regress.try('SELECT tenant.drop_tenant(''sch-b'', drop_objects => true)');
SELECT to_regclass('public.sch_b_report') IS NOT NULL AS view_kept,
       (SELECT count(*) FROM tenant.tenants WHERE id = 'sch-b') AS tenant_kept;
DROP VIEW public.sch_b_report;
SELECT tenant.drop_tenant('sch-b', drop_objects => true);
SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'sch_b') AS schema_left,
       (SELECT count(*) FROM pg_roles WHERE rolname = 'regress_sch_b') AS role_left;
-- A role that still owns something outside the schema is not dropped, and
-- nothing is (2BP01).
CREATE TABLE public.sch_a_owned (x int);
ALTER TABLE public.sch_a_owned OWNER TO regress_sch_a;
SELECT regress.try('SELECT tenant.drop_tenant(''sch-a'', drop_objects => true)');
SELECT count(*) AS still_there FROM tenant.tenants WHERE id = 'sch-a';
DROP TABLE public.sch_a_owned;
SELECT tenant.drop_tenant('sch-a', drop_objects => true);
SELECT tenant.drop_tenant('sch-old');
SET client_min_messages = warning;
DROP SCHEMA sch_c CASCADE;
DROP OWNED BY regress_sch_c;
DROP ROLE regress_sch_c;
DROP SCHEMA sch_ref CASCADE;
SELECT count(*) AS sch_roles_left FROM pg_roles WHERE rolname LIKE 'regress\_sch\_%';
