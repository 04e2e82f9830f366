-- Partitions and inheritance children of protected tables: a table's
-- policy applies only to queries naming that table, so tenant.protect
-- protects every partition and child (any depth), and the event trigger
-- pg_tenant_protect_children protects those added later. A tenant reading,
-- inserting or copying through a child stays within its own rows.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
-- A partitioned table with a sub-partitioned partition, and an inheritance
-- parent with a child, each made before protect.
CREATE TABLE pt_orders (id int NOT NULL, org_id text NOT NULL, item text) PARTITION BY RANGE (id);
CREATE TABLE pt_orders_1 PARTITION OF pt_orders FOR VALUES FROM (0) TO (100);
CREATE TABLE pt_orders_2 PARTITION OF pt_orders FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (id);
CREATE TABLE pt_orders_2a PARTITION OF pt_orders_2 FOR VALUES FROM (100) TO (150);
CREATE TABLE it_orders (id int NOT NULL, org_id text NOT NULL, item text);
CREATE TABLE it_orders_old (since date) INHERITS (it_orders);
SELECT tenant.protect('pt_orders', 'org_id');
SELECT tenant.protect('it_orders', 'org_id');
-- Added after protect: PARTITION OF, ATTACH PARTITION, a sub-partition,
-- INHERITS, INHERIT, and a child of a child.
CREATE TABLE pt_orders_3 PARTITION OF pt_orders FOR VALUES FROM (200) TO (300);
CREATE TABLE pt_orders_4 (id int NOT NULL, org_id text NOT NULL, item text);
ALTER TABLE pt_orders ATTACH PARTITION pt_orders_4 FOR VALUES FROM (300) TO (400);
CREATE TABLE pt_orders_2b PARTITION OF pt_orders_2 FOR VALUES FROM (150) TO (200);
CREATE TABLE it_orders_new (note text) INHERITS (it_orders);
CREATE TABLE it_orders_adopted (id int NOT NULL, org_id text NOT NULL, item text);
ALTER TABLE it_orders_adopted INHERIT it_orders;
CREATE TABLE it_orders_new_sub () INHERITS (it_orders_new);
-- Each one: row level security enabled and forced, its own policy on the
-- parent's column, the default and an index.
SELECT c.relname, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
       pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_get_expr(d.adbin, d.adrelid) AS org_default,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum) AS indexed
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'org_id'
  LEFT JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation'
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE (c.relname LIKE 'pt\_orders%' OR c.relname LIKE 'it\_orders%') AND c.relkind IN ('r', 'p')
 ORDER BY 1;
-- Two tenants' rows in every leaf (as postgres, which bypasses RLS).
INSERT INTO pt_orders VALUES (1, 'acme', 'a1'), (2, 'globex', 'g2'), (101, 'acme', 'a101'),
  (102, 'globex', 'g102'), (151, 'globex', 'g151'), (201, 'globex', 'g201'), (301, 'globex', 'g301');
INSERT INTO it_orders VALUES (1, 'acme', 'a1'), (2, 'globex', 'g2');
INSERT INTO it_orders_old VALUES (3, 'acme', 'a3', NULL), (4, 'globex', 'g4', NULL);
INSERT INTO it_orders_new VALUES (5, 'globex', 'g5', NULL);
INSERT INTO it_orders_adopted VALUES (6, 'globex', 'g6');
INSERT INTO it_orders_new_sub VALUES (7, 'globex', 'g7', NULL);
GRANT SELECT, INSERT ON pt_orders, pt_orders_1, pt_orders_2, pt_orders_2a, pt_orders_2b, pt_orders_3, pt_orders_4,
  it_orders, it_orders_old, it_orders_new, it_orders_adopted, it_orders_new_sub TO regress_app;

\c - regress_app
SET client_min_messages = warning;
SELECT regress.enter('acme', 1);
-- Reading a child directly: only the tenant's rows.
SELECT 'pt_orders_1' AS tbl, id, org_id FROM pt_orders_1
UNION ALL SELECT 'pt_orders_2', id, org_id FROM pt_orders_2
UNION ALL SELECT 'pt_orders_2a', id, org_id FROM pt_orders_2a
UNION ALL SELECT 'pt_orders_2b', id, org_id FROM pt_orders_2b
UNION ALL SELECT 'pt_orders_3', id, org_id FROM pt_orders_3
UNION ALL SELECT 'pt_orders_4', id, org_id FROM pt_orders_4
UNION ALL SELECT 'it_orders_old', id, org_id FROM it_orders_old
UNION ALL SELECT 'it_orders_new', id, org_id FROM it_orders_new
UNION ALL SELECT 'it_orders_adopted', id, org_id FROM it_orders_adopted
UNION ALL SELECT 'it_orders_new_sub', id, org_id FROM it_orders_new_sub
ORDER BY 1, 2;
-- Inserting another tenant's row through a child: refused.
SELECT regress.try($$INSERT INTO pt_orders_1 VALUES (10, 'globex', 'evil')$$) AS partition;
SELECT regress.try($$INSERT INTO pt_orders_2a VALUES (110, 'globex', 'evil')$$) AS sub_partition;
SELECT regress.try($$INSERT INTO pt_orders_3 VALUES (210, 'globex', 'evil')$$) AS created_after;
SELECT regress.try($$INSERT INTO pt_orders_4 VALUES (310, 'globex', 'evil')$$) AS attached;
SELECT regress.try($$INSERT INTO pt_orders_2b VALUES (160, 'globex', 'evil')$$) AS sub_partition_after;
SELECT regress.try($$INSERT INTO it_orders_old VALUES (10, 'globex', 'evil')$$) AS child;
SELECT regress.try($$INSERT INTO it_orders_new VALUES (11, 'globex', 'evil')$$) AS inherits;
SELECT regress.try($$INSERT INTO it_orders_adopted VALUES (12, 'globex', 'evil')$$) AS inherit;
SELECT regress.try($$INSERT INTO it_orders_new_sub VALUES (13, 'globex', 'evil')$$) AS grandchild;
-- COPY into a child with another tenant's row: refused, nothing lands.
COPY pt_orders_3 (id, org_id, item) FROM STDIN (FORMAT csv);
211,acme,ok
212,globex,evil
\.
COPY it_orders_new (id, org_id, item) FROM STDIN (FORMAT csv);
14,globex,evil
\.
-- Controls: the tenant's own rows go in through a child (the tenant column
-- defaults to the tenant) and are visible.
INSERT INTO pt_orders_3 (id, item) VALUES (220, 'mine');
INSERT INTO pt_orders_4 VALUES (320, 'acme', 'mine');
INSERT INTO it_orders_adopted (id, item) VALUES (20, 'mine');
COPY pt_orders_2b (id, item) FROM STDIN;
170	mine
\.
COPY it_orders_new_sub (id, item) FROM STDIN;
21	mine
\.
SELECT tableoid::regclass::text AS tbl, id, org_id, item FROM pt_orders WHERE item = 'mine'
UNION ALL SELECT tableoid::regclass::text, id, org_id, item FROM it_orders WHERE item = 'mine'
ORDER BY 1, 2;

