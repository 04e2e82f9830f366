-- pg_tenant RLS helpers and audit.

-- CREATE EXTENSION fails here, with a message saying how to fix it, when
-- the library is not in shared_preload_libraries.
SELECT tenant.assert_preloaded();

-- Which context function matches a tenant column's type.
CREATE FUNCTION tenant._context_expr(coltype regtype) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    RETURN CASE
        WHEN coltype IN ('text'::regtype, 'character varying'::regtype, 'name'::regtype)
            THEN 'tenant.current_tenant_id()'
        WHEN coltype = 'uuid'::regtype THEN 'tenant.current_tenant_uuid()'
        WHEN coltype IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
            THEN 'tenant.current_tenant_bigint()'
    END;
END
$fn$;

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
-- Dumped without records of temporary tables: one dropped at the end of
-- its session (or ON COMMIT DROP) fires no sql_drop trigger, so its record
-- stays behind with an oid that a restored database gives another table.
SELECT pg_catalog.pg_extension_config_dump('tenant.protected',
    'WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) relid::pg_catalog.oid AND c.relpersistence OPERATOR(pg_catalog.<>) ''t''::pg_catalog."char")');
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
-- `org_id = org_id`) does not isolate tenants. Nor does one on a column
-- with a nondeterministic collation (the collation is left out of the
-- comparison): there `=` matches other tenants' ids ('acme' and 'ACME'
-- under a case-insensitive one), so the tree is protect's but tenants are
-- not isolated (protect refuses such a column).
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
       AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_collation co
                        WHERE co.oid OPERATOR(pg_catalog.=) a.attcollation AND NOT co.collisdeterministic)
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

