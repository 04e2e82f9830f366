-- pg_tenant 0.8.0 -> 0.9.0 (frozen with the 0.9.0 release; never edit
-- after it).
--
-- Like the install script, this runs with search_path = tenant: its DDL
-- names every function, operator and type with its schema, and it first
-- refuses a schema "tenant" that is not the extension's alone.
--
-- What 0.9.0 changes is listed section by section below.
\echo Use "ALTER EXTENSION pg_tenant UPDATE TO '0.9.0'" to load this file. \quit
-- The schema `tenant` must be the extension's alone. CREATE EXTENSION uses
-- an existing schema of that name as it is: one owned by another role (who
-- could replace or drop our objects later), one where others may create
-- objects, or one already holding objects that are not ours (a function
-- `tenant.cardinality(text[])` beats pg_catalog's polymorphic one while
-- this script runs with search_path = tenant, and would then run as a
-- superuser) is refused before anything is created. Every name below is
-- schema-qualified for the same reason.
DO $schema_check$
DECLARE
    nsp pg_catalog.oid;
    owner_name pg_catalog.name;
    owner_super pg_catalog.bool;
    creators pg_catalog.text;
    foreign_objects pg_catalog.text;
BEGIN
    SELECT n.oid, r.rolname, r.rolsuper INTO nsp, owner_name, owner_super
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_authid r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'tenant'::pg_catalog.name;
    IF NOT owner_super THEN
        RAISE EXCEPTION 'schema "tenant" is owned by role "%", which is not a superuser: pg_tenant will not install into it', owner_name
            USING ERRCODE = '55000',
                  HINT = pg_catalog.format('Someone else created the schema "tenant" in this database; whoever owns it could replace or drop the extension''s objects. Check what it holds (\dn+ tenant, \df tenant.*), then DROP SCHEMA tenant CASCADE (or ALTER SCHEMA tenant OWNER TO a superuser and remove what %s put there) and run CREATE EXTENSION pg_tenant again.', pg_catalog.quote_ident(owner_name));
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT coalesce(pg_catalog.quote_ident(g.rolname), 'PUBLIC'), ', ') INTO creators
      FROM pg_catalog.pg_namespace n,
           LATERAL pg_catalog.aclexplode(n.nspacl) a
      LEFT JOIN pg_catalog.pg_authid g ON g.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE n.oid OPERATOR(pg_catalog.=) nsp
       AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'::pg_catalog.text
       AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
       AND NOT coalesce(g.rolsuper, false);
    IF creators IS NOT NULL THEN
        RAISE EXCEPTION 'roles other than its owner may create objects in schema "tenant" (%): pg_tenant will not install into it', creators
            USING ERRCODE = '55000',
                  HINT = 'REVOKE CREATE ON SCHEMA tenant FROM them (and PUBLIC), remove what they created, and try again.';
    END IF;
    -- Objects in the schema that are neither members of this extension nor
    -- parts of one (row types, indexes). While CREATE EXTENSION runs its
    -- first statement, the extension has no members yet: then every object
    -- is foreign.
    WITH RECURSIVE members(classid, objid) AS (
        SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension x ON x.oid OPERATOR(pg_catalog.=) d.refobjid
         WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND x.extname OPERATOR(pg_catalog.=) 'pg_tenant'::pg_catalog.name
           AND d.deptype OPERATOR(pg_catalog.=) 'e'::pg_catalog."char"
        UNION
        SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
          JOIN members m ON d.refclassid OPERATOR(pg_catalog.=) m.classid
                        AND d.refobjid OPERATOR(pg_catalog.=) m.objid
         WHERE d.deptype OPERATOR(pg_catalog.=) ANY ('{i,a}'::pg_catalog."char"[])
    ), objects(classid, objid) AS (
        SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_class o WHERE o.relnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_proc o WHERE o.pronamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_type o WHERE o.typnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_operator o WHERE o.oprnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_collation'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_collation o WHERE o.collnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_conversion'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_conversion o WHERE o.connamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_opclass'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_opclass o WHERE o.opcnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_opfamily'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_opfamily o WHERE o.opfnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_ts_config'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_ts_config o WHERE o.cfgnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_ts_dict'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_ts_dict o WHERE o.dictnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_ts_parser'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_ts_parser o WHERE o.prsnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_ts_template'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_ts_template o WHERE o.tmplnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_statistic_ext o WHERE o.stxnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_extension'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_extension o
         WHERE o.extnamespace OPERATOR(pg_catalog.=) nsp AND o.extname OPERATOR(pg_catalog.<>) 'pg_tenant'::pg_catalog.name
    )
    SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(o.classid, o.objid, 0), ', ') INTO foreign_objects
      FROM objects o
     WHERE NOT EXISTS (SELECT FROM members m WHERE m.classid OPERATOR(pg_catalog.=) o.classid
                                               AND m.objid OPERATOR(pg_catalog.=) o.objid);
    IF foreign_objects IS NOT NULL THEN
        RAISE EXCEPTION 'schema "tenant" holds objects that do not belong to pg_tenant: %', foreign_objects
            USING ERRCODE = '55000',
                  HINT = 'Objects in the extension''s schema would be found by its SQL while it runs as a superuser. Move them to another schema (ALTER ... SET SCHEMA) or drop them, then try again.';
    END IF;
END
$schema_check$;

