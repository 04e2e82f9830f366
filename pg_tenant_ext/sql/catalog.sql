-- pg_tenant catalog: tenants, defaults, management functions.
-- Constraints live in the tables, so even a superuser's raw INSERT cannot
-- store nonsense; the functions add clear messages on top.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenant_admin') THEN
        CREATE ROLE tenant_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenant_router') THEN
        CREATE ROLE tenant_router NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenant_app') THEN
        CREATE ROLE tenant_app NOLOGIN;
    END IF;
END
$roles$;
COMMENT ON ROLE tenant_app IS 'pg_tenant: marks application and tenant roles; confined even without a tenant context';
COMMENT ON ROLE tenant_admin IS 'pg_tenant: may manage tenants with the tenant.* functions';
COMMENT ON ROLE tenant_router IS 'pg_tenant: may read tenant.router_catalog() (grant to the router''s login role)';

-- Defaults for NULL limits. At most one row; with no row, the built-in
-- defaults of tenant.tenant_list apply. Kept out of CREATE EXTENSION's own
-- inserts so pg_dump/restore of this table never collides.
CREATE TABLE tenant.defaults (
    singleton        boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    max_connections  integer NOT NULL DEFAULT 100 CHECK (max_connections >= 0),
    qps_limit        integer NOT NULL DEFAULT 0   CHECK (qps_limit >= 0),
    burst_multiplier real    NOT NULL DEFAULT 1.0 CHECK (burst_multiplier >= 1),
    max_query_ms     integer NOT NULL DEFAULT 0   CHECK (max_query_ms >= 0),
    max_result_bytes bigint  NOT NULL DEFAULT 0   CHECK (max_result_bytes >= 0),
    pool_size        integer NOT NULL DEFAULT 10  CHECK (pool_size >= 1),
    min_idle         integer NOT NULL DEFAULT 0   CHECK (min_idle >= 0)
);
COMMENT ON TABLE tenant.defaults IS 'pg_tenant: defaults for NULL tenant limits (0 = unlimited)';

CREATE TABLE tenant.tenants (
    id                 text PRIMARY KEY
                       CONSTRAINT tenant_id_pattern CHECK (id ~ '^[a-z0-9][a-z0-9_-]{0,62}$'),
    name               text NOT NULL,
    isolation          text NOT NULL DEFAULT 'rls'
                       CONSTRAINT isolation_kind CHECK (isolation IN ('rls', 'schema', 'database')),
    database_name      name,
    schema_name        name,
    role_name          name,
    max_connections    integer CHECK (max_connections >= 0),
    qps_limit          integer CHECK (qps_limit >= 0),
    burst_multiplier   real    CHECK (burst_multiplier >= 1),
    max_query_ms       integer CHECK (max_query_ms >= 0),
    max_result_bytes   bigint  CHECK (max_result_bytes >= 0),
    allow_ddl          boolean NOT NULL DEFAULT false,
    read_only          boolean NOT NULL DEFAULT false,
    allowed_operations text[]  NOT NULL DEFAULT '{select,insert,update,delete}'
                       CONSTRAINT known_operations
                       CHECK (allowed_operations <@ '{select,insert,update,delete}'::text[]),
    dedicated_pool     boolean NOT NULL DEFAULT false,
    pool_size          integer CHECK (pool_size >= 1),
    min_idle           integer CHECK (min_idle >= 0),
    enabled            boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    -- 0.2.0: large objects are shared by all tenants; off unless granted.
    allow_large_objects boolean NOT NULL DEFAULT false,
    -- 0.3.0: the login roles that may take this tenant (NULL: any).
    login_roles        text[]
                       CONSTRAINT login_roles_listed
                       CHECK (cardinality(login_roles) > 0 AND array_position(login_roles, NULL) IS NULL),
    CONSTRAINT schema_isolation_needs_schema CHECK (isolation <> 'schema' OR schema_name IS NOT NULL),
    CONSTRAINT database_isolation_needs_database CHECK (isolation <> 'database' OR database_name IS NOT NULL),
    CONSTRAINT min_idle_within_pool CHECK (min_idle IS NULL OR pool_size IS NULL OR min_idle <= pool_size)
);
COMMENT ON TABLE tenant.tenants IS 'pg_tenant: one row per tenant; manage with tenant.create_tenant() and friends';

