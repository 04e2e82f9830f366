-- pg_tenant 0.2.0 -> 0.3.0 (frozen with the 0.3.0 release; never edit).
--
-- Authenticating the tenant (issue 15), the extension's side:
-- * tenant.tenants.login_roles (NULL: any login role), in tenant_list,
--   create_tenant and alter_tenant (as the last argument, so positional
--   calls keep working; reset => '{login_roles}'); set_context refuses a
--   session user not listed;
-- * tenant.tenant_secrets (no privileges for any role), tenant.set_password
--   (tenant_admin), tenant.auth_secret and tenant.login_verifier
--   (tenant_router only), tenant._scram_verifier (internal);
-- * tenant.set_context(tenant, token, subject, claims) from a set-subject
--   token, tenant.current_subject() and tenant.current_claims();
-- * tenant.audit() reports application roles that are members of
--   tenant_router or tenant_admin.
-- The pg_tenant.subject and pg_tenant.claims settings live in the shared
-- library, which also still runs a 0.2.0 schema until this update ran.
\echo Use "ALTER EXTENSION pg_tenant UPDATE TO '0.3.0'" to load this file. \quit

ALTER TABLE tenant.tenants ADD COLUMN
    -- 0.3.0: the login roles that may take this tenant (NULL: any).
    login_roles        text[]
                       CONSTRAINT login_roles_listed
                       CHECK (cardinality(login_roles) > 0 AND array_position(login_roles, NULL) IS NULL);

CREATE OR REPLACE VIEW tenant.tenant_list AS
SELECT t.id, t.name, t.isolation, t.database_name, t.schema_name, t.role_name,
       coalesce(t.max_connections, d.max_connections, 100)   AS max_connections,
       coalesce(t.qps_limit, d.qps_limit, 0)                 AS qps_limit,
       coalesce(t.burst_multiplier, d.burst_multiplier, 1.0) AS burst_multiplier,
       coalesce(t.max_query_ms, d.max_query_ms, 0)           AS max_query_ms,
       coalesce(t.max_result_bytes, d.max_result_bytes, 0)   AS max_result_bytes,
       t.allow_ddl, t.read_only, t.allowed_operations, t.dedicated_pool,
       coalesce(t.pool_size, d.pool_size, 10)                AS pool_size,
       coalesce(t.min_idle, d.min_idle, 0)                   AS min_idle,
       t.enabled, t.created_at, t.updated_at, t.allow_large_objects, t.login_roles
FROM tenant.tenants t
LEFT JOIN tenant.defaults d ON true;

