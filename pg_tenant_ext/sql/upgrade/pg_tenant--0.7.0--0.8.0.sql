-- pg_tenant 0.7.0 -> 0.8.0 (frozen with the 0.8.0 release; never edit
-- after it).
--
-- Like the install script, this runs with search_path = tenant: its DDL
-- names every function, operator and type with its schema, and it first
-- refuses a schema "tenant" that is not the extension's alone.
--
-- What 0.8.0 changes is listed section by section below.
\echo Use "ALTER EXTENSION pg_tenant UPDATE TO '0.8.0'" to load this file. \quit
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

-- 0.8.0: tenant.schema_migrations, the migrations `tenant-router tenants
-- migrate` applied to tenant schemas (see sql/migrations.sql).
-- 0.8.0: the migrations `tenant-router tenants migrate` applied to tenant
-- schemas, one row per (schema, migration). The runner inserts the row in
-- the tenant's transaction before it runs the script, so the row and the
-- DDL commit or roll back together (a failed script leaves no row), and a
-- second runner inserting the same key waits on the primary key until the
-- first commits, then sees the row and skips the schema (never applies a
-- migration twice). `checksum` is the SHA-256 of the script: a script
-- changed since it was applied to a schema is refused there. Readable by
-- tenant_admin; written by the runner (a superuser). Kept by pg_dump.
CREATE TABLE tenant.schema_migrations (
    schema_name pg_catalog.name NOT NULL,
    migration   pg_catalog.text NOT NULL
                CONSTRAINT migration_name CHECK (pg_catalog.octet_length(migration) OPERATOR(pg_catalog.>=) 1
                                                 AND pg_catalog.octet_length(migration) OPERATOR(pg_catalog.<=) 200),
    checksum    pg_catalog.text NOT NULL
                CONSTRAINT checksum_sha256 CHECK (checksum OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$'::pg_catalog.text),
    applied_at  pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    applied_by  pg_catalog.name NOT NULL DEFAULT pg_catalog."session_user"(),
    PRIMARY KEY (schema_name, migration)
);
COMMENT ON TABLE tenant.schema_migrations IS 'pg_tenant: migrations applied to tenant schemas by tenant-router tenants migrate';
SELECT pg_catalog.pg_extension_config_dump('tenant.schema_migrations', '');
REVOKE ALL ON tenant.schema_migrations FROM PUBLIC;
GRANT SELECT ON tenant.schema_migrations TO tenant_admin;
-- ---------------------------------------------------------------------
-- Schema isolation (issue #26): shared_schemas, the schema checks of
-- create_tenant/alter_tenant, provision_tenant, drop_tenant's report and
-- drop_objects flag, the schema rows of audit().
-- ---------------------------------------------------------------------
-- The operator's reference schemas after a schema tenant's own on its
-- search_path (NULL: none).
ALTER TABLE tenant.tenants ADD COLUMN shared_schemas pg_catalog.name[]
    CONSTRAINT shared_schemas_listed
    CHECK (pg_catalog.array_position(shared_schemas, NULL::pg_catalog.name) IS NULL);
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
       t.shared_schemas
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
    IF t.isolation OPERATOR(pg_catalog.=) 'schema'
       AND (t.schema_name OPERATOR(pg_catalog.=) ANY ('{pg_catalog,information_schema,tenant,public}'::pg_catalog.name[])
            OR t.schema_name OPERATOR(pg_catalog.~~) 'pg\_%') THEN
        RAISE EXCEPTION 'schema "%" cannot be the schema of tenant "%": it is not a tenant''s own', t.schema_name, t.id
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
    IF t.client_idle_timeout_ms OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'client_idle_timeout_ms must be >= 0 (0: no limit), got %', t.client_idle_timeout_ms USING ERRCODE = '22023'; END IF;
END
$fn$;

CREATE FUNCTION tenant._check_schemas(t tenant.tenants, own boolean, shared boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    s pg_catalog.name;
    other pg_catalog.text;
BEGIN
    IF own AND t.role_name IS NOT NULL THEN
        SELECT x.id INTO other FROM tenant.tenants x
         WHERE x.id OPERATOR(pg_catalog.<>) t.id
           AND x.role_name OPERATOR(pg_catalog.=) t.role_name
           AND (x.isolation OPERATOR(pg_catalog.=) 'schema' OR t.isolation OPERATOR(pg_catalog.=) 'schema')
         ORDER BY x.id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'role "%" of tenant "%" is already the role of tenant "%"', t.role_name, t.id, other
                USING ERRCODE = '22023', HINT = 'A schema tenant''s role reaches its schema: give each tenant a role of its own.';
        END IF;
    END IF;
    IF own AND t.isolation OPERATOR(pg_catalog.=) 'schema' THEN
        SELECT x.id INTO other FROM tenant.tenants x
         WHERE x.id OPERATOR(pg_catalog.<>) t.id
           AND ((x.isolation OPERATOR(pg_catalog.=) 'schema' AND x.schema_name OPERATOR(pg_catalog.=) t.schema_name)
                OR t.schema_name OPERATOR(pg_catalog.=) ANY (x.shared_schemas))
         ORDER BY x.id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'schema "%" of tenant "%" is already used by tenant "%"', t.schema_name, t.id, other
                USING ERRCODE = '22023', HINT = 'Each schema tenant needs a schema of its own, shared with no other tenant.';
        END IF;
    END IF;
    IF shared THEN
        FOREACH s IN ARRAY coalesce(t.shared_schemas, '{}'::pg_catalog.name[]) LOOP
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) s) THEN
                RAISE EXCEPTION 'shared schema "%" of tenant "%" does not exist', s, t.id USING ERRCODE = '22023';
            END IF;
            IF s OPERATOR(pg_catalog.=) t.schema_name THEN
                RAISE EXCEPTION 'shared schema "%" of tenant "%" is its own schema', s, t.id USING ERRCODE = '22023';
            END IF;
            SELECT x.id INTO other FROM tenant.tenants x
             WHERE x.id OPERATOR(pg_catalog.<>) t.id AND x.isolation OPERATOR(pg_catalog.=) 'schema'
               AND x.schema_name OPERATOR(pg_catalog.=) s
             ORDER BY x.id LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'shared schema "%" of tenant "%" is the schema of tenant "%"', s, t.id, other
                    USING ERRCODE = '22023', HINT = 'A tenant''s schema is never shared: list reference schemas only.';
            END IF;
        END LOOP;
    END IF;
END
$fn$;

-- A new trailing argument (create_tenant, alter_tenant, drop_tenant's
-- drop_objects) and a new result (drop_tenant): drop the old functions
-- (enable_tenant and disable_tenant depend on alter_tenant) and create
-- them again, keeping their privileges as the 0.5.0 -> 0.6.0 update did.
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
        'tenant.drop_tenant(pg_catalog.text)'::pg_catalog.regprocedure,
        'tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4)'::pg_catalog.regprocedure,
        'tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4)'::pg_catalog.regprocedure]);
DROP FUNCTION tenant.enable_tenant(pg_catalog.text);
DROP FUNCTION tenant.disable_tenant(pg_catalog.text);
DROP FUNCTION tenant.drop_tenant(pg_catalog.text);
DROP FUNCTION tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4);
DROP FUNCTION tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4);

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
    shared_schemas name[] DEFAULT NULL
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
             shared_schemas);
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
    shared_schemas name[] DEFAULT NULL
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
        client_idle_timeout_ms = t.client_idle_timeout_ms, shared_schemas = t.shared_schemas
    WHERE x.id OPERATOR(pg_catalog.=) t.id;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', t.id);
    RETURN t;
END
$fn$;
COMMENT ON FUNCTION tenant.alter_tenant IS 'pg_tenant: change a tenant; NULL keeps a value, reset => ''{field}'' clears one';

-- 0.8.0: the first object in schema nsp not owned by role r (NULL: none):
-- tables, views, sequences, functions, domains and enums. provision_tenant
-- hands over, and drop_tenant(drop_objects) drops, only a schema that
-- holds nothing of anyone else, so tenant_admin cannot point a tenant at
-- an operator's schema to read or drop it.
CREATE FUNCTION tenant._foreign_object(nsp pg_catalog.oid, r pg_catalog.oid) RETURNS pg_catalog.text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT x.d FROM (
    SELECT pg_catalog.pg_describe_object('pg_catalog.pg_class'::pg_catalog.regclass, c.oid, 0) AS d, c.relowner AS o
      FROM pg_catalog.pg_class c
     WHERE c.relnamespace OPERATOR(pg_catalog.=) nsp AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f,S}'::pg_catalog."char"[])
    UNION ALL
    SELECT pg_catalog.pg_describe_object('pg_catalog.pg_proc'::pg_catalog.regclass, p.oid, 0), p.proowner
      FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL
    SELECT pg_catalog.pg_describe_object('pg_catalog.pg_type'::pg_catalog.regclass, y.oid, 0), y.typowner
      FROM pg_catalog.pg_type y
     WHERE y.typnamespace OPERATOR(pg_catalog.=) nsp AND y.typtype OPERATOR(pg_catalog.=) ANY ('{d,e,r,m}'::pg_catalog."char"[])
) x
WHERE x.o IS DISTINCT FROM r
ORDER BY 1 LIMIT 1
$fn$;

