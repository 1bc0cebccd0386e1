//! Browser apps on other origins: CORS for the configured origins only, with credentials.

use crate::support::{PASSWORD, spawn_app, spawn_app_with};
use reqwest::StatusCode;

const APP: &str = "https://app.example.com";

#[tokio::test]
async fn a_configured_origin_is_answered_with_credentials_and_no_other_is() {
    let app = spawn_app_with(&[
        "--cors-origins",
        "https://app.example.com,http://localhost:3000",
    ])
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}/auth/login", app.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
            .send()
    };

    let allowed = preflight(APP).await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(headers["access-control-allow-origin"], APP);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("POST") && methods.contains("PATCH"),
        "{methods}"
    );
    let allowed_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );

    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(
        other.headers().get("access-control-allow-origin").is_none(),
        "an unlisted origin gets no CORS grant"
    );

    app.register("ada@example.com", PASSWORD).await;
    let login = app
        .client
        .post(format!("{}/auth/login", app.url))
        .header("origin", APP)
        .json(&serde_json::json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.headers()["access-control-allow-origin"], APP);
    let exposed = login.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("x-request-id"), "{exposed}");
    assert!(
        login
            .headers()
            .get_all("vary")
            .iter()
            .any(|v| v.to_str().unwrap().contains("origin")),
        "caches must key the answer by origin"
    );
}

#[tokio::test]
async fn without_configured_origins_no_answer_carries_cors_headers() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/healthz", app.url))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[test]
fn an_origin_with_a_path_or_a_wildcard_is_refused() {
    for origin in ["*", "https://app.example.com/login", "app.example.com"] {
        let output = crate::support::latchkey_command()
            .args(["serve", "--cors-origins", origin])
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--cors-origins"), "{stderr}");
    }
}
