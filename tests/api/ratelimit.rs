//! Rate limits: per account and per client address, 429 with Retry-After and the IETF headers,
//! not fooled by a spoofed X-Forwarded-For, shared across instances through Redis, failing closed
//! for login when Redis is away.

use crate::support::{
    PASSWORD, Peer, Proxy, REDIS, TestApp, assert_problem, available, spawn_app_with,
};
use reqwest::StatusCode;
use serde_json::json;

async fn assert_limited(response: reqwest::Response) {
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(response.headers()["ratelimit-policy"], "3;w=60");
    assert!(
        response.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("limit=3, remaining=0, reset=")
    );
    assert_problem(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn logins_against_one_account_are_limited_whatever_the_case_and_the_window_resets() {
    let app = spawn_app_with(&["--rate-limit-login-account", "3/1m"]).await;
    for email in ["ada@example.com", "ADA@example.com", "Ada@Example.com"] {
        assert_eq!(
            app.login(email, "a wrong password!").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    assert_limited(app.login("ada@example.com", PASSWORD).await).await;
    assert_eq!(
        app.login("grace@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED,
        "other accounts keep their budget"
    );

    app.state.clock.advance(time::Duration::seconds(61));
    assert_eq!(
        app.login("ada@example.com", "a wrong password!")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_client_address_has_its_own_budget_and_a_spoofed_forwarded_for_changes_nothing() {
    let app = spawn_app_with(&["--rate-limit-register-ip", "3/1m"]).await;
    for i in 0..3 {
        let response = app
            .client
            .post(format!("{}/auth/register", app.url))
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .json(&json!({"email": format!("user{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    let spoofed = app
        .client
        .post(format!("{}/auth/register", app.url))
        .header("x-forwarded-for", "203.0.113.77")
        .json(&json!({"email": "user9@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    assert_limited(spoofed).await;
}

#[tokio::test]
async fn instances_sharing_redis_share_one_budget() {
    if !available("the Redis tests", &[Peer::Redis]).await {
        return;
    }
    let deployment = format!("https://id-{}.example.com", uuid::Uuid::now_v7().simple());
    let url = format!("redis://{REDIS}/");
    let args = [
        "--redis-url",
        url.as_str(),
        "--public-url",
        deployment.as_str(),
        "--rate-limit-forgot-account",
        "3/1m",
    ];
    let (first, second): (TestApp, TestApp) =
        (spawn_app_with(&args).await, spawn_app_with(&args).await);
    let forgot = |app: &TestApp| {
        let (client, url) = (app.client.clone(), app.url.clone());
        async move {
            client
                .post(format!("{url}/auth/forgot-password"))
                .json(&json!({"email": "ada@example.com"}))
                .send()
                .await
                .unwrap()
        }
    };

    for app in [&first, &second, &first] {
        assert_eq!(forgot(app).await.status(), StatusCode::ACCEPTED);
    }

    assert_limited(forgot(&second).await).await;
}

#[tokio::test]
async fn instances_sharing_redis_share_one_reset_code_budget_per_network() {
    if !available("the Redis tests", &[Peer::Redis]).await {
        return;
    }
    let deployment = format!("https://id-{}.example.com", uuid::Uuid::now_v7().simple());
    let url = format!("redis://{REDIS}/");
    let args = [
        "--redis-url",
        url.as_str(),
        "--public-url",
        deployment.as_str(),
        "--rate-limit-reset-code-ip",
        "3/1m",
    ];
    let (first, second): (TestApp, TestApp) =
        (spawn_app_with(&args).await, spawn_app_with(&args).await);
    // Wrong codes for different accounts, from one network, through either instance.
    let guess = |app: &TestApp, n: u32| {
        let (client, url) = (app.client.clone(), app.url.clone());
        async move {
            client
                .post(format!("{url}/auth/reset-password"))
                .json(&json!({"email": format!("user{n}@example.com"), "code": "123456", "new_password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    };

    for (app, n) in [(&first, 1), (&second, 2), (&first, 3)] {
        assert_eq!(guess(app, n).await.status(), StatusCode::BAD_REQUEST);
    }

    assert_limited(guess(&second, 4).await).await;
}

#[tokio::test]
async fn with_redis_away_login_fails_closed() {
    if !available("the Redis tests", &[Peer::Redis]).await {
        return;
    }
    let proxy = Proxy::start(REDIS.to_owned()).await;
    let url = format!("redis://127.0.0.1:{}/", proxy.port);
    let app = spawn_app_with(&["--redis-url", &url]).await;
    app.create_verified_user("ada@example.com", PASSWORD).await;
    assert_eq!(
        app.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::OK
    );

    proxy.cut();

    let login = app.login("ada@example.com", PASSWORD).await;
    assert_problem(login, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    proxy.restore();
}