CREATE FUNCTION tenant.drop_tenant(id text, drop_objects boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
    r pg_catalog.oid;
    nsp pg_catalog.oid;
    objects pg_catalog.int8;
    owned pg_catalog.text;
    kept pg_catalog.text[] := '{}';
    dropped pg_catalog.text[] := '{}';
    msg pg_catalog.text;
BEGIN
    t := tenant._get(id);
    DELETE FROM tenant.tenants x WHERE x.id OPERATOR(pg_catalog.=) drop_tenant.id;
    SELECT a.oid INTO r FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) t.role_name;
    IF t.isolation OPERATOR(pg_catalog.=) 'schema' THEN
        SELECT n.oid INTO nsp FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) t.schema_name;
    END IF;
    IF nsp IS NOT NULL THEN
        IF coalesce(drop_objects, false) THEN
            owned := tenant._foreign_object(nsp, r);
            IF owned IS NOT NULL THEN
                RAISE EXCEPTION 'schema "%" of tenant "%" holds objects of other roles than the tenant''s (%): drop_tenant will not drop it', t.schema_name, t.id, owned
                    USING ERRCODE = '2BP01', HINT = 'Move or drop them first, or drop the tenant without drop_objects; nothing was dropped.';
            END IF;
            EXECUTE pg_catalog.format('DROP SCHEMA %I CASCADE', t.schema_name);
            dropped := dropped OPERATOR(pg_catalog.||) pg_catalog.format('schema %I', t.schema_name);
        ELSE
            SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) nsp
                       AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f,S}'::pg_catalog."char"[]))
                 OPERATOR(pg_catalog.+)
                   (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) nsp)
              INTO objects;
            kept := kept OPERATOR(pg_catalog.||) pg_catalog.format('schema %I (%s tables, views, sequences and functions)', t.schema_name, objects);
        END IF;
    END IF;
    IF r IS NOT NULL THEN
        IF coalesce(drop_objects, false)
           AND NOT EXISTS (SELECT FROM tenant.tenants x WHERE x.role_name OPERATOR(pg_catalog.=) t.role_name) THEN
            IF NOT pg_catalog.pg_has_role(r, 'tenant_app'::pg_catalog.name, 'MEMBER')
               OR t.role_name OPERATOR(pg_catalog.=) 'tenant_app'::pg_catalog.name
               OR tenant._role_problem(r) IS NOT NULL
               OR (SELECT a.rolcanlogin FROM pg_catalog.pg_roles a WHERE a.oid OPERATOR(pg_catalog.=) r) THEN
                RAISE EXCEPTION 'role "%" of tenant "%" is not a NOLOGIN application role: drop_tenant will not drop it', t.role_name, t.id
                    USING ERRCODE = '42501', HINT = 'Drop the tenant without drop_objects, then the role by hand if you mean it.';
            END IF;
            SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ') INTO owned
              FROM pg_catalog.pg_shdepend d
             WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) r
               AND d.deptype OPERATOR(pg_catalog.=) 'o'::pg_catalog."char"
               AND d.dbid OPERATOR(pg_catalog.=) (SELECT b.oid FROM pg_catalog.pg_database b
                                                    WHERE b.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
            IF owned IS NOT NULL THEN
                RAISE EXCEPTION 'role "%" of tenant "%" owns objects outside its schema: %', t.role_name, t.id, owned
                    USING ERRCODE = '2BP01', HINT = 'Drop or reassign them, then drop the tenant again; nothing was dropped.';
            END IF;
            -- What is left are privileges granted to it (USAGE on schema
            -- tenant, on shared schemas, tables): revoke them, then drop it.
            EXECUTE pg_catalog.format('DROP OWNED BY %I', t.role_name);
            EXECUTE pg_catalog.format('DROP ROLE %I', t.role_name);
            dropped := dropped OPERATOR(pg_catalog.||) pg_catalog.format('role %I', t.role_name);
        ELSE
            kept := kept OPERATOR(pg_catalog.||) pg_catalog.format('role %I', t.role_name);
        END IF;
    END IF;
    IF pg_catalog.cardinality(dropped) OPERATOR(pg_catalog.=) 0 AND pg_catalog.cardinality(kept) OPERATOR(pg_catalog.=) 0 THEN
        PERFORM pg_catalog.pg_notify('pg_tenant_catalog', t.id);
        RETURN;
    END IF;
    msg := pg_catalog.format('tenant "%s" dropped', t.id);
    IF pg_catalog.cardinality(dropped) OPERATOR(pg_catalog.>) 0 THEN
        msg := msg OPERATOR(pg_catalog.||) pg_catalog.format(' with its %s', pg_catalog.array_to_string(dropped, ' and '));
    END IF;
    IF pg_catalog.cardinality(kept) OPERATOR(pg_catalog.>) 0 THEN
        msg := msg OPERATOR(pg_catalog.||) pg_catalog.format('; left behind: %s (drop_tenant(%L, drop_objects => true) drops them)',
                                                             pg_catalog.array_to_string(kept, ', '), t.id);
    END IF;
    RAISE NOTICE '%', msg;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', t.id);
END
$fn$;
COMMENT ON FUNCTION tenant.drop_tenant IS 'pg_tenant: remove a tenant from the catalog (its rows stay); a NOTICE names the schema and role it leaves behind, which drop_objects => true drops too';

CREATE FUNCTION tenant.enable_tenant(id text) RETURNS tenant.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN tenant.alter_tenant(id, enabled => true);
COMMENT ON FUNCTION tenant.enable_tenant IS 'pg_tenant: let a tenant connect again';

CREATE FUNCTION tenant.disable_tenant(id text) RETURNS tenant.tenants
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
RETURN tenant.alter_tenant(id, enabled => false);
COMMENT ON FUNCTION tenant.disable_tenant IS 'pg_tenant: refuse new connections and contexts for a tenant';

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
            WHEN 'drop_tenant' THEN 'tenant.drop_tenant(pg_catalog.text, pg_catalog.bool)'
            WHEN 'create_tenant' THEN 'tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.name[])'
            WHEN 'alter_tenant' THEN 'tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[], pg_catalog.text, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.int4, pg_catalog.name[])'
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
CREATE FUNCTION tenant.provision_tenant(id text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
    r pg_catalog.oid;
    nsp pg_catalog.oid;
    owner_oid pg_catalog.oid;
    lr pg_catalog.oid;
    l pg_catalog.text;
    done pg_catalog.text[] := '{}';
    msg pg_catalog.text;
BEGIN
    t := tenant._get(id);
    IF t.isolation OPERATOR(pg_catalog.<>) 'schema' THEN
        RAISE EXCEPTION 'tenant "%" uses % isolation: provision_tenant provisions schema tenants', t.id, t.isolation
            USING ERRCODE = '22023';
    END IF;
    IF t.role_name IS NULL THEN
        RAISE EXCEPTION 'tenant "%" uses schema isolation but has no role_name', t.id
            USING ERRCODE = '22023', HINT = 'Give it one first: tenant.alter_tenant(id, role_name => ...).';
    END IF;
    SELECT a.oid INTO r FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) t.role_name;
    IF r IS NULL THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION IN ROLE tenant_app', t.role_name);
        SELECT a.oid INTO r FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) t.role_name;
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('created role %I (NOLOGIN, in tenant_app)', t.role_name);
    ELSE
        -- An existing role must already be a tenant role (42501/22023 otherwise).
        PERFORM tenant._check_roles(t.role_name, NULL);
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
                    WHERE n.nspname OPERATOR(pg_catalog.=) 'tenant'::pg_catalog.name
                      AND a.grantee OPERATOR(pg_catalog.=) r
                      AND a.privilege_type OPERATOR(pg_catalog.=) 'USAGE') THEN
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA tenant TO %I', t.role_name);
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('granted USAGE on schema tenant to %I', t.role_name);
    END IF;
    SELECT n.oid, n.nspowner INTO nsp, owner_oid FROM pg_catalog.pg_namespace n
     WHERE n.nspname OPERATOR(pg_catalog.=) t.schema_name;
    IF nsp IS NULL THEN
        EXECUTE pg_catalog.format('CREATE SCHEMA %I', t.schema_name);
        SELECT n.oid INTO nsp FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) t.schema_name;
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('created schema %I', t.schema_name);
    ELSIF pg_catalog.pg_has_role(owner_oid, 'tenant_app'::pg_catalog.name, 'MEMBER')
          AND NOT (SELECT w.rolsuper FROM pg_catalog.pg_roles w WHERE w.oid OPERATOR(pg_catalog.=) owner_oid) THEN
        RAISE EXCEPTION 'schema "%" of tenant "%" is owned by application role "%"', t.schema_name, t.id, pg_catalog.pg_get_userbyid(owner_oid)
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('A tenant role that owns its schema can GRANT it to other tenants: ALTER SCHEMA %I OWNER TO a role that never connects through the router, then provision again.', t.schema_name);
    ELSIF tenant._foreign_object(nsp, r) IS NOT NULL THEN
        RAISE EXCEPTION 'schema "%" holds objects of other roles than tenant "%"''s role (%): provision_tenant will not hand it to the tenant', t.schema_name, t.id, tenant._foreign_object(nsp, r)
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('An existing schema becomes a tenant''s only when everything in it is the tenant''s: ALTER ... OWNER TO %I what belongs to it, move the rest, then provision again.', t.role_name);
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
                WHERE n.oid OPERATOR(pg_catalog.=) nsp AND a.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid) THEN
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', t.schema_name);
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('revoked PUBLIC''s privileges on schema %I', t.schema_name);
    END IF;
    IF NOT pg_catalog.has_schema_privilege(r, nsp, 'USAGE') OR NOT pg_catalog.has_schema_privilege(r, nsp, 'CREATE') THEN
        EXECUTE pg_catalog.format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', t.schema_name, t.role_name);
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('granted USAGE and CREATE on schema %I to %I', t.schema_name, t.role_name);
    END IF;
    -- Only to application roles (members of tenant_app with no right
    -- beyond a tenant): tenant_admin must not gain a tenant's role, and
    -- its data, by listing itself in login_roles.
    FOREACH l IN ARRAY coalesce(t.login_roles, '{}'::pg_catalog.text[]) LOOP
        SELECT a.oid INTO lr FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) l;
        IF lr IS NULL OR pg_catalog.pg_has_role(lr, r, 'MEMBER') THEN
            CONTINUE;
        END IF;
        IF l OPERATOR(pg_catalog.=) 'tenant_app' OR NOT pg_catalog.pg_has_role(lr, 'tenant_app'::pg_catalog.name, 'MEMBER')
           OR tenant._role_problem(lr) IS NOT NULL THEN
            RAISE EXCEPTION 'login role "%" of tenant "%" is not an application role: provision_tenant grants tenant roles to application roles only', l, t.id
                USING ERRCODE = '42501',
                      HINT = pg_catalog.format('Make it one (tenant.create_app_role(%L)), or GRANT %I TO %I yourself if you mean it.', l, t.role_name, l);
        END IF;
        EXECUTE pg_catalog.format('GRANT %I TO %I', t.role_name, l);
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('granted %I to login role %I', t.role_name, l);
    END LOOP;
    IF pg_catalog.cardinality(done) OPERATOR(pg_catalog.=) 0 THEN
        msg := pg_catalog.format('tenant "%s" is already provisioned (role %I, schema %I): nothing changed', t.id, t.role_name, t.schema_name);
    ELSE
        msg := pg_catalog.format('tenant "%s" provisioned: %s', t.id, pg_catalog.array_to_string(done, '; '));
    END IF;
    RETURN msg;
