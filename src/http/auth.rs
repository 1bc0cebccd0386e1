//! `/auth/*`: registration, login and the forward-auth check for gateways.

use super::budget::Budget;
use super::cookie::{self, Tokens};
use super::error::{ApiError, Problem};
use super::extract::{AnyBearer, ApiJson, Client, budget_account};
use super::views::{
    EmailSchema, LocaleSchema, NameSchema, NewPasswordSchema, PhoneSchema, TokenPairView, UserView,
    refuse_unknown, single_field,
};
use crate::domain::{Acr, ValidationErrors};
use crate::ratelimit::Action;
use crate::service::accounts::{self, AccountFields, NewAccount, Origin, Registered};
use crate::service::gateway::{self, Gate, Refusal};
use crate::service::{Caller, sessions};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Body of `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// Any case; stored trimmed, lower-cased, NFKC-normalised.
    #[schema(required = true, value_type = EmailSchema)]
    email: Option<String>,
    /// 12–128 characters by default; not common, not containing the email's local part.
    #[schema(required = true, value_type = NewPasswordSchema)]
    password: Option<String>,
    /// Full name, 1–200 characters.
    #[schema(value_type = Option<NameSchema>)]
    name: Option<String>,
    /// E.164.
    #[schema(value_type = Option<PhoneSchema>)]
    phone: Option<String>,
    /// Application fields, at most 4 KiB serialised.
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// The language of the account's mails (BCP 47); without it, the first language of
    /// `Accept-Language` that latchkey speaks.
    #[schema(value_type = Option<LocaleSchema>)]
    locale: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Body of `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The account's email, any case.
    #[schema(required = true, value_type = EmailSchema)]
    email: Option<String>,
    /// The password.
    #[schema(required = true, value_type = String, format = Password)]
    password: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

/// Answer of `POST /auth/register`: the user, or (verification off) a token pair with it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RegisterView {
    /// Email verification is required: the new, unverified user.
    Created(UserView),
    /// Email verification is off: the user is logged in.
    LoggedIn(TokenPairView),
}

/// Register a new account. With email verification on (the default) the answer is the user;
/// with it off, the user is logged in at once and the answer also carries a token pair.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered", body = RegisterView, headers(("Location" = String, description = "/users/{id}"))),
        (status = 400, description = "`validation_failed` or `malformed_body`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded` or `unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let account = budget_account(req.email.as_deref());
    budget
        .check(
            &app,
            Action::Register,
            client.ip.as_deref(),
            account.as_ref(),
        )
        .await?;
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let account = NewAccount::parse(
        &app.config.password_policy,
        AccountFields {
            email: req.email,
            password: req.password,
            name: req.name,
            phone: req.phone,
            metadata: req.metadata,
            locale: req.locale,
        },
        true,
        &mut errors,
    );
    let account = errors.and(account)?;
    let registered = accounts::register(&app, account, Origin::SelfService(client)).await?;
    let (id, view, cookie) = match registered {
        Registered::Created(user) => (user.id, RegisterView::Created(user.into()), None),
        Registered::LoggedIn(pair) => {
            let id = pair.user.id;
            let (view, cookie) = Tokens::new(&app, pair).into_parts();
            (id, RegisterView::LoggedIn(view), cookie)
        }
    };
    let location = format!("{}/users/{id}", app.config.server.base_path);
    let mut response = (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view),
    )
        .into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Log in with email and password. Unknown email and wrong password answer alike, after the
/// same hashing work; `email_not_verified` and `account_disabled` only after a correct password.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenPairView),
        (status = 400, description = "`validation_failed` or `malformed_body`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`email_not_verified`, `account_disabled`, or `mfa_required` with `mfa_token` (5 minutes, 5 tries) and `methods` (`totp`, `webauthn`, `recovery_code`) for `POST /auth/mfa/verify`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`overloaded` or `unavailable`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Tokens, ApiError> {
    let mut errors = ValidationErrors::default();
    refuse_unknown(&mut errors, &req.unknown);
    let email = errors.require("email", req.email);
    let password = errors.require("password", req.password);
    let (email, password) = errors.and(email.zip(password))?;
    budget
        .check(
            &app,
            Action::Login,
            client.ip.as_deref(),
            budget_account(Some(&email)).as_ref(),
        )
        .await?;
    let pair = sessions::login(&app, &email, &password, client).await?;
    Ok(Tokens::new(&app, pair))
}