SELECT pg_catalog.pg_extension_config_dump('tenant.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.defaults', '');

-- Effective limits: tenant value, else the defaults row, else built-ins.
CREATE VIEW tenant.tenant_list AS
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
COMMENT ON VIEW tenant.tenant_list IS 'pg_tenant: tenants with effective limits (0 = unlimited)';

-- Validation shared by create_tenant and alter_tenant. Raises 22023 with a
-- message naming the field; never interpolates into SQL.
CREATE FUNCTION tenant._validate(t tenant.tenants) RETURNS void
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

CREATE FUNCTION tenant._get(tenant_id text) RETURNS tenant.tenants
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
BEGIN
    SELECT * INTO t FROM tenant.tenants x WHERE x.id = tenant_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" does not exist', tenant_id USING ERRCODE = '42704';
    END IF;
    RETURN t;
END
$fn$;

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

CREATE FUNCTION tenant.drop_tenant(id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM tenant._get(id);
    DELETE FROM tenant.tenants x WHERE x.id = drop_tenant.id;
    PERFORM pg_notify('pg_tenant_catalog', drop_tenant.id);
END
$fn$;
COMMENT ON FUNCTION tenant.drop_tenant IS 'pg_tenant: remove a tenant from the catalog (its rows stay)';

CREATE FUNCTION tenant.enable_tenant(id text) RETURNS tenant.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN tenant.alter_tenant(id, enabled => true);
COMMENT ON FUNCTION tenant.enable_tenant IS 'pg_tenant: let a tenant connect again';

CREATE FUNCTION tenant.disable_tenant(id text) RETURNS tenant.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN tenant.alter_tenant(id, enabled => false);
COMMENT ON FUNCTION tenant.disable_tenant IS 'pg_tenant: refuse new connections and contexts for a tenant';

-- Set the defaults for NULL limits (upsert of the single defaults row).
CREATE FUNCTION tenant.set_defaults(
    max_connections integer DEFAULT 100,
    qps_limit integer DEFAULT 0,
    burst_multiplier real DEFAULT 1.0,
    max_query_ms integer DEFAULT 0,
    max_result_bytes bigint DEFAULT 0,
    pool_size integer DEFAULT 10,
    min_idle integer DEFAULT 0
) RETURNS tenant.defaults
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    d tenant.defaults;
BEGIN
    DELETE FROM tenant.defaults;
    INSERT INTO tenant.defaults VALUES (true, max_connections, qps_limit, burst_multiplier,
        max_query_ms, max_result_bytes, pool_size, min_idle) RETURNING * INTO d;
    PERFORM pg_notify('pg_tenant_catalog', '*');
    RETURN d;
EXCEPTION WHEN check_violation OR not_null_violation THEN
    RAISE EXCEPTION 'invalid tenant defaults: %', SQLERRM USING ERRCODE = '22023';
END
$fn$;
COMMENT ON FUNCTION tenant.set_defaults IS 'pg_tenant: defaults used where a tenant limit is NULL (0 = unlimited)';

-- What a router needs, nothing more: effective limits of one or all tenants.
CREATE FUNCTION tenant.router_catalog(only_id text DEFAULT NULL)
RETURNS TABLE (id text, enabled boolean, isolation text, database_name text,
               schema_name text, max_connections integer, qps_limit integer,
               burst_multiplier real, max_query_ms integer, max_result_bytes bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT l.id, l.enabled, l.isolation, l.database_name::text, l.schema_name::text,
           l.max_connections, l.qps_limit, l.burst_multiplier, l.max_query_ms, l.max_result_bytes
    FROM tenant.tenant_list l
    WHERE only_id IS NULL OR l.id = only_id
    ORDER BY l.id
$fn$;
COMMENT ON FUNCTION tenant.router_catalog IS 'pg_tenant: effective tenant limits for tenant-router (granted to tenant_router)';

REVOKE ALL ON tenant.tenants, tenant.defaults, tenant.tenant_list FROM PUBLIC;
GRANT SELECT ON tenant.tenants, tenant.defaults, tenant.tenant_list TO tenant_admin;
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
GRANT EXECUTE ON FUNCTION tenant.router_catalog(text) TO tenant_router;
GRANT USAGE ON SCHEMA tenant TO PUBLIC;
