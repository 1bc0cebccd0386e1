//! The hosted pages behind mailed links: `/confirm-email` and `/reset-password`. A GET only
//! shows a button or a form (mail scanners prefetch links, so a GET never spends a token); the
//! form posts, form-encoded, to the same path and the same service code as the JSON endpoints.
//! No JavaScript; a strict Content-Security-Policy; legible on a phone.

use super::budget::{Budget, limited_route};
use super::extract::Client;
use crate::mail::templates::escape;
use crate::ratelimit::Action;
use crate::service::recovery::{self, RecoveryError, ResetProof};
use crate::state::AppState;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::sync::OnceLock;

pub(super) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:26rem;margin:0 auto;padding:1.5rem;\
line-height:1.5;color:#1b1b1b;background:#fafafa}h1{font-size:1.4rem}label{display:block;margin:1rem 0 .3rem}\
input{width:100%;box-sizing:border-box;font-size:1.1rem;padding:.6rem;border:1px solid #888;border-radius:.3rem}\
button{margin-top:1.2rem;width:100%;font-size:1.1rem;padding:.7rem;border:0;border-radius:.3rem;\
background:#1f5fbf;color:#fff}.error{color:#a40000}";

/// The routes of the pages (not part of the OpenAPI document).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/confirm-email",
            get(show_confirm).merge(limited_route(post(confirm), &[Action::Confirm])),
        )
        .route(
            "/reset-password",
            get(show_reset).merge(limited_route(post(reset), &[Action::Reset])),
        )
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConfirmForm {
    token: String,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ResetForm {
    token: String,
    new_password: String,
}

async fn show_confirm(
    State(app): State<AppState>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query) else {
        return incomplete_link(&app);
    };
    // Looking the token up spends nothing; it only tells whether to ask for the password.
    match recovery::confirmation_needs_password(&app, &token).await {
        Ok(needs_password) => confirm_form(&app, StatusCode::OK, &token, needs_password, None),
        Err(fault) => failure(&app, fault),
    }
}

fn confirm_form(
    app: &AppState,
    status: StatusCode,
    token: &str,
    needs_password: bool,
    error: Option<&str>,
) -> Response {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    let password = if needs_password {
        "<label for=\"password\">Your password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" \
         maxlength=\"128\" required>"
    } else {
        ""
    };
    let prompt = if needs_password {
        "Enter the password you chose when you signed up, then press the button"
    } else {
        "Press the button"
    };
    let body = format!(
        "<h1>Confirm your email address</h1>{error}<p>{prompt} to confirm this address for {}.</p>\
         <form method=\"post\" action=\"{}/confirm-email\"><input type=\"hidden\" name=\"token\" value=\"{}\">\
         {password}<button type=\"submit\">Confirm my email address</button></form>",
        escape(&app.config.mail.product_name),
        escape(&app.config.server.base_path),
        escape(token)
    );
    page(app, status, "Confirm your email address", &body)
}

async fn confirm(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    form: Result<Form<ConfirmForm>, FormRejection>,
) -> Response {
    // The form shares the budget of its JSON twin.
    if let Err(limited) = budget
        .check(&app, Action::Confirm, client.ip.as_deref(), None)
        .await
    {
        return limited_page(&app, limited);
    }
    let Ok(Form(form)) = form else {
        return incomplete_link(&app);
    };
    let password = form.password.as_deref().filter(|p| !p.is_empty());
    match recovery::confirm_email(&app, &form.token, password, &client).await {
        Ok(_) => page(
            &app,
            StatusCode::OK,
            "Email confirmed",
            "<h1>Your email address is confirmed</h1><p>Thank you. You can close this page and log in.</p>",
        ),
        Err(RecoveryError::Invalid(_)) => confirm_form(
            &app,
            StatusCode::BAD_REQUEST,
            &form.token,
            true,
            Some("Enter your password to confirm this account."),
        ),
        Err(RecoveryError::InvalidCredentials) => confirm_form(
            &app,
            StatusCode::UNAUTHORIZED,
            &form.token,
            true,
            Some("That password is not right."),
        ),
        Err(RecoveryError::InvalidToken) => page(
            &app,
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "<h1>This link does not work any more</h1><p>It was already used, or it expired, or it \
             is incomplete. If your address is not confirmed yet, ask the app to send a new mail.</p>",
        ),
        Err(RecoveryError::Fault(fault)) => failure(&app, fault),
    }
}

async fn show_reset(
    State(app): State<AppState>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query) else {
        return incomplete_link(&app);
    };
    reset_form(&app, StatusCode::OK, &token, None)
}

