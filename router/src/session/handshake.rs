//! The handshake, as typed steps: `Opening` (the startup packet, or a
//! cancel request) → `Identified` (who the client says it is, its tenant's
//! row, and, when the router checks the client itself, its proof and its
//! place). What follows is the backend's (`source`): a dedicated login or
//! a pooled checkout, then one `Ready`.
//!
//! Every step runs within the startup deadline (`Deadline::within`).

use super::conn::Conn;
use super::phase::{Deadline, Phase};
use crate::auth::verify::{self, Verified};
use crate::auth::{self, Authenticated, BackendLogin};
use crate::catalog::TenantInfo;
use crate::config::{Config, LoginMode};
use crate::error::SessionError;
use crate::frontend::Opening;
use crate::identify::{self, Identity};
use crate::limits::ConnectionSlot;
use std::sync::Arc;

/// Startup parameters, in the client's order.
pub type Params = Vec<(String, String)>;

/// Who the client is, and how it proves it.
pub enum Identified {
    /// A bypass user: PostgreSQL authenticates it; it has no tenant
    /// context.
    Bypass {
        identity: Identity,
        upstream: Params,
    },
    /// A tenant's client whose authentication PostgreSQL does (relayed on
    /// a backend of its own, `auth.login = "relay"`).
    Relayed {
        identity: Identity,
        info: Arc<TenantInfo>,
        upstream: Params,
    },
    /// A tenant's client the router checked itself (a token, verify mode,
    /// a tenant secret): it has proved who it is and holds its place.
    Checked {
        info: Arc<TenantInfo>,
        verified: Verified,
        slot: ConnectionSlot,
        upstream: Params,
    },
}

/// WaitStartup to Identified. None: a cancel request (served here).
pub async fn identify(
    conn: &mut Conn,
    cfg: &Arc<Config>,
    deadline: Deadline,
    over_capacity: bool,
) -> Result<Option<Identified>, SessionError> {
    let params = match deadline.within(conn.client.read_opening(&cfg.tls)).await? {
        Opening::Cancel { pid, key } => {
            let forwarded = conn.shared.cancels.forward(pid, key).await;
            let outcome = if forwarded { "forwarded" } else { "dropped" };
            conn.shared
                .metrics
                .cancel_requests
                .with_label_values(&[outcome])
                .inc();
            return Ok(None);
        }
        Opening::Startup(_) if over_capacity => {
            return Err(SessionError::TooManyClients(conn.shared.max_clients()))
        }
        Opening::Startup(p) => p,
    };
    let span = tracing::Span::current();
    let sni_owned = conn.client.tls.as_ref().and_then(|t| t.sni.clone());
    let sni = sni_owned.as_deref();
    if let Some(tls) = &conn.client.tls {
        span.record("tls", tls.version);
        conn.shared
            .metrics
            .connections_tls
            .with_label_values(&[tls.version])
            .inc();
    }
    // A token login: the JWT names the tenant and the role, so it is
    // checked before anything else (nothing is looked up for a client
    // whose token does not verify).
    let token_login = cfg
        .auth
        .jwt_verifier
        .as_ref()
        .filter(|v| identify::param(&params, "user") == Some(v.user()));
    let (identity, mut verified) = match token_login {
        Some(v) => {
            conn.phase = Phase::Authenticating;
            let checked = auth::jwt::authenticate(&mut conn.client, &conn.shared.metrics, cfg, v);
            let checked = deadline.within(checked).await?;
            let identity = Identity::Tenant {
                tenant: checked.who.tenant.clone(),
                user: checked.who.login_role.clone(),
                from_database: false,
            };
            (identity, Some(checked))
        }
        None => (
            identify::identify(&cfg.identify, &cfg.bypass_users, &params, sni)?,
            None,
        ),
    };
    let sni_tenant = matches!(&identity, Identity::Tenant { tenant, .. }
        if sni.is_some_and(|s| identify::sni_names(&cfg.identify, s, tenant)));
    span.record("sni_tenant", sni_tenant);
    let (tenant, user, from_database) = match &identity {
        Identity::Bypass { user } => {
            span.record("user", user.as_str());
            tracing::info!("bypass user: forwarding without a tenant context");
            return Ok(Some(Identified::Bypass {
                identity,
                upstream: params,
            }));
        }
        Identity::Tenant {
            tenant,
            user,
            from_database,
        } => (tenant.as_str(), user.as_str(), *from_database),
    };
    span.record("tenant", tenant);
    span.record("user", user);
    identify::screen(&params)?;
    let known = deadline.within(conn.known_tenant(tenant)).await?;
    let secret = known
        .as_ref()
        .and_then(|i| i.auth_secret.as_ref())
        .map(|s| s.0.clone());
    // The router checks the client itself: nothing is taken or opened for
    // it before it has proved who it is. An unknown or disabled tenant of
    // a relayed login gets the same (mock) exchange: nothing tells it
    // apart from a wrong password.
    let unusable = known.as_ref().is_none_or(|i| !i.enabled);
    let must_verify = secret.is_some() || cfg.auth.login == LoginMode::Verify || unusable;
    if verified.is_none() && must_verify {
        conn.phase = Phase::Authenticating;
        let client_user = identify::param(&params, "user").unwrap_or_default();
        let request = verify::Request {
            tenant,
            role: user,
            client_user,
            known: known.as_deref(),
            secret,
        };
        let counters = conn.tenancy.counters().map(|c| &**c);
        let checked = verify::authenticate(
            &mut conn.client,
            &conn.shared.checker,
            counters,
            cfg,
            request,
        );
        verified = Some(deadline.within(checked).await?);
    }
    let info = known.ok_or_else(|| SessionError::UnknownTenant(tenant.into()))?;
    if !info.enabled {
        return Err(SessionError::DisabledTenant(tenant.into()));
    }
    // A tenant database has no catalog: its context is sealed from the
    // catalog's row, which an older catalog does not offer.
    if info.isolation == "database" && info.context_document.is_none() {
        // Kept from before an update, maybe: read it again.
        conn.shared.catalog.recheck(tenant);
        return Err(SessionError::SealedContextUnsupported(tenant.into()));
    }
    // A tenant placed on an upstream this router does not have is refused
    // before anything is opened; so is one on a named upstream without the
    // sealed context its server needs (a row read before an update).
    if cfg.upstreams.get(info.upstream.as_deref()).is_none() {
        return Err(SessionError::UnknownUpstream {
            tenant: tenant.into(),
            upstream: info.upstream.clone().unwrap_or_default(),
        });
    }
    if info.upstream.is_some() && info.context_document.is_none() {
        conn.shared.catalog.recheck(tenant);
        return Err(SessionError::SealedContextUnsupported(tenant.into()));
    }
    let upstream = rewrite(
        &params,
        user,
        from_database,
        &info,
        &cfg.identify.default_database,
    );
    Ok(Some(match verified {
        // A client the router checked has proved itself: it takes its
        // place now, before a backend is opened. A relayed one takes it
        // once PostgreSQL has accepted it (`source`), so clients that never
        // answer cannot hold a tenant's places.
        Some(verified) => {
            let mut slot = conn
                .shared
                .limits
                .acquire_connection(tenant, info.max_connections)?;
            conn.hold(&slot);
            let fleet =
                conn.shared
                    .fleet
                    .admit(&mut slot, tenant, info.max_connections, &cfg.fleet);
            fleet.await?;
            Identified::Checked {
                info,
                verified,
                slot,
                upstream,
            }
        }
        None => Identified::Relayed {
            identity,
            info,
            upstream,
        },
    }))
}

