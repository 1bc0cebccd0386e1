//! Outbound mail: a durable queue in the database (bodies sealed until sent), delivered by a
//! worker with exponential backoff and jitter over SMTP (lettre) or, without SMTP, to the log
//! and to owner-only `.eml` files.

use crate::clock::Clock;
use crate::crypto::Sealer;
use crate::store::{QueuedMail, Store, StoredBody};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a worker may hold a claimed mail before another may try it.
const LEASE: time::Duration = time::Duration::minutes(2);
/// How often the queue is looked at when nothing wakes the worker.
const POLL: Duration = Duration::from_secs(1);
/// Longest wait between two tries of one mail.
const MAX_BACKOFF_SECONDS: f64 = 3_600.0;

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// The log, and one `.eml` file per mail in the directory when set.
    Log(Option<PathBuf>),
}

impl Transport {
    /// SMTP from `smtp://user:pass@host:port` (STARTTLS when the server offers it) or
    /// `smtps://…` (TLS from the start); the log (and `mail_dir`) when no URL is set.
    pub fn new(smtp_url: Option<&str>, mail_dir: Option<PathBuf>) -> anyhow::Result<Transport> {
        let Some(url) = smtp_url else {
            return Ok(Transport::Log(mail_dir));
        };
        let url = if url.starts_with("smtp://") && !url.contains("tls=") {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}tls=opportunistic")
        } else {
            url.to_owned()
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|e| anyhow::anyhow!("LATCHKEY_SMTP_URL is not a usable SMTP URL: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(Transport::Smtp(transport))
    }

    async fn deliver(&self, id: &str, message: Message) -> anyhow::Result<()> {
        match self {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::Log(dir) => {
                let formatted = message.formatted();
                // No SMTP server is configured (the embedded default): the log is the mailbox.
                tracing::info!(mail = %String::from_utf8_lossy(&formatted), "mail (no SMTP server configured)");
                if let Some(dir) = dir {
                    tokio::fs::create_dir_all(dir).await?;
                    // A mail holds live links and codes: owner-only, like the database.
                    let mut options = tokio::fs::OpenOptions::new();
                    options.write(true).create(true).truncate(true);
                    #[cfg(unix)]
                    options.mode(0o600);
                    // Written under a temporary name and renamed, so whoever watches the
                    // directory never reads half a mail.
                    let partial = dir.join(format!(".{id}.eml.partial"));
                    let mut file = options.open(&partial).await?;
                    tokio::io::AsyncWriteExt::write_all(&mut file, &formatted).await?;
                    tokio::io::AsyncWriteExt::flush(&mut file).await?;
                    drop(file);
                    tokio::fs::rename(&partial, dir.join(format!("{id}.eml"))).await?;
                }
            }
        }
        Ok(())
    }
}

/// A mail's bodies, as rendered; sealed in the queue until sent (they may hold live links and
/// codes).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct MailBody {
    /// Plain text.
    pub text: String,
    /// HTML.
    pub html: String,
}

impl MailBody {
    /// The sealed form stored with mail `id`.
    pub fn seal(&self, sealer: &Sealer, id: uuid::Uuid) -> Vec<u8> {
        let plain = serde_json::to_vec(self).expect("two strings serialise");
        sealer.seal(&plain, &binding(id))
    }

    /// The bodies of mail `id` as stored.
    pub fn open(stored: &StoredBody, sealer: &Sealer, id: uuid::Uuid) -> anyhow::Result<MailBody> {
        match stored {
            StoredBody::Sealed(sealed) => {
                let plain = sealer.open(sealed, &binding(id))?;
                Ok(serde_json::from_slice(&plain)?)
            }
            StoredBody::Clear { text, html } => Ok(MailBody {
                text: text.clone(),
                html: html.clone(),
            }),
        }
    }
}

/// The binding of a mail's sealed bodies: its row, so that they cannot be moved to another mail.
pub(crate) fn binding(id: uuid::Uuid) -> String {
    format!("mail:{id}")
}

/// Mail settings.
#[derive(Clone)]
pub struct MailSettings {
    /// The `From` of every mail.
    pub from: Mailbox,
    /// First retry delay; doubles with every failure.
    pub retry_base: time::Duration,
    /// A mail still unsent after this long is given up.
    pub max_age: time::Duration,
}

/// The queue's worker side: wake it when mail was queued; it delivers in the background.
#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    settings: Arc<MailSettings>,
    sealer: Sealer,
    wake: Arc<Notify>,
    requests: Arc<Notify>,
}

