-- pg_tenant 0.7.0 -> 0.8.0 (frozen with the 0.8.0 release; never edit
-- after it).
--
-- Like the install script, this runs with search_path = tenant: its DDL
-- names every function, operator and type with its schema, and it first
-- refuses a schema "tenant" that is not the extension's alone.
--
-- What 0.8.0 changes is listed section by section below.
\echo Use "ALTER EXTENSION pg_tenant UPDATE TO '0.8.0'" to load this file. \quit
-- The schema `tenant` must be the extension's alone. CREATE EXTENSION uses
-- an existing schema of that name as it is: one owned by another role (who
-- could replace or drop our objects later), one where others may create
-- objects, or one already holding objects that are not ours (a function
-- `tenant.cardinality(text[])` beats pg_catalog's polymorphic one while
-- this script runs with search_path = tenant, and would then run as a
-- superuser) is refused before anything is created. Every name below is
-- schema-qualified for the same reason.
DO $schema_check$
DECLARE
    nsp pg_catalog.oid;
    owner_name pg_catalog.name;
    owner_super pg_catalog.bool;
    creators pg_catalog.text;
    foreign_objects pg_catalog.text;
BEGIN
    SELECT n.oid, r.rolname, r.rolsuper INTO nsp, owner_name, owner_super
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_authid r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'tenant'::pg_catalog.name;
    IF NOT owner_super THEN
        RAISE EXCEPTION 'schema "tenant" is owned by role "%", which is not a superuser: pg_tenant will not install into it', owner_name
            USING ERRCODE = '55000',
                  HINT = pg_catalog.format('Someone else created the schema "tenant" in this database; whoever owns it could replace or drop the extension''s objects. Check what it holds (\dn+ tenant, \df tenant.*), then DROP SCHEMA tenant CASCADE (or ALTER SCHEMA tenant OWNER TO a superuser and remove what %s put there) and run CREATE EXTENSION pg_tenant again.', pg_catalog.quote_ident(owner_name));
    END IF;
    SELECT pg_catalog.string_agg(DISTINCT coalesce(pg_catalog.quote_ident(g.rolname), 'PUBLIC'), ', ') INTO creators
      FROM pg_catalog.pg_namespace n,
           LATERAL pg_catalog.aclexplode(n.nspacl) a
      LEFT JOIN pg_catalog.pg_authid g ON g.oid OPERATOR(pg_catalog.=) a.grantee
     WHERE n.oid OPERATOR(pg_catalog.=) nsp
       AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'::pg_catalog.text
       AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner
       AND NOT coalesce(g.rolsuper, false);
    IF creators IS NOT NULL THEN
        RAISE EXCEPTION 'roles other than its owner may create objects in schema "tenant" (%): pg_tenant will not install into it', creators
            USING ERRCODE = '55000',
                  HINT = 'REVOKE CREATE ON SCHEMA tenant FROM them (and PUBLIC), remove what they created, and try again.';
    END IF;
    -- Objects in the schema that are neither members of this extension nor
    -- parts of one (row types, indexes). While CREATE EXTENSION runs its
    -- first statement, the extension has no members yet: then every object
    -- is foreign.
    WITH RECURSIVE members(classid, objid) AS (
        SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_extension x ON x.oid OPERATOR(pg_catalog.=) d.refobjid
         WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass
           AND x.extname OPERATOR(pg_catalog.=) 'pg_tenant'::pg_catalog.name
           AND d.deptype OPERATOR(pg_catalog.=) 'e'::pg_catalog."char"
        UNION
        SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
          JOIN members m ON d.refclassid OPERATOR(pg_catalog.=) m.classid
                        AND d.refobjid OPERATOR(pg_catalog.=) m.objid
         WHERE d.deptype OPERATOR(pg_catalog.=) ANY ('{i,a}'::pg_catalog."char"[])
    ), objects(classid, objid) AS (
        SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_class o WHERE o.relnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_proc o WHERE o.pronamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_type o WHERE o.typnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_operator o WHERE o.oprnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_collation'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_collation o WHERE o.collnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_conversion'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_conversion o WHERE o.connamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_opclass'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_opclass o WHERE o.opcnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_opfamily'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_opfamily o WHERE o.opfnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_ts_config'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_ts_config o WHERE o.cfgnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_ts_dict'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_ts_dict o WHERE o.dictnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_ts_parser'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_ts_parser o WHERE o.prsnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_ts_template'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_ts_template o WHERE o.tmplnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_statistic_ext o WHERE o.stxnamespace OPERATOR(pg_catalog.=) nsp
        UNION ALL SELECT 'pg_catalog.pg_extension'::pg_catalog.regclass, o.oid FROM pg_catalog.pg_extension o
         WHERE o.extnamespace OPERATOR(pg_catalog.=) nsp AND o.extname OPERATOR(pg_catalog.<>) 'pg_tenant'::pg_catalog.name
    )
    SELECT pg_catalog.string_agg(pg_catalog.pg_describe_object(o.classid, o.objid, 0), ', ') INTO foreign_objects
      FROM objects o
     WHERE NOT EXISTS (SELECT FROM members m WHERE m.classid OPERATOR(pg_catalog.=) o.classid
                                               AND m.objid OPERATOR(pg_catalog.=) o.objid);
    IF foreign_objects IS NOT NULL THEN
        RAISE EXCEPTION 'schema "tenant" holds objects that do not belong to pg_tenant: %', foreign_objects
            USING ERRCODE = '55000',
                  HINT = 'Objects in the extension''s schema would be found by its SQL while it runs as a superuser. Move them to another schema (ALTER ... SET SCHEMA) or drop them, then try again.';
    END IF;
END
$schema_check$;

