-- pg_tenant catalog: tenants, defaults, management functions.
-- Constraints live in the tables, so even a superuser's raw INSERT cannot
-- store nonsense; the functions add clear messages on top.
--
-- This script runs with search_path = tenant: every function, operator and
-- type in its DDL (constraints, defaults, views, DO blocks) is qualified
-- with pg_catalog, and the function bodies pin search_path = pg_catalog,
-- pg_temp and qualify the names they use too.

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

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'tenant_admin'::pg_catalog.name) THEN
        CREATE ROLE tenant_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'tenant_router'::pg_catalog.name) THEN
        CREATE ROLE tenant_router NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'tenant_app'::pg_catalog.name) THEN
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
    singleton        pg_catalog.bool   PRIMARY KEY DEFAULT true CHECK (singleton),
    max_connections  pg_catalog.int4   NOT NULL DEFAULT 100 CHECK (max_connections OPERATOR(pg_catalog.>=) 0),
    qps_limit        pg_catalog.int4   NOT NULL DEFAULT 0   CHECK (qps_limit OPERATOR(pg_catalog.>=) 0),
    burst_multiplier pg_catalog.float4 NOT NULL DEFAULT 1.0 CHECK (burst_multiplier OPERATOR(pg_catalog.>=) 1),
    max_query_ms     pg_catalog.int4   NOT NULL DEFAULT 0   CHECK (max_query_ms OPERATOR(pg_catalog.>=) 0),
    max_result_bytes pg_catalog.int8   NOT NULL DEFAULT 0   CHECK (max_result_bytes OPERATOR(pg_catalog.>=) 0),
    pool_size        pg_catalog.int4   NOT NULL DEFAULT 10  CHECK (pool_size OPERATOR(pg_catalog.>=) 1),
    min_idle         pg_catalog.int4   NOT NULL DEFAULT 0   CHECK (min_idle OPERATOR(pg_catalog.>=) 0),
    -- 0.4.0: how the router pools a tenant's backends.
    pool_mode        pg_catalog.text   NOT NULL DEFAULT 'session'
                     CONSTRAINT pool_mode_kind CHECK (pool_mode OPERATOR(pg_catalog.=) ANY (ARRAY['session'::pg_catalog.text, 'transaction'::pg_catalog.text])),
    -- 0.5.0: budgets of what all tenants share, enforced inside PostgreSQL
    -- (budget.rs, advisory.rs); 0 = unlimited.
    statement_timeout_ms           pg_catalog.int4 NOT NULL DEFAULT 300000  CHECK (statement_timeout_ms OPERATOR(pg_catalog.>=) 0),
    idle_in_transaction_timeout_ms pg_catalog.int4 NOT NULL DEFAULT 60000   CHECK (idle_in_transaction_timeout_ms OPERATOR(pg_catalog.>=) 0),
    work_mem_kb                    pg_catalog.int4 NOT NULL DEFAULT 65536   CHECK (work_mem_kb OPERATOR(pg_catalog.>=) 0),
    maintenance_work_mem_kb        pg_catalog.int4 NOT NULL DEFAULT 262144  CHECK (maintenance_work_mem_kb OPERATOR(pg_catalog.>=) 0),
    temp_file_limit_kb             pg_catalog.int4 NOT NULL DEFAULT 1048576 CHECK (temp_file_limit_kb OPERATOR(pg_catalog.>=) 0),
    max_advisory_locks             pg_catalog.int4 NOT NULL DEFAULT 64      CHECK (max_advisory_locks OPERATOR(pg_catalog.>=) 0),
    -- 0.6.0: how long a client of tenant-router may stay idle outside a
    -- transaction before the router closes it (FATAL 57P05, like
    -- idle_session_timeout); enforced by the router; 0 = no limit.
    client_idle_timeout_ms         pg_catalog.int4 NOT NULL DEFAULT 0       CHECK (client_idle_timeout_ms OPERATOR(pg_catalog.>=) 0)
);
COMMENT ON TABLE tenant.defaults IS 'pg_tenant: defaults for NULL tenant limits (0 = unlimited)';

-- 0.5.0: numbers for tenants' advisory lock namespaces (tenants.lock_space).
CREATE SEQUENCE tenant.lock_space_seq AS pg_catalog.int4 MINVALUE 1;