-- 0.9.0: limits across several routers (fleet.rs, shmem.rs): connection leases in
-- shared memory for a fleet of routers, and the registry of backends' tenants.
CREATE FUNCTION tenant."fleet_acquire"(
	"id" TEXT, /* & str */
	"max" INT /* i32 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fleet_acquire_wrapper';

CREATE FUNCTION tenant."fleet_counts"() RETURNS TABLE (
	"tenant" TEXT,  /* String */
	"connections" bigint,  /* i64 */
	"held_here" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fleet_counts_wrapper';

CREATE FUNCTION tenant."fleet_release"(
	"id" TEXT /* & str */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fleet_release_wrapper';

CREATE FUNCTION tenant."fleet_restore"(
	"ids" TEXT[], /* Vec < Option < String > > */
	"counts" INT[] /* Vec < Option < i32 > > */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fleet_restore_wrapper';

CREATE FUNCTION tenant."tenant_backends"(
	"id" TEXT /* & str */
) RETURNS SETOF INT /* i32 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'tenant_backends_wrapper';

COMMENT ON FUNCTION tenant.fleet_acquire(text, integer) IS 'pg_tenant: count one connection of a tenant for the fleet of routers if fewer than max are counted; the lease is this backend''s until fleet_release or its exit (granted to tenant_router)';
COMMENT ON FUNCTION tenant.fleet_release(text) IS 'pg_tenant: give back one of this backend''s connection leases of a tenant (granted to tenant_router)';
COMMENT ON FUNCTION tenant.fleet_restore(text[], integer[]) IS 'pg_tenant: make this backend hold exactly these leases, whatever the limits (a router re-claiming its connections; granted to tenant_router)';
COMMENT ON FUNCTION tenant.fleet_counts() IS 'pg_tenant: every tenant''s connections counted for the fleet of routers (granted to tenant_router)';
COMMENT ON FUNCTION tenant.tenant_backends(text) IS 'pg_tenant: pids of the backends whose context is a tenant (superusers only)';
REVOKE EXECUTE ON FUNCTION tenant.fleet_acquire(text, integer), tenant.fleet_release(text),
    tenant.fleet_restore(text[], integer[]), tenant.fleet_counts(), tenant.tenant_backends(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.fleet_acquire(text, integer), tenant.fleet_release(text),
    tenant.fleet_restore(text[], integer[]), tenant.fleet_counts() TO tenant_router;

-- ---------------------------------------------------------------------
-- 0.9.0: placement (issue #28): tenants.upstream (create_tenant,
-- alter_tenant, tenant_list, router_catalog, router_catalog_page,
-- context_document), fences (tenant.fenced, fence_tenant, unfence_tenant).
-- ---------------------------------------------------------------------
-- The named upstream a tenant lives on (NULL: the router's main one).
ALTER TABLE tenant.tenants ADD COLUMN upstream pg_catalog.text
    CONSTRAINT upstream_name
    CHECK (upstream OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,62}$'::pg_catalog.text);
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
       t.enabled, t.created_at, t.updated_at, t.allow_large_objects, t.login_roles,
       coalesce(t.pool_mode, d.pool_mode, 'session')         AS pool_mode,
       coalesce(t.statement_timeout_ms, d.statement_timeout_ms, 300000) AS statement_timeout_ms,
       coalesce(t.idle_in_transaction_timeout_ms, d.idle_in_transaction_timeout_ms, 60000) AS idle_in_transaction_timeout_ms,
       coalesce(t.work_mem_kb, d.work_mem_kb, 65536) AS work_mem_kb,
       coalesce(t.maintenance_work_mem_kb, d.maintenance_work_mem_kb, 262144) AS maintenance_work_mem_kb,
       coalesce(t.temp_file_limit_kb, d.temp_file_limit_kb, 1048576) AS temp_file_limit_kb,
       coalesce(t.max_advisory_locks, d.max_advisory_locks, 64) AS max_advisory_locks,
       t.lock_space,
       coalesce(t.client_idle_timeout_ms, d.client_idle_timeout_ms, 0) AS client_idle_timeout_ms,
       t.shared_schemas,
       t.upstream
FROM tenant.tenants t
LEFT JOIN tenant.defaults d ON true;
COMMENT ON VIEW tenant.tenant_list IS 'pg_tenant: tenants with effective limits (0 = unlimited)';

CREATE OR REPLACE FUNCTION tenant._validate(t tenant.tenants) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    op pg_catalog.text;
BEGIN
    IF t.id IS NULL OR t.id OPERATOR(pg_catalog.!~) '^[a-z0-9][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid tenant id "%"', t.id
            USING ERRCODE = '22023',
                  HINT = 'Tenant ids are 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit.';
    END IF;
    IF NOT t.isolation OPERATOR(pg_catalog.=) ANY ('{rls,schema,database}'::pg_catalog.text[]) THEN
        RAISE EXCEPTION 'unknown isolation "%" for tenant "%"', t.isolation, t.id
            USING ERRCODE = '22023', HINT = 'Use rls, schema or database.';
    END IF;
    IF t.isolation OPERATOR(pg_catalog.=) 'schema' AND t.schema_name IS NULL THEN
        RAISE EXCEPTION 'tenant "%" uses schema isolation but has no schema_name', t.id USING ERRCODE = '22023';
    END IF;
    -- 0.8.0: a schema tenant runs as a role of its own (the role that has
    -- USAGE on its schema). Only enabled rows are held to it, so a row
    -- stored before 0.8.0 can still be disabled (set_context refuses it).
    IF t.isolation OPERATOR(pg_catalog.=) 'schema' AND t.role_name IS NULL AND t.enabled THEN
        RAISE EXCEPTION 'tenant "%" uses schema isolation but has no role_name', t.id
            USING ERRCODE = '22023',
                  HINT = 'A schema tenant runs as a role of its own, the one with USAGE on its schema: give it role_name (tenant.provision_tenant creates the role).';
    END IF;
    -- Like the role: a row stored before 0.8.0 on such a schema can still
    -- be disabled; provision_tenant and drop_tenant(drop_objects) refuse
    -- it whether enabled or not (tenant._reserved_schema).
    IF t.isolation OPERATOR(pg_catalog.=) 'schema' AND t.enabled AND tenant._reserved_schema(t.schema_name) THEN
        RAISE EXCEPTION 'schema "%" cannot be the schema of tenant "%": it is not a tenant''s own', t.schema_name, t.id
            USING ERRCODE = '22023';
    END IF;
    IF '$user' OPERATOR(pg_catalog.=) ANY (t.shared_schemas) THEN
        RAISE EXCEPTION 'shared_schemas of tenant "%" names "$user", which search_path reads as the session''s role', t.id
            USING ERRCODE = '22023';
    END IF;
    IF pg_catalog.array_position(t.shared_schemas, NULL::pg_catalog.name) IS NOT NULL THEN
        RAISE EXCEPTION 'shared_schemas of tenant "%" contains NULL', t.id USING ERRCODE = '22023';
    END IF;
    IF t.shared_schemas IS NOT NULL AND t.isolation OPERATOR(pg_catalog.<>) 'schema' THEN
        RAISE EXCEPTION 'tenant "%" has shared_schemas but uses % isolation', t.id, t.isolation
            USING ERRCODE = '22023', HINT = 'shared_schemas follow a schema tenant''s own schema on its search_path; reset it to NULL.';
    END IF;
    IF t.isolation OPERATOR(pg_catalog.=) 'database' AND t.database_name IS NULL THEN
        RAISE EXCEPTION 'tenant "%" uses database isolation but has no database_name', t.id USING ERRCODE = '22023';
    END IF;
    IF t.max_connections OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'max_connections must be >= 0, got %', t.max_connections USING ERRCODE = '22023'; END IF;
    IF t.qps_limit OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'qps_limit must be >= 0, got %', t.qps_limit USING ERRCODE = '22023'; END IF;
    IF t.burst_multiplier OPERATOR(pg_catalog.<) 1::pg_catalog.float4 OR t.burst_multiplier OPERATOR(pg_catalog.=) ANY ('{Infinity,NaN}'::pg_catalog.float4[]) THEN RAISE EXCEPTION 'burst_multiplier must be a finite number >= 1, got %', t.burst_multiplier USING ERRCODE = '22023'; END IF;
    IF t.max_query_ms OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'max_query_ms must be >= 0, got %', t.max_query_ms USING ERRCODE = '22023'; END IF;
    IF t.max_result_bytes OPERATOR(pg_catalog.<) 0::pg_catalog.int8 THEN RAISE EXCEPTION 'max_result_bytes must be >= 0, got %', t.max_result_bytes USING ERRCODE = '22023'; END IF;
    IF t.pool_size OPERATOR(pg_catalog.<) 1 THEN RAISE EXCEPTION 'pool_size must be >= 1, got %', t.pool_size USING ERRCODE = '22023'; END IF;
    IF t.min_idle OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'min_idle must be >= 0, got %', t.min_idle USING ERRCODE = '22023'; END IF;
    IF t.min_idle OPERATOR(pg_catalog.>) t.pool_size THEN
        RAISE EXCEPTION 'min_idle (%) must not exceed pool_size (%)', t.min_idle, t.pool_size USING ERRCODE = '22023';
    END IF;
    FOREACH op IN ARRAY coalesce(t.allowed_operations, '{}'::pg_catalog.text[]) LOOP
        IF op IS NULL OR NOT op OPERATOR(pg_catalog.=) ANY ('{select,insert,update,delete}'::pg_catalog.text[]) THEN
            RAISE EXCEPTION 'unknown operation "%" in allowed_operations', op
                USING ERRCODE = '22023', HINT = 'Use select, insert, update and delete.';
        END IF;
    END LOOP;
    IF pg_catalog.cardinality(t.login_roles) OPERATOR(pg_catalog.=) 0 THEN
        RAISE EXCEPTION 'login_roles of tenant "%" is empty', t.id
            USING ERRCODE = '22023', HINT = 'List at least one role, or reset login_roles to NULL to allow any login role.';
    END IF;
    IF pg_catalog.array_position(t.login_roles, NULL::pg_catalog.text) IS NOT NULL THEN
        RAISE EXCEPTION 'login_roles of tenant "%" contains NULL', t.id USING ERRCODE = '22023';
    END IF;
    IF NOT t.pool_mode OPERATOR(pg_catalog.=) ANY ('{session,transaction}'::pg_catalog.text[]) THEN
        RAISE EXCEPTION 'unknown pool_mode "%" for tenant "%"', t.pool_mode, t.id
            USING ERRCODE = '22023', HINT = 'Use session or transaction, or reset pool_mode to NULL to use the default.';
    END IF;
    IF t.statement_timeout_ms OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'statement_timeout_ms must be >= 0 (0: unlimited), got %', t.statement_timeout_ms USING ERRCODE = '22023'; END IF;
    IF t.idle_in_transaction_timeout_ms OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'idle_in_transaction_timeout_ms must be >= 0 (0: unlimited), got %', t.idle_in_transaction_timeout_ms USING ERRCODE = '22023'; END IF;
    IF t.work_mem_kb OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'work_mem_kb must be >= 0 (0: unlimited), got %', t.work_mem_kb USING ERRCODE = '22023'; END IF;
    IF t.maintenance_work_mem_kb OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'maintenance_work_mem_kb must be >= 0 (0: unlimited), got %', t.maintenance_work_mem_kb USING ERRCODE = '22023'; END IF;
    IF t.temp_file_limit_kb OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'temp_file_limit_kb must be >= 0 (0: unlimited), got %', t.temp_file_limit_kb USING ERRCODE = '22023'; END IF;
    IF t.max_advisory_locks OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'max_advisory_locks must be >= 0 (0: unlimited), got %', t.max_advisory_locks USING ERRCODE = '22023'; END IF;
    IF t.client_idle_timeout_ms OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'client_idle_timeout_ms must be >= 0 (0: no limit), got %', t.client_idle_timeout_ms USING ERRCODE = '22023'; END IF;
    IF t.upstream OPERATOR(pg_catalog.!~) '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid upstream name "%" for tenant "%"', t.upstream, t.id
            USING ERRCODE = '22023',
                  HINT = 'Upstream names are 1-63 characters of a-z, 0-9 and "_", starting with a letter: the name of an [upstreams.<name>] section of tenant-router''s configuration, or "main" (stored as NULL) for its top-level upstream.';
    END IF;
END
$fn$;

-- A new trailing argument (create_tenant, alter_tenant) and a new result
-- column (router_catalog, router_catalog_page): drop the old functions
-- (enable_tenant and disable_tenant depend on alter_tenant) and create
-- them again, keeping their privileges as the 0.7.0 -> 0.8.0 update did.
CREATE TABLE tenant._update_acl AS
SELECT p.proname::pg_catalog.text AS fn, p.proowner AS owner, p.proacl AS acl, ip.initprivs
  FROM pg_catalog.pg_proc p
  LEFT JOIN pg_catalog.pg_init_privs ip
         ON ip.objoid OPERATOR(pg_catalog.=) p.oid
        AND ip.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
        AND ip.objsubid OPERATOR(pg_catalog.=) 0
 WHERE p.oid OPERATOR(pg_catalog.=) ANY (ARRAY[
        'tenant.enable_tenant(pg_catalog.text)'::pg_catalog.regprocedure,
        'tenant.disable_tenant(pg_catalog.text)'::pg_catalog.regprocedure,
        'tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.name[])'::pg_catalog.regprocedure,
        'tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.name[])'::pg_catalog.regprocedure,
        'tenant.router_catalog(pg_catalog.text)'::pg_catalog.regprocedure,
        'tenant.router_catalog_page(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.bool)'::pg_catalog.regprocedure]);
DROP FUNCTION tenant.enable_tenant(pg_catalog.text);
DROP FUNCTION tenant.disable_tenant(pg_catalog.text);
DROP FUNCTION tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.name[]);
DROP FUNCTION tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.name[]);
DROP FUNCTION tenant.router_catalog(pg_catalog.text);
DROP FUNCTION tenant.router_catalog_page(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.bool);
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
    login_roles text[] DEFAULT NULL,
    pool_mode text DEFAULT NULL,
    statement_timeout_ms integer DEFAULT NULL,
    idle_in_transaction_timeout_ms integer DEFAULT NULL,
    work_mem_kb integer DEFAULT NULL,
    maintenance_work_mem_kb integer DEFAULT NULL,
    temp_file_limit_kb integer DEFAULT NULL,
    max_advisory_locks integer DEFAULT NULL,
    client_idle_timeout_ms integer DEFAULT NULL,
    shared_schemas name[] DEFAULT NULL,
    upstream text DEFAULT NULL
) RETURNS tenant.tenants
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
BEGIN
    t := ROW(id, coalesce(name, id), isolation, database_name, schema_name, role_name,
             max_connections, qps_limit, burst_multiplier, max_query_ms, max_result_bytes,
             coalesce(allow_ddl, false), coalesce(read_only, false),
             coalesce(allowed_operations, '{select,insert,update,delete}'::pg_catalog.text[]),
             coalesce(dedicated_pool, false), pool_size, min_idle, coalesce(enabled, true),
             pg_catalog.now(), pg_catalog.now(), coalesce(allow_large_objects, false), login_roles,
             pool_mode, statement_timeout_ms, idle_in_transaction_timeout_ms, work_mem_kb,
             maintenance_work_mem_kb, temp_file_limit_kb, max_advisory_locks,
             pg_catalog.nextval('tenant.lock_space_seq'::pg_catalog.regclass), client_idle_timeout_ms,
             shared_schemas, CASE WHEN upstream OPERATOR(pg_catalog.<>) 'main' THEN upstream END);
    PERFORM tenant._validate(t);
    -- A schema tenant's role may not exist yet: tenant.provision_tenant
    -- creates it (set_context refuses the tenant until then).
    PERFORM tenant._check_roles(CASE WHEN t.isolation OPERATOR(pg_catalog.=) 'schema'
                                      AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname OPERATOR(pg_catalog.=) t.role_name)
                                     THEN NULL ELSE t.role_name END, t.login_roles);
    PERFORM tenant._check_schemas(t, true, true);
    IF EXISTS (SELECT FROM tenant.tenants x WHERE x.id OPERATOR(pg_catalog.=) t.id) THEN
        RAISE EXCEPTION 'tenant "%" already exists', t.id USING ERRCODE = '23505';
    END IF;
    INSERT INTO tenant.tenants SELECT t.*;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', t.id);
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
    login_roles text[] DEFAULT NULL,
    pool_mode text DEFAULT NULL,
    statement_timeout_ms integer DEFAULT NULL,
    idle_in_transaction_timeout_ms integer DEFAULT NULL,
    work_mem_kb integer DEFAULT NULL,
    maintenance_work_mem_kb integer DEFAULT NULL,
    temp_file_limit_kb integer DEFAULT NULL,
    max_advisory_locks integer DEFAULT NULL,
    client_idle_timeout_ms integer DEFAULT NULL,
    shared_schemas name[] DEFAULT NULL,
    upstream text DEFAULT NULL
) RETURNS tenant.tenants
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
    f pg_catalog.text;
BEGIN
    t := tenant._get(id);
    FOREACH f IN ARRAY coalesce(reset, '{}'::pg_catalog.text[]) LOOP
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
            WHEN 'pool_mode' THEN t.pool_mode := NULL;
            WHEN 'statement_timeout_ms' THEN t.statement_timeout_ms := NULL;
            WHEN 'idle_in_transaction_timeout_ms' THEN t.idle_in_transaction_timeout_ms := NULL;
            WHEN 'work_mem_kb' THEN t.work_mem_kb := NULL;
            WHEN 'maintenance_work_mem_kb' THEN t.maintenance_work_mem_kb := NULL;
            WHEN 'temp_file_limit_kb' THEN t.temp_file_limit_kb := NULL;
            WHEN 'max_advisory_locks' THEN t.max_advisory_locks := NULL;
            WHEN 'client_idle_timeout_ms' THEN t.client_idle_timeout_ms := NULL;
            WHEN 'shared_schemas' THEN t.shared_schemas := NULL;
            WHEN 'upstream' THEN t.upstream := NULL;
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
    t.pool_mode := coalesce(alter_tenant.pool_mode, t.pool_mode);
    t.statement_timeout_ms := coalesce(alter_tenant.statement_timeout_ms, t.statement_timeout_ms);
    t.idle_in_transaction_timeout_ms := coalesce(alter_tenant.idle_in_transaction_timeout_ms, t.idle_in_transaction_timeout_ms);
    t.work_mem_kb := coalesce(alter_tenant.work_mem_kb, t.work_mem_kb);
    t.maintenance_work_mem_kb := coalesce(alter_tenant.maintenance_work_mem_kb, t.maintenance_work_mem_kb);
    t.temp_file_limit_kb := coalesce(alter_tenant.temp_file_limit_kb, t.temp_file_limit_kb);
    t.max_advisory_locks := coalesce(alter_tenant.max_advisory_locks, t.max_advisory_locks);
    t.client_idle_timeout_ms := coalesce(alter_tenant.client_idle_timeout_ms, t.client_idle_timeout_ms);
    t.shared_schemas := coalesce(alter_tenant.shared_schemas, t.shared_schemas);
    -- "main" names the router's main upstream, stored as NULL.
    IF alter_tenant.upstream IS NOT NULL THEN
        t.upstream := CASE WHEN alter_tenant.upstream OPERATOR(pg_catalog.<>) 'main' THEN alter_tenant.upstream END;
    END IF;
    t.updated_at := pg_catalog.now();
    PERFORM tenant._validate(t);
    -- Only the roles this call sets: stored ones may have been renamed or
    -- dropped since, and must not block disable_tenant.
    PERFORM tenant._check_roles(CASE WHEN t.isolation OPERATOR(pg_catalog.=) 'schema'
                                      AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname OPERATOR(pg_catalog.=) alter_tenant.role_name)
                                     THEN NULL ELSE alter_tenant.role_name END, alter_tenant.login_roles);
    PERFORM tenant._check_schemas(t, alter_tenant.schema_name IS NOT NULL OR alter_tenant.isolation IS NOT NULL
                                     OR alter_tenant.role_name IS NOT NULL,
                                  alter_tenant.shared_schemas IS NOT NULL);
    UPDATE tenant.tenants x SET
        name = t.name, isolation = t.isolation, database_name = t.database_name,
        schema_name = t.schema_name, role_name = t.role_name,
        max_connections = t.max_connections, qps_limit = t.qps_limit,
        burst_multiplier = t.burst_multiplier, max_query_ms = t.max_query_ms,
        max_result_bytes = t.max_result_bytes, allow_ddl = t.allow_ddl,
        read_only = t.read_only, allowed_operations = t.allowed_operations,
        dedicated_pool = t.dedicated_pool, pool_size = t.pool_size,
        min_idle = t.min_idle, enabled = t.enabled, updated_at = t.updated_at,
        allow_large_objects = t.allow_large_objects, login_roles = t.login_roles,
        pool_mode = t.pool_mode, statement_timeout_ms = t.statement_timeout_ms,
        idle_in_transaction_timeout_ms = t.idle_in_transaction_timeout_ms,
        work_mem_kb = t.work_mem_kb, maintenance_work_mem_kb = t.maintenance_work_mem_kb,
        temp_file_limit_kb = t.temp_file_limit_kb, max_advisory_locks = t.max_advisory_locks,
        client_idle_timeout_ms = t.client_idle_timeout_ms, shared_schemas = t.shared_schemas,
        upstream = t.upstream
    WHERE x.id OPERATOR(pg_catalog.=) t.id;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', t.id);
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

CREATE FUNCTION tenant.router_catalog(only_id text DEFAULT NULL)
RETURNS TABLE (id text, enabled boolean, isolation text, database_name text,
               schema_name text, max_connections integer, qps_limit integer,
               burst_multiplier real, max_query_ms integer, max_result_bytes bigint,
               dedicated_pool boolean, pool_size integer, min_idle integer, pool_mode text,
               client_idle_timeout_ms integer, context_document text, upstream text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- One tenant is read by its primary key, in a plan of its own (a
    -- single query for both cases would scan, or be costed as scanning,
    -- every tenant).
    IF only_id IS NOT NULL THEN
        RETURN QUERY
        SELECT l.id, l.enabled, l.isolation, l.database_name::text, l.schema_name::text,
               l.max_connections, l.qps_limit, l.burst_multiplier, l.max_query_ms, l.max_result_bytes,
               l.dedicated_pool, l.pool_size, l.min_idle, l.pool_mode, l.client_idle_timeout_ms,
               CASE WHEN l.isolation OPERATOR(pg_catalog.=) 'database'::pg_catalog.text OR l.upstream IS NOT NULL
                    THEN tenant.context_document(l.id)::pg_catalog.text END,
               l.upstream
        FROM tenant.tenant_list l
        WHERE l.id OPERATOR(pg_catalog.=) only_id;
    ELSE
        RETURN QUERY
        SELECT l.id, l.enabled, l.isolation, l.database_name::text, l.schema_name::text,
               l.max_connections, l.qps_limit, l.burst_multiplier, l.max_query_ms, l.max_result_bytes,
               l.dedicated_pool, l.pool_size, l.min_idle, l.pool_mode, l.client_idle_timeout_ms,
               CASE WHEN l.isolation OPERATOR(pg_catalog.=) 'database'::pg_catalog.text OR l.upstream IS NOT NULL
                    THEN tenant.context_document(l.id)::pg_catalog.text END,
               l.upstream
        FROM tenant.tenant_list l
        ORDER BY l.id;
    END IF;
END
$fn$;
COMMENT ON FUNCTION tenant.router_catalog IS 'pg_tenant: effective tenant limits and pool settings for tenant-router (granted to tenant_router)';

CREATE FUNCTION tenant.router_catalog_page(after_id text, page_size integer,
                                           id_prefix text DEFAULT NULL,
                                           only_enabled boolean DEFAULT NULL)
RETURNS TABLE (id text, enabled boolean, isolation text, database_name text,
               schema_name text, max_connections integer, qps_limit integer,
               burst_multiplier real, max_query_ms integer, max_result_bytes bigint,
               dedicated_pool boolean, pool_size integer, min_idle integer, pool_mode text,
               client_idle_timeout_ms integer, context_document text, upstream text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    sql pg_catalog.text;
BEGIN
    IF page_size IS NULL OR page_size OPERATOR(pg_catalog.<) 1 OR page_size OPERATOR(pg_catalog.>) 1000 THEN
        RAISE EXCEPTION 'page_size must be between 1 and 1000, not %', coalesce(page_size::pg_catalog.text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'Read the next page with after_id => the last id of this one.';
    END IF;
    sql := 'SELECT l.id, l.enabled, l.isolation, l.database_name::pg_catalog.text, l.schema_name::pg_catalog.text,
                   l.max_connections, l.qps_limit, l.burst_multiplier, l.max_query_ms, l.max_result_bytes,
                   l.dedicated_pool, l.pool_size, l.min_idle, l.pool_mode, l.client_idle_timeout_ms,
                   CASE WHEN l.isolation OPERATOR(pg_catalog.=) ''database''::pg_catalog.text OR l.upstream IS NOT NULL
                        THEN tenant.context_document(l.id)::pg_catalog.text END,
                   l.upstream
              FROM tenant.tenant_list l
             WHERE (l.id COLLATE pg_catalog."C") OPERATOR(pg_catalog.>) $1
               AND (l.id COLLATE pg_catalog."C") OPERATOR(pg_catalog.>=) $2
               AND (l.id COLLATE pg_catalog."C") OPERATOR(pg_catalog.<) ($2 OPERATOR(pg_catalog.||) ''~'')';
    -- A literal condition, so the planner can use the disabled tenants' index.
    IF only_enabled IS FALSE THEN
        sql := sql OPERATOR(pg_catalog.||) ' AND NOT l.enabled';
    ELSIF only_enabled THEN
        sql := sql OPERATOR(pg_catalog.||) ' AND l.enabled';
    END IF;
    sql := sql OPERATOR(pg_catalog.||) ' ORDER BY (l.id COLLATE pg_catalog."C") LIMIT $3';
    RETURN QUERY EXECUTE sql USING coalesce(after_id, ''), coalesce(id_prefix, ''), page_size;
END
$fn$;
COMMENT ON FUNCTION tenant.router_catalog_page IS 'pg_tenant: one page of tenant.router_catalog(), ids in byte order after after_id, optionally by prefix and state, for tenant-router''s admin API (granted to tenant_router)';

DO $acl$
DECLARE
    f record;
    g record;
    fn pg_catalog.regprocedure;
BEGIN
    FOR f IN SELECT u.fn, u.owner, u.acl, u.initprivs FROM tenant._update_acl u LOOP
        fn := CASE f.fn
            WHEN 'enable_tenant' THEN 'tenant.enable_tenant(pg_catalog.text)'
            WHEN 'disable_tenant' THEN 'tenant.disable_tenant(pg_catalog.text)'
            WHEN 'create_tenant' THEN 'tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.name[], pg_catalog.text)'
            WHEN 'alter_tenant' THEN 'tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.name[], pg_catalog.text)'
            WHEN 'router_catalog' THEN 'tenant.router_catalog(pg_catalog.text)'
            WHEN 'router_catalog_page' THEN 'tenant.router_catalog_page(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.bool)'
        END::pg_catalog.regprocedure;
        EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        FOR g IN SELECT a.grantee, a.is_grantable
                   FROM pg_catalog.aclexplode(coalesce(f.acl, pg_catalog.acldefault('f', f.owner))) WITH ORDINALITY a
                  WHERE a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
                    AND a.grantee OPERATOR(pg_catalog.<>) f.owner
                  ORDER BY a.ordinality LOOP
            EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s%s', fn,
                CASE WHEN g.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'PUBLIC'
                     ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) END,
                CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
        END LOOP;
        -- The grants above were recorded as the extension's initial
        -- privileges; keep the old function's instead, so pg_dump still
        -- dumps what the operator changed.
        IF f.initprivs IS NULL THEN
            DELETE FROM pg_catalog.pg_init_privs ip
             WHERE ip.objoid OPERATOR(pg_catalog.=) fn
               AND ip.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
               AND ip.objsubid OPERATOR(pg_catalog.=) 0;
        ELSE
            UPDATE pg_catalog.pg_init_privs ip SET initprivs = f.initprivs
             WHERE ip.objoid OPERATOR(pg_catalog.=) fn
               AND ip.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
               AND ip.objsubid OPERATOR(pg_catalog.=) 0;
        END IF;
    END LOOP;
END
$acl$;
DROP TABLE tenant._update_acl;

CREATE OR REPLACE FUNCTION tenant.context_document(tenant_id text) RETURNS pg_catalog.jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
RETURN (SELECT pg_catalog.jsonb_build_object(
    'tenant', t.id,
    'enabled', t.enabled,
    'role_name', t.role_name::pg_catalog.text,
    'login_roles', CASE WHEN pg_catalog.jsonb_typeof(x.j OPERATOR(pg_catalog.->) 'login_roles'::pg_catalog.text)
                            OPERATOR(pg_catalog.=) 'array'::pg_catalog.text
                        THEN x.j OPERATOR(pg_catalog.->) 'login_roles'::pg_catalog.text END,
    'allow_ddl', t.allow_ddl,
    'read_only', t.read_only,
    'allowed_operations', pg_catalog.to_jsonb(t.allowed_operations),
    'allow_large_objects', t.allow_large_objects,
    'pool_mode', coalesce(x.j OPERATOR(pg_catalog.->>) 'pool_mode'::pg_catalog.text,
                          x.dj OPERATOR(pg_catalog.->>) 'pool_mode'::pg_catalog.text, 'session'::pg_catalog.text),
    'max_advisory_locks', coalesce((x.j OPERATOR(pg_catalog.->>) 'max_advisory_locks'::pg_catalog.text)::pg_catalog.int8,
                                   (x.dj OPERATOR(pg_catalog.->>) 'max_advisory_locks'::pg_catalog.text)::pg_catalog.int8, 64),
    'statement_timeout_ms', coalesce((x.j OPERATOR(pg_catalog.->>) 'statement_timeout_ms'::pg_catalog.text)::pg_catalog.int8,
                                     (x.dj OPERATOR(pg_catalog.->>) 'statement_timeout_ms'::pg_catalog.text)::pg_catalog.int8, 300000),
    'idle_in_transaction_timeout_ms', coalesce((x.j OPERATOR(pg_catalog.->>) 'idle_in_transaction_timeout_ms'::pg_catalog.text)::pg_catalog.int8,
                                               (x.dj OPERATOR(pg_catalog.->>) 'idle_in_transaction_timeout_ms'::pg_catalog.text)::pg_catalog.int8, 60000),
    'work_mem_kb', coalesce((x.j OPERATOR(pg_catalog.->>) 'work_mem_kb'::pg_catalog.text)::pg_catalog.int8,
                            (x.dj OPERATOR(pg_catalog.->>) 'work_mem_kb'::pg_catalog.text)::pg_catalog.int8, 65536),
    'maintenance_work_mem_kb', coalesce((x.j OPERATOR(pg_catalog.->>) 'maintenance_work_mem_kb'::pg_catalog.text)::pg_catalog.int8,
                                        (x.dj OPERATOR(pg_catalog.->>) 'maintenance_work_mem_kb'::pg_catalog.text)::pg_catalog.int8, 262144),
    'temp_file_limit_kb', coalesce((x.j OPERATOR(pg_catalog.->>) 'temp_file_limit_kb'::pg_catalog.text)::pg_catalog.int8,
                                   (x.dj OPERATOR(pg_catalog.->>) 'temp_file_limit_kb'::pg_catalog.text)::pg_catalog.int8, 1048576),
    'lock_space', coalesce((x.j OPERATOR(pg_catalog.->>) 'lock_space'::pg_catalog.text)::pg_catalog.int8, 0),
    'isolation', t.isolation,
    'database_name', t.database_name::pg_catalog.text,
    'schema_name', t.schema_name::pg_catalog.text,
    'shared_schemas', x.j OPERATOR(pg_catalog.->) 'shared_schemas'::pg_catalog.text,
    'upstream', x.j OPERATOR(pg_catalog.->>) 'upstream'::pg_catalog.text,
    'updated_at', t.updated_at)
FROM tenant.tenants t,
     LATERAL (SELECT pg_catalog.to_jsonb(t) AS j,
                     coalesce((SELECT pg_catalog.to_jsonb(d) FROM tenant.defaults d LIMIT 1),
                              '{}'::pg_catalog.jsonb) AS dj) x
WHERE t.id OPERATOR(pg_catalog.=) tenant_id);
END
$fn$;

-- Fences: tenants that do not live on this server (placement.sql).
CREATE TABLE tenant.fenced (
    tenant_id pg_catalog.text PRIMARY KEY
              CONSTRAINT tenant_id_pattern CHECK (tenant_id OPERATOR(pg_catalog.~) '^[a-z0-9][a-z0-9_-]{0,62}$'::pg_catalog.text),
    reason    pg_catalog.text,
    fenced_at pg_catalog.timestamptz DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tenant.fenced IS 'pg_tenant: tenants that do not live on this server (tenant.fence_tenant); set_context and set_context_sealed refuse them';
SELECT pg_catalog.pg_extension_config_dump('tenant.fenced', '');
REVOKE ALL ON tenant.fenced FROM PUBLIC;
GRANT SELECT ON tenant.fenced TO tenant_admin;

-- Who may fence: a superuser or the extension's owner (42501 otherwise).
CREATE FUNCTION tenant._require_fence_owner(what pg_catalog.text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER AND r.rolsuper)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension e
                        WHERE e.extname OPERATOR(pg_catalog.=) 'pg_tenant'::pg_catalog.name
                          AND pg_catalog.pg_has_role(CURRENT_USER, e.extowner, 'USAGE')) THEN
        RAISE EXCEPTION 'only a superuser or the owner of pg_tenant may % a tenant', what
            USING ERRCODE = '42501';
    END IF;
END
$fn$;

-- Fence tenant id in this database: true when it fenced it now, false
-- when it was fenced already (its reason is kept). The tenant need not be
-- in this database's catalog. Contexts set before the fence keep their
-- tenant until their session ends or changes tenant (the move terminates
-- those backends); every later set_context or set_context_sealed of the
-- tenant is refused with 55000.
CREATE FUNCTION tenant.fence_tenant(id text, reason text DEFAULT NULL) RETURNS pg_catalog.bool
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM tenant._require_fence_owner('fence');
    IF id IS NULL OR id OPERATOR(pg_catalog.!~) '^[a-z0-9][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid tenant id "%"', id
            USING ERRCODE = '22023',
                  HINT = 'Tenant ids are 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit.';
    END IF;
    INSERT INTO tenant.fenced (tenant_id, reason) VALUES (id, reason)
        ON CONFLICT (tenant_id) DO NOTHING;
    RETURN FOUND;
END
$fn$;
COMMENT ON FUNCTION tenant.fence_tenant IS 'pg_tenant: refuse a tenant''s contexts in this database (it lives on another server); superuser or extension owner; true when fenced now';

-- Lift the fence of tenant id: true when it was fenced, false when not.
CREATE FUNCTION tenant.unfence_tenant(id text) RETURNS pg_catalog.bool
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM tenant._require_fence_owner('unfence');
    IF id IS NULL OR id OPERATOR(pg_catalog.!~) '^[a-z0-9][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid tenant id "%"', id
            USING ERRCODE = '22023',
                  HINT = 'Tenant ids are 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit.';
    END IF;
    DELETE FROM tenant.fenced f WHERE f.tenant_id OPERATOR(pg_catalog.=) id;
    RETURN FOUND;
END
$fn$;
COMMENT ON FUNCTION tenant.unfence_tenant IS 'pg_tenant: accept a fenced tenant''s contexts in this database again; superuser or extension owner; true when it was fenced';

REVOKE EXECUTE ON FUNCTION tenant._require_fence_owner(text), tenant.fence_tenant(text, text),
    tenant.unfence_tenant(text) FROM PUBLIC;

-- 0.9.0: burst_multiplier must be finite: the CHECK (>= 1) lets 'Infinity'
-- and 'NaN' through, and the router read Infinity as an unlimited burst.
-- _validate (re-created above) and set_defaults refuse both (22023).
CREATE OR REPLACE FUNCTION tenant.set_defaults(
    max_connections integer DEFAULT 100,
    qps_limit integer DEFAULT 0,
    burst_multiplier real DEFAULT 1.0,
    max_query_ms integer DEFAULT 0,
    max_result_bytes bigint DEFAULT 0,
    pool_size integer DEFAULT 10,
    min_idle integer DEFAULT 0,
    pool_mode text DEFAULT 'session',
    statement_timeout_ms integer DEFAULT 300000,
    idle_in_transaction_timeout_ms integer DEFAULT 60000,
    work_mem_kb integer DEFAULT 65536,
    maintenance_work_mem_kb integer DEFAULT 262144,
    temp_file_limit_kb integer DEFAULT 1048576,
    max_advisory_locks integer DEFAULT 64,
    client_idle_timeout_ms integer DEFAULT 0
) RETURNS tenant.defaults
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    d tenant.defaults;
BEGIN
    IF pool_mode IS NULL OR NOT pool_mode OPERATOR(pg_catalog.=) ANY ('{session,transaction}'::pg_catalog.text[]) THEN
        RAISE EXCEPTION 'unknown pool_mode % for the tenant defaults', coalesce(pg_catalog.quote_literal(pool_mode), 'NULL')
            USING ERRCODE = '22023', HINT = 'Use session or transaction.';
    END IF;
    IF burst_multiplier OPERATOR(pg_catalog.=) ANY ('{Infinity,NaN}'::pg_catalog.float4[]) THEN
        RAISE EXCEPTION 'burst_multiplier must be a finite number >= 1, got %', burst_multiplier
            USING ERRCODE = '22023';
    END IF;
    DELETE FROM tenant.defaults;
    INSERT INTO tenant.defaults VALUES (true, max_connections, qps_limit, burst_multiplier,
        max_query_ms, max_result_bytes, pool_size, min_idle, pool_mode, statement_timeout_ms,
        idle_in_transaction_timeout_ms, work_mem_kb, maintenance_work_mem_kb, temp_file_limit_kb,
        max_advisory_locks, client_idle_timeout_ms) RETURNING * INTO d;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', '*');
    RETURN d;
EXCEPTION WHEN check_violation OR not_null_violation THEN
    RAISE EXCEPTION 'invalid tenant defaults: %', SQLERRM USING ERRCODE = '22023';
END
$fn$;