CREATE OR REPLACE FUNCTION tenant._validate(t tenant.tenants) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    op text;
BEGIN
    IF t.id IS NULL OR t.id !~ '^[a-z0-9][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid tenant id "%"', t.id
            USING ERRCODE = '22023',
                  HINT = 'Tenant ids are 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit.';
    END IF;
    IF t.isolation NOT IN ('rls', 'schema', 'database') THEN
        RAISE EXCEPTION 'unknown isolation "%" for tenant "%"', t.isolation, t.id
            USING ERRCODE = '22023', HINT = 'Use rls, schema or database.';
    END IF;
    IF t.isolation = 'schema' AND t.schema_name IS NULL THEN
        RAISE EXCEPTION 'tenant "%" uses schema isolation but has no schema_name', t.id USING ERRCODE = '22023';
    END IF;
    IF t.isolation = 'database' AND t.database_name IS NULL THEN
        RAISE EXCEPTION 'tenant "%" uses database isolation but has no database_name', t.id USING ERRCODE = '22023';
    END IF;
    IF t.max_connections < 0 THEN RAISE EXCEPTION 'max_connections must be >= 0, got %', t.max_connections USING ERRCODE = '22023'; END IF;
    IF t.qps_limit < 0 THEN RAISE EXCEPTION 'qps_limit must be >= 0, got %', t.qps_limit USING ERRCODE = '22023'; END IF;
    IF t.burst_multiplier < 1 THEN RAISE EXCEPTION 'burst_multiplier must be >= 1, got %', t.burst_multiplier USING ERRCODE = '22023'; END IF;
    IF t.max_query_ms < 0 THEN RAISE EXCEPTION 'max_query_ms must be >= 0, got %', t.max_query_ms USING ERRCODE = '22023'; END IF;
    IF t.max_result_bytes < 0 THEN RAISE EXCEPTION 'max_result_bytes must be >= 0, got %', t.max_result_bytes USING ERRCODE = '22023'; END IF;
    IF t.pool_size < 1 THEN RAISE EXCEPTION 'pool_size must be >= 1, got %', t.pool_size USING ERRCODE = '22023'; END IF;
    IF t.min_idle < 0 THEN RAISE EXCEPTION 'min_idle must be >= 0, got %', t.min_idle USING ERRCODE = '22023'; END IF;
    IF t.min_idle > t.pool_size THEN
        RAISE EXCEPTION 'min_idle (%) must not exceed pool_size (%)', t.min_idle, t.pool_size USING ERRCODE = '22023';
    END IF;
    FOREACH op IN ARRAY coalesce(t.allowed_operations, '{}') LOOP
        IF op IS NULL OR op NOT IN ('select', 'insert', 'update', 'delete') THEN
            RAISE EXCEPTION 'unknown operation "%" in allowed_operations', op
                USING ERRCODE = '22023', HINT = 'Use select, insert, update and delete.';
        END IF;
    END LOOP;
    IF t.role_name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = t.role_name) THEN
        RAISE EXCEPTION 'role "%" does not exist', t.role_name USING ERRCODE = '42704';
    END IF;
    IF cardinality(t.login_roles) = 0 THEN
        RAISE EXCEPTION 'login_roles of tenant "%" is empty', t.id
            USING ERRCODE = '22023', HINT = 'List at least one role, or reset login_roles to NULL to allow any login role.';
    END IF;
    FOREACH op IN ARRAY coalesce(t.login_roles, '{}') LOOP
        IF op IS NULL THEN
            RAISE EXCEPTION 'login_roles of tenant "%" contains NULL', t.id USING ERRCODE = '22023';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = op) THEN
            RAISE EXCEPTION 'role "%" in login_roles does not exist', op USING ERRCODE = '42704';
        END IF;
    END LOOP;
END
$fn$;

-- New trailing argument: drop the old signatures (enable/disable depend on
-- alter_tenant) and create them again.
DROP FUNCTION tenant.enable_tenant(text);
DROP FUNCTION tenant.disable_tenant(text);
DROP FUNCTION tenant.create_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, boolean);
DROP FUNCTION tenant.alter_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, text[], boolean);

CREATE FUNCTION tenant.create_tenant(
    id text,
    name text DEFAULT NULL,
    isolation text DEFAULT 'rls',
    database_name name DEFAULT NULL,
    schema_name name DEFAULT NULL,
    role_name name DEFAULT NULL,
    max_connections integer DEFAULT NULL,
    qps_limit integer DEFAULT NULL,
    burst_multiplier real DEFAULT NULL,
    max_query_ms integer DEFAULT NULL,
    max_result_bytes bigint DEFAULT NULL,
    allow_ddl boolean DEFAULT false,
    read_only boolean DEFAULT false,
    allowed_operations text[] DEFAULT '{select,insert,update,delete}',
    dedicated_pool boolean DEFAULT false,
    pool_size integer DEFAULT NULL,
    min_idle integer DEFAULT NULL,
    enabled boolean DEFAULT true,
    allow_large_objects boolean DEFAULT false,
    login_roles text[] DEFAULT NULL
) RETURNS tenant.tenants
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
BEGIN
    t := ROW(id, coalesce(name, id), isolation, database_name, schema_name, role_name,
             max_connections, qps_limit, burst_multiplier, max_query_ms, max_result_bytes,
             coalesce(allow_ddl, false), coalesce(read_only, false),
             coalesce(allowed_operations, '{select,insert,update,delete}'),
             coalesce(dedicated_pool, false), pool_size, min_idle, coalesce(enabled, true),
             now(), now(), coalesce(allow_large_objects, false), login_roles);
    PERFORM tenant._validate(t);
    IF EXISTS (SELECT 1 FROM tenant.tenants x WHERE x.id = t.id) THEN
        RAISE EXCEPTION 'tenant "%" already exists', t.id USING ERRCODE = '23505';
    END IF;
    INSERT INTO tenant.tenants SELECT t.*;
    IF t.role_name IS NOT NULL THEN
        EXECUTE format('GRANT tenant_app TO %I', t.role_name);
    END IF;
    PERFORM pg_notify('pg_tenant_catalog', t.id);
    RETURN t;