-- ---------------------------------------------------------------------------
-- PostgreSQL 15-18 (issue #27).
--
-- 1. Role membership inheritance is set per grant from PostgreSQL 16
--    (pg_auth_members.inherit_option; ALTER ROLE ... NOINHERIT only sets the
--    default for later grants): audit()'s fix for a role that inherits
--    another tenant's role names this server's statement
--    (tenant._inherit_fix).
-- 2. What tenant.protect protected is recorded in tenant.protected (dumped
--    by pg_dump), and a table's pg_tenant_isolation policy is compared with
--    protect's as expression trees (tenant._policy_reference,
--    tenant._policy_shape, tenant._is_protects_policy), no longer as
--    deparsed text: _tenant_column, _isolates, protect, unprotect and
--    audit() below are rls.sql's, CREATE turned into CREATE OR REPLACE;
--    COPY's eligibility check (copy.rs) reads the same.
-- ---------------------------------------------------------------------------
-- 0.8.0: how to stop role `member_role` inheriting the privileges of role
-- `target_role`. Up to PostgreSQL 15 inheritance is a property of the member
-- (ALTER ROLE ... NOINHERIT); from 16 it is a property of each grant
-- (pg_auth_members.inherit_option; ALTER ROLE ... NOINHERIT only sets the
-- default for later grants), so the fix is GRANT ... WITH INHERIT FALSE on
-- the member's own inheriting grant that leads to `target_role` (the direct one
-- when there is one). inherit_option is read through to_jsonb, so this
-- parses on 15, where the column does not exist.
CREATE FUNCTION tenant._inherit_fix(member_role pg_catalog.oid, target_role pg_catalog.oid) RETURNS pg_catalog.text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT CASE
        WHEN pg_catalog.current_setting('server_version_num')::pg_catalog.int4 OPERATOR(pg_catalog.<) 160000
            THEN pg_catalog.format('ALTER ROLE %s NOINHERIT', pg_catalog.quote_ident(m.rolname))
        ELSE pg_catalog.format('GRANT %s TO %s WITH INHERIT FALSE (PostgreSQL 16+: inheritance is set per grant, ALTER ROLE NOINHERIT only changes later grants)',
                               pg_catalog.quote_ident(coalesce(
                                   (SELECT g.rolname
                                      FROM pg_catalog.pg_auth_members a
                                      JOIN pg_catalog.pg_roles g ON g.oid OPERATOR(pg_catalog.=) a.roleid
                                     WHERE a.member OPERATOR(pg_catalog.=) $1
                                       AND coalesce((pg_catalog.to_jsonb(a.*) OPERATOR(pg_catalog.->>) 'inherit_option')::pg_catalog.bool, true)
                                       AND (a.roleid OPERATOR(pg_catalog.=) $2
                                            OR pg_catalog.pg_has_role(a.roleid, $2, 'USAGE'))
                                     ORDER BY a.roleid OPERATOR(pg_catalog.<>) $2, g.rolname
                                     LIMIT 1),
                                   t.rolname)),
                               pg_catalog.quote_ident(m.rolname))
    END
    FROM pg_catalog.pg_roles m, pg_catalog.pg_roles t
    WHERE m.oid OPERATOR(pg_catalog.=) $1 AND t.oid OPERATOR(pg_catalog.=) $2
$fn$;
COMMENT ON FUNCTION tenant._inherit_fix IS 'pg_tenant: the statement that stops a role inheriting another''s privileges, for this server''s version';

-- 0.8.0: what tenant.protect protected, recorded in the catalog (a table
-- and its tenant column), so that no PostgreSQL version's deparser decides
-- which tables are protected and by which column. Whether a table's
-- pg_tenant_isolation policy is still the one protect wrote is decided by
-- comparing its expression trees (pg_policy.polqual/polwithcheck) with
-- those of reference policies the extension writes the same way on
-- tenant._policy_reference (one per tenant column type), in this database
-- and on this server: the same parse of the same SQL gives the same tree,
-- whatever the version, after pg_dump/restore (function oids differ) and
-- after pg_upgrade (the node format differs). Only what differs between two
-- tables by construction is ignored: the column's number, text positions,
-- typmod and collation (as deparsed text ignored them).
-- relid is a regclass and the column a name, so pg_dump (which dumps this
-- table's rows) and pg_restore carry them to the new oids and numbers.
CREATE TABLE tenant.protected (
    relid pg_catalog.regclass PRIMARY KEY,
    tenant_column pg_catalog.name NOT NULL
);
COMMENT ON TABLE tenant.protected IS 'pg_tenant: the tables tenant.protect protected and their tenant columns';
SELECT pg_catalog.pg_extension_config_dump('tenant.protected', '');
REVOKE ALL ON tenant.protected FROM PUBLIC;
-- pg_policy is readable by everyone; so is this.
GRANT SELECT ON tenant.protected TO PUBLIC;

CREATE TABLE tenant._policy_reference (
    c_text pg_catalog.text, c_varchar pg_catalog.varchar, c_name pg_catalog.name, c_uuid pg_catalog.uuid,
    c_int2 pg_catalog.int2, c_int4 pg_catalog.int4, c_int8 pg_catalog.int8
);
COMMENT ON TABLE tenant._policy_reference IS 'pg_tenant: no rows; its policies are tenant.protect''s, one per tenant column type, to compare protected tables'' policies with';
REVOKE ALL ON tenant._policy_reference FROM PUBLIC;
CREATE POLICY c_text ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_text = (SELECT tenant.current_tenant_id())) WITH CHECK (c_text = (SELECT tenant.current_tenant_id()));
CREATE POLICY c_varchar ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_varchar = (SELECT tenant.current_tenant_id())) WITH CHECK (c_varchar = (SELECT tenant.current_tenant_id()));
CREATE POLICY c_name ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_name = (SELECT tenant.current_tenant_id())) WITH CHECK (c_name = (SELECT tenant.current_tenant_id()));
CREATE POLICY c_uuid ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_uuid = (SELECT tenant.current_tenant_uuid())) WITH CHECK (c_uuid = (SELECT tenant.current_tenant_uuid()));
CREATE POLICY c_int2 ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_int2 = (SELECT tenant.current_tenant_bigint())) WITH CHECK (c_int2 = (SELECT tenant.current_tenant_bigint()));
CREATE POLICY c_int4 ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_int4 = (SELECT tenant.current_tenant_bigint())) WITH CHECK (c_int4 = (SELECT tenant.current_tenant_bigint()));
CREATE POLICY c_int8 ON tenant._policy_reference AS PERMISSIVE FOR ALL TO PUBLIC
    USING (c_int8 = (SELECT tenant.current_tenant_bigint())) WITH CHECK (c_int8 = (SELECT tenant.current_tenant_bigint()));