\c - postgres
SET client_min_messages = warning;
SELECT tableoid::regclass::text AS tbl, org_id, count(*) FROM pt_orders GROUP BY 1, 2
UNION ALL SELECT tableoid::regclass::text, org_id, count(*) FROM it_orders GROUP BY 1, 2
ORDER BY 1, 2;

-- A non-superuser owner's partitions are protected as well.
CREATE ROLE regress_pt_owner;
GRANT CREATE ON SCHEMA public TO regress_pt_owner;
SET ROLE regress_pt_owner;
CREATE TABLE pt_owned (id int NOT NULL, tenant_id uuid NOT NULL) PARTITION BY HASH (id);
CREATE TABLE pt_owned_0 PARTITION OF pt_owned FOR VALUES WITH (MODULUS 2, REMAINDER 0);
SELECT tenant.protect('pt_owned');
CREATE TABLE pt_owned_1 PARTITION OF pt_owned FOR VALUES WITH (MODULUS 2, REMAINDER 1);
RESET ROLE;
SELECT c.relname, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced, pg_get_expr(p.polqual, p.polrelid) AS using_expr
  FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid
 WHERE c.relname LIKE 'pt\_owned%' AND c.relkind IN ('r', 'p') ORDER BY 1;

-- A foreign table cannot be protected: it is refused as a partition or
-- child of a protected table.
CREATE FOREIGN DATA WRAPPER pt_fdw;
CREATE SERVER pt_server FOREIGN DATA WRAPPER pt_fdw;
CREATE FOREIGN TABLE pt_orders_ft PARTITION OF pt_orders FOR VALUES FROM (400) TO (500) SERVER pt_server;
CREATE FOREIGN TABLE it_orders_ft (id int NOT NULL, org_id text NOT NULL, item text) SERVER pt_server;
ALTER FOREIGN TABLE it_orders_ft INHERIT it_orders;
SELECT count(*) AS foreign_children FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relkind = 'f';
DROP FOREIGN TABLE it_orders_ft;
DROP SERVER pt_server;
DROP FOREIGN DATA WRAPPER pt_fdw;

-- audit() names a child left unprotected (RLS no longer forced; made while
-- the event trigger was disabled) with its protected ancestor and the fix.
ALTER TABLE pt_orders_3 NO FORCE ROW LEVEL SECURITY;
ALTER EVENT TRIGGER pg_tenant_protect_children DISABLE;
CREATE TABLE it_orders_sneak () INHERITS (it_orders_new);
CREATE TABLE pt_orders_5 PARTITION OF pt_orders FOR VALUES FROM (500) TO (600);
ALTER EVENT TRIGGER pg_tenant_protect_children ENABLE;
SELECT * FROM tenant.audit() WHERE object LIKE 'public.pt\_%' OR object LIKE 'public.it\_%' ORDER BY 1, 2;
SELECT tenant.protect('pt_orders_3', 'org_id'), tenant.protect('it_orders_sneak', 'org_id'),
       tenant.protect('pt_orders_5', 'org_id');
SELECT * FROM tenant.audit() WHERE object LIKE 'public.pt\_%' OR object LIKE 'public.it\_%' ORDER BY 1, 2;

-- unprotect: refused on a child of a protected table (its rows are the
-- parent's); on the parent, undoes the whole tree.
SELECT tenant.unprotect('pt_orders_1', 'org_id');
SELECT tenant.unprotect('it_orders', 'org_id');
SELECT c.relname, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced, p.polname
  FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid
 WHERE c.relname LIKE 'it\_orders%' AND c.relkind = 'r' ORDER BY 1;
-- An unprotected tree gains nothing from new children.
CREATE TABLE it_orders_plain () INHERITS (it_orders);
SELECT relrowsecurity FROM pg_class WHERE relname = 'it_orders_plain';

DROP TABLE pt_orders, it_orders CASCADE;
DROP TABLE pt_owned;
REVOKE CREATE ON SCHEMA public FROM regress_pt_owner;
DROP ROLE regress_pt_owner;