CREATE TABLE tenant.tenants (
    id                 pg_catalog.text PRIMARY KEY
                       CONSTRAINT tenant_id_pattern CHECK (id OPERATOR(pg_catalog.~) '^[a-z0-9][a-z0-9_-]{0,62}$'::pg_catalog.text),
    name               pg_catalog.text NOT NULL,
    isolation          pg_catalog.text NOT NULL DEFAULT 'rls'
                       CONSTRAINT isolation_kind CHECK (isolation OPERATOR(pg_catalog.=) ANY (ARRAY['rls'::pg_catalog.text, 'schema'::pg_catalog.text, 'database'::pg_catalog.text])),
    database_name      pg_catalog.name,
    schema_name        pg_catalog.name,
    role_name          pg_catalog.name,
    max_connections    pg_catalog.int4   CHECK (max_connections OPERATOR(pg_catalog.>=) 0),
    qps_limit          pg_catalog.int4   CHECK (qps_limit OPERATOR(pg_catalog.>=) 0),
    burst_multiplier   pg_catalog.float4 CHECK (burst_multiplier OPERATOR(pg_catalog.>=) 1),
    max_query_ms       pg_catalog.int4   CHECK (max_query_ms OPERATOR(pg_catalog.>=) 0),
    max_result_bytes   pg_catalog.int8   CHECK (max_result_bytes OPERATOR(pg_catalog.>=) 0),
    allow_ddl          pg_catalog.bool NOT NULL DEFAULT false,
    read_only          pg_catalog.bool NOT NULL DEFAULT false,
    allowed_operations pg_catalog.text[] NOT NULL DEFAULT '{select,insert,update,delete}'
                       CONSTRAINT known_operations
                       CHECK (allowed_operations OPERATOR(pg_catalog.<@) '{select,insert,update,delete}'::pg_catalog.text[]),
    dedicated_pool     pg_catalog.bool NOT NULL DEFAULT false,
    pool_size          pg_catalog.int4 CHECK (pool_size OPERATOR(pg_catalog.>=) 1),
    min_idle           pg_catalog.int4 CHECK (min_idle OPERATOR(pg_catalog.>=) 0),
    enabled            pg_catalog.bool NOT NULL DEFAULT true,
    created_at         pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at         pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- 0.2.0: large objects are shared by all tenants; off unless granted.
    allow_large_objects pg_catalog.bool NOT NULL DEFAULT false,
    -- 0.3.0: the login roles that may take this tenant (NULL: any).
    login_roles        pg_catalog.text[]
                       CONSTRAINT login_roles_listed
                       CHECK (pg_catalog.cardinality(login_roles) OPERATOR(pg_catalog.>) 0
                              AND pg_catalog.array_position(login_roles, NULL::pg_catalog.text) IS NULL),
    -- 0.4.0: session or transaction pooling (NULL: the default).
    pool_mode          pg_catalog.text
                       CONSTRAINT pool_mode_kind CHECK (pool_mode OPERATOR(pg_catalog.=) ANY (ARRAY['session'::pg_catalog.text, 'transaction'::pg_catalog.text])),
    -- 0.5.0: budgets (NULL: the default) and the tenant's advisory lock
    -- namespace (tenant.advisory_lock and friends; unique, never reused).
    statement_timeout_ms           pg_catalog.int4 CHECK (statement_timeout_ms OPERATOR(pg_catalog.>=) 0),
    idle_in_transaction_timeout_ms pg_catalog.int4 CHECK (idle_in_transaction_timeout_ms OPERATOR(pg_catalog.>=) 0),
    work_mem_kb                    pg_catalog.int4 CHECK (work_mem_kb OPERATOR(pg_catalog.>=) 0),
    maintenance_work_mem_kb        pg_catalog.int4 CHECK (maintenance_work_mem_kb OPERATOR(pg_catalog.>=) 0),
    temp_file_limit_kb             pg_catalog.int4 CHECK (temp_file_limit_kb OPERATOR(pg_catalog.>=) 0),
    max_advisory_locks             pg_catalog.int4 CHECK (max_advisory_locks OPERATOR(pg_catalog.>=) 0),
    lock_space                     pg_catalog.int4 NOT NULL DEFAULT pg_catalog.nextval('tenant.lock_space_seq'::pg_catalog.regclass)
                                   CONSTRAINT tenants_lock_space_key UNIQUE,
    -- 0.6.0: the router's idle-client bound (NULL: the default; 0: none).
    client_idle_timeout_ms         pg_catalog.int4 CHECK (client_idle_timeout_ms OPERATOR(pg_catalog.>=) 0),
    -- 0.8.0: the operator's reference schemas that follow a schema tenant's
    -- own schema on its search_path (NULL: none).
    shared_schemas                 pg_catalog.name[]
                                   CONSTRAINT shared_schemas_listed
                                   CHECK (pg_catalog.array_position(shared_schemas, NULL::pg_catalog.name) IS NULL),
    -- 0.9.0: the named upstream (tenant-router's [upstreams.<name>]) the
    -- tenant lives on (NULL: the router's main upstream).
    upstream                       pg_catalog.text
                                   CONSTRAINT upstream_name
                                   CHECK (upstream OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,62}$'::pg_catalog.text),
    CONSTRAINT schema_isolation_needs_schema CHECK (isolation OPERATOR(pg_catalog.<>) 'schema'::pg_catalog.text OR schema_name IS NOT NULL),
    CONSTRAINT database_isolation_needs_database CHECK (isolation OPERATOR(pg_catalog.<>) 'database'::pg_catalog.text OR database_name IS NOT NULL),
    CONSTRAINT min_idle_within_pool CHECK (min_idle IS NULL OR pool_size IS NULL OR min_idle OPERATOR(pg_catalog.<=) pool_size)
);
COMMENT ON TABLE tenant.tenants IS 'pg_tenant: one row per tenant; manage with tenant.create_tenant() and friends';

SELECT pg_catalog.pg_extension_config_dump('tenant.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.defaults', '');
SELECT pg_catalog.pg_extension_config_dump('tenant.lock_space_seq', '');

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

-- Validation shared by create_tenant and alter_tenant. Raises 22023 with a
-- message naming the field; never interpolates into SQL. Checks the row as
-- it will be stored; the roles it names are checked by tenant._check_roles,
-- only when a call sets them (a stored role that was renamed or dropped
-- since must not block disable_tenant).
CREATE FUNCTION tenant._validate(t tenant.tenants) RETURNS void
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

-- Why a role must not be an application or tenant role, or NULL when it
-- may: SUPERUSER, BYPASSRLS, REPLICATION, CREATEROLE or CREATEDB, itself or
-- through any role it is a member of (directly or not, with or without
-- INHERIT: SET ROLE reaches them), or membership in a role whose rights
-- reach across tenants (server files and programs, all data, signals,
-- monitoring, the database's owner, tenant_admin, tenant_router).
CREATE FUNCTION tenant._role_problem(r pg_catalog.oid) RETURNS pg_catalog.text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT CASE
        WHEN a.rolsuper THEN 'has SUPERUSER'
        WHEN a.rolbypassrls THEN 'has BYPASSRLS'
        WHEN a.rolreplication THEN 'has REPLICATION'
        WHEN a.rolcreaterole THEN 'has CREATEROLE'
        WHEN a.rolcreatedb THEN 'has CREATEDB'
        WHEN a.rolname OPERATOR(pg_catalog.=) ANY ('{pg_execute_server_program,pg_write_server_files,pg_read_server_files,pg_read_all_data,pg_write_all_data,pg_signal_backend,pg_monitor,pg_read_all_settings,pg_read_all_stats,pg_stat_scan_tables,pg_checkpoint,pg_database_owner,tenant_admin,tenant_router}'::pg_catalog.name[])
            THEN pg_catalog.format('is %s', a.rolname)
        ELSE (SELECT pg_catalog.format('is a member of %s%s', pg_catalog.quote_ident(g.rolname),
                     CASE WHEN g.rolsuper THEN ' (SUPERUSER)'
                          WHEN g.rolbypassrls THEN ' (BYPASSRLS)'
                          WHEN g.rolreplication THEN ' (REPLICATION)'
                          WHEN g.rolcreaterole THEN ' (CREATEROLE)'
                          WHEN g.rolcreatedb THEN ' (CREATEDB)'
                          ELSE '' END)
                FROM pg_catalog.pg_roles g
               WHERE g.oid OPERATOR(pg_catalog.<>) a.oid
                 AND (g.rolsuper OR g.rolbypassrls OR g.rolreplication OR g.rolcreaterole OR g.rolcreatedb
                      OR g.rolname OPERATOR(pg_catalog.=) ANY ('{pg_execute_server_program,pg_write_server_files,pg_read_server_files,pg_read_all_data,pg_write_all_data,pg_signal_backend,pg_monitor,pg_read_all_settings,pg_read_all_stats,pg_stat_scan_tables,pg_checkpoint,pg_database_owner,tenant_admin,tenant_router}'::pg_catalog.name[]))
                 AND pg_catalog.pg_has_role(a.oid, g.oid, 'MEMBER')
               ORDER BY g.rolname
               LIMIT 1)
    END
    FROM pg_catalog.pg_roles a
    WHERE a.oid OPERATOR(pg_catalog.=) r
$fn$;
COMMENT ON FUNCTION tenant._role_problem IS 'pg_tenant: why a role must not be an application or tenant role (NULL: it may be one)';

-- The roles a create_tenant or alter_tenant call names: role_name must be
-- an application role (a member of tenant_app: tenant.create_app_role or
-- GRANT tenant_app) without rights beyond its tenant; each of login_roles
-- must exist.
CREATE FUNCTION tenant._check_roles(role_name pg_catalog.name, login_roles pg_catalog.text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    r pg_catalog.oid;
    problem pg_catalog.text;
    l pg_catalog.text;
BEGIN
    IF role_name IS NOT NULL THEN
        SELECT x.oid INTO r FROM pg_catalog.pg_roles x WHERE x.rolname OPERATOR(pg_catalog.=) role_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'role "%" does not exist', role_name USING ERRCODE = '42704';
        END IF;
        IF role_name OPERATOR(pg_catalog.=) 'tenant_app'::pg_catalog.name
           OR NOT pg_catalog.pg_has_role(r, 'tenant_app'::pg_catalog.name, 'MEMBER') THEN
            RAISE EXCEPTION 'role "%" is not an application role (a member of tenant_app) and cannot be a tenant role', role_name
                USING ERRCODE = '22023',
                      HINT = pg_catalog.format('Make it one first: GRANT tenant_app TO %I (a superuser or a role with CREATEROLE), or create it with tenant.create_app_role(%L).', role_name, role_name);
        END IF;
        problem := tenant._role_problem(r);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'role "%" % and cannot be a tenant role: its tenant sessions would reach beyond their tenant', role_name, problem
                USING ERRCODE = '42501',
                      HINT = 'Use a NOLOGIN role made for this tenant, a member of tenant_app and of no privileged role.';
        END IF;
    END IF;
    FOREACH l IN ARRAY coalesce(login_roles, '{}'::pg_catalog.text[]) LOOP
        IF l IS NOT NULL AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname OPERATOR(pg_catalog.=) l) THEN
            RAISE EXCEPTION 'role "%" in login_roles does not exist', l USING ERRCODE = '42704';
        END IF;
    END LOOP;
END
$fn$;

-- 0.8.0: whether a schema name is no tenant's to have: PostgreSQL's and
-- pg_tenant's schemas, public, and "$user" (which search_path reads as the
-- session's role, not as a schema).
CREATE FUNCTION tenant._reserved_schema(s pg_catalog.name) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT s OPERATOR(pg_catalog.=) ANY ('{pg_catalog,information_schema,tenant,public,$user}'::pg_catalog.name[])
       OR s OPERATOR(pg_catalog.~~) 'pg\_%'
$fn$;

-- 0.8.0: why schema s is on the search_path of sessions of roles other
-- than r, the tenant's role (NULL: it is not): a role named like it (its
-- "$user" schema: PostgreSQL's default search_path starts with "$user"),
-- or a search_path set for a database or a role (ALTER DATABASE/ROLE ...
-- SET search_path) that names it. The tenant's role may create in its
-- schema: it would plant tables and exact-type overloads of built-in
-- functions and operators there, which such a session (a superuser's
-- always: it needs no USAGE) finds first and runs with its own
-- privileges.
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

-- 0.8.0: the schemas a create_tenant or alter_tenant call names (only the
-- ones it sets: a shared schema dropped since must not block
-- disable_tenant). A tenant's schema is its own: no other tenant's schema
-- or shared schema; a schema tenant's role is its own too (a role shared
-- with another tenant reaches both tenants' objects); each shared schema
-- must exist and be no tenant's schema (22023).
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

CREATE FUNCTION tenant._get(tenant_id text) RETURNS tenant.tenants
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    t tenant.tenants;
BEGIN
    SELECT * INTO t FROM tenant.tenants x WHERE x.id OPERATOR(pg_catalog.=) tenant_id FOR UPDATE;
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

-- 0.8.0: the first object outside schema nsp that depends (normally, not
-- as a part) on a table, view, sequence, function or type inside it (NULL:
-- none): an operator's view over a tenant's table, a foreign key, a
-- default or a column of a tenant's type. DROP SCHEMA ... CASCADE would
-- drop it too, so drop_tenant(drop_objects) refuses. An object whose
-- schema this cannot tell counts as outside.
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

-- 0.8.0: drop_tenant says what it leaves behind (a schema tenant's schema
-- and the tenant's role) in a NOTICE (none when there is nothing); with
-- drop_objects => true it drops them instead: the tenant's schema (CASCADE,
-- with everything in it) and its role, unless another tenant names the
-- role, the role is not an application role, or it still owns objects
-- outside the schema (2BP01, nothing dropped).
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
COMMENT ON FUNCTION tenant.drop_tenant IS 'pg_tenant: remove a tenant from the catalog (its rows stay); a NOTICE names the schema and role it leaves behind, which drop_objects => true drops too';

-- 0.8.0: what a schema tenant needs, made explicit and idempotent: its
-- role (NOLOGIN, an application role: a member of tenant_app, USAGE on
-- schema tenant), its schema (owned by the extension's owner, never by
-- the tenant role, so the tenant cannot GRANT its schema to anyone),
-- USAGE and CREATE on it for the role and nothing for PUBLIC, and the
-- role granted to the tenant's login_roles (so set_context can switch to
-- it). Says what it did; a second call changes nothing and says so.
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
COMMENT ON FUNCTION tenant.provision_tenant IS 'pg_tenant: create what a schema tenant needs (its role, its schema, USAGE and CREATE for the role, nothing for PUBLIC), idempotent; returns what it did';

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
COMMENT ON FUNCTION tenant.set_defaults IS 'pg_tenant: defaults used where a tenant limit is NULL (0 = unlimited)';

-- What a router needs, nothing more: effective limits and pool settings of
-- one or all tenants (0.4.0: dedicated_pool, pool_size, min_idle, pool_mode;
-- 0.6.0: client_idle_timeout_ms; 0.8.0: context_document, the sealed
-- context of a database-isolated tenant, NULL for the others:
-- tenant.context_document in database.sql; 0.9.0: upstream, and the
-- context_document of every tenant placed on a named upstream too).
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

-- 0.7.0: the admin API's pages, read in the byte order of the ids
-- (COLLATE "C", whatever the database's collation), so that a cursor and a
-- prefix are one range of one index and a page costs O(page) at any
-- number of tenants. Disabled tenants have an index of their own, so
-- listing them does not read the enabled ones.
CREATE INDEX tenants_id_bytewise ON tenant.tenants (id COLLATE pg_catalog."C");
CREATE INDEX tenants_disabled_id_bytewise ON tenant.tenants (id COLLATE pg_catalog."C") WHERE NOT enabled;

-- One page of tenant.router_catalog(NULL): the tenants whose id comes
-- after after_id (NULL: from the first), in byte order, at most page_size
-- (1 to 1000) of them; with id_prefix, only ids starting with it (the
-- prefix is compared, never made into a pattern); with only_enabled, only
-- enabled (true) or disabled (false) tenants. Every stored id is ASCII
-- below '~' (tenant_id_pattern), so the ids starting with p are exactly
-- the range [p, p || '~'). Run as EXECUTE ... USING: each call is planned
-- with its values (an index range scan), never with a generic plan.
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

-- How many tenants there are, enabled and disabled (the admin API's
-- summary).
CREATE FUNCTION tenant.router_catalog_counts()
RETURNS TABLE (tenants bigint, enabled bigint, disabled bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
SELECT pg_catalog.count(*),
       pg_catalog.count(*) FILTER (WHERE t.enabled),
       pg_catalog.count(*) FILTER (WHERE NOT t.enabled)
  FROM tenant.tenants t
$fn$;
COMMENT ON FUNCTION tenant.router_catalog_counts IS 'pg_tenant: the number of tenants, enabled and disabled, for tenant-router''s admin API (granted to tenant_router)';

REVOKE ALL ON tenant.tenants, tenant.defaults, tenant.tenant_list FROM PUBLIC;
GRANT SELECT ON tenant.tenants, tenant.defaults, tenant.tenant_list TO tenant_admin;
REVOKE EXECUTE ON FUNCTION tenant._validate(tenant.tenants), tenant._get(text),
    tenant._check_roles(name, text[]), tenant._check_schemas(tenant.tenants, boolean, boolean), tenant._foreign_object(oid, oid), tenant._outside_dependent(oid),
    tenant.create_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, boolean, text[], text, integer, integer, integer, integer, integer, integer, integer, name[], text),
    tenant.alter_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, text[], boolean, text[], text, integer, integer, integer, integer, integer, integer, integer, name[], text),
    tenant.drop_tenant(text, boolean), tenant.provision_tenant(text), tenant.enable_tenant(text), tenant.disable_tenant(text),
    tenant.set_defaults(integer, integer, real, integer, bigint, integer, integer, text, integer, integer, integer, integer, integer, integer, integer),
    tenant.router_catalog(text), tenant.router_catalog_page(text, integer, text, boolean),
    tenant.router_catalog_counts()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    tenant.create_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, boolean, text[], text, integer, integer, integer, integer, integer, integer, integer, name[], text),
    tenant.alter_tenant(text, text, text, name, name, name, integer, integer, real, integer, bigint, boolean, boolean, text[], boolean, integer, integer, boolean, text[], boolean, text[], text, integer, integer, integer, integer, integer, integer, integer, name[], text),
    tenant.drop_tenant(text, boolean), tenant.provision_tenant(text), tenant.enable_tenant(text), tenant.disable_tenant(text),
    tenant.set_defaults(integer, integer, real, integer, bigint, integer, integer, text, integer, integer, integer, integer, integer, integer, integer)
    TO tenant_admin;
GRANT EXECUTE ON FUNCTION tenant.router_catalog(text), tenant.router_catalog_page(text, integer, text, boolean),
    tenant.router_catalog_counts() TO tenant_router;
GRANT USAGE ON SCHEMA tenant TO PUBLIC;

-- 0.7.0: set_context refuses a role with the privileges of another
-- tenant's role_name (admission.rs), joining the roles it has to the
-- tenants naming them: by this index, not a scan of every tenant at every
-- connection (56 ms at 100,000 tenants).
CREATE INDEX tenants_role_name ON tenant.tenants (role_name) WHERE role_name IS NOT NULL;

-- 0.7.0: tenant-router keeps each tenant's row until the catalog notifies
-- it of a change, so every change of the tables it reads notifies
-- pg_tenant_catalog, however it is made: the functions here (which notify
-- too; PostgreSQL sends one notification per payload and transaction), an
-- UPDATE by hand, COPY, a data-only restore, TRUNCATE. Statement triggers
-- with transition tables: one call per statement, whatever its rows.
CREATE FUNCTION tenant._notify_catalog() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE'
       OR TG_TABLE_NAME OPERATOR(pg_catalog.=) 'defaults' THEN
        -- Every tenant (defaults apply to all; TRUNCATE names no rows).
        PERFORM pg_catalog.pg_notify('pg_tenant_catalog', '*');
    ELSIF TG_TABLE_NAME OPERATOR(pg_catalog.=) 'tenants' THEN
        IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
            PERFORM pg_catalog.pg_notify('pg_tenant_catalog', n.id) FROM new_rows n;
        END IF;
        IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
            PERFORM pg_catalog.pg_notify('pg_tenant_catalog', o.id) FROM old_rows o;
        END IF;
    ELSE
        -- tenant.tenant_secrets: the secret comes with the tenant's row.
        IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
            PERFORM pg_catalog.pg_notify('pg_tenant_catalog', n.tenant_id) FROM new_rows n;
        END IF;
        IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
            PERFORM pg_catalog.pg_notify('pg_tenant_catalog', o.tenant_id) FROM old_rows o;
        END IF;
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION tenant._notify_catalog IS 'pg_tenant: notifies pg_tenant_catalog of every change of tenant.tenants, tenant.defaults and tenant.tenant_secrets (statement triggers), so tenant-router drops the rows it keeps';
REVOKE EXECUTE ON FUNCTION tenant._notify_catalog() FROM PUBLIC;
CREATE TRIGGER notify_router_insert AFTER INSERT ON tenant.tenants
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
CREATE TRIGGER notify_router_update AFTER UPDATE ON tenant.tenants
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
CREATE TRIGGER notify_router_delete AFTER DELETE ON tenant.tenants
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
CREATE TRIGGER notify_router_truncate AFTER TRUNCATE ON tenant.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
CREATE TRIGGER notify_router AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenant.defaults
    FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
