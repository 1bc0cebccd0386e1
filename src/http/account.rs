//! The hosted sign-in pages: `/login` (password, then a second factor; or a passkey alone) and
//! `/account/security` (TOTP with a QR code, passkeys, recovery codes). WebAuthn exists only in
//! the browser's JavaScript, so these pages run one script of ours, served from here under a
//! policy that allows nothing else; it calls the same JSON API as any client. The access token
//! lives in the tab's sessionStorage and the refresh token is never kept.

use super::error::ApiError;
use super::extract::{ApiJson, Enrolling};
use super::pages::{PageLanguage, SCRIPT_POLICY, hosted_page};
use crate::domain::ValidationErrors;
use crate::service::email_login;
use crate::state::AppState;
use crate::templates::{Flow, Page};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

const SCRIPT: &str = include_str!("assets/account.js");

/// The routes of the sign-in pages (not part of the OpenAPI document).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page))
        .route("/email-login", get(email_login_page))
        .route("/account/security", get(security_page))
        .route("/account/security/qr", post(totp_qr))
        .route("/assets/account.js", get(script))
}

async fn login_page(State(app): State<AppState>, PageLanguage(language): PageLanguage) -> Response {
    hosted_page(&app, StatusCode::OK, language, Page::Login, SCRIPT_POLICY)
}

/// The page of a mailed sign-in link: opening it spends nothing; its button does.
async fn email_login_page(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    Query(query): Query<LinkQuery>,
) -> Response {
    let token = query.token.unwrap_or_default();
    if token.is_empty() {
        let page = Page::LinkIncomplete;
        return hosted_page(&app, StatusCode::BAD_REQUEST, language, page, SCRIPT_POLICY);
    }
    let address = match email_login::link_address(&app, &token).await {
        Ok(address) => address,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let (status, page) = match &address {
        Some(email) => (
            StatusCode::OK,
            Page::EmailLogin {
                token: &token,
                email,
            },
        ),
        None => (
            StatusCode::BAD_REQUEST,
            Page::LinkInvalid {
                flow: Flow::EmailLogin,
            },
        ),
    };
    hosted_page(&app, status, language, page, SCRIPT_POLICY)
}

/// The query of a mailed link.
#[derive(Debug, Deserialize)]
struct LinkQuery {
    token: Option<String>,
}

async fn security_page(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
) -> Response {
    hosted_page(
        &app,
        StatusCode::OK,
        language,
        Page::Security,
        SCRIPT_POLICY,
    )
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        SCRIPT,
    )
        .into_response()
}

/// Body of `POST /account/security/qr`: the `otpauth://` URI just handed out by enrolment.
#[derive(Debug, Deserialize)]
struct QrRequest {
    uri: String,
}

/// The QR code of an enrolment URI, drawn here so no third party ever sees the secret. Only a
/// caller who may enrol gets one, and only for a TOTP URI of a sane length.
async fn totp_qr(
    Enrolling(_principal): Enrolling,
    ApiJson(request): ApiJson<QrRequest>,
) -> Result<Response, ApiError> {
    if !request.uri.starts_with("otpauth://totp/") || request.uri.len() > 512 {
        return Err(ApiError::Validation(ValidationErrors::one(
            "uri",
            "must be an otpauth://totp/ URI",
        )));
    }
    let code = qrcode::QrCode::new(request.uri.as_bytes()).map_err(|_| {
        ApiError::Validation(ValidationErrors::one("uri", "is too long for a QR code"))
    })?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        svg,
    )
        .into_response())
}
