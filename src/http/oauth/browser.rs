//! The browser's sign-in at the provider: the sealed `__Host-` cookie that carries it, the
//! consent form's token derived from that cookie, and the test that a form was posted from
//! this origin.

use crate::crypto::random;
use crate::service::Principal;
use crate::service::sessions::authenticate;
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;

/// The browser's sign-in cookie. `__Host-`: secure, this host only, path `/`.
pub(super) const SIGN_IN_COOKIE: &str = "__Host-latchkey_sso";

/// Whether a form post did not come from this origin. A form posted from another site would
/// sign the browser in to an account of the attacker's choosing, consent, or sign out for it;
/// every browser sends `Origin` with a form post, so a post without one is not a browser's.
pub(super) fn foreign_post(app: &AppState, headers: &HeaderMap) -> bool {
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The pages send no Referer, and then Chromium's `Origin` is `null`: the fetch metadata
    // header tells a same-origin post apart.
    if let Some(site) = value("sec-fetch-site") {
        return site != "same-origin";
    }
    value("origin").is_none_or(|origin| {
        crate::http::cookie::origin_of(origin)
            != crate::http::cookie::origin_of(&app.config.server.public_url)
    })
}

/// The browser's sign-in, when its cookie holds a live token of latchkey's own.
pub(super) async fn signed_in(
    app: &AppState,
    headers: &HeaderMap,
) -> (Option<Principal>, Option<String>) {
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
pub(super) fn seal_cookie(app: &AppState, access_token: &str) -> String {
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
pub(super) fn consent_token(cookie: &str) -> String {
    random::sha256_b64(format!("latchkey-consent:{cookie}").as_bytes())
}

/// The `Set-Cookie` of a sign-in: as long as its access token lives.
pub(super) fn sign_in_cookie(app: &AppState, sealed: &str) -> Option<HeaderValue> {
    let max_age = app.config.tokens.access_ttl.whole_seconds();
    let cookie = format!(
        "{SIGN_IN_COOKIE}={sealed}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    );
    HeaderValue::from_str(&cookie).ok()
}
