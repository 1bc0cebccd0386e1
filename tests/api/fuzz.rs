//! Property-based fuzzing of the request parsing and validation layer: whatever bytes arrive
//! as a body, on every JSON endpoint, the answer is a clean 2xx/4xx, and every error is
//! problem+json. Raise PROPTEST_CASES (e.g. 5000) for a long run.

use crate::support::spawn_app;
use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use tower::ServiceExt;

const ENDPOINTS: [&str; 8] = [
    "/auth/register",
    "/auth/login",
    "/auth/refresh",
    "/auth/logout",
    "/auth/confirm-email",
    "/auth/resend-confirmation",
    "/auth/forgot-password",
    "/auth/reset-password",
];

/// JSON-ish bodies: structured values with the endpoints' field names, and raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,80}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("email".to_owned()),
                    Just("password".to_owned()),
                    Just("token".to_owned()),
                    Just("new_password".to_owned()),
                    Just("metadata".to_owned()),
                    ".{0,12}"
                ],
                inner,
                0..6,
            )
            .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    });
    prop_oneof![
        value.prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..300),
    ]
}

#[test]
fn no_body_on_any_endpoint_gets_a_server_error_or_a_non_problem_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(spawn_app());
    let router = latchkey::http::router(app.state.clone());
    let config = ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(96),
        ..ProptestConfig::default()
    };
    proptest!(config, |(endpoint in prop::sample::select(ENDPOINTS.to_vec()), bytes in body())| {
        let request = Request::post(endpoint).header("content-type", "application/json").body(Body::from(bytes)).unwrap();
        let response = runtime.block_on(router.clone().oneshot(request)).unwrap();
        let status = response.status();
        prop_assert!(!status.is_server_error() || status.as_u16() == 503, "{} answered {}", endpoint, status);
        if status.is_client_error() {
            prop_assert_eq!(response.headers()["content-type"].to_str().unwrap(), "application/problem+json");
        }
    });
}
