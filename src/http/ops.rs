//! Operations: liveness, readiness, metrics (on the operations listener only), the OpenAPI
//! document and a page that shows it.

use super::error::{ApiError, Problem};
use crate::mail::templates::escape;
use crate::service::Outage;
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
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
    Json(super::openapi(&app.config.server.base_path))
}

/// `/docs`: served on the public listener, but outside the OpenAPI document.
pub fn routes() -> Router<AppState> {
    Router::new().route("/docs", get(docs))
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

/// The OpenAPI document as a readable page: rendered here, with no script and nothing fetched.
async fn docs(State(app): State<AppState>) -> Response {
    let spec =
        serde_json::to_value(super::openapi(&app.config.server.base_path)).unwrap_or_default();
    let mut body = format!(
        "<h1>{} API</h1><p>The machine-readable document is <a href=\"{}/openapi.json\">openapi.json</a> \
         (OpenAPI {}). Errors are <code>application/problem+json</code> with a stable <code>code</code>.</p>",
        escape(&app.config.mail.product_name),
        escape(&app.config.server.base_path),
        escape(spec["openapi"].as_str().unwrap_or_default())
    );
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let description = operation["description"]
                .as_str()
                .or(operation["summary"].as_str())
                .unwrap_or_default();
            let statuses: Vec<String> = operation["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(status, response)| {
                    format!(
                        "<li><code>{}</code> {}</li>",
                        escape(status),
                        escape(response["description"].as_str().unwrap_or_default())
                    )
                })
                .collect();
            body.push_str(&format!(
                "<section><h2><code>{} {}</code></h2><p>{}</p><ul>{}</ul></section>",
                escape(&method.to_uppercase()),
                escape(path),
                escape(description),
                statuses.concat()
            ));
        }
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>API – {}</title></head>\
         <body>{body}</body></html>",
        escape(&app.config.mail.product_name)
    );
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("default-src 'none'"),
    );
    response
}
