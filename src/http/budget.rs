//! Rate limits, declared once per route. The declaration hands the route's budgets to its
//! handler (the [`Budget`] extractor, which refuses an action the route did not declare) and
//! puts the route's `429` into the OpenAPI document, so the two cannot drift apart.

use super::error::ApiError;
use crate::domain::Email;
use crate::ratelimit::Action;
use crate::state::AppState;
use axum::Extension;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::MethodRouter;
use utoipa_axum::router::UtoipaMethodRouter;

/// The budgets a route's requests spend, as its declaration names them.
#[derive(Debug, Clone, Copy)]
pub struct Budget(&'static [Action]);

/// Declares that the operations of `route` spend the budgets of `actions`.
pub fn limited(
    route: UtoipaMethodRouter<AppState>,
    actions: &'static [Action],
) -> UtoipaMethodRouter<AppState> {
    let (schemas, mut paths, router) = route;
    for item in paths.paths.values_mut() {
        for operation in super::openapi::operations_mut(item) {
            operation
                .responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| {
                    super::openapi::problem_response(
                        "`rate_limited`, with Retry-After, RateLimit and RateLimit-Policy",
                    )
                });
        }
    }
    (schemas, paths, limited_route(router, actions))
}

/// The same for a route outside the OpenAPI document (a hosted page).
pub fn limited_route(
    router: MethodRouter<AppState>,
    actions: &'static [Action],
) -> MethodRouter<AppState> {
    router.layer(Extension(Budget(actions)))
}

impl<S: Send + Sync> FromRequestParts<S> for Budget {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Budget>().copied().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "the route {} declares no rate limit",
                parts.uri.path()
            ))
        })
    }
}

impl Budget {
    /// Counts one `action` from the client network of `ip` and against `account`, refusing
    /// over budget; an action this route did not declare is a bug, answered 500.
    pub async fn check(
        self,
        app: &AppState,
        action: Action,
        ip: Option<&str>,
        account: Option<&Email>,
    ) -> Result<(), ApiError> {
        if !self.0.contains(&action) {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "{action:?} is not among the route's declared rate limits"
            )));
        }
        Ok(app.limiter.check(action, ip, account).await?)
    }
}