-- The tenant column of a table protected by tenant.protect, as protect
-- recorded it (0.8.0: read from tenant.protected, no longer recognised in
-- the policy's deparsed text). Not from the column default protect also
-- sets: a default may be changed or dropped without touching isolation.
-- NULL when protect never protected the table.
CREATE FUNCTION tenant._tenant_column(tbl regclass) RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT r.tenant_column FROM tenant.protected r WHERE r.relid OPERATOR(pg_catalog.=) tbl
$fn$;

-- Whether a table protect protected still has exactly the
-- pg_tenant_isolation policy protect wrote (tenant._is_protects_policy:
-- compared as expression trees with the reference policy of its column's
-- type). A policy with that name that says anything else, or on a table
-- protect never protected, does not count: audit() reports it and
-- pg_tenant_protect_children replaces it.
CREATE FUNCTION tenant._isolates(tbl regclass) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT EXISTS (SELECT 1 FROM tenant.protected r
                WHERE r.relid OPERATOR(pg_catalog.=) tbl
                  AND tenant._is_protects_policy(tbl, r.tenant_column))
$fn$;

-- Protect a table and every partition and inheritance descendant of it, at
-- any depth, with the same column: ENABLE + FORCE row level security, one
-- policy for all commands comparing the tenant column with (SELECT
-- tenant.current_tenant_id()) (an initPlan: evaluated once per query,
-- index-friendly), a column default so inserts get the tenant
-- automatically, and an index on the column if none leads with it.
-- Idempotent. A table's policy applies only to queries naming that table:
-- a query naming a partition or child directly never sees the parent's
-- policy, so each one gets its own. Partitions and children added later are
-- protected by the event trigger pg_tenant_protect_children (below). Every
-- policy of the tree is written before the first ALTER TABLE, so that
-- trigger, fired by protect's own ALTER TABLE, finds the tree protected and
-- does nothing.
CREATE FUNCTION tenant.protect(tbl regclass, tenant_column name DEFAULT 'tenant_id') RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    att record;
    expr text;
    rels regclass[];
    rel regclass;
    coll name;
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
    -- 0.8.0: `=` under a nondeterministic collation matches other tenants'
    -- ids ('acme' = 'ACME' case-insensitively): no isolation.
    SELECT co.collname INTO coll
      FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation
     WHERE a.attrelid = tbl AND a.attnum = att.attnum AND NOT co.collisdeterministic;
    IF FOUND THEN
        RAISE EXCEPTION 'tenant column %.% has the nondeterministic collation "%": its = matches other tenants'' ids, so a policy on it would not isolate tenants', tbl, tenant_column, coll
            USING ERRCODE = '42804', HINT = format('Give the column a deterministic collation: ALTER TABLE %s ALTER COLUMN %I TYPE %s COLLATE "C".', tbl, tenant_column, att.typ);
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

-- Undo tenant.protect on a table and its partitions and inheritance
-- children (the indexes stay). Refused for a table that is (or has
-- descendants that are) also a child of a protected table outside the
-- tree: unprotecting it would open the rows that table protects.
CREATE FUNCTION tenant.unprotect(tbl regclass, tenant_column name DEFAULT 'tenant_id') RETURNS void
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

-- Partitions and inheritance children added to a protected table later
-- (CREATE TABLE ... PARTITION OF / INHERITS, ALTER TABLE ... ATTACH
-- PARTITION / INHERIT, sub-partitions of those) get its protection at the
-- end of the command that made them: tenant.protect(child, the column of
-- its nearest protected ancestor's policy). A foreign table cannot be
-- protected: protect refuses, and so does the command that made it a child.
--
-- SECURITY INVOKER: making a table a child requires owning it and the
-- parent, so whoever ran the command may protect it; running as the
-- extension's owner (a superuser) would give every table owner's DDL a
-- superuser's ALTER TABLE and CREATE INDEX. Cheap for unrelated DDL: only
-- tables in an inheritance tree are looked at, with no call into schema
-- tenant unless one needs protecting. No recursion: it protects only tables
-- without their pg_tenant_isolation policy, and protect writes every
-- policy before its first ALTER TABLE fires this again. A child whose
-- policy or flags are later changed on purpose is left alone (tenant.audit
-- reports it). So is a child with row level security enabled and forced
-- and no policy at all: it is closed already (no rows for anyone it
-- applies to), and that is how pg_restore leaves a child of a protected
-- table in another schema between its ENABLE ROW LEVEL SECURITY and its
-- own CREATE POLICY pg_tenant_isolation, which would fail if this had
-- written the policy first (tenant.audit reports it until protected).
CREATE FUNCTION tenant._protect_children() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    todo record;
    col pg_catalog.name;
BEGIN
    FOR todo IN
        WITH RECURSIVE touched(relid) AS (
            SELECT DISTINCT c.oid
              FROM pg_catalog.pg_event_trigger_ddl_commands() d
              JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) d.objid
             WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
               AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::pg_catalog."char"[])
               AND (c.relispartition OR c.relhassubclass
                    OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid))
        ), tree(relid) AS (     -- the tables the command touched and their descendants
            SELECT relid FROM touched
            UNION
            SELECT i.inhrelid FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) t.relid
        ), ancestors(relid, anc, depth) AS (
            SELECT i.inhrelid, i.inhparent, 1
              FROM tree t JOIN pg_catalog.pg_inherits i ON i.inhrelid OPERATOR(pg_catalog.=) t.relid
            UNION ALL
            SELECT a.relid, i.inhparent, a.depth OPERATOR(pg_catalog.+) 1
              FROM ancestors a JOIN pg_catalog.pg_inherits i ON i.inhrelid OPERATOR(pg_catalog.=) a.anc
        )
        -- each table without the policy, with its nearest protected
        -- ancestor; nearest first (protecting a table protects its
        -- descendants)
        SELECT x.child, x.ancestor FROM (
            SELECT DISTINCT ON (a.relid) a.relid::pg_catalog.regclass AS child,
                   a.anc::pg_catalog.regclass AS ancestor, a.depth
              FROM ancestors a
             WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                            WHERE p.polrelid OPERATOR(pg_catalog.=) a.anc
                              AND p.polname OPERATOR(pg_catalog.=) 'pg_tenant_isolation'::pg_catalog.name)
               AND NOT tenant._isolates(a.relid::pg_catalog.regclass)
               -- not one that is already closed (see above)
               AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                                WHERE c.oid OPERATOR(pg_catalog.=) a.relid
                                  AND c.relrowsecurity AND c.relforcerowsecurity
                                  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                                                   WHERE p.polrelid OPERATOR(pg_catalog.=) a.relid))
             ORDER BY a.relid, a.depth, a.anc) x
         ORDER BY x.depth, x.child
    LOOP
        -- An earlier iteration's protect may have covered this one.
        CONTINUE WHEN tenant._isolates(todo.child);
        col := tenant._tenant_column(todo.ancestor);
        IF col IS NULL THEN
            RAISE EXCEPTION '% is a partition or child of protected table %, whose pg_tenant_isolation policy names no tenant column pg_tenant recognizes', todo.child, todo.ancestor
                USING ERRCODE = '55000',
                      HINT = pg_catalog.format('Protect %s again with tenant.protect(%L, <its tenant column>) first.', todo.ancestor, todo.ancestor::pg_catalog.text);
        END IF;
        PERFORM tenant.protect(todo.child, col);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION tenant._protect_children IS 'pg_tenant: event trigger function protecting new partitions and inheritance children of protected tables';
