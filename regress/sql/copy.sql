-- COPY FROM STDIN into protected tables from tenant sessions: rows land
-- for the session's tenant only; a row naming another tenant aborts the
-- whole COPY; read-only tenants and ineligible tables are refused.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE TABLE cp_items (id int GENERATED ALWAYS AS IDENTITY, tenant_id text NOT NULL,
                       sku text NOT NULL, qty int CHECK (qty >= 0), note text DEFAULT 'none',
                       total int GENERATED ALWAYS AS (qty * 10) STORED,
                       PRIMARY KEY (tenant_id, id));
SELECT tenant.protect('cp_items');
CREATE TABLE cp_log (tenant_id text, sku text);
CREATE FUNCTION cp_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO cp_log VALUES (NEW.tenant_id, NEW.sku); RETURN NULL; END $$;
CREATE TRIGGER cp_after AFTER INSERT ON cp_items FOR EACH ROW EXECUTE FUNCTION cp_after();
GRANT SELECT, INSERT ON cp_items, cp_log TO regress_app;
CREATE TABLE cp_plain (a int, b text);
GRANT SELECT, INSERT ON cp_plain TO regress_app;
-- Not eligible: a second INSERT policy, a BEFORE row trigger.
CREATE TABLE cp_extra (tenant_id text NOT NULL, v int);
SELECT tenant.protect('cp_extra');
CREATE POLICY cp_extra_small ON cp_extra AS RESTRICTIVE FOR INSERT WITH CHECK (v < 10);
CREATE TABLE cp_trig (tenant_id text NOT NULL, v int);
SELECT tenant.protect('cp_trig');
CREATE FUNCTION cp_before() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER cp_before BEFORE INSERT ON cp_trig FOR EACH ROW EXECUTE FUNCTION cp_before();
GRANT SELECT, INSERT ON cp_extra, cp_trig TO regress_app;
-- An integer tenant column, and a tenant that may not insert.
CREATE TABLE cp_num (org bigint NOT NULL, v int);
SELECT tenant.protect('cp_num', 'org');
GRANT SELECT, INSERT ON cp_num TO regress_app;
SELECT (tenant.create_tenant('4242')).id, (tenant.create_tenant('cp_noinsert', allowed_operations => '{select}')).id;

\c - regress_app
SET client_min_messages = warning;
-- Without a context: PostgreSQL's own refusal, as before.
COPY cp_items (sku, qty) FROM STDIN;
nope	1
\.
SELECT regress.enter('acme', 1);
-- Text format, tenant column left out: it defaults to the tenant.
COPY cp_items (sku, qty) FROM STDIN;
a-1	1
a-2	2
\.
-- CSV with the tenant column named: own rows pass.
COPY cp_items (tenant_id, sku, qty, note) FROM STDIN (FORMAT csv, HEADER true);
tenant_id,sku,qty,note
acme,a-3,3,"with, comma"
\.
-- One row naming another tenant: the whole COPY fails, nothing lands.
COPY cp_items (tenant_id, sku, qty) FROM STDIN (FORMAT csv);
acme,a-4,4
globex,g-evil,5
acme,a-5,5
\.
COPY cp_items (tenant_id, sku, qty) FROM STDIN (FORMAT csv);
,a-null,1
\.
-- Constraints behave as for INSERT.
COPY cp_items (sku, qty) FROM STDIN;
a-neg	-1
\.
SELECT tenant_id, sku, qty, note, total FROM cp_items ORDER BY id;
SELECT tenant_id, sku FROM cp_log ORDER BY sku;
-- (The binary format is loaded by drivers in router/tests/copy.rs.)
-- Ineligible tables and forms: a clear refusal.
COPY cp_extra (v) FROM STDIN;
1
\.
COPY cp_trig (v) FROM STDIN;
1
\.
COPY cp_items (sku, qty) FROM STDIN WHERE qty > 1;
a-w	3
\.
-- An unprotected table: PostgreSQL's COPY, untouched.
COPY cp_plain FROM STDIN;
1	plain
\.
SELECT * FROM cp_plain;

-- COPY FROM STDIN cannot run inside a function or DO block (PostgreSQL).
DO $$ BEGIN COPY cp_items (sku, qty) FROM STDIN; END $$;
DO $$ BEGIN EXECUTE 'COPY cp_items (sku, qty) FROM STDIN'; END $$;

-- A read-only tenant cannot load; a tenant without insert neither.
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('viewer', 1);
COPY cp_items (sku, qty) FROM STDIN;
v-1	1
\.
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('cp_noinsert', 1);
COPY cp_items (sku, qty) FROM STDIN;
n-1	1
\.
-- Integer tenant ids compare as the tenant's id.
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('4242', 1);
COPY cp_num (v) FROM STDIN;
1
\.
COPY cp_num (org, v) FROM STDIN;
4242	2
42	3
\.
SELECT org, v FROM cp_num ORDER BY v;
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('globex', 1);
SELECT count(*) AS globex_sees FROM cp_items;
COPY cp_items (sku, qty) FROM STDIN;
g-1	1
\.
SELECT tenant_id, sku FROM cp_items ORDER BY id;

\c - postgres
SET client_min_messages = warning;
SELECT tenant_id, count(*) FROM cp_items GROUP BY 1 ORDER BY 1;
DROP TABLE cp_items, cp_log, cp_plain, cp_extra, cp_trig, cp_num;
SELECT tenant.drop_tenant('4242'), tenant.drop_tenant('cp_noinsert');
DROP FUNCTION cp_after(), cp_before();