END
$fn$;
COMMENT ON FUNCTION tenant.provision_tenant IS 'pg_tenant: create what a schema tenant needs (its role, its schema, USAGE and CREATE for the role, nothing for PUBLIC), idempotent; returns what it did';
REVOKE EXECUTE ON FUNCTION tenant._check_schemas(tenant.tenants, boolean, boolean), tenant._foreign_object(oid, oid),
    tenant.provision_tenant(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.provision_tenant(text) TO tenant_admin;

CREATE FUNCTION tenant._audit_schemas()
RETURNS TABLE (object text, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT quote_ident(t.role_name),
       format('role of tenant %s (schema isolation) is also the role of tenant %s: each one''s sessions reach the other''s schema and objects; fix: give each tenant a role of its own (tenant.alter_tenant(%L, role_name => ...), then tenant.provision_tenant(%L))',
              t.id, o.id, t.id, t.id)
  FROM tenant.tenants t
  JOIN tenant.tenants o ON o.id <> t.id AND o.role_name = t.role_name
 WHERE t.isolation = 'schema'
UNION ALL
-- USAGE on a tenant schema comes from its ACL (PUBLIC, a role and the
-- roles that inherit it) or from its owner's rights: only grantees other
-- than the tenant's role and a superuser owner are looked at, so a clean
-- database costs one ACL read per schema (1,000 schema tenants: 16 ms,
-- where asking has_schema_privilege for every pair of schema and tenant
-- role took 0.5 s). A tenant role that has another tenant role's
-- privileges (a member of it) is reported by the membership row of
-- audit() and refused by set_context.
(WITH reach AS (
    SELECT t.id, t.schema_name, t.role_name, g.grantee
      FROM tenant.tenants t
      JOIN pg_namespace n ON n.nspname = t.schema_name
      CROSS JOIN LATERAL (
          SELECT a.grantee FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
           WHERE a.privilege_type = 'USAGE'
          UNION
          SELECT n.nspowner) g
      LEFT JOIN pg_roles gr ON gr.oid = g.grantee
     WHERE t.isolation = 'schema'
       AND gr.rolname IS DISTINCT FROM t.role_name
       AND NOT coalesce(gr.rolsuper, false)
)
SELECT DISTINCT quote_ident(e.rolname),
       format('role of tenant %s can reach schema %I of tenant %s (USAGE): it reads whatever that tenant granted on its objects; fix: REVOKE USAGE ON SCHEMA %I FROM %s (or from PUBLIC, or from the role it has it through)',
              o.id, x.schema_name, x.id, x.schema_name, quote_ident(e.rolname))
  FROM reach x
  JOIN tenant.tenants o ON o.id <> x.id AND o.role_name IS NOT NULL AND o.role_name IS DISTINCT FROM x.role_name
  JOIN pg_roles e ON e.rolname = o.role_name
 WHERE x.grantee = 0 OR x.grantee = e.oid OR pg_has_role(e.oid, x.grantee, 'USAGE'))
UNION ALL
-- CREATE on a shared schema, asked once per shared schema and tenant role.
(WITH creators AS (
    SELECT s.oid AS nsp, s.nspname, e.rolname, o.id AS role_of
      FROM (SELECT DISTINCT unnest(t.shared_schemas) AS name FROM tenant.tenants t WHERE t.isolation = 'schema') sh
      JOIN pg_namespace s ON s.nspname = sh.name
      JOIN tenant.tenants o ON o.role_name IS NOT NULL
      JOIN pg_roles e ON e.rolname = o.role_name
     WHERE has_schema_privilege(e.oid, s.oid, 'CREATE')
)
SELECT quote_ident(c.rolname),
       format('role of tenant %s may create objects in shared schema %I of tenant %s: it can plant functions and operators on that tenant''s search_path; fix: REVOKE CREATE ON SCHEMA %I FROM %s (or from PUBLIC)',
              c.role_of, c.nspname, t.id, c.nspname, quote_ident(c.rolname))
  FROM creators c
  JOIN tenant.tenants t ON t.isolation = 'schema' AND c.nspname = ANY (t.shared_schemas))
UNION ALL
SELECT quote_ident(n.nspname),
       format('schema of tenant %s is owned by %s, an application or tenant role (member of tenant_app): its owner can GRANT USAGE on it to other tenants; fix: ALTER SCHEMA %I OWNER TO a role that never connects through the router (then SELECT tenant.provision_tenant(%L))',
              t.id, quote_ident(w.rolname), n.nspname, t.id)
  FROM tenant.tenants t
  JOIN pg_namespace n ON n.nspname = t.schema_name
  JOIN pg_roles w ON w.oid = n.nspowner
 WHERE t.isolation = 'schema' AND NOT w.rolsuper
   AND pg_has_role(w.oid, 'tenant_app', 'MEMBER')
UNION ALL
SELECT x.object,
       format('%s in schema %I of tenant %s is owned by %s, not by the tenant''s role %s: it runs or reads with another role''s privileges inside the tenant''s schema; fix: %s',
              x.kind, t.schema_name, t.id, quote_ident(w.rolname), coalesce(quote_ident(t.role_name), '(none)'),
              CASE WHEN t.role_name IS NULL THEN pg_catalog.format('give the tenant a role: tenant.alter_tenant(%L, role_name => ...)', t.id)
                   ELSE pg_catalog.format('ALTER %s %s OWNER TO %I (or drop it)', x.alter, x.object, t.role_name) END)
  FROM tenant.tenants t
  JOIN pg_namespace n ON n.nspname = t.schema_name
  -- A join, not a lateral scan per schema: pg_class has no index leading
  -- with relnamespace (1,000 schema tenants: 0.5 s as a lateral scan).
  JOIN (
      SELECT c.relnamespace AS nsp, c.oid::regclass::text AS object, c.relowner AS owner,
             CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                            WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
             CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                            WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS alter
        FROM pg_class c
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      UNION ALL
      SELECT p.pronamespace, p.oid::regprocedure::text, p.proowner,
             CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
             CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END
        FROM pg_proc p) x ON x.nsp = n.oid
  JOIN pg_roles w ON w.oid = x.owner
 WHERE t.isolation = 'schema' AND w.rolname IS DISTINCT FROM t.role_name
$fn$;
COMMENT ON FUNCTION tenant._audit_schemas IS 'pg_tenant: the schema isolation rows of tenant.audit()';
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
UNION ALL
-- 0.8.0: schema isolation (tenant._audit_schemas).
SELECT s.object, s.problem FROM tenant._audit_schemas() s
ORDER BY 1, 2
$fn$;
COMMENT ON FUNCTION tenant.audit IS 'pg_tenant: one row per tenant-isolation problem; empty when safe';


-- 0.8.0: database isolation (database.sql; README "Database isolation").
-- tenant.context_document, tenant.database_binding, tenant.bind_database
-- and the trigger that keeps a bound database free of tenants; then
-- tenant.router_catalog and tenant.router_catalog_page return the sealed
-- context of database tenants as a new last column (their result type
-- changes: dropped and created again with the same privileges).
-- The sealed context of a tenant: its catalog row with the defaults merged
-- exactly as set_context reads them in the catalog database (admission.rs
-- load_tenant): the tenant's value, else the defaults row's, else the
-- built-in default. Fields added by later releases are read through
-- to_jsonb, so a missing column is a missing (null) field, never an error.
-- NULL for a tenant that does not exist. PL/pgSQL, so that a connection
-- (the router's) plans the query once, not at every call (0.7 ms).
CREATE FUNCTION tenant.context_document(tenant_id text) RETURNS pg_catalog.jsonb
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
    'updated_at', t.updated_at)
FROM tenant.tenants t,
     LATERAL (SELECT pg_catalog.to_jsonb(t) AS j,
                     coalesce((SELECT pg_catalog.to_jsonb(d) FROM tenant.defaults d LIMIT 1),
                              '{}'::pg_catalog.jsonb) AS dj) x
WHERE t.id OPERATOR(pg_catalog.=) tenant_id);
END
$fn$;
COMMENT ON FUNCTION tenant.context_document IS 'pg_tenant: the sealed context of a tenant (its row with the defaults merged), which tenant-router signs for tenant.set_context_sealed in the tenant''s database';

-- Which tenant this database serves (a tenant database), or no row (a
-- catalog database, or a database that serves no tenant).
CREATE TABLE tenant.database_binding (
    singleton pg_catalog.bool PRIMARY KEY DEFAULT true CHECK (singleton),
    tenant_id pg_catalog.text NOT NULL
              CONSTRAINT tenant_id_pattern CHECK (tenant_id OPERATOR(pg_catalog.~) '^[a-z0-9][a-z0-9_-]{0,62}$'::pg_catalog.text),
    bound_at  pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tenant.database_binding IS 'pg_tenant: the tenant this database serves (tenant.bind_database); set_context_sealed accepts only that tenant''s contexts';
SELECT pg_catalog.pg_extension_config_dump('tenant.database_binding', '');
REVOKE ALL ON tenant.database_binding FROM PUBLIC;
GRANT SELECT ON tenant.database_binding TO tenant_admin;

-- Make this database the tenant database of tenant_id. Only a superuser or
-- the extension's owner. Idempotent: true when it bound the database,
-- false when it already served that tenant. Refuses (42501) to rebind a
-- database to another tenant, and (55000) when this database is a tenant
-- catalog (tenant.tenants has rows): a database is a catalog or a tenant
-- database, never both.
CREATE FUNCTION tenant.bind_database(tenant_id text) RETURNS pg_catalog.bool
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    bound pg_catalog.text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER AND r.rolsuper)
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension e
                        WHERE e.extname OPERATOR(pg_catalog.=) 'pg_tenant'::pg_catalog.name
                          AND pg_catalog.pg_has_role(CURRENT_USER, e.extowner, 'USAGE')) THEN
        RAISE EXCEPTION 'only a superuser or the owner of pg_tenant may bind a database to a tenant'
            USING ERRCODE = '42501';
    END IF;
    IF tenant_id IS NULL OR tenant_id OPERATOR(pg_catalog.!~) '^[a-z0-9][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid tenant id "%"', tenant_id
            USING ERRCODE = '22023',
                  HINT = 'Tenant ids are 1-63 characters of a-z, 0-9, "_" and "-", starting with a letter or digit.';
    END IF;
    -- Serialized with create_tenant (whose insert the trigger below
    -- refuses once bound) and with another bind_database.
    LOCK TABLE tenant.tenants IN SHARE MODE;
    LOCK TABLE tenant.database_binding IN EXCLUSIVE MODE;
    IF EXISTS (SELECT FROM tenant.tenants) THEN
        RAISE EXCEPTION 'database "%" is a tenant catalog (its tenant.tenants has rows) and cannot be the database of tenant "%"',
                pg_catalog.current_database(), tenant_id
            USING ERRCODE = '55000',
                  HINT = 'A database is either the catalog or a tenant database: bind a database of the tenant''s own (tenant-router tenants provision creates one).';
    END IF;
    SELECT b.tenant_id INTO bound FROM tenant.database_binding b;
    IF bound OPERATOR(pg_catalog.=) tenant_id THEN
        RETURN false;
    ELSIF bound IS NOT NULL THEN
        RAISE EXCEPTION 'database "%" is bound to tenant "%" and cannot serve tenant "%"',
                pg_catalog.current_database(), bound, tenant_id
            USING ERRCODE = '42501',
                  HINT = 'A tenant database serves one tenant for its whole life; give the other tenant a database of its own.';
    END IF;
    INSERT INTO tenant.database_binding (tenant_id) VALUES (tenant_id);
    RETURN true;
END
$fn$;
COMMENT ON FUNCTION tenant.bind_database IS 'pg_tenant: make this database the tenant database of a tenant (superuser or extension owner; idempotent; never rebinds)';

