//! RP-initiated logout (OpenID Connect): with a hint signed here it ends the hinted session;
//! without one the user confirms, so another site cannot sign a browser out.

use super::browser::{SIGN_IN_COOKIE, consent_token, foreign_post, signed_in};
use super::{AuthorizeError, redirect, refused};
use crate::http::pages::{PageLanguage, failure, hosted_page_with};
use crate::service::oauth;
use crate::state::AppState;
use crate::templates::{Language, Page};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

/// `GET /oauth/logout` (OpenID Connect RP-Initiated Logout): ends the browser's sign-in and
/// the hinted session, then returns to a registered address or says so.
pub(super) async fn logout(
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
pub(super) struct LogoutForm {
    request: String,
    csrf: String,
}

pub(super) async fn confirm_logout(
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
    let get = |key: &str| super::client::param(&params, key).filter(|v| !v.is_empty());
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