async fn reset(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Response {
    if let Err(limited) = budget
        .check(&app, Action::Reset, client.ip.as_deref(), None)
        .await
    {
        return limited_page(&app, limited);
    }
    let Ok(Form(form)) = form else {
        return incomplete_link(&app);
    };
    match recovery::reset_password(
        &app,
        ResetProof::Link(form.token.clone()),
        &form.new_password,
    )
    .await
    {
        Ok(()) => page(
            &app,
            StatusCode::OK,
            "Password changed",
            "<h1>Your password has been changed</h1><p>You can now log in with your new password. \
             Every device that was logged in has been signed out.</p>",
        ),
        // The token was not spent: show the form again with what to fix.
        Err(RecoveryError::Invalid(errors)) => {
            let message = errors
                .0
                .first()
                .map_or("is not acceptable", |e| e.message.as_str());
            reset_form(
                &app,
                StatusCode::BAD_REQUEST,
                &form.token,
                Some(&format!("The new password {message}.")),
            )
        }
        Err(RecoveryError::InvalidToken | RecoveryError::InvalidCredentials) => page(
            &app,
            StatusCode::BAD_REQUEST,
            "Link not valid",
            "<h1>This link does not work any more</h1><p>It was already used, or it expired (links \
             work for one hour), or a newer one was sent. Ask the app for a new reset mail.</p>",
        ),
        Err(RecoveryError::Fault(fault)) => failure(&app, fault),
    }
}

fn reset_form(app: &AppState, status: StatusCode, token: &str, error: Option<&str>) -> Response {
    let min = app.config.password_policy.min_length;
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))
    });
    let body = format!(
        "<h1>Choose a new password</h1>{error}<form method=\"post\" action=\"{}/reset-password\">\
         <input type=\"hidden\" name=\"token\" value=\"{}\">\
         <label for=\"new_password\">New password (at least {min} characters)</label>\
         <input id=\"new_password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" \
         minlength=\"{min}\" maxlength=\"128\" required>\
         <button type=\"submit\">Set new password</button></form>",
        escape(&app.config.server.base_path),
        escape(token)
    );
    page(app, status, "Choose a new password", &body)
}

/// The token of a mailed link, when the link still carries one.
fn link_token(query: Result<Query<TokenQuery>, QueryRejection>) -> Option<String> {
    query
        .ok()
        .and_then(|Query(q)| q.token)
        .filter(|t| !t.is_empty())
}

fn incomplete_link(app: &AppState) -> Response {
    page(
        app,
        StatusCode::BAD_REQUEST,
        "Link not valid",
        "<h1>This link is incomplete</h1><p>Open the link from the mail exactly as it was sent, or ask \
         the app for a new mail.</p>",
    )
}

/// A form post over its budget: 429 with `Retry-After`, as the JSON twin answers.
fn limited_page(app: &AppState, limited: super::error::ApiError) -> Response {
    let reference = limited.into_response();
    let status = reference.status();
    let mut response = page(
        app,
        status,
        "Try again later",
        "<h1>Too many attempts</h1><p>Nothing was changed. Please wait a little and try again.</p>",
    );
    if let Some(retry) = reference.headers().get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    response
}

fn failure(app: &AppState, fault: crate::service::Fault) -> Response {
    // A bug is a 500, logged as an error; a busy or unreachable database is a 503 to retry.
    let api_error: super::error::ApiError = fault.into();
    let mut reference = api_error.into_response();
    let status = reference.status();
    let mut response = page(
        app,
        status,
        "Try again",
        "<h1>Something went wrong</h1><p>Nothing was changed. Please try again in a moment.</p>",
    );
    if let Some(retry) = reference.headers().get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    if let Some(cause) = reference
        .extensions_mut()
        .remove::<super::error::LoggedCause>()
    {
        response.extensions_mut().insert(cause);
    }
    response
}

fn page(app: &AppState, status: StatusCode, title: &str, body: &str) -> Response {
    hosted_page(app, status, title, body, content_security_policy())
}

/// A hosted page under the given Content-Security-Policy, never framed, never sending a Referer.
pub(super) fn hosted_page(
    app: &AppState,
    status: StatusCode,
    title: &str,
    body: &str,
    policy: &HeaderValue,
) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} – {}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape(title),
        escape(&app.config.mail.product_name)
    );
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    // The token is in the URL: it must not leak to other sites through the Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// Nothing may load or run but our one stylesheet (allowed by its hash); forms post only here.
fn content_security_policy() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| policy_with(""))
}

/// The pages' policy plus `extra` directives (e.g. the script of the sign-in pages).
pub(super) fn policy_with(extra: &str) -> HeaderValue {
    let hash = crate::crypto::random::sha256_b64(STYLE.as_bytes());
    let hash = hash.replace('-', "+").replace('_', "/");
    let padded = format!("{hash}{}", "=".repeat((4 - hash.len() % 4) % 4));
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{padded}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'{extra}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}