-- A bound database is no catalog: tenants cannot be created in it.
CREATE FUNCTION tenant._refuse_catalog_in_tenant_database() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    bound pg_catalog.text;
BEGIN
    SELECT b.tenant_id INTO bound FROM tenant.database_binding b;
    IF bound IS NOT NULL THEN
        RAISE EXCEPTION 'database "%" is the tenant database of tenant "%": tenants are created in the catalog database',
                pg_catalog.current_database(), bound
            USING ERRCODE = '55000',
                  HINT = 'A database is either the catalog or a tenant database: run create_tenant in the database tenant-router''s catalog_url names.';
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION tenant._refuse_catalog_in_tenant_database IS 'pg_tenant: refuses rows in tenant.tenants of a tenant database';
CREATE TRIGGER refuse_in_tenant_database BEFORE INSERT ON tenant.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenant._refuse_catalog_in_tenant_database();

REVOKE EXECUTE ON FUNCTION tenant.context_document(text), tenant.bind_database(text),
    tenant._refuse_catalog_in_tenant_database() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.context_document(text) TO tenant_admin;

-- Their privileges are kept: what an operator granted or revoked on the old
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
        'tenant.router_catalog(pg_catalog.text)'::pg_catalog.regprocedure,
        'tenant.router_catalog_page(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.bool)'::pg_catalog.regprocedure]);
DROP FUNCTION tenant.router_catalog(pg_catalog.text);
DROP FUNCTION tenant.router_catalog_page(pg_catalog.text, pg_catalog.int4, pg_catalog.text, pg_catalog.bool);
CREATE FUNCTION tenant.router_catalog(only_id text DEFAULT NULL)
RETURNS TABLE (id text, enabled boolean, isolation text, database_name text,
               schema_name text, max_connections integer, qps_limit integer,
               burst_multiplier real, max_query_ms integer, max_result_bytes bigint,
               dedicated_pool boolean, pool_size integer, min_idle integer, pool_mode text,
               client_idle_timeout_ms integer, context_document text)
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
               CASE WHEN l.isolation OPERATOR(pg_catalog.=) 'database'::pg_catalog.text
                    THEN tenant.context_document(l.id)::pg_catalog.text END
        FROM tenant.tenant_list l
        WHERE l.id OPERATOR(pg_catalog.=) only_id;
    ELSE
        RETURN QUERY
        SELECT l.id, l.enabled, l.isolation, l.database_name::text, l.schema_name::text,
               l.max_connections, l.qps_limit, l.burst_multiplier, l.max_query_ms, l.max_result_bytes,
               l.dedicated_pool, l.pool_size, l.min_idle, l.pool_mode, l.client_idle_timeout_ms,
               CASE WHEN l.isolation OPERATOR(pg_catalog.=) 'database'::pg_catalog.text
                    THEN tenant.context_document(l.id)::pg_catalog.text END
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
               client_idle_timeout_ms integer, context_document text)
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
                   CASE WHEN l.isolation OPERATOR(pg_catalog.=) ''database''::pg_catalog.text
                        THEN tenant.context_document(l.id)::pg_catalog.text END
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

-- The sealed forms of set_context (sealed.rs), functions of the shared
-- library.
CREATE FUNCTION tenant."set_context_sealed"(
	"tenant" TEXT, /* & str */
	"token" TEXT, /* & str */
	"document" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_context_sealed_wrapper';

CREATE FUNCTION tenant."set_context_sealed"(
	"tenant" TEXT, /* & str */
	"token" TEXT, /* & str */
	"subject" TEXT, /* & str */
	"claims" TEXT, /* & str */
	"document" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_context_sealed_subject_wrapper';

-- 0.8.0: the migration runner's role lock (rolelock.rs). A superuser that
-- runs a migration as a tenant's role locks the role for the transaction,
-- so the tenant's own code (a trigger, a function the script calls) cannot
-- RESET ROLE or SET SESSION AUTHORIZATION back to the superuser.
CREATE FUNCTION tenant."lock_role_for_transaction"(
	"role" TEXT /* & str */
) RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'lock_role_for_transaction_wrapper';

-- ---------------------------------------------------------------------------
-- PostgreSQL 15-18 (issue #27).
--
-- 1. Role membership inheritance is set per grant from PostgreSQL 16
--    (pg_auth_members.inherit_option; ALTER ROLE ... NOINHERIT only sets the
--    default for later grants): audit()'s fix for a role that inherits
--    another tenant's role names this server's statement
--    (tenant._inherit_fix).
-- 2. What tenant.protect protected is recorded in tenant.protected (dumped
--    by pg_dump), and a table's pg_tenant_isolation policy is compared with
--    protect's as expression trees (tenant._policy_reference,
--    tenant._policy_shape, tenant._is_protects_policy), no longer as
--    deparsed text: _tenant_column, _isolates, protect, unprotect and
--    audit() below are rls.sql's, CREATE turned into CREATE OR REPLACE
--    (audit() with every 0.8.0 change above it); COPY's eligibility check
--    (copy.rs) reads the same.
-- ---------------------------------------------------------------------------
-- 0.8.0: how to stop role `member_role` inheriting the privileges of role
-- `target_role`. Up to PostgreSQL 15 inheritance is a property of the member
-- (ALTER ROLE ... NOINHERIT); from 16 it is a property of each grant
-- (pg_auth_members.inherit_option; ALTER ROLE ... NOINHERIT only sets the
-- default for later grants), so the fix is GRANT ... WITH INHERIT FALSE on
-- the member's own inheriting grant that leads to `target_role` (the direct one
-- when there is one). inherit_option is read through to_jsonb, so this
-- parses on 15, where the column does not exist.
CREATE FUNCTION tenant._inherit_fix(member_role pg_catalog.oid, target_role pg_catalog.oid) RETURNS pg_catalog.text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT CASE
        WHEN pg_catalog.current_setting('server_version_num')::pg_catalog.int4 OPERATOR(pg_catalog.<) 160000
            THEN pg_catalog.format('ALTER ROLE %s NOINHERIT', pg_catalog.quote_ident(m.rolname))
        ELSE pg_catalog.format('GRANT %s TO %s WITH INHERIT FALSE (PostgreSQL 16+: inheritance is set per grant, ALTER ROLE NOINHERIT only changes later grants)',
                               pg_catalog.quote_ident(coalesce(
                                   (SELECT g.rolname
                                      FROM pg_catalog.pg_auth_members a
                                      JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.roleid
                                     WHERE a.member OPERATOR(pg_catalog.=) $1
                                       AND coalesce((pg_catalog.to_jsonb(a.*) OPERATOR(pg_catalog.->>) 'inherit_option')::pg_catalog.bool, true)
                                       AND (a.roleid OPERATOR(pg_catalog.=) $2
                                            OR pg_catalog.pg_has_role(a.roleid, $2, 'USAGE'))
                                     ORDER BY a.roleid OPERATOR(pg_catalog.<>) $2, g.rolname
                                     LIMIT 1),
                                   t.rolname)),
                               pg_catalog.quote_ident(m.rolname))
    END
    FROM pg_catalog.pg_roles m, pg_catalog.pg_roles t
    WHERE m.oid OPERATOR(pg_catalog.=) $1 AND t.oid OPERATOR(pg_catalog.=) $2
$fn$;
COMMENT ON FUNCTION tenant._inherit_fix IS 'pg_tenant: the statement that stops a role inheriting another''s privileges, for this server''s version';

-- 0.8.0: what tenant.protect protected, recorded in the catalog (a table
-- and its tenant column), so that no PostgreSQL version's deparser decides
-- which tables are protected and by which column. Whether a table's
-- pg_tenant_isolation policy is still the one protect wrote is decided by
-- comparing its expression trees (pg_policy.polqual/polwithcheck) with
-- those of reference policies the extension writes the same way on
-- tenant._policy_reference (one per tenant column type), in this database
-- and on this server: the same parse of the same SQL gives the same tree,
-- whatever the version, after pg_dump/restore (function oids differ) and
-- after pg_upgrade (the node format differs). Only what differs between two
-- tables by construction is ignored: the column's number, text positions,
-- typmod and collation (as deparsed text ignored them).
-- relid is a regclass and the column a name, so pg_dump (which dumps this
-- table's rows) and pg_restore carry them to the new oids and numbers.
CREATE TABLE tenant.protected (
    relid pg_catalog.regclass PRIMARY KEY,
    tenant_column pg_catalog.name NOT NULL
);
COMMENT ON TABLE tenant.protected IS 'pg_tenant: the tables tenant.protect protected and their tenant columns';
SELECT pg_catalog.pg_extension_config_dump('tenant.protected', '');
REVOKE ALL ON tenant.protected FROM PUBLIC;
-- pg_policy is readable by everyone; so is this.
GRANT SELECT ON tenant.protected TO PUBLIC;

CREATE TABLE tenant._policy_reference (
    c_text pg_catalog.text, c_varchar pg_catalog.varchar, c_name pg_catalog.name, c_uuid pg_catalog.uuid,
    c_int2 pg_catalog.int2, c_int4 pg_catalog.int4, c_int8 pg_catalog.int8
);
COMMENT ON TABLE tenant._policy_reference IS 'pg_tenant: no rows; its policies are tenant.protect''s, one per tenant column type, to compare protected tables'' policies with';
REVOKE ALL ON tenant._policy_reference FROM PUBLIC;
CREATE POLICY c_text ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_text = (SELECT tenant.current_tenant_id())) WITH CHECK (c_text = (SELECT tenant.current_tenant_id()));
CREATE POLICY c_varchar ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_varchar = (SELECT tenant.current_tenant_id())) WITH CHECK (c_varchar = (SELECT tenant.current_tenant_id()));
CREATE POLICY c_name ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_name = (SELECT tenant.current_tenant_id())) WITH CHECK (c_name = (SELECT tenant.current_tenant_id()));
CREATE POLICY c_uuid ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_uuid = (SELECT tenant.current_tenant_uuid())) WITH CHECK (c_uuid = (SELECT tenant.current_tenant_uuid()));
CREATE POLICY c_int2 ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_int2 = (SELECT tenant.current_tenant_bigint())) WITH CHECK (c_int2 = (SELECT tenant.current_tenant_bigint()));
CREATE POLICY c_int4 ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_int4 = (SELECT tenant.current_tenant_bigint())) WITH CHECK (c_int4 = (SELECT tenant.current_tenant_bigint()));
CREATE POLICY c_int8 ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_int8 = (SELECT tenant.current_tenant_bigint())) WITH CHECK (c_int8 = (SELECT tenant.current_tenant_bigint()));

