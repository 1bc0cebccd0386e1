//! The hosted pages behind mailed links: `/confirm-email`, `/reset-password`,
//! `/accept-invitation`, `/confirm-email-change` and `/revert-email-change`. A GET only
//! shows a button or a form (mail scanners prefetch links, so a GET never spends a token); the
//! form posts, form-encoded, to the same path and the same service code as the JSON endpoints.
//! No JavaScript; a strict Content-Security-Policy; legible on a phone. Every page is a
//! template (`crate::templates`), in the language the browser asks for.

use super::budget::{Budget, limited_route};
use super::extract::Client;
use crate::ratelimit::Action;
use crate::service::email_change::{self, ChangeLink, EmailChangeError};
use crate::service::invitations::{self, InvitationError};
use crate::service::recovery::{self, MailedProof, RecoveryError};
use crate::state::AppState;
use crate::templates::{Flow, Language, Page};
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

/// The language a page is shown in: the first shipped one the browser's `Accept-Language`
/// asks for, else English.
pub(super) struct PageLanguage(pub(super) Language);

impl<S: Send + Sync> FromRequestParts<S> for PageLanguage {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PageLanguage(
            parts
                .headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok())
                .and_then(Language::preferred)
                .unwrap_or(Language::English),
        ))
    }
}

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
        .route(
            "/accept-invitation",
            get(show_invitation).merge(limited_route(post(accept_invitation), &[Action::Reset])),
        )
        .route(
            "/confirm-email-change",
            get(show_email_change).merge(limited_route(
                post(confirm_email_change),
                &[Action::Confirm],
            )),
        )
        .route(
            "/revert-email-change",
            get(show_email_revert)
                .merge(limited_route(post(revert_email_change), &[Action::Confirm])),
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

#[derive(Debug, Deserialize)]
struct TokenForm {
    token: String,
}

#[derive(Debug, Deserialize)]
struct InvitationForm {
    token: String,
    password: String,
}

async fn show_confirm(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query) else {
        return link_incomplete(&app, language);
    };
    // Looking the token up spends nothing; it only tells whether to ask for the password.
    match recovery::confirmation_needs_password(&app, &token).await {
        Ok(needs_password) => page(
            &app,
            StatusCode::OK,
            language,
            Page::ConfirmEmail {
                token: &token,
                needs_password,
                error: None,
            },
        ),
        Err(fault) => failure(&app, language, fault),
    }
}

async fn confirm(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    Client(client): Client,
    budget: Budget,
    form: Result<Form<ConfirmForm>, FormRejection>,
) -> Response {
    // The form shares the budget of its JSON twin.
    let form = match within_budget(&app, language, &client, &budget, Action::Confirm, form).await {
        Ok(form) => form,
        Err(page) => return page,
    };
    let password = form.password.as_deref().filter(|p| !p.is_empty());
    let retry = |status, error| {
        page(
            &app,
            status,
            language,
            Page::ConfirmEmail {
                token: &form.token,
                needs_password: true,
                error: Some(error),
            },
        )
    };
    match recovery::confirm_email(&app, &form.token, password, &client).await {
        Ok(_) => page(&app, StatusCode::OK, language, Page::EmailConfirmed),
        Err(RecoveryError::Invalid(_)) => retry(StatusCode::BAD_REQUEST, "password_needed"),
        Err(RecoveryError::InvalidCredentials) => retry(StatusCode::UNAUTHORIZED, "password_wrong"),
        Err(RecoveryError::InvalidToken) => link_invalid(&app, language, Flow::Confirm),
        Err(RecoveryError::Fault(fault)) => failure(&app, language, fault),
    }
}

async fn show_reset(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query) else {
        return link_incomplete(&app, language);
    };
    let form = Page::ResetPassword {
        token: &token,
        error: None,
    };
    page(&app, StatusCode::OK, language, form)
}

async fn reset(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    Client(client): Client,
    budget: Budget,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Response {
    let form = match within_budget(&app, language, &client, &budget, Action::Reset, form).await {
        Ok(form) => form,
        Err(page) => return page,
    };
    match recovery::reset_password(
        &app,
        MailedProof::Link(form.token.clone()),
        &form.new_password,
    )
    .await
    {
        Ok(()) => page(&app, StatusCode::OK, language, Page::PasswordChanged),
        // The token was not spent: show the form again with what to fix.
        Err(RecoveryError::Invalid(errors)) => {
            let message = refusal(&errors);
            let form = Page::ResetPassword {
                token: &form.token,
                error: Some(message),
            };
            page(&app, StatusCode::BAD_REQUEST, language, form)
        }
        Err(RecoveryError::InvalidToken | RecoveryError::InvalidCredentials) => {
            link_invalid(&app, language, Flow::Reset)
        }
        Err(RecoveryError::Fault(fault)) => failure(&app, language, fault),
    }
}

async fn show_invitation(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query) else {
        return link_incomplete(&app, language);
    };
    let form = Page::AcceptInvitation {
        token: &token,
        error: None,
    };
    page(&app, StatusCode::OK, language, form)
}

