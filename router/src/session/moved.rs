//! A transaction-pooled client whose tenant moved to another upstream
//! (`tenant-router tenants move` flipped the catalog's `upstream`): between
//! two transactions it takes its place in a pool of the new upstream, and
//! its next transaction runs there. (A session-mode client's backend is on
//! the old server: `tenants move` ends it, and the client reconnects.)

use super::conn::Conn;
use super::pooled::PooledClient;
use crate::backend::Backend;
use crate::error::SessionError;
use crate::pool::{self, switch, Lease, Place};
use std::sync::Arc;

impl PooledClient {
    /// When the catalog places the tenant on another upstream than the
    /// client's pool: the client's pool becomes the new upstream's (the
    /// same database and role), its context's sealed document the new
    /// row's. Returns the new pool's first backend when the client opened
    /// it (no pool of that key yet). A tenant whose row is gone keeps its
    /// pool: the switch refuses it.
    pub(super) async fn follow_move(
        &mut self,
        conn: &mut Conn,
    ) -> Result<Option<(Lease, Backend)>, SessionError> {
        let Ok(Some(info)) = conn.shared.catalog.lookup(&self.wanted.tenant).await else {
            return Ok(None);
        };
        let now = info.upstream.as_deref().unwrap_or(crate::config::MAIN);
        if now == self.pool.key.upstream || !self.transaction_pooling() {
            return Ok(None);
        }
        let cfg = conn.shared.config();
        let up = super::placement::upstream_for(&cfg, Some(&info))?;
        let key = &self.pool.key;
        let terms = pool::terms_for(&cfg, &up, &info, &key.database.clone(), &key.role.clone());
        tracing::info!(parent: &conn.span, from = %self.pool.key.upstream, to = now, "the tenant moved: its next transaction runs on its new upstream");
        let place = conn
            .shared
            .pools
            .place(&terms, &info.id, cfg.pool.timeout())
            .await?;
        let first = match place {
            Place::Pool(p) => {
                self.pool = p;
                None
            }
            Place::First(opening) => {
                let params = terms.key.login_params();
                let b = switch::open(&cfg, &terms.upstream, &params, &self.login, &terms.key.role)
                    .await?;
                let lease = conn.shared.pools.create(opening, &terms, &info.id);
                self.pool = lease.pool().clone();
                Some((lease, b))
            }
        };
        self.share = terms.share;
        Arc::make_mut(&mut self.wanted).document = info.context_document.clone();
        Ok(first)
    }
}
