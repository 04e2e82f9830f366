//! What the admin API's routes share: its state (`Admin`), its error
//! (`AdminError`, one status and message each), and a tenant's counters.

use crate::catalog::CatalogError;
use crate::metrics::TenantSnapshot;
use crate::shared::Shared;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

/// What a request can fail with; each maps to one status and message.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("query parameter \"{name}\": {reason}")]
    BadParameter { name: String, reason: String },
    #[error("\"{0}\" is not a valid tenant id")]
    InvalidTenant(String),
    #[error("tenant \"{0}\" does not exist")]
    UnknownTenant(String),
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    #[error("{method} is not allowed on {path}")]
    Method { method: String, path: String },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl AdminError {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized => StatusCode::UNAUTHORIZED,
            AdminError::InvalidTenant(_) | AdminError::BadParameter { .. } => {
                StatusCode::BAD_REQUEST
            }
            AdminError::UnknownTenant(_) | AdminError::NoRoute(_) => StatusCode::NOT_FOUND,
            AdminError::Method { .. } => StatusCode::METHOD_NOT_ALLOWED,
            AdminError::Catalog(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut r = (self.status(), Json(json!({ "error": self.to_string() }))).into_response();
        if let AdminError::Unauthorized = self {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Results of the readiness probes (Err: why not).
#[derive(Clone)]
pub(super) struct Checks {
    pub(super) catalog: Result<(), String>,
    /// Every upstream by name, the main one first.
    pub(super) upstreams: Vec<(String, Result<(), String>)>,
}

pub(super) struct Admin {
    pub(super) shared: Arc<Shared>,
    /// The last probes and when they ran; concurrent callers wait for one.
    pub(super) checks: tokio::sync::Mutex<Option<(std::time::Instant, Checks)>>,
    /// When `/metrics` last started a round of upstream probes (it probes
    /// the upstreams only: a scrape runs no query on the catalog).
    pub(super) probed: std::sync::Mutex<Option<std::time::Instant>>,
    /// One permit per `/metrics` response being sent (`MAX_SCRAPES`).
    pub(super) scrapes: Arc<tokio::sync::Semaphore>,
}

pub(super) type AppState = Arc<Admin>;

/// A tenant's counters; zeros when it has had no connection.
pub(super) fn snapshot(shared: &Shared, id: &str) -> TenantSnapshot {
    match shared.limits.get(id) {
        Some(c) => c.metrics.snapshot(id, c.active()),
        None => TenantSnapshot::empty(id),
    }
}
