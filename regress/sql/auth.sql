-- Authenticating the tenant (pg_tenant 0.3.0): tenant secrets, login
-- verifiers for the router, and login_roles.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\pset null '(null)'
DO $$ DECLARE r text; BEGIN
  FOREACH r IN ARRAY ARRAY['regress_auth_ops', 'regress_auth_router', 'regress_pw', 'regress_pw_indirect',
    'regress_pw_md5', 'regress_pw_super', 'regress_pw_bypass', 'regress_pw_repl', 'regress_pw_nologin',
    'regress_pw_outsider', 'regress_pw_expired', 'regress_pw_valid'] LOOP
    EXECUTE format('DROP ROLE IF EXISTS %I', r);
  END LOOP; END $$;

-- set_password with a plaintext password stores a SCRAM-SHA-256 verifier
-- (4096 iterations, a 16-byte random salt) that verifies that password
-- (checked with Python's hashlib) and no other.
SELECT tenant.set_password('acme', 'correct horse battery');
SELECT verifier LIKE 'SCRAM-SHA-256$4096:%' AS scram_4096,
       length(decode(split_part(split_part(verifier, '$', 2), ':', 2), 'base64')) AS salt_bytes,
       regress.scram_verifies(verifier, 'correct horse battery') AS verifies,
       regress.scram_verifies(verifier, 'correct horse batterY') AS other_password_verifies,
       updated_at IS NOT NULL AS stamped
  FROM tenant.tenant_secrets WHERE tenant_id = 'acme';
-- The checker is right about PostgreSQL's own verifiers too.
CREATE ROLE regress_pw LOGIN PASSWORD 'pw-one' IN ROLE tenant_app;
SELECT regress.scram_verifies(rolpassword, 'pw-one') AS pg_verifier_verifies,
       regress.scram_verifies(rolpassword, 'pw-two') AS pg_verifier_other
  FROM pg_authid WHERE rolname = 'regress_pw';
-- The same password again: a new salt, a new verifier.
CREATE TEMP TABLE before AS SELECT verifier FROM tenant.tenant_secrets WHERE tenant_id = 'acme';
SELECT tenant.set_password('acme', 'correct horse battery');
SELECT s.verifier <> b.verifier AS new_salt, regress.scram_verifies(s.verifier, 'correct horse battery') AS verifies
  FROM tenant.tenant_secrets s, before b WHERE s.tenant_id = 'acme';

-- A precomputed verifier (made outside the database) is stored as it is.
SELECT tenant.set_password('globex', regress.scram_verifier('pencil', 'c2FsdHNhbHRzYWx0c2FsdA==', 10000));
SELECT verifier = regress.scram_verifier('pencil', 'c2FsdHNhbHRzYWx0c2FsdA==', 10000) AS stored_as_is,
       regress.scram_verifies(verifier, 'pencil') AS verifies
  FROM tenant.tenant_secrets WHERE tenant_id = 'globex';
-- NULL removes the secret.
SELECT tenant.set_password('globex', NULL);
SELECT count(*) AS globex_secrets FROM tenant.tenant_secrets WHERE tenant_id = 'globex';

-- Bad input, each with its SQLSTATE; the stored secret does not change.
DELETE FROM before; INSERT INTO before SELECT verifier FROM tenant.tenant_secrets WHERE tenant_id = 'acme';
SELECT regress.try($$SELECT tenant.set_password('nope', 'x')$$);
SELECT regress.try($$SELECT tenant.set_password('acme', '')$$);
SELECT regress.try($$SELECT tenant.set_password('acme', 'SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA')$$);
SELECT regress.try($$SELECT tenant.set_password('acme', 'SCRAM-SHA-256$0:c2FsdA==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=')$$);
SELECT regress.try($$SELECT tenant.set_password('acme', 'SCRAM-SHA-256$4096:not base64$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=')$$);
SELECT regress.try($$SELECT tenant.set_password('acme', 'SCRAM-SHA-256$')$$);
SELECT s.verifier = b.verifier AS unchanged FROM tenant.tenant_secrets s, before b WHERE s.tenant_id = 'acme';
-- The table refuses anything but a verifier even from a superuser.
SELECT regress.try($$INSERT INTO tenant.tenant_secrets VALUES ('globex', 'plaintext')$$);
-- Dropping a tenant drops its secret.
SELECT (tenant.create_tenant('gone')).id AS created;
SELECT tenant.set_password('gone', 'x');
SELECT tenant.drop_tenant('gone');
SELECT count(*) AS secrets_of_gone FROM tenant.tenant_secrets WHERE tenant_id = 'gone';

-- Roles for login_verifier: application roles (members of tenant_app,
-- directly or through a tenant role) and every kind that must get NULL.
CREATE ROLE regress_pw_indirect LOGIN PASSWORD 'pw' IN ROLE regress_initech;
SET password_encryption = 'md5';
-- PostgreSQL 18 warns that MD5 passwords are deprecated (md5_password_warnings,
-- a setting 15-17 do not have); the md5 verifier is what is tested here.
SELECT current_setting('server_version_num')::int >= 180000 AS has_md5_warnings \gset
\if :has_md5_warnings
SET md5_password_warnings = off;
\endif
CREATE ROLE regress_pw_md5 LOGIN PASSWORD 'pw' IN ROLE tenant_app;
RESET password_encryption;
\if :has_md5_warnings
RESET md5_password_warnings;
\endif
CREATE ROLE regress_pw_super LOGIN SUPERUSER PASSWORD 'pw' IN ROLE tenant_app;
CREATE ROLE regress_pw_bypass LOGIN BYPASSRLS PASSWORD 'pw' IN ROLE tenant_app;
CREATE ROLE regress_pw_repl LOGIN REPLICATION PASSWORD 'pw' IN ROLE tenant_app;
CREATE ROLE regress_pw_nologin NOLOGIN PASSWORD 'pw' IN ROLE tenant_app;
CREATE ROLE regress_pw_outsider LOGIN PASSWORD 'pw';
CREATE ROLE regress_pw_expired LOGIN PASSWORD 'pw' VALID UNTIL '2000-01-01' IN ROLE tenant_app;
CREATE ROLE regress_pw_valid LOGIN PASSWORD 'pw' VALID UNTIL 'infinity' IN ROLE tenant_app;
CREATE ROLE regress_auth_ops LOGIN IN ROLE tenant_admin;
CREATE ROLE regress_auth_router LOGIN IN ROLE tenant_router;

-- Only tenant_router may read secrets and verifiers; nobody reads the table.
\c - regress_app
SET client_min_messages = warning;
SELECT regress.try($$SELECT * FROM tenant.tenant_secrets$$) AS read_table;
SELECT regress.try($$SELECT tenant.auth_secret('acme')$$) AS auth_secret;
SELECT regress.try($$SELECT tenant.login_verifier('regress_pw')$$) AS login_verifier;
SELECT regress.try($$SELECT tenant.set_password('acme', 'mine now')$$) AS set_password;
SELECT regress.try($$SELECT tenant._scram_verifier('x')$$) AS scram_verifier;
-- The same in a tenant session.
SELECT regress.enter('acme', 1);
SELECT regress.try($$SELECT * FROM tenant.tenant_secrets$$) AS read_table;
SELECT regress.try($$SELECT tenant.auth_secret('acme')$$) AS auth_secret;
SELECT regress.try($$SELECT tenant.login_verifier('regress_pw')$$) AS login_verifier;
SELECT regress.try($$SELECT tenant.set_password('acme', 'mine now')$$) AS set_password;
\c - regress_auth_ops
SET client_min_messages = warning;
SELECT regress.try($$SELECT tenant.set_password('globex', 'by the admin')$$) AS set_password;
SELECT regress.try($$SELECT * FROM tenant.tenant_secrets$$) AS read_table;
SELECT regress.try($$SELECT tenant.auth_secret('globex')$$) AS auth_secret;
SELECT regress.try($$SELECT tenant.login_verifier('regress_pw')$$) AS login_verifier;
\c - regress_auth_router
SET client_min_messages = warning;
\pset null '(null)'
SELECT regress.scram_verifies(tenant.auth_secret('globex'), 'by the admin') AS globex_secret_verifies;
SELECT tenant.auth_secret('initech') AS no_secret, tenant.auth_secret('nope') AS no_tenant,
       tenant.auth_secret(NULL) AS null_tenant;
SELECT regress.try($$SELECT * FROM tenant.tenant_secrets$$) AS read_table;
SELECT regress.try($$SELECT tenant.set_password('globex', 'router')$$) AS set_password;
-- login_verifier: the verifier of an application role, NULL otherwise.
SELECT r AS role, CASE WHEN v LIKE 'SCRAM-SHA-256$4096:%' THEN 'SCRAM-SHA-256' WHEN v ~ '^md5[0-9a-f]{32}$' THEN 'md5' ELSE v END AS verifier
  FROM unnest(ARRAY['regress_pw', 'regress_pw_indirect', 'regress_pw_md5', 'regress_pw_valid',
                    'regress_pw_super', 'regress_pw_bypass', 'regress_pw_repl', 'regress_pw_nologin',
                    'regress_pw_outsider', 'regress_pw_expired', 'regress_app', 'postgres',
                    'no_such_role', repeat('regress_pw', 10)]) WITH ORDINALITY AS x(r, n),
       LATERAL (SELECT tenant.login_verifier(r) AS v) l
 ORDER BY n;
SELECT tenant.login_verifier(NULL) AS null_role;
SELECT tenant.login_verifier('regress_pw') AS v \gset
\c - postgres
SET client_min_messages = warning;
SELECT rolpassword = :'v' AS same_as_pg_authid FROM pg_authid WHERE rolname = 'regress_pw';

-- Immune to the caller's search_path and operators: a router role with
-- its own "=" for text and name still gets the same answers.
GRANT CREATE ON DATABASE contrib_regression TO regress_auth_router;
\c - regress_auth_router
SET client_min_messages = warning;
CREATE SCHEMA rtrap;
CREATE FUNCTION rtrap.eq(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR rtrap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = rtrap.eq);
SET search_path = rtrap, pg_catalog, public;
SELECT 'a'::text = 'b'::text AS planted_operator_works;
SELECT tenant.auth_secret('nope') IS NULL AS still_null, tenant.login_verifier('regress_pw_outsider') IS NULL AS still_null;
\c - postgres
SET client_min_messages = warning;
DROP SCHEMA rtrap CASCADE;
REVOKE CREATE ON DATABASE contrib_regression FROM regress_auth_router;

-- login_roles: NULL lets any login role take the tenant; a list only its roles.
\set VERBOSITY default
SELECT id, login_roles FROM tenant.create_tenant('lr-open');
SELECT id, login_roles FROM tenant.create_tenant('lr-app', login_roles => '{regress_app}');
SELECT id, login_roles FROM tenant.create_tenant('lr-other', login_roles => '{regress_pw,regress_pw_valid}');
SELECT tenant.create_tenant('lr-bad', login_roles => '{regress_app,no_such_role}');
SELECT tenant.create_tenant('lr-bad', login_roles => '{}');
SELECT tenant.create_tenant('lr-bad', login_roles => '{NULL}');
SELECT tenant.alter_tenant('lr-open', login_roles => '{no_such_role}');
SELECT id, login_roles FROM tenant.tenant_list WHERE id LIKE 'lr-%' ORDER BY id;
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('lr-open', 1);
SELECT regress.enter('lr-app', 2);
SELECT regress.try($$SELECT regress.enter('lr-other', 3)$$);
SELECT regress.enter_subject('lr-other', 4, 'alice', '{}');
SELECT tenant.current_tenant_id() AS still;
\c - postgres
SELECT id, login_roles FROM tenant.alter_tenant('lr-other', login_roles => '{regress_app}');
SELECT id, login_roles FROM tenant.alter_tenant('lr-app', reset => '{login_roles}');
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('lr-other', 1);
SELECT regress.enter('lr-app', 2);
\c - postgres
SET client_min_messages = warning;
SELECT tenant.drop_tenant(id) FROM tenant.tenants WHERE id LIKE 'lr-%';
SELECT tenant.set_password('acme', NULL), tenant.set_password('globex', NULL);
-- tenant.audit() reports application roles holding the router's or the
-- operators' rights; the report clears once they are revoked.
GRANT tenant_router TO regress_pw;
GRANT tenant_admin TO regress_initech;
SELECT * FROM tenant.audit() WHERE problem LIKE 'application role % is a member of tenant\_%' ORDER BY 1, 2;
REVOKE tenant_router FROM regress_pw;
REVOKE tenant_admin FROM regress_initech;
SELECT count(*) AS reported FROM tenant.audit() WHERE problem LIKE 'application role % is a member of tenant\_%';
DROP ROLE regress_auth_ops, regress_auth_router, regress_pw, regress_pw_indirect, regress_pw_md5,
  regress_pw_super, regress_pw_bypass, regress_pw_repl, regress_pw_nologin, regress_pw_outsider,
  regress_pw_expired, regress_pw_valid;