-- An expression tree (nodeToString form) with what differs between two
-- tables by construction taken out: text positions, typmods, collations,
-- and the number `attnum` of the tenant column (written as *).
CREATE FUNCTION tenant._policy_shape(tree pg_catalog.pg_node_tree, attnum pg_catalog.int2) RETURNS pg_catalog.text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT pg_catalog.regexp_replace(
         pg_catalog.regexp_replace(tree::pg_catalog.text,
           ' :(location|stmt_location|stmt_len|vartypmod|varcollid|inputcollid|resultcollid) -?[0-9]+', '', 'g'),
         ' :(varattno|varattnosyn) ' OPERATOR(pg_catalog.||) attnum OPERATOR(pg_catalog.||) '([ }])', ' :\1 *\2', 'g')
$fn$;

-- Whether table `tbl` has the pg_tenant_isolation policy tenant.protect
-- writes for tenant column `col`: FOR ALL, TO PUBLIC, permissive, and USING
-- and WITH CHECK the trees of the reference policy for the column's type.
-- A policy with that name that says anything else (`USING (true)`,
-- `org_id = org_id`) does not isolate tenants.
CREATE FUNCTION tenant._is_protects_policy(tbl pg_catalog.regclass, col pg_catalog.name) RETURNS pg_catalog.bool
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT EXISTS (
    SELECT 1
      FROM pg_catalog.pg_attribute a
      JOIN pg_catalog.pg_policy p ON p.polrelid OPERATOR(pg_catalog.=) a.attrelid
                                 AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name
      JOIN pg_catalog.pg_attribute ra ON ra.attrelid OPERATOR(pg_catalog.=) 'tenant._policy_reference'::pg_catalog.regclass
                                     AND ra.attnum OPERATOR(pg_catalog.>) 0
                                     AND ra.atttypid OPERATOR(pg_catalog.=) a.atttypid
      JOIN pg_catalog.pg_policy r ON r.polrelid OPERATOR(pg_catalog.=) ra.attrelid
                                 AND r.polname OPERATOR(pg_catalog.=) ra.attname
     WHERE a.attrelid OPERATOR(pg_catalog.=) tbl
       AND a.attname OPERATOR(pg_catalog.=) col AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
       AND p.polcmd OPERATOR(pg_catalog.=) '*'::pg_catalog."char" AND p.polpermissive
       AND p.polroles OPERATOR(pg_catalog.=) '{0}'::pg_catalog.oid[]
       AND tenant._policy_shape(p.polqual, a.attnum) OPERATOR(pg_catalog.=) tenant._policy_shape(r.polqual, ra.attnum)
       AND tenant._policy_shape(p.polwithcheck, a.attnum) OPERATOR(pg_catalog.=) tenant._policy_shape(r.polwithcheck, ra.attnum))
$fn$;

