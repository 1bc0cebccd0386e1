//! The event relay: publishes the outbox to NATS JetStream on `{prefix}.{type}`, in outbox order
//! (so in order per user), at least once, with `Nats-Msg-Id` = the event id so JetStream drops
//! duplicates. One instance relays at a time (a lease); while NATS is away events wait in the
//! outbox and flow when it is back.

use crate::state::AppState;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use std::time::Duration;
use uuid::Uuid;

/// How long a relay's lease lasts without renewal; another instance takes over after it.
const LEASE: time::Duration = time::Duration::seconds(5);
/// How often an idle relay looks at the outbox.
const POLL: Duration = Duration::from_millis(250);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The JetStream stream for a subject prefix: upper-cased, `.` and `-` made `_`.
pub fn stream_name(prefix: &str) -> String {
    prefix
        .to_uppercase()
        .replace(['.', '-', ' ', '*', '>'], "_")
}

/// Relays until the task is dropped, reconnecting with backoff when NATS is away.
pub fn spawn_relay(app: AppState, url: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let holder = Uuid::new_v4().to_string();
        let mut backoff = Duration::from_millis(500);
        loop {
            match relay(&app, &url, &holder, &mut backoff).await {
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), retry_in = ?backoff, "event relay interrupted; events wait in the outbox")
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    })
}

async fn relay(
    app: &AppState,
    url: &str,
    holder: &str,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await?;
    let jetstream = jetstream::new(client);
    let prefix = &app.config.peers.events_subject;
    jetstream
        .get_or_create_stream(stream::Config {
            name: stream_name(prefix),
            subjects: vec![format!("{prefix}.>")],
            ..Default::default()
        })
        .await?;
    tracing::info!(stream = %stream_name(prefix), "event relay connected");
    *backoff = Duration::from_millis(500);
    loop {
        let now = app.clock.now();
        if !app
            .store
            .take_lease("event_relay", holder, now, now + LEASE)
            .await?
        {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let batch = app.store.unpublished_events(100).await?;
        if batch.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        for event in batch {
            // The lease is renewed before every event, so it cannot lapse mid-batch and let a
            // second relay publish alongside this one.
            let now = app.clock.now();
            if !app
                .store
                .take_lease("event_relay", holder, now, now + LEASE)
                .await?
            {
                break;
            }
            let publish = PublishMessage::build()
                .payload(event.envelope.into_bytes().into())
                .message_id(&event.id);
            // Wait for JetStream's ack before marking: an event is never lost, at worst sent
            // again (and then dropped by JetStream's deduplication on Nats-Msg-Id).
            jetstream
                .send_publish(format!("{prefix}.{}", event.kind), publish)
                .await?
                .await?;
            app.store.mark_published(event.seq, app.clock.now()).await?;
            metrics::counter!("latchkey_events_published_total").increment(1);
        }
    }
}
