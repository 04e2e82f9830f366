//! The `[metrics]` section: how many tenant series `/metrics` may carry
//! and how long an idle tenant's state is kept.

use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;

/// Most tenants `histogram_top_n` may name: each costs 17 series.
pub const MAX_HISTOGRAM_TOP_N: usize = 1_000;
/// Most tenants `histogram_tenants` may list.
pub const MAX_HISTOGRAM_TENANTS: usize = 1_000;

/// `[metrics]` (every field is in `router/tenant-router.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// A tenant with no open connection and no activity for this long has
    /// its router state (counters, QPS bucket, latency window, series)
    /// dropped; it starts again from zero on its next connection.
    pub tenant_idle_ms: u64,
    /// Tenants that always have a `statement_duration_seconds` histogram
    /// of their own while the router holds their state.
    pub histogram_tenants: Vec<String>,
    /// Besides those, the most busy tenants (by statements since the last
    /// reassignment) with a histogram of their own; the rest observe into
    /// `tenant="_other"`. 0: only `histogram_tenants`.
    pub histogram_top_n: usize,
    /// How often the `histogram_top_n` places are given to the busiest
    /// tenants (a free place is taken at once by a tenant's first
    /// statement).
    pub histogram_reassign_ms: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            tenant_idle_ms: 600_000,
            histogram_tenants: Vec::new(),
            histogram_top_n: 10,
            histogram_reassign_ms: 60_000,
        }
    }
}

impl MetricsSettings {
    pub fn tenant_idle(&self) -> Duration {
        Duration::from_millis(self.tenant_idle_ms)
    }

    pub fn histogram_reassign(&self) -> Duration {
        Duration::from_millis(self.histogram_reassign_ms)
    }

    /// `histogram_tenants` as a set.
    pub fn named(&self) -> HashSet<String> {
        self.histogram_tenants.iter().cloned().collect()
    }

    /// Check what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.tenant_idle_ms == 0 {
            return Err("metrics.tenant_idle_ms must be greater than 0".into());
        }
        if self.histogram_reassign_ms == 0 {
            return Err("metrics.histogram_reassign_ms must be greater than 0".into());
        }
        if self.histogram_top_n > MAX_HISTOGRAM_TOP_N {
            return Err(format!(
                "metrics.histogram_top_n {} is more than {MAX_HISTOGRAM_TOP_N}",
                self.histogram_top_n
            ));
        }
        if self.histogram_tenants.len() > MAX_HISTOGRAM_TENANTS {
            return Err(format!(
                "metrics.histogram_tenants lists {} tenants, more than {MAX_HISTOGRAM_TENANTS}",
                self.histogram_tenants.len()
            ));
        }
        if let Some(bad) = self
            .histogram_tenants
            .iter()
            .find(|t| !pg_tenant_token::valid_tenant_id(t))
        {
            return Err(format!(
                "metrics.histogram_tenants: \"{}\" is not a valid tenant id",
                bad.escape_debug()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        MetricsSettings::default().validate().unwrap();
        let bad = |s: MetricsSettings| s.validate().unwrap_err();
        assert!(bad(MetricsSettings {
            tenant_idle_ms: 0,
            ..Default::default()
        })
        .contains("metrics.tenant_idle_ms must be greater than 0"));
        assert!(bad(MetricsSettings {
            histogram_reassign_ms: 0,
            ..Default::default()
        })
        .contains("metrics.histogram_reassign_ms"));
        assert!(bad(MetricsSettings {
            histogram_top_n: MAX_HISTOGRAM_TOP_N + 1,
            ..Default::default()
        })
        .contains("metrics.histogram_top_n 1001 is more than 1000"));
        let e = bad(MetricsSettings {
            histogram_tenants: vec!["acme".into(), "Not Valid\"".into()],
            ..Default::default()
        });
        assert!(
            e.contains("\"Not Valid\\\"\" is not a valid tenant id"),
            "{e}"
        );
    }
}
