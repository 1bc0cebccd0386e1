//! The OAuth 2.1 / OpenID Connect endpoints: here the authorization page (sign-in, second
//! factor, consent; HTML without JavaScript); what clients call in [`client`], logout in
//! [`logout`], dynamic registration in [`register`].
//!
//! The browser's sign-in at the provider is an access token of a latchkey session, sealed, in
//! an `HttpOnly` `__Host-` cookie: it lasts as long as an access token, dies with its session, and
//! is read only by `/oauth/authorize`. Every post must come from this origin, and the consent
//! form carries a token derived from that cookie, so another site can neither sign a browser in
//! nor consent for it.

mod browser;
mod client;
mod logout;
mod register;

use super::budget::{Budget, limited_route};
use super::error::ApiError;
use super::extract::Client;
use super::pages::{PageLanguage, failure, hosted_page_with, limited_page, scripted_page_with};
use crate::domain::Email;
use crate::ratelimit::Action;
use crate::service::mfa::{self, MfaError, Proof};
use crate::service::oauth::{self, AuthorizeError, AuthorizeRequest, Step};
use crate::service::sessions::{LoginError, authenticate};
use crate::service::{Principal, TokenPair};
use crate::state::AppState;
use crate::templates::{Language, Page};
use axum::Router;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use browser::{consent_token, foreign_post, seal_cookie, sign_in_cookie, signed_in};
use serde::Deserialize;

/// The routes of the provider (not part of the OpenAPI document).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/oauth/authorize",
            get(authorize).merge(limited_route(
                post(authorize_form),
                &[Action::Login, Action::Mfa],
            )),
        )
        .route(
            "/oauth/token",
            limited_route(post(client::token_endpoint), &[Action::Refresh]),
        )
        .route(
            "/oauth/userinfo",
            get(client::userinfo).post(client::userinfo),
        )
        .route(
            "/oauth/revoke",
            limited_route(post(client::revoke), &[Action::Refresh]),
        )
        .route(
            "/oauth/introspect",
            limited_route(post(client::introspect), &[Action::Refresh]),
        )
        .route(
            "/oauth/logout",
            get(logout::logout).post(logout::confirm_logout),
        )
        .route(
            "/oauth/register",
            limited_route(post(register::register), &[Action::Register]),
        )
}

async fn authorize(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let request = match parse(&app, &query).await {
        Ok(request) => request,
        Err(error) => return refused(&app, language, error),
    };
    let (signed_in, cookie) = signed_in(&app, &headers).await;
    answer(
        &app,
        language,
        &request,
        &query,
        signed_in.as_ref(),
        cookie.as_deref(),
        false,
    )
    .await
}

/// The forms of the authorization page: `step` is `login`, `passkey` (a discoverable
/// credential's assertion for `challenge_id`), `mfa` (a `code`, or a passkey's assertion in
/// `webauthn`), `consent` or `deny`.
#[derive(Debug, Deserialize)]
struct AuthorizeForm {
    request: String,
    step: String,
    email: Option<String>,
    password: Option<String>,
    mfa_token: Option<String>,
    code: Option<String>,
    webauthn: Option<String>,
    passkey: Option<String>,
    challenge_id: Option<String>,
    credential: Option<String>,
    csrf: Option<String>,
}

