//! Redis as the revocation signal: a revocation announced there reaches the instance at once;
//! while Redis is away, bearer checks and /readyz fail closed, and recover when it is back.

use crate::support::{Peer, Proxy, REDIS, available, eventually, spawn_app_with};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

#[tokio::test]
async fn a_revocation_announced_on_redis_is_honoured_within_a_second() {
    if !available("the Redis tests", &[Peer::Redis]).await {
        return;
    }
    let url = format!("redis://{REDIS}/");
    let app = spawn_app_with(&["--redis-url", &url]).await;
    eventually(
        "the Redis signal connecting",
        Duration::from_secs(5),
        async || app.get("/readyz", None).await.status() == StatusCode::OK,
    )
    .await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    let sid = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
        .unwrap()
        .claims["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Announced by "another instance": only Redis knows; the database has no revocation for it.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("latchkey:revocations")
        .arg(&sid)
        .query_async(&mut connection)
        .await
        .unwrap();

    eventually(
        "the announced revocation",
        Duration::from_secs(1),
        async || app.get("/auth/verify", Some(&token)).await.status() == StatusCode::UNAUTHORIZED,
    )
    .await;
}

#[tokio::test]
async fn while_redis_is_away_bearer_checks_fail_closed_and_readyz_says_so() {
    if !available("the Redis tests", &[Peer::Redis]).await {
        return;
    }
    let proxy = Proxy::start(REDIS.to_owned()).await;
    let url = format!("redis://127.0.0.1:{}/", proxy.port);
    let app = spawn_app_with(&["--redis-url", &url]).await;
    eventually(
        "the Redis signal connecting",
        Duration::from_secs(5),
        async || app.get("/readyz", None).await.status() == StatusCode::OK,
    )
    .await;
    let (token, _) = app.logged_in_user("ada@example.com").await;
    assert_eq!(
        app.get("/auth/verify", Some(&token)).await.status(),
        StatusCode::OK
    );

    proxy.cut();

    eventually("failing closed", Duration::from_secs(3), async || {
        app.get("/auth/verify", Some(&token)).await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["code"], "unavailable");
    // The outage is Redis's, and the answer says so: the database is fine.
    let verify: Value = app
        .get("/auth/verify", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    for detail in [&ready["detail"], &verify["detail"]] {
        let detail = detail.as_str().unwrap();
        assert!(
            detail.contains("Redis") && !detail.contains("database"),
            "{detail}"
        );
    }

    proxy.restore();

    eventually("recovery", Duration::from_secs(10), async || {
        app.get("/auth/verify", Some(&token)).await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
}
