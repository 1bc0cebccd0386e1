//! Events on NATS JetStream: envelope, subjects, order, deduplication ids, no secrets; waiting in
//! the outbox while NATS is away; retention without NATS.

use crate::support::{NATS, PASSWORD, Peer, Proxy, TestApp, available, spawn_app, spawn_app_with};
use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Every message of `prefix`'s stream, as (subject, Nats-Msg-Id, envelope), once `count` arrived.
async fn consume(prefix: &str, count: usize) -> Vec<(String, String, Value)> {
    let js = jetstream::new(async_nats::connect(NATS).await.unwrap());
    let name = latchkey::events::stream_name(prefix);
    let started = Instant::now();
    let stream = loop {
        if let Ok(stream) = js.get_stream(&name).await {
            break stream;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the stream {name} never appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let consumer = stream
        .create_consumer(pull::Config::default())
        .await
        .unwrap();
    let mut received = Vec::new();
    while received.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "got {} of {count} events",
            received.len()
        );
        let mut batch = consumer
            .fetch()
            .max_messages(100)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            let envelope: Value = serde_json::from_slice(&message.payload).unwrap();
            received.push((message.subject.to_string(), id, envelope));
            message.ack().await.unwrap();
        }
    }
    // Drain until idle: a duplicate arriving after the expected count must show.
    let mut extra = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_millis(700))
        .messages()
        .await
        .unwrap();
    while let Some(message) = extra.next().await {
        let message = message.unwrap();
        let envelope: Value = serde_json::from_slice(&message.payload).unwrap();
        received.push((message.subject.to_string(), String::new(), envelope));
    }
    let _ = js.delete_stream(&name).await;
    received
}

fn prefix() -> String {
    format!("test-events-{}", uuid::Uuid::now_v7().simple())
}

async fn activity(app: &TestApp) -> Value {
    let registered: Value = app
        .register("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    app.login("ada@example.com", "not the right password").await;
    let token = registered["access_token"].as_str().unwrap();
    app.send(
        reqwest::Method::PATCH,
        "/users/me",
        token,
        &json!({"name": "Ada"}),
    )
    .await;
    registered
}

#[tokio::test]
async fn events_reach_jetstream_in_order_with_their_ids_and_no_secrets() {
    if !available("the NATS tests", &[Peer::Nats]).await {
        return;
    }
    let prefix = prefix();
    let url = format!("nats://{NATS}");
    let app = spawn_app_with(&[
        "--nats-url",
        &url,
        "--events-subject",
        &prefix,
        "--require-email-verification",
        "false",
    ])
    .await;

    let registered = activity(&app).await;

    let received = consume(&prefix, 4).await;
    let types: Vec<&str> = received
        .iter()
        .map(|(_, _, e)| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "USER_REGISTERED",
            "USER_LOGIN",
            "USER_LOGIN_FAILED",
            "USER_UPDATED"
        ]
    );
    let outbox = app.events().await;
    for ((subject, msg_id, envelope), stored) in received.iter().zip(&outbox) {
        assert_eq!(
            subject,
            &format!("{prefix}.{}", envelope["type"].as_str().unwrap())
        );
        assert_eq!(
            msg_id,
            envelope["id"].as_str().unwrap(),
            "Nats-Msg-Id is the event id"
        );
        assert_eq!(envelope, stored, "exactly the outbox envelope");
        assert_eq!(
            (
                envelope["specversion"].as_str(),
                envelope["source"].as_str()
            ),
            (Some("1.0"), Some("latchkey"))
        );
        assert_eq!(envelope["subject"], registered["user"]["id"]);
        let text = envelope.to_string();
        for secret in [
            PASSWORD,
            "not the right password",
            "$argon2",
            registered["refresh_token"].as_str().unwrap(),
            registered["access_token"].as_str().unwrap(),
        ] {
            assert!(!text.contains(secret), "an event carries a secret: {text}");
        }
    }
    assert!(
        app.state
            .store
            .unpublished_events(10)
            .await
            .unwrap()
            .is_empty(),
        "all marked published"
    );
}

#[tokio::test]
async fn events_wait_in_the_outbox_while_nats_is_away_and_flow_when_it_is_back() {
    if !available("the NATS tests", &[Peer::Nats]).await {
        return;
    }
    let proxy = Proxy::start(NATS.to_owned()).await;
    proxy.cut();
    let prefix = prefix();
    let url = format!("nats://127.0.0.1:{}", proxy.port);
    let app = spawn_app_with(&[
        "--nats-url",
        &url,
        "--events-subject",
        &prefix,
        "--require-email-verification",
        "false",
    ])
    .await;

    assert_eq!(
        app.register("ada@example.com", PASSWORD).await.status(),
        StatusCode::CREATED,
        "NATS is not needed to register"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        app.state.store.unpublished_events(10).await.unwrap().len(),
        2,
        "waiting in the outbox"
    );

    proxy.restore();

    let received = consume(&prefix, 2).await;
    assert_eq!(received[0].2["type"], "USER_REGISTERED");
    assert_eq!(received.len(), 2, "each event once");
}

#[tokio::test]
async fn without_nats_events_stay_in_the_outbox_until_their_retention_ends() {
    let app = spawn_app().await;
    app.register("ada@example.com", PASSWORD).await;
    let now = app.state.clock.now();

    assert_eq!(
        app.state
            .store
            .prune_events(now - time::Duration::days(7), true)
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.events().await.len(), 1);
    let pruned = app
        .state
        .store
        .prune_events(now + time::Duration::seconds(1), true)
        .await
        .unwrap();

    assert_eq!(pruned, 1);
    assert!(app.events().await.is_empty());
}