-- An expression tree (nodeToString form) with what differs between two
-- tables by construction taken out: text positions, typmods, collations,
-- and the number `attnum` of the tenant column (written as *).
CREATE FUNCTION tenant._policy_shape(tree pg_catalog.pg_node_tree, attnum pg_catalog.int2) RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT pg_catalog.regexp_replace(
         pg_catalog.regexp_replace(tree::pg_catalog.text,
           ' :(location|stmt_location|stmt_len|vartypmod|varcollid|inputcollid|resultcollid) -?[0-9]+', '', 'g'),
         ' :(varattno|varattnosyn) ' OPERATOR(pg_catalog.||) attnum OPERATOR(pg_catalog.||) '([ }])', ' :\1 *\2', 'g')
$fn$;

-- Whether table `tbl` has the pg_tenant_isolation policy tenant.protect
-- writes for tenant column `col`: FOR ALL, TO PUBLIC, permissive, and USING
-- and WITH CHECK the trees of the reference policy for the column's type.
-- A policy with that name that says anything else (`USING (true)`,
-- `org_id = org_id`) does not isolate tenants.
CREATE FUNCTION tenant._is_protects_policy(tbl pg_catalog.regclass, col pg_catalog.name) RETURNS pg_catalog.bool
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT EXISTS (
    SELECT 1
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_policy p ON p.polrelid OPERATOR(pg_catalog.=) a.attrelid
                                 AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name
      JOIN pg_catalog.pg_attribute ra ON ra.attrelid OPERATOR(pg_catalog.=) 'tenant._policy_reference'::pg_catalog.regclass
                                     AND ra.attnum OPERATOR(pg_catalog.>) 0
                                     AND ra.atttypid OPERATOR(pg_catalog.=) a.atttypid
      JOIN pg_catalog.pg_policy r ON r.polrelid OPERATOR(pg_catalog.=) ra.attrelid
                                 AND r.polname OPERATOR(pg_catalog.=) ra.attname
     WHERE a.attrelid OPERATOR(pg_catalog.=) tbl
       AND a.attname OPERATOR(pg_catalog.=) col AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
       AND p.polcmd OPERATOR(pg_catalog.=) '*'::pg_catalog."char" AND p.polpermissive
       AND p.polroles OPERATOR(pg_catalog.=) '{0}'::pg_catalog.oid[]
       AND tenant._policy_shape(p.polqual, a.attnum) OPERATOR(pg_catalog.=) tenant._policy_shape(r.polqual, ra.attnum)
       AND tenant._policy_shape(p.polwithcheck, a.attnum) OPERATOR(pg_catalog.=) tenant._policy_shape(r.polwithcheck, ra.attnum))
$fn$;

