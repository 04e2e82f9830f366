-- pg_tenant 0.4.0 -> 0.5.0 (frozen with the 0.5.0 release; never edit).
--
-- Like the install script, this runs with search_path = tenant: its DDL
-- names every function, operator and type with its schema, and it first
-- refuses a schema "tenant" that is not the extension's alone.
--
-- No tenant can exhaust what all tenants share (issue 22), the catalog's side:
-- * budgets on tenant.tenants (NULL: the default) and tenant.defaults:
--   statement_timeout_ms, idle_in_transaction_timeout_ms, work_mem_kb,
--   maintenance_work_mem_kb, temp_file_limit_kb, max_advisory_locks
--   (0 = unlimited); tenant_list shows the effective values;
-- * tenant.tenants.lock_space, the tenant's advisory lock namespace
--   (numbered from tenant.lock_space_seq; existing tenants are numbered by
--   this update), and the tenant-scoped tenant.advisory_* functions;
-- * create_tenant, alter_tenant (reset => '{<field>}') and set_defaults
--   take the budgets as their last arguments, so positional calls keep
--   working; the re-created functions keep the privileges they had;
-- * routines that tenant sessions create are not executable by PUBLIC
--   (event trigger pg_tenant_revoke_public_execute);
-- * protect() covers partitions and inheritance children, present and
--   future (event trigger), and audit() reports unprotected children,
--   rules and SECURITY DEFINER functions reachable through group roles.
-- The budgets themselves are enforced by the shared library, which reads
-- them through to_jsonb of the catalog rows (built-in defaults on a 0.4.0
-- schema) until this update ran.
\echo Use "ALTER EXTENSION pg_tenant UPDATE TO '0.5.0'" to load this file. \quit
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

-- Numbers for tenants' advisory lock namespaces (tenants.lock_space).
CREATE SEQUENCE tenant.lock_space_seq AS pg_catalog.int4 MINVALUE 1;
SELECT pg_catalog.pg_extension_config_dump('tenant.lock_space_seq', '');

