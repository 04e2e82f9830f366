-- pg_tenant 0.3.0: tenant secrets, for a router that authenticates clients
-- itself.
--
-- tenant.tenant_secrets holds one SCRAM-SHA-256 verifier per tenant. No
-- role but the extension's owner (a superuser) has any privilege on it:
-- tenant_admin writes it only through tenant.set_password, tenant_router
-- reads one verifier at a time through tenant.auth_secret, and tenants
-- never reach it. tenant.login_verifier hands the router the password
-- verifier of an application role (from pg_authid, superuser-only), and of
-- no other kind of role. Every function here is SECURITY DEFINER with
-- search_path pinned to pg_catalog, pg_temp and schema-qualified names, so
-- nothing the caller created runs with the owner's rights.

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

-- 0.7.0: changes of secrets notify tenant-router (tenant._notify_catalog).
CREATE TRIGGER notify_router_insert AFTER INSERT ON tenant.tenant_secrets
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
CREATE TRIGGER notify_router_update AFTER UPDATE ON tenant.tenant_secrets
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
CREATE TRIGGER notify_router_delete AFTER DELETE ON tenant.tenant_secrets
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
CREATE TRIGGER notify_router_truncate AFTER TRUNCATE ON tenant.tenant_secrets
    FOR EACH STATEMENT EXECUTE FUNCTION tenant._notify_catalog();
