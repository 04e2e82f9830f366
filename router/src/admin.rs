//! The admin HTTP API (axum), on `admin_listen`:
//!
//! | route                            | what                                        |
//! |----------------------------------|---------------------------------------------|
//! | `GET /health`                    | the process is up                           |
//! | `GET /ready`                     | catalog and upstream answer, not draining   |
//! | `GET /tenants`                   | a page of tenants: limits and counters; `?limit=&after=&prefix=&enabled=&active=` (`pages`) |
//! | `GET /tenants/summary`           | tenants by state, connected, top-N by connections, statements, errors; `?top=` |
//! | `GET /tenants/{id}`              | one tenant as this router holds it: its catalog row (kept since its last change) and counters (a tenant named `summary`: `/tenants?prefix=summary&limit=1`) |
//! | `GET /tenants/{id}/metrics`      | one tenant's counters and latency (zeros when its state was dropped as idle) |
//! | `POST /tenants/{id}/disconnect`  | close every connection of a tenant          |
//! | `POST /tenants/{id}/pause`       | hold the tenant's new transactions and logins (`crate::pause`); `?wait_ms=` (default 5000, at most 60000): wait that long for its running transactions to finish; answers how many still run |
//! | `POST /tenants/{id}/resume`      | let them go on; `?reconnect=true`: its session-mode sessions parked at rest end (57P01) instead (the tenant moved) |
//! | `GET /pools`                     | backend pools: size, open, idle, active, waiting |
//! | `GET /metrics`                   | Prometheus text exposition                  |
//!
//! With `admin_token` set, every route but /health and /ready needs
//! `Authorization: Bearer <token>`. Errors are JSON: `{"error": "..."}`.

mod app;
mod pages;

pub use app::AdminError;

use crate::metrics::TenantSnapshot;
use crate::shared::Shared;
use app::{snapshot, Admin, AppState, Checks};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long `/ready` reuses its catalog and upstream checks: the route
/// needs no token, and each upstream probe costs Postgres a process.
const READY_CACHE: Duration = Duration::from_secs(1);

/// The longest a named upstream's probe may take: its answer is reported
/// (`/ready`'s `upstreams`, `tenant_router_upstream_up`) but decides
/// nothing, and `/ready` waits for it; an upstream that accepts the
/// connection and never answers (a dead host behind a load balancer, a
/// black-holed route) must not hold readiness for `connect_timeout_ms`.
const NAMED_PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Most `/metrics` responses sent at once: each holds a pointer per
/// tenant until its client has read it all; more get 503.
const MAX_SCRAPES: usize = 4;

/// The routes, with the bearer-token check in front of the private ones.
pub fn router(shared: Arc<Shared>) -> Router {
    let app = Arc::new(Admin {
        shared,
        checks: tokio::sync::Mutex::new(None),
        probed: std::sync::Mutex::new(None),
        scrapes: Arc::new(tokio::sync::Semaphore::new(MAX_SCRAPES)),
    });
    let private = Router::new()
        .route("/tenants", get(pages::tenants))
        .route("/tenants/summary", get(pages::summary))
        .route("/tenants/{id}", get(tenant))
        .route("/tenants/{id}/metrics", get(tenant_metrics))
        .route("/tenants/{id}/disconnect", post(disconnect))
        .route("/tenants/{id}/pause", post(pause))
        .route("/tenants/{id}/resume", post(resume))
        .route("/pools", get(pools))
        .route("/metrics", get(prometheus))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(private)
        .fallback(|req: Request| async move { AdminError::NoRoute(req.uri().path().to_owned()) })
        .method_not_allowed_fallback(|req: Request| async move {
            AdminError::Method {
                method: req.method().to_string(),
                path: req.uri().path().to_owned(),
            }
        })
        .with_state(app)
}

/// Serve the admin API until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "admin API stopped");
    }
}

/// The token is read from the current config, so a reload can rotate it.
async fn require_token(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, AdminError> {
    let cfg = app.shared.config();
    if !cfg.admin_token.is_empty() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim());
        if !bool::from(given.as_bytes().ct_eq(cfg.admin_token.as_bytes())) {
            return Err(AdminError::Unauthorized);
        }
    }
    Ok(next.run(req).await)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "up" }))
}