-- Record (or forget) what protect/unprotect did, for the tables `rels`:
-- protect and unprotect run as their caller, who may not write
-- tenant.protected, so these run as the extension's owner, and write only
-- what the catalog shows true: a table is recorded only while it has
-- protect's policy for that column, forgotten only once it has no
-- pg_tenant_isolation policy (or is gone).
CREATE FUNCTION tenant._record_protected(rels pg_catalog.regclass[], col pg_catalog.name) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
INSERT INTO tenant.protected AS t (relid, tenant_column)
SELECT DISTINCT r, col FROM pg_catalog.unnest(rels) r WHERE tenant._is_protects_policy(r, col)
ON CONFLICT (relid) DO UPDATE SET tenant_column = excluded.tenant_column
$fn$;
CREATE FUNCTION tenant._forget_protected(rels pg_catalog.regclass[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DELETE FROM tenant.protected t
 WHERE t.relid OPERATOR(pg_catalog.=) ANY (rels)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                    WHERE p.polrelid OPERATOR(pg_catalog.=) t.relid
                      AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name)
$fn$;
-- Dropped tables leave the record (their oid could name a new table later).
CREATE FUNCTION tenant._forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    DELETE FROM tenant.protected t
     WHERE t.relid::pg_catalog.oid IN (SELECT d.objid FROM pg_catalog.pg_event_trigger_dropped_objects() d
                                        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                          AND d.objsubid OPERATOR(pg_catalog.=) 0);
END
$fn$;
REVOKE EXECUTE ON FUNCTION tenant._forget_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER pg_tenant_forget_dropped ON sql_drop
    EXECUTE FUNCTION tenant._forget_dropped();

-- Backfill, once: every table whose pg_tenant_isolation policy is the one
-- protect writes (compared as trees, as from now on) for one of its columns
-- is recorded with that column. A policy with that name that is not
-- protect's was reported by audit() before and still is.
INSERT INTO tenant.protected (relid, tenant_column)
SELECT DISTINCT ON (p.polrelid) p.polrelid::pg_catalog.regclass, a.attname
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.polrelid
                                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
 WHERE p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name
   AND p.polrelid OPERATOR(pg_catalog.<>) 'tenant._policy_reference'::pg_catalog.regclass
   AND tenant._is_protects_policy(p.polrelid::pg_catalog.regclass, a.attname)
 ORDER BY p.polrelid, a.attnum;

-- The tenant column of a table protected by tenant.protect, as protect
-- recorded it (0.8.0: read from tenant.protected, no longer recognised in
-- the policy's deparsed text). Not from the column default protect also
-- sets: a default may be changed or dropped without touching isolation.
-- NULL when protect never protected the table.
CREATE OR REPLACE FUNCTION tenant._tenant_column(tbl regclass) RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT r.tenant_column FROM tenant.protected r WHERE r.relid OPERATOR(pg_catalog.=) tbl
$fn$;

-- Whether a table protect protected still has exactly the
-- pg_tenant_isolation policy protect wrote (tenant._is_protects_policy:
-- compared as expression trees with the reference policy of its column's
-- type). A policy with that name that says anything else, or on a table
-- protect never protected, does not count: audit() reports it and
-- pg_tenant_protect_children replaces it.
CREATE OR REPLACE FUNCTION tenant._isolates(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT EXISTS (SELECT 1 FROM tenant.protected r
                WHERE r.relid OPERATOR(pg_catalog.=) tbl
                  AND tenant._is_protects_policy(tbl, r.tenant_column))
$fn$;

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
    -- 0.8.0: recorded before the first ALTER TABLE too (the trigger reads it).
    PERFORM tenant._record_protected(rels, tenant_column);
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
    PERFORM tenant._forget_protected(rels);
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

CREATE OR REPLACE FUNCTION tenant.audit()
RETURNS TABLE (object text, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
WITH RECURSIVE tables AS (
    -- tables with a tenant_id column, and tables with our policy on any column
    SELECT c.oid, c.oid::regclass::text AS name, c.relrowsecurity, c.relforcerowsecurity,
           coalesce(
             (SELECT a.attnum FROM tenant.protected r JOIN pg_attribute a ON a.attrelid = r.relid
               AND a.attname = r.tenant_column AND NOT a.attisdropped
              WHERE r.relid = c.oid),
             (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)) AS attnum
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant')
      AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
           OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation')
           OR EXISTS (SELECT 1 FROM tenant.protected r WHERE r.relid = c.oid))
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
       format('policy pg_tenant_isolation is not the one tenant.protect writes (FOR ALL TO PUBLIC, USING and WITH CHECK comparing the tenant column with the tenant context)%s: whatever it says decides which tenants'' rows are read and written; fix: SELECT tenant.protect(%L, %L)',
              CASE WHEN tenant._tenant_column(c.oid) IS NOT NULL
                   THEN format(' (tenant.protect protected it on column %I; it was altered since)', tenant._tenant_column(c.oid)) END,
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
            THEN format('login role inherits the privileges of role %s of tenant %s: set_context refuses it for tenants without a role of their own; fix: %s (set_context still switches to a tenant''s role), or separate login roles',
                        quote_ident(g.rolname), x.id, tenant._inherit_fix(e.oid, g.oid))
            ELSE format('role runs tenant sessions and has the privileges of role %s of tenant %s: set_context refuses it; fix: REVOKE %s FROM %s, or %s',
                        quote_ident(g.rolname), x.id, quote_ident(g.rolname), quote_ident(e.rolname), tenant._inherit_fix(e.oid, g.oid))
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
UNION ALL
-- 0.8.0: schema isolation (tenant._audit_schemas).
SELECT s.object, s.problem FROM tenant._audit_schemas() s
ORDER BY 1, 2
$fn$;
COMMENT ON FUNCTION tenant.audit IS 'pg_tenant: one row per tenant-isolation problem; empty when safe';

-- ---------------------------------------------------------------------
-- Schema isolation, review: a tenant's schema must not be on other
-- roles' search_path. tenant_admin could name a tenant's schema after a
-- role (that role's "$user" schema, first on PostgreSQL's default
-- search_path) or after a schema a database or role search_path setting
-- names; provision_tenant created it and gave the tenant's role CREATE
-- there, and a superuser's unqualified names then found the tables and
-- exact-type overloads the tenant planted (its code ran as the
-- superuser). create_tenant/alter_tenant and provision_tenant refuse such
-- a schema (42501, tenant._schema_on_foreign_path), audit() reports one.
-- A disabled row on a reserved schema (public, tenant, pg_*, "$user":
-- tenant._reserved_schema), such as one stored before 0.8.0, can be
-- disabled again; provision_tenant and drop_tenant(drop_objects) refuse
-- it enabled or not. "$user" is no shared schema. audit() also reports a
-- SECURITY DEFINER function without a search_path of its own that a
-- schema tenant's role may execute (a tenant points it at another
-- tenant's schema, or at objects it planted in its own).
-- drop_tenant(drop_objects) drops only a role provision_tenant made for
-- that tenant (its COMMENT ON ROLE mark): a tenant_admin member naming an
-- operator's NOLOGIN application role (a group of login roles) as a
-- tenant's role_name had it dropped with every grant it held. Nor does
-- it drop a schema that objects outside it depend on (an operator's view
-- over a tenant's table: DROP SCHEMA ... CASCADE dropped it too; 2BP01,
-- tenant._outside_dependent).
-- ---------------------------------------------------------------------
CREATE FUNCTION tenant._reserved_schema(s pg_catalog.name) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT s OPERATOR(pg_catalog.=) ANY ('{pg_catalog,information_schema,tenant,public,$user}'::pg_catalog.name[])
       OR s OPERATOR(pg_catalog.~~) 'pg\_%'
$fn$;

CREATE FUNCTION tenant._schema_on_foreign_path(s pg_catalog.name, r pg_catalog.name) RETURNS pg_catalog.text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT coalesce(
    (SELECT pg_catalog.format('it is the "$user" schema of role %I, first on that role''s default search_path', a.rolname)
       FROM pg_catalog.pg_roles a
      WHERE a.rolname OPERATOR(pg_catalog.=) s AND a.rolname IS DISTINCT FROM r),
    (SELECT pg_catalog.format('the search_path set for %s names it',
                              CASE WHEN d.setrole OPERATOR(pg_catalog.=) 0::pg_catalog.oid AND d.setdatabase OPERATOR(pg_catalog.=) 0::pg_catalog.oid THEN 'every role'
                                   WHEN d.setrole OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                                   THEN pg_catalog.format('database %I', (SELECT b.datname FROM pg_catalog.pg_database b WHERE b.oid OPERATOR(pg_catalog.=) d.setdatabase))
                                   ELSE pg_catalog.format('role %I', pg_catalog.pg_get_userbyid(d.setrole)) END)
       FROM pg_catalog.pg_db_role_setting d
      CROSS JOIN LATERAL pg_catalog.unnest(d.setconfig) c(setting)
      WHERE c.setting OPERATOR(pg_catalog.~~) 'search\_path=%'
        AND (d.setrole OPERATOR(pg_catalog.=) 0::pg_catalog.oid OR pg_catalog.pg_get_userbyid(d.setrole) IS DISTINCT FROM r::pg_catalog.text)
        AND s OPERATOR(pg_catalog.=) ANY (SELECT pg_catalog.btrim(e, ' "')::pg_catalog.name
                                            FROM pg_catalog.regexp_split_to_table(pg_catalog.substr(c.setting, 13), ',') e)
      ORDER BY d.setdatabase, d.setrole LIMIT 1))
$fn$;

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
    IF t.client_idle_timeout_ms OPERATOR(pg_catalog.<) 0 THEN RAISE EXCEPTION 'client_idle_timeout_ms must be >= 0 (0: no limit), got %', t.client_idle_timeout_ms USING ERRCODE = '22023'; END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION tenant._check_schemas(t tenant.tenants, own boolean, shared boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    s pg_catalog.name;
    other pg_catalog.text;
BEGIN
    IF own AND t.role_name IS NOT NULL THEN
        SELECT x.id INTO other FROM tenant.tenants x
         WHERE x.id OPERATOR(pg_catalog.<>) t.id
           AND x.role_name OPERATOR(pg_catalog.=) t.role_name
           AND (x.isolation OPERATOR(pg_catalog.=) 'schema' OR t.isolation OPERATOR(pg_catalog.=) 'schema')
         ORDER BY x.id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'role "%" of tenant "%" is already the role of tenant "%"', t.role_name, t.id, other
                USING ERRCODE = '22023', HINT = 'A schema tenant''s role reaches its schema: give each tenant a role of its own.';
        END IF;
    END IF;
    IF own AND t.isolation OPERATOR(pg_catalog.=) 'schema' THEN
        SELECT x.id INTO other FROM tenant.tenants x
         WHERE x.id OPERATOR(pg_catalog.<>) t.id
           AND ((x.isolation OPERATOR(pg_catalog.=) 'schema' AND x.schema_name OPERATOR(pg_catalog.=) t.schema_name)
                OR t.schema_name OPERATOR(pg_catalog.=) ANY (x.shared_schemas))
         ORDER BY x.id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'schema "%" of tenant "%" is already used by tenant "%"', t.schema_name, t.id, other
                USING ERRCODE = '22023', HINT = 'Each schema tenant needs a schema of its own, shared with no other tenant.';
        END IF;
        other := tenant._schema_on_foreign_path(t.schema_name, t.role_name);
        IF other IS NOT NULL THEN
            RAISE EXCEPTION 'schema "%" cannot be the schema of tenant "%": %', t.schema_name, t.id, other
                USING ERRCODE = '42501',
                      HINT = 'The tenant''s role may create in its schema: objects it planted there would run in that role''s sessions. Choose another schema name.';
        END IF;
    END IF;
    IF shared THEN
        FOREACH s IN ARRAY coalesce(t.shared_schemas, '{}'::pg_catalog.name[]) LOOP
            IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) s) THEN
                RAISE EXCEPTION 'shared schema "%" of tenant "%" does not exist', s, t.id USING ERRCODE = '22023';
            END IF;
            IF s OPERATOR(pg_catalog.=) t.schema_name THEN
                RAISE EXCEPTION 'shared schema "%" of tenant "%" is its own schema', s, t.id USING ERRCODE = '22023';
            END IF;
            SELECT x.id INTO other FROM tenant.tenants x
             WHERE x.id OPERATOR(pg_catalog.<>) t.id AND x.isolation OPERATOR(pg_catalog.=) 'schema'
               AND x.schema_name OPERATOR(pg_catalog.=) s
             ORDER BY x.id LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'shared schema "%" of tenant "%" is the schema of tenant "%"', s, t.id, other
                    USING ERRCODE = '22023', HINT = 'A tenant''s schema is never shared: list reference schemas only.';
            END IF;
        END LOOP;
    END IF;
END
$fn$;

CREATE FUNCTION tenant._outside_dependent(nsp pg_catalog.oid) RETURNS pg_catalog.text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
WITH inside(classid, objid) AS (
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, c.oid FROM pg_catalog.pg_class c
     WHERE c.relnamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass::pg_catalog.oid, p.oid FROM pg_catalog.pg_proc p
     WHERE p.pronamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL
    SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, y.oid FROM pg_catalog.pg_type y
     WHERE y.typnamespace OPERATOR(pg_catalog.=) nsp
)
SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM inside i
  JOIN pg_catalog.pg_depend d ON d.refclassid OPERATOR(pg_catalog.=) i.classid AND d.refobjid OPERATOR(pg_catalog.=) i.objid
 WHERE d.deptype OPERATOR(pg_catalog.=) 'n'::pg_catalog."char"
   AND CASE d.classid
         WHEN 'pg_catalog.pg_class'::pg_catalog.regclass THEN
              (SELECT c.relnamespace FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_rewrite'::pg_catalog.regclass THEN
              (SELECT c.relnamespace FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) w.ev_class
                WHERE w.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN
              (SELECT p.pronamespace FROM pg_catalog.pg_proc p WHERE p.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_type'::pg_catalog.regclass THEN
              (SELECT y.typnamespace FROM pg_catalog.pg_type y WHERE y.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_attrdef'::pg_catalog.regclass THEN
              (SELECT c.relnamespace FROM pg_catalog.pg_attrdef a JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) a.adrelid
                WHERE a.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_constraint'::pg_catalog.regclass THEN
              (SELECT k.connamespace FROM pg_catalog.pg_constraint k WHERE k.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_trigger'::pg_catalog.regclass THEN
              (SELECT c.relnamespace FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) g.tgrelid
                WHERE g.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_policy'::pg_catalog.regclass THEN
              (SELECT c.relnamespace FROM pg_catalog.pg_policy o JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) o.polrelid
                WHERE o.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN
              (SELECT x.oprnamespace FROM pg_catalog.pg_operator x WHERE x.oid OPERATOR(pg_catalog.=) d.objid)
         WHEN 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass THEN
              (SELECT x.stxnamespace FROM pg_catalog.pg_statistic_ext x WHERE x.oid OPERATOR(pg_catalog.=) d.objid)
       END IS DISTINCT FROM nsp
 ORDER BY 1 LIMIT 1
$fn$;
REVOKE EXECUTE ON FUNCTION tenant._outside_dependent(oid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION tenant.drop_tenant(id text, drop_objects boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
    r pg_catalog.oid;
    nsp pg_catalog.oid;
    objects pg_catalog.int8;
    owned pg_catalog.text;
    kept pg_catalog.text[] := '{}';
    dropped pg_catalog.text[] := '{}';
    msg pg_catalog.text;
BEGIN
    t := tenant._get(id);
    DELETE FROM tenant.tenants x WHERE x.id OPERATOR(pg_catalog.=) drop_tenant.id;
    SELECT a.oid INTO r FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) t.role_name;
    IF t.isolation OPERATOR(pg_catalog.=) 'schema' THEN
        SELECT n.oid INTO nsp FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) t.schema_name;
    END IF;
    IF nsp IS NOT NULL THEN
        IF coalesce(drop_objects, false) AND tenant._reserved_schema(t.schema_name) THEN
            RAISE EXCEPTION 'schema "%" of tenant "%" is not a tenant''s own: drop_tenant will not drop it', t.schema_name, t.id
                USING ERRCODE = '42501', HINT = 'Drop the tenant without drop_objects; nothing was dropped.';
        END IF;
        IF coalesce(drop_objects, false) THEN
            owned := tenant._foreign_object(nsp, r);
            IF owned IS NOT NULL THEN
                RAISE EXCEPTION 'schema "%" of tenant "%" holds objects of other roles than the tenant''s (%): drop_tenant will not drop it', t.schema_name, t.id, owned
                    USING ERRCODE = '2BP01', HINT = 'Move or drop them first, or drop the tenant without drop_objects; nothing was dropped.';
            END IF;
            owned := tenant._outside_dependent(nsp);
            IF owned IS NOT NULL THEN
                RAISE EXCEPTION 'schema "%" of tenant "%" has objects that % outside it depends on: drop_tenant will not drop it', t.schema_name, t.id, owned
                    USING ERRCODE = '2BP01', HINT = 'DROP SCHEMA ... CASCADE would drop that too: drop or change it first, or drop the tenant without drop_objects; nothing was dropped.';
            END IF;
            EXECUTE pg_catalog.format('DROP SCHEMA %I CASCADE', t.schema_name);
            dropped := dropped OPERATOR(pg_catalog.||) pg_catalog.format('schema %I', t.schema_name);
        ELSE
            SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class c WHERE c.relnamespace OPERATOR(pg_catalog.=) nsp
                       AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f,S}'::pg_catalog."char"[]))
                 OPERATOR(pg_catalog.+)
                   (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc p WHERE p.pronamespace OPERATOR(pg_catalog.=) nsp)
              INTO objects;
            kept := kept OPERATOR(pg_catalog.||) pg_catalog.format('schema %I (%s tables, views, sequences and functions)', t.schema_name, objects);
        END IF;
    END IF;
    IF r IS NOT NULL THEN
        IF coalesce(drop_objects, false)
           AND NOT EXISTS (SELECT FROM tenant.tenants x WHERE x.role_name OPERATOR(pg_catalog.=) t.role_name) THEN
            IF NOT pg_catalog.pg_has_role(r, 'tenant_app'::pg_catalog.name, 'MEMBER')
               OR t.role_name OPERATOR(pg_catalog.=) 'tenant_app'::pg_catalog.name
               OR tenant._role_problem(r) IS NOT NULL
               OR (SELECT a.rolcanlogin FROM pg_catalog.pg_roles a WHERE a.oid OPERATOR(pg_catalog.=) r) THEN
                RAISE EXCEPTION 'role "%" of tenant "%" is not a NOLOGIN application role: drop_tenant will not drop it', t.role_name, t.id
                    USING ERRCODE = '42501', HINT = 'Drop the tenant without drop_objects, then the role by hand if you mean it.';
            END IF;
            -- Only a role provision_tenant made for this tenant: an
            -- operator's own NOLOGIN application role (a group its login
            -- roles get tenant_app and their grants through) named as a
            -- tenant's role_name must not be dropped with its grants.
            IF pg_catalog.shobj_description(r, 'pg_authid') IS DISTINCT FROM
               pg_catalog.format('pg_tenant: role of tenant %s in database %s', t.id, pg_catalog.current_database()) THEN
                RAISE EXCEPTION 'role "%" of tenant "%" was not created for it by tenant.provision_tenant: drop_tenant will not drop it', t.role_name, t.id
                    USING ERRCODE = '42501', HINT = 'Drop the tenant without drop_objects, then the role by hand if you mean it; nothing was dropped.';
            END IF;
            SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid), ', ') INTO owned
              FROM pg_catalog.pg_shdepend d
             WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_authid'::pg_catalog.regclass
               AND d.refobjid OPERATOR(pg_catalog.=) r
               AND d.deptype OPERATOR(pg_catalog.=) 'o'::pg_catalog."char"
               AND d.dbid OPERATOR(pg_catalog.=) (SELECT b.oid FROM pg_catalog.pg_database b
                                                    WHERE b.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
            IF owned IS NOT NULL THEN
                RAISE EXCEPTION 'role "%" of tenant "%" owns objects outside its schema: %', t.role_name, t.id, owned
                    USING ERRCODE = '2BP01', HINT = 'Drop or reassign them, then drop the tenant again; nothing was dropped.';
            END IF;
            -- What is left are privileges granted to it (USAGE on schema
            -- tenant, on shared schemas, tables): revoke them, then drop it.
            EXECUTE pg_catalog.format('DROP OWNED BY %I', t.role_name);
            EXECUTE pg_catalog.format('DROP ROLE %I', t.role_name);
            dropped := dropped OPERATOR(pg_catalog.||) pg_catalog.format('role %I', t.role_name);
        ELSE
            kept := kept OPERATOR(pg_catalog.||) pg_catalog.format('role %I', t.role_name);
        END IF;
    END IF;
    IF pg_catalog.cardinality(dropped) OPERATOR(pg_catalog.=) 0 AND pg_catalog.cardinality(kept) OPERATOR(pg_catalog.=) 0 THEN
        PERFORM pg_catalog.pg_notify('pg_tenant_catalog', t.id);
        RETURN;
    END IF;
    msg := pg_catalog.format('tenant "%s" dropped', t.id);
    IF pg_catalog.cardinality(dropped) OPERATOR(pg_catalog.>) 0 THEN
        msg := msg OPERATOR(pg_catalog.||) pg_catalog.format(' with its %s', pg_catalog.array_to_string(dropped, ' and '));
    END IF;
    IF pg_catalog.cardinality(kept) OPERATOR(pg_catalog.>) 0 THEN
        msg := msg OPERATOR(pg_catalog.||) pg_catalog.format('; left behind: %s (drop_tenant(%L, drop_objects => true) drops them)',
                                                             pg_catalog.array_to_string(kept, ', '), t.id);
    END IF;
    RAISE NOTICE '%', msg;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', t.id);
END
$fn$;

CREATE OR REPLACE FUNCTION tenant.provision_tenant(id text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
    r pg_catalog.oid;
    nsp pg_catalog.oid;
    owner_oid pg_catalog.oid;
    lr pg_catalog.oid;
    l pg_catalog.text;
    done pg_catalog.text[] := '{}';
    msg pg_catalog.text;
BEGIN
    t := tenant._get(id);
    IF t.isolation OPERATOR(pg_catalog.<>) 'schema' THEN
        RAISE EXCEPTION 'tenant "%" uses % isolation: provision_tenant provisions schema tenants', t.id, t.isolation
            USING ERRCODE = '22023';
    END IF;
    IF t.role_name IS NULL THEN
        RAISE EXCEPTION 'tenant "%" uses schema isolation but has no role_name', t.id
            USING ERRCODE = '22023', HINT = 'Give it one first: tenant.alter_tenant(id, role_name => ...).';
    END IF;
    -- Checked again here, enabled or not: a disabled row (or one stored
    -- before 0.8.0) may name such a schema, and a role named like the
    -- schema may have been created since create_tenant.
    IF tenant._reserved_schema(t.schema_name) THEN
        RAISE EXCEPTION 'schema "%" cannot be the schema of tenant "%": it is not a tenant''s own', t.schema_name, t.id
            USING ERRCODE = '22023';
    END IF;
    msg := tenant._schema_on_foreign_path(t.schema_name, t.role_name);
    IF msg IS NOT NULL THEN
        RAISE EXCEPTION 'schema "%" cannot be the schema of tenant "%": %', t.schema_name, t.id, msg
            USING ERRCODE = '42501',
                  HINT = 'The tenant''s role may create in its schema: objects it planted there would run in that role''s sessions. Give the tenant another schema_name.';
    END IF;
    SELECT a.oid INTO r FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) t.role_name;
    IF r IS NULL THEN
        EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION IN ROLE tenant_app', t.role_name);
        SELECT a.oid INTO r FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) t.role_name;
        -- The mark drop_tenant(drop_objects) drops a role by: one made here.
        EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', t.role_name,
                                  pg_catalog.format('pg_tenant: role of tenant %s in database %s', t.id, pg_catalog.current_database()));
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('created role %I (NOLOGIN, in tenant_app)', t.role_name);
    ELSE
        -- An existing role must already be a tenant role (42501/22023 otherwise).
        PERFORM tenant._check_roles(t.role_name, NULL);
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
                    WHERE n.nspname OPERATOR(pg_catalog.=) 'tenant'::pg_catalog.name
                      AND a.grantee OPERATOR(pg_catalog.=) r
                      AND a.privilege_type OPERATOR(pg_catalog.=) 'USAGE') THEN
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA tenant TO %I', t.role_name);
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('granted USAGE on schema tenant to %I', t.role_name);
    END IF;
    SELECT n.oid, n.nspowner INTO nsp, owner_oid FROM pg_catalog.pg_namespace n
     WHERE n.nspname OPERATOR(pg_catalog.=) t.schema_name;
    IF nsp IS NULL THEN
        EXECUTE pg_catalog.format('CREATE SCHEMA %I', t.schema_name);
        SELECT n.oid INTO nsp FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) t.schema_name;
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('created schema %I', t.schema_name);
    ELSIF pg_catalog.pg_has_role(owner_oid, 'tenant_app'::pg_catalog.name, 'MEMBER')
          AND NOT (SELECT w.rolsuper FROM pg_catalog.pg_roles w WHERE w.oid OPERATOR(pg_catalog.=) owner_oid) THEN
        RAISE EXCEPTION 'schema "%" of tenant "%" is owned by application role "%"', t.schema_name, t.id, pg_catalog.pg_get_userbyid(owner_oid)
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('A tenant role that owns its schema can GRANT it to other tenants: ALTER SCHEMA %I OWNER TO a role that never connects through the router, then provision again.', t.schema_name);
    ELSIF tenant._foreign_object(nsp, r) IS NOT NULL THEN
        RAISE EXCEPTION 'schema "%" holds objects of other roles than tenant "%"''s role (%): provision_tenant will not hand it to the tenant', t.schema_name, t.id, tenant._foreign_object(nsp, r)
            USING ERRCODE = '42501',
                  HINT = pg_catalog.format('An existing schema becomes a tenant''s only when everything in it is the tenant''s: ALTER ... OWNER TO %I what belongs to it, move the rest, then provision again.', t.role_name);
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
                WHERE n.oid OPERATOR(pg_catalog.=) nsp AND a.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid) THEN
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', t.schema_name);
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('revoked PUBLIC''s privileges on schema %I', t.schema_name);
    END IF;
    IF NOT pg_catalog.has_schema_privilege(r, nsp, 'USAGE') OR NOT pg_catalog.has_schema_privilege(r, nsp, 'CREATE') THEN
        EXECUTE pg_catalog.format('GRANT USAGE, CREATE ON SCHEMA %I TO %I', t.schema_name, t.role_name);
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('granted USAGE and CREATE on schema %I to %I', t.schema_name, t.role_name);
    END IF;
    -- Only to application roles (members of tenant_app with no right
    -- beyond a tenant): tenant_admin must not gain a tenant's role, and
    -- its data, by listing itself in login_roles.
    FOREACH l IN ARRAY coalesce(t.login_roles, '{}'::pg_catalog.text[]) LOOP
        SELECT a.oid INTO lr FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) l;
        IF lr IS NULL OR pg_catalog.pg_has_role(lr, r, 'MEMBER') THEN
            CONTINUE;
        END IF;
        IF l OPERATOR(pg_catalog.=) 'tenant_app' OR NOT pg_catalog.pg_has_role(lr, 'tenant_app'::pg_catalog.name, 'MEMBER')
           OR tenant._role_problem(lr) IS NOT NULL THEN
            RAISE EXCEPTION 'login role "%" of tenant "%" is not an application role: provision_tenant grants tenant roles to application roles only', l, t.id
                USING ERRCODE = '42501',
                      HINT = pg_catalog.format('Make it one (tenant.create_app_role(%L)), or GRANT %I TO %I yourself if you mean it.', l, t.role_name, l);
        END IF;
        EXECUTE pg_catalog.format('GRANT %I TO %I', t.role_name, l);
        done := done OPERATOR(pg_catalog.||) pg_catalog.format('granted %I to login role %I', t.role_name, l);
    END LOOP;
    IF pg_catalog.cardinality(done) OPERATOR(pg_catalog.=) 0 THEN
        msg := pg_catalog.format('tenant "%s" is already provisioned (role %I, schema %I): nothing changed', t.id, t.role_name, t.schema_name);
    ELSE
        msg := pg_catalog.format('tenant "%s" provisioned: %s', t.id, pg_catalog.array_to_string(done, '; '));
    END IF;
    RETURN msg;