END
$fn$;
COMMENT ON FUNCTION tenant.create_tenant IS 'pg_tenant: register a tenant; NULL limits mean "use tenant.defaults"';

-- Change a tenant. Arguments left NULL keep their value; name a field in
-- `reset` to set it back to NULL (use the default).
CREATE FUNCTION tenant.alter_tenant(
    id text,
    name text DEFAULT NULL,
    isolation text DEFAULT NULL,
    database_name name DEFAULT NULL,
    schema_name name DEFAULT NULL,
    role_name name DEFAULT NULL,
    max_connections integer DEFAULT NULL,
    qps_limit integer DEFAULT NULL,
    burst_multiplier real DEFAULT NULL,
    max_query_ms integer DEFAULT NULL,
    max_result_bytes bigint DEFAULT NULL,
    allow_ddl boolean DEFAULT NULL,
    read_only boolean DEFAULT NULL,
    allowed_operations text[] DEFAULT NULL,
    dedicated_pool boolean DEFAULT NULL,
    pool_size integer DEFAULT NULL,
    min_idle integer DEFAULT NULL,
    enabled boolean DEFAULT NULL,
    reset text[] DEFAULT '{}',
    allow_large_objects boolean DEFAULT NULL,
    login_roles text[] DEFAULT NULL
) RETURNS tenant.tenants
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
    f text;
BEGIN
    t := tenant._get(id);
    FOREACH f IN ARRAY coalesce(reset, '{}') LOOP
        CASE f
            WHEN 'database_name' THEN t.database_name := NULL;
            WHEN 'schema_name' THEN t.schema_name := NULL;
            WHEN 'role_name' THEN t.role_name := NULL;
            WHEN 'max_connections' THEN t.max_connections := NULL;
            WHEN 'qps_limit' THEN t.qps_limit := NULL;
            WHEN 'burst_multiplier' THEN t.burst_multiplier := NULL;
            WHEN 'max_query_ms' THEN t.max_query_ms := NULL;
            WHEN 'max_result_bytes' THEN t.max_result_bytes := NULL;
            WHEN 'pool_size' THEN t.pool_size := NULL;
            WHEN 'min_idle' THEN t.min_idle := NULL;
            WHEN 'login_roles' THEN t.login_roles := NULL;
            ELSE RAISE EXCEPTION 'cannot reset "%": not a nullable tenant field', f USING ERRCODE = '22023';
        END CASE;
    END LOOP;
    t.name := coalesce(alter_tenant.name, t.name);
    t.isolation := coalesce(alter_tenant.isolation, t.isolation);
    t.database_name := coalesce(alter_tenant.database_name, t.database_name);
    t.schema_name := coalesce(alter_tenant.schema_name, t.schema_name);
    t.role_name := coalesce(alter_tenant.role_name, t.role_name);
    t.max_connections := coalesce(alter_tenant.max_connections, t.max_connections);
    t.qps_limit := coalesce(alter_tenant.qps_limit, t.qps_limit);
    t.burst_multiplier := coalesce(alter_tenant.burst_multiplier, t.burst_multiplier);
    t.max_query_ms := coalesce(alter_tenant.max_query_ms, t.max_query_ms);
    t.max_result_bytes := coalesce(alter_tenant.max_result_bytes, t.max_result_bytes);
    t.allow_ddl := coalesce(alter_tenant.allow_ddl, t.allow_ddl);
    t.read_only := coalesce(alter_tenant.read_only, t.read_only);
    t.allowed_operations := coalesce(alter_tenant.allowed_operations, t.allowed_operations);
    t.dedicated_pool := coalesce(alter_tenant.dedicated_pool, t.dedicated_pool);
    t.pool_size := coalesce(alter_tenant.pool_size, t.pool_size);
    t.min_idle := coalesce(alter_tenant.min_idle, t.min_idle);
    t.enabled := coalesce(alter_tenant.enabled, t.enabled);
    t.allow_large_objects := coalesce(alter_tenant.allow_large_objects, t.allow_large_objects);
    t.login_roles := coalesce(alter_tenant.login_roles, t.login_roles);
    t.updated_at := now();
    PERFORM tenant._validate(t);
    UPDATE tenant.tenants x SET
        name = t.name, isolation = t.isolation, database_name = t.database_name,
        schema_name = t.schema_name, role_name = t.role_name,
        max_connections = t.max_connections, qps_limit = t.qps_limit,
        burst_multiplier = t.burst_multiplier, max_query_ms = t.max_query_ms,
        max_result_bytes = t.max_result_bytes, allow_ddl = t.allow_ddl,
        read_only = t.read_only, allowed_operations = t.allowed_operations,
        dedicated_pool = t.dedicated_pool, pool_size = t.pool_size,
        min_idle = t.min_idle, enabled = t.enabled, updated_at = t.updated_at,
        allow_large_objects = t.allow_large_objects, login_roles = t.login_roles
    WHERE x.id = t.id;
    IF t.role_name IS NOT NULL THEN
        EXECUTE format('GRANT tenant_app TO %I', t.role_name);
    END IF;
    PERFORM pg_notify('pg_tenant_catalog', t.id);
    RETURN t;
