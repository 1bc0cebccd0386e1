//! Operations: liveness, readiness and the OpenAPI document.

use super::error::{ApiError, Problem};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
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

/// Readiness: 200 when the database answers, else 503 `unavailable`.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = StatusView),
        (status = 503, description = "`unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<StatusView>, ApiError> {
    app.store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    Ok(Json(StatusView { status: "ready" }))
}

/// This document: OpenAPI 3.1, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json(State(app): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi(&app.config.base_path))
}