-- Record (or forget) what protect/unprotect did, for the tables `rels`:
-- protect and unprotect run as their caller, who may not write
-- tenant.protected, so these run as the extension's owner, and write only
-- what the catalog shows true: a table is recorded only while it has
-- protect's policy for that column, forgotten only once it has no
-- pg_tenant_isolation policy (or is gone).
CREATE FUNCTION tenant._record_protected(rels pg_catalog.regclass[], col pg_catalog.name) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
INSERT INTO tenant.protected AS t (relid, tenant_column)
SELECT DISTINCT r, col FROM pg_catalog.unnest(rels) r WHERE tenant._is_protects_policy(r, col)
ON CONFLICT (relid) DO UPDATE SET tenant_column = excluded.tenant_column
$fn$;
CREATE FUNCTION tenant._forget_protected(rels pg_catalog.regclass[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DELETE FROM tenant.protected t
 WHERE t.relid OPERATOR(pg_catalog.=) ANY (rels)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                    WHERE p.polrelid OPERATOR(pg_catalog.=) t.relid
                      AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name)
$fn$;
-- Dropped tables leave the record (their oid could name a new table later).
CREATE FUNCTION tenant._forget_dropped() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    DELETE FROM tenant.protected t
     WHERE t.relid::pg_catalog.oid IN (SELECT d.objid FROM pg_catalog.pg_event_trigger_dropped_objects() d
                                        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                          AND d.objsubid OPERATOR(pg_catalog.=) 0);
END
$fn$;
REVOKE EXECUTE ON FUNCTION tenant._forget_dropped() FROM PUBLIC;
CREATE EVENT TRIGGER pg_tenant_forget_dropped ON sql_drop
    EXECUTE FUNCTION tenant._forget_dropped();

-- Backfill, once: every table whose pg_tenant_isolation policy is the one
-- protect writes (compared as trees, as from now on) for one of its columns
-- is recorded with that column. A policy with that name that is not
-- protect's was reported by audit() before and still is.
INSERT INTO tenant.protected (relid, tenant_column)
SELECT DISTINCT ON (p.polrelid) p.polrelid::pg_catalog.regclass, a.attname
  FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.polrelid
                                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
 WHERE p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name
   AND p.polrelid OPERATOR(pg_catalog.<>) 'tenant._policy_reference'::pg_catalog.regclass
   AND tenant._is_protects_policy(p.polrelid::pg_catalog.regclass, a.attname)
 ORDER BY p.polrelid, a.attnum;

-- The tenant column of a table protected by tenant.protect, as protect
-- recorded it (0.8.0: read from tenant.protected, no longer recognised in
-- the policy's deparsed text). Not from the column default protect also
-- sets: a default may be changed or dropped without touching isolation.
-- NULL when protect never protected the table.
CREATE OR REPLACE FUNCTION tenant._tenant_column(tbl regclass) RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT r.tenant_column FROM tenant.protected r WHERE r.relid OPERATOR(pg_catalog.=) tbl
$fn$;

-- Whether a table protect protected still has exactly the
-- pg_tenant_isolation policy protect wrote (tenant._is_protects_policy:
-- compared as expression trees with the reference policy of its column's
-- type). A policy with that name that says anything else, or on a table
-- protect never protected, does not count: audit() reports it and
-- pg_tenant_protect_children replaces it.
CREATE OR REPLACE FUNCTION tenant._isolates(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT EXISTS (SELECT 1 FROM tenant.protected r
                WHERE r.relid OPERATOR(pg_catalog.=) tbl
                  AND tenant._is_protects_policy(tbl, r.tenant_column))
$fn$;

CREATE OR REPLACE FUNCTION tenant.protect(tbl regclass, tenant_column name DEFAULT 'tenant_id') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    att record;
    expr text;
    rels regclass[];
    rel regclass;
BEGIN
    SELECT a.attnum, a.atttypid::regtype AS typ INTO att
    FROM pg_attribute a
    WHERE a.attrelid = tbl AND a.attname = tenant_column AND NOT a.attisdropped AND a.attnum > 0;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'table % has no column "%"', tbl, tenant_column
            USING ERRCODE = '42703', HINT = 'Pass the tenant column: tenant.protect(''t'', ''org_id'').';
    END IF;
    expr := tenant._context_expr(att.typ);
    IF expr IS NULL THEN
        RAISE EXCEPTION 'tenant column %.% has type %, expected text, uuid or an integer type', tbl, tenant_column, att.typ
            USING ERRCODE = '42804';
    END IF;
    -- The table, then its partitions and inheritance children by depth
    -- (pg_inherits holds both; PostgreSQL forbids inheritance cycles).
    WITH RECURSIVE tree(relid, depth) AS (
        SELECT tbl::oid, 0
        UNION ALL
        SELECT i.inhrelid, t.depth + 1 FROM tree t JOIN pg_inherits i ON i.inhparent = t.relid
    )
    SELECT array_agg(x.relid::regclass ORDER BY x.depth, x.relid) INTO rels
      FROM (SELECT relid, max(depth) AS depth FROM tree GROUP BY relid) x;
    SELECT c.oid::regclass INTO rel FROM pg_class c WHERE c.oid = ANY (rels) AND c.relkind = 'f' ORDER BY c.oid LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'foreign table % cannot be protected: row level security does not apply to foreign tables, and queries naming it directly bypass the policy of any table it is a partition or child of', rel
            USING ERRCODE = '0A000', HINT = 'Keep foreign tables out of protected tables'' partitions and inheritance children (ALTER TABLE ... DETACH PARTITION or NO INHERIT).';
    END IF;
    FOREACH rel IN ARRAY rels LOOP
        IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = rel AND p.polname = 'pg_tenant_isolation') THEN
            EXECUTE format('DROP POLICY pg_tenant_isolation ON %s', rel);
        END IF;
        EXECUTE format('CREATE POLICY pg_tenant_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC '
                       'USING (%I = (SELECT %s)) WITH CHECK (%I = (SELECT %s))',
                       rel, tenant_column, expr, tenant_column, expr);
    END LOOP;
    -- 0.8.0: recorded before the first ALTER TABLE too (the trigger reads it).
    PERFORM tenant._record_protected(rels, tenant_column);
    FOREACH rel IN ARRAY rels LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', rel);
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET DEFAULT %s', rel, tenant_column, expr);
        IF NOT EXISTS (
            SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            WHERE i.indrelid = rel AND a.attname = tenant_column AND i.indpred IS NULL
        ) THEN
            EXECUTE format('CREATE INDEX ON %s (%I)', rel, tenant_column);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION tenant.protect IS 'pg_tenant: enable, force and add the tenant RLS policy, default and index on a table and all its partitions and inheritance children';

CREATE OR REPLACE FUNCTION tenant.unprotect(tbl regclass, tenant_column name DEFAULT 'tenant_id') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rels regclass[];
    rel regclass;
    parent regclass;
BEGIN
    WITH RECURSIVE tree(relid, depth) AS (
        SELECT tbl::oid, 0
        UNION ALL
        SELECT i.inhrelid, t.depth + 1 FROM tree t JOIN pg_inherits i ON i.inhparent = t.relid
    )
    SELECT array_agg(x.relid::regclass ORDER BY x.depth, x.relid) INTO rels
      FROM (SELECT relid, max(depth) AS depth FROM tree GROUP BY relid) x;
    SELECT i.inhrelid::regclass, i.inhparent::regclass INTO rel, parent
      FROM pg_inherits i
     WHERE i.inhrelid = ANY (rels) AND NOT i.inhparent = ANY (rels)
       AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = i.inhparent AND p.polname = 'pg_tenant_isolation')
     ORDER BY 1, 2 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% is a partition or child of protected table %: its rows are that table''s rows', rel, parent
            USING ERRCODE = '55000', HINT = format('Unprotect %s instead, or detach %s from it first.', parent, rel);
    END IF;
    -- Policies first: the ALTER TABLEs below fire pg_tenant_protect_children,
    -- which must find no protected ancestor left.
    FOREACH rel IN ARRAY rels LOOP
        IF EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = rel AND p.polname = 'pg_tenant_isolation') THEN
            EXECUTE format('DROP POLICY pg_tenant_isolation ON %s', rel);
        END IF;
    END LOOP;
    PERFORM tenant._forget_protected(rels);
    FOREACH rel IN ARRAY rels LOOP
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', rel);
        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', rel);
        IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = rel AND attname = tenant_column AND NOT attisdropped) THEN
            EXECUTE format('ALTER TABLE %s ALTER COLUMN %I DROP DEFAULT', rel, tenant_column);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION tenant.unprotect IS 'pg_tenant: remove the tenant policy and disable RLS on a table and all its partitions and inheritance children';

