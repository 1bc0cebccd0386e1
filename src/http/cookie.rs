//! Cookie mode (`LATCHKEY_REFRESH_COOKIE=true`): the refresh token also travels in an
//! `HttpOnly; Secure; SameSite=Strict` cookie scoped to `/auth`, so a browser app need not keep
//! it where its scripts (and an injected one) can read it. `/auth/refresh` and `/auth/logout`
//! take the cookie when the body names no token, after a CSRF check on `Origin`.

use super::error::ApiError;
use super::views::TokenPairView;
use crate::service::TokenPair;
use crate::state::AppState;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The cookie's name.
const NAME: &str = "latchkey_refresh";

/// A token pair as answered: JSON, plus the refresh cookie in cookie mode.
pub struct Tokens {
    view: TokenPairView,
    cookie: Option<HeaderValue>,
}

impl Tokens {
    /// The answer for `pair`.
    pub fn new(app: &AppState, pair: TokenPair) -> Tokens {
        let cookie = app.config.tokens.refresh_cookie.then(|| {
            set_cookie(
                app,
                &pair.refresh_token,
                app.config.tokens.refresh_ttl.whole_seconds(),
            )
        });
        Tokens {
            view: pair.into(),
            cookie: cookie.flatten(),
        }
    }

    /// The cookie, for an answer that wraps the pair in another body (registration).
    pub fn into_parts(self) -> (TokenPairView, Option<HeaderValue>) {
        (self.view, self.cookie)
    }
}

impl IntoResponse for Tokens {
    fn into_response(self) -> Response {
        let mut response = Json(self.view).into_response();
        if let Some(cookie) = self.cookie {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        response
    }
}

/// The `Set-Cookie` that ends the cookie, for a logout in cookie mode.
pub fn cleared(app: &AppState) -> Option<HeaderValue> {
    app.config
        .tokens
        .refresh_cookie
        .then(|| set_cookie(app, "", 0))
        .flatten()
}

/// The refresh token of a refresh or logout: the body's when it names one, else (in cookie
/// mode) the cookie's, provided the request comes from the service's own origin or a CORS
/// origin: a cookie is sent whatever page made the request, so the origin is what tells a
/// forged one apart.
pub fn refresh_token(
    app: &AppState,
    headers: &HeaderMap,
    from_body: Result<String, ApiError>,
) -> Result<String, ApiError> {
    let from_cookie = app
        .config
        .tokens
        .refresh_cookie
        .then(|| cookie_value(headers))
        .flatten();
    match (from_body, from_cookie) {
        (Ok(token), _) => Ok(token),
        (Err(_), Some(token)) if trusted_origin(app, headers) => Ok(token),
        (Err(_), Some(_)) => Err(ApiError::Forbidden),
        (Err(error), None) => Err(error),
    }
}

fn set_cookie(app: &AppState, value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{NAME}={value}; Path={}/auth; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
        app.config.server.base_path
    ))
    .ok()
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == NAME && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

fn trusted_origin(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    let origin = origin.to_ascii_lowercase();
    own_origin(&app.config.server.public_url).is_some_and(|own| own == origin)
        || app.config.server.cors_origins.contains(&origin)
}

/// `scheme://host[:port]` of the public URL.
fn own_origin(public_url: &str) -> Option<String> {
    let (scheme, rest) = public_url.split_once("://")?;
    let host = rest.split('/').next()?;
    Some(format!("{scheme}://{host}").to_ascii_lowercase())
}
