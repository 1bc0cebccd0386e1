//! The HTTP surface: the router, its layers (request id, logging, body limit, panics) and one
//! module per area. Handlers stay thin: parse, call a service, map the outcome.

pub mod account;
pub mod admin;
pub mod auth;
pub mod budget;
pub mod cookie;
mod deadline;
mod docs;
pub mod error;
pub mod extract;
pub mod listen;
pub mod mfa;
pub mod oauth;
pub mod oauth_clients;
mod openapi;
pub mod ops;
pub mod pages;
pub mod recovery;
pub mod sessions;
pub mod users;
pub mod views;
pub mod wellknown;

use crate::ratelimit::Action;
use crate::state::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use budget::limited;
use error::{ApiError, LoggedCause};
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(title = "latchkey", description = "User registration and authentication: JWTs, rotating refresh tokens, forward-auth for gateways. Every error is application/problem+json (RFC 9457) with a stable `code`."),
    components(schemas(error::Problem, crate::domain::FieldError)),
    modifiers(&BearerScheme),
    tags((name = "auth"), (name = "users"), (name = "sessions"), (name = "admin"), (name = "oauth"), (name = "tokens"), (name = "operations")),
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(limited(routes!(auth::register), &[Action::Register]))
        .routes(limited(routes!(auth::login), &[Action::Login]))
        .routes(routes!(auth::verify))
        .routes(limited(routes!(auth::refresh), &[Action::Refresh]))
        .routes(routes!(auth::logout))
        .routes(limited(
            routes!(recovery::confirm_email),
            &[Action::Confirm],
        ))
        .routes(limited(
            routes!(recovery::resend_confirmation),
            &[Action::Resend],
        ))
        .routes(limited(
            routes!(recovery::forgot_password),
            &[Action::Forgot],
        ))
        .routes(limited(
            routes!(recovery::email_login),
            &[Action::EmailLogin],
        ))
        .routes(limited(
            routes!(recovery::accept_invitation),
            &[Action::Reset],
        ))
        .routes(limited(
            routes!(recovery::confirm_email_change),
            &[Action::Confirm],
        ))
        .routes(limited(
            routes!(recovery::revert_email_change),
            &[Action::Confirm],
        ))
        .routes(limited(
            routes!(recovery::email_login_verify),
            &[Action::Reset, Action::ResetCode],
        ))
        .routes(limited(
            routes!(recovery::reset_password),
            &[Action::Reset, Action::ResetCode],
        ))
        .routes(limited(routes!(mfa::verify), &[Action::Mfa]))
        .routes(limited(routes!(mfa::second_factor_options), &[Action::Mfa]))
        .routes(limited(routes!(mfa::passkey_options), &[Action::Mfa]))
        .routes(limited(routes!(mfa::passkey_login), &[Action::Mfa]))
        .routes(limited(routes!(mfa::reauthenticate), &[Action::Mfa]))
        .routes(routes!(mfa::reauth_options))
        .routes(routes!(mfa::status))
        .routes(routes!(mfa::enrol_totp, mfa::remove_totp))
        .routes(routes!(mfa::confirm_totp))
        .routes(routes!(mfa::registration_options))
        .routes(routes!(mfa::register_credential))
        .routes(routes!(mfa::remove_credential))
        .routes(routes!(mfa::regenerate_recovery_codes))
        .routes(routes!(mfa::reset))
        .routes(routes!(sessions::list, sessions::revoke_all))
        .routes(routes!(sessions::revoke))
        .routes(routes!(sessions::consents))
        .routes(routes!(sessions::revoke_consent))
        .routes(routes!(users::me, users::update_me, users::delete_me))
        .routes(routes!(users::change_password))
        .routes(limited(routes!(users::change_email), &[Action::Resend]))
        .routes(routes!(admin::list_users, admin::create_user))
        .routes(routes!(admin::invite_user))
        .routes(routes!(
            admin::get_user,
            admin::update_user,
            admin::delete_user
        ))
        .routes(routes!(
            oauth_clients::create_client,
            oauth_clients::list_clients
        ))
        .routes(routes!(
            oauth_clients::get_client,
            oauth_clients::update_client,
            oauth_clients::delete_client
        ))
        .routes(routes!(wellknown::jwks))
        .routes(routes!(wellknown::openid_configuration))
        .routes(routes!(wellknown::oauth_authorization_server))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::openapi_json))
}

