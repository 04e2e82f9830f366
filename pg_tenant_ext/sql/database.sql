-- 0.8.0: database isolation (README "Database isolation").
--
-- A tenant database holds no catalog: the router carries the tenant's row
-- to it inside the signed context (tenant.set_context_sealed), and the
-- tenant database knows only which tenant it serves (tenant.bind_database).

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
    'upstream', x.j OPERATOR(pg_catalog.->>) 'upstream'::pg_catalog.text,
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
