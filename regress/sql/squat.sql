-- Schema squatting: the extension's schema "tenant" must be its alone.
-- CREATE EXTENSION uses an existing schema of that name as it is, and its
-- script runs with search_path = tenant, so a function planted there
-- (exact-type overloads beat pg_catalog's polymorphic ones) would be bound
-- into the catalog's constraints and run as a superuser on every
-- create_tenant. Each is refused before anything is created.
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE ROLE regress_squat LOGIN;
CREATE DATABASE regress_squat OWNER regress_squat;
\c regress_squat regress_squat
CREATE SCHEMA tenant;
CREATE FUNCTION tenant.cardinality(text[]) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE regress_squat SUPERUSER';
  END IF;
  RETURN pg_catalog.cardinality($1);
END $$;
\c regress_squat postgres
SET client_min_messages = warning;
-- The attack: refused (before the fix it installed, and the next statement
-- made regress_squat a superuser).
CREATE EXTENSION pg_tenant;
SELECT tenant.create_tenant('x', login_roles => '{regress_squat}');
SELECT rolsuper AS squatter_is_superuser FROM pg_roles WHERE rolname = 'regress_squat';
-- A superuser-owned schema where others may create objects: refused.
ALTER SCHEMA tenant OWNER TO postgres;
GRANT CREATE ON SCHEMA tenant TO regress_squat;
CREATE EXTENSION pg_tenant;
REVOKE CREATE ON SCHEMA tenant FROM regress_squat;
-- A superuser-owned schema holding a foreign object: refused.
CREATE EXTENSION pg_tenant;
DROP FUNCTION tenant.cardinality(text[]);
-- Control: an empty schema owned by a superuser (what pg_dump's restore
-- creates) is used, and the extension works.
CREATE EXTENSION pg_tenant;
SELECT (tenant.create_tenant('x', login_roles => '{regress_squat}')).login_roles;
SELECT rolsuper AS squatter_is_superuser FROM pg_roles WHERE rolname = 'regress_squat';
DROP EXTENSION pg_tenant;
-- The same checks on ALTER EXTENSION UPDATE from 0.2.0: objects that are
-- not the extension's, a schema owned by another role.
CREATE EXTENSION pg_tenant VERSION '0.2.0';
CREATE FUNCTION tenant.array_position(text[], text) RETURNS int LANGUAGE sql AS 'SELECT NULL::int';
ALTER EXTENSION pg_tenant UPDATE;
DROP FUNCTION tenant.array_position(text[], text);
ALTER SCHEMA tenant OWNER TO regress_squat;
ALTER EXTENSION pg_tenant UPDATE;
ALTER SCHEMA tenant OWNER TO postgres;
ALTER EXTENSION pg_tenant UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_tenant';
DROP EXTENSION pg_tenant;
-- And on the update from 0.3.0 (whose script reads acldefault while it
-- keeps the privileges of the functions it re-creates): refused, and the
-- extension stays at 0.3.0; control: without the planted function it
-- updates.
CREATE EXTENSION pg_tenant VERSION '0.3.0';
CREATE FUNCTION tenant.acldefault("char", oid) RETURNS aclitem[] LANGUAGE sql AS 'SELECT NULL::aclitem[]';
ALTER EXTENSION pg_tenant UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_tenant';
DROP FUNCTION tenant.acldefault("char", oid);
ALTER EXTENSION pg_tenant UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'pg_tenant';
\c contrib_regression postgres
SET client_min_messages = warning;
DROP DATABASE regress_squat;
DROP ROLE regress_squat;
