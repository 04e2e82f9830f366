-- 0.9.0: placement (README "Scaling out"): fences.
--
-- A tenant lives on one server. A server's database refuses the contexts
-- of the tenants fenced in it (set_context and set_context_sealed raise
-- 55000), so a tenant moved to another server never runs on two: the move
-- fences it on the source before the catalog names the target. Fences are
-- per database and need no catalog: they work in a catalog database, a
-- tenant database and a database on another server alike, for tenants
-- this database's catalog may not know.
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