ALTER TABLE tenant.defaults
    ADD COLUMN statement_timeout_ms           pg_catalog.int4 NOT NULL DEFAULT 300000  CHECK (statement_timeout_ms OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN idle_in_transaction_timeout_ms pg_catalog.int4 NOT NULL DEFAULT 60000   CHECK (idle_in_transaction_timeout_ms OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN work_mem_kb                    pg_catalog.int4 NOT NULL DEFAULT 65536   CHECK (work_mem_kb OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN maintenance_work_mem_kb        pg_catalog.int4 NOT NULL DEFAULT 262144  CHECK (maintenance_work_mem_kb OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN temp_file_limit_kb             pg_catalog.int4 NOT NULL DEFAULT 1048576 CHECK (temp_file_limit_kb OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN max_advisory_locks             pg_catalog.int4 NOT NULL DEFAULT 64      CHECK (max_advisory_locks OPERATOR(pg_catalog.>=) 0);
ALTER TABLE tenant.tenants
    ADD COLUMN statement_timeout_ms pg_catalog.int4 CHECK (statement_timeout_ms OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN idle_in_transaction_timeout_ms pg_catalog.int4 CHECK (idle_in_transaction_timeout_ms OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN work_mem_kb pg_catalog.int4 CHECK (work_mem_kb OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN maintenance_work_mem_kb pg_catalog.int4 CHECK (maintenance_work_mem_kb OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN temp_file_limit_kb pg_catalog.int4 CHECK (temp_file_limit_kb OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN max_advisory_locks pg_catalog.int4 CHECK (max_advisory_locks OPERATOR(pg_catalog.>=) 0),
    ADD COLUMN lock_space pg_catalog.int4 NOT NULL DEFAULT pg_catalog.nextval('tenant.lock_space_seq'::pg_catalog.regclass) CONSTRAINT tenants_lock_space_key UNIQUE;

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
       t.lock_space
FROM tenant.tenants t
LEFT JOIN tenant.defaults d ON true;

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
    IF t.isolation OPERATOR(pg_catalog.=) 'database' AND t.database_name IS NULL THEN
        RAISE EXCEPTION 'tenant "%" uses database isolation but has no database_name', t.id USING ERRCODE = '22023';
    END IF;
    IF t.max_connections OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'max_connections must be >= 0, got %', t.max_connections USING ERRCODE = '22023'; END IF;
    IF t.qps_limit OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'qps_limit must be >= 0, got %', t.qps_limit USING ERRCODE = '22023'; END IF;
    IF t.burst_multiplier OPERATOR(pg_catalog.<) 1::pg_catalog.float4 THEN RAISE EXCEPTION 'burst_multiplier must be >= 1, got %', t.burst_multiplier USING ERRCODE = '22023'; END IF;
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
END
$fn$;

-- New trailing arguments (create_tenant, alter_tenant, set_defaults): drop the old functions (enable_tenant
-- and disable_tenant depend on alter_tenant) and create them again. Their
-- privileges are kept: what an operator granted or revoked on the old
-- functions (and what pg_dump counts as the extension's initial
-- privileges) is captured first and applied to the new ones.
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
        'tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text)'::pg_catalog.regprocedure,
        'tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text)'::pg_catalog.regprocedure,
        'tenant.set_defaults(pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.int4, pg_catalog.int4, pg_catalog.text)'::pg_catalog.regprocedure]);
DROP FUNCTION tenant.enable_tenant(pg_catalog.text);
DROP FUNCTION tenant.disable_tenant(pg_catalog.text);
DROP FUNCTION tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text);
DROP FUNCTION tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text);
DROP FUNCTION tenant.set_defaults(pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.int4, pg_catalog.int4, pg_catalog.text);

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
    max_advisory_locks integer DEFAULT NULL
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
             pg_catalog.nextval('tenant.lock_space_seq'::pg_catalog.regclass));
    PERFORM tenant._validate(t);
    PERFORM tenant._check_roles(t.role_name, t.login_roles);
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
    max_advisory_locks integer DEFAULT NULL
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
    t.updated_at := pg_catalog.now();
    PERFORM tenant._validate(t);
    -- Only the roles this call sets: stored ones may have been renamed or
    -- dropped since, and must not block disable_tenant.
    PERFORM tenant._check_roles(alter_tenant.role_name, alter_tenant.login_roles);
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
        temp_file_limit_kb = t.temp_file_limit_kb, max_advisory_locks = t.max_advisory_locks
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

-- Set the defaults for NULL limits (upsert of the single defaults row).
CREATE FUNCTION tenant.set_defaults(
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
    max_advisory_locks integer DEFAULT 64
) RETURNS tenant.defaults
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    d tenant.defaults;
BEGIN
    IF pool_mode IS NULL OR NOT pool_mode OPERATOR(pg_catalog.=) ANY ('{session,transaction}'::pg_catalog.text[]) THEN
        RAISE EXCEPTION 'unknown pool_mode % for the tenant defaults', coalesce(pg_catalog.quote_literal(pool_mode), 'NULL')
            USING ERRCODE = '22023', HINT = 'Use session or transaction.';
    END IF;
    DELETE FROM tenant.defaults;
    INSERT INTO tenant.defaults VALUES (true, max_connections, qps_limit, burst_multiplier,
        max_query_ms, max_result_bytes, pool_size, min_idle, pool_mode, statement_timeout_ms,
        idle_in_transaction_timeout_ms, work_mem_kb, maintenance_work_mem_kb, temp_file_limit_kb,
        max_advisory_locks) RETURNING * INTO d;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', '*');
    RETURN d;
EXCEPTION WHEN check_violation OR not_null_violation THEN
    RAISE EXCEPTION 'invalid tenant defaults: %', SQLERRM USING ERRCODE = '22023';
END
$fn$;
COMMENT ON FUNCTION tenant.set_defaults IS 'pg_tenant: defaults used where a tenant limit is NULL (0 = unlimited)';

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
            WHEN 'create_tenant' THEN 'tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4)'
            WHEN 'alter_tenant' THEN 'tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4)'
            WHEN 'set_defaults' THEN 'tenant.set_defaults(pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.int4, pg_catalog.int4, pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4)'
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

-- The tenant-scoped advisory locks (advisory.rs).
CREATE FUNCTION tenant."advisory_lock"(
	"key" bigint /* i64 */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'advisory_lock_wrapper';
CREATE FUNCTION tenant."advisory_lock_shared"(
	"key" bigint /* i64 */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'advisory_lock_shared_wrapper';
CREATE FUNCTION tenant."advisory_unlock"(
	"key" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'advisory_unlock_wrapper';
CREATE FUNCTION tenant."advisory_unlock_all"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'advisory_unlock_all_wrapper';
CREATE FUNCTION tenant."advisory_unlock_shared"(
	"key" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'advisory_unlock_shared_wrapper';
CREATE FUNCTION tenant."advisory_xact_lock"(
	"key" bigint /* i64 */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'advisory_xact_lock_wrapper';
CREATE FUNCTION tenant."advisory_xact_lock_shared"(
	"key" bigint /* i64 */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'advisory_xact_lock_shared_wrapper';
CREATE FUNCTION tenant."try_advisory_lock"(
	"key" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'try_advisory_lock_wrapper';
CREATE FUNCTION tenant."try_advisory_lock_shared"(
	"key" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'try_advisory_lock_shared_wrapper';
CREATE FUNCTION tenant."try_advisory_xact_lock"(
	"key" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'try_advisory_xact_lock_wrapper';
CREATE FUNCTION tenant."try_advisory_xact_lock_shared"(
	"key" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'try_advisory_xact_lock_shared_wrapper';

-- 0.5.0: routines that a confined session (a tenant context, or an
-- application role, a member of tenant_app) creates are not executable by
-- PUBLIC. PostgreSQL grants EXECUTE to PUBLIC on every new function, so a
-- DDL tenant's function would be callable by every other tenant whose
-- search_path or qualified name reaches it; tenants cannot run ALTER
-- DEFAULT PRIVILEGES (a database-level command). The creator (the tenant's
-- role) keeps EXECUTE; granting it on explicitly stays possible.
--
-- An event trigger at ddl_command_end, running as the creator (no
-- SECURITY DEFINER: the creator owns the routine and may revoke), for
-- CREATE FUNCTION, CREATE PROCEDURE and CREATE AGGREGATE.
CREATE FUNCTION tenant._revoke_public_execute() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    r record;
BEGIN
    IF tenant.current_tenant_id() IS NULL
       AND NOT (EXISTS (SELECT FROM pg_catalog.pg_roles m WHERE m.rolname OPERATOR(pg_catalog.=) 'tenant_app'::pg_catalog.name)
                AND pg_catalog.pg_has_role(current_user, 'tenant_app'::pg_catalog.name, 'MEMBER')
                AND NOT (SELECT a.rolsuper FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) current_user)) THEN
        RETURN;
    END IF;
    FOR r IN SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c
              WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON ROUTINE %s FROM PUBLIC', r.objid::pg_catalog.regprocedure);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION tenant._revoke_public_execute() IS 'pg_tenant: routines created by tenant sessions are not executable by PUBLIC';

CREATE EVENT TRIGGER pg_tenant_revoke_public_execute ON ddl_command_end
    WHEN TAG IN ('CREATE FUNCTION', 'CREATE PROCEDURE', 'CREATE AGGREGATE')
    EXECUTE FUNCTION tenant._revoke_public_execute();

-- pg_tenant 0.4.0 -> 0.5.0: partitions and inheritance children of
-- protected tables (issue findings 2-4), the extension's SQL side.
-- Statements for pg_tenant--0.4.0--0.5.0.sql, cut mechanically from
-- pg_tenant_ext/sql/rls.sql (the region from tenant._tenant_column to the
-- COMMENT on tenant.audit) with CREATE FUNCTION turned into CREATE OR
-- REPLACE FUNCTION for the three functions 0.4.0 already has, so a fresh
-- install and an updated one store the same text. Runs with
-- search_path = tenant like the install script; every name is qualified.
-- * new: tenant._tenant_column(regclass), tenant._isolates(regclass),
--   tenant._protect_children() and
--   the event trigger pg_tenant_protect_children (extension members, as
--   objects created by an update script are);
-- * replaced (privileges kept by CREATE OR REPLACE): tenant.protect and
--   tenant.unprotect (also partitions and inheritance children),
--   tenant.audit (unprotected children, rules, SECURITY DEFINER functions
--   reachable through groups); their comments.
-- Tables protected under 0.4.0 keep unprotected children until
-- tenant.protect(parent, column) runs again (tenant.audit lists each one
-- with that fix); the update does not change user tables.

-- The tenant column of a table protected by tenant.protect: the column its
-- pg_tenant_isolation policy compares (protect writes `USING (col = (SELECT
-- tenant.<context function>()))`). Read from the policy, not from the
-- column default protect also sets: the policy is what isolates tenants,
-- and a default may be changed or dropped without touching isolation.
-- NULL when the table has no such policy.
CREATE FUNCTION tenant._tenant_column(tbl regclass) RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT a.attname
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.polrelid
                                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
 WHERE p.polrelid OPERATOR(pg_catalog.=) tbl
   AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name
   AND pg_catalog.starts_with(pg_catalog.pg_get_expr(COALESCE(p.polqual, p.polwithcheck), p.polrelid),
                              '(' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname) OPERATOR(pg_catalog.||) ' = ')
 ORDER BY a.attnum
 LIMIT 1
$fn$;

-- Whether a table's pg_tenant_isolation policy is exactly the one
-- tenant.protect writes: FOR ALL, TO PUBLIC, permissive, and USING and WITH
-- CHECK both `(<col> = ( SELECT tenant.<context function>() ...))` for a
-- tenant column of a supported type. A policy with that name that says
-- anything else (`USING (true)`, `org_id = org_id`) does not isolate
-- tenants: audit() reports it and pg_tenant_protect_children replaces it.
CREATE FUNCTION tenant._isolates(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT EXISTS (
    SELECT 1
      FROM pg_catalog.pg_policy p
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.polrelid
                                    AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
     CROSS JOIN LATERAL (SELECT tenant._context_expr(a.atttypid::pg_catalog.regtype) AS expr) e
     WHERE p.polrelid OPERATOR(pg_catalog.=) tbl
       AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name
       AND p.polcmd OPERATOR(pg_catalog.=) '*'::pg_catalog."char" AND p.polpermissive
       AND p.polroles OPERATOR(pg_catalog.=) '{0}'::pg_catalog.oid[]
       AND e.expr IS NOT NULL
       AND pg_catalog.pg_get_expr(p.polqual, p.polrelid) OPERATOR(pg_catalog.=)
           pg_catalog.format('(%s = ( SELECT %s AS %s))', pg_catalog.quote_ident(a.attname), e.expr,
                             pg_catalog.split_part(pg_catalog.split_part(e.expr, '.', 2), '(', 1))
       AND pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) OPERATOR(pg_catalog.=)
           pg_catalog.format('(%s = ( SELECT %s AS %s))', pg_catalog.quote_ident(a.attname), e.expr,
                             pg_catalog.split_part(pg_catalog.split_part(e.expr, '.', 2), '(', 1)))
$fn$;

-- Protect a table and every partition and inheritance descendant of it, at
-- any depth, with the same column: ENABLE + FORCE row level security, one
-- policy for all commands comparing the tenant column with (SELECT
-- tenant.current_tenant_id()) (an initPlan: evaluated once per query,
-- index-friendly), a column default so inserts get the tenant
-- automatically, and an index on the column if none leads with it.
-- Idempotent. A table's policy applies only to queries naming that table:
-- a query naming a partition or child directly never sees the parent's
-- policy, so each one gets its own. Partitions and children added later are
-- protected by the event trigger pg_tenant_protect_children (below). Every
-- policy of the tree is written before the first ALTER TABLE, so that
-- trigger, fired by protect's own ALTER TABLE, finds the tree protected and
-- does nothing.
CREATE OR REPLACE FUNCTION tenant.protect(tbl regclass, tenant_column name DEFAULT 'tenant_id') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    att record;
    expr text;
    rels regclass[];
    rel regclass;
BEGIN
    SELECT a.attnum, a.atttypid::regtype AS typ INTO att
    FROM pg_attribute a
    WHERE a.attrelid = tbl AND a.attname = tenant_column AND NOT a.attisdropped AND a.attnum > 0;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no column "%"', tbl, tenant_column
            USING ERRCODE = '42703', HINT = 'Pass the tenant column: tenant.protect(''t'', ''org_id'').';
    END IF;
    expr := tenant._context_expr(att.typ);
    IF expr IS NULL THEN
        RAISE EXCEPTION 'tenant column %.% has type %, expected text, uuid or an integer type', tbl, tenant_column, att.typ
            USING ERRCODE = '42804';
    END IF;
    -- The table, then its partitions and inheritance children by depth
    -- (pg_inherits holds both; PostgreSQL forbids inheritance cycles).
    WITH RECURSIVE tree(relid, depth) AS (
        SELECT tbl::oid, 0
        UNION ALL
        SELECT i.inhrelid, t.depth + 1 FROM tree t JOIN pg_inherits i ON i.inhparent = t.relid
    )
    SELECT array_agg(x.relid::regclass ORDER BY x.depth, x.relid) INTO rels
      FROM (SELECT relid, max(depth) AS depth FROM tree GROUP BY relid) x;
    SELECT c.oid::regclass INTO rel FROM pg_class c WHERE c.oid = ANY (rels) AND c.relkind = 'f' ORDER BY c.oid LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'foreign table % cannot be protected: row level security does not apply to foreign tables, and queries naming it directly bypass the policy of any table it is a partition or child of', rel
            USING ERRCODE = '0A000', HINT = 'Keep foreign tables out of protected tables'' partitions and inheritance children (ALTER TABLE ... DETACH PARTITION or NO INHERIT).';
    END IF;
    FOREACH rel IN ARRAY rels LOOP
        IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = rel AND p.polname = 'pg_tenant_isolation') THEN
            EXECUTE format('DROP POLICY pg_tenant_isolation ON %s', rel);
        END IF;
        EXECUTE format('CREATE POLICY pg_tenant_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC '
                       'USING (%I = (SELECT %s)) WITH CHECK (%I = (SELECT %s))',
                       rel, tenant_column, expr, tenant_column, expr);
    END LOOP;
    FOREACH rel IN ARRAY rels LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', rel);
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', rel, tenant_column, expr);
        IF NOT EXISTS (
            SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = rel AND a.attname = tenant_column AND i.indpred IS NULL
        ) THEN
            EXECUTE format('CREATE INDEX ON %s (%I)', rel, tenant_column);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION tenant.protect IS 'pg_tenant: enable, force and add the tenant RLS policy, default and index on a table and all its partitions and inheritance children';

-- Undo tenant.protect on a table and its partitions and inheritance
-- children (the indexes stay). Refused for a table that is (or has
-- descendants that are) also a child of a protected table outside the
-- tree: unprotecting it would open the rows that table protects.
CREATE OR REPLACE FUNCTION tenant.unprotect(tbl regclass, tenant_column name DEFAULT 'tenant_id') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rels regclass[];
    rel regclass;
    parent regclass;
BEGIN
    WITH RECURSIVE tree(relid, depth) AS (
        SELECT tbl::oid, 0
        UNION ALL
        SELECT i.inhrelid, t.depth + 1 FROM tree t JOIN pg_inherits i ON i.inhparent = t.relid
    )
    SELECT array_agg(x.relid::regclass ORDER BY x.depth, x.relid) INTO rels
      FROM (SELECT relid, max(depth) AS depth FROM tree GROUP BY relid) x;
    SELECT i.inhrelid::regclass, i.inhparent::regclass INTO rel, parent
      FROM pg_inherits i
     WHERE i.inhrelid = ANY (rels) AND NOT i.inhparent = ANY (rels)
       AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = i.inhparent AND p.polname = 'pg_tenant_isolation')
     ORDER BY 1, 2 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% is a partition or child of protected table %: its rows are that table''s rows', rel, parent
            USING ERRCODE = '55000', HINT = format('Unprotect %s instead, or detach %s from it first.', parent, rel);
    END IF;
    -- Policies first: the ALTER TABLEs below fire pg_tenant_protect_children,
    -- which must find no protected ancestor left.
    FOREACH rel IN ARRAY rels LOOP
        IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = rel AND p.polname = 'pg_tenant_isolation') THEN
            EXECUTE format('DROP POLICY pg_tenant_isolation ON %s', rel);
        END IF;
    END LOOP;
    FOREACH rel IN ARRAY rels LOOP
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', rel);
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', rel);
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = rel AND attname = tenant_column AND NOT attisdropped) THEN
            EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', rel, tenant_column);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION tenant.unprotect IS 'pg_tenant: remove the tenant policy and disable RLS on a table and all its partitions and inheritance children';

-- Partitions and inheritance children added to a protected table later
-- (CREATE TABLE ... PARTITION OF / INHERITS, ALTER TABLE ... ATTACH
-- PARTITION / INHERIT, sub-partitions of those) get its protection at the
-- end of the command that made them: tenant.protect(child, the column of
-- its nearest protected ancestor's policy). A foreign table cannot be
-- protected: protect refuses, and so does the command that made it a child.
--
-- SECURITY INVOKER: making a table a child requires owning it and the
-- parent, so whoever ran the command may protect it; running as the
-- extension's owner (a superuser) would give every table owner's DDL a
-- superuser's ALTER TABLE and CREATE INDEX. Cheap for unrelated DDL: only
-- tables in an inheritance tree are looked at, with no call into schema
-- tenant unless one needs protecting. No recursion: it protects only tables
-- without their pg_tenant_isolation policy, and protect writes every
-- policy before its first ALTER TABLE fires this again. A child whose
-- policy or flags are later changed on purpose is left alone (tenant.audit
-- reports it). So is a child with row level security enabled and forced
-- and no policy at all: it is closed already (no rows for anyone it
-- applies to), and that is how pg_restore leaves a child of a protected
-- table in another schema between its ENABLE ROW LEVEL SECURITY and its
-- own CREATE POLICY pg_tenant_isolation, which would fail if this had
-- written the policy first (tenant.audit reports it until protected).
CREATE FUNCTION tenant._protect_children() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    todo record;
    col pg_catalog.name;
BEGIN
    FOR todo IN
        WITH RECURSIVE touched(relid) AS (
            SELECT DISTINCT c.oid
              FROM pg_catalog.pg_event_trigger_ddl_commands() d
              JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
             WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
               AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog."char"[])
               AND (c.relispartition OR c.relhassubclass
                    OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid))
        ), tree(relid) AS (     -- the tables the command touched and their descendants
            SELECT relid FROM touched
            UNION
            SELECT i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) t.relid
        ), ancestors(relid, anc, depth) AS (
            SELECT i.inhrelid, i.inhparent, 1
              FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhrelid OPERATOR(pg_catalog.=) t.relid
            UNION ALL
            SELECT a.relid, i.inhparent, a.depth OPERATOR(pg_catalog.+) 1
              FROM ancestors a JOIN pg_catalog.pg_inherits i ON i.inhrelid OPERATOR(pg_catalog.=) a.anc
        )
        -- each table without the policy, with its nearest protected
        -- ancestor; nearest first (protecting a table protects its
        -- descendants)
        SELECT x.child, x.ancestor FROM (
            SELECT DISTINCT ON (a.relid) a.relid::pg_catalog.regclass AS child,
                   a.anc::pg_catalog.regclass AS ancestor, a.depth
              FROM ancestors a
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                            WHERE p.polrelid OPERATOR(pg_catalog.=) a.anc
                              AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name)
               AND NOT tenant._isolates(a.relid::pg_catalog.regclass)
               -- not one that is already closed (see above)
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                WHERE c.oid OPERATOR(pg_catalog.=) a.relid
                                  AND c.relrowsecurity AND c.relforcerowsecurity
                                  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                                                   WHERE p.polrelid OPERATOR(pg_catalog.=) a.relid))
             ORDER BY a.relid, a.depth, a.anc) x
         ORDER BY x.depth, x.child
    LOOP
        -- An earlier iteration's protect may have covered this one.
        CONTINUE WHEN tenant._isolates(todo.child);
        col := tenant._tenant_column(todo.ancestor);
        IF col IS NULL THEN
            RAISE EXCEPTION '% is a partition or child of protected table %, whose pg_tenant_isolation policy names no tenant column pg_tenant recognizes', todo.child, todo.ancestor
                USING ERRCODE = '55000',
                      HINT = pg_catalog.format('Protect %s again with tenant.protect(%L, <its tenant column>) first.', todo.ancestor, todo.ancestor::pg_catalog.text);
        END IF;
        PERFORM tenant.protect(todo.child, col);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION tenant._protect_children IS 'pg_tenant: event trigger function protecting new partitions and inheritance children of protected tables';
CREATE EVENT TRIGGER pg_tenant_protect_children ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE')
    EXECUTE FUNCTION tenant._protect_children();

-- Everything that would let one tenant see another's rows: one row per
-- problem, no rows when the database is safe.
CREATE OR REPLACE FUNCTION tenant.audit()
RETURNS TABLE (object text, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
WITH RECURSIVE tables AS (
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
), inheritance(child, anc, depth) AS (
    -- every partition and inheritance child with each of its ancestors
    SELECT i.inhrelid, i.inhparent, 1 FROM pg_inherits i
    UNION ALL
    SELECT h.child, i.inhparent, h.depth + 1 FROM inheritance h JOIN pg_inherits i ON i.inhrelid = h.anc
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
-- SECURITY DEFINER functions run with their owner's rights. Reachable by
-- a login role, an application role (member of tenant_app) or a tenant's
-- role: EXECUTE granted to PUBLIC, to the role itself, or to a role it is
-- a member of, inherited or through SET ROLE (a NOINHERIT member). One row
-- per function; one a login role executes with its own privileges keeps
-- the 0.4.0 text, one reached only through a group names the role and the
-- group (application roles first, then by name).
SELECT f.fn, f.problem FROM (
SELECT DISTINCT ON (p.oid) p.oid::regprocedure::text AS fn,
       CASE WHEN r.rolcanlogin AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
            THEN format('SECURITY DEFINER function owned by %s (which bypasses row level security) is executable by application roles: it can return or change every tenant''s rows; fix: ALTER FUNCTION %s SECURITY INVOKER, or give it a NOBYPASSRLS owner, or REVOKE EXECUTE from application roles',
                        quote_ident(o.rolname), p.oid::regprocedure)
            ELSE format('SECURITY DEFINER function owned by %s (which bypasses row level security) is executable by application or tenant role %s through %s: it can return or change every tenant''s rows; fix: ALTER FUNCTION %s SECURITY INVOKER, or give it a NOBYPASSRLS owner, or REVOKE EXECUTE ON FUNCTION %s FROM %s',
                        quote_ident(o.rolname), quote_ident(r.rolname),
                        CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                             WHEN g.grantee = r.oid THEN 'its own grant'
                             ELSE format('its membership in role %s', quote_ident(gr.rolname)) END,
                        p.oid::regprocedure, p.oid::regprocedure,
                        CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(gr.rolname) END)
       END AS problem
  FROM pg_proc p
  JOIN pg_roles o ON o.oid = p.proowner
  JOIN pg_namespace n ON n.oid = p.pronamespace
  CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) g
  LEFT JOIN pg_roles gr ON gr.oid = g.grantee
  JOIN pg_roles r ON NOT r.rolsuper AND NOT r.rolbypassrls
                 AND (r.rolcanlogin
                      OR EXISTS (SELECT 1 FROM tenant.tenants x WHERE x.role_name = r.rolname)
                      OR (EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
                          AND r.rolname <> 'tenant_app' AND pg_has_role(r.oid, 'tenant_app', 'MEMBER')))
 WHERE p.prosecdef AND (o.rolsuper OR o.rolbypassrls)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                      AND e.objid = p.oid AND e.deptype = 'e')
   AND g.privilege_type = 'EXECUTE'
   AND (g.grantee = 0 OR pg_has_role(r.oid, g.grantee, 'MEMBER'))
 ORDER BY p.oid,
          (r.rolcanlogin AND has_function_privilege(r.oid, p.oid, 'EXECUTE')) DESC,
          (EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
           AND pg_has_role(r.oid, 'tenant_app', 'MEMBER')) DESC,
          r.rolname, gr.rolname) f
UNION ALL
-- 0.5.0: a table's policy applies only to queries naming that table: a
-- partition or inheritance child (any depth) of a protected table needs
-- the same protection, or queries naming it reach every tenant's rows.
SELECT x.child::regclass::text,
       CASE WHEN c.relkind = 'f'
            THEN format('foreign table is a %s of protected table %s: row level security cannot protect it, and queries naming it read and write every tenant''s rows; fix: %s',
                        CASE WHEN c.relispartition THEN 'partition' ELSE 'child' END, x.anc::regclass,
                        (SELECT CASE WHEN c.relispartition
                                     THEN format('ALTER TABLE %s DETACH PARTITION %s', i.inhparent::regclass, x.child::regclass)
                                     ELSE format('ALTER FOREIGN TABLE %s NO INHERIT %s', x.child::regclass, i.inhparent::regclass) END
                           FROM pg_inherits i WHERE i.inhrelid = x.child ORDER BY i.inhseqno LIMIT 1))
            ELSE format('%s of protected table %s is not protected (%s): queries naming it read and write every tenant''s rows; fix: SELECT tenant.protect(%L, %L)',
                        CASE WHEN c.relispartition THEN 'partition' ELSE 'inheritance child' END, x.anc::regclass,
                        concat_ws(', ',
                                  CASE WHEN NOT c.relrowsecurity THEN 'row level security is not enabled' END,
                                  CASE WHEN NOT c.relforcerowsecurity THEN 'not forced' END,
                                  CASE WHEN NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = x.child AND p.polname = 'pg_tenant_isolation')
                                       THEN 'no pg_tenant_isolation policy' END),
                        x.child::regclass::text, coalesce(tenant._tenant_column(x.anc), '<its tenant column>'))
       END
  FROM (SELECT DISTINCT ON (h.child) h.child, h.anc
          FROM inheritance h
         WHERE EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = h.anc AND p.polname = 'pg_tenant_isolation')
         ORDER BY h.child, h.depth, h.anc) x
  JOIN pg_class c ON c.oid = x.child
 WHERE NOT c.relrowsecurity OR NOT c.relforcerowsecurity
    OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = x.child AND p.polname = 'pg_tenant_isolation')
UNION ALL
-- 0.5.0: a policy with protect()'s name that says something else (USING
-- (true), org_id = org_id, a role list, a command) decides what every
-- tenant sees in that table.
SELECT c.oid::regclass::text,
       format('policy pg_tenant_isolation is not the one tenant.protect writes (FOR ALL TO PUBLIC, USING and WITH CHECK comparing the tenant column with the tenant context): whatever it says decides which tenants'' rows are read and written; fix: SELECT tenant.protect(%L, %L)',
              c.oid::regclass::text, coalesce(tenant._tenant_column(c.oid), '<its tenant column>'))
  FROM pg_class c
 WHERE EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation')
   AND NOT tenant._isolates(c.oid)