/// Ready when the router would serve a new tenant connection: not
/// draining, the catalog answers a query, and the main upstream answers
/// like a PostgreSQL server. Every upstream is reported (`upstreams`:
/// "ok" or why not); a named one that is down fails only its tenants'
/// connections, not readiness.
async fn ready(State(app): State<AppState>) -> Response {
    let Checks { catalog, upstreams } = checks(&app).await;
    let draining = app.shared.is_draining();
    let show = |r: &Result<(), String>| r.as_ref().map_or_else(|e| e.clone(), |_| "ok".to_owned());
    let main = upstreams
        .first()
        .map_or_else(|| Err("no main upstream".to_owned()), |(_, r)| r.clone());
    let ok = catalog.is_ok() && main.is_ok() && !draining;
    let all: serde_json::Map<String, serde_json::Value> = upstreams
        .iter()
        .map(|(name, r)| (name.clone(), show(r).into()))
        .collect();
    let body = json!({
        "ready": ok,
        "draining": draining,
        "catalog": show(&catalog),
        "upstream": show(&main),
        "upstreams": all,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The catalog and upstream probes, run at most once per `READY_CACHE`.
async fn checks(app: &Admin) -> Checks {
    let mut last = app.checks.lock().await;
    if let Some((at, c)) = last.as_ref() {
        if at.elapsed() < READY_CACHE {
            return c.clone();
        }
    }
    let cfg = app.shared.config();
    let catalog = async {
        match tokio::time::timeout(cfg.connect_timeout(), app.shared.catalog.check()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err("tenant catalog: timed out".to_owned()),
        }
    };
    let (catalog, upstreams) = tokio::join!(catalog, probe_upstreams(app));
    let c = Checks { catalog, upstreams };
    *last = Some((Instant::now(), c.clone()));
    c
}

/// Probe every upstream (the main one first) and set their gauges.
async fn probe_upstreams(app: &Admin) -> Vec<(String, Result<(), String>)> {
    let cfg = app.shared.config();
    let timeout = cfg.connect_timeout();
    let probes = cfg.upstreams.all().map(|u| {
        let (name, address) = (u.name.to_string(), u.address.clone());
        let timeout = if u.is_main() {
            timeout
        } else {
            timeout.min(NAMED_PROBE_TIMEOUT)
        };
        async move {
            let r = probe_upstream(&address, timeout).await;
            (name, r)
        }
    });
    let upstreams = futures_util::future::join_all(probes).await;
    for (name, r) in &upstreams {
        app.shared.metrics.upstream_probed(name, r.is_ok());
    }
    upstreams
}

/// Start a round of upstream probes in the background (for the gauges)
/// unless one started within `READY_CACHE`. The catalog is not probed: a
/// scrape runs no query on the catalog connection (its health is
/// `tenant_router_catalog_up`, read without one).
fn refresh_checks(app: &AppState) {
    let due = {
        let mut probed = app.probed.lock().unwrap_or_else(|p| p.into_inner());
        let due = probed.is_none_or(|at| at.elapsed() >= READY_CACHE);
        if due {
            *probed = Some(Instant::now());
        }
        due
    };
    if due {
        let app = app.clone();
        tokio::spawn(async move {
            probe_upstreams(&app).await;
        });
    }
}

/// Ask the upstream for TLS (SSLRequest) and expect PostgreSQL's one-byte
/// answer, 'S' or 'N'; then hang up. Opens no session.
async fn probe_upstream(addr: &str, timeout: Duration) -> Result<(), String> {
    let probe = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut ssl = bytes::BytesMut::new();
        postgres_protocol::message::frontend::ssl_request(&mut ssl);
        s.write_all(&ssl).await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        Ok::<u8, std::io::Error>(b[0])
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(b'S' | b'N')) => Ok(()),
        Ok(Ok(b)) => Err(format!("{addr} answered {b:#04x}, not like PostgreSQL")),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Err(_) => Err(format!("{addr}: timed out")),
    }
}

/// `GET /tenants/{id}`: the row new connections of the tenant get now
/// (kept since its last change, or read), whether it has a secret (never
/// the secret), and its counters.
async fn tenant(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let shared = &app.shared;
    if !pg_tenant_token::valid_tenant_id(&id) {
        return Err(AdminError::InvalidTenant(id));
    }
    let Some(row) = shared.catalog.lookup(&id).await? else {
        return Err(AdminError::UnknownTenant(id));
    };
    let has_secret = row.auth_secret.is_some();
    let mut view = serde_json::to_value(pages::TenantView {
        counters: snapshot(shared, &id),
        limits: (*row).clone(),
    })
    .unwrap_or_default();
    view["has_secret"] = has_secret.into();
    view["paused"] = shared.pauses.is_paused(&id).into();
    Ok(Json(view))
}

/// Validate the id and check that the catalog knows it.
async fn known(shared: &Arc<Shared>, id: &str) -> Result<(), AdminError> {
    if !pg_tenant_token::valid_tenant_id(id) {
        return Err(AdminError::InvalidTenant(id.to_owned()));
    }
    match shared.catalog.lookup(id).await? {
        Some(_) => Ok(()),
        None => Err(AdminError::UnknownTenant(id.to_owned())),
    }
}

async fn tenant_metrics(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TenantSnapshot>, AdminError> {
    let shared = &app.shared;
    known(shared, &id).await?;
    Ok(Json(snapshot(shared, &id)))
}

async fn disconnect(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let shared = &app.shared;
    known(shared, &id).await?;
    let n = shared.limits.disconnect(&id);
    tracing::warn!(tenant = %id, connections = n, "admin API: disconnecting every connection of the tenant");
    Ok(Json(json!({ "tenant": id, "disconnected": n })))
}

/// Default and largest `wait_ms` of `POST /tenants/{id}/pause`.
const PAUSE_WAIT_MS: (u64, u64) = (5_000, 60_000);

/// `POST /tenants/{id}/pause[?wait_ms=N]`: the tenant's new transactions
/// and logins wait from now on; answer once none of its transactions runs
/// in this router, or after `wait_ms` with how many still do.
async fn pause(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, AdminError> {
    let shared = &app.shared;
    let wait = pause_wait(raw.as_deref())?;
    known(shared, &id).await?;
    let gate = shared.pauses.pause(&id);
    tracing::warn!(tenant = %id, "admin API: tenant paused");
    let running = gate.wait_quiet(Duration::from_millis(wait)).await;
    Ok(Json(json!({
        "tenant": id,
        "paused": true,
        "running": running,
        "quiet": running == 0,
    })))
}

fn pause_wait(raw: Option<&str>) -> Result<u64, AdminError> {
    let mut wait = PAUSE_WAIT_MS.0;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        let bad = |reason: String| AdminError::BadParameter {
            name: k.to_string(),
            reason,
        };
        match &*k {
            "wait_ms" => {
                wait = v
                    .parse::<u64>()
                    .ok()
                    .filter(|w| *w <= PAUSE_WAIT_MS.1)
                    .ok_or_else(|| {
                        bad(format!(
                            "must be a whole number of milliseconds from 0 to {}",
                            PAUSE_WAIT_MS.1
                        ))
                    })?
            }
            _ => return Err(bad("unknown parameter (known: wait_ms)".into())),
        }
    }
    Ok(wait)
}

/// `POST /tenants/{id}/resume`: the tenant's waiting transactions and
/// logins go on.
async fn resume(
    State(app): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<serde_json::Value>, AdminError> {
    let shared = &app.shared;
    let mut reconnect = false;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        match (&*k, &*v) {
            ("reconnect", "true") => reconnect = true,
            ("reconnect", "false") => reconnect = false,
            _ => {
                return Err(AdminError::BadParameter {
                    name: k.to_string(),
                    reason: "known: reconnect=true|false".into(),
                })
            }
        }
    }
    if !pg_tenant_token::valid_tenant_id(&id) {
        return Err(AdminError::InvalidTenant(id));
    }
    // A tenant dropped while paused can still be resumed.
    let was = shared.pauses.resume(&id, reconnect);
    if !was {
        known(shared, &id).await?;
    }
    tracing::warn!(tenant = %id, was_paused = was, reconnect, "admin API: tenant resumed");
    Ok(Json(
        json!({ "tenant": id, "paused": false, "was_paused": was, "reconnect": reconnect }),
    ))
}

async fn pools(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "pools": app.shared.pools.counts() }))
}

async fn prometheus(State(app): State<AppState>) -> Response {
    let shared = &app.shared;
    shared
        .metrics
        .catalog_up
        .set(i64::from(shared.catalog.is_connected().await));
    shared.metrics.clients.set(shared.open_clients() as i64);
    shared
        .metrics
        .catalog_rereads_pending
        .set(shared.catalog.rereads_pending() as i64);
    shared.pools.export();
    // The upstreams' gauges: the last round of probes (of /ready or of a
    // scrape); a scrape starts a new round in the background when its
    // last one is older than READY_CACHE. A scrape never waits for a probe
    // (a slow upstream would hold every scrape) and never queries the
    // catalog.
    refresh_checks(&app);
    let Ok(permit) = app.scrapes.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "error": format!("{MAX_SCRAPES} /metrics responses are being sent already: try again")
            })),
        )
            .into_response();
    };
    // Streamed a chunk of tenants at a time: a scrape holds one chunk, and
    // its permit until the body is sent or dropped.
    let chunks = shared.limits.scrape().map(move |c| {
        let _held = &permit;
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(c))
    });
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}
