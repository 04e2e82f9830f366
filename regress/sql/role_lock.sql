-- Role lock (docs/src/security/index.md): a tenant with a role runs as that role
-- and cannot leave it.
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = error;
SELECT regress.enter('initech', 1);
SELECT current_user, session_user, tenant.current_tenant_id();
INSERT INTO docs (body) VALUES ('initech 1') RETURNING tenant_id, body;

-- Every way out is refused; the role and the rows stay.
SET ROLE regress_app;
SET ROLE NONE;
RESET ROLE;
SET LOCAL ROLE regress_app;
SET SESSION AUTHORIZATION regress_app;
RESET SESSION AUTHORIZATION;
DO $$ BEGIN EXECUTE 'SET ROLE NONE'; END $$;
SELECT current_user, count(*) AS initech_rows FROM docs;

-- DISCARD ALL (sent by client-side pools) keeps the role and the tenant.
DISCARD ALL;
SET client_min_messages = error;
SELECT current_user, tenant.current_tenant_id(), count(*) AS initech_rows FROM docs;

-- SECURITY DEFINER functions still work.
SELECT regress.whoami();
SELECT current_user;

-- set_config('role', ...) is refused too, even for the middle of a single
-- statement or block (switching away and back would lend the other role's
-- privileges to what runs in between); the session stays usable.
SELECT set_config('role', 'none', false);
SELECT count(*) FROM docs;
SELECT set_config('role', 'regress_app', false), count(*) FROM docs;
DO $$ BEGIN
  PERFORM set_config('role', 'regress_app', false);
  PERFORM set_config('role', 'regress_initech', false);
END $$;
SELECT current_user, count(*) AS initech_rows FROM docs;
SELECT 1;

-- A tenant without a role is locked to its login role: SET ROLE could
-- otherwise reach a role that bypasses row level security.
\c - regress_app
SET client_min_messages = error;
SELECT regress.enter('acme', 1);
SELECT current_user;
SET ROLE regress_initech;
SELECT current_user, count(*) AS acme_rows FROM docs;
RESET ROLE;

-- The role lock stays shut when re-asserting the role fails: after an
-- administrator removed the login role from the tenant role, DISCARD ALL
-- cannot switch back (and fails, rolled back), and the in-statement
-- set_config('role', ...) attack the lock exists to stop is still refused.
\c - postgres
CREATE FUNCTION regress.drop_membership(r regrole, m regrole) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM pg_catalog.pg_auth_members WHERE roleid = r AND member = m $$;
GRANT EXECUTE ON FUNCTION regress.drop_membership(regrole, regrole) TO regress_app;
\c - regress_app
\set SHOW_CONTEXT never
SET client_min_messages = error;
SELECT regress.enter('initech', 1);
SELECT regress.drop_membership('regress_initech', 'regress_app');
DISCARD ALL;
\echo :LAST_ERROR_SQLSTATE
SELECT current_user, tenant.current_tenant_id();
SELECT set_config('role', 'regress_app', false), count(*) FROM docs;
\echo :LAST_ERROR_SQLSTATE
DO $$ BEGIN PERFORM set_config('role', 'regress_app', false); END $$;
\echo :LAST_ERROR_SQLSTATE
SELECT current_user, count(*) AS initech_rows FROM docs;
\c - postgres
GRANT regress_initech TO regress_app;
DROP FUNCTION regress.drop_membership(regrole, regrole);
