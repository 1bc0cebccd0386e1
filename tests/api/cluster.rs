//! Two latchkey processes on one PostgreSQL (and NATS) behind nginx, as in production: nginx is
//! the load balancer and, with the sample configuration in deploy/nginx, the API gateway.

use crate::support::{
    NATS, NGINX, PASSWORD, Peer, Process, REDIS, Serve, available, eventually, free_port,
    fresh_database, wait_until_ok,
};
use axum::http::HeaderMap;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits (at most a second) until `url` refuses `token`.
async fn until_refused(client: &reqwest::Client, url: &str, token: &str) {
    eventually(
        &format!("{url} refusing a revoked token"),
        Duration::from_secs(1),
        async || {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
}

#[tokio::test]
async fn two_instances_behind_nginx_share_sessions_keys_revocations_and_events_and_gate_a_service()
{
    let peers = [Peer::Postgres, Peer::Nginx, Peer::Nats, Peer::Redis];
    if !available("the cluster test", &peers).await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    // The downstream service: it echoes the headers it was given.
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let orders = echo.local_addr().unwrap();
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let seen: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), json!(v.to_str().unwrap_or_default())))
            .collect();
        axum::Json(Value::Object(seen))
    });
    tokio::spawn(async move { axum::serve(echo, app).await });

    let database_url = fresh_database(&dir).await;
    let prefix = format!("cluster-{}", uuid::Uuid::now_v7().simple());
    let (port_a, port_b, port_nginx, port_metrics) = (
        free_port().await,
        free_port().await,
        free_port().await,
        free_port().await,
    );
    let public_url = format!("http://127.0.0.1:{port_nginx}");
    let nats_url = format!("nats://{NATS}");
    let redis_url = format!("redis://{REDIS}/");
    let instance = |port: u16, metrics: String| {
        Serve::on(port)
            .env("LATCHKEY_METRICS_LISTEN", metrics)
            .env("LATCHKEY_DATABASE_URL", &database_url)
            .env("LATCHKEY_PUBLIC_URL", &public_url)
            .env(
                "LATCHKEY_SECRET_KEY",
                "a shared secret key of at least 32 bytes!",
            )
            .env("LATCHKEY_NATS_URL", &nats_url)
            .env("LATCHKEY_REDIS_URL", &redis_url)
            .env("LATCHKEY_EVENTS_SUBJECT", &prefix)
            .env("LATCHKEY_REQUIRE_EMAIL_VERIFICATION", "false")
            .env("LATCHKEY_REFRESH_REUSE_GRACE", "1s")
            .env("LATCHKEY_ACCESS_TOKEN_TTL", "3s")
            .env("LATCHKEY_TRUSTED_PROXIES", "127.0.0.1/32")
            .spawn()
    };
    let (a, b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    let _instance_a = instance(port_a, format!("127.0.0.1:{port_metrics}"));
    wait_until_ok(&client, &format!("{a}/readyz")).await;
    let _instance_b = instance(port_b, "off".to_owned());
    wait_until_ok(&client, &format!("{b}/readyz")).await;

    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx/gateway.conf"
    ))
    .unwrap()
    .replace("{{LISTEN}}", &format!("127.0.0.1:{port_nginx}"))
    .replace(
        "{{LATCHKEY_SERVERS}}",
        &format!("server 127.0.0.1:{port_a}; server 127.0.0.1:{port_b};"),
    )
    .replace("{{ORDERS}}", &orders.to_string())
    .replace("{{RUN_DIR}}", &dir.path().display().to_string());
    let config_path = dir.path().join("nginx.conf");
    std::fs::write(&config_path, config).unwrap();
    let _nginx = Process(
        Command::new(NGINX)
            // One process: killing it when the test ends leaves no orphaned workers behind.
            .args([
                "-c",
                config_path.to_str().unwrap(),
                "-g",
                "daemon off; master_process off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_ok(&client, &format!("{public_url}/healthz")).await;

    // Metrics are scraped from each instance's operations listener, never through the gateway.
    let metrics = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status() }
    };
    assert_eq!(
        metrics(format!("{public_url}/metrics")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        metrics(format!("http://127.0.0.1:{port_metrics}/metrics")).await,
        StatusCode::OK
    );

    // Through the balancer: register and log in.
    let registered = client
        .post(format!("{public_url}/auth/register"))
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    let login = |base: String| {
        let client = client.clone();
        async move {
            let response = client
                .post(format!("{base}/auth/login"))
                .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()
        }
    };
    let refresh = |base: String, token: Value| {
        let client = client.clone();
        async move {
            client
                .post(format!("{base}/auth/refresh"))
                .json(&json!({"refresh_token": token}))
                .send()
                .await
                .unwrap()
        }
    };

    // Keys are shared: both publish the same JWKS, and a token from one verifies on the other.
    let jwks_a: Value = client
        .get(format!("{a}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwks_b: Value = client
        .get(format!("{b}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_a, jwks_b);

    // Log in on A, refresh on B; a repeat after the grace window, on A, is reuse.
    let on_a = login(a.clone()).await;
    let from_b = refresh(b.clone(), on_a["refresh_token"].clone()).await;
    assert_eq!(from_b.status(), StatusCode::OK);
    let from_b: Value = from_b.json().await.unwrap();
    assert_eq!(
        client
            .get(format!("{a}/auth/verify"))
            .bearer_auth(from_b["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        refresh(a.clone(), on_a["refresh_token"].clone())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    until_refused(
        &client,
        &format!("{b}/auth/verify"),
        from_b["access_token"].as_str().unwrap(),
    )
    .await;

    // Logout on one instance: the other refuses the access token within a second.
    let session = login(a.clone()).await;
    client
        .post(format!("{a}/auth/logout"))
        .json(&json!({"refresh_token": session["refresh_token"]}))
        .send()
        .await
        .unwrap();
    until_refused(
        &client,
        &format!("{b}/auth/verify"),
        session["access_token"].as_str().unwrap(),
    )
    .await;

    // The gateway: identity headers come only from latchkey.
    let gated = login(public_url.clone()).await;
    let token = gated["access_token"].as_str().unwrap().to_owned();
    let passed = client
        .get(format!("{public_url}/orders/42"))
        .bearer_auth(&token)
        .header("X-User-Role", "admin")
        .header("x-user-id", "forged")
        .header("X-User-Acr", "aal2")
        .header("X-User-Tenant", "someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(passed.status(), StatusCode::OK);
    let seen: Value = passed.json().await.unwrap();
    assert_eq!(seen["x-user-id"], gated["user"]["id"]);
    assert_eq!(seen["x-user-email"], "ada@example.com");
    assert_eq!(
        seen["x-user-role"], "user",
        "a client's X-User-Role never reaches the service"
    );
    assert_eq!(seen["x-user-email-verified"], "false");
    assert!(
        seen.get("x-user-tenant").is_none(),
        "no client-sent X-User-* header reaches the service, even one latchkey never sets"
    );
    assert_eq!(
        seen["x-user-acr"], "aal1",
        "a client's X-User-Acr never reaches the service"
    );
    let claims = jsonwebtoken::dangerous::insecure_decode::<Value>(&token)
        .unwrap()
        .claims;
    assert_eq!(
        seen["x-user-auth-time"],
        claims["auth_time"].to_string().as_str()
    );
    // A route that needs a second factor: a password-only token gets the RFC 9470 challenge
    // through the gateway, an absent one a plain Bearer challenge, and the service sees neither.
    let weaker = client
        .get(format!("{public_url}/payouts/7"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(weaker.status(), StatusCode::UNAUTHORIZED);
    let challenge = weaker.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"aal2\""),
        "{challenge}"
    );
    let anonymous = client
        .get(format!("{public_url}/payouts/7"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    for bad in [
        None,
        Some("not.a.token"),
        Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."),
    ] {
        let mut request = client
            .get(format!("{public_url}/orders/42"))
            .header("X-User-Role", "admin");
        if let Some(bad) = bad {
            request = request.bearer_auth(bad);
        }
        assert_eq!(
            request.send().await.unwrap().status(),
            StatusCode::UNAUTHORIZED,
            "{bad:?}"
        );
    }
    client
        .post(format!("{public_url}/auth/logout"))
        .json(&json!({"refresh_token": gated["refresh_token"]}))
        .send()
        .await
        .unwrap();
    until_refused(&client, &format!("{public_url}/orders/42"), &token).await;
    let expiring = login(public_url.clone()).await;
    // 3 s of life, 1 s of leeway, whole seconds: past 5 s it is expired whatever the rounding.
    tokio::time::sleep(Duration::from_millis(5300)).await;
    let expired = client
        .get(format!("{public_url}/orders/42"))
        .bearer_auth(expiring["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        expired.status(),
        StatusCode::UNAUTHORIZED,
        "an expired token is stopped at the gateway"
    );

    // Events: every event of the outbox is on the stream exactly once, whichever instance wrote it.
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let outbox: Vec<String> = sqlx::query_scalar("select id from events order by seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(NATS).await.unwrap());
    let stream_name = latchkey::events::stream_name(&prefix);
    let mut ids = Vec::new();
    let started = Instant::now();
    let stream = loop {
        if let Ok(stream) = js.get_stream(&stream_name).await {
            break stream;
        }
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .unwrap();
    while ids.len() < outbox.len() && started.elapsed() < Duration::from_secs(20) {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let envelope: Value = serde_json::from_slice(&message.payload).unwrap();
            ids.push(envelope["id"].as_str().unwrap().to_owned());
            message.ack().await.unwrap();
        }
    }
    // Drain until idle: a duplicate arriving after the expected count must show.
    let mut extra = consumer
        .fetch()
        .max_messages(500)
        .expires(Duration::from_millis(700))
        .messages()
        .await
        .unwrap();
    while let Some(message) = extra.next().await {
        let envelope: Value = serde_json::from_slice(&message.unwrap().payload).unwrap();
        ids.push(envelope["id"].as_str().unwrap().to_owned());
    }
    let _ = js.delete_stream(&stream_name).await;
    assert_eq!(
        ids.len(),
        ids.iter().collect::<HashSet<_>>().len(),
        "no event twice"
    );
    assert_eq!(
        ids.iter().collect::<HashSet<_>>(),
        outbox.iter().collect::<HashSet<_>>(),
        "every event once"
    );
}
