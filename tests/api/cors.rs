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

/// Cookie mode: the refresh token is also a cookie, which `/auth/refresh` takes only from the
/// service's own origin or a CORS origin (a forged cross-site request carries the cookie too).
#[tokio::test]
async fn the_refresh_cookie_is_http_only_and_taken_only_from_trusted_origins() {
    let app = spawn_app_with(&[
        "--public-url",
        "http://localhost:{port}",
        "--cors-origins",
        APP,
        "--refresh-cookie",
        "true",
    ])
    .await;
    let (_, first) = app.logged_in_user("ada@example.com").await;
    let refresh = first["refresh_token"].as_str().unwrap();
    let login = app.login("ada@example.com", PASSWORD).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/auth",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair: serde_json::Value = login.json().await.unwrap();
    let token = pair["refresh_token"].as_str().unwrap();
    assert!(
        cookie.starts_with(&format!("__Secure-latchkey_refresh={token};")),
        "{cookie}"
    );
    assert_ne!(token, refresh);

    let with_cookie = |origin: Option<String>| {
        let mut request = app
            .client
            .post(format!("{}/auth/refresh", app.url))
            .header("cookie", format!("__Secure-latchkey_refresh={token}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for forged in [None, Some("https://evil.example.com".to_owned())] {
        let refused = with_cookie(forged.clone()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{forged:?}");
    }
    let own = app.url.replace("127.0.0.1", "localhost");
    let refreshed = with_cookie(Some(own)).await.unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert!(
        refreshed.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .starts_with("__Secure-latchkey_refresh=")
    );
    // A body still names the token explicitly, as without cookie mode.
    let spent = app
        .post(
            "/auth/refresh",
            &serde_json::json!({"refresh_token": token}),
        )
        .await;
    assert_eq!(spent.status(), StatusCode::OK, "within the reuse grace");
}

#[tokio::test]
async fn without_cookie_mode_no_cookie_is_set_or_read() {
    let app = spawn_app().await;
    let (_, first) = app.logged_in_user("ada@example.com").await;
    let refresh = first["refresh_token"].as_str().unwrap();
    let login = app.login("ada@example.com", PASSWORD).await;
    assert!(login.headers().get("set-cookie").is_none());
    let refused = app
        .client
        .post(format!("{}/auth/refresh", app.url))
        .header("cookie", format!("__Secure-latchkey_refresh={refresh}"))
        .header("origin", app.url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_planted_second_cookie_or_a_mistyped_body_never_falls_back_to_a_guess() {
    let app = spawn_app_with(&[
        "--public-url",
        "http://localhost:{port}/id",
        "--refresh-cookie",
        "true",
    ])
    .await;
    let (_, first) = app.logged_in_user("ada@example.com").await;
    let token = first["refresh_token"].as_str().unwrap();
    let login = app.login("ada@example.com", PASSWORD).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    // The browser's path is the public URL's, whatever a gateway strips before latchkey.
    assert!(cookie.contains("Path=/id/auth;"), "{cookie}");
    let own = app.url.replace("127.0.0.1", "localhost");
    let own = own.trim_end_matches("/id").to_owned();

    let two = app
        .client
        .post(format!("{}/auth/refresh", app.url))
        .header("origin", own.clone())
        .header(
            "cookie",
            format!("__Secure-latchkey_refresh=planted; __Secure-latchkey_refresh={token}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        two.status(),
        StatusCode::UNAUTHORIZED,
        "two cookies are refused"
    );
    let mistyped = app
        .client
        .post(format!("{}/auth/refresh", app.url))
        .header("origin", own)
        .header("cookie", format!("__Secure-latchkey_refresh={token}"))
        .json(&serde_json::json!({"refresh_tokn": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        mistyped.status(),
        StatusCode::BAD_REQUEST,
        "a wrong body is an error"
    );
}
