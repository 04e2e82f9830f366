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