CREATE OR REPLACE FUNCTION tenant.audit()
RETURNS TABLE (object text, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
WITH RECURSIVE tables AS (
    -- tables with a tenant_id column, and tables with our policy on any column
    SELECT c.oid, c.oid::regclass::text AS name, c.relrowsecurity, c.relforcerowsecurity,
           coalesce(
             (SELECT a.attnum FROM tenant.protected r JOIN pg_attribute a ON a.attrelid = r.relid
               AND a.attname = r.tenant_column AND NOT a.attisdropped
              WHERE r.relid = c.oid),
             (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)) AS attnum
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenant')
      AND (EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
           OR EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation')
           OR EXISTS (SELECT 1 FROM tenant.protected r WHERE r.relid = c.oid))
), inheritance(child, anc, depth) AS (
    -- every partition and inheritance child with each of its ancestors
    SELECT i.inhrelid, i.inhparent, 1 FROM pg_inherits i
    UNION ALL
    SELECT h.child, i.inhparent, h.depth + 1 FROM inheritance h JOIN pg_inherits i ON i.inhrelid = h.anc
)
SELECT name, 'row level security is not enabled' FROM tables WHERE NOT relrowsecurity
UNION ALL
SELECT name, 'row level security is not forced (the table owner bypasses it)' FROM tables WHERE NOT relforcerowsecurity
UNION ALL
SELECT name, 'no pg_tenant_isolation policy (run tenant.protect)' FROM tables t
 WHERE NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid AND p.polname = 'pg_tenant_isolation')
UNION ALL
SELECT name, 'no index leads with the tenant column' FROM tables t
 WHERE NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indkey[0] = t.attnum)
UNION ALL
SELECT name, format('permissive policy %I widens what tenants see', p.polname) FROM tables t
  JOIN pg_policy p ON p.polrelid = t.oid
 WHERE p.polpermissive AND p.polname <> 'pg_tenant_isolation'
UNION ALL
SELECT quote_ident(r.rolname), 'login role with ' ||
       CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'BYPASSRLS' END || ' bypasses tenant isolation'
  FROM pg_roles r
 WHERE r.rolcanlogin AND (r.rolsuper OR r.rolbypassrls) AND r.oid <> 10
UNION ALL
SELECT quote_ident(t.role_name), format('tenant role of %s has SUPERUSER or BYPASSRLS', t.id)
  FROM tenant.tenants t JOIN pg_roles r ON r.rolname = t.role_name
 WHERE r.rolsuper OR r.rolbypassrls
UNION ALL
SELECT pa.parname, 'SET or ALTER SYSTEM on a pg_tenant parameter is granted to a role'
  FROM pg_parameter_acl pa
 WHERE pa.parname LIKE 'pg\_tenant.%' AND pa.paracl IS NOT NULL
UNION ALL
-- A view runs with its owner's rights: owned by a role that bypasses row
-- level security, it returns every tenant's rows.
SELECT DISTINCT v.oid::regclass::text,
       format('view owned by %s (which bypasses row level security) reads protected table %s: it returns every tenant''s rows; fix: ALTER VIEW %s SET (security_invoker = true)',
              quote_ident(o.rolname), t.name, v.oid::regclass)
  FROM pg_class v
  JOIN pg_roles o ON o.oid = v.relowner
  JOIN pg_rewrite rw ON rw.ev_class = v.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  AND d.refclassid = 'pg_class'::regclass
  JOIN tables t ON t.oid = d.refobjid
 WHERE v.relkind = 'v' AND (o.rolsuper OR o.rolbypassrls)
   AND NOT coalesce((SELECT lower(x.option_value) IN ('true', 'on', '1', 'yes')
                       FROM pg_options_to_table(v.reloptions) x
                      WHERE x.option_name = 'security_invoker'), false)
UNION ALL
-- A materialized view stores rows without row level security.
SELECT DISTINCT m.oid::regclass::text,
       format('materialized view over protected table %s has no row level security: whoever can read it sees the rows it was refreshed with, across tenants; fix: drop it, or replace it with a protected table (tenant.protect) filled per tenant',
              t.name)
  FROM pg_class m
  JOIN pg_rewrite rw ON rw.ev_class = m.oid
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  AND d.refclassid = 'pg_class'::regclass
  JOIN tables t ON t.oid = d.refobjid
 WHERE m.relkind = 'm'