CREATE EVENT TRIGGER pg_tenant_protect_children ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE')
    EXECUTE FUNCTION tenant._protect_children();

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

-- 0.8.0: what breaks schema isolation (tenant.audit reports these rows):
-- a tenant role that can reach (USAGE, directly, through PUBLIC or a
-- membership) another schema tenant's schema; a tenant role that can
-- create objects in a schema tenant's shared schema (it would plant
-- objects on other tenants' search_path); a tenant schema owned by an
-- application or tenant role (its owner can GRANT it to anyone); objects
-- in a tenant schema owned by a role other than the tenant's; a schema
-- tenant's role that is another tenant's role too; a tenant schema on
-- other roles' search_path; a SECURITY DEFINER function without a
-- search_path of its own that a schema tenant's role may execute.
CREATE FUNCTION tenant._audit_schemas()
RETURNS TABLE (object text, problem text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $fn$
SELECT quote_ident(t.role_name),
       format('role of tenant %s (schema isolation) is also the role of tenant %s: each one''s sessions reach the other''s schema and objects; fix: give each tenant a role of its own (tenant.alter_tenant(%L, role_name => ...), then tenant.provision_tenant(%L))',
              t.id, o.id, t.id, t.id)
  FROM tenant.tenants t
  JOIN tenant.tenants o ON o.id <> t.id AND o.role_name = t.role_name
 WHERE t.isolation = 'schema'
UNION ALL
-- USAGE on a tenant schema comes from its ACL (PUBLIC, a role and the
-- roles that inherit it) or from its owner's rights: only grantees other
-- than the tenant's role and a superuser owner are looked at, so a clean
-- database costs one ACL read per schema (1,000 schema tenants: 16 ms,
-- where asking has_schema_privilege for every pair of schema and tenant
-- role took 0.5 s). A tenant role that has another tenant role's
-- privileges (a member of it) is reported by the membership row of
-- audit() and refused by set_context.
(WITH reach AS (
    SELECT t.id, t.schema_name, t.role_name, g.grantee
      FROM tenant.tenants t
      JOIN pg_namespace n ON n.nspname = t.schema_name
      CROSS JOIN LATERAL (
          SELECT a.grantee FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
           WHERE a.privilege_type = 'USAGE'
          UNION
          SELECT n.nspowner) g
      LEFT JOIN pg_roles gr ON gr.oid = g.grantee
     WHERE t.isolation = 'schema'
       AND gr.rolname IS DISTINCT FROM t.role_name
       AND NOT coalesce(gr.rolsuper, false)
)
SELECT DISTINCT quote_ident(e.rolname),
       format('role of tenant %s can reach schema %I of tenant %s (USAGE): it reads whatever that tenant granted on its objects; fix: REVOKE USAGE ON SCHEMA %I FROM %s (or from PUBLIC, or from the role it has it through)',
              o.id, x.schema_name, x.id, x.schema_name, quote_ident(e.rolname))
  FROM reach x
  JOIN tenant.tenants o ON o.id <> x.id AND o.role_name IS NOT NULL AND o.role_name IS DISTINCT FROM x.role_name
  JOIN pg_roles e ON e.rolname = o.role_name
 WHERE x.grantee = 0 OR x.grantee = e.oid OR pg_has_role(e.oid, x.grantee, 'USAGE'))
UNION ALL
-- CREATE on a shared schema, asked once per shared schema and tenant role.
(WITH creators AS (
    SELECT s.oid AS nsp, s.nspname, e.rolname, o.id AS role_of
      FROM (SELECT DISTINCT unnest(t.shared_schemas) AS name FROM tenant.tenants t WHERE t.isolation = 'schema') sh
      JOIN pg_namespace s ON s.nspname = sh.name
      JOIN tenant.tenants o ON o.role_name IS NOT NULL
      JOIN pg_roles e ON e.rolname = o.role_name
     WHERE has_schema_privilege(e.oid, s.oid, 'CREATE')
)
SELECT quote_ident(c.rolname),
       format('role of tenant %s may create objects in shared schema %I of tenant %s: it can plant functions and operators on that tenant''s search_path; fix: REVOKE CREATE ON SCHEMA %I FROM %s (or from PUBLIC)',
              c.role_of, c.nspname, t.id, c.nspname, quote_ident(c.rolname))
  FROM creators c
  JOIN tenant.tenants t ON t.isolation = 'schema' AND c.nspname = ANY (t.shared_schemas))
UNION ALL
SELECT quote_ident(n.nspname),
       format('schema of tenant %s is owned by %s, an application or tenant role (member of tenant_app): its owner can GRANT USAGE on it to other tenants; fix: ALTER SCHEMA %I OWNER TO a role that never connects through the router (then SELECT tenant.provision_tenant(%L))',
              t.id, quote_ident(w.rolname), n.nspname, t.id)
  FROM tenant.tenants t
  JOIN pg_namespace n ON n.nspname = t.schema_name
  JOIN pg_roles w ON w.oid = n.nspowner
 WHERE t.isolation = 'schema' AND NOT w.rolsuper
   AND pg_has_role(w.oid, 'tenant_app', 'MEMBER')
UNION ALL
SELECT x.object,
       format('%s in schema %I of tenant %s is owned by %s, not by the tenant''s role %s: it runs or reads with another role''s privileges inside the tenant''s schema; fix: %s',
              x.kind, t.schema_name, t.id, quote_ident(w.rolname), coalesce(quote_ident(t.role_name), '(none)'),
              CASE WHEN t.role_name IS NULL THEN pg_catalog.format('give the tenant a role: tenant.alter_tenant(%L, role_name => ...)', t.id)
                   ELSE pg_catalog.format('ALTER %s %s OWNER TO %I (or drop it)', x.alter, x.object, t.role_name) END)
  FROM tenant.tenants t
  JOIN pg_namespace n ON n.nspname = t.schema_name
  -- A join, not a lateral scan per schema: pg_class has no index leading
  -- with relnamespace (1,000 schema tenants: 0.5 s as a lateral scan).
  JOIN (
      SELECT c.relnamespace AS nsp, c.oid::regclass::text AS object, c.relowner AS owner,
             CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                            WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
             CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
                            WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS alter
        FROM pg_class c
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      UNION ALL
      SELECT p.pronamespace, p.oid::regprocedure::text, p.proowner,
             CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
             CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END
        FROM pg_proc p) x ON x.nsp = n.oid
  JOIN pg_roles w ON w.oid = x.owner
 WHERE t.isolation = 'schema' AND w.rolname IS DISTINCT FROM t.role_name
UNION ALL
-- A tenant schema on other roles' search_path (a role named like it, its
-- "$user"; a database or role search_path setting): the tenant's role
-- creates there what those sessions find first (tenant._schema_on_foreign_path).
SELECT quote_ident(t.schema_name),
       format('schema of tenant %s is on the search_path of other sessions: %s; the tenant''s role may create in it, and a table or an exact-type overload of a built-in function or operator it plants there is found first by those sessions (a superuser''s whatever its USAGE) and runs with their privileges; fix: ALTER SCHEMA %I RENAME TO a name that is no role''s and no setting''s, then tenant.alter_tenant(%L, schema_name => ...)',
              t.id, p.why, t.schema_name, t.id)
  FROM tenant.tenants t
  CROSS JOIN LATERAL (SELECT tenant._schema_on_foreign_path(t.schema_name, t.role_name) AS why) p
 WHERE t.isolation = 'schema' AND p.why IS NOT NULL