async fn accept_invitation(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    Client(client): Client,
    budget: Budget,
    form: Result<Form<InvitationForm>, FormRejection>,
) -> Response {
    let form = match within_budget(&app, language, &client, &budget, Action::Reset, form).await {
        Ok(form) => form,
        Err(page) => return page,
    };
    // The page opens no session: it could not hand one to an app, so the user signs in there.
    match invitations::accept(&app, &form.token, &form.password).await {
        Ok(_) => page(&app, StatusCode::OK, language, Page::InvitationAccepted),
        Err(InvitationError::Invalid(errors)) => {
            let message = refusal(&errors);
            let form = Page::AcceptInvitation {
                token: &form.token,
                error: Some(message),
            };
            page(&app, StatusCode::BAD_REQUEST, language, form)
        }
        Err(InvitationError::Fault(fault)) => failure(&app, language, fault),
        Err(_) => link_invalid(&app, language, Flow::Invitation),
    }
}

/// The page of a confirmation link: the new address and a button; a link no longer live says
/// so at once. Spends nothing.
async fn show_email_change(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query) else {
        return link_incomplete(&app, language);
    };
    match email_change::addresses_of_link(&app, &token, ChangeLink::Confirm).await {
        Ok(Some(change)) => {
            let form = Page::ConfirmEmailChange {
                token: &token,
                email: change.new_email.as_str(),
                taken: false,
            };
            page(&app, StatusCode::OK, language, form)
        }
        Ok(None) => link_invalid(&app, language, Flow::EmailChange),
        Err(fault) => failure(&app, language, fault),
    }
}

async fn confirm_email_change(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    Client(client): Client,
    budget: Budget,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let form = match within_budget(&app, language, &client, &budget, Action::Confirm, form).await {
        Ok(form) => form,
        Err(page) => return page,
    };
    // Read before spending, for the page that says the address was taken meanwhile.
    let asked = email_change::addresses_of_link(&app, &form.token, ChangeLink::Confirm).await;
    match email_change::confirm(&app, &form.token).await {
        Ok(user) => {
            let done = Page::EmailChanged {
                email: user.email.as_str(),
            };
            page(&app, StatusCode::OK, language, done)
        }
        Err(EmailChangeError::EmailTaken) => {
            let email = asked.ok().flatten().map(|change| change.new_email);
            let taken = Page::ConfirmEmailChange {
                token: &form.token,
                email: email.as_ref().map_or("", |email| email.as_str()),
                taken: true,
            };
            page(&app, StatusCode::CONFLICT, language, taken)
        }
        Err(EmailChangeError::Fault(fault)) => failure(&app, language, fault),
        Err(_) => link_invalid(&app, language, Flow::EmailChange),
    }
}

