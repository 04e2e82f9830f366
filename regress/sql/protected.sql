-- 0.8.0: tenant.protect records what it protected (tenant.protected: the
-- table and its tenant column, dumped by pg_dump), and a table's
-- pg_tenant_isolation policy counts as protect's only while its expression
-- trees are those of protect's policy (compared with the extension's
-- reference policies, not as deparsed text).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- Every tenant column type protect supports, a column number shifted by a
-- dropped column, a typmod and a collation: each is recorded, and each
-- policy is recognised as protect's.
CREATE TABLE pr_text (tenant_id text NOT NULL, v int);
CREATE TABLE pr_varchar (gone int, org varchar(20) COLLATE "C" NOT NULL, v int);
ALTER TABLE pr_varchar DROP COLUMN gone;
CREATE TABLE pr_name (t name, v int);
CREATE TABLE pr_uuid (v int, t uuid);
CREATE TABLE pr_int2 (t int2, v int);
CREATE TABLE pr_int4 (t int4, v int);
CREATE TABLE pr_int8 (v int, t int8);
SELECT tenant.protect('pr_text'), tenant.protect('pr_varchar', 'org'), tenant.protect('pr_name', 't'),
       tenant.protect('pr_uuid', 't'), tenant.protect('pr_int2', 't'), tenant.protect('pr_int4', 't'),
       tenant.protect('pr_int8', 't');
SELECT relid, tenant_column, tenant._isolates(relid) AS isolates, tenant._tenant_column(relid) AS column_read
  FROM tenant.protected WHERE relid::text LIKE 'pr\_%' ORDER BY relid::text;
SELECT count(*) AS reported FROM tenant.audit() WHERE object LIKE 'public.pr\_%';
-- Protecting again with another column moves the record with the policy.
ALTER TABLE pr_int4 ADD COLUMN t2 int4;
SELECT tenant.protect('pr_int4', 't2');
SELECT tenant_column, tenant._isolates('pr_int4') AS isolates FROM tenant.protected WHERE relid = 'pr_int4'::regclass;
-- A column default changed or dropped does not change what is protected.
ALTER TABLE pr_text ALTER COLUMN tenant_id DROP DEFAULT;
SELECT tenant._tenant_column('pr_text') AS column_read, tenant._isolates('pr_text') AS isolates;

-- A protected table's policy altered since: no longer protect's, and
-- audit() says so with the recorded column in its fix; COPY refuses it.
ALTER POLICY pg_tenant_isolation ON pr_text
  USING (tenant_id = (SELECT tenant.current_tenant_id()) OR v = 0)
  WITH CHECK (tenant_id = (SELECT tenant.current_tenant_id()) OR v = 0);
SELECT tenant._isolates('pr_text') AS isolates;
SELECT * FROM tenant.audit() WHERE object = 'public.pr_text';
GRANT SELECT, INSERT ON pr_text TO regress_app;
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('acme', 1);
COPY pr_text (v) FROM STDIN;
1
\.
\echo :LAST_ERROR_SQLSTATE
\c - postgres
SET client_min_messages = warning;
-- Only WITH CHECK altered (to the same comparison with another column): not
-- protect's either.
SELECT tenant.protect('pr_text');
ALTER TABLE pr_text ADD COLUMN other text;
ALTER POLICY pg_tenant_isolation ON pr_text WITH CHECK (other = (SELECT tenant.current_tenant_id()));
SELECT tenant._isolates('pr_text') AS isolates;
-- The fix the report names clears it; then COPY loads for the tenant.
SELECT tenant.protect('pr_text', 'tenant_id');
SELECT count(*) AS reported FROM tenant.audit() WHERE object = 'public.pr_text';
\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('acme', 1);
COPY pr_text (v) FROM STDIN;
1
\.
SELECT tenant_id, v FROM pr_text;
\c - postgres
SET client_min_messages = warning;

-- A policy protect did not write, even word for word the same, is not
-- recorded: not protect's until recorded. The record functions write only
-- what the catalog shows.
CREATE TABLE pr_hand (tenant_id text NOT NULL);
ALTER TABLE pr_hand ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY pg_tenant_isolation ON pr_hand AS PERMISSIVE FOR ALL TO PUBLIC
  USING (tenant_id = (SELECT tenant.current_tenant_id())) WITH CHECK (tenant_id = (SELECT tenant.current_tenant_id()));
