-- 0.9.0: limits across several routers (fleet.rs, shmem.rs). Each router's
-- catalog role (tenant_router) takes, gives back and restores connection
-- leases kept in this server's shared memory; tenant.tenant_backends is for
-- superusers alone.
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