END
$fn$;
COMMENT ON FUNCTION tenant.alter_tenant IS 'pg_tenant: change a tenant; NULL keeps a value, reset => ''{field}'' clears one';

CREATE FUNCTION tenant.enable_tenant(id text) RETURNS tenant.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN tenant.alter_tenant(id, enabled => true);
COMMENT ON FUNCTION tenant.enable_tenant IS 'pg_tenant: let a tenant connect again';

CREATE FUNCTION tenant.disable_tenant(id text) RETURNS tenant.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN tenant.alter_tenant(id, enabled => false);
COMMENT ON FUNCTION tenant.disable_tenant IS 'pg_tenant: refuse new connections and contexts for a tenant';

REVOKE EXECUTE ON FUNCTION tenant._validate(tenant.tenants), tenant._get(text),
    tenant.create_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, boolean, text[]),
    tenant.alter_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, text[], boolean, text[]),
    tenant.drop_tenant(text), tenant.enable_tenant(text), tenant.disable_tenant(text),
    tenant.set_defaults(integer, integer, real, integer, bigint, integer, integer),
    tenant.router_catalog(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    tenant.create_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, boolean, text[]),
    tenant.alter_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, text[], boolean, text[]),
    tenant.drop_tenant(text), tenant.enable_tenant(text), tenant.disable_tenant(text),
    tenant.set_defaults(integer, integer, real, integer, bigint, integer, integer)
    TO tenant_admin;