/// The page of a revert link: both addresses and a button. Spends nothing.
async fn show_email_revert(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Response {
    let Some(token) = link_token(query) else {
        return link_incomplete(&app, language);
    };
    match email_change::addresses_of_link(&app, &token, ChangeLink::Revert).await {
        Ok(Some(change)) => {
            let form = Page::RevertEmailChange {
                token: &token,
                email: change.old_email.as_str(),
                new_email: change.new_email.as_str(),
            };
            page(&app, StatusCode::OK, language, form)
        }
        Ok(None) => link_invalid(&app, language, Flow::EmailRevert),
        Err(fault) => failure(&app, language, fault),
    }
}

async fn revert_email_change(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    Client(client): Client,
    budget: Budget,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let form = match within_budget(&app, language, &client, &budget, Action::Confirm, form).await {
        Ok(form) => form,
        Err(page) => return page,
    };
    match email_change::revert(&app, &form.token).await {
        Ok(user) => {
            let done = Page::EmailChangeReverted {
                email: user.email.as_str(),
            };
            page(&app, StatusCode::OK, language, done)
        }
        Err(EmailChangeError::Fault(fault)) => failure(&app, language, fault),
        Err(_) => link_invalid(&app, language, Flow::EmailRevert),
    }
}

/// A link that arrived without its token.
fn link_incomplete(app: &AppState, language: Language) -> Response {
    page(app, StatusCode::BAD_REQUEST, language, Page::LinkIncomplete)
}

/// A link whose token is unknown, used or expired.
fn link_invalid(app: &AppState, language: Language, flow: Flow) -> Response {
    page(
        app,
        StatusCode::BAD_REQUEST,
        language,
        Page::LinkInvalid { flow },
    )
}

/// The posted form, when the post is within `action`'s budget (it shares its JSON twin's) and
/// the form is whole; else the page that answers instead.
async fn within_budget<T>(
    app: &AppState,
    language: Language,
    client: &crate::service::ClientInfo,
    budget: &Budget,
    action: Action,
    form: Result<Form<T>, FormRejection>,
) -> Result<T, Response> {
    if let Err(limited) = budget.check(app, action, client.ip.as_deref(), None).await {
        return Err(limited_page(app, language, limited));
    }
    form.map(|Form(form)| form)
        .map_err(|_| link_incomplete(app, language))
}

/// What the password policy said first about a refused password, for the form's error line.
fn refusal(errors: &crate::domain::ValidationErrors) -> &str {
    errors
        .0
        .first()
        .map_or("is not acceptable", |e| e.message.as_str())
}

/// The token of a mailed link, when the link still carries one.
fn link_token(query: Result<Query<TokenQuery>, QueryRejection>) -> Option<String> {
    query
        .ok()
        .and_then(|Query(q)| q.token)
        .filter(|t| !t.is_empty())
}

/// A form post over its budget: 429 with `Retry-After`, as the JSON twin answers.
pub(super) fn limited_page(
    app: &AppState,
    language: Language,
    limited: super::error::ApiError,
) -> Response {
    let reference = limited.into_response();
    let mut response = page(app, reference.status(), language, Page::TooManyAttempts);
    if let Some(retry) = reference.headers().get(header::RETRY_AFTER) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry.clone());
    }
    response
}

pub(super) fn failure(
    app: &AppState,
    language: Language,
    fault: crate::service::Fault,
) -> Response {
    // A bug is a 500, logged as an error; a busy or unreachable database is a 503 to retry.
    let api_error: super::error::ApiError = fault.into();
    let mut reference = api_error.into_response();
    let mut response = page(app, reference.status(), language, Page::Error);
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

fn page(app: &AppState, status: StatusCode, language: Language, page: Page<'_>) -> Response {
    hosted_page(app, status, language, page, "")
}

/// A hosted page under the pages' Content-Security-Policy plus `extra` directives (the
/// sign-in pages' script), never framed, never sending a Referer.
pub(super) fn hosted_page(
    app: &AppState,
    status: StatusCode,
    language: Language,
    page: Page<'_>,
    extra: &str,
) -> Response {
    page_under(app, status, language, page, "'self'", extra)
}

/// A hosted page whose forms may post to (or be redirected to) `form_action`'s sources.
pub(super) fn hosted_page_with(
    app: &AppState,
    status: StatusCode,
    language: Language,
    page: Page<'_>,
    form_action: &str,
) -> Response {
    page_under(app, status, language, page, form_action, "")
}

/// The sign-in pages' script policy: our script, fetch and connect to this service only, and
/// QR images made here as blobs.
pub(super) const SCRIPT_POLICY: &str = "; script-src 'self'; connect-src 'self'; img-src blob:";

/// `hosted_page_with`, running the sign-in pages' script (for WebAuthn, which needs it).
pub(super) fn scripted_page_with(
    app: &AppState,
    status: StatusCode,
    language: Language,
    page: Page<'_>,
    form_action: &str,
) -> Response {
    page_under(app, status, language, page, form_action, SCRIPT_POLICY)
}

fn page_under(
    app: &AppState,
    status: StatusCode,
    language: Language,
    page: Page<'_>,
    form_action: &str,
    extra: &str,
) -> Response {
    let html = app.templates.page(language, page);
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        policy_with(app.templates.stylesheet(), form_action, extra),
    );
    // The token is in the URL: it must not leak to other sites through the Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Pages carry one-time tokens (a link's, a second step's, a consent form's).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(language.tag()),
    );
    response
}

/// Nothing may load or run but the one stylesheet (allowed by its hash), plus `extra`; forms
/// post only here.
fn policy_with(stylesheet: &str, form_action: &str, extra: &str) -> HeaderValue {
    let hash = crate::crypto::random::sha256_b64(stylesheet.as_bytes());
    let hash = hash.replace('-', "+").replace('_', "/");
    let padded = format!("{hash}{}", "=".repeat((4 - hash.len() % 4) % 4));
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{padded}'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'{extra}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}