END
$fn$;

CREATE OR REPLACE FUNCTION tenant._audit_schemas()
RETURNS TABLE (object text, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT quote_ident(t.role_name),
       format('role of tenant %s (schema isolation) is also the role of tenant %s: each one''s sessions reach the other''s schema and objects; fix: give each tenant a role of its own (tenant.alter_tenant(%L, role_name => ...), then tenant.provision_tenant(%L))',
              t.id, o.id, t.id, t.id)
  FROM tenant.tenants t
  JOIN tenant.tenants o ON o.id <> t.id AND o.role_name = t.role_name
 WHERE t.isolation = 'schema'
UNION ALL
-- USAGE on a tenant schema comes from its ACL (PUBLIC, a role and the
-- roles that inherit it) or from its owner's rights: only grantees other
-- than the tenant's role and a superuser owner are looked at, so a clean
-- database costs one ACL read per schema (1,000 schema tenants: 16 ms,
-- where asking has_schema_privilege for every pair of schema and tenant
-- role took 0.5 s). A tenant role that has another tenant role's
-- privileges (a member of it) is reported by the membership row of
-- audit() and refused by set_context.
(WITH reach AS (
    SELECT t.id, t.schema_name, t.role_name, g.grantee
      FROM tenant.tenants t
      JOIN pg_namespace n ON n.nspname = t.schema_name
      CROSS JOIN LATERAL (
          SELECT a.grantee FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
           WHERE a.privilege_type = 'USAGE'
          UNION
          SELECT n.nspowner) g
      LEFT JOIN pg_roles gr ON gr.oid = g.grantee
     WHERE t.isolation = 'schema'
       AND gr.rolname IS DISTINCT FROM t.role_name
       AND NOT coalesce(gr.rolsuper, false)
)
SELECT DISTINCT quote_ident(e.rolname),
       format('role of tenant %s can reach schema %I of tenant %s (USAGE): it reads whatever that tenant granted on its objects; fix: REVOKE USAGE ON SCHEMA %I FROM %s (or from PUBLIC, or from the role it has it through)',
              o.id, x.schema_name, x.id, x.schema_name, quote_ident(e.rolname))
  FROM reach x
  JOIN tenant.tenants o ON o.id <> x.id AND o.role_name IS NOT NULL AND o.role_name IS DISTINCT FROM x.role_name
  JOIN pg_roles e ON e.rolname = o.role_name
 WHERE x.grantee = 0 OR x.grantee = e.oid OR pg_has_role(e.oid, x.grantee, 'USAGE'))
UNION ALL
-- CREATE on a shared schema, asked once per shared schema and tenant role.
(WITH creators AS (
    SELECT s.oid AS nsp, s.nspname, e.rolname, o.id AS role_of
      FROM (SELECT DISTINCT unnest(t.shared_schemas) AS name FROM tenant.tenants t WHERE t.isolation = 'schema') sh
      JOIN pg_namespace s ON s.nspname = sh.name
      JOIN tenant.tenants o ON o.role_name IS NOT NULL
      JOIN pg_roles e ON e.rolname = o.role_name
     WHERE has_schema_privilege(e.oid, s.oid, 'CREATE')
)
SELECT quote_ident(c.rolname),
       format('role of tenant %s may create objects in shared schema %I of tenant %s: it can plant functions and operators on that tenant''s search_path; fix: REVOKE CREATE ON SCHEMA %I FROM %s (or from PUBLIC)',
              c.role_of, c.nspname, t.id, c.nspname, quote_ident(c.rolname))
  FROM creators c
  JOIN tenant.tenants t ON t.isolation = 'schema' AND c.nspname = ANY (t.shared_schemas))
UNION ALL
SELECT quote_ident(n.nspname),
       format('schema of tenant %s is owned by %s, an application or tenant role (member of tenant_app): its owner can GRANT USAGE on it to other tenants; fix: ALTER SCHEMA %I OWNER TO a role that never connects through the router (then SELECT tenant.provision_tenant(%L))',
              t.id, quote_ident(w.rolname), n.nspname, t.id)
  FROM tenant.tenants t
  JOIN pg_namespace n ON n.nspname = t.schema_name
  JOIN pg_roles w ON w.oid = n.nspowner
 WHERE t.isolation = 'schema' AND NOT w.rolsuper
   AND pg_has_role(w.oid, 'tenant_app', 'MEMBER')
UNION ALL
SELECT x.object,
       format('%s in schema %I of tenant %s is owned by %s, not by the tenant''s role %s: it runs or reads with another role''s privileges inside the tenant''s schema; fix: %s',
              x.kind, t.schema_name, t.id, quote_ident(w.rolname), coalesce(quote_ident(t.role_name), '(none)'),
              CASE WHEN t.role_name IS NULL THEN pg_catalog.format('give the tenant a role: tenant.alter_tenant(%L, role_name => ...)', t.id)
                   ELSE pg_catalog.format('ALTER %s %s OWNER TO %I (or drop it)', x.alter, x.object, t.role_name) END)
  FROM tenant.tenants t
  JOIN pg_namespace n ON n.nspname = t.schema_name
  -- A join, not a lateral scan per schema: pg_class has no index leading
  -- with relnamespace (1,000 schema tenants: 0.5 s as a lateral scan).
  JOIN (
      SELECT c.relnamespace AS nsp, c.oid::regclass::text AS object, c.relowner AS owner,
             CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                            WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
             CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                            WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS alter
        FROM pg_class c
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      UNION ALL
      SELECT p.pronamespace, p.oid::regprocedure::text, p.proowner,
             CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
             CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END
        FROM pg_proc p) x ON x.nsp = n.oid
  JOIN pg_roles w ON w.oid = x.owner
 WHERE t.isolation = 'schema' AND w.rolname IS DISTINCT FROM t.role_name
UNION ALL
-- A tenant schema on other roles' search_path (a role named like it, its
-- "$user"; a database or role search_path setting): the tenant's role
-- creates there what those sessions find first (tenant._schema_on_foreign_path).
SELECT quote_ident(t.schema_name),
       format('schema of tenant %s is on the search_path of other sessions: %s; the tenant''s role may create in it, and a table or an exact-type overload of a built-in function or operator it plants there is found first by those sessions (a superuser''s whatever its USAGE) and runs with their privileges; fix: ALTER SCHEMA %I RENAME TO a name that is no role''s and no setting''s, then tenant.alter_tenant(%L, schema_name => ...)',
              t.id, p.why, t.schema_name, t.id)
  FROM tenant.tenants t
  CROSS JOIN LATERAL (SELECT tenant._schema_on_foreign_path(t.schema_name, t.role_name) AS why) p
 WHERE t.isolation = 'schema' AND p.why IS NOT NULL