-- Functions of the shared library.
CREATE FUNCTION tenant."_scram_verifier"(
	"password" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_scram_verifier_wrapper';

CREATE FUNCTION tenant."current_claims"() RETURNS jsonb /* Option < JsonbText > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'current_claims_wrapper';

CREATE FUNCTION tenant."current_subject"() RETURNS TEXT /* Option < String > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'current_subject_wrapper';

CREATE FUNCTION tenant."set_context"(
	"tenant" TEXT, /* & str */
	"token" TEXT, /* & str */
	"subject" TEXT, /* & str */
	"claims" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_context_subject_wrapper';

-- Tenant secrets.
CREATE TABLE tenant.tenant_secrets (
    tenant_id  text PRIMARY KEY REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    verifier   text NOT NULL CONSTRAINT scram_verifier CHECK (verifier LIKE 'SCRAM-SHA-256$%'),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tenant.tenant_secrets IS 'pg_tenant: SCRAM-SHA-256 verifier per tenant; set with tenant.set_password(), read only by tenant_router through tenant.auth_secret()';
REVOKE ALL ON tenant.tenant_secrets FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('tenant.tenant_secrets', '');

-- Set (or with NULL remove) a tenant's secret: a SCRAM-SHA-256 verifier
-- as it is, or a plaintext password, of which only a verifier is stored.
CREATE FUNCTION tenant.set_password(tenant text, password text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
BEGIN
    t := tenant._get($1);
    IF $2 IS NULL THEN
        DELETE FROM tenant.tenant_secrets s WHERE s.tenant_id OPERATOR(pg_catalog.=) t.id;
    ELSE
        INSERT INTO tenant.tenant_secrets AS s (tenant_id, verifier, updated_at)
        VALUES (t.id, tenant._scram_verifier($2), pg_catalog.now())
        ON CONFLICT (tenant_id) DO UPDATE
            SET verifier = excluded.verifier, updated_at = excluded.updated_at;
    END IF;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', t.id);
END
$fn$;
COMMENT ON FUNCTION tenant.set_password IS 'pg_tenant: set a tenant''s SCRAM-SHA-256 secret (a verifier, or a plaintext password that is hashed); NULL removes it';

-- The tenant's verifier for the router, or NULL (no secret, no tenant).
CREATE FUNCTION tenant.auth_secret(tenant text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT s.verifier FROM tenant.tenant_secrets s
     WHERE s.tenant_id OPERATOR(pg_catalog.=) $1
$fn$;
COMMENT ON FUNCTION tenant.auth_secret IS 'pg_tenant: a tenant''s SCRAM-SHA-256 verifier, for tenant-router (granted to tenant_router only)';

-- The password verifier of an application role, for the router: only for
-- a role that can log in now, is a member of tenant_app and has none of
-- SUPERUSER, BYPASSRLS, REPLICATION. NULL in every other case, whatever
-- the reason (including a role that does not exist).
CREATE FUNCTION tenant.login_verifier(role text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT a.rolpassword FROM pg_catalog.pg_authid a
     WHERE a.rolname::pg_catalog.text OPERATOR(pg_catalog.=) $1
       AND a.rolcanlogin AND NOT a.rolsuper AND NOT a.rolbypassrls AND NOT a.rolreplication
       AND (a.rolvaliduntil IS NULL
            OR a.rolvaliduntil OPERATOR(pg_catalog.>) pg_catalog.statement_timestamp())
       AND pg_catalog.pg_has_role(a.oid, 'tenant_app'::pg_catalog.name, 'MEMBER')
$fn$;
COMMENT ON FUNCTION tenant.login_verifier IS 'pg_tenant: the password verifier of an application role (LOGIN, member of tenant_app, no SUPERUSER/BYPASSRLS/REPLICATION, not expired), for tenant-router (granted to tenant_router only)';

REVOKE EXECUTE ON FUNCTION tenant._scram_verifier(text), tenant.set_password(text, text),
    tenant.auth_secret(text), tenant.login_verifier(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.set_password(text, text) TO tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.auth_secret(text), tenant.login_verifier(text) TO tenant_router;

-- Everything that would let one tenant see another's rows: one row per
-- problem, no rows when the database is safe.
CREATE OR REPLACE FUNCTION tenant.audit()
RETURNS TABLE (object text, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
WITH tables AS (
    -- tables with a tenant_id column, and tables with our policy on any column
    SELECT c.oid, c.oid::regclass::text AS name, c.relrowsecurity, c.relforcerowsecurity,
           coalesce(
             (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped),
             (SELECT a.attnum FROM pg_policy p JOIN pg_attribute a ON a.attrelid = c.oid
               AND pg_get_expr(p.polqual, p.polrelid) LIKE '(' || quote_ident(a.attname) || ' = %'
              WHERE p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation' LIMIT 1)) AS attnum
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant')
      AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
           OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation'))
)
SELECT name, 'row level security is not enabled' FROM tables WHERE NOT relrowsecurity
UNION ALL
SELECT name, 'row level security is not forced (the table owner bypasses it)' FROM tables WHERE NOT relforcerowsecurity
UNION ALL
SELECT name, 'no pg_tenant_isolation policy (run tenant.protect)' FROM tables t
 WHERE NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid AND p.polname = 'pg_tenant_isolation')
UNION ALL
SELECT name, 'no index leads with the tenant column' FROM tables t
 WHERE NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indkey[0] = t.attnum)
UNION ALL
SELECT name, format('permissive policy %I widens what tenants see', p.polname) FROM tables t
  JOIN pg_policy p ON p.polrelid = t.oid
 WHERE p.polpermissive AND p.polname <> 'pg_tenant_isolation'
UNION ALL
SELECT quote_ident(r.rolname), 'login role with ' ||
       CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'BYPASSRLS' END || ' bypasses tenant isolation'
  FROM pg_roles r
 WHERE r.rolcanlogin AND (r.rolsuper OR r.rolbypassrls) AND r.oid <> 10
UNION ALL
SELECT quote_ident(t.role_name), format('tenant role of %s has SUPERUSER or BYPASSRLS', t.id)
  FROM tenant.tenants t JOIN pg_roles r ON r.rolname = t.role_name
 WHERE r.rolsuper OR r.rolbypassrls
UNION ALL
SELECT pa.parname, 'SET or ALTER SYSTEM on a pg_tenant parameter is granted to a role'
  FROM pg_parameter_acl pa
 WHERE pa.parname LIKE 'pg\_tenant.%' AND pa.paracl IS NOT NULL
UNION ALL
-- A view runs with its owner's rights: owned by a role that bypasses row
-- level security, it returns every tenant's rows.
SELECT DISTINCT v.oid::regclass::text,
       format('view owned by %s (which bypasses row level security) reads protected table %s: it returns every tenant''s rows; fix: ALTER VIEW %s SET (security_invoker = true)',
              quote_ident(o.rolname), t.name, v.oid::regclass)
  FROM pg_class v
  JOIN pg_roles o ON o.oid = v.relowner
  JOIN pg_rewrite rw ON rw.ev_class = v.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  AND d.refclassid = 'pg_class'::regclass
  JOIN tables t ON t.oid = d.refobjid
 WHERE v.relkind = 'v' AND (o.rolsuper OR o.rolbypassrls)
   AND NOT coalesce((SELECT lower(x.option_value) IN ('true', 'on', '1', 'yes')
                       FROM pg_options_to_table(v.reloptions) x
                      WHERE x.option_name = 'security_invoker'), false)
UNION ALL
-- A materialized view stores rows without row level security.
SELECT DISTINCT m.oid::regclass::text,
       format('materialized view over protected table %s has no row level security: whoever can read it sees the rows it was refreshed with, across tenants; fix: drop it, or replace it with a protected table (tenant.protect) filled per tenant',
              t.name)
  FROM pg_class m
  JOIN pg_rewrite rw ON rw.ev_class = m.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  AND d.refclassid = 'pg_class'::regclass
  JOIN tables t ON t.oid = d.refobjid
 WHERE m.relkind = 'm'
UNION ALL
-- SECURITY DEFINER functions run with their owner's rights.
SELECT p.oid::regprocedure::text,
       format('SECURITY DEFINER function owned by %s (which bypasses row level security) is executable by application roles: it can return or change every tenant''s rows; fix: ALTER FUNCTION %s SECURITY INVOKER, or give it a NOBYPASSRLS owner, or REVOKE EXECUTE from application roles',
              quote_ident(o.rolname), p.oid::regprocedure)
  FROM pg_proc p
  JOIN pg_roles o ON o.oid = p.proowner
  JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prosecdef AND (o.rolsuper OR o.rolbypassrls)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                      AND e.objid = p.oid AND e.deptype = 'e')
   AND EXISTS (SELECT 1 FROM pg_roles r
                WHERE r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolbypassrls
                  AND has_function_privilege(r.oid, p.oid, 'EXECUTE'))
UNION ALL
-- A foreign key between protected tables must carry the tenant column.
SELECT a.name,
       format('foreign key %s references protected table %s without pairing the tenant columns: a tenant can reference, and probe for, another tenant''s rows; fix: FOREIGN KEY (%s, ...) REFERENCES %s (%s, ...) with a unique key on the referenced side that includes the tenant column',
              quote_ident(c.conname), b.name,
              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = a.oid AND attnum = a.attnum)),
              b.name,
              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = b.oid AND attnum = b.attnum)))
  FROM pg_constraint c
  JOIN tables a ON a.oid = c.conrelid
  JOIN tables b ON b.oid = c.confrelid
 WHERE c.contype = 'f'
   AND coalesce(array_position(c.conkey, a.attnum) IS DISTINCT FROM array_position(c.confkey, b.attnum)
                OR array_position(c.conkey, a.attnum) IS NULL, true)
UNION ALL
-- Unique keys without the tenant column reveal other tenants' keys.
SELECT t.name,
       format('unique index %s does not include the tenant column: unique violations and ON CONFLICT reveal which keys other tenants use; fix: make the key (%s, ...)',
              i.indexrelid::regclass,
              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = t.oid AND attnum = t.attnum)))
  FROM tables t
  JOIN pg_index i ON i.indrelid = t.oid
 WHERE i.indisunique
   AND NOT (t.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]))  -- key columns, not INCLUDE