UNION ALL
-- A SECURITY DEFINER function without a search_path of its own resolves
-- names through its caller's path with its owner's privileges: a schema
-- tenant that may execute it (and use its schema) points it at another
-- tenant's schema with SET search_path, or at tables, functions and
-- operators it created in its own schema (found before pg_catalog's when
-- their types match better). Whatever the owner: one that bypasses row
-- level security is reported above too. One row per function.
(WITH sd AS (
    SELECT p.oid, p.proowner, p.pronamespace
      FROM pg_proc p
     WHERE p.prosecdef
       AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')
), hit AS (
    SELECT sd.oid, sd.proowner, t.id, e.rolname
      FROM sd
      JOIN tenant.tenants t ON t.isolation = 'schema'
      JOIN pg_roles e ON e.rolname = t.role_name
     WHERE e.oid <> sd.proowner
       AND has_schema_privilege(e.oid, sd.pronamespace, 'USAGE')
       AND has_function_privilege(e.oid, sd.oid, 'EXECUTE')
)
SELECT h.oid::regprocedure::text,
       format('SECURITY DEFINER function owned by %s has no search_path of its own and is executable by the role of schema tenant %s%s: it resolves names through the caller''s search_path with its owner''s privileges, so the tenant can point it at another tenant''s schema (SET search_path) or at objects it created in its own; fix: ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp (and schema-qualify its names), or REVOKE EXECUTE from tenant roles',
              quote_ident(pg_get_userbyid(h.proowner)), min(h.id),
              CASE WHEN count(*) > 1 THEN format(' (and of %s more)', count(*) - 1) ELSE '' END,
              h.oid::regprocedure)
  FROM hit h
 GROUP BY h.oid, h.proowner)