async fn authorize_form(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    Client(client): Client,
    budget: Budget,
    headers: HeaderMap,
    form: Result<Form<AuthorizeForm>, FormRejection>,
) -> Response {
    let foreign = foreign_post(&app, &headers);
    let Ok(Form(form)) = form else {
        return refused(
            &app,
            language,
            AuthorizeError::NotRedirectable("The form is incomplete."),
        );
    };
    if foreign {
        return refused(
            &app,
            language,
            AuthorizeError::NotRedirectable("The form was posted from another site."),
        );
    }
    let request = match parse(&app, &form.request).await {
        Ok(request) => request,
        Err(error) => return refused(&app, language, error),
    };
    // Whether the second factor the page asked for may be a passkey: told when it was asked,
    // carried by the form after that.
    let mut passkey = form.passkey.is_some();
    let login_page = |email: &str, error: Option<&str>, mfa_token: Option<&str>, passkey: bool| {
        let page = Page::OAuthLogin {
            client: &request.client.name,
            request: &form.request,
            email,
            error,
            mfa_token,
            passkey: passkey && mfa_token.is_some(),
        };
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        scripted_page_with(&app, status, language, page, &form_action(&request))
    };
    match form.step.as_str() {
        "login" => {
            let email = form.email.clone().unwrap_or_default();
            let account = Email::parse(&email).ok();
            if let Err(limited) = budget
                .check(&app, Action::Login, client.ip.as_deref(), account.as_ref())
                .await
            {
                return limited_page(&app, language, limited);
            }
            let password = form.password.clone().unwrap_or_default();
            match crate::service::sessions::login(&app, &email, &password, client).await {
                Ok(pair) => signed_in_now(&app, language, &request, &form.request, pair).await,
                Err(LoginError::MfaRequired(step)) => {
                    passkey = step.methods.contains(&"webauthn");
                    login_page("", None, Some(&step.mfa_token), passkey)
                }
                Err(LoginError::InvalidCredentials) => {
                    login_page(&email, Some("invalid_credentials"), None, false)
                }
                Err(LoginError::EmailNotVerified) => {
                    login_page(&email, Some("email_not_verified"), None, false)
                }
                Err(LoginError::AccountDisabled) => {
                    login_page(&email, Some("account_disabled"), None, false)
                }
                Err(LoginError::Fault(fault)) => failure(&app, language, fault),
            }
        }
        "mfa" => {
            if let Err(limited) = budget
                .check(&app, Action::Mfa, client.ip.as_deref(), None)
                .await
            {
                return limited_page(&app, language, limited);
            }
            let mfa_token = form.mfa_token.clone().unwrap_or_default();
            let code = form.code.as_deref().unwrap_or_default().trim().to_owned();
            let proof = match form.webauthn.as_deref().map(serde_json::from_str) {
                Some(Ok(assertion)) => Proof::Webauthn(assertion),
                Some(Err(_)) => {
                    return login_page("", Some("invalid_passkey"), Some(&mfa_token), passkey);
                }
                None if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) => {
                    Proof::Totp(code)
                }
                None => Proof::RecoveryCode(code),
            };
            let wrong = match proof {
                Proof::Webauthn(_) => "invalid_passkey",
                _ => "invalid_mfa",
            };
            match mfa::verify_login(&app, &mfa_token, proof, &client).await {
                Ok(pair) => signed_in_now(&app, language, &request, &form.request, pair).await,
                Err(MfaError::Fault(fault)) => failure(&app, language, fault),
                Err(MfaError::AccountDisabled) => {
                    login_page("", Some("account_disabled"), None, false)
                }
                Err(_) => login_page("", Some(wrong), Some(&mfa_token), passkey),
            }
        }
        "passkey" => {
            if let Err(limited) = budget
                .check(&app, Action::Mfa, client.ip.as_deref(), None)
                .await
            {
                return limited_page(&app, language, limited);
            }
            let challenge_id = form.challenge_id.as_deref().unwrap_or_default();
            let credential = form.credential.as_deref().map(serde_json::from_str);
            let Some(Ok(credential)) = credential else {
                return login_page("", Some("invalid_passkey"), None, false);
            };
            match crate::service::passkeys::login(&app, challenge_id, credential, client).await {
                Ok(pair) => signed_in_now(&app, language, &request, &form.request, pair).await,
                Err(MfaError::Fault(fault)) => failure(&app, language, fault),
                Err(MfaError::AccountDisabled) => {
                    login_page("", Some("account_disabled"), None, false)
                }
                Err(_) => login_page("", Some("invalid_passkey"), None, false),
            }
        }
        "consent" | "deny" => {
            let (signed_in, cookie) = signed_in(&app, &headers).await;
            let (Some(principal), Some(cookie)) = (signed_in, cookie) else {
                return login_page(
                    request.login_hint.as_deref().unwrap_or_default(),
                    None,
                    None,
                    false,
                );
            };
            let expected = consent_token(&cookie);
            let presented = form.csrf.as_deref().unwrap_or_default();
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                presented.as_bytes(),
            )
            .is_err()
            {
                return refused(
                    &app,
                    language,
                    AuthorizeError::NotRedirectable("The consent form is not this browser's."),
                );
            }
            if form.step == "deny" {
                return refused(&app, language, oauth::deny(&request));
            }
            match oauth::approve(&app, &request, &principal).await {
                Ok(location) => redirect(&location),
                Err(error) => refused(&app, language, error),
            }
        }
        _ => refused(
            &app,
            language,
            AuthorizeError::NotRedirectable("The form is incomplete."),
        ),
    }
}

