//! Start-up and shutdown: bind, build the state, serve the public and the operations listeners
//! until SIGINT/SIGTERM. [`compose`] is where the state is put together.

mod compose;

pub use compose::{
    IfMissing, Sealed, build, key_file, open_store, require_database, sealing_error,
};

use crate::clock::Clock;
use crate::config::Config;
use crate::http;
use crate::state::AppState;
use std::future::Future;
use tokio::net::TcpListener;

/// Builds everything from `config` and serves on its listen addresses until a signal.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = bind(config.server.listen).await?;
    let operations = match config.server.metrics_listen {
        Some(address) => Some(bind(address).await?),
        None => None,
    };
    let app = build(config, Clock::System).await?;
    run(listener, operations, app, shutdown_signal()).await
}

async fn bind(address: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))
}

/// Serves `app` on `listener` (and the operations routes on `operations`, when given) until
/// `shutdown` completes, then finishes in-flight requests.
pub async fn run(
    listener: TcpListener,
    operations: Option<TcpListener>,
    app: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(
        "latchkey listening on http://{address}{}",
        app.config.server.base_path
    );
    if let Some(operations) = &operations {
        tracing::info!(
            "metrics, health and readiness on http://{}",
            operations.local_addr()?
        );
    }
    if app.config.mail.smtp_url.is_none() {
        warn_mail_goes_to_the_log(&app.config);
    }
    if app.config.tokens.issuer.trim_end_matches('/')
        != app.config.server.public_url.trim_end_matches('/')
    {
        // OpenID Connect Discovery §4.3: a relying party refuses a document whose issuer is
        // not the URL it fetched it under.
        tracing::warn!(
            issuer = %app.config.tokens.issuer,
            public_url = %app.config.server.public_url,
            "LATCHKEY_JWT_ISSUER differs from LATCHKEY_PUBLIC_URL: OpenID Connect clients will refuse the discovery document"
        );
    }
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mail_worker = app
        .mailer
        .spawn_worker(app.store.clone(), app.clock.clone(), stopping);
    let mut workers = vec![
        app.revocations
            .spawn_sync(app.store.clone(), app.clock.clone()),
        spawn_pruning(app.clone()),
        spawn_mail_requests(app.clone()),
        spawn_key_reload(app.clone()),
    ];
    if let Some(url) = &app.config.peers.redis_url {
        workers.push(
            app.revocations
                .spawn_redis(url.expose().to_owned(), app.clock.clone()),
        );
    }
    if let Some(url) = &app.config.peers.nats_url {
        workers.push(crate::events::spawn_relay(
            app.clone(),
            url.expose().to_owned(),
        ));
    }
    let limits = http::listen::ConnectionLimits {
        max_connections: app.config.server.max_connections,
        header_timeout: app.config.server.header_timeout.unsigned_abs(),
        // Long enough for any request still inside its deadline, and its answer, to finish.
        shutdown_grace: (app.config.server.request_timeout + app.config.server.header_timeout)
            .unsigned_abs(),
    };
    // One shutdown for both listeners.
    let (closing, closed) = tokio::sync::watch::channel(false);
    let draining = app.clone();
    let signal = tokio::spawn(async move {
        shutdown.await;
        // Readiness goes first, so a load balancer stops sending before the listeners close.
        draining
            .draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(draining.config.server.shutdown_delay.unsigned_abs()).await;
        let _ = closing.send(true);
    });
    let stopped = |mut closed: tokio::sync::watch::Receiver<bool>| async move {
        let _ = closed.wait_for(|closing| *closing).await;
    };
    let public = http::listen::serve(
        listener,
        http::router(app.clone()),
        limits,
        stopped(closed.clone()),
    );
    let operations = async {
        match operations {
            Some(listener) => {
                let router = http::operations_router(app.clone());
                http::listen::serve(listener, router, limits, stopped(closed)).await
            }
            None => Ok(()),
        }
    };
    let (served, operations_served) = tokio::join!(public, operations);
    signal.abort();
    // The mail worker finishes the mail in hand (so none is sent twice after a restart); the
    // other workers hold nothing that could be lost.
    let _ = stop.send(true);
    if tokio::time::timeout(MAIL_WORKER_GRACE, mail_worker)
        .await
        .is_err()
    {
        tracing::warn!("the mail worker did not stop in time");
    }
    for worker in workers {
        worker.abort();
    }
    served?;
    Ok(operations_served?)
}

/// Without SMTP every mail, reset codes and sign-in links included, is written to the log: said
/// once, at start, so nobody runs that way by accident and the log is guarded like a mailbox.
fn warn_mail_goes_to_the_log(config: &Config) {
    match &config.mail.dir {
        Some(dir) => tracing::warn!(
            mail_dir = %dir.display(),
            "LATCHKEY_SMTP_URL is not set: mails, with their links and codes, go to the log and to LATCHKEY_MAIL_DIR, not to their recipients; whoever reads them can use them"
        ),
        None => tracing::warn!(
            "LATCHKEY_SMTP_URL is not set: mails, with their links and codes, go to the log, not to their recipients; whoever reads the log can use them"
        ),
    }
}

/// Picks up rotated signing keys on every instance, without a restart.
fn spawn_key_reload(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(crate::service::keys::RELOAD_INTERVAL).await;
            let (tokens, bytes) = app.tokens.cache_usage();
            metrics::gauge!("latchkey_verify_cache_tokens").set(tokens as f64);
            metrics::gauge!("latchkey_verify_cache_bytes").set(bytes as f64);
            if let Err(error) = crate::service::keys::reload(&app).await {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "cannot reload signing keys; will retry"
                );
            }
        }
    })
}

/// Deletes expired sessions, tokens and revocations now and then.
/// Works off forgot-password and resend requests after their answers (see
/// `service::mail_requests`).
fn spawn_mail_requests(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(error) = crate::service::mail_requests::process_mail_requests(&app).await {
                tracing::warn!(%error, "working off mail requests failed; will retry");
            }
            app.mailer.requests_queued().await;
        }
    })
}

fn spawn_pruning(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = app.clock.now();
            let relayed = app.config.peers.nats_url.is_some();
            if let Err(error) = app
                .store
                .prune_events(now - app.config.peers.events_retention, !relayed)
                .await
            {
                tracing::warn!(%error, "pruning the outbox failed; will retry");
            }
            match crate::service::accounts::purge_unverified(&app).await {
                Ok(0) => {}
                Ok(users) => {
                    tracing::info!(users, "deleted self-registered accounts never verified")
                }
                Err(error) => {
                    tracing::warn!(%error, "deleting unverified accounts failed; will retry")
                }
            }
            match app.store.prune(now, app.config.tokens.reuse_grace).await {
                Ok(0) => {}
                Ok(rows) => tracing::debug!(rows, "pruned expired sessions and tokens"),
                Err(error) => tracing::warn!(%error, "pruning failed; will retry"),
            }
            tokio::time::sleep(PRUNE_INTERVAL).await;
        }
    })
}

const MAIL_WORKER_GRACE: std::time::Duration = std::time::Duration::from_secs(30);
const PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!(
        "shutting down: /readyz answers 503, then the listeners close and in-flight requests finish"
    );
}
