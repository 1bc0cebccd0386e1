//! Extractors that turn every rejection into the contract's problem: `ApiJson` (bodies),
//! `Bearer` (access tokens), `Client` (address and user agent).

use super::error::ApiError;
use crate::config::Cidr;
use crate::service::sessions::authenticate_caller;
use crate::service::{Caller, ClientInfo, Principal, admin};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

/// A JSON body: `application/json` only (else 415), at most 64 KiB (else 413), syntactically
/// valid without duplicate keys at any depth, and of the right shape (else 400 `malformed_body`).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let declared = request.headers().contains_key(header::CONTENT_TYPE);
        if declared && !is_json(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
                    _ => ApiError::MalformedBody("the body could not be read"),
                })?;
        // No body at all is an empty request, so its missing fields are named (400), while a
        // body sent without saying it is JSON is refused (415).
        let bytes = match (declared, bytes.is_empty()) {
            (false, true) => Bytes::from_static(b"{}"),
            (false, false) => return Err(ApiError::UnsupportedMediaType),
            (true, _) => bytes,
        };
        check_structure(&bytes)?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|_| ApiError::MalformedBody("a field has the wrong type"))
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses what serde would otherwise let through: duplicate keys (serde_json keeps the last
/// one silently inside free-form objects) and anything but an object at the top.
fn check_structure(bytes: &[u8]) -> Result<(), ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let top = deserializer.deserialize_any(StrictVisitor).map_err(|e| {
        ApiError::MalformedBody(if e.to_string().contains("duplicate key") {
            "a key appears twice"
        } else {
            "it is not valid JSON"
        })
    })?;
    deserializer
        .end()
        .map_err(|_| ApiError::MalformedBody("it is not valid JSON"))?;
    match top {
        Shape::Object => Ok(()),
        Shape::Other => Err(ApiError::MalformedBody("expected a JSON object")),
    }
}

enum Shape {
    Object,
    Other,
}

/// Walks a JSON document without building it, failing on the first repeated key.
struct StrictVisitor;

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Shape;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            map.next_value::<Shape>()?;
        }
        Ok(Shape::Object)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while seq.next_element::<Shape>()?.is_some() {}
        Ok(Shape::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }
}

/// The caller, proven by `Authorization: Bearer <access token>`; anything else is 401. A role
/// of `LATCHKEY_REQUIRE_MFA_ROLES` needs a token of `aal2` (else 403 `mfa_required`).
pub struct Bearer(pub Principal);

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Enrolling(principal) = Enrolling::from_request_parts(parts, app).await?;
        if crate::service::mfa::role_requires_more(app, &principal) {
            return Err(ApiError::MfaRequired(None));
        }
        Ok(Bearer(principal))
    }
}

/// The caller, proven by a bearer token of any assurance level: for the few endpoints a user
/// whose role needs a second factor must reach without one (their profile, enrolment,
/// re-authentication, the gateway check that answers the step-up challenge itself).
pub struct Enrolling(pub Principal);

impl FromRequestParts<AppState> for Enrolling {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let AnyBearer(caller) = AnyBearer::from_request_parts(parts, app).await?;
        match caller {
            // A token an OAuth client holds was granted scopes for other services, never the
            // user's own account here: it cannot change a password or read the sessions.
            Caller::User(principal) if principal.claims.client_id.is_none() => {
                Ok(Enrolling(principal))
            }
            _ => Err(ApiError::Unauthorized),
        }
    }
}

/// The holder of any live access token, an OAuth client's included (and a client's own): for
/// the gateway check and the OpenID Connect userinfo endpoint, which serve those tokens.
pub struct AnyBearer(pub Caller);

impl FromRequestParts<AppState> for AnyBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        Ok(AnyBearer(authenticate_caller(app, token).await?))
    }
}

/// The caller, authenticated and an admin as stored now. Taken from the request's head, it
/// runs before any path, query or body extractor after it: a non-admin is told 403 (or 401)
/// whatever else they sent.
pub struct Admin(pub admin::Acting);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Bearer(principal) = Bearer::from_request_parts(parts, app).await?;
        Ok(Admin(admin::authorize(app, &principal).await?))
    }
}

/// Where the request came from: the client's address and its `User-Agent`. `X-Forwarded-For`
/// is believed only when the socket peer is a trusted proxy (`LATCHKEY_TRUSTED_PROXIES`).
pub struct Client(pub ClientInfo);

const MAX_USER_AGENT_CHARS: usize = 512;
const X_FORWARDED_FOR: &str = "x-forwarded-for";

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded: Vec<&str> = parts
            .headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| {
                client_ip(
                    peer.ip(),
                    &forwarded.join(","),
                    &app.config.server.trusted_proxies,
                )
                .to_canonical()
                .to_string()
            });
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect());
        let language = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
            .and_then(crate::templates::Language::preferred);
        Ok(Client(ClientInfo {
            ip,
            user_agent,
            language,
        }))
    }
}

/// The account a request names, for its per-account budget: only a valid address names one,
/// so junk (however large) touches no account budget.
pub(crate) fn budget_account(raw: Option<&str>) -> Option<crate::domain::Email> {
    raw.and_then(|raw| crate::domain::Email::parse(raw).ok())
}

/// The client behind a chain of proxies: walking `X-Forwarded-For` from the right (the hop
/// nearest to us), every trusted proxy is skipped; the first address not trusted is the client.
/// An untrusted peer's header is ignored, so nobody can name their own address.
fn client_ip(peer: IpAddr, forwarded: &str, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|cidr| cidr.contains(ip));
    let mut client = peer;
    if !is_trusted(peer) {
        return client;
    }
    for hop in forwarded
        .rsplit(',')
        .map(str::trim)
        .filter(|hop| !hop.is_empty())
    {
        let Ok(ip) = hop.parse::<IpAddr>() else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip(ip("203.0.113.9"), "1.2.3.4", &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), "1.2.3.4", &[]), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        assert_eq!(
            client_ip(ip("10.0.0.1"), "198.51.100.7", &trusted),
            ip("198.51.100.7")
        );
        // A client forging a header of its own gets only its real address believed.
        assert_eq!(
            client_ip(ip("10.0.0.1"), "6.6.6.6, 198.51.100.7, 10.0.0.2", &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), "garbage, 10.0.0.3", &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), "", &trusted), ip("10.0.0.1"));
    }
}