UNION ALL
SELECT t.name,
       format('exclusion constraint %s does not include the tenant column: conflicts reveal other tenants'' values; fix: add (%s WITH =) to it',
              quote_ident(c.conname),
              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = t.oid AND attnum = t.attnum)))
  FROM tables t
  JOIN pg_constraint c ON c.conrelid = t.oid AND c.contype = 'x'
 WHERE NOT (t.attnum = ANY (c.conkey))
UNION ALL
-- The owner of a protected table may turn its row level security off.
SELECT t.name,
       format('owned by %s, an application or tenant role (member of tenant_app): its sessions can ALTER the table and turn row level security off; fix: ALTER TABLE %s OWNER TO a role that never connects through the router',
              quote_ident(o.rolname), t.name)
  FROM tables t
  JOIN pg_class c ON c.oid = t.oid
  JOIN pg_roles o ON o.oid = c.relowner
 WHERE EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND pg_has_role(o.oid, 'tenant_app', 'MEMBER') AND NOT o.rolsuper
UNION ALL
-- allow_ddl with the shared login role: one tenant's objects are everyone's.
SELECT quote_literal(x.id),
       format('tenant %s has allow_ddl but no role_name: the objects it creates belong to the shared login role, which other tenants'' sessions can alter or drop; fix: SELECT tenant.alter_tenant(%L, role_name => ''<its own role>'')',
              x.id, x.id)
  FROM tenant.tenants x
 WHERE x.allow_ddl AND x.role_name IS NULL