UNION ALL
-- A SECURITY DEFINER function without a search_path of its own resolves
-- names through its caller's path with its owner's privileges: a schema
-- tenant that may execute it (and use its schema) points it at another
-- tenant's schema with SET search_path, or at tables, functions and
-- operators it created in its own schema (found before pg_catalog's when
-- their types match better). Whatever the owner: one that bypasses row
-- level security is reported above too. One row per function.
(WITH sd AS (
    SELECT p.oid, p.proowner, p.pronamespace
      FROM pg_proc p
     WHERE p.prosecdef
       AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
), hit AS (
    SELECT sd.oid, sd.proowner, t.id, e.rolname
      FROM sd
      JOIN tenant.tenants t ON t.isolation = 'schema'
      JOIN pg_roles e ON e.rolname = t.role_name
     WHERE e.oid <> sd.proowner
       AND has_schema_privilege(e.oid, sd.pronamespace, 'USAGE')
       AND has_function_privilege(e.oid, sd.oid, 'EXECUTE')
)
SELECT h.oid::regprocedure::text,
       format('SECURITY DEFINER function owned by %s has no search_path of its own and is executable by the role of schema tenant %s%s: it resolves names through the caller''s search_path with its owner''s privileges, so the tenant can point it at another tenant''s schema (SET search_path) or at objects it created in its own; fix: ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp (and schema-qualify its names), or REVOKE EXECUTE from tenant roles',
              quote_ident(pg_get_userbyid(h.proowner)), min(h.id),
              CASE WHEN count(*) > 1 THEN format(' (and of %s more)', count(*) - 1) ELSE '' END,
              h.oid::regprocedure)
  FROM hit h
 GROUP BY h.oid, h.proowner)
$fn$;

-- 0.8.0 (review of protect's record): a tenant column with a
-- nondeterministic collation. The tree comparison leaves collations out,
-- and `=` under a nondeterministic collation matches other tenants' ids
-- ('acme' = 'ACME' case-insensitively): protect refuses such a column, and
-- a policy on one is not protect's (audit() reports it, COPY refuses it).
CREATE OR REPLACE FUNCTION tenant._is_protects_policy(tbl pg_catalog.regclass, col pg_catalog.name) RETURNS pg_catalog.bool
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT EXISTS (
    SELECT 1
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_policy p ON p.polrelid OPERATOR(pg_catalog.=) a.attrelid
                                 AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name
      JOIN pg_catalog.pg_attribute ra ON ra.attrelid OPERATOR(pg_catalog.=) 'tenant._policy_reference'::pg_catalog.regclass
                                     AND ra.attnum OPERATOR(pg_catalog.>) 0
                                     AND ra.atttypid OPERATOR(pg_catalog.=) a.atttypid
      JOIN pg_catalog.pg_policy r ON r.polrelid OPERATOR(pg_catalog.=) ra.attrelid
                                 AND r.polname OPERATOR(pg_catalog.=) ra.attname
     WHERE a.attrelid OPERATOR(pg_catalog.=) tbl
       AND a.attname OPERATOR(pg_catalog.=) col AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_collation co
                        WHERE co.oid OPERATOR(pg_catalog.=) a.attcollation AND NOT co.collisdeterministic)
       AND p.polcmd OPERATOR(pg_catalog.=) '*'::pg_catalog."char" AND p.polpermissive
       AND p.polroles OPERATOR(pg_catalog.=) '{0}'::pg_catalog.oid[]
       AND tenant._policy_shape(p.polqual, a.attnum) OPERATOR(pg_catalog.=) tenant._policy_shape(r.polqual, ra.attnum)
       AND tenant._policy_shape(p.polwithcheck, a.attnum) OPERATOR(pg_catalog.=) tenant._policy_shape(r.polwithcheck, ra.attnum))
$fn$;

CREATE OR REPLACE FUNCTION tenant.protect(tbl regclass, tenant_column name DEFAULT 'tenant_id') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    att record;
    expr text;
    rels regclass[];
    rel regclass;
    coll name;
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
    -- 0.8.0: `=` under a nondeterministic collation matches other tenants'
    -- ids ('acme' = 'ACME' case-insensitively): no isolation.
    SELECT co.collname INTO coll
      FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation
     WHERE a.attrelid = tbl AND a.attnum = att.attnum AND NOT co.collisdeterministic;
    IF FOUND THEN
        RAISE EXCEPTION 'tenant column %.% has the nondeterministic collation "%": its = matches other tenants'' ids, so a policy on it would not isolate tenants', tbl, tenant_column, coll
            USING ERRCODE = '42804', HINT = format('Give the column a deterministic collation: ALTER TABLE %s ALTER COLUMN %I TYPE %s COLLATE "C".', tbl, tenant_column, att.typ);
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
    -- 0.8.0: recorded before the first ALTER TABLE too (the trigger reads it).
    PERFORM tenant._record_protected(rels, tenant_column);
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

-- 0.8.0 (review of protect's record): tenant.protected is dumped without
-- records of temporary tables: one dropped at the end of its session (or ON
-- COMMIT DROP) fires no sql_drop trigger, so its record stays behind with
-- an oid that a restored database gives another table.
SELECT pg_catalog.pg_extension_config_dump('tenant.protected',
    'WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) relid::pg_catalog.oid AND c.relpersistence OPERATOR(pg_catalog.<>) ''t''::pg_catalog."char")');
