//! Which upstream a session's backends come from (README "Scaling out"):
//! the one its tenant's catalog row names. A leaf of `session`: the
//! dedicated and pooled sources both ask it.

use crate::catalog::TenantInfo;
use crate::config::{Config, Upstream};
use crate::error::SessionError;
use std::sync::Arc;

/// The upstream a session's backends are opened on: the tenant's (its
/// catalog `upstream`, None: the main one), the main one for a bypass
/// user. A name this router does not have is refused (08001) before a
/// backend is opened.
pub fn upstream_for(
    cfg: &Config,
    tenant: Option<&TenantInfo>,
) -> Result<Arc<Upstream>, SessionError> {
    let name = tenant.and_then(|i| i.upstream.as_deref());
    cfg.upstreams
        .get(name)
        .cloned()
        .ok_or_else(|| SessionError::UnknownUpstream {
            tenant: tenant.map(|i| i.id.clone()).unwrap_or_default(),
            upstream: name.unwrap_or_default().to_owned(),
        })
}
