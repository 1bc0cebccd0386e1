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

/// The cookie's name. The `__Secure-` prefix makes browsers refuse it from a page that is not
/// secure, so a plain-http neighbour cannot plant one.
pub const NAME: &str = "__Secure-latchkey_refresh";

/// A token pair as answered: JSON, plus the refresh cookie in cookie mode.
pub struct Tokens {
    view: TokenPairView,
    cookie: Option<HeaderValue>,
}

impl Tokens {
    /// The answer for `pair`.
    pub fn new(app: &AppState, pair: TokenPair) -> Tokens {
        let cookie = if app.config.tokens.refresh_cookie {
            set_cookie(
                app,
                &pair.refresh_token,
                app.config.tokens.refresh_ttl.whole_seconds(),
            )
        } else {
            None
        };
        Tokens {
            view: pair.into(),
            cookie,
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
    if app.config.tokens.refresh_cookie {
        set_cookie(app, "", 0)
    } else {
        None
    }
}

/// The refresh token of a refresh or logout: the body's when it names one, else (in cookie
/// mode, for a body that names nothing at all) the cookie's, provided the request comes from the
/// service's own origin or a CORS origin: a cookie is sent whatever page made the request, so
/// the origin is what tells a forged one apart. Two such cookies (one planted by a sibling
/// domain) are refused rather than guessed between.
pub fn refresh_token(
    app: &AppState,
    headers: &HeaderMap,
    body_is_empty: bool,
    from_body: Result<String, ApiError>,
) -> Result<String, ApiError> {
    if !(app.config.tokens.refresh_cookie && body_is_empty) {
        return from_body;
    }
    let mut cookies = cookie_values(headers);
    let Some(token) = cookies.next() else {
        return from_body;
    };
    if cookies.next().is_some() {
        return Err(ApiError::InvalidRefreshToken);
    }
    if trusted_origin(app, headers) {
        Ok(token)
    } else {
        Err(ApiError::Forbidden)
    }
}

fn set_cookie(app: &AppState, value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{NAME}={value}; Path={}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict",
        cookie_path(&app.config.server.public_url)
    ))
    .ok()
}

fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, value)| *name == NAME && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// Origins compared as browsers serialise them (default port dropped, host in punycode).
fn trusted_origin(app: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(origin_of)
    else {
        return false;
    };
    origin_of(&app.config.server.public_url).is_some_and(|own| own == origin)
        || app
            .config
            .server
            .cors_origins
            .iter()
            .filter_map(|listed| origin_of(listed))
            .any(|listed| listed == origin)
}

/// The serialised origin of `url`; `None` for an opaque one (`null`).
pub(super) fn origin_of(url: &str) -> Option<String> {
    let origin = url::Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The path the cookie is scoped to: `/auth` under the public URL's path, which is where the
/// browser sends its requests (a gateway may strip a prefix the service never sees).
fn cookie_path(public_url: &str) -> String {
    let path = url::Url::parse(public_url)
        .map(|url| url.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    format!("{path}/auth")
}
