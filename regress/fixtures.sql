-- Fixtures for the pg_tenant regress suite, loaded once as postgres into a
-- fresh database before the tests (scripts/regress).
\set ON_ERROR_STOP 1
CREATE EXTENSION pg_tenant;
CREATE EXTENSION plpython3u;
CREATE SCHEMA regress;

-- Stand-in for tenant-router: mints a context token for the calling
-- backend with the cluster's Ed25519 signing key (a copy readable by the
-- server, made by scripts/regress and passed as :signing_key_file). An
-- independent implementation of the token format in docs/src/concepts/context-token.md (Python's
-- cryptography package, i.e. OpenSSL), so the suite also checks that the
-- format is what we document. `key_file` lets a test sign with another key.
-- The backend's cancel key (which the router reads from BackendKeyData) is
-- read from the server process itself.
CREATE FUNCTION regress.signing_key_file() RETURNS text LANGUAGE sql IMMUTABLE
RETURN :'signing_key_file';
-- A set-subject token also signs `subject` and `claims` (after the nonce);
-- set-sealed the `document`, set-subject-sealed all three (0.8.0).
CREATE FUNCTION regress.token(action text, tenant text, nonce bigint, pid int DEFAULT pg_backend_pid(),
                              key_file text DEFAULT NULL, cancel_key int DEFAULT NULL,
                              subject text DEFAULT NULL, claims text DEFAULT NULL,
                              document text DEFAULT NULL) RETURNS text
LANGUAGE plpython3u SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
from cryptography.hazmat.primitives.serialization import load_pem_private_key
path = key_file
if path is None:
    path = plpy.execute("SELECT regress.signing_key_file() AS f")[0]["f"]
with open(path, "rb") as f:
    key = load_pem_private_key(f.read(), password=None)
import ctypes
key_of_backend = cancel_key
if key_of_backend is None:
    me = ctypes.CDLL(None)
    if int(plpy.execute("SHOW server_version_num")[0]["server_version_num"]) < 180000:
        key_of_backend = ctypes.c_int32.in_dll(me, "MyCancelKey").value
    else:
        # PostgreSQL 18: the key is MyCancelKeyLength bytes, sent as they
        # are in BackendKeyData (4 for protocol 3.0), read big-endian.
        assert ctypes.c_int.in_dll(me, "MyCancelKeyLength").value == 4
        raw = bytes((ctypes.c_uint8 * 4).in_dll(me, "MyCancelKey"))
        key_of_backend = int.from_bytes(raw, "big", signed=True)
parts = ["pg_tenant/v2", action, tenant or "", str(pid), str(key_of_backend), str(nonce)]
if action == "set-subject":
    parts += [subject or "", claims or ""]
elif action == "set-sealed":
    parts += [document or ""]
elif action == "set-subject-sealed":
    parts += [subject or "", claims or "", document or ""]
msg = b"\0".join(x.encode() for x in parts)
return "v2.%d.%s" % (nonce, key.sign(msg).hex())
$$;
-- What the router does after authentication.
CREATE FUNCTION regress.enter(tenant text, nonce bigint) RETURNS text
LANGUAGE sql AS $$ SELECT tenant.set_context(tenant, regress.token('set', tenant, nonce)) $$;
CREATE FUNCTION regress.leave(nonce bigint) RETURNS void
LANGUAGE sql AS $$ SELECT tenant.clear_context(regress.token('clear', NULL, nonce)) $$;
-- The same with the end user (a router that authenticated a subject).
CREATE FUNCTION regress.enter_subject(tenant text, nonce bigint, subject text, claims text) RETURNS text
LANGUAGE sql AS $$
  SELECT tenant.set_context(tenant, regress.token('set-subject', tenant, nonce, subject => subject, claims => claims),
                            subject, claims) $$;
