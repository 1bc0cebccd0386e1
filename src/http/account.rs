//! The hosted sign-in pages: `/login` (password, then a second factor; or a passkey alone) and
//! `/account/security` (TOTP with a QR code, passkeys, recovery codes). WebAuthn exists only in
//! the browser's JavaScript, so these pages run one script of ours, served from here under a
//! policy that allows nothing else; it calls the same JSON API as any client. The access token
//! lives in the tab's sessionStorage and the refresh token is never kept.

use super::error::ApiError;
use super::extract::{ApiJson, Enrolling};
use super::pages::{hosted_page, policy_with};
use crate::domain::ValidationErrors;
use crate::mail::templates::escape;
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::sync::OnceLock;

const SCRIPT: &str = include_str!("assets/account.js");

/// The routes of the sign-in pages (not part of the OpenAPI document).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page))
        .route("/account/security", get(security_page))
        .route("/account/security/qr", post(totp_qr))
        .route("/assets/account.js", get(script))
}

/// Our script, fetch and connect to this service only, and QR images made here as blobs.
fn policy() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| policy_with("; script-src 'self'; connect-src 'self'; img-src blob:"))
}

fn with_script(app: &AppState, title: &str, body: &str) -> Response {
    let base = escape(&app.config.server.base_path);
    let body = format!(
        "<div id=\"page\" data-base=\"{base}\">{body}<p id=\"error\" class=\"error\" role=\"alert\" hidden></p></div>\
         <script src=\"{base}/assets/account.js\"></script>"
    );
    hosted_page(app, StatusCode::OK, title, &body, policy())
}

async fn login_page(State(app): State<AppState>) -> Response {
    with_script(
        &app,
        "Sign in",
        "<h1>Sign in</h1>\
         <form id=\"password-form\"><label for=\"email\">Email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username webauthn\" required>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form>\
         <button id=\"passkey-login\" type=\"button\">Sign in with a passkey</button>\
         <form id=\"second-factor\" hidden><p>Enter the code from your authenticator app, or a recovery code.</p>\
         <label for=\"code\">Code</label>\
         <input id=\"code\" name=\"code\" autocomplete=\"one-time-code\" required>\
         <button type=\"submit\">Continue</button>\
         <button id=\"mfa-passkey\" type=\"button\" hidden>Use a passkey instead</button></form>\
         <p id=\"status\" role=\"status\" hidden></p>\
         <p id=\"to-security\" hidden><a href=\"account/security\">Security settings</a></p>",
    )
}

async fn security_page(State(app): State<AppState>) -> Response {
    with_script(
        &app,
        "Security",
        "<h1>Security</h1>\
         <p id=\"signed-out\" hidden>Please <a href=\"../login\">sign in</a> first.</p>\
         <section id=\"security\" hidden>\
         <h2>Authenticator app</h2><p id=\"totp-state\"></p>\
         <button id=\"totp-start\" type=\"button\">Set up an authenticator app</button>\
         <form id=\"totp-confirm\" hidden><p>Scan the code, or type the key <code id=\"totp-secret\"></code>.</p>\
         <img id=\"totp-qr\" alt=\"QR code of the authenticator key\">\
         <label for=\"totp-code\">Code from the app</label>\
         <input id=\"totp-code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required>\
         <button type=\"submit\">Confirm</button></form>\
         <h2>Passkeys</h2><ul id=\"passkeys\"></ul>\
         <label for=\"passkey-name\">Name of a new passkey</label><input id=\"passkey-name\" value=\"Passkey\">\
         <button id=\"passkey-add\" type=\"button\">Add a passkey</button>\
         <h2>Recovery codes</h2><p id=\"codes-left\"></p>\
         <button id=\"codes-regenerate\" type=\"button\">New recovery codes</button>\
         <div id=\"codes\" hidden><p>Keep these somewhere safe; each works once and they are not shown again.</p>\
         <ul id=\"codes-list\"></ul></div></section>\
         <p id=\"status\" role=\"status\" hidden></p>",
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