UNION ALL
-- Monitoring rights that reach across tenants.
SELECT quote_ident(r.rolname),
       'login role is a member of pg_read_all_stats: it reads every tenant''s query text (pg_stat_activity, pg_stat_statements); fix: keep it for monitoring only, never an application role'
  FROM pg_roles r
 WHERE r.rolcanlogin AND NOT r.rolsuper AND pg_has_role(r.oid, 'pg_read_all_stats', 'MEMBER')
UNION ALL
-- pg_stat_statements shows a role's own statements: with a shared
-- application role, every tenant's (normalized) statements.
SELECT p.oid::regprocedure::text,
       format('pg_stat_statements is executable by application role %s: tenants sharing that role read each other''s statements; fix: REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC (grant it to monitoring roles only)',
              quote_ident(r.rolname), p.oid::regprocedure)
  FROM pg_proc p
  JOIN pg_depend e ON e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e'
  JOIN pg_extension x ON x.oid = e.refobjid AND x.extname = 'pg_stat_statements'
  JOIN pg_roles r ON r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolbypassrls
                 AND NOT pg_has_role(r.oid, 'pg_read_all_stats', 'MEMBER')
 WHERE p.proname = 'pg_stat_statements' AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
UNION ALL
SELECT quote_ident(r.rolname),
       'login role is a member of pg_read_all_settings: it reads every server setting (tenant contexts stay safe: the server holds only public keys); fix: keep it for monitoring only, never an application role'
  FROM pg_roles r
 WHERE r.rolcanlogin AND NOT r.rolsuper AND pg_has_role(r.oid, 'pg_read_all_settings', 'MEMBER')
UNION ALL
-- 0.3.0: the router's and the operators' rights in an application role let
-- its tenant sessions read tenant secrets and login verifiers, or rewrite
-- the catalog.
SELECT quote_ident(r.rolname),
       format('application role (member of tenant_app) is a member of %s: its tenant sessions could %s; fix: REVOKE %s FROM %s (or from the role it is a member through)',
              g.rolname,
              CASE g.rolname WHEN 'tenant_router' THEN 'read tenant secrets and password verifiers (tenant.auth_secret, tenant.login_verifier)'
                             ELSE 'change tenants and their secrets (tenant.alter_tenant, tenant.set_password)' END,
              g.rolname, quote_ident(r.rolname))
  FROM pg_roles r
  JOIN pg_roles g ON g.rolname IN ('tenant_router', 'tenant_admin')
 WHERE EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND NOT r.rolsuper AND r.rolname NOT IN ('tenant_app', 'tenant_router', 'tenant_admin')
   AND pg_has_role(r.oid, 'tenant_app', 'MEMBER') AND pg_has_role(r.oid, g.oid, 'MEMBER')
ORDER BY 1, 2
$fn$;
COMMENT ON FUNCTION tenant.audit IS 'pg_tenant: one row per tenant-isolation problem; empty when safe';
