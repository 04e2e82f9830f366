-- pg_tenant 0.2.0 -> 0.3.0 (frozen with the 0.3.0 release; never edit).
--
-- Like the install script, this runs with search_path = tenant: its DDL
-- names every function, operator and type with its schema, and it first
-- refuses a schema "tenant" that is not the extension's alone.
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
--   tenant_router or tenant_admin, or hold other rights beyond a tenant
--   (tenant._role_problem), roles that run tenant sessions with another
--   tenant's privileges, and application roles with CREATE on public;
-- * create_tenant/alter_tenant no longer GRANT tenant_app: role_name must
--   already be an application role without such rights
--   (tenant._check_roles); only the roles a call sets are checked, so a
--   stored role renamed or dropped since never blocks disable_tenant;
-- * tenant.login_verifier refuses every role tenant._role_problem names;
-- * the re-created functions keep the privileges they had.
-- The pg_tenant.subject and pg_tenant.claims settings live in the shared
-- library, which also still runs a 0.2.0 schema until this update ran.
\echo Use "ALTER EXTENSION pg_tenant UPDATE TO '0.3.0'" to load this file. \quit

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

ALTER TABLE tenant.tenants ADD COLUMN
    -- 0.3.0: the login roles that may take this tenant (NULL: any).
    login_roles        pg_catalog.text[]
                       CONSTRAINT login_roles_listed
                       CHECK (pg_catalog.cardinality(login_roles) OPERATOR(pg_catalog.>) 0
                              AND pg_catalog.array_position(login_roles, NULL::pg_catalog.text) IS NULL);

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

-- Unchanged functions whose bodies now name their operators and functions
-- with pg_catalog too (CREATE OR REPLACE keeps their privileges).
CREATE OR REPLACE FUNCTION tenant._get(tenant_id text) RETURNS tenant.tenants
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

CREATE OR REPLACE FUNCTION tenant.drop_tenant(id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    PERFORM tenant._get(id);
    DELETE FROM tenant.tenants x WHERE x.id OPERATOR(pg_catalog.=) drop_tenant.id;
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', drop_tenant.id);
END
$fn$;

CREATE OR REPLACE FUNCTION tenant.set_defaults(
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
    PERFORM pg_catalog.pg_notify('pg_tenant_catalog', '*');
    RETURN d;
EXCEPTION WHEN check_violation OR not_null_violation THEN
    RAISE EXCEPTION 'invalid tenant defaults: %', SQLERRM USING ERRCODE = '22023';
END
$fn$;

CREATE OR REPLACE FUNCTION tenant.router_catalog(only_id text DEFAULT NULL)
RETURNS TABLE (id text, enabled boolean, isolation text, database_name text,
               schema_name text, max_connections integer, qps_limit integer,
               burst_multiplier real, max_query_ms integer, max_result_bytes bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT l.id, l.enabled, l.isolation, l.database_name::text, l.schema_name::text,
           l.max_connections, l.qps_limit, l.burst_multiplier, l.max_query_ms, l.max_result_bytes
    FROM tenant.tenant_list l
    WHERE only_id IS NULL OR l.id OPERATOR(pg_catalog.=) only_id
    ORDER BY l.id
$fn$;

-- New trailing argument: drop the old signatures (enable/disable depend on
-- alter_tenant) and create them again. Their privileges are kept: what an
-- operator granted or revoked on the old functions (and what pg_dump counts
-- as the extension's initial privileges) is captured first and applied to
-- the new ones.
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
        'tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool)'::pg_catalog.regprocedure,
        'tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool)'::pg_catalog.regprocedure]);
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
             coalesce(allowed_operations, '{select,insert,update,delete}'::pg_catalog.text[]),
             coalesce(dedicated_pool, false), pool_size, min_idle, coalesce(enabled, true),
             pg_catalog.now(), pg_catalog.now(), coalesce(allow_large_objects, false), login_roles);
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
    login_roles text[] DEFAULT NULL
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
        allow_large_objects = t.allow_large_objects, login_roles = t.login_roles
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
            WHEN 'create_tenant' THEN 'tenant.create_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[])'
            WHEN 'alter_tenant' THEN 'tenant.alter_tenant(pg_catalog.text, pg_catalog.text, pg_catalog.text, pg_catalog.name, pg_catalog.name, pg_catalog.name, pg_catalog.int4, pg_catalog.int4, pg_catalog.float4, pg_catalog.int4, pg_catalog.int8, pg_catalog.bool, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.int4, pg_catalog.int4, pg_catalog.bool, pg_catalog.text[], pg_catalog.bool, pg_catalog.text[])'
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
REVOKE EXECUTE ON FUNCTION tenant._check_roles(name, text[]) FROM PUBLIC;

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
    tenant_id  pg_catalog.text PRIMARY KEY REFERENCES tenant.tenants (id) ON DELETE CASCADE,
    verifier   pg_catalog.text NOT NULL
               CONSTRAINT scram_verifier CHECK (verifier OPERATOR(pg_catalog.~~) 'SCRAM-SHA-256$%'::pg_catalog.text),
    updated_at pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now()
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
-- SUPERUSER, BYPASSRLS, REPLICATION, CREATEROLE, CREATEDB, nor any
-- membership that tenant._role_problem names (a superuser or BYPASSRLS
-- role, pg_monitor, pg_read_server_files, tenant_router, ...). NULL in
-- every other case, whatever the reason (including a role that does not
-- exist). An md5 verifier is password-equivalent: the router can log in
-- as that role with it, which is why only confined application roles get
-- one.
CREATE FUNCTION tenant.login_verifier(role text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT a.rolpassword FROM pg_catalog.pg_authid a
     WHERE a.rolname::pg_catalog.text OPERATOR(pg_catalog.=) $1
       AND a.rolcanlogin AND NOT a.rolsuper AND NOT a.rolbypassrls AND NOT a.rolreplication
       AND (a.rolvaliduntil IS NULL
            OR a.rolvaliduntil OPERATOR(pg_catalog.>) pg_catalog.statement_timestamp())
       AND pg_catalog.pg_has_role(a.oid, 'tenant_app'::pg_catalog.name, 'MEMBER')
       AND tenant._role_problem(a.oid) IS NULL
$fn$;
COMMENT ON FUNCTION tenant.login_verifier IS 'pg_tenant: the password verifier of an application role (LOGIN, member of tenant_app, not expired, nothing tenant._role_problem names), for tenant-router (granted to tenant_router only)';

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

-- Create (or check) an application role: LOGIN NOSUPERUSER NOBYPASSRLS,
-- with the grants the tenant context needs. An existing role is checked,
-- not changed: a superuser, a BYPASSRLS role, a role with any other right
-- beyond a tenant (tenant._role_problem) or the owner of a protected
-- table cannot be an application role.
CREATE OR REPLACE FUNCTION tenant.create_app_role(role_name name, password text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    r pg_roles;
    owned text;
    problem text;
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
        problem := tenant._role_problem(r.oid);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'role "%" % and cannot be an application role: its sessions would reach beyond their tenant', role_name, problem
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