/// The OpenAPI document of the service `config` describes: its base path, its roles and its
/// password policy.
pub fn openapi(config: &crate::config::Config) -> utoipa::openapi::OpenApi {
    let base_path = &config.server.base_path;
    let mut doc = api().into_openapi();
    openapi::complete(&mut doc, config);
    // Every path as served, base path included: clients and tests look paths up by them.
    if !base_path.is_empty() {
        let paths = std::mem::take(&mut doc.paths.paths);
        doc.paths.paths = paths
            .into_iter()
            .map(|(path, item)| (format!("{base_path}{path}"), item))
            .collect();
    }
    doc
}

/// The public service, ready to serve: the API, its pages and documents, never `/metrics`.
pub fn router(app: AppState) -> Router {
    let base_path = app.config.server.base_path.clone();
    let (routes, _) = api().split_for_parts();
    let routes = routes
        .merge(pages::routes())
        .merge(account::routes())
        .merge(oauth::routes())
        .merge(ops::routes());
    let routes = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    let routes = if base_path.is_empty() {
        routes
    } else {
        Router::new().nest(&base_path, routes).fallback(not_found)
    };
    // Inside the request context, so preflights get a request id and a log line too.
    let routes = match cors(&app.config.server.cors_origins) {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    with_layers(routes, app)
}

/// CORS for the configured browser origins only, with credentials (the refresh cookie, a
/// bearer header); `None` when no origin is configured, so no answer carries CORS headers.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
            .expose_headers([
                REQUEST_ID,
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                header::LOCATION,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The operations listener's service: metrics, liveness and readiness, at the root (it is never
/// mounted behind the gateway, so the base path does not apply).
pub fn operations_router(app: AppState) -> Router {
    let routes = ops::operations_routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_layers(routes, app)
}

fn with_layers(routes: Router<AppState>, app: AppState) -> Router {
    let deadlines = deadline::Deadlines {
        request: app.config.server.request_timeout.unsigned_abs(),
        body: app.config.server.body_timeout.unsigned_abs(),
    };
    routes
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(deadlines, request_context))
        .with_state(app)
}

fn panic_response(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    ApiError::Internal(anyhow::anyhow!("a handler panicked: {message}")).into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Gives every request an id (the client's when well-formed), a span carrying it, deadlines,
/// one access log line, and the log line of any 5xx cause, then echoes the id in `X-Request-Id`.
/// One middleware rather than several: each layer costs an allocation on every request.
async fn request_context(
    axum::extract::State(deadlines): axum::extract::State<deadline::Deadlines>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_valid_request_id(id))
        .map_or_else(mint_request_id, str::to_owned);
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let span = request_span(&request, &request_id, route.as_ref());
    async move {
        let started = Instant::now();
        let mut response = deadline::within(deadlines, request, next).await;
        let status = response.status();
        if let Some(LoggedCause(cause)) = response.extensions_mut().remove::<LoggedCause>() {
            if status.is_server_error() && status != axum::http::StatusCode::SERVICE_UNAVAILABLE {
                tracing::error!(error = format!("{cause:#}"), "request failed");
            } else {
                tracing::warn!(error = format!("{cause:#}"), "request refused");
            }
        }
        record_request(route.as_ref(), &method, status, started.elapsed());
        if crate::telemetry::traces_enabled() {
            let span = tracing::Span::current();
            span.record("http.response.status_code", i64::from(status.as_u16()));
            if status.is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
        }
        tracing::info!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "served"
        );
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID, value);
        }
        // Answers carry tokens and personal data: no cache may keep them.
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
        // No browser may guess a type: a problem document or a JSON echo of user input must
        // never be sniffed into HTML.
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v == "application/json")
        {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        response
    }
    .instrument(span)
    .await
}

