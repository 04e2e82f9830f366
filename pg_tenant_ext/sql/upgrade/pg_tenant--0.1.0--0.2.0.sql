-- pg_tenant 0.1.0 -> 0.2.0 (frozen with the 0.2.0 release; never edit).
--
-- * role tenant_app: marks application and tenant roles, which stay
--   confined without a tenant context; granted here to the roles
--   tenant.create_app_role set up and to every tenant's role_name;
-- * tenant.tenants.allow_large_objects (large objects are refused to
--   tenant sessions unless granted), in tenant_list, create_tenant and
--   alter_tenant (as the last argument, so positional calls keep working);
-- * tenant.notify(channel, payload): pg_notify on the tenant's namespaced
--   channel;
-- * tenant._copy_check(anyelement): the per-row tenant check of COPY FROM
--   into protected tables (the COPY itself is run by the library);
-- * tenant.audit() reports views, materialized views and SECURITY DEFINER
--   functions that read past row level security, foreign keys, unique keys
--   and exclusion constraints without the tenant column, protected tables
--   owned by application roles, allow_ddl tenants without a role, and
--   login roles with monitoring rights or pg_stat_statements.
-- The context token (Ed25519, pg_tenant.context_public_keys), the function
-- and command confinement and the reserved pg_tenant.* prefix live in the
-- shared library: nothing to do here.
\echo Use "ALTER EXTENSION pg_tenant UPDATE TO '0.2.0'" to load this file. \quit

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenant_app') THEN
        CREATE ROLE tenant_app NOLOGIN;
    END IF;
END
$roles$;
COMMENT ON ROLE tenant_app IS 'pg_tenant: marks application and tenant roles; confined even without a tenant context';

ALTER TABLE tenant.tenants ADD COLUMN
    -- 0.2.0: large objects are shared by all tenants; off unless granted.
    allow_large_objects boolean NOT NULL DEFAULT false;

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
       t.enabled, t.created_at, t.updated_at, t.allow_large_objects
FROM tenant.tenants t
LEFT JOIN tenant.defaults d ON true;

-- New trailing argument: drop the old signatures (enable/disable depend on
-- alter_tenant) and create them again.
DROP FUNCTION tenant.enable_tenant(text);
DROP FUNCTION tenant.disable_tenant(text);
DROP FUNCTION tenant.create_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean);
DROP FUNCTION tenant.alter_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, text[]);

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
    allow_large_objects boolean DEFAULT false
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
             now(), now(), coalesce(allow_large_objects, false));
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
    allow_large_objects boolean DEFAULT NULL
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
        allow_large_objects = t.allow_large_objects
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
    tenant.create_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, boolean),
    tenant.alter_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, text[], boolean),
    tenant.drop_tenant(text), tenant.enable_tenant(text), tenant.disable_tenant(text),
    tenant.set_defaults(integer, integer, real, integer, bigint, integer, integer),
    tenant.router_catalog(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    tenant.create_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, boolean),
    tenant.alter_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, text[], boolean),
    tenant.drop_tenant(text), tenant.enable_tenant(text), tenant.disable_tenant(text),
    tenant.set_defaults(integer, integer, real, integer, bigint, integer, integer)
    TO tenant_admin;

CREATE FUNCTION tenant."_copy_check"(
	"value" anyelement
) RETURNS bool
STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'copy_check_wrapper';

CREATE FUNCTION tenant."notify"(
	"channel" TEXT,
	"payload" TEXT DEFAULT NULL
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'notify_wrapper';

-- Create (or check) an application role: LOGIN NOSUPERUSER NOBYPASSRLS,
-- with the grants the tenant context needs. An existing role is checked,
-- not changed: a superuser, a BYPASSRLS role or the owner of a protected
-- table cannot be an application role.
CREATE OR REPLACE FUNCTION tenant.create_app_role(role_name name, password text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    r pg_roles;
    owned text;
BEGIN
    SELECT * INTO r FROM pg_roles WHERE rolname = role_name;
    IF NOT FOUND THEN
        IF password IS NULL THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB', role_name);
        ELSE
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD %L',
                           role_name, password);
        END IF;
    ELSE
        IF r.rolsuper OR r.rolbypassrls THEN
            RAISE EXCEPTION 'role "%" has SUPERUSER or BYPASSRLS and cannot be an application role', role_name
                USING ERRCODE = '42501';
        END IF;
        SELECT string_agg(c.oid::regclass::text, ', ') INTO owned
          FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation'
         WHERE c.relowner = r.oid;
        IF owned IS NOT NULL THEN
            RAISE EXCEPTION 'role "%" owns protected tables (%) and cannot be an application role', role_name, owned
                USING ERRCODE = '42501';
        END IF;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA tenant TO %I', role_name);
    -- Confined even without a tenant context (direct logins, autovacuum
    -- running its objects' expressions).
    EXECUTE format('GRANT tenant_app TO %I', role_name);
END
$fn$;
COMMENT ON FUNCTION tenant.create_app_role IS 'pg_tenant: create or check a LOGIN NOSUPERUSER NOBYPASSRLS application role';

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
ORDER BY 1, 2
$fn$;
COMMENT ON FUNCTION tenant.audit IS 'pg_tenant: one row per tenant-isolation problem; empty when safe';

-- The application roles of 0.1.0: those tenant.create_app_role granted the
-- tenant schema to, and the tenants' own roles.
DO $grant$
DECLARE
    r name;
BEGIN
    FOR r IN
        SELECT a.rolname
          FROM pg_namespace n, aclexplode(n.nspacl) x
          JOIN pg_roles a ON a.oid = x.grantee
         WHERE n.nspname = 'tenant' AND x.privilege_type = 'USAGE' AND NOT a.rolsuper
           AND a.rolname NOT IN ('tenant_admin', 'tenant_router', 'tenant_app')
        UNION
        SELECT t.role_name FROM tenant.tenants t JOIN pg_roles a ON a.rolname = t.role_name
         WHERE NOT a.rolsuper
    LOOP
        EXECUTE format('GRANT tenant_app TO %I', r);
    END LOOP;
END
$grant$;
