//! pg_tenant: the tenant context, catalog, fail-closed RLS helpers and
//! permission hooks. See docs/src/reference/sql.md for the SQL surface.
//!
//! Modules, in an order where each uses only modules named before it:
//! `state` (the per-backend state every module reads), `report` (how a
//! refusal is raised) and `shmem` (the shared memory: fleet leases, the
//! backends' tenants); `gucs`, `budget`, `rolelock`, `subject`,
//! `admission`, `schema` (schema isolation's search_path and checks),
//! `refused`, `auth`; `context` (`set_context` and the
//! functions that read the tenant), `sealed` (the context of a tenant
//! database), `pool`, `advisory`, `confine`, `copy`, `fleet` (the leases' SQL surface);
//! `hooks`, which runs the checks at every statement.

use pgrx::prelude::*;

mod admission;
mod advisory;
mod auth;
mod budget;
mod compat;
mod confine;
mod context;
mod copy;
mod fence;
mod fleet;
mod gate;
mod gucs;
mod hooks;
mod pool;
mod refused;
mod report;
mod rolelock;
mod schema;
mod sealed;
mod shmem;
mod state;
mod subject;

pgrx::pg_module_magic!(name, version);

// The catalog tables and the management functions (SQL, see sql/).
extension_sql_file!("../sql/catalog.sql", name = "catalog", bootstrap);
// Tenant secrets (0.3.0): the table, set_password, auth_secret, login_verifier.
extension_sql_file!(
    "../sql/secrets.sql",
    name = "secrets",
    requires = ["catalog", auth::_scram_verifier]
);
// 0.5.0: functions a confined session creates are not executable by PUBLIC.
extension_sql_file!(
    "../sql/tenant_ddl.sql",
    name = "tenant_ddl",
    requires = ["catalog", context::current_tenant_id]
);
// 0.8.0: migrations applied to tenant schemas (tenant-router tenants migrate).
extension_sql_file!(
    "../sql/migrations.sql",
    name = "migrations",
    requires = ["catalog"]
);
// 0.8.0: database isolation: the sealed context document, the binding of a
// tenant database.
extension_sql_file!(
    "../sql/database.sql",
    name = "database",
    requires = ["catalog"]
);
// 0.9.0: limits across several routers: the fleet functions' grants.
extension_sql_file!(
    "../sql/fleet.sql",
    name = "fleet",
    requires = [
        "catalog",
        fleet::fleet_acquire,
        fleet::fleet_release,
        fleet::fleet_restore,
        fleet::fleet_counts,
        fleet::tenant_backends
    ]
);
// 0.9.0: placement: fences (tenants that do not live on this server).
extension_sql_file!(
    "../sql/placement.sql",
    name = "placement",
    requires = ["catalog"]
);
// RLS helpers and audit; they call the Rust functions, so they come last.
extension_sql_file!("../sql/rls.sql", name = "rls", finalize);

/// Loaded through shared_preload_libraries: register the GUCs and install
/// the hooks. Loaded any other way (a plain `LOAD`, or `CREATE EXTENSION`
/// in a server without the preload), do nothing: every function then
/// refuses with a message that says how to fix it, and so does
/// `CREATE EXTENSION` itself.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: read-only access to a flag Postgres sets while preloading.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    gucs::init();
    // SAFETY: called once, while preloading.
    unsafe {
        hooks::init();
        rolelock::init();
        budget::init();
        shmem::init();
    }
    context::set_preloaded();
}

/// Raise 55000 unless the library was preloaded. `CREATE EXTENSION` calls
/// it, so installing into a server without the preload fails clearly.
#[pg_extern(volatile)]
fn assert_preloaded() {
    context::require_preloaded();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    include!("tests.rs");
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    /// The test cluster preloads the extension and knows the test key.
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![
            "shared_preload_libraries = 'pg_tenant'",
            // The test key of docs/src/concepts/context-token.md (seed bytes 0x00..=0x1f).
            "pg_tenant.context_public_keys = '03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8'",
        ]
    }
}