-- Run a statement as the caller; its SQLSTATE and message, or 'ok'.
CREATE FUNCTION regress.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- EXPLAIN (COSTS OFF) of a query in PostgreSQL 17's notation on every
-- version: up to 16 an initPlan shows as "InitPlan 1 (returns $0)" and its
-- value as $0 (and a Gather lists "Params Evaluated: $0"); from 17 as
-- "InitPlan 1" and "(InitPlan 1).col1" (no Params Evaluated line). The plan
-- itself is unchanged: node for node, condition for condition.
CREATE FUNCTION regress.explain(q text) RETURNS TABLE ("QUERY PLAN" text) LANGUAGE plpgsql AS $$
DECLARE
  lines text[] := '{}';
  l text;
  m text[];
  params text[] := '{}';
  names text[] := '{}';
  i int;
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    lines := lines || l;
  END LOOP;
  FOREACH l IN ARRAY lines LOOP
    m := regexp_match(l, 'InitPlan (\d+) \(returns (\$\d+)\)$');
    IF m IS NOT NULL THEN
      params := params || m[2];
      names := names || format('(InitPlan %s).col1', m[1]);
    END IF;
  END LOOP;
  FOREACH l IN ARRAY lines LOOP
    CONTINUE WHEN l ~ '^\s*Params Evaluated: ';
    l := regexp_replace(l, 'InitPlan (\d+) \(returns \$\d+\)$', 'InitPlan \1');
    FOR i IN 1 .. coalesce(array_length(params, 1), 0) LOOP
      l := regexp_replace(l, '\' || params[i] || '(?!\d)', names[i], 'g');
    END LOOP;
    "QUERY PLAN" := l;
    RETURN NEXT;
  END LOOP;
END $$;
-- SCRAM-SHA-256 (RFC 5802/7677) in Python's hashlib, independent of
-- PostgreSQL and of the extension: make a verifier from a password, salt
-- and iteration count, and check a stored verifier against a password.
CREATE FUNCTION regress.scram_verifier(password text, salt_b64 text, iterations int) RETURNS text
LANGUAGE plpython3u AS $$
import base64, hashlib, hmac
salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt_b64), iterations)
client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, salt_b64,
    base64.b64encode(hashlib.sha256(client_key).digest()).decode(), base64.b64encode(server_key).decode())
$$;
CREATE FUNCTION regress.scram_verifies(verifier text, password text) RETURNS boolean
LANGUAGE plpython3u AS $$
import re
m = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", verifier or "")
if not m:
    return False
expected = plpy.execute(plpy.prepare("SELECT regress.scram_verifier($1, $2, $3) AS v", ["text", "text", "int"]),
                        [password, m.group(2), int(m.group(1))])[0]["v"]
return expected == verifier
$$;
GRANT USAGE ON SCHEMA regress TO PUBLIC;

-- Tenants: two plain ones, one with a locked role, ten for the parallel test.
SELECT tenant.create_tenant('acme', 'Acme Corp') IS NOT NULL AS created;
SELECT tenant.create_tenant('globex', 'Globex') IS NOT NULL AS created;
-- A tenant role must already be an application role (a member of
-- tenant_app): create_tenant grants nothing.
CREATE ROLE regress_initech NOLOGIN IN ROLE tenant_app;
SELECT tenant.create_tenant('initech', role_name => 'regress_initech') IS NOT NULL AS created;
SELECT count(tenant.create_tenant('t' || i)) FROM generate_series(0, 9) i;

-- The application role, as a user would create it.
SELECT tenant.create_app_role('regress_app');
-- The shared login role is a member of the tenant roles (set_context
-- switches to them) without inheriting their privileges: set_context
-- refuses an inheriting one.
ALTER ROLE regress_app NOINHERIT;
GRANT regress_initech TO regress_app;
GRANT USAGE, CREATE ON SCHEMA public TO regress_app;

-- A protected table with rows for two tenants.
CREATE TABLE docs (id serial PRIMARY KEY, tenant_id text NOT NULL, body text NOT NULL);
SELECT tenant.protect('docs');
INSERT INTO docs (tenant_id, body) VALUES
  ('acme', 'acme 1'), ('acme', 'acme 2'), ('acme', 'acme 3'),
  ('globex', 'globex 1'), ('globex', 'globex 2');
GRANT SELECT, INSERT, UPDATE, DELETE ON docs TO regress_app, regress_initech;
GRANT USAGE ON SEQUENCE docs_id_seq TO regress_app, regress_initech;

-- A tenant allowed to run DDL, a read-only one, one that may not delete.
SELECT tenant.create_tenant('ddlco', allow_ddl => true) IS NOT NULL AS created;
SELECT tenant.create_tenant('viewer', read_only => true) IS NOT NULL AS created;
SELECT tenant.create_tenant('nodelete', allowed_operations => '{select,insert,update}') IS NOT NULL AS created;

-- A SECURITY DEFINER function owned by postgres, callable by tenants.
CREATE FUNCTION regress.whoami() RETURNS text LANGUAGE sql SECURITY DEFINER
AS $$ SELECT current_user || ' via ' || session_user $$;