UNION ALL
-- SECURITY DEFINER functions run with their owner's rights. Reachable by
-- a login role, an application role (member of tenant_app) or a tenant's
-- role: EXECUTE granted to PUBLIC, to the role itself, or to a role it is
-- a member of, inherited or through SET ROLE (a NOINHERIT member). One row
-- per function; one a login role executes with its own privileges keeps
-- the 0.4.0 text, one reached only through a group names the role and the
-- group (application roles first, then by name).
SELECT f.fn, f.problem FROM (
SELECT DISTINCT ON (p.oid) p.oid::regprocedure::text AS fn,
       CASE WHEN r.rolcanlogin AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
            THEN format('SECURITY DEFINER function owned by %s (which bypasses row level security) is executable by application roles: it can return or change every tenant''s rows; fix: ALTER FUNCTION %s SECURITY INVOKER, or give it a NOBYPASSRLS owner, or REVOKE EXECUTE from application roles',
                        quote_ident(o.rolname), p.oid::regprocedure)
            ELSE format('SECURITY DEFINER function owned by %s (which bypasses row level security) is executable by application or tenant role %s through %s: it can return or change every tenant''s rows; fix: ALTER FUNCTION %s SECURITY INVOKER, or give it a NOBYPASSRLS owner, or REVOKE EXECUTE ON FUNCTION %s FROM %s',
                        quote_ident(o.rolname), quote_ident(r.rolname),
                        CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                             WHEN g.grantee = r.oid THEN 'its own grant'
                             ELSE format('its membership in role %s', quote_ident(gr.rolname)) END,
                        p.oid::regprocedure, p.oid::regprocedure,
                        CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(gr.rolname) END)
       END AS problem
  FROM pg_proc p
  JOIN pg_roles o ON o.oid = p.proowner
  JOIN pg_namespace n ON n.oid = p.pronamespace
  CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) g
  LEFT JOIN pg_roles gr ON gr.oid = g.grantee
  JOIN pg_roles r ON NOT r.rolsuper AND NOT r.rolbypassrls
                 AND (r.rolcanlogin
                      OR EXISTS (SELECT 1 FROM tenant.tenants x WHERE x.role_name = r.rolname)
                      OR (EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
                          AND r.rolname <> 'tenant_app' AND pg_has_role(r.oid, 'tenant_app', 'MEMBER')))
 WHERE p.prosecdef AND (o.rolsuper OR o.rolbypassrls)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                      AND e.objid = p.oid AND e.deptype = 'e')
   AND g.privilege_type = 'EXECUTE'
   AND (g.grantee = 0 OR pg_has_role(r.oid, g.grantee, 'MEMBER'))
 ORDER BY p.oid,
          (r.rolcanlogin AND has_function_privilege(r.oid, p.oid, 'EXECUTE')) DESC,
          (EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
           AND pg_has_role(r.oid, 'tenant_app', 'MEMBER')) DESC,
          r.rolname, gr.rolname) f
UNION ALL
-- 0.5.0: a table's policy applies only to queries naming that table: a
-- partition or inheritance child (any depth) of a protected table needs
-- the same protection, or queries naming it reach every tenant's rows.
SELECT x.child::regclass::text,
       CASE WHEN c.relkind = 'f'
            THEN format('foreign table is a %s of protected table %s: row level security cannot protect it, and queries naming it read and write every tenant''s rows; fix: %s',
                        CASE WHEN c.relispartition THEN 'partition' ELSE 'child' END, x.anc::regclass,
                        (SELECT CASE WHEN c.relispartition
                                     THEN format('ALTER TABLE %s DETACH PARTITION %s', i.inhparent::regclass, x.child::regclass)
                                     ELSE format('ALTER FOREIGN TABLE %s NO INHERIT %s', x.child::regclass, i.inhparent::regclass) END
                           FROM pg_inherits i WHERE i.inhrelid = x.child ORDER BY i.inhseqno LIMIT 1))
            ELSE format('%s of protected table %s is not protected (%s): queries naming it read and write every tenant''s rows; fix: SELECT tenant.protect(%L, %L)',
                        CASE WHEN c.relispartition THEN 'partition' ELSE 'inheritance child' END, x.anc::regclass,
                        concat_ws(', ',
                                  CASE WHEN NOT c.relrowsecurity THEN 'row level security is not enabled' END,
                                  CASE WHEN NOT c.relforcerowsecurity THEN 'not forced' END,
                                  CASE WHEN NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = x.child AND p.polname = 'pg_tenant_isolation')
                                       THEN 'no pg_tenant_isolation policy' END),
                        x.child::regclass::text, coalesce(tenant._tenant_column(x.anc), '<its tenant column>'))
       END
  FROM (SELECT DISTINCT ON (h.child) h.child, h.anc
          FROM inheritance h
         WHERE EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = h.anc AND p.polname = 'pg_tenant_isolation')
         ORDER BY h.child, h.depth, h.anc) x
  JOIN pg_class c ON c.oid = x.child
 WHERE NOT c.relrowsecurity OR NOT c.relforcerowsecurity
    OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = x.child AND p.polname = 'pg_tenant_isolation')
UNION ALL
-- 0.5.0: a policy with protect()'s name that says something else (USING
-- (true), org_id = org_id, a role list, a command) decides what every
-- tenant sees in that table.
SELECT c.oid::regclass::text,
       format('policy pg_tenant_isolation is not the one tenant.protect writes (FOR ALL TO PUBLIC, USING and WITH CHECK comparing the tenant column with the tenant context)%s: whatever it says decides which tenants'' rows are read and written; fix: SELECT tenant.protect(%L, %L)',
              CASE WHEN tenant._tenant_column(c.oid) IS NOT NULL
                   THEN format(' (tenant.protect protected it on column %I; it was altered since)', tenant._tenant_column(c.oid)) END,
              c.oid::regclass::text, coalesce(tenant._tenant_column(c.oid), '<its tenant column>'))
  FROM pg_class c
 WHERE EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation')
   AND NOT tenant._isolates(c.oid)
