//! The `[fleet]` section: several routers in front of the same servers
//! (docs/src/scaling-out/index.md, docs/src/scaling-out/several-routers.md).

use serde::Deserialize;
use std::time::Duration;

/// Most routers `routers` may name.
pub const MAX_ROUTERS: u32 = 1_000;

/// What a router does with a login of a tenant with `max_connections`
/// while its lease connection to the catalog database is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseLoss {
    /// Count locally, admitting at most ceil(max_connections / routers)
    /// connections of the tenant through this router (the fleet's total
    /// then stays near the limit); the counts are restored in the database
    /// when the connection comes back.
    #[default]
    LocalShare,
    /// Refuse the login (FATAL 53300): the limit is never exceeded, and no
    /// limited tenant can connect while the catalog is unreachable.
    Refuse,
}

/// `[fleet]` (every field is in `router/tenant-router.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetSettings {
    /// Count each tenant's `max_connections` for every router at once, in
    /// the catalog server's shared memory (`tenant.fleet_acquire`), over a
    /// connection of its own to `catalog.url`. Off: each router counts
    /// alone (N routers admit N times the limit). Restart-only.
    pub shared_connection_limits: bool,
    /// How many routers share each tenant's `qps_limit`: each enforces
    /// ceil(qps_limit / routers) statements a second (its bucket holds
    /// that times `burst_multiplier`). 1: the whole limit per router.
    pub routers: u32,
    /// How long a login waits for its lease before the router treats the
    /// lease connection as down (`on_lease_loss`).
    pub lease_timeout_ms: u64,
    /// `"local_share"` (default) or `"refuse"`: see `LeaseLoss`.
    pub on_lease_loss: LeaseLoss,
    /// Listen with SO_REUSEPORT, so several routers on one host share
    /// `listen` (the kernel spreads new connections over them; Linux lets
    /// only processes of the same user join). Restart-only.
    pub reuse_port: bool,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            shared_connection_limits: false,
            routers: 1,
            lease_timeout_ms: 2_000,
            on_lease_loss: LeaseLoss::LocalShare,
            reuse_port: false,
        }
    }
}

impl FleetSettings {
    pub fn lease_timeout(&self) -> Duration {
        Duration::from_millis(self.lease_timeout_ms)
    }

    /// This router's share of a fleet-wide `limit` (> 0): ceil(limit /
    /// routers), at least 1. 0 (unlimited) stays 0.
    pub fn share(&self, limit: i32) -> i32 {
        share(limit, self.routers)
    }

    /// Check what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.routers == 0 || self.routers > MAX_ROUTERS {
            return Err(format!(
                "fleet.routers must be between 1 and {MAX_ROUTERS} (not {})",
                self.routers
            ));
        }
        if self.lease_timeout_ms == 0 {
            return Err("fleet.lease_timeout_ms must be greater than 0".into());
        }
        Ok(())
    }
}

/// ceil(limit / routers) for a limit > 0; 0 and below stay as they are.
pub fn share(limit: i32, routers: u32) -> i32 {
    if limit <= 0 || routers <= 1 {
        return limit;
    }
    let r = routers as i64;
    ((limit as i64 + r - 1) / r).max(1) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_router_enforces_the_ceiling_of_its_share() {
        assert_eq!(share(100, 1), 100);
        assert_eq!(share(100, 3), 34);
        assert_eq!(share(5, 2), 3);
        assert_eq!(share(1, 4), 1, "never 0: that would mean unlimited");
        assert_eq!(share(0, 4), 0, "unlimited stays unlimited");
        assert_eq!(share(i32::MAX, 2), 1_073_741_824);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let f = FleetSettings {
            routers: 0,
            ..Default::default()
        };
        assert!(f.validate().unwrap_err().contains("fleet.routers"));
        let f = FleetSettings {
            lease_timeout_ms: 0,
            ..Default::default()
        };
        assert!(f.validate().unwrap_err().contains("fleet.lease_timeout_ms"));
        assert_eq!(FleetSettings::default().validate(), Ok(()));
    }
}