$fn$;
COMMENT ON FUNCTION tenant._audit_schemas IS 'pg_tenant: the schema isolation rows of tenant.audit()';

-- Everything that would let one tenant see another's rows: one row per
-- problem, no rows when the database is safe.
CREATE FUNCTION tenant.audit()
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
UNION ALL
-- 0.8.0: schema isolation (tenant._audit_schemas).
SELECT s.object, s.problem FROM tenant._audit_schemas() s
ORDER BY 1, 2
$fn$;
COMMENT ON FUNCTION tenant.audit IS 'pg_tenant: one row per tenant-isolation problem; empty when safe';

-- Create (or check) an application role: LOGIN NOSUPERUSER NOBYPASSRLS,
-- with the grants the tenant context needs. An existing role is checked,
-- not changed: a superuser, a BYPASSRLS role, a role with any other right
-- beyond a tenant (tenant._role_problem) or the owner of a protected
-- table cannot be an application role.
CREATE FUNCTION tenant.create_app_role(role_name name, password text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    r pg_roles;
    owned text;
    problem text;
BEGIN
    SELECT * INTO r FROM pg_roles WHERE rolname = role_name;
    IF NOT FOUND THEN
        IF password IS NULL THEN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB', role_name);
        ELSE
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB PASSWORD %L',
                           role_name, password);
        END IF;
    ELSE
        IF r.rolsuper OR r.rolbypassrls THEN
            RAISE EXCEPTION 'role "%" has SUPERUSER or BYPASSRLS and cannot be an application role', role_name
                USING ERRCODE = '42501';
        END IF;
        problem := tenant._role_problem(r.oid);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'role "%" % and cannot be an application role: its sessions would reach beyond their tenant', role_name, problem
                USING ERRCODE = '42501';
        END IF;
        SELECT string_agg(c.oid::regclass::text, ', ') INTO owned
          FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid AND p.polname = 'pg_tenant_isolation'
         WHERE c.relowner = r.oid;
        IF owned IS NOT NULL THEN
            RAISE EXCEPTION 'role "%" owns protected tables (%) and cannot be an application role', role_name, owned
                USING ERRCODE = '42501';
        END IF;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA tenant TO %I', role_name);
    -- Confined even without a tenant context (direct logins, autovacuum
    -- running its objects' expressions).
    EXECUTE format('GRANT tenant_app TO %I', role_name);
END
$fn$;
COMMENT ON FUNCTION tenant.create_app_role IS 'pg_tenant: create or check a LOGIN NOSUPERUSER NOBYPASSRLS application role';
