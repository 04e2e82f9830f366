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
