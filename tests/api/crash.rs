//! Shutdown and crashes: SIGTERM stops the process cleanly; SIGKILL in the middle of a burst of
//! registrations leaves nothing half-written, and after a restart every event reaches NATS once.

use crate::support::{
    NATS, PASSWORD, Peer, Process, Serve, available, free_port, fresh_database, until_ready,
};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn serve(database_url: &str, port: u16, prefix: &str) -> Process {
    Serve::on(port)
        .env("LATCHKEY_DATABASE_URL", database_url)
        .env(
            "LATCHKEY_SECRET_KEY",
            "a shared secret key of at least 32 bytes!",
        )
        .env("LATCHKEY_NATS_URL", format!("nats://{NATS}"))
        .env("LATCHKEY_EVENTS_SUBJECT", prefix)
        .spawn()
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_and_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().await;
    let mut child = Serve::on(port)
        .env("LATCHKEY_SECRET_KEY_FILE", "k.key")
        .env("LATCHKEY_METRICS_LISTEN", "127.0.0.1:0")
        .env("LATCHKEY_SHUTDOWN_DELAY", "3s")
        .current_dir(dir.path())
        .spawn();
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    until_ready(&client, &base).await;

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    // Readiness fails first, while the listener still answers: the load balancer's cue.
    let mut draining = false;
    while started.elapsed() < Duration::from_secs(2) && !draining {
        let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
        draining = ready.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE;
        if !draining {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(draining, "/readyz kept answering 200 after SIGTERM");
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK, "still serving");
    let exit = loop {
        if let Some(exit) = child.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "a clean exit: {exit:?}");
}

#[tokio::test]
async fn a_crash_mid_burst_leaves_nothing_half_written_and_each_event_reaches_nats_once() {
    if !available("the crash test", &[Peer::Postgres, Peer::Nats]).await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(&dir).await;
    let prefix = format!("crash-{}", uuid::Uuid::now_v7().simple());
    let port = free_port().await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut first = serve(&database_url, port, &prefix);
    until_ready(&client, &base).await;

    // A burst of registrations; the process is killed while they are in flight.
    let burst: Vec<_> = (0..40)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            tokio::spawn(async move {
                let email = format!("burst{i}@example.com");
                let response = client
                    .post(format!("{base}/auth/register"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                (email, response.map(|r| r.status()).ok())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let outcomes: Vec<(String, Option<StatusCode>)> = futures::future::join_all(burst)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created: Vec<&String> = outcomes
        .iter()
        .filter(|(_, s)| *s == Some(StatusCode::CREATED))
        .map(|(e, _)| e)
        .collect();

    let second = serve(&database_url, port, &prefix);
    until_ready(&client, &base).await;

    // Every 201 exists; no user without its event, no event without its user.
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let users: Vec<(String, String)> = sqlx::query_as("select id, email from users")
        .fetch_all(&pool)
        .await
        .unwrap();
    let emails: Vec<&String> = users.iter().map(|(_, e)| e).collect();
    for email in &created {
        assert!(emails.contains(email), "{email} got 201 but does not exist");
    }
    let registered: Vec<String> =
        sqlx::query_scalar("select user_id from events where type = 'USER_REGISTERED'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut user_ids: Vec<&String> = users.iter().map(|(id, _)| id).collect();
    let mut event_users: Vec<&String> = registered.iter().collect();
    user_ids.sort();
    event_users.sort();
    assert_eq!(
        user_ids, event_users,
        "each user row has exactly its one USER_REGISTERED, and no event lacks its user"
    );

    // After the restart the relay catches up; JetStream holds each user's event once.
    let js = async_nats::jetstream::new(async_nats::connect(NATS).await.unwrap());
    let name = latchkey::events::stream_name(&prefix);
    let started = Instant::now();
    let stream = loop {
        if let Ok(stream) = js.get_stream(&name).await {
            break stream;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no stream");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .unwrap();
    let mut per_user: HashMap<String, usize> = HashMap::new();
    while per_user.values().sum::<usize>() < users.len()
        && started.elapsed() < Duration::from_secs(20)
    {
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
            if envelope["type"] == "USER_REGISTERED" {
                *per_user
                    .entry(envelope["subject"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            message.ack().await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
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
        if envelope["type"] == "USER_REGISTERED" {
            *per_user
                .entry(envelope["subject"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let _ = js.delete_stream(&name).await;
    drop(second);
    assert_eq!(
        per_user.len(),
        users.len(),
        "every user's registration reached NATS"
    );
    assert!(
        per_user.values().all(|count| *count == 1),
        "each exactly once: {per_user:?}"
    );
}