UNION ALL
-- 0.5.0: a rule's actions run with the rights of its table's owner: one
-- that reads (or writes) a protected table as a role that bypasses its row
-- level security (SUPERUSER, BYPASSRLS, or the protected table's owner
-- when RLS is not forced) reaches every tenant's rows whenever any tenant
-- fires it. View rules are reported above.
SELECT DISTINCT format('%I on %s', rw.rulename, r.oid::regclass),
       format('rule on %s owned by %s (which bypasses row level security on %s) reads or writes protected table %s: its actions run with the owner''s rights, so a tenant firing it reaches every tenant''s rows; fix: DROP RULE %I ON %s (use a trigger instead: it runs as the user who fires it)',
              r.oid::regclass, quote_ident(o.rolname), t.name, t.name, rw.rulename, r.oid::regclass)
  FROM pg_rewrite rw
  JOIN pg_class r ON r.oid = rw.ev_class
  JOIN pg_roles o ON o.oid = r.relowner
  JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'n'
  JOIN tables t ON t.oid = d.refobjid
  JOIN pg_class tc ON tc.oid = t.oid
 WHERE r.relkind IN ('r', 'p', 'f')
   AND (o.rolsuper OR o.rolbypassrls
        OR (pg_has_role(o.oid, tc.relowner, 'USAGE') AND NOT tc.relforcerowsecurity))
UNION ALL
-- A foreign key between protected tables must carry the tenant column.
SELECT a.name,
       format('foreign key %s references protected table %s without pairing the tenant columns: a tenant can reference, and probe for, another tenant''s rows; fix: FOREIGN KEY (%s, ...) REFERENCES %s (%s, ...) with a unique key on the referenced side that includes the tenant column',
              quote_ident(c.conname), b.name,
              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = a.oid AND attnum = a.attnum)),
              b.name,
              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = b.oid AND attnum = b.attnum)))
  FROM pg_constraint c
  JOIN tables a ON a.oid = c.conrelid
  JOIN tables b ON b.oid = c.confrelid
 WHERE c.contype = 'f'
   AND coalesce(array_position(c.conkey, a.attnum) IS DISTINCT FROM array_position(c.confkey, b.attnum)
                OR array_position(c.conkey, a.attnum) IS NULL, true)
UNION ALL
-- Unique keys without the tenant column reveal other tenants' keys.
SELECT t.name,
       format('unique index %s does not include the tenant column: unique violations and ON CONFLICT reveal which keys other tenants use; fix: make the key (%s, ...)',
              i.indexrelid::regclass,
              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = t.oid AND attnum = t.attnum)))
  FROM tables t
  JOIN pg_index i ON i.indrelid = t.oid
 WHERE i.indisunique
   AND NOT (t.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1]))  -- key columns, not INCLUDE
UNION ALL
SELECT t.name,
       format('exclusion constraint %s does not include the tenant column: conflicts reveal other tenants'' values; fix: add (%s WITH =) to it',
              quote_ident(c.conname),
              quote_ident((SELECT attname FROM pg_attribute WHERE attrelid = t.oid AND attnum = t.attnum)))
  FROM tables t
  JOIN pg_constraint c ON c.conrelid = t.oid AND c.contype = 'x'
 WHERE NOT (t.attnum = ANY (c.conkey))
UNION ALL
-- The owner of a protected table may turn its row level security off.
SELECT t.name,
       format('owned by %s, an application or tenant role (member of tenant_app): its sessions can ALTER the table and turn row level security off; fix: ALTER TABLE %s OWNER TO a role that never connects through the router',
              quote_ident(o.rolname), t.name)
  FROM tables t
  JOIN pg_class c ON c.oid = t.oid
  JOIN pg_roles o ON o.oid = c.relowner
 WHERE EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND pg_has_role(o.oid, 'tenant_app', 'MEMBER') AND NOT o.rolsuper
UNION ALL
-- allow_ddl with the shared login role: one tenant's objects are everyone's.
SELECT quote_literal(x.id),
       format('tenant %s has allow_ddl but no role_name: the objects it creates belong to the shared login role, which other tenants'' sessions can alter or drop; fix: SELECT tenant.alter_tenant(%L, role_name => ''<its own role>'')',
              x.id, x.id)
  FROM tenant.tenants x
 WHERE x.allow_ddl AND x.role_name IS NULL
UNION ALL
-- Monitoring rights that reach across tenants.
SELECT quote_ident(r.rolname),
       'login role is a member of pg_read_all_stats: it reads every tenant''s query text (pg_stat_activity, pg_stat_statements); fix: keep it for monitoring only, never an application role'
  FROM pg_roles r
 WHERE r.rolcanlogin AND NOT r.rolsuper AND pg_has_role(r.oid, 'pg_read_all_stats', 'MEMBER')
UNION ALL
-- pg_stat_statements shows a role's own statements: with a shared
-- application role, every tenant's (normalized) statements.
SELECT p.oid::regprocedure::text,
       format('pg_stat_statements is executable by application role %s: tenants sharing that role read each other''s statements; fix: REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC (grant it to monitoring roles only)',
              quote_ident(r.rolname), p.oid::regprocedure)
  FROM pg_proc p
  JOIN pg_depend e ON e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e'
  JOIN pg_extension x ON x.oid = e.refobjid AND x.extname = 'pg_stat_statements'
  JOIN pg_roles r ON r.rolcanlogin AND NOT r.rolsuper AND NOT r.rolbypassrls
                 AND NOT pg_has_role(r.oid, 'pg_read_all_stats', 'MEMBER')
 WHERE p.proname = 'pg_stat_statements' AND has_function_privilege(r.oid, p.oid, 'EXECUTE')
