-- 0.8.0: the migrations `tenant-router tenants migrate` applied to tenant
-- schemas, one row per (schema, migration). The runner inserts the row in
-- the tenant's transaction before it runs the script, so the row and the
-- DDL commit or roll back together (a failed script leaves no row), and a
-- second runner inserting the same key waits on the primary key until the
-- first commits, then sees the row and skips the schema (never applies a
-- migration twice). `checksum` is the SHA-256 of the script: a script
-- changed since it was applied to a schema is refused there. Readable by
-- tenant_admin; written by the runner (a superuser). Kept by pg_dump.
CREATE TABLE tenant.schema_migrations (
    schema_name pg_catalog.name NOT NULL,
    migration   pg_catalog.text NOT NULL
                CONSTRAINT migration_name CHECK (pg_catalog.octet_length(migration) OPERATOR(pg_catalog.>=) 1
                                                 AND pg_catalog.octet_length(migration) OPERATOR(pg_catalog.<=) 200),
    checksum    pg_catalog.text NOT NULL
                CONSTRAINT checksum_sha256 CHECK (checksum OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$'::pg_catalog.text),
    applied_at  pg_catalog.timestamptz NOT NULL DEFAULT pg_catalog.now(),
    applied_by  pg_catalog.name NOT NULL DEFAULT pg_catalog."session_user"(),
    PRIMARY KEY (schema_name, migration)
);
COMMENT ON TABLE tenant.schema_migrations IS 'pg_tenant: migrations applied to tenant schemas by tenant-router tenants migrate';
SELECT pg_catalog.pg_extension_config_dump('tenant.schema_migrations', '');
REVOKE ALL ON tenant.schema_migrations FROM PUBLIC;
GRANT SELECT ON tenant.schema_migrations TO tenant_admin;