UNION ALL
-- 0.5.0: a rule's actions run with the rights of its table's owner: one
-- that reads (or writes) a protected table as a role that bypasses its row
-- level security (SUPERUSER, BYPASSRLS, or the protected table's owner
-- when RLS is not forced) reaches every tenant's rows whenever any tenant
-- fires it. View rules are reported above.
SELECT DISTINCT format('%I on %s', rw.rulename, r.oid::regclass),
       format('rule on %s owned by %s (which bypasses row level security on %s) reads or writes protected table %s: its actions run with the owner''s rights, so a tenant firing it reaches every tenant''s rows; fix: DROP RULE %I ON %s (use a trigger instead: it runs as the user who fires it)',
              r.oid::regclass, quote_ident(o.rolname), t.name, t.name, rw.rulename, r.oid::regclass)
  FROM pg_rewrite rw
  JOIN pg_class r ON r.oid = rw.ev_class
  JOIN pg_roles o ON o.oid = r.relowner
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'n'
  JOIN tables t ON t.oid = d.refobjid
  JOIN pg_class tc ON tc.oid = t.oid
 WHERE r.relkind IN ('r', 'p', 'f')
   AND (o.rolsuper OR o.rolbypassrls
        OR (pg_has_role(o.oid, tc.relowner, 'USAGE') AND NOT tc.relforcerowsecurity))
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
UNION ALL
-- 0.3.0: other rights that reach beyond a tenant (tenant._role_problem);
-- SUPERUSER, BYPASSRLS, tenant_router and tenant_admin are reported above.
SELECT quote_ident(r.rolname),
       format('application role (member of tenant_app) %s: its sessions could reach beyond their tenant, and tenant.login_verifier gives the router no verifier for it; fix: REVOKE the role or ALTER ROLE %s NO<attribute>, whichever the report names',
              tenant._role_problem(r.oid), quote_ident(r.rolname))
  FROM pg_roles r
 WHERE EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND NOT r.rolsuper AND NOT r.rolbypassrls
   AND r.rolname NOT IN ('tenant_app', 'tenant_router', 'tenant_admin')
   AND pg_has_role(r.oid, 'tenant_app', 'MEMBER')
   AND NOT pg_has_role(r.oid, 'tenant_router', 'MEMBER') AND NOT pg_has_role(r.oid, 'tenant_admin', 'MEMBER')
   AND tenant._role_problem(r.oid) IS NOT NULL
