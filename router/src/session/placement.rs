//! Which upstream a session's backends come from (docs/src/scaling-out/index.md):
//! the one its tenant's catalog row names; and the sealed context to mint
//! for it now, refused once the tenant lives elsewhere. The dedicated and
//! pooled sources both ask it.

use super::conn::Conn;
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

/// The sealed context to mint for a database tenant, or a tenant on a
/// named upstream, now: the document of the row the router holds at this
/// moment (a row a catalog change dropped is read again), called right
/// before a context is minted, so a change committed while a client
/// logged in or idled reaches its context. None for other tenants (`held`
/// None). A tenant that left the catalog, or no longer has a sealed
/// context, or whose catalog `upstream` is no longer `on` (the upstream
/// the session's backends come from: the tenant was moved) is refused;
/// while the catalog cannot be read, the document the client has (`held`)
/// stands.
pub async fn sealed_now(
    conn: &Conn,
    tenant: &str,
    held: Option<&Arc<str>>,
    on: &str,
) -> Result<Option<Arc<str>>, SessionError> {
    let Some(held) = held else {
        return Ok(None);
    };
    match conn.shared.catalog.lookup(tenant).await {
        Ok(Some(info)) if lives_on(&info) != on => Err(moved(tenant, &info, on)),
        Ok(Some(info)) => match &info.context_document {
            Some(doc) => Ok(Some(doc.clone())),
            None => Err(SessionError::ContextRefused(format!(
                "tenant \"{tenant}\" no longer has a sealed context (database isolation or a named upstream)"
            ))),
        },
        Ok(None) => Err(SessionError::UnknownTenant(tenant.into())),
        Err(_) => Ok(Some(held.clone())),
    }
}

/// The upstream a tenant's row places it on.
pub fn lives_on(info: &TenantInfo) -> &str {
    info.upstream.as_deref().unwrap_or(crate::config::MAIN)
}

/// The refusal of a session on upstream `on` whose tenant now lives on
/// another.
pub fn moved(tenant: &str, info: &TenantInfo, on: &str) -> SessionError {
    SessionError::ContextRefused(format!(
        "tenant \"{tenant}\" now lives on upstream \"{}\", not \"{on}\": reconnect",
        lives_on(info)
    ))
}
