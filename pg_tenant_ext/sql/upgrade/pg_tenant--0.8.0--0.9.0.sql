-- pg_tenant 0.8.0 -> 0.9.0 (frozen with the 0.9.0 release; never edit
-- after it).
--
-- Like the install script, this runs with search_path = tenant: its DDL
-- names every function, operator and type with its schema, and it first
-- refuses a schema "tenant" that is not the extension's alone.
--
-- What 0.9.0 changes is listed section by section below.
\echo Use "ALTER EXTENSION pg_tenant UPDATE TO '0.9.0'" to load this file. \quit
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

-- 0.9.0: limits across several routers (fleet.rs, shmem.rs): connection leases in
-- shared memory for a fleet of routers, and the registry of backends' tenants.
CREATE FUNCTION tenant."fleet_acquire"(
	"id" TEXT, /* & str */
	"max" INT /* i32 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fleet_acquire_wrapper';

CREATE FUNCTION tenant."fleet_counts"() RETURNS TABLE (
	"tenant" TEXT,  /* String */
	"connections" bigint,  /* i64 */
	"held_here" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fleet_counts_wrapper';

CREATE FUNCTION tenant."fleet_release"(
	"id" TEXT /* & str */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fleet_release_wrapper';

CREATE FUNCTION tenant."fleet_restore"(
	"ids" TEXT[], /* Vec < Option < String > > */
	"counts" INT[] /* Vec < Option < i32 > > */
) RETURNS bigint /* i64 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'fleet_restore_wrapper';

CREATE FUNCTION tenant."tenant_backends"(
	"id" TEXT /* & str */
) RETURNS SETOF INT /* i32 */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'tenant_backends_wrapper';

COMMENT ON FUNCTION tenant.fleet_acquire(text, integer) IS 'pg_tenant: count one connection of a tenant for the fleet of routers if fewer than max are counted; the lease is this backend''s until fleet_release or its exit (granted to tenant_router)';
COMMENT ON FUNCTION tenant.fleet_release(text) IS 'pg_tenant: give back one of this backend''s connection leases of a tenant (granted to tenant_router)';
COMMENT ON FUNCTION tenant.fleet_restore(text[], integer[]) IS 'pg_tenant: make this backend hold exactly these leases, whatever the limits (a router re-claiming its connections; granted to tenant_router)';
COMMENT ON FUNCTION tenant.fleet_counts() IS 'pg_tenant: every tenant''s connections counted for the fleet of routers (granted to tenant_router)';
COMMENT ON FUNCTION tenant.tenant_backends(text) IS 'pg_tenant: pids of the backends whose context is a tenant (superusers only)';
REVOKE EXECUTE ON FUNCTION tenant.fleet_acquire(text, integer), tenant.fleet_release(text),
    tenant.fleet_restore(text[], integer[]), tenant.fleet_counts(), tenant.tenant_backends(text)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenant.fleet_acquire(text, integer), tenant.fleet_release(text),
    tenant.fleet_restore(text[], integer[]), tenant.fleet_counts() TO tenant_router;