impl Identified {
    /// The tenant's row (None: a bypass user).
    pub fn tenant(&self) -> Option<&Arc<TenantInfo>> {
        match self {
            Identified::Bypass { .. } => None,
            Identified::Relayed { info, .. } | Identified::Checked { info, .. } => Some(info),
        }
    }
}

/// Who a relayed authentication let in.
pub fn relayed(identity: &Identity) -> Authenticated {
    let (tenant, role) = match identity {
        Identity::Bypass { user } => (String::new(), user.clone()),
        Identity::Tenant { tenant, user, .. } => (tenant.clone(), user.clone()),
    };
    Authenticated {
        tenant,
        login_role: role,
        subject: None,
        expires_at: None,
        login: BackendLogin::Relayed,
    }
}

/// The startup parameters Postgres gets: the tenant-free user name, and the
/// database the catalog names for database-isolated tenants.
fn rewrite(
    params: &[(String, String)],
    user: &str,
    from_database: bool,
    info: &TenantInfo,
    default_db: &str,
) -> Params {
    let catalog_db = info
        .database_name
        .as_deref()
        .filter(|_| from_database || info.isolation == "database");
    let db = catalog_db.or(from_database.then_some(default_db));
    let mut out: Params = params
        .iter()
        .map(|(k, v)| match k.as_str() {
            "user" => (k.clone(), user.to_string()),
            "database" => (k.clone(), db.unwrap_or(v).to_string()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    if let Some(db) = db {
        if identify::param(params, "database").is_none() {
            out.push(("database".into(), db.into()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(isolation: &str, database: Option<&str>) -> TenantInfo {
        TenantInfo {
            isolation: isolation.into(),
            database_name: database.map(Into::into),
            ..TenantInfo::for_test("acme")
        }
    }

    fn params(list: &[(&str, &str)]) -> Params {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn postgres_gets_the_tenant_free_user_and_the_catalogs_database() {
        let client = params(&[
            ("user", "app.acme"),
            ("database", "app"),
            ("DateStyle", "ISO"),
        ]);
        // Row-level isolation: the user name loses its tenant, the rest stays.
        assert_eq!(
            rewrite(&client, "app", false, &tenant("rls", None), "postgres"),
            params(&[("user", "app"), ("database", "app"), ("DateStyle", "ISO")])
        );
        // Database isolation: the catalog's database, even when the client
        // named another.
        assert_eq!(
            rewrite(
                &client,
                "app",
                false,
                &tenant("database", Some("acme_db")),
                "postgres"
            ),
            params(&[
                ("user", "app"),
                ("database", "acme_db"),
                ("DateStyle", "ISO")
            ])
        );
        // The tenant named by the database (identify.from = "database"): the
        // default database, added when the client sent none.
        let no_db = params(&[("user", "app")]);
        assert_eq!(
            rewrite(&no_db, "app", true, &tenant("rls", None), "postgres"),
            params(&[("user", "app"), ("database", "postgres")])
        );
    }
}