impl Mailer {
    /// A mailer over `transport`, opening queued bodies with `sealer`.
    pub fn new(transport: Transport, settings: MailSettings, sealer: Sealer) -> Mailer {
        Mailer {
            transport,
            settings: Arc::new(settings),
            sealer,
            wake: Arc::new(Notify::new()),
            requests: Arc::new(Notify::new()),
        }
    }

    /// Tells the worker that mail is waiting, so it need not wait for its next look.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Tells the request worker that a mail request (forgot-password, resend) is queued.
    pub fn wake_requests(&self) {
        self.requests.notify_one();
    }

    /// Waits until a mail request is queued, or `POLL` passes (requests queued by another
    /// instance, or left by a stop).
    pub async fn requests_queued(&self) {
        let _ = tokio::time::timeout(POLL, self.requests.notified()).await;
    }

    /// Delivers queued mail, one at a time, until `stop` turns true; the mail in hand is
    /// always finished first, so a normal shutdown never leaves a sent mail unrecorded.
    pub fn spawn_worker(
        &self,
        store: Store,
        clock: Clock,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let mailer = self.clone();
        tokio::spawn(async move {
            while !*stop.borrow() {
                if mailer.deliver_due(&store, &clock).await == 0 {
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = tokio::time::timeout(POLL, mailer.wake.notified()) => {}
                    }
                }
            }
        })
    }

    /// Claims and tries every mail that is due; gives how many were tried.
    pub async fn deliver_due(&self, store: &Store, clock: &Clock) -> usize {
        // One at a time: a claim's lease (two minutes) always covers the one SMTP exchange
        // (at most 20 s), so no other worker can take a mail that is being sent.
        let claimed = match store.claim_mail(clock.now(), LEASE, 1).await {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "cannot read the mail queue; will retry");
                return 0;
            }
        };
        let tried = claimed.len();
        for mail in claimed {
            let outcome = match self.message(&mail) {
                Ok(message) => self.transport.deliver(&mail.id.to_string(), message).await,
                Err(error) => Err(error),
            };
            let now = clock.now();
            let result = match outcome {
                Ok(()) => {
                    metrics::counter!("latchkey_mail_sent_total").increment(1);
                    store.mail_sent(&mail, now).await
                }
                Err(error) if now - mail.created_at >= self.settings.max_age => {
                    metrics::counter!("latchkey_mail_given_up_total").increment(1);
                    tracing::error!(mail_id = %mail.id, attempts = mail.attempts, error = format!("{error:#}"), "giving up on a mail");
                    store.mail_given_up(&mail, now, &format!("{error:#}")).await
                }
                Err(error) => {
                    let retry_at = now + self.backoff(mail.attempts);
                    metrics::counter!("latchkey_mail_retries_total").increment(1);
                    tracing::warn!(mail_id = %mail.id, attempts = mail.attempts, %retry_at, error = format!("{error:#}"), "mail not delivered; will retry");
                    store
                        .mail_retry(&mail, retry_at, &format!("{error:#}"))
                        .await
                }
            };
            if let Err(error) = result {
                tracing::warn!(mail_id = %mail.id, %error, "cannot record a mail's delivery outcome");
            }
        }
        tried
    }

    fn message(&self, mail: &QueuedMail) -> anyhow::Result<Message> {
        let to: Mailbox = mail.recipient.parse()?;
        let body = MailBody::open(&mail.body, &self.sealer, mail.id)?;
        // 8bit rather than quoted-printable: links are long, and must stand whole and literal in
        // the text part (people and tools copy them from .eml files and the log).
        // Our text lines are far below 8bit's 998-octet limit (lettre itself would pick
        // quoted-printable past 76 characters and break the links).
        let text = Body::dangerous_pre_encoded(
            crlf(&body.text).into_bytes(),
            ContentTransferEncoding::EightBit,
        );
        let parts = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )
            .singlepart(SinglePart::html(body.html));
        Ok(Message::builder()
            .from(self.settings.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(parts)?)
    }

    /// base × 2^(attempts−1), capped at an hour, with ±25 % jitter so that many mails failing
    /// together do not retry together.
    fn backoff(&self, attempts: i64) -> time::Duration {
        let exponent = i32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(19);
        let base = self.settings.retry_base.as_seconds_f64() * 2f64.powi(exponent);
        let jitter = 0.75 + 0.5 * f64::from(crate::crypto::random::bytes::<1>()[0]) / 255.0;
        time::Duration::seconds_f64(base.min(MAX_BACKOFF_SECONDS) * jitter)
    }
}

/// Text with CRLF line ends, as 8bit MIME needs.
fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}