/// After a sign-in in this flow: the cookie, and whatever comes next.
async fn signed_in_now(
    app: &AppState,
    language: Language,
    request: &AuthorizeRequest,
    query: &str,
    pair: TokenPair,
) -> Response {
    let principal = match authenticate(app, &pair.access_token).await {
        Ok(principal) => principal,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let sealed = seal_cookie(app, &pair.access_token);
    let mut response = answer(
        app,
        language,
        request,
        query,
        Some(&principal),
        Some(&sealed),
        true,
    )
    .await;
    if let Some(cookie) = sign_in_cookie(app, &sealed) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn answer(
    app: &AppState,
    language: Language,
    request: &AuthorizeRequest,
    query: &str,
    signed_in: Option<&Principal>,
    cookie: Option<&str>,
    just_signed_in: bool,
) -> Response {
    match oauth::next_step(app, request, signed_in, just_signed_in).await {
        Ok(Step::Redirect(location)) => redirect(&location),
        Ok(Step::Login) => {
            let page = Page::OAuthLogin {
                client: &request.client.name,
                request: query,
                email: request.login_hint.as_deref().unwrap_or_default(),
                error: None,
                mfa_token: None,
                passkey: false,
            };
            scripted_page_with(app, StatusCode::OK, language, page, &form_action(request))
        }
        Ok(Step::Consent(scopes)) => {
            let csrf = consent_token(cookie.unwrap_or_default());
            let destination = redirect_host(&request.redirect_uri);
            let page = Page::OAuthConsent {
                client: &request.client.name,
                destination: &destination,
                request: query,
                scopes: &scopes,
                csrf: &csrf,
            };
            hosted_page_with(app, StatusCode::OK, language, page, &form_action(request))
        }
        Err(error) => refused(app, language, error),
    }
}

async fn parse(app: &AppState, query: &str) -> Result<AuthorizeRequest, AuthorizeError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    oauth::parse_request(app, &params).await
}

/// Where the answer goes, as the consent page names it (a client's name is its own choice; the
/// address it receives codes at is not).
fn redirect_host(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(url) => match url.host_str() {
            Some(host) => host.to_owned(),
            None => format!("{}:", url.scheme()),
        },
        Err(_) => String::new(),
    }
}

/// The pages' forms post here, and their answers may redirect to the client, which the
/// `form-action` directive must allow.
fn form_action(request: &AuthorizeRequest) -> String {
    let target = match url::Url::parse(&request.redirect_uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url.origin().ascii_serialization(),
        Ok(url) => format!("{}:", url.scheme()),
        Err(_) => String::new(),
    };
    format!("'self' {target}")
}

fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, value),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn refused(app: &AppState, language: Language, error: AuthorizeError) -> Response {
    match error {
        AuthorizeError::NotRedirectable(reason) => hosted_page_with(
            app,
            StatusCode::BAD_REQUEST,
            language,
            Page::OAuthError { reason },
            "'self'",
        ),
        AuthorizeError::Redirect {
            redirect_uri,
            state,
            error,
            description,
        } => redirect(&oauth::with_query(
            &redirect_uri,
            &[
                ("error", Some(error)),
                ("error_description", Some(&description)),
                ("state", state.as_deref()),
                ("iss", Some(app.tokens.settings().issuer.as_str())),
            ],
        )),
        AuthorizeError::Fault(fault) => failure(app, language, fault),
    }
}