/// Forward-auth for gateways: checks the bearer token and answers 200 with the caller in
/// `X-User-Id`, `X-User-Email`, `X-User-Role`, `X-User-Email-Verified`, `X-User-Acr` and
/// `X-User-Auth-Time`, or 401. With `acr` or `max_age`, a token whose authentication is
/// weaker or older is refused with the RFC 9470 step-up challenge. An OAuth client's token
/// adds `X-User-Client-Id` and `X-User-Scope`, and must hold every `scope` the route names
/// (else 403 `insufficient_scope`); a token for a resource server (`aud` from RFC 8707) passes
/// only where `resource` names it. A client's own token (`client_credentials`) passes only a
/// route that names a `scope`, and then with those two headers and no user.
#[utoipa::path(get, path = "/auth/verify", tag = "auth", security(("bearer" = [])),
    params(
        ("acr" = Option<String>, Query, pattern = "^aal[12]$", description = "`aal1` or `aal2`: the least assurance level the route needs"),
        ("max_age" = Option<i64>, Query, minimum = 0, description = "The most seconds since the user authenticated"),
        ("scope" = Option<String>, Query, description = "Space-separated scopes an OAuth client's token must hold"),
        ("resource" = Option<String>, Query, description = "The resource server (RFC 8707) the route fronts: tokens issued for it pass"),
    ),
    responses(
        (status = 200, description = "Valid token; empty body", headers(
            ("X-User-Id" = String), ("X-User-Email" = String), ("X-User-Role" = String),
            ("X-User-Email-Verified" = String, description = "`true` or `false`"),
            ("X-User-Acr" = String, description = "`aal1` or `aal2`"),
            ("X-User-Auth-Time" = String, description = "Unix seconds of the last authentication"),
            ("X-User-Client-Id" = String, description = "An OAuth client's token only: the client it was issued to"),
            ("X-User-Scope" = String, description = "An OAuth client's token only: the scopes granted, space-separated"))),
        (status = 400, description = "`validation_failed`: `acr`, `max_age`, `scope` or `resource` malformed", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`insufficient_scope`, with `WWW-Authenticate: Bearer error=\"insufficient_scope\", scope=…`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`, or `insufficient_user_authentication` with `WWW-Authenticate: Bearer error=\"insufficient_user_authentication\", acr_values=…, max_age=…`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(app): State<AppState>,
    AnyBearer(caller): AnyBearer,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<HeaderMap, ApiError> {
    let gate = parse_gate(query)?;
    let service = matches!(caller, Caller::Service(_));
    let claims = gateway::admit(&app, caller, &gate).map_err(|refusal| match refusal {
        Refusal::Unauthorized => ApiError::Unauthorized,
        Refusal::StepUp(demand) => ApiError::InsufficientAuthentication {
            acr: demand.acr,
            max_age: demand.max_age,
        },
        Refusal::InsufficientScope(scopes) => ApiError::InsufficientScope(scopes.join(" ")),
    })?;
    if service {
        // No user: no X-User-Id a downstream service could take for one.
        return delegation_headers(&claims, HeaderMap::new());
    }
    let acr = claims.acr.as_deref().and_then(Acr::parse);
    let acr = acr.unwrap_or(Acr::Aal1).as_str();
    let auth_time = claims
        .auth_time
        .map(|at| at.to_string())
        .unwrap_or_default();
    let mut headers = HeaderMap::new();
    let pairs = [
        ("x-user-id", claims.sub.as_str()),
        ("x-user-email", claims.email.as_str()),
        ("x-user-role", claims.role.as_str()),
        (
            "x-user-email-verified",
            if claims.email_verified {
                "true"
            } else {
                "false"
            },
        ),
        ("x-user-acr", acr),
        ("x-user-auth-time", auth_time.as_str()),
    ];
    for (name, value) in pairs {
        let value = HeaderValue::from_str(value).map_err(|e| ApiError::Internal(e.into()))?;
        headers.insert(HeaderName::from_static(name), value);
    }
    delegation_headers(&claims, headers)
}

/// An OAuth client's token also says whose it is and what it may do: `X-User-Client-Id` and
/// `X-User-Scope`.
fn delegation_headers(
    claims: &crate::crypto::AccessClaims,
    mut headers: HeaderMap,
) -> Result<HeaderMap, ApiError> {
    let delegated = [
        ("x-user-client-id", claims.client_id.as_deref()),
        ("x-user-scope", claims.scope.as_deref()),
    ];
    for (name, value) in delegated {
        if let Some(value) = value {
            let value = HeaderValue::from_str(value).map_err(|e| ApiError::Internal(e.into()))?;
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(headers)
}

/// The demands of a `GET /auth/verify` query: `acr`, `max_age` (RFC 9470), `scope` (space-
/// separated; repeatable) and `resource` (RFC 8707). Parameters it does not define are left
/// alone: a gateway may pass its own.
fn parse_gate(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Gate, ValidationErrors> {
    let Query(pairs) =
        query.map_err(|_| ValidationErrors::one("query", "is not a valid query string"))?;
    let mut errors = ValidationErrors::default();
    let mut gate = Gate::default();
    let demand = &mut gate.demand;
    for (key, value) in pairs {
        match key.as_str() {
            "acr" => match Acr::parse(&value) {
                Some(acr) if demand.acr.is_none() => demand.acr = Some(acr),
                Some(_) => errors.add("acr", "is given more than once"),
                None => errors.add("acr", "must be aal1 or aal2"),
            },
            "max_age" => match value.parse::<i64>() {
                Ok(seconds) if seconds >= 0 && demand.max_age.is_none() => {
                    demand.max_age = Some(seconds)
                }
                Ok(seconds) if seconds >= 0 => errors.add("max_age", "is given more than once"),
                _ => errors.add("max_age", "must be a whole number of seconds, 0 or more"),
            },
            "scope" => {
                let scopes: Vec<&str> = value.split(' ').filter(|s| !s.is_empty()).collect();
                if scopes.is_empty() || !scopes.iter().all(|s| crate::domain::oauth::is_scope(s)) {
                    errors.add("scope", "must be space-separated scope names");
                }
                gate.scopes.extend(scopes.into_iter().map(str::to_owned));
            }
            "resource" if gate.audience.is_some() => {
                errors.add("resource", "is given more than once")
            }
            "resource" if crate::config::is_resource_uri(&value) => gate.audience = Some(value),
            "resource" => errors.add("resource", "must be an absolute URI without a fragment"),
            _ => {}
        }
    }
    errors.into_result()?;
    Ok(gate)
}

/// Body of `POST /auth/refresh` and `POST /auth/logout`. In cookie mode
/// (`LATCHKEY_REFRESH_COOKIE`) the body may be empty: the refresh cookie is used instead, for a
/// request whose `Origin` is the service's or a CORS origin (else 403 `forbidden`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshTokenRequest {
    /// The opaque refresh token from the last token pair.
    #[schema(required = true, value_type = String)]
    refresh_token: Option<String>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Map<String, Value>,
}

impl RefreshTokenRequest {
    /// Whether the body names nothing at all (`{}` or no body): only then may a cookie stand in.
    fn is_empty(&self) -> bool {
        self.refresh_token.is_none() && self.unknown.is_empty()
    }

    fn into_token(self) -> Result<String, ApiError> {
        Ok(single_field(
            "refresh_token",
            self.refresh_token,
            &self.unknown,
        )?)
    }
}

/// Exchange a refresh token for a new token pair; the old refresh token is spent. Repeating it
/// within the grace window (two tabs, a lost response) gets the same new pair; repeating it later
/// is reuse and revokes the whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshTokenRequest,
    responses(
        (status = 200, description = "A new token pair (in cookie mode also as the refresh cookie)", body = TokenPairView),
        (status = 401, description = "`invalid_refresh_token`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the refresh cookie came from an Origin that is neither the service's nor a CORS origin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(app): State<AppState>,
    Client(client): Client,
    budget: Budget,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshTokenRequest>,
) -> Result<Tokens, ApiError> {
    budget
        .check(&app, Action::Refresh, client.ip.as_deref(), None)
        .await?;
    let token = cookie::refresh_token(&app, &headers, req.is_empty(), req.into_token())?;
    let pair = sessions::refresh(&app, &token).await?;
    Ok(Tokens::new(&app, pair))
}

/// End the session of a refresh token. Answers 204 for an unknown token too.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", request_body = RefreshTokenRequest,
    responses(
        (status = 204, description = "Logged out (or nothing to do); in cookie mode the refresh cookie is cleared"),
        (status = 403, description = "`forbidden`: the refresh cookie came from an Origin that is neither the service's nor a CORS origin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<RefreshTokenRequest>,
) -> Result<Response, ApiError> {
    let token = cookie::refresh_token(&app, &headers, req.is_empty(), req.into_token())?;
    sessions::logout(&app, &token).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(cleared) = cookie::cleared(&app) {
        response.headers_mut().insert(header::SET_COOKIE, cleared);
    }
    Ok(response)
}