UNION ALL
-- 0.3.0: a role that runs tenant sessions (a login role for tenants
-- without a role_name, or a tenant's role_name) with the privileges of
-- another tenant's role_name reaches that tenant's objects; set_context
-- refuses it.
SELECT DISTINCT quote_ident(e.rolname),
       CASE WHEN e.rolcanlogin AND NOT EXISTS (SELECT 1 FROM tenant.tenants o WHERE o.role_name = e.rolname)
            THEN format('login role inherits the privileges of role %s of tenant %s: set_context refuses it for tenants without a role of their own; fix: ALTER ROLE %s NOINHERIT (set_context still switches to a tenant''s role), or separate login roles',
                        quote_ident(g.rolname), x.id, quote_ident(e.rolname))
            ELSE format('role runs tenant sessions and has the privileges of role %s of tenant %s: set_context refuses it; fix: REVOKE %s FROM %s, or ALTER ROLE %s NOINHERIT',
                        quote_ident(g.rolname), x.id, quote_ident(g.rolname), quote_ident(e.rolname), quote_ident(e.rolname))
       END
  FROM tenant.tenants x
  JOIN pg_roles g ON g.rolname = x.role_name
  JOIN pg_roles e ON e.oid <> g.oid AND NOT e.rolsuper
                 AND (e.rolcanlogin OR EXISTS (SELECT 1 FROM tenant.tenants o WHERE o.role_name = e.rolname))
 WHERE pg_has_role(e.oid, g.oid, 'USAGE')
   AND EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND pg_has_role(e.oid, 'tenant_app', 'MEMBER')
UNION ALL
-- 0.3.0: CREATE on schema public lets an application role plant functions
-- and operators (exact-type overloads of built-ins) that an operator's
-- default search_path finds.
SELECT quote_ident(r.rolname),
       format('application role (member of tenant_app) may create objects in schema public: it can plant functions and operators that win over built-ins in sessions whose search_path includes public (an operator''s); fix: REVOKE CREATE ON SCHEMA public FROM %s (or from PUBLIC), and give tenants that run DDL a schema of their own',
              quote_ident(r.rolname))
  FROM pg_roles r
  JOIN pg_namespace n ON n.nspname = 'public'
 WHERE EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND NOT r.rolsuper AND r.rolname NOT IN ('tenant_app', 'tenant_router', 'tenant_admin')
   AND pg_has_role(r.oid, 'tenant_app', 'MEMBER')
   AND has_schema_privilege(r.oid, n.oid, 'CREATE')
ORDER BY 1, 2
$fn$;
COMMENT ON FUNCTION tenant.audit IS 'pg_tenant: one row per tenant-isolation problem; empty when safe';
