//! Operations: liveness, readiness, metrics (on the operations listener only), the OpenAPI
//! document and a page that shows it.

use super::error::{ApiError, Problem};
use crate::service::Outage;
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

/// A one-word state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    /// `ok` or `ready`.
    status: &'static str,
}

/// Liveness: 200 while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving", body = StatusView)))]
pub async fn healthz() -> Json<StatusView> {
    Json(StatusView { status: "ok" })
}

/// Readiness: 200 when the database (and Redis, when configured) answers, else 503 `unavailable`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = StatusView),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<StatusView>, ApiError> {
    if app.draining.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::Unavailable(
            Outage::ShuttingDown,
            anyhow::anyhow!("shutting down"),
        ));
    }
    app.store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(Outage::Database, e.into()))?;
    if !app.revocations.signal_healthy() {
        return Err(ApiError::Unavailable(
            Outage::Redis,
            anyhow::anyhow!("Redis is unreachable: bearer checks fail closed"),
        ));
    }
    Ok(Json(StatusView { status: "ready" }))
}

/// This document: OpenAPI 3.1, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json(State(app): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi(&app.config))
}

/// `/docs` (and `/`, which points to it): served on the public listener, but outside the
/// OpenAPI document.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs", get(super::docs::page))
        .route("/", get(super::docs::index))
}

/// The operations listener's routes. `/metrics` is only here: its counters move with what
/// happens to accounts (mails sent, for one), which no public answer may reveal.
pub fn operations_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// Prometheus text exposition.
async fn metrics() -> Response {
    let body = crate::telemetry::render_metrics();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