UNION ALL
SELECT quote_ident(r.rolname),
       'login role is a member of pg_read_all_settings: it reads every server setting (tenant contexts stay safe: the server holds only public keys); fix: keep it for monitoring only, never an application role'
  FROM pg_roles r
 WHERE r.rolcanlogin AND NOT r.rolsuper AND pg_has_role(r.oid, 'pg_read_all_settings', 'MEMBER')
UNION ALL
-- 0.3.0: the router's and the operators' rights in an application role let
-- its tenant sessions read tenant secrets and login verifiers, or rewrite
-- the catalog.
SELECT quote_ident(r.rolname),
       format('application role (member of tenant_app) is a member of %s: its tenant sessions could %s; fix: REVOKE %s FROM %s (or from the role it is a member through)',
              g.rolname,
              CASE g.rolname WHEN 'tenant_router' THEN 'read tenant secrets and password verifiers (tenant.auth_secret, tenant.login_verifier)'
                             ELSE 'change tenants and their secrets (tenant.alter_tenant, tenant.set_password)' END,
              g.rolname, quote_ident(r.rolname))
  FROM pg_roles r
  JOIN pg_roles g ON g.rolname IN ('tenant_router', 'tenant_admin')
 WHERE EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND NOT r.rolsuper AND r.rolname NOT IN ('tenant_app', 'tenant_router', 'tenant_admin')
   AND pg_has_role(r.oid, 'tenant_app', 'MEMBER') AND pg_has_role(r.oid, g.oid, 'MEMBER')
UNION ALL
-- 0.3.0: other rights that reach beyond a tenant (tenant._role_problem);
-- SUPERUSER, BYPASSRLS, tenant_router and tenant_admin are reported above.
SELECT quote_ident(r.rolname),
       format('application role (member of tenant_app) %s: its sessions could reach beyond their tenant, and tenant.login_verifier gives the router no verifier for it; fix: REVOKE the role or ALTER ROLE %s NO<attribute>, whichever the report names',
              tenant._role_problem(r.oid), quote_ident(r.rolname))
  FROM pg_roles r
 WHERE EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND NOT r.rolsuper AND NOT r.rolbypassrls
   AND r.rolname NOT IN ('tenant_app', 'tenant_router', 'tenant_admin')
   AND pg_has_role(r.oid, 'tenant_app', 'MEMBER')
   AND NOT pg_has_role(r.oid, 'tenant_router', 'MEMBER') AND NOT pg_has_role(r.oid, 'tenant_admin', 'MEMBER')
   AND tenant._role_problem(r.oid) IS NOT NULL
UNION ALL
-- 0.3.0: a role that runs tenant sessions (a login role for tenants
-- without a role_name, or a tenant's role_name) with the privileges of
-- another tenant's role_name reaches that tenant's objects; set_context
-- refuses it.
SELECT DISTINCT quote_ident(e.rolname),
       CASE WHEN e.rolcanlogin AND NOT EXISTS (SELECT 1 FROM tenant.tenants o WHERE o.role_name = e.rolname)
            THEN format('login role inherits the privileges of role %s of tenant %s: set_context refuses it for tenants without a role of their own; fix: %s (set_context still switches to a tenant''s role), or separate login roles',
                        quote_ident(g.rolname), x.id, tenant._inherit_fix(e.oid, g.oid))
            ELSE format('role runs tenant sessions and has the privileges of role %s of tenant %s: set_context refuses it; fix: REVOKE %s FROM %s, or %s',
                        quote_ident(g.rolname), x.id, quote_ident(g.rolname), quote_ident(e.rolname), tenant._inherit_fix(e.oid, g.oid))
       END
  FROM tenant.tenants x
  JOIN pg_roles g ON g.rolname = x.role_name
  JOIN pg_roles e ON e.oid <> g.oid AND NOT e.rolsuper
                 AND (e.rolcanlogin OR EXISTS (SELECT 1 FROM tenant.tenants o WHERE o.role_name = e.rolname))
 WHERE pg_has_role(e.oid, g.oid, 'USAGE')
   AND EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND pg_has_role(e.oid, 'tenant_app', 'MEMBER')
UNION ALL
-- 0.3.0: CREATE on schema public lets an application role plant functions
-- and operators (exact-type overloads of built-ins) that an operator's
-- default search_path finds.
SELECT quote_ident(r.rolname),
       format('application role (member of tenant_app) may create objects in schema public: it can plant functions and operators that win over built-ins in sessions whose search_path includes public (an operator''s); fix: REVOKE CREATE ON SCHEMA public FROM %s (or from PUBLIC), and give tenants that run DDL a schema of their own',
              quote_ident(r.rolname))
  FROM pg_roles r
  JOIN pg_namespace n ON n.nspname = 'public'
 WHERE EXISTS (SELECT 1 FROM pg_roles m WHERE m.rolname = 'tenant_app')
   AND NOT r.rolsuper AND r.rolname NOT IN ('tenant_app', 'tenant_router', 'tenant_admin')
   AND pg_has_role(r.oid, 'tenant_app', 'MEMBER')
   AND has_schema_privilege(r.oid, n.oid, 'CREATE')
ORDER BY 1, 2
$fn$;
COMMENT ON FUNCTION tenant.audit IS 'pg_tenant: one row per tenant-isolation problem; empty when safe';