/// The most characters of a path a span carries.
const MAX_TRACED_PATH: usize = 256;

/// The request's span. With traces on it also carries OpenTelemetry's HTTP server fields and
/// continues the caller's trace (W3C `traceparent`); without, it stays as small as the log needs.
fn request_span(request: &Request, request_id: &str, route: Option<&MatchedPath>) -> tracing::Span {
    let method = request.method();
    let path = request.uri().path();
    if !crate::telemetry::traces_enabled() {
        return tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    }
    let route = route.map_or("unmatched", MatchedPath::as_str);
    // Only known methods name spans, and a path is cut short: a client must not be able to
    // invent span names or make each span it causes as large as a URI can be.
    let method = known_method(method);
    let path = path
        .char_indices()
        .nth(MAX_TRACED_PATH)
        .map_or(path, |(end, _)| &path[..end]);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = method,
        path = path,
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = path,
        http.response.status_code = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    span
}

/// Records the request's duration under its route template, method and status. The handles are
/// kept per thread: a registry lookup on every request showed in the verify profile, and a
/// shared map would be one more lock on the hottest path.
fn record_request(
    route: Option<&MatchedPath>,
    method: &Method,
    status: axum::http::StatusCode,
    elapsed: std::time::Duration,
) {
    use std::cell::RefCell;
    use std::collections::HashMap;
    type Handles = HashMap<Box<str>, Vec<(&'static str, u16, metrics::Histogram)>>;
    thread_local! {
        static HANDLES: RefCell<Handles> = RefCell::new(HashMap::new());
    }
    // A handle taken before the recorder is installed would count nowhere, for good.
    crate::telemetry::metrics();
    // Only routes and methods the router knows become labels: a client must not be able to
    // mint new series with made-up paths or methods.
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let method = known_method(method);
    let status = status.as_u16();
    HANDLES.with_borrow_mut(|handles| {
        let by_route = match handles.get_mut(route) {
            Some(by_route) => by_route,
            None => handles.entry(route.into()).or_default(),
        };
        let found = by_route
            .iter()
            .position(|(m, s, _)| *m == method && *s == status);
        let index = found.unwrap_or_else(|| {
            let histogram = metrics::histogram!(
                crate::telemetry::REQUEST_DURATION,
                "route" => route.to_owned(),
                "method" => method,
                "status" => status.to_string()
            );
            by_route.push((method, status, histogram));
            by_route.len() - 1
        });
        by_route[index].2.record(elapsed);
    });
}

fn known_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A UUID (v4 layout) from a counter passed through SipHash under a random per-process key:
/// unique and unpredictable (no request count or instance shows through) without asking the
/// kernel for randomness on every request, which showed in the verify benchmark.
fn mint_request_id() -> String {
    use std::hash::BuildHasher;
    static KEY: std::sync::LazyLock<std::hash::RandomState> =
        std::sync::LazyLock::new(std::hash::RandomState::new);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut bytes = [0_u8; 16];
    bytes[..8].copy_from_slice(&KEY.hash_one((count, 0_u8)).to_le_bytes());
    bytes[8..].copy_from_slice(&KEY.hash_one((count, 1_u8)).to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_500_is_logged_once_with_its_request_id_and_cause_and_never_shown() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app: Router = Router::new()
            .route(
                "/boom",
                get(|| async { ApiError::Internal(anyhow::anyhow!("disk on fire")) }),
            )
            .layer(middleware::from_fn_with_state(
                deadline::Deadlines {
                    request: std::time::Duration::from_secs(30),
                    body: std::time::Duration::from_secs(10),
                },
                request_context,
            ));

        let request = Request::get("/boom")
            .header("x-request-id", "req-42")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();

        assert_eq!(
            response.status(),
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(response.headers()["x-request-id"], "req-42");
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&body).contains("disk on fire"),
            "the cause is never shown"
        );
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let failures: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("disk on fire"))
            .collect();
        assert_eq!(failures.len(), 1, "{logs}");
        assert!(
            failures[0].contains("ERROR") && failures[0].contains("req-42"),
            "{logs}"
        );
    }
}
