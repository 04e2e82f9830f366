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
--   token, tenant.current_subject() and tenant.current_claims().
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
