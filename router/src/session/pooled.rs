//! The pooled way through a session (README "Pooling"): after the router
//! verified the client, a backend comes from the tenant's pool instead of
//! a new login, gets the client's context and settings (`pool::switch`),
//! and the client gets the startup answer PostgreSQL would have sent, with
//! a cancel key of the router's. When the client leaves with its
//! conversation at rest, the backend is reset and given back; otherwise it
//! is closed.

use super::{Phase, Session};
use crate::auth::verify::Verified;
use crate::backend::Backend;
use crate::catalog::TenantInfo;
use crate::config::Config;
use crate::error::SessionError;
use crate::identify;
use crate::limits::StatementWatch;
use crate::pool::{self, switch, Lease};
use crate::protocol;
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout_at;

impl Session {
    /// Authenticating (pooled) to Transparent: a backend from the pool,
    /// switched to this client's tenant. The pool wait is bounded by
    /// `pool.timeout_ms`; the rest by the startup deadline.
    pub(super) async fn attach_pooled(
        &mut self,
        cfg: &Arc<Config>,
        info: Arc<TenantInfo>,
        v: Verified,
        upstream_params: &[(String, String)],
        deadline: tokio::time::Instant,
    ) -> Result<Backend, SessionError> {
        let timeout = || SessionError::StartupTimeout(cfg.startup_timeout_ms);
        self.phase = Phase::Authenticating;
        let role = v.who.login_role.clone();
        let database = identify::param(upstream_params, "database")
            .unwrap_or(&role)
            .to_owned();
        let settings = identify::settings(upstream_params);
        let (pool, share) = pool::pool_for(&self.shared.pools, cfg, &info, &database, &role);
        let checkout = pool.checkout(&info.id, share, cfg.pool.timeout()).await?;
        let lease = checkout.lease;
        let login_params = vec![
            ("user".to_owned(), role.clone()),
            ("database".to_owned(), database),
        ];
        let check_after = Duration::from_millis(cfg.pool.check_after_idle_ms);
        let reused = match checkout.backend {
            Some((mut b, idle)) => {
                if idle < check_after || switch::check(cfg, &mut b).await.is_ok() {
                    Some(b)
                } else {
                    pool.discarded("check_failed");
                    tokio::spawn(switch::close(b));
                    None
                }
            }
            None => None,
        };
        let mut backend = match reused {
            Some(b) => {
                self.shared
                    .metrics
                    .pool_reused
                    .with_label_values(&[pool.label()])
                    .inc();
                b
            }
            None => {
                let open = switch::open(cfg, &login_params, &v.who.login, &role);
                timeout_at(deadline, open).await.map_err(|_| timeout())??
            }
        };
        pool.learn_login(&v.who.login, &login_params);
        if backend.served.as_deref().is_some_and(|t| t != info.id) {
            self.shared
                .metrics
                .pool_switches
                .with_label_values(&[pool.label()])
                .inc();
        }

        // Injecting: the switch. On any failure the backend is closed (the
        // lease, dropped with it, frees its place).
        self.phase = Phase::Injecting;
        let subject = v
            .who
            .subject
            .as_ref()
            .map(|(s, c)| (s.as_str(), c.as_str()));
        let activated = timeout_at(
            deadline,
            switch::activate(cfg, &mut backend, &info.id, subject, &settings),
        )
        .await
        .map_err(|_| timeout())
        .and_then(|r| r);
        if let Err(e) = activated {
            pool.discarded("switch_failed");
            tokio::spawn(switch::close(backend));
            return Err(e);
        }
        backend.served = Some(info.id.clone());
        let real = backend
            .key
            .ok_or_else(|| SessionError::Injection("the backend sent no BackendKeyData".into()))?;
        self.span.record("backend_pid", real.0);
        let client_key = self.shared.cancels.fresh_key();
        self.cancel = Some(
            self.shared
                .cancels
                .register_as(client_key, real, &cfg.upstream),
        );
        let counters = self.shared.limits.counters(&info.id);
        counters.publish(info.clone());
        self.watch = Some(StatementWatch::new(
            &info.id,
            counters,
            self.shared.cancels.clone(),
            client_key,
        ));

        // What PostgreSQL would have said after the password.
        let mut out = v.to_client;
        for (name, value) in &backend.params {
            protocol::parameter_status_frame(name, value, &mut out);
        }
        protocol::backend_key_data(client_key.0, client_key.1, &mut out);
        out.extend_from_slice(&protocol::ready_for_query(b'I'));
        self.client.send(&out).await?;
        self.traffic.to_client += out.len() as u64;
        if let Some(c) = &self.counters {
            c.metrics.connections.inc();
        }
        self.authenticated = Some(v.who);
        self.lease = Some(lease);
        tracing::info!(pool = pool.label(), "connection ready (pooled)");
        Ok(backend)
    }

    /// The client left with its conversation at rest: reset the backend
    /// (`clear_context`, `DISCARD ALL`) and give it back, or close it if
    /// the reset fails.
    pub(super) async fn give_back(&self, lease: Lease, mut backend: Backend) {
        backend.buf = BytesMut::with_capacity(16 * 1024);
        let cfg = self.shared.config();
        match switch::reset(&cfg, &mut backend).await {
            Ok(()) => lease.give_back(backend),
            Err(e) => {
                lease.pool().discarded("reset_failed");
                tracing::warn!(parent: &self.span, error = %crate::error::Escaped(&e), "closing a pooled backend whose reset failed");
                switch::close(backend).await;
                drop(lease);
            }
        }
    }
}
