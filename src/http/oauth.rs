//! The OAuth 2.1 / OpenID Connect endpoints: the authorization page (sign-in, second factor,
//! consent; HTML without JavaScript), the token endpoint (RFC 6749 error bodies) and userinfo.
//!
//! The browser's sign-in at the provider is an access token of a latchkey session in an
//! `HttpOnly` `__Host-` cookie: it lasts as long as an access token, dies with its session, and
//! is read only by `/oauth/authorize`. Every post must come from this origin, and the consent
//! form carries a token derived from that cookie, so another site can neither sign a browser in
//! nor consent for it.

use super::budget::{Budget, limited_route};
use super::error::ApiError;
use super::extract::{AnyBearer, Client};
use super::pages::{PageLanguage, failure, hosted_page_with, limited_page};
use crate::crypto::random;
use crate::domain::Email;
use crate::ratelimit::Action;
use crate::service::mfa::{self, MfaError, Proof};
use crate::service::oauth::token::{self, ClientCredentials, TokenError};
use crate::service::oauth::{self, AuthorizeError, AuthorizeRequest, Step};
use crate::service::sessions::{LoginError, authenticate};
use crate::service::{Principal, TokenPair};
use crate::state::AppState;
use crate::templates::{Language, Page};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

/// The browser's sign-in cookie. `__Host-`: secure, this host only, path `/`.
const SIGN_IN_COOKIE: &str = "__Host-latchkey_sso";

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
            limited_route(post(token_endpoint), &[Action::Refresh]),
        )
        .route("/oauth/userinfo", get(userinfo).post(userinfo))
        .route(
            "/oauth/revoke",
            limited_route(post(revoke), &[Action::Refresh]),
        )
        .route(
            "/oauth/introspect",
            limited_route(post(introspect), &[Action::Refresh]),
        )
        .route("/oauth/logout", get(logout).post(confirm_logout))
        .route(
            "/oauth/register",
            limited_route(post(register), &[Action::Register]),
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

/// The forms of the authorization page: `step` is `login`, `mfa`, `consent` or `deny`.
#[derive(Debug, Deserialize)]
struct AuthorizeForm {
    request: String,
    step: String,
    email: Option<String>,
    password: Option<String>,
    mfa_token: Option<String>,
    code: Option<String>,
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
    let login_page = |email: &str, error: Option<&str>, mfa_token: Option<&str>| {
        let page = Page::OAuthLogin {
            client: &request.client.name,
            request: &form.request,
            email,
            error,
            mfa_token,
        };
        let status = if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        };
        hosted_page_with(&app, status, language, page, &form_action(&request))
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
                Err(LoginError::MfaRequired(step)) => login_page("", None, Some(&step.mfa_token)),
                Err(LoginError::InvalidCredentials) => {
                    login_page(&email, Some("invalid_credentials"), None)
                }
                Err(LoginError::EmailNotVerified) => {
                    login_page(&email, Some("email_not_verified"), None)
                }
                Err(LoginError::AccountDisabled) => {
                    login_page(&email, Some("account_disabled"), None)
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
            let proof = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
                Proof::Totp(code)
            } else {
                Proof::RecoveryCode(code)
            };
            match mfa::verify_login(&app, &mfa_token, proof, &client).await {
                Ok(pair) => signed_in_now(&app, language, &request, &form.request, pair).await,
                Err(MfaError::Fault(fault)) => failure(&app, language, fault),
                Err(MfaError::AccountDisabled) => login_page("", Some("account_disabled"), None),
                Err(_) => login_page("", Some("invalid_mfa"), Some(&mfa_token)),
            }
        }
        "consent" | "deny" => {
            let (signed_in, cookie) = signed_in(&app, &headers).await;
            let (Some(principal), Some(cookie)) = (signed_in, cookie) else {
                return login_page(
                    request.login_hint.as_deref().unwrap_or_default(),
                    None,
                    None,
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

/// Whether a form post did not come from this origin. A form posted from another site would
/// sign the browser in to an account of the attacker's choosing, consent, or sign out for it;
/// every browser sends `Origin` with a form post, so a post without one is not a browser's.
fn foreign_post(app: &AppState, headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The pages send no Referer, and then Chromium's `Origin` is `null`: the fetch metadata
    // header tells a same-origin post apart.
    if let Some(site) = value("sec-fetch-site") {
        return site != "same-origin";
    }
    value("origin").is_none_or(|origin| {
        super::cookie::origin_of(origin) != super::cookie::origin_of(&app.config.server.public_url)
    })
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
    let max_age = app.config.tokens.access_ttl.whole_seconds();
    let cookie = format!(
        "{SIGN_IN_COOKIE}={sealed}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
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
            };
            hosted_page_with(app, StatusCode::OK, language, page, &form_action(request))
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

/// The browser's sign-in, when its cookie holds a live token of latchkey's own.
async fn signed_in(app: &AppState, headers: &HeaderMap) -> (Option<Principal>, Option<String>) {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SIGN_IN_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned());
    let Some(cookie) = cookie else {
        return (None, None);
    };
    let Some(token) = open_cookie(app, &cookie) else {
        return (None, None);
    };
    match authenticate(app, &token).await {
        Ok(principal) if principal.claims.client_id.is_none() => (Some(principal), Some(cookie)),
        _ => (None, None),
    }
}

/// The cookie holds the sign-in's access token sealed under the secret key: sent with every
/// request to this host (`__Host-` means path `/`), it must be worth nothing as a bearer token.
fn seal_cookie(app: &AppState, access_token: &str) -> String {
    let sealed = app.sealer.seal(access_token.as_bytes(), SIGN_IN_COOKIE);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)
}

fn open_cookie(app: &AppState, cookie: &str) -> Option<String> {
    let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cookie)
        .ok()?;
    let token = app.sealer.open(&sealed, SIGN_IN_COOKIE).ok()?;
    String::from_utf8(token).ok()
}

/// The consent form's token: derived from the sign-in cookie, which other sites cannot read.
fn consent_token(cookie: &str) -> String {
    random::sha256_b64(format!("latchkey-consent:{cookie}").as_bytes())
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

/// The parameters of a form-encoded post to a client endpoint, each at most once.
fn client_form(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, TokenError> {
    let form_encoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Err(TokenError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let mut seen = std::collections::HashSet::new();
    if let Some((key, _)) = params.iter().find(|(key, _)| !seen.insert(key.as_str())) {
        return Err(TokenError::InvalidRequest(format!(
            "{key} is given more than once"
        )));
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The client a form post authenticates as.
async fn form_client(
    app: &AppState,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<crate::domain::OAuthClient, TokenError> {
    let credentials = client_credentials(
        headers,
        param(params, "client_id"),
        param(params, "client_secret"),
    )?;
    token::authenticate_client(app, &credentials).await
}

/// The `token` parameter of revocation and introspection.
fn token_param(params: &[(String, String)]) -> Result<&str, TokenError> {
    param(params, "token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::InvalidRequest("token is required".into()))
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was live or known.
async fn revoke(
    State(app): State<AppState>,
    Client(caller): Client,
    budget: Budget,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(limited) = budget
        .check(&app, Action::Refresh, caller.ip.as_deref(), None)
        .await
    {
        return limited.into_response();
    }
    let result = async {
        let params = client_form(&headers, &body)?;
        let client = form_client(&app, &headers, &params).await?;
        oauth::grants::revoke(&app, &client, token_param(&params)?).await
    }
    .await;
    match result {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => token_error(error),
    }
}

/// `POST /oauth/introspect` (RFC 7662).
async fn introspect(
    State(app): State<AppState>,
    Client(caller): Client,
    budget: Budget,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(limited) = budget
        .check(&app, Action::Refresh, caller.ip.as_deref(), None)
        .await
    {
        return limited.into_response();
    }
    let result = async {
        let params = client_form(&headers, &body)?;
        let client = form_client(&app, &headers, &params).await?;
        oauth::grants::introspect(&app, &client, token_param(&params)?).await
    }
    .await;
    match result {
        Ok(answer) => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(answer),
        )
            .into_response(),
        Err(error) => token_error(error),
    }
}

/// `GET /oauth/logout` (OpenID Connect RP-Initiated Logout): ends the browser's sign-in and
/// the hinted session, then returns to a registered address or says so.
async fn logout(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = query.unwrap_or_default();
    let checked = match check_logout(&app, &query).await {
        Ok(checked) => checked,
        Err(refusal) => return logout_refused(&app, language, refusal),
    };
    let (browser, cookie) = signed_in(&app, &headers).await;
    if checked.hinted_user.is_none() {
        // Nothing vouches that the client asked: a page of another site may have sent the
        // browser here. The user confirms (a form tied to the sign-in cookie), or nothing ends.
        let Some(cookie) = cookie.filter(|_| browser.is_some()) else {
            return signed_out(&app, language, None);
        };
        let csrf = consent_token(&cookie);
        let page = Page::OAuthLogout {
            request: &query,
            csrf: &csrf,
        };
        return hosted_page_with(&app, StatusCode::OK, language, page, "'self'");
    }
    // The browser's own sign-in ends only when it is the hinted user's.
    let browser = browser.filter(|b| Some(b.user_id) == checked.hinted_user);
    if let Err(fault) = oauth::grants::logout(&app, &checked, browser.as_ref()).await {
        return failure(&app, language, fault);
    }
    signed_out(&app, language, checked.redirect.as_deref())
}

/// The confirmation form of a logout without a hint.
#[derive(Debug, Deserialize)]
struct LogoutForm {
    request: String,
    csrf: String,
}

async fn confirm_logout(
    State(app): State<AppState>,
    PageLanguage(language): PageLanguage,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return refused(
            &app,
            language,
            AuthorizeError::NotRedirectable("The form is incomplete."),
        );
    };
    if foreign_post(&app, &headers) {
        return refused(
            &app,
            language,
            AuthorizeError::NotRedirectable("The form was posted from another site."),
        );
    }
    let checked = match check_logout(&app, &form.request).await {
        Ok(checked) => checked,
        Err(refusal) => return logout_refused(&app, language, refusal),
    };
    let (browser, cookie) = signed_in(&app, &headers).await;
    let expected = consent_token(cookie.as_deref().unwrap_or_default());
    let same = aws_lc_rs::constant_time::verify_slices_are_equal(
        expected.as_bytes(),
        form.csrf.as_bytes(),
    );
    if browser.is_none() || same.is_err() {
        return refused(
            &app,
            language,
            AuthorizeError::NotRedirectable("The sign-out form is not this browser's."),
        );
    }
    if let Err(fault) = oauth::grants::logout(&app, &checked, browser.as_ref()).await {
        return failure(&app, language, fault);
    }
    signed_out(&app, language, checked.redirect.as_deref())
}

async fn check_logout(
    app: &AppState,
    query: &str,
) -> Result<oauth::grants::Logout, oauth::grants::LogoutError> {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |key: &str| param(&params, key).filter(|v| !v.is_empty());
    oauth::grants::check_logout(
        app,
        get("id_token_hint"),
        get("client_id"),
        get("post_logout_redirect_uri"),
        get("state"),
    )
    .await
}

fn logout_refused(
    app: &AppState,
    language: Language,
    refusal: oauth::grants::LogoutError,
) -> Response {
    match refusal {
        oauth::grants::LogoutError::Refused(reason) => {
            refused(app, language, AuthorizeError::NotRedirectable(reason))
        }
        oauth::grants::LogoutError::Fault(fault) => failure(app, language, fault),
    }
}

/// Back to the client's registered address, or the page that says so; the cookie goes.
fn signed_out(app: &AppState, language: Language, location: Option<&str>) -> Response {
    let mut response = match location {
        Some(location) => redirect(location),
        None => hosted_page_with(
            app,
            StatusCode::OK,
            language,
            Page::OAuthSignedOut,
            "'self'",
        ),
    };
    let cleared = format!("{SIGN_IN_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax");
    if let Ok(value) = HeaderValue::from_str(&cleared) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `POST /oauth/token`, form-encoded, each parameter at most once.
async fn token_endpoint(
    State(app): State<AppState>,
    Client(caller): Client,
    budget: Budget,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(limited) = budget
        .check(&app, Action::Refresh, caller.ip.as_deref(), None)
        .await
    {
        return limited.into_response();
    }
    let params = match client_form(&headers, &body) {
        Ok(params) => params,
        Err(error) => return token_error(error),
    };
    let get = |key: &str| param(&params, key);
    let result = async {
        let client = form_client(&app, &headers, &params).await?;
        let required = |key: &'static str| {
            get(key)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| TokenError::InvalidRequest(format!("{key} is required")))
        };
        match get("grant_type") {
            Some("authorization_code") => {
                let (code, redirect_uri, verifier) = (
                    required("code")?,
                    required("redirect_uri")?,
                    required("code_verifier")?,
                );
                token::exchange_code(&app, &client, code, redirect_uri, verifier).await
            }
            Some("refresh_token") => {
                token::refresh(&app, &client, required("refresh_token")?, get("scope")).await
            }
            Some(_) => Err(TokenError::UnsupportedGrantType),
            None => Err(TokenError::InvalidRequest("grant_type is required".into())),
        }
    }
    .await;
    match result {
        Ok(tokens) => (
            [
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (header::PRAGMA, HeaderValue::from_static("no-cache")),
            ],
            Json(tokens),
        )
            .into_response(),
        Err(error) => token_error(error),
    }
}

/// The client's id and secret: HTTP Basic (each form-encoded, RFC 6749 §2.3.1) or the body,
/// never both.
fn client_credentials(
    headers: &HeaderMap,
    body_id: Option<&str>,
    body_secret: Option<&str>,
) -> Result<ClientCredentials, TokenError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let Some((_, encoded)) = basic else {
        return Ok(ClientCredentials {
            client_id: body_id.map(str::to_owned),
            secret: body_secret.map(str::to_owned),
        });
    };
    if body_secret.is_some() {
        return Err(TokenError::InvalidRequest(
            "use one client authentication method".into(),
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(TokenError::InvalidClient)?;
    let (id, secret) = decoded.split_once(':').ok_or(TokenError::InvalidClient)?;
    let unescape = |part: &str| -> String {
        url::form_urlencoded::parse(format!("v={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let id = unescape(id);
    if body_id.is_some_and(|body_id| body_id != id) {
        return Err(TokenError::InvalidRequest(
            "client_id differs from the authenticated client".into(),
        ));
    }
    Ok(ClientCredentials {
        client_id: Some(id),
        secret: Some(unescape(secret)),
    })
}

/// An RFC 6749 §5.2 error body (a fault is answered as everywhere else).
fn token_error(error: TokenError) -> Response {
    let (status, code, description) = match &error {
        TokenError::InvalidRequest(why) => {
            (StatusCode::BAD_REQUEST, "invalid_request", why.clone())
        }
        TokenError::InvalidClient => (
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed".to_owned(),
        ),
        TokenError::InvalidGrant(why) => {
            (StatusCode::BAD_REQUEST, "invalid_grant", (*why).to_owned())
        }
        TokenError::UnauthorizedClient => (
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "this client may not do this".to_owned(),
        ),
        TokenError::UnsupportedGrantType => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant types: authorization_code, refresh_token".to_owned(),
        ),
        TokenError::InvalidScope => (
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the scope exceeds what was granted".to_owned(),
        ),
        TokenError::Fault(_) => {
            let TokenError::Fault(fault) = error else {
                unreachable!()
            };
            return ApiError::from(fault).into_response();
        }
    };
    let mut response = (
        status,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"latchkey\""),
        );
    }
    response
}

/// `GET/POST /oauth/userinfo`: the claims the token's scopes allow, read from the account now.
async fn userinfo(
    State(app): State<AppState>,
    AnyBearer(principal): AnyBearer,
) -> Result<Response, ApiError> {
    let claims = &principal.claims;
    let scopes: Option<Vec<&str>> = claims.scope.as_deref().map(|s| s.split(' ').collect());
    let allows = |scope: &str| {
        scopes
            .as_ref()
            .is_none_or(|granted| granted.contains(&scope))
    };
    if !allows("openid") {
        return Ok((
            StatusCode::FORBIDDEN,
            [(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"insufficient_scope\", scope=\"openid\""),
            )],
        )
            .into_response());
    }
    let user = app
        .store
        .user(principal.user_id)
        .await
        .map_err(|e| ApiError::from(crate::service::Fault::from(e)))?
        .ok_or(ApiError::Unauthorized)?;
    let mut body = json!({"sub": user.id.to_string()});
    if allows("email") {
        body["email"] = json!(user.email.as_str());
        body["email_verified"] = json!(user.email_verified);
    }
    if allows("profile") {
        if let Some(name) = &user.name {
            body["name"] = json!(name.as_str());
        }
        body["updated_at"] = json!(user.updated_at.unix_timestamp());
    }
    Ok((
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response())
}

/// An RFC 7591 client registration request (the metadata latchkey understands).
#[derive(Debug, Deserialize)]
struct RegistrationRequest {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    post_logout_redirect_uris: Option<Vec<String>>,
}

/// `POST /oauth/register` (RFC 7591), when `LATCHKEY_OAUTH_DYNAMIC_REGISTRATION=true`: a
/// third-party client (consent always asked), its secret shown once.
async fn register(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    body: Bytes,
) -> Response {
    if !app.config.oauth.dynamic_registration {
        return ApiError::NotFound.into_response();
    }
    if let Err(limited) = budget
        .check(&app, Action::Register, client.ip.as_deref(), None)
        .await
    {
        return limited.into_response();
    }
    let metadata_error = |code: &str, description: &str| {
        (
            StatusCode::BAD_REQUEST,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response()
    };
    let Ok(request) = serde_json::from_slice::<RegistrationRequest>(&body) else {
        return metadata_error(
            "invalid_client_metadata",
            "the body must be a JSON object of client metadata",
        );
    };
    let confidential = match request.token_endpoint_auth_method.as_deref() {
        None | Some("client_secret_basic") | Some("client_secret_post") => true,
        Some("none") => false,
        Some(_) => {
            return metadata_error(
                "invalid_client_metadata",
                "token_endpoint_auth_method must be client_secret_basic, client_secret_post or none",
            );
        }
    };
    let grants_ok = request.grant_types.as_ref().is_none_or(|grants| {
        grants
            .iter()
            .all(|g| g == "authorization_code" || g == "refresh_token")
    });
    let responses_ok = request
        .response_types
        .as_ref()
        .is_none_or(|types| types.iter().all(|t| t == "code"));
    if !grants_ok || !responses_ok {
        return metadata_error(
            "invalid_client_metadata",
            "only the authorization code flow (with refresh tokens) is served",
        );
    }
    // Custom scopes mean something to a resource server; only an admin may hand them out.
    let standard = request
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .all(|scope| scope.is_empty() || crate::domain::oauth::STANDARD_SCOPES.contains(&scope));
    if !standard {
        return metadata_error(
            "invalid_client_metadata",
            "a registered client may ask only for openid, profile, email and offline_access",
        );
    }
    let fields = crate::service::oauth_clients::ClientFields {
        name: Some(
            request
                .client_name
                .unwrap_or_else(|| "Unnamed app".to_owned()),
        ),
        confidential: Some(confidential),
        redirect_uris: request.redirect_uris,
        post_logout_redirect_uris: request.post_logout_redirect_uris,
        scopes: request.scope.map(|scope| {
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        }),
        first_party: Some(false),
    };
    use crate::service::oauth_clients::{ClientError, register};
    match register(&app, None, fields).await {
        Ok(registered) => {
            let client = &registered.client;
            let method = match (confidential, request.token_endpoint_auth_method.as_deref()) {
                (false, _) => "none",
                (true, Some("client_secret_post")) => "client_secret_post",
                (true, _) => "client_secret_basic",
            };
            let mut body = json!({
                "client_id": client.client_id,
                "client_id_issued_at": client.created_at.unix_timestamp(),
                "client_name": client.name,
                "redirect_uris": client.redirect_uris,
                "post_logout_redirect_uris": client.post_logout_redirect_uris,
                "token_endpoint_auth_method": method,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": client.scopes.join(" "),
            });
            if let Some(secret) = &registered.secret {
                body["client_secret"] = json!(secret);
                body["client_secret_expires_at"] = json!(0);
            }
            (
                StatusCode::CREATED,
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                Json(body),
            )
                .into_response()
        }
        Err(ClientError::Invalid(errors)) => {
            let first = errors.0.first();
            let code = match first.map(|e| e.field.as_str()) {
                Some("redirect_uris") => "invalid_redirect_uri",
                _ => "invalid_client_metadata",
            };
            let description = first
                .map(|e| format!("{} {}", e.field, e.message))
                .unwrap_or_default();
            metadata_error(code, &description)
        }
        Err(ClientError::NotFound) => ApiError::NotFound.into_response(),
        Err(ClientError::Fault(fault)) => ApiError::from(fault).into_response(),
    }
}
