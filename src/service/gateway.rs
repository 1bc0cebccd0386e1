//! `GET /auth/verify`, the gateway check: what a route in front of a downstream service may
//! demand of a token (a level and freshness of authentication, scopes, the audience), and who
//! gets through. A user's own token passes as before; an OAuth client's token only as far as
//! its grant reaches.

use super::{Caller, mfa};
use crate::crypto::AccessClaims;
use crate::domain::{Acr, Demand};
use crate::state::AppState;
use std::sync::Arc;

/// What the gateway's route demands.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    /// The level and freshness of authentication (RFC 9470).
    pub demand: Demand,
    /// Scopes an OAuth client's token must have been granted, all of them.
    pub scopes: Vec<String>,
    /// The resource server (RFC 8707) the route fronts; none: the configured audience.
    pub audience: Option<String>,
}

/// Why a token does not get through.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not for this route at all.
    Unauthorized,
    /// Weaker or older than the route demands: the step-up challenge names what would do.
    StepUp(Demand),
    /// An OAuth client's token without every scope the route names.
    InsufficientScope(Vec<String>),
}

/// Whether `caller`'s token gets through `gate`; its claims when it does.
pub fn admit(app: &AppState, caller: Caller, gate: &Gate) -> Result<Arc<AccessClaims>, Refusal> {
    let (claims, demand, service) = match caller {
        Caller::User(principal) => {
            let mut demand = gate.demand;
            // A role that needs a second factor is told to step up, like a route that asks.
            if mfa::role_requires_more(app, &principal) {
                demand.acr = Some(Acr::Aal2);
            }
            (principal.claims, demand, false)
        }
        Caller::Service(service) => (service.claims, gate.demand, true),
    };
    // A token for one resource server opens only a route that names it: a server that was
    // handed one cannot replay it in front of another.
    let audience = gate
        .audience
        .as_ref()
        .or(app.tokens.settings().audience.as_ref());
    if claims.aud.is_some() && claims.aud.as_ref() != audience {
        return Err(Refusal::Unauthorized);
    }
    // A client's own token has no user: it opens only a route that says which scope it needs,
    // never one that means "any signed-in user".
    if service && gate.scopes.is_empty() {
        return Err(Refusal::Unauthorized);
    }
    // A user's own token is the account itself; a client's holds what it was granted.
    if let Some(granted) = &claims.scope {
        let granted: Vec<&str> = granted.split(' ').collect();
        if gate.scopes.iter().any(|s| !granted.contains(&s.as_str())) {
            return Err(Refusal::InsufficientScope(gate.scopes.clone()));
        }
    }
    if service {
        // No user authenticated: no demand on an authentication can be met.
        if demand.acr.is_some() || demand.max_age.is_some() {
            return Err(Refusal::StepUp(demand));
        }
        return Ok(claims);
    }
    let acr = claims.acr.as_deref().and_then(Acr::parse);
    if !demand.met_by(acr, claims.auth_time, app.clock.now()) {
        return Err(Refusal::StepUp(demand));
    }
    Ok(claims)
}
