-- Privileged code is immune to what the caller controls
-- (docs/src/security/index.md): set_context reads the catalog as a superuser, and nothing the
-- caller put on its search_path may run there.
\set SHOW_CONTEXT never
SET client_min_messages = warning;

-- The attacker's objects: an "=" for text that raises when it runs (and
-- says as whom), and a temporary view named like the catalog table.
GRANT CREATE ON DATABASE contrib_regression TO regress_app;
\c - regress_app
SET client_min_messages = warning;
CREATE SCHEMA trap;
CREATE FUNCTION trap.eq(text, text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted operator ran as % (superuser: %)', current_user,
    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
END $$;
CREATE OPERATOR trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = trap.eq);
CREATE FUNCTION trap.boom() RETURNS text LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'planted relation was read as %', current_user; END $$;

-- Control: with trap first on the search_path the planted operator is
-- what "=" means for text, so it would run if anything resolved it there.
SET search_path = trap, pg_catalog, public;
SELECT 'a'::text = 'a'::text;

-- The attack: set_context with that search_path. The tenant is set, the
-- planted operator never runs, and the rows are acme's.
SELECT regress.enter('acme', 1);
SELECT tenant.current_tenant_id(), count(*) AS acme_rows FROM public.docs;
SHOW search_path;

-- pg_temp shadowing: a temporary view named tenants, searched first.
\c - regress_app
SET client_min_messages = warning;
CREATE TEMP VIEW tenants AS SELECT trap.boom() AS id;
SET search_path = pg_temp, tenant, trap, pg_catalog, public;
SELECT count(*) FROM tenants;
SELECT regress.enter('globex', 1);
SELECT tenant.current_tenant_id(), count(*) AS globex_rows FROM public.docs;

-- The same through a function the caller owns: set_context called from
-- inside it still resolves nothing of the caller's.
\c - regress_app
SET client_min_messages = warning;
CREATE FUNCTION trap.enter_via(t text) RETURNS text LANGUAGE sql
  SET search_path = trap, pg_catalog AS $$ SELECT regress.enter(t, 1) $$;
SELECT trap.enter_via('acme');
SELECT tenant.current_tenant_id();

\c - postgres
SET client_min_messages = warning;
DROP SCHEMA trap CASCADE;
REVOKE CREATE ON DATABASE contrib_regression FROM regress_app;