SELECT tenant._isolates('pr_hand') AS isolates, tenant._tenant_column('pr_hand') AS column_read;
CREATE TABLE pr_fake (tenant_id text NOT NULL);
ALTER TABLE pr_fake ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY pg_tenant_isolation ON pr_fake USING (true) WITH CHECK (true);
GRANT SELECT ON pr_fake TO regress_app;
\c - regress_app
SET client_min_messages = warning;
-- Anyone may ask for a table to be recorded (protect runs as its caller);
-- only a table with protect's policy on that column is: pr_hand (word for
-- word protect's), not pr_fake.
SELECT tenant._record_protected('{pr_fake,pr_hand}', 'tenant_id');
SELECT relid FROM tenant.protected WHERE relid IN ('pr_fake'::regclass, 'pr_hand'::regclass) ORDER BY relid::text;
-- ... and forgotten only once it has no pg_tenant_isolation policy.
SELECT tenant._forget_protected('{pr_hand,pr_int8}');
SELECT relid FROM tenant.protected WHERE relid IN ('pr_hand'::regclass, 'pr_int8'::regclass) ORDER BY relid::text;
-- The table itself is not writable; reading it is (like pg_policy).
SELECT regress.try($$INSERT INTO tenant.protected VALUES ('pr_fake', 'tenant_id')$$) AS insert_record;
SELECT regress.try($$DELETE FROM tenant.protected$$) AS delete_records;
SELECT regress.try($$UPDATE tenant.protected SET tenant_column = 'x'$$) AS update_records;
\c - postgres
SET client_min_messages = warning;
SELECT object, problem FROM tenant.audit() WHERE object IN ('public.pr_fake', 'public.pr_hand') AND problem LIKE 'policy%' ORDER BY object;
SELECT tenant.protect('pr_fake');
SELECT tenant._isolates('pr_fake') AS isolates, tenant._tenant_column('pr_fake') AS column_read;

-- Partitions and children are recorded as protect (or the event trigger)
-- protects them; unprotect forgets the tree; dropped tables are forgotten.
CREATE TABLE pr_parted (tenant_id text NOT NULL, k int) PARTITION BY RANGE (k);
SELECT tenant.protect('pr_parted');
CREATE TABLE pr_parted_1 PARTITION OF pr_parted FOR VALUES FROM (0) TO (10);
CREATE TABLE pr_parted_2 (tenant_id text NOT NULL, k int);
ALTER TABLE pr_parted ATTACH PARTITION pr_parted_2 FOR VALUES FROM (10) TO (20);
SELECT relid, tenant_column, tenant._isolates(relid) AS isolates
  FROM tenant.protected WHERE relid::text LIKE 'pr\_parted%' ORDER BY relid::text;
SELECT tenant.unprotect('pr_parted');
SELECT count(*) AS recorded FROM tenant.protected WHERE relid::text LIKE 'pr\_parted%';
SELECT tenant.protect('pr_parted');
DROP TABLE pr_parted_2;
SELECT relid FROM tenant.protected WHERE relid::text LIKE 'pr\_parted%' ORDER BY relid::text;
DROP TABLE pr_parted, pr_text, pr_varchar, pr_name, pr_uuid, pr_int2, pr_int4, pr_int8, pr_hand, pr_fake;
SELECT count(*) AS recorded FROM tenant.protected WHERE relid::text LIKE 'pr\_%';

-- A temporary table dropped at the end of its session or transaction (ON
-- COMMIT DROP) fires no sql_drop trigger: its record stays, with an oid a
-- restored database gives another table. pg_dump leaves such records (and
-- those of temporary tables) out; a permanent table's record is dumped.
CREATE TABLE pr_kept (tenant_id text NOT NULL);
SELECT tenant.protect('pr_kept');
CREATE TEMP TABLE pr_temp (tenant_id text NOT NULL);
SELECT tenant.protect('pr_temp');
BEGIN;
CREATE TEMP TABLE pr_oncommit (tenant_id text NOT NULL) ON COMMIT DROP;
SELECT tenant.protect('pr_oncommit');
SELECT 'pr_oncommit'::regclass::oid AS gone_oid \gset
COMMIT;
SELECT count(*) AS left_behind FROM tenant.protected WHERE relid::oid = :gone_oid;
SELECT e.extcondition[pg_catalog.array_position(e.extconfig, 'tenant.protected'::regclass::oid)] AS dump_where
  FROM pg_extension e WHERE e.extname = 'pg_tenant' \gset
SELECT CASE WHEN relid = 'pr_kept'::regclass THEN 'pr_kept'
            WHEN relid = 'pr_temp'::regclass THEN 'pr_temp'
            WHEN relid::oid = :gone_oid THEN 'pr_oncommit (dropped)' END AS dumped
  FROM (SELECT * FROM tenant.protected :dump_where) d
 WHERE relid IN ('pr_kept'::regclass, 'pr_temp'::regclass) OR relid::oid = :gone_oid
 ORDER BY 1;
DROP TABLE pr_kept, pr_temp;
